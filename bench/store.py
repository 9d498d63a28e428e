"""What the reading store costs per reading: the group commit's SQLite and ``sqlite3`` part.

``ReadingStore.append`` of batches of readings of N paired nodes (one temperature each, round
robin, as ``bench/readings.py`` feeds them) and ``ack`` of every Send's worth of them (what
Delivery does once a Send is acknowledged: the cursor moved, the delivered rows' last values
written and the rows deleted), on a state database in a temporary directory (WAL, as the
daemon's). Left out: everything before the store (the registry, the exposure), the Send, and
the nodes' health, which the group commit writes at most once a minute
(``bridged.health.SAVE_EVERY``).

Figures per reading: with ``--callgrind``, the instructions callgrind counts for the
measured appends less those of a run with none (the start: imports, the database, the warm-up
appends), divided by the readings: stable under a shared machine's load; without it, CPU µs
(``time.process_time``), which a shared machine's load moves.

    .venv/bin/python bench/store.py [--nodes 100] [--shapes 2000:222,5:50] [--readings 20000]
                                    [--callgrind]

A shape is ``readings per commit:readings per Send``: 2000:222 is the maximum's batch shapes
(see docs/benchmarks.md, the callgrind run at the maximum's batch shapes), 5:50 about 100
reports a second.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path as FilePath

HERE = FilePath(__file__).resolve()


def run(
    nodes: int, per_commit: int, per_send: int, total: int, state: FilePath, *, store_them: bool
) -> float:
    """Make ``total`` readings in batches, then (``store_them``) append them after a warm-up of
    one commit and ack them as Delivery would; returns the CPU seconds of the appends and
    acks."""
    from bridged.objects.values import Record
    from bridged.store.database import connect
    from bridged.store.nodes import NodeStore
    from bridged.store.readings import ReadingStore, Row
    from bridged.transports.nodes import NodeId, PairedNode
    from bridged.transports.simulated import TEMPERATURE

    conn = connect(state / "state.db")
    paired = NodeStore(conn)
    ids = [NodeId("sim", f"{i + 1:04d}") for i in range(nodes)]
    for node in ids:
        paired.pair(PairedNode(node, f"node {node.address}", "sim"))
    store = ReadingStore(conn)
    store.add_consumer("server")
    now = time.time()
    batches = [
        [
            (ids[k % nodes], Record(TEMPERATURE, 20.0 + k % 7, now + k * 1e-3))
            for k in range(first, first + per_commit)
        ]
        for first in range(0, total + per_commit, per_commit)
    ]

    def commit(batch: list[Row]) -> None:
        store.append(batch)
        while store.waiting("server") >= per_send:
            store.ack("server", store.pending("server", per_send).last)

    commit(batches[0])  # the warm-up: statements prepared, pages read
    cpu = time.process_time()
    if store_them:
        for batch in batches[1:]:
            commit(batch)
    return time.process_time() - cpu


def instructions(args: list[str], log: FilePath) -> int:
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            f"--log-file={log}",
            sys.executable,
            str(HERE),
            *args,
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict layouts in both runs
    )
    found = re.search(r"Collected : (\d+)", log.read_text())
    if found is None:
        raise RuntimeError(f"no instruction total in {log}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--shapes", default="2000:222,5:50")
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a shape run in this process
    args = parser.parse_args()
    if args.one:
        per_commit, per_send, total, store_them = map(int, args.one.split(":"))
        with tempfile.TemporaryDirectory() as tmp:
            cpu = run(
                args.nodes, per_commit, per_send, total, FilePath(tmp), store_them=bool(store_them)
            )
            print(cpu)
        return
    print(
        "| readings per commit | readings per Send | nodes | "
        + ("instructions per reading |" if args.callgrind else "CPU µs per reading |")
    )
    print("|---:|---:|---:|---:|")
    for shape in args.shapes.split(","):
        per_commit, per_send = map(int, shape.split(":"))
        total = args.readings // per_commit * per_commit
        if args.callgrind:
            with tempfile.TemporaryDirectory() as tmp:
                log = FilePath(tmp) / "callgrind.log"
                common = ["--nodes", str(args.nodes), "--one"]
                some = instructions([*common, f"{per_commit}:{per_send}:{total}:1"], log)
                none = instructions([*common, f"{per_commit}:{per_send}:{total}:0"], log)
            figure = f"{(some - none) / total / 1000:.1f} k"
        else:
            with tempfile.TemporaryDirectory() as tmp:
                cpu = run(args.nodes, per_commit, per_send, total, FilePath(tmp), store_them=True)
            figure = f"{cpu / total * 1e6:.1f}"
        print(f"| {per_commit} | {per_send} | {args.nodes} | {figure} |")


if __name__ == "__main__":
    main()
