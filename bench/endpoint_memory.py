"""What each node endpoint costs in the real daemon (the endpoints mode), by where it was
allocated: the daemon traced from its start (``tracemalloc``, one frame), after every endpoint
registered, at two counts of paired nodes; the difference divided by the difference in
nodes is what one more endpoint holds (issue 17: 10,000 endpoints in at most 64 MB).

Each daemon is started as ``bench/startup.py`` starts it (``daemon_proc``: its own process,
the packaged unit's environment, the in-repo test server in a process of its own), through
this module (``--daemon``), which installs a SIGUSR1 handler that writes a snapshot and then
runs ``bridged.daemon``. Tracing roughly doubles the daemon's memory and slows it: the
figures are the allocations Python makes, not RSS (``bench/startup.py`` measures that).
Shared with the nodes the other modes keep (the registry's node, its health) is counted too.

    .venv/bin/python bench/endpoint_memory.py [--counts 1000,2000] [--top 40]
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve()
SNAPSHOT = "BENCH_SNAPSHOT"
"""The variable that names where the traced daemon writes its snapshot."""


def daemon() -> None:
    """Run ``bridged.daemon`` with the rest of the arguments; SIGUSR1 writes a snapshot of
    what is allocated (after a collection) to ``$BENCH_SNAPSHOT``, then its ``.done``."""
    out = Path(os.environ[SNAPSHOT])

    def snapshot(signum: int, frame: FrameType | None) -> None:
        import gc

        gc.collect()
        tracemalloc.take_snapshot().dump(str(out))
        out.with_suffix(".done").touch()

    signal.signal(signal.SIGUSR1, snapshot)
    sys.argv = ["bridged", *sys.argv[2:]]
    runpy.run_module("bridged.daemon", run_name="__main__", alter_sys=True)


def traced(count: int, server: object, out: Path) -> tracemalloc.Snapshot:
    """The snapshot of a daemon with ``count`` paired nodes, each registered."""
    from daemon_proc import Daemon, config_text, pair_nodes

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        state = Path(tmp)
        pair_nodes(state, count)
        d = Daemon(
            state,
            config_text(state, server.uri, exposure="endpoints"),  # type: ignore[attr-defined]
            run=(str(HERE), "--daemon"),
            extra_env={"PYTHONTRACEMALLOC": "1", SNAPSHOT: str(out)},
        )
        try:
            d.wait_notify("READY", 600)
            for _ in range(count + 1):  # the gateway's Register and every endpoint's
                server.next("registered", 600)  # type: ignore[attr-defined]
            os.kill(d.pid, signal.SIGUSR1)
            deadline = time.monotonic() + 300
            while not out.with_suffix(".done").exists():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no snapshot from the daemon (see {d.log})")
                time.sleep(0.2)
        finally:
            d.stop()
    return tracemalloc.Snapshot.load(str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1000,2000", help="two counts of paired nodes")
    parser.add_argument("--top", type=int, default=40, help="lines of the code shown")
    args = parser.parse_args()
    low, high = (int(c) for c in args.counts.split(","))
    sys.path.insert(0, str(HERE.parent))
    from daemon_proc import Server, compile_bytecode

    compile_bytecode(sys.executable)
    server = Server()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-memory-out-") as tmp:
            before = traced(low, server, Path(tmp) / f"{low}.snapshot")
            after = traced(high, server, Path(tmp) / f"{high}.snapshot")
    finally:
        server.close()
    stats = after.compare_to(before, "lineno")
    nodes = high - low
    print(f"Bytes per endpoint: {sum(s.size_diff for s in stats) / nodes:,.0f} (traced)\n")
    print("| bytes | blocks | where |")
    print("|---:|---:|---|")
    root = str(HERE.parent.parent) + os.sep
    for s in stats[: args.top]:
        frame = s.traceback[0]
        where = frame.filename.removeprefix(root)
        print(
            f"| {s.size_diff / nodes:,.0f} | {s.count_diff / nodes:.2f} | {where}:{frame.lineno} |"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--daemon"]:
        daemon()
    else:
        sys.exit(main())
