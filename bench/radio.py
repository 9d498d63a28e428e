"""Decode throughput of the 802.15.4 receive path, and the reassembly buffer's memory bound.

(1) Frames per CPU second (one core) through MAC -> 6LoWPAN -> UDP -> CoAP
(``aiocoap.Message.decode``) for 40-byte and 127-byte frames and for a fragmented 1280-byte
datagram, each next to what a 250 kbit/s channel can carry (about 244 and 145 frames/s,
counting CSMA back-off, the ACK and the inter-frame spacing). Goal: at least 50 times that,
12,000 frames/s.

(2) Bytes held by the reassembler under a flood of FRAG1 that no FRAGN ever completes, against
its budget, with the tracemalloc peak of the whole receive path during the flood.

The layers below the MAC are :class:`Stage` objects: a stage wraps a PSDU the way the wire
carries it and unwraps it again. The HDLC-lite + Spinel stage of the serial link joins the
measurement by adding it to ``SERIAL_STAGES``.

    .venv/bin/python bench/radio.py [--seconds S]
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiocoap

from bridged.transports.ieee802154.link import LowpanLink
from bridged.transports.ieee802154.lowpan import UdpDatagram, link_local
from bridged.transports.ieee802154.mac import MAX_PSDU, build_frame, data_frame, parse_frame

GOAL = 12_000
NODE = bytes.fromhex("00124b00aabbccdd")
GATEWAY = bytes.fromhex("00124b0001020304")
NODE_SHORT, GATEWAY_SHORT = b"\x00\x05", b"\x00\x00"
PAN = 0xABCD
PHY_MAX = {40: 244, 127: 145}
"""Frames/s a 250 kbit/s O-QPSK channel carries at these PSDU sizes (issue 5)."""


@dataclass(frozen=True)
class Stage:
    """A layer below the MAC: ``wrap`` turns a PSDU into this layer's bytes, ``unwrap`` back."""

    name: str
    wrap: Callable[[bytes], bytes]
    unwrap: Callable[[bytes], bytes]


SERIAL_STAGES: tuple[Stage, ...] = ()
"""The serial link's stages, outermost last (HDLC-lite + Spinel STREAM_RAW goes here)."""


COAP_OVERHEAD = 11
"""Bytes of a notification before its payload: header, token, two options, payload marker."""


def coap_notification(seq: int, payload_size: int) -> bytes:
    """A CoAP NON 2.05 notification as a node sends one: token, Observe, SenML CBOR, payload."""
    header = bytes((0x52, 0x45)) + (seq & 0xFFFF).to_bytes(2, "big") + seq.to_bytes(2, "big")
    options = bytes((0x61, seq & 0xFF, 0x61, 112))  # Observe (6), Content-Format (12) = 112
    return header + options + b"\xff" + random.Random(seq).randbytes(payload_size)


def psdus(count: int, psdu_size: int | None, datagram_size: int | None) -> list[bytes]:
    """PSDUs a node sends: ``count`` frames of ``psdu_size``, or datagrams of ``datagram_size``."""
    node = LowpanLink()
    src_mac, dst_mac = (NODE_SHORT, GATEWAY_SHORT) if psdu_size == 40 else (NODE, GATEWAY)
    src, dst = link_local(src_mac), link_local(dst_mac)
    frames: list[bytes] = []
    seq = 0
    while len(frames) < count:
        if psdu_size is not None:
            probe = node.send(
                UdpDatagram(src, 5683, dst, 5683, coap_notification(seq, 1)),
                src_mac=src_mac,
                dst_mac=dst_mac,
                pan_id=PAN,
            )[0]
            extra = psdu_size - len(probe)
            coap = coap_notification(seq, 1 + extra)
        else:
            assert datagram_size is not None
            coap = coap_notification(seq, datagram_size - 40 - 8 - COAP_OVERHEAD)
        sent = node.send(
            UdpDatagram(src, 5683, dst, 5683, coap), src_mac=src_mac, dst_mac=dst_mac, pan_id=PAN
        )
        assert psdu_size is None or [len(f) for f in sent] == [psdu_size]
        frames += sent
        seq += 1
    return frames


