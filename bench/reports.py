"""What one report costs between a transport and the store: the node registry's events, the
exposure's tree update and observation checks, node health, the event hub, in each mode.

A report is what the simulated transport makes of one reading: ``heard``, ``state`` and
``readings`` (one temperature with its time) told to the node registry's ``TransportEvents``,
round robin over N paired nodes, in the real ``Gateway`` (bridged/app.py) built from a
configuration file. The SQLite commit of each report is left out (the store's ``append`` is
replaced by one that keeps nothing, and Delivery is not told): ``bench/readings.py`` measures
the whole path, the commit and Send included; this one isolates the part before them, which
runs for every report whatever becomes of it.

Figures per report: CPU µs (``time.process_time``, the median of 3 rounds of N reports) and,
with ``--callgrind``, the instructions callgrind counts for N reports less those of a run of
none (the gateway's start and stop), divided by N: stable under a shared machine's load.

    .venv/bin/python bench/reports.py [--modes instances,gateway,endpoints] [--nodes 100]
                                      [--reports 3000] [--commit-every N] [--callgrind]

A round's reports are fed in one turn of the event loop, so they share one commit, and each
node's events of the round are one news for the node health model (as at the maximum rate,
where a commit window holds many reports of each node); ``--commit-every N`` commits after
every N reports instead (N = the nodes: each report is its node's news, as at 100 reports/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path as FilePath

HERE = FilePath(__file__).resolve()
ROUNDS = 3

CONFIG = """
[gateway]
endpoint = "bench-reports"
state_dir = "{state}/state"
runtime_dir = "{state}/run"
bind_address = "127.0.0.1"
exposure = "{mode}"

[[server]]
uri = "coap://127.0.0.1:9"
lifetime = 86400

[log]
level = "error"
"""
"""A server nobody answers: the gateway never registers, which changes nothing of a report's
path (the tree's listeners are the client's and the observations' either way)."""


async def feed(
    mode: str, count: int, total: int, rounds: int, state: FilePath, every: int = 0
) -> None:
    """Build the gateway with ``count`` paired nodes, feed ``rounds`` rounds of ``total``
    reports, print the CPU µs per report of each round (JSON)."""
    from bridged.app import DATABASE, Gateway
    from bridged.config import load
    from bridged.objects.values import Record
    from bridged.store.database import connect
    from bridged.store.nodes import NodeStore
    from bridged.transports.base import Heard, NodeState
    from bridged.transports.nodes import NodeId, PairedNode
    from bridged.transports.simulated import TEMPERATURE

    logging.basicConfig(level=logging.CRITICAL)
    (state / "state").mkdir(mode=0o700)
    (state / "run").mkdir(mode=0o700)
    conn = connect(state / "state" / DATABASE)
    store = NodeStore(conn)
    nodes = [NodeId("sim", f"{i + 1:04d}") for i in range(count)]
    for node in nodes:
        store.pair(PairedNode(node, f"node {node.address}", "sim"))
        store.set_objects(node, {3303: [0]})
    conn.close()
    path = state / "bridged.toml"
    path.write_text(CONFIG.format(state=state, mode=mode))
    gw = Gateway(load(path))
    await gw.start()
    registry = gw.registry
    registry.readings_store.append = lambda batch, unstored=0: None  # type: ignore[method-assign]
    for hook in list(registry._commit_hooks):  # Delivery: bench/readings.py's part
        registry._commit_hooks.discard(hook)
    times = []
    k = 0
    for _ in range(rounds):
        cpu0 = time.process_time()
        for _ in range(total):
            node = nodes[k % count]
            now = time.time()
            record = Record(TEMPERATURE, float(k), now)
            registry.heard(Heard(node, now, node.address, -60, "sim", (record,)))
            registry.state(node, NodeState(True, now, rssi=-60))
            registry.readings(node, [record])
            if every and k % every == every - 1:
                registry.flush()
            k += 1
        times.append((time.process_time() - cpu0) / max(total, 1) * 1e6)
        await asyncio.sleep(0)
    await gw.stop()
    print(json.dumps({"us": times}), flush=True)


def child(
    mode: str, count: int, total: int, rounds: int, valgrind: FilePath | None, every: int = 0
) -> str:
    """Run ``feed`` in a process of its own (under callgrind when ``valgrind`` is its log)."""
    with tempfile.TemporaryDirectory() as state:
        command = [sys.executable, str(HERE), "--feed", mode, str(count), str(total), str(rounds)]
        command += [state, str(every)]
        if valgrind is not None:
            command = [
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                f"--log-file={valgrind}",
                *command,
            ]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def instructions(mode: str, count: int, total: int, every: int = 0) -> float:
    """Instructions per report: a run of ``total`` reports less a run of none, over ``total``."""
    counted = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (0, total):
            log = FilePath(tmp) / f"{n}.log"
            child(mode, count, n, 1, log, every)
            match = re.search(r"Collected : (\d+)", log.read_text())
            if match is None:
                raise RuntimeError(f"no instruction total in {log}")
            counted.append(int(match.group(1)))
    return (counted[1] - counted[0]) / total


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--feed":
        mode, count, total, rounds, state, every = sys.argv[2:8]
        asyncio.run(feed(mode, int(count), int(total), int(rounds), FilePath(state), int(every)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default="instances,gateway,endpoints")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--reports", type=int, default=3000, help="per round")
    parser.add_argument(
        "--commit-every", type=int, default=0, help="reports per commit (0: one per round)"
    )
    parser.add_argument("--callgrind", action="store_true", help="add instructions per report")
    args = parser.parse_args()
    print(
        "| mode | nodes | µs per report (CPU) |"
        + (" instructions per report |" if args.callgrind else "")
    )
    print("|---|---:|---:|" + ("---:|" if args.callgrind else ""))
    for mode in args.modes.split(","):
        every = args.commit_every
        out = json.loads(
            child(mode, args.nodes, args.reports, ROUNDS, None, every).splitlines()[-1]
        )
        cell = ""
        if args.callgrind:
            cell = f" {instructions(mode, args.nodes, args.reports, every) / 1000:,.0f} k |"
        print(
            f"| {mode} | {args.nodes:,} | {statistics.median(out['us']):.1f} |" + cell, flush=True
        )


if __name__ == "__main__":
    main()
