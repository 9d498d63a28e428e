"""Encode and decode cost of every content format for a large read.

The read is what a server gets for ``GET /3303`` on a gateway exposing 1,000 temperature
instances with three resources each (Sensor Value, Sensor Units, Application Type): 3,000
values. Each figure is the median of several runs on one core; sizes are the payload bytes.

    .venv/bin/python bench/codecs.py [--instances N] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from bridged.objects.builtin import builtin_definitions
from bridged.objects.definitions import Definitions
from bridged.objects.formats import CompositeCodec, ContentFormat, codec_for
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record

GOAL_MS = 20.0
"""Encode budget for SenML CBOR and TLV on this read."""


def build_read(instances: int) -> tuple[Definitions, Path, list[Record]]:
    definitions = builtin_definitions()
    tree = ObjectTree(definitions)
    for i in range(instances):
        tree.create_instance(3303, i, [(5700, 20.0 + i / 100), (5701, "Cel"), (5750, f"node-{i}")])
    base = Path((3303,))
    return definitions, base, tree.read(base)


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm up caches and lazy imports
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    definitions, base, records = build_read(args.instances)
    print(f"Read of {base}: {args.instances} instances x 3 resources = {len(records)} values")
    print(f"{'format':<14} {'CF':>6} {'encode ms':>10} {'decode ms':>10} {'bytes':>9}  note")
    for cf in (
        ContentFormat.SENML_CBOR,
        ContentFormat.TLV,
        ContentFormat.LWM2M_CBOR,
        ContentFormat.SENML_JSON,
        ContentFormat.LWM2M_JSON,
        ContentFormat.TEXT,
        ContentFormat.OPAQUE,
        ContentFormat.CBOR,
    ):
        codec = codec_for(cf)
        if cf in (ContentFormat.TEXT, ContentFormat.OPAQUE, ContentFormat.CBOR):
            print(f"{cf.name:<14} {int(cf):>6} {'-':>10} {'-':>10} {'-':>9}  one value per payload")
            continue
        payload = codec.encode(records, base, definitions)
        assert codec.decode(payload, base, definitions) == records, f"{cf.name} does not round-trip"
        enc = median_ms(lambda c=codec: c.encode(records, base, definitions), args.repeat)
        dec = median_ms(lambda c=codec, p=payload: c.decode(p, base, definitions), args.repeat)
        note = ""
        if cf in (ContentFormat.SENML_CBOR, ContentFormat.TLV):
            note = f"encode at {enc / GOAL_MS:.0%} of the {GOAL_MS:.0f} ms budget"
        elif isinstance(codec, CompositeCodec):
            note = "composite-capable"
        print(f"{cf.name:<14} {int(cf):>6} {enc:>10.2f} {dec:>10.2f} {len(payload):>9}  {note}")


if __name__ == "__main__":
    main()
