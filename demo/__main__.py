"""``python -m demo [--seconds N]`` (run from the repository root, with PYTHONPATH=tests).

Every way out stops everything in order: Ctrl-C, SIGTERM, closing the terminal (SIGHUP), the
demo's parent dying (``make`` killed: the kernel sends the demo SIGTERM) and the end of
``--seconds``. The daemon gets SIGTERM and de-registers, then the emulated nodes, bluetoothd and
dbus-daemon, the RCP emulator and the LwM2M server stop, and the temp dir goes; the exit status
is 0. The children run in sessions of their own, so a signal meant for the terminal's processes
reaches only the demo, which stops them itself; a terminal that is gone gets no more output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from emulators.bluez import BluezError
from emulators.world import World, ble_unavailable

from bridged.trial import run_until, stop_on_signals
from peers.lwm2m_server import LwM2MTestServer

from .run import Demo, DemoFailed, Screen, log_tail, out_of_sight
from .view import ServerView

PR_SET_PDEATHSIG = 1
"""prctl(2): the signal the kernel sends this process when its parent dies."""


def stop_with_parent() -> bool:
    """Have the kernel send SIGTERM when the parent (``make``, a shell) dies; False when it
    died already (the demo was reparented before the request took effect)."""
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return True  # refused (not expected on Linux): the other ways out still stop it
    return os.getppid() == parent


@contextlib.contextmanager
def own_log(path: Path) -> Iterator[None]:
    """The demo process's own log (the emulated nodes' refused Registers, ...) goes to a file
    rather than garble the screen, and nowhere once the temp dir is gone."""
    root = logging.getLogger()
    handler = logging.FileHandler(path)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        root.addHandler(logging.NullHandler())


async def demo(seconds: float | None) -> int:
    stop = stop_on_signals()
    if not stop_with_parent():
        stop.set()
    screen = Screen(ServerView(), sys.stdout, sys.stdout.isatty())
    missing = ble_unavailable()
    failed: str | None = None
    with (
        tempfile.TemporaryDirectory(prefix="bridged-demo-") as tmp,
        own_log(Path(tmp) / "demo.log"),
    ):
        async with LwM2MTestServer() as server, contextlib.AsyncExitStack() as stack:
            try:
                world = await stack.enter_async_context(World(Path(tmp), ble=missing is None))
            except (BluezError, OSError, TimeoutError) as e:
                if missing is not None:
                    raise
                missing = f"the BlueZ emulation did not start ({e or type(e).__name__})"
                world = await stack.enter_async_context(World(Path(tmp)))
            shown = Demo(server, world, screen)
            try:
                await run_until(stop, shown.run(seconds, missing))
            except (DemoFailed, RuntimeError, TimeoutError, OSError) as e:
                failed = str(e) or type(e).__name__
            status = await shown.shutdown()
            tail = log_tail(shown.daemon) if failed or status else []
    screen.say("emulators, dbus-daemon and the LwM2M server stopped; temp dir removed")
    if failed or status:
        why = failed or f"bridged exited with status {status}"
        with out_of_sight(sys.stderr):
            print(f"demo failed: {why}", file=sys.stderr)
            print("\n".join(f"  bridged: {line}" for line in tail), file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, help="show live values this long, then stop as on Ctrl-C"
    )
    args = parser.parse_args(argv)
    return asyncio.run(demo(args.seconds))


if __name__ == "__main__":
    sys.exit(main())