def wrap_all(frames: Sequence[bytes], stages: Sequence[Stage]) -> list[bytes]:
    out = list(frames)
    for stage in stages:
        out = [stage.wrap(f) for f in out]
    return out


def decode_pass(stages: Sequence[Stage], depth: str) -> Callable[[Sequence[bytes]], int]:
    """One pass over the frames with a fresh link (no state carried over); returns the count
    of frames (``mac``), datagrams (``udp``) or CoAP messages (``coap``) decoded."""
    unwraps = [stage.unwrap for stage in reversed(stages)]

    def run(frames: Sequence[bytes]) -> int:
        link = LowpanLink()
        done = 0
        for raw in frames:
            for unwrap in unwraps:
                raw = unwrap(raw)
            if depth == "mac":
                parse_frame(raw)
                done += 1
                continue
            datagram = link.receive(raw)
            if datagram is not None:
                if depth == "coap":
                    aiocoap.Message.decode(datagram.payload)
                done += 1
        return done

    return run


def frames_per_second(
    run: Callable[[Sequence[bytes]], int], frames: list[bytes], seconds: float
) -> float:
    """Frames per CPU second of this process: what one core does, however busy the machine."""
    run(frames)  # warm up
    count = 0
    start = time.process_time()
    while (elapsed := time.process_time() - start) < seconds:
        run(frames)
        count += len(frames)
    return count / elapsed


def section_throughput(seconds: float) -> None:
    stages = SERIAL_STAGES
    path = " -> ".join([*(s.name for s in reversed(stages)), "MAC", "6LoWPAN", "UDP", "CoAP"])
    print(f"### Decode throughput, {path}, one core\n")
    print(
        "| workload | PSDU bytes | MAC only fr/s | to UDP fr/s | to CoAP fr/s "
        "| channel max fr/s | ratio | goal |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    workloads = [
        ("unfragmented, short addresses", psdus(256, 40, None), PHY_MAX[40]),
        ("unfragmented, extended addresses", psdus(256, 127, None), PHY_MAX[127]),
        ("1280-byte datagram, fragmented", psdus(256, None, 1280), PHY_MAX[127]),
    ]
    for name, frames, phy in workloads:
        wrapped = wrap_all(frames, stages)
        rates = [
            frames_per_second(decode_pass(stages, depth), wrapped, seconds)
            for depth in ("mac", "udp", "coap")
        ]
        sizes = sorted({len(f) for f in frames})
        size = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
        verdict = "met" if rates[2] >= GOAL else "missed"
        print(
            f"| {name} | {size} | {rates[0]:,.0f} | {rates[1]:,.0f} | {rates[2]:,.0f} "
            f"| {phy} | {rates[2] / phy:,.0f}x | {verdict} |"
        )
    print()


def section_memory(counts: Sequence[int]) -> None:
    print("### Reassembly under a flood of FRAG1 with no FRAGN\n")
    print(
        "| budget bytes | FRAG1 frames | max bytes held | datagrams held | evicted "
        "| tracemalloc peak KiB |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    first = parse_frame(psdus(1, None, 1280)[0])
    for budget in (4 * 1280, 8 * 1280, 32 * 1280):
        for count in counts:
            frames = []
            for i in range(count):
                payload = first.payload[:2] + (i & 0xFFFF).to_bytes(2, "big") + first.payload[4:]
                source = (i >> 16).to_bytes(2, "big") + NODE[2:]  # more sources than tags
                frame = data_frame(
                    seq=i & 0xFF, src=source, dst=GATEWAY, pan_id=PAN, payload=payload
                )
                frames.append(build_frame(frame))
            tracemalloc.start()
            link = LowpanLink(reassembly_budget=budget)
            held = 0
            for psdu in frames:
                assert link.receive(psdu) is None
                held = max(held, link.reassembler.held_bytes)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            counters = link.reassembler.counters
            print(
                f"| {budget:,} | {count:,} | {held:,} | {len(link.reassembler)} "
                f"| {counters.evicted:,} | {peak / 1024:,.0f} |"
            )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--flood", type=int, nargs="+", default=[1_000, 100_000])
    args = parser.parse_args()
    assert MAX_PSDU == 127
    section_throughput(args.seconds)
    section_memory(args.flood)


if __name__ == "__main__":
    main()
