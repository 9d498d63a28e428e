"""Decode throughput of the 802.15.4 receive path, and the reassembly buffer's memory bound.

(1) Frames per CPU second (one core) from the serial bytes an OpenThread RCP writes to the
host, through HDLC-lite -> Spinel -> MAC -> 6LoWPAN -> UDP -> CoAP (a node's NON notification,
decoded as the gateway does: ``coap_notification.decode_notification``),
for 40-byte and 127-byte frames and for a fragmented 1280-byte datagram, each next to what a
250 kbit/s channel can carry (about 244 and 145 frames/s, counting CSMA back-off, the ACK and
the inter-frame spacing). Goal: at least 50 times that, 12,000 frames/s. A column per depth
shows what each layer costs.

The serial side is what the radio's reader sees: every PSDU in a STREAM_RAW PROP_VALUE_IS with
its receive metadata, HDLC-lite framed, the frames back to back in one byte stream handed over
in USB-packet-sized chunks; it is decoded with the calls ``Radio`` makes on received bytes
(``FrameDecoder.feed``, ``spinel.decode_stream_raw``: a frame heard, in one call) and the
link's on the PSDU (``LowpanLink.receive``; to MAC alone, the fast path's
``parse_data_frame``, else ``parse_frame``).

(2) Bytes held by the reassembler under a flood of FRAG1 that no FRAGN ever completes, against
its budget, with the tracemalloc peak of the whole receive path during the flood.

    .venv/bin/python bench/radio.py [--seconds S] [--chunk BYTES] [--flood N ...]
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
from collections.abc import Callable, Sequence

from bridged.transports.ieee802154 import hdlc, spinel
from bridged.transports.ieee802154.coap_notification import decode_notification
from bridged.transports.ieee802154.fragment import DEFAULT_BUDGET
from bridged.transports.ieee802154.link import LowpanLink
from bridged.transports.ieee802154.lowpan import UdpDatagram, link_local
from bridged.transports.ieee802154.mac import (
    MAX_PSDU,
    build_frame,
    data_frame,
    parse_data_frame,
    parse_frame,
)

GOAL = 12_000
NODE = bytes.fromhex("00124b00aabbccdd")
GATEWAY = bytes.fromhex("00124b0001020304")
NODE_SHORT, GATEWAY_SHORT = b"\x00\x05", b"\x00\x00"
PAN = 0xABCD
PHY_MAX = {40: 244, 127: 145}
"""Frames/s a 250 kbit/s O-QPSK channel carries at these PSDU sizes (issue 5)."""


DEPTHS = ("HDLC", "Spinel", "MAC", "UDP", "CoAP")
"""How far a pass decodes: HDLC-lite frames, Spinel STREAM_RAW receptions, MAC frames (FCS
checked), UDP datagrams (dedupe, dispatch, reassembly, IPHC, NHC, checksum), CoAP messages."""
CHUNK = 64
"""Bytes per serial read: a USB full-speed bulk packet, what CDC-ACM and USB-UART dongles
deliver at a time."""


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


def serial_stream(frames: Sequence[bytes], chunk: int) -> list[bytes]:
    """The bytes an RCP writes for ``frames`` received on the air, in ``chunk``-byte reads.

    Each PSDU goes in a STREAM_RAW PROP_VALUE_IS (TID 0) with the metadata an OpenThread RCP
    sends: RSSI, noise floor, flags, channel, LQI, a microsecond timestamp and the receive
    error, HDLC-lite framed with its FCS and escapes.
    """
    stream = bytearray()
    for n, psdu in enumerate(frames):
        rx = spinel.RxFrame(psdu, -62, -98, 0, 11, 220, 1_000_000 + 4_096 * n)
        value = spinel.encode_rx(rx)
        payload = spinel.encode_frame(
            spinel.prop_frame(spinel.Command.PROP_VALUE_IS, spinel.Prop.STREAM_RAW, value)
        )
        stream += hdlc.encode_frame(payload)
    return [bytes(stream[i : i + chunk]) for i in range(0, len(stream), chunk)]


def decode_pass(depth: str) -> Callable[[Sequence[bytes]], int]:
    """One pass over the serial chunks with a fresh HDLC decoder and link (no state carried
    over); returns the count of frames (HDLC, Spinel, MAC), datagrams (UDP) or CoAP messages
    decoded."""
    level = DEPTHS.index(depth)

    def run(chunks: Sequence[bytes]) -> int:
        decoder = hdlc.FrameDecoder()
        link = LowpanLink()
        done = 0
        for chunk in chunks:
            for payload in decoder.feed(chunk):
                if level == 0:
                    done += 1
                    continue
                rx = spinel.decode_stream_raw(payload)
                assert rx is not None
                if level == 1:
                    done += not rx.rx_error
                    continue
                if level == 2:
                    if parse_data_frame(rx.psdu) is None:
                        parse_frame(rx.psdu, fcs=True)
                    done += 1
                    continue
                datagram = link.receive(rx.psdu)
                if datagram is not None:
                    if level == 4:
                        assert decode_notification(datagram.payload) is not None
                    done += 1
        assert not any(decoder.errors.values()) and not decoder.discarded
        return done

    return run


def frames_per_second(
    run: Callable[[Sequence[bytes]], int], chunks: list[bytes], frames: int, seconds: float
) -> float:
    """Frames per CPU second of this process: what one core does, however busy the machine."""
    run(chunks)  # warm up
    count = 0
    start = time.process_time()
    while (elapsed := time.process_time() - start) < seconds:
        run(chunks)
        count += frames
    return count / elapsed


def section_throughput(seconds: float, chunk: int) -> None:
    print(f"### Decode throughput, {' -> '.join(DEPTHS)}, one core, {chunk}-byte reads\n")
    columns = " | ".join(f"to {depth} fr/s" for depth in DEPTHS)
    print(f"| workload | PSDU bytes | {columns} | channel max fr/s | ratio | goal |")
    print("|---|---:|" + "---:|" * len(DEPTHS) + "---:|---:|---|")
    workloads = [
        ("unfragmented, short addresses", psdus(256, 40, None), PHY_MAX[40]),
        ("unfragmented, extended addresses", psdus(256, 127, None), PHY_MAX[127]),
        ("1280-byte datagram, fragmented", psdus(256, None, 1280), PHY_MAX[127]),
    ]
    for name, frames, phy in workloads:
        chunks = serial_stream(frames, chunk)
        rates = [
            frames_per_second(decode_pass(depth), chunks, len(frames), seconds) for depth in DEPTHS
        ]
        sizes = sorted({len(f) for f in frames})
        size = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
        verdict = "met" if rates[-1] >= GOAL else "missed"
        cells = " | ".join(f"{rate:,.0f}" for rate in rates)
        print(f"| {name} | {size} | {cells} | {phy} | {rates[-1] / phy:,.0f}x | {verdict} |")
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
            default = " (default)" if budget == DEFAULT_BUDGET else ""
            print(
                f"| {budget:,}{default} | {count:,} | {held:,} | {len(link.reassembler)} "
                f"| {counters.evicted:,} | {peak / 1024:,.0f} |"
            )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--chunk", type=int, default=CHUNK, help="bytes per serial read")
    parser.add_argument("--flood", type=int, nargs="+", default=[1_000, 100_000])
    args = parser.parse_args()
    assert MAX_PSDU == 127
    section_throughput(args.seconds, args.chunk)
    section_memory(args.flood)


if __name__ == "__main__":
    main()
