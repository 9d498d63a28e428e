"""BLE adverts decoded and mapped per second on one core, against what a scanner can hear.

A legacy advert takes 376 µs on air and a scanner listens on one channel at a time, so one
scanner hears at most about 500 adverts/s; the goal is 100 times that (50,000/s). Each row
runs ``AdvertDecoder.decode`` (format dispatch, decryption, replay and dedupe checks, mapping to
node-local records) over a stream of distinct adverts from 1,000 nodes, the way the transport
calls it; the adverts are built beforehand. Median of several runs.

    .venv/bin/python bench/ble.py [--adverts N] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from bridged.transports.ble import atc, bthome, ruuvi
from bridged.transports.ble.adverts import AdvertDecoder, RawAdvert

SCANNER_RATE = 500
"""Adverts per second one scanner can hear (376 µs per legacy advert, one channel at a time)."""
GOAL = 100
NODES = 1000
KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")

Stream = list[tuple[RawAdvert, bytes | None]]


def address(node: int) -> str:
    return "A4:C1:38:" + ":".join(f"{b:02X}" for b in node.to_bytes(3, "big"))


def bthome_ht(node: int, seq: int) -> list[tuple[int, bthome.ObjectValue]]:
    """A thermometer: packet ID, battery, temperature, humidity (the common BTHome node)."""
    return [(0x00, seq % 256), (0x01, 80), (0x02, 21.5 + node % 10), (0x03, 45.25)]


MIX: list[Callable[[int, int], list[tuple[int, bthome.ObjectValue]]]] = [
    bthome_ht,
    lambda node, seq: [(0x00, seq % 256), (0x01, 90), (0x3A, "press")],  # button
    lambda node, seq: [(0x00, seq % 256), (0x01, 70), (0x05, 512.3), (0x21, True)],  # motion
    lambda node, seq: [(0x00, seq % 256), (0x0B, 1250.5), (0x4A, 230.1), (0x4D, 1234.567)],
]
"""Encrypted BTHome nodes of four kinds: thermometer, button, motion + light, power meter."""


def stream(n: int, make: Callable[[int, int], RawAdvert], keyed: bool = False) -> Stream:
    return [(make(i % NODES, i // NODES), KEY if keyed else None) for i in range(n)]


def raw(node: int, seq: int, service: dict[str, bytes], md: dict[int, bytes]) -> RawAdvert:
    return RawAdvert(address(node), None, -70, service, md, 1000.0 + seq * 5.0)


def plain_bthome(node: int, seq: int) -> RawAdvert:
    return raw(node, seq, {bthome.UUID: bthome.encode(bthome_ht(node, seq))}, {})


def encrypted(kinds: list[Callable[[int, int], list[tuple[int, bthome.ObjectValue]]]]):
    def make(node: int, seq: int) -> RawAdvert:
        objects = kinds[node % len(kinds)](node, seq)
        data = bthome.encode(objects, bindkey=KEY, address=address(node), counter=seq + 1)
        return raw(node, seq, {bthome.UUID: data}, {})

    return make


def ruuvi_advert(node: int, seq: int) -> RawAdvert:
    data = bytearray.fromhex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")
    data[16:18] = (seq % 65535).to_bytes(2, "big")
    return raw(node, seq, {}, {ruuvi.COMPANY_ID: bytes(data)})


def atc_advert(node: int, seq: int) -> RawAdvert:
    data = bytearray.fromhex("582d341233dc00e03e490b2c2e")
    data[12] = seq % 256
    return raw(node, seq, {atc.UUID: bytes(data)}, {})


def pvvx_advert(node: int, seq: int) -> RawAdvert:
    data = bytearray.fromhex("dc3312342d582f09aa173d0b4b7c05")
    data[13] = seq % 256
    return raw(node, seq, {atc.UUID: bytes(data)}, {})


def run(adverts: Stream) -> tuple[float, int]:
    """Seconds to decode the stream with a fresh decoder, and the records it produced."""
    decoder = AdvertDecoder()
    records = 0
    start = time.process_time()
    for advert, key in adverts:
        decoded = decoder.decode(advert, key)
        assert decoded is not None
        records += len(decoded.records)
    return time.process_time() - start, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adverts", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rows = [
        ("BTHome, plain", stream(args.adverts, plain_bthome)),
        ("BTHome, encrypted", stream(args.adverts, encrypted([bthome_ht]), keyed=True)),
        ("BTHome, encrypted mix", stream(args.adverts, encrypted(MIX), keyed=True)),
        ("Ruuvi RAWv2", stream(args.adverts, ruuvi_advert)),
        ("ATC1441", stream(args.adverts, atc_advert)),
        ("pvvx", stream(args.adverts, pvvx_advert)),
    ]
    print(f"{args.adverts:,} adverts from {NODES:,} nodes per run, median of {args.repeat} runs\n")
    print("| format | adverts/s | µs/advert | records/advert | vs 500/s |")
    print("|---|---:|---:|---:|---:|")
    for name, adverts in rows:
        run(adverts)  # warm up
        results = [run(adverts) for _ in range(args.repeat)]
        seconds = statistics.median(r[0] for r in results)
        rate = len(adverts) / seconds
        per_advert = results[0][1] / len(adverts)
        print(
            f"| {name} | {rate:,.0f} | {1e6 / rate:.1f} | {per_advert:.1f} "
            f"| {rate / SCANNER_RATE:,.0f}x |"
        )
    print(
        f"\nGoal: {GOAL}x the {SCANNER_RATE} adverts/s one scanner can hear "
        f"({GOAL * SCANNER_RATE:,}/s)."
    )


if __name__ == "__main__":
    main()
