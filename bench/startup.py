"""Start-up with many paired nodes: the real daemon, from exec to registered, and its memory.

N simulated nodes are paired in a fresh state database (SQLite, as the daemon keeps them: the
node row and the objects its transport reported, 3 objects each), with the daemon not
running. Then ``bridged --config`` is started as a process against the in-repo LwM2M test
server (a process of its own) and measured twice:

* **first start**: the nodes have no instance IDs yet, so the start allocates every node's
  stable IDs (instances mode: 3 per node; gateway mode: a /25 instance and a prefix);
* **restart**: the same state database after a clean stop (SIGTERM): every ID is found.

*ready* is the time from exec to the daemon's READY=1 (systemd's notify socket), *registered*
from exec to the server holding the Register (every instance in its object list), both on the
system-wide monotonic clock; *CPU* is the daemon's CPU time (user and system) until the
server had it registered, which a busy machine does not inflate as it does the wall clock; RSS
is the daemon's after registering, peak its high-water mark.
Goals: under 1 s to registered with 5,000 nodes, at most 64 MB RSS with 10,000.

In the endpoints mode (one endpoint per node, each registering at the pace
``endpoints_concurrency`` allows) *registered* is when the server holds the last of the
gateway's and every node endpoint's Registers, and the daemon's own endpoint clients are
measured (bench/nodes.py builds its own).

Left out: the transports (no radio is configured, so the nodes are quiet and nothing reports
a reading), the nodes' last values (none stored) and Python's own start (included in both
figures: the interpreter and the imports are part of a start; the bytecode compiled first, as
the package's postinst compiles it: ``daemon_proc.compile_bytecode``).

``--daemon-python`` runs the daemon with another interpreter too (another checkout's venv),
to measure before and after in one run on the same machine. Each daemon gets the environment
its own checkout's packaged unit sets (``daemon_proc.unit_environment``: glibc's malloc
tunables, which a daemon's memory depends on).

    .venv/bin/python bench/startup.py [--counts 5000,10000] [--modes instances,gateway,endpoints]
                                      [--daemon-python /path/to/other/.venv/bin/python]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from daemon_proc import Daemon, Server, compile_bytecode, config_text, pair_nodes, sample

GOAL_SECONDS = 1.0
GOAL_RSS_MB = 64.0
TIMEOUT = 600.0


def start(state: Path, server: Server, mode: str, count: int, python: str) -> dict[str, Any]:
    daemon = Daemon(state, config_text(state, server.uri, exposure=mode), python=python)
    try:
        ready, _ = daemon.wait_notify("READY", TIMEOUT)
        # The gateway's Register, and in the endpoints mode every node endpoint's too.
        for _ in range(count + 1 if mode == "endpoints" else 1):
            registered = server.next("registered", TIMEOUT)["at"]
        after = sample(daemon.pid)
    finally:
        code = daemon.stop()
    if code != 0:
        raise RuntimeError(f"the daemon exited {code} (see {daemon.log})")
    return {
        "ready": ready - daemon.started,
        "registered": registered - daemon.started,
        "cpu": after.cpu,
        "rss": after.rss_mb,
        "peak": after.hwm_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="5000,10000")
    parser.add_argument("--modes", default="instances,gateway", help="and endpoints")
    parser.add_argument("--daemon-python", help="the interpreter of another checkout's venv")
    args = parser.parse_args()
    pythons = [("after" if args.daemon_python else "this", sys.executable)]
    if args.daemon_python:
        pythons.insert(0, ("before", args.daemon_python))
    for _, python in pythons:
        compile_bytecode(python)
    counts = [int(c) for c in args.counts.split(",")]
    modes = args.modes.split(",")
    print(f"Goals: registered in < {GOAL_SECONDS:g} s with 5,000 nodes; ≤ {GOAL_RSS_MB:g} MB")
    print("RSS with 10,000.\n")
    print(
        "| mode | nodes | daemon | start | ready s | registered s | CPU s | RSS MB | peak RSS MB |"
    )
    print("|---|---:|---|---|---:|---:|---:|---:|---:|")
    server = Server()
    try:
        for mode in modes:
            for count in counts:
                for label, python in pythons:
                    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
                        state = Path(tmp)
                        pair_nodes(state, count)
                        for which in ("first start", "restart"):
                            r = start(state, server, mode, count, python)
                            print(
                                f"| {mode} | {count:,} | {label} | {which} | {r['ready']:.2f} "
                                f"| {r['registered']:.2f} | {r['cpu']:.2f} | {r['rss']:.1f} "
                                f"| {r['peak']:.1f} |",
                                flush=True,
                            )
    finally:
        server.close()


if __name__ == "__main__":
    sys.exit(main())
