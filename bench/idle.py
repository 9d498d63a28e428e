"""An idle gateway: the real daemon as a process, how often it wakes up and how much CPU it takes
while nothing happens.

The daemon (``python -m bridged.daemon --config ...``) runs as systemd runs it from the
package's unit: ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` (30 s, ``WatchdogSec=30s``), so the
watchdog ping and the STATUS= line are part of the figure. Once it is up (READY=1, and
registered where a server is reachable) and a few seconds have passed, /proc is read twice,
``--seconds`` apart (60 by default): every thread's voluntary and involuntary context switches
(a thread that sleeps and wakes switches at least once per wake-up, so these count wake-ups)
and the process's CPU time (user and system).

Scenarios (``--scenarios``):

* ``unreachable``: no node, no radio, one server that nothing answers (a closed port on
  127.0.0.1): the registration is retried on its schedule (``retry_timer``, 60 s by default);
* ``registered``: 100 paired nodes that are quiet (paired in the state database, no transport
  runs them, so none reports), registered to the in-repo LwM2M test server in a process of its
  own, which observes nothing;
* ``radio``: no node, the 802.15.4 transport up on the RCP emulator (a pty, this process
  plays the dongle), the server reachable: the radio's reader thread and the transport idle.

Left out: the simulated transport (its own timers simulate nodes that report), BLE (BlueZ's
scanner is a D-Bus service, and a scan restarts after ``silence`` seconds without an advert),
nodes that report and servers that observe (a due notification is work), and the wake-ups of
other processes (the server's, dbus-daemon's, the kernel's).

``--daemon-python`` runs the daemon with another interpreter (another checkout's venv), to
measure before and after in one run on the same machine.

    .venv/bin/python bench/idle.py [--seconds 60] [--scenarios unreachable,registered,radio]
                                   [--daemon-python /path/to/other/.venv/bin/python]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from daemon_proc import Daemon, Server, compile_bytecode, config_text, pair_nodes, sample, wakeups

GOAL_WAKEUPS = 1.0
GOAL_CPU_PERCENT = 0.05
SETTLE = 5.0
"""Seconds after start-up before the measurement: registration, the first Update."""
SCENARIOS = ("unreachable", "registered", "radio")
PAIRED = 100


def closed_port() -> int:
    """A UDP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def measure(scenario: str, seconds: float, server: Server, python: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        state = Path(tmp)
        extra = ""
        uri = server.uri
        async with contextlib_rcp(scenario, state) as rcp_link:
            if scenario == "unreachable":
                uri = f"coap://127.0.0.1:{closed_port()}"
            elif scenario == "registered":
                pair_nodes(state, PAIRED)
            if rcp_link is not None:
                extra = f'\n[transport.802154]\nport = "{rcp_link}"\npan_id = 0xface\n'
            daemon = Daemon(state, config_text(state, uri, extra=extra), python=python)
            try:
                await asyncio.to_thread(daemon.wait_notify, "READY", 120)
                if scenario != "unreachable":
                    await asyncio.to_thread(server.next, "registered", 120)
                await asyncio.sleep(SETTLE)
                before = sample(daemon.pid)
                await asyncio.sleep(seconds)
                after = sample(daemon.pid)
                if daemon.proc.poll() is not None:
                    raise RuntimeError(f"the daemon ended early: {daemon.log.read_text()}")
            finally:
                daemon.stop()
    rate, threads = wakeups(before, after)
    cpu = (after.cpu - before.cpu) / (after.at - before.at) * 100
    return {"wakeups": rate, "threads": threads, "cpu": cpu, "rss": after.rss_mb}


class contextlib_rcp:
    """The RCP emulator on a pty for the ``radio`` scenario (None for the others)."""

    def __init__(self, scenario: str, state: Path) -> None:
        self.emulator: Any = None
        if scenario == "radio":
            from emulators.rcp import RcpEmulator

            self.emulator = RcpEmulator(state / "ttyRCP")

    async def __aenter__(self) -> Path | None:
        if self.emulator is None:
            return None
        await self.emulator.__aenter__()
        return Path(self.emulator.link)

    async def __aexit__(self, *exc: object) -> None:
        if self.emulator is not None:
            await self.emulator.__aexit__(*exc)


async def run(args: argparse.Namespace) -> None:
    pythons = [("after", sys.executable)]
    if args.daemon_python:
        pythons.insert(0, ("before", args.daemon_python))
    for _, python in pythons:
        compile_bytecode(python)  # a module imported while idle is not compiled in the measure
    print(f"{args.seconds:g} s per scenario; goals: ≤ {GOAL_WAKEUPS:g} wake-up per second,")
    print(f"< {GOAL_CPU_PERCENT:g} % of a core.\n")
    print("| scenario | daemon | wake-ups/s | CPU % of a core | threads | RSS MB |")
    print("|---|---|---:|---:|---:|---:|")
    server = await asyncio.to_thread(Server)
    try:
        for scenario in args.scenarios:
            for label, python in pythons:
                r = await measure(scenario, args.seconds, server, python)
                print(
                    f"| {scenario} | {label if args.daemon_python else 'this'} "
                    f"| {r['wakeups']:.2f} | {r['cpu']:.3f} | {r['threads']} | {r['rss']:.1f} |",
                    flush=True,
                )
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--daemon-python", help="the interpreter of another checkout's venv")
    args = parser.parse_args()
    args.scenarios = args.scenarios.split(",")
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    started = time.monotonic()
    asyncio.run(run(args))
    print(f"\n({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
