"""Delivery's batch alone: the gateway's instructions to make a Send's batch of stored readings
and its payload (``Delivery._batch``), per record, under callgrind.

One process, run under valgrind with instrumentation off at the start (the default runs it
so). Readings as the maximum's batches hold them (``bench/readings.py --rates max``): 100
nodes paired in the instances mode's mapping (a ``PathMap`` with each node's /3303/0 shown at
/3303/1 to /3303/100), one temperature reading per report, round robin, each with its own
``time.time()``-like time; ``--batches`` batches of ``--records`` pending readings (222: the
callgrind run's records per Send), made before the measure. Each is handed to
``Delivery._batch`` as Delivery's serve loop does; what is counted is the whole of it: each
reading's route, mapping and checks, the cuts to the Send's bounds and whole Block1 blocks,
and the SenML CBOR payload. One batch before the measure (a warm-up: the first is where a
node path is mapped and checked for the first time). Left out: reading the store, the Send's
exchange (``bench/sends.py``), the acknowledgement.

    .venv/bin/python bench/batch.py [--batches 30] [--records 222]
"""

from __future__ import annotations

import argparse
import json
import os
import random
from dataclasses import dataclass
from typing import Any

import callgrind_run

NODES = 100


def measure(batches: int, records: int) -> None:
    """The batches, instrumented (this process runs under callgrind)."""
    from bridged.delivery import Delivery
    from bridged.engine.client import ServerConfig
    from bridged.exposure.mapping import PathMap, Shown
    from bridged.objects.builtin import builtin_definitions
    from bridged.objects.paths import Path
    from bridged.objects.tree import ObjectTree
    from bridged.objects.values import Record
    from bridged.store.database import connect
    from bridged.store.nodes import NodeId
    from bridged.store.readings import Pending, ReadingStore

    @dataclass(eq=False)
    class Session:  # what a batch asks of a registered session
        tree: ObjectTree
        short_server_id: int = 1
        registered: bool = True

    @dataclass
    class Client:
        sessions: list[Any]
        servers: tuple[ServerConfig, ...] = (ServerConfig("coap://127.0.0.1:5683"),)

    nodes = [NodeId("sim", f"{i:04d}") for i in range(NODES)]
    paths = PathMap()
    for i, node in enumerate(nodes):
        paths.show(node, Shown((3303, 0), Path((3303, i + 1))))
    temperature = Path.parse("/3303/0/5700")
    session = Session(ObjectTree(builtin_definitions()))
    store = ReadingStore(connect(":memory:"))
    delivery = Delivery(Client([session]), store, paths.upstream)  # type: ignore[arg-type]
    server = delivery.servers[1]
    rng = random.Random(1)
    t = 1.7e9
    pending = []
    for b in range(batches + 1):
        rows = []
        for k in range(records):
            t += 0.0001 * rng.random()
            node = nodes[(b * records + k) % NODES]
            rows.append((node, Record(temperature, 20.0 + rng.random(), t)))
        pending.append(Pending(range(b * records + 1, (b + 1) * records + 1), rows))
    assert delivery._batch(server, pending[0]) is not None  # the warm-up, not counted
    made = 0
    callgrind_run.instrument("on")
    for p in pending[1:]:
        batch = delivery._batch(server, p)
        assert batch is not None
        made += sum(len(part) for part in batch.parts.values())
    callgrind_run.instrument("off")
    print(json.dumps({"records": made}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--records", type=int, default=222, help="pending readings a batch")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.batches, args.records)
        return
    stdout, instructions = callgrind_run.run(
        __file__,
        ["--measure", "--batches", str(args.batches), "--records", str(args.records)],
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    made = json.loads(stdout.splitlines()[-1])["records"]
    print("| batches | pending a batch | records a Send | instructions per record |")
    print("|---:|---:|---:|---:|")
    per_batch = made / args.batches
    print(
        f"| {args.batches} | {args.records} | {per_batch:,.0f} "
        f"| {instructions / made / 1000:.1f} k |"
    )


if __name__ == "__main__":
    main()
