"""systemd notification: the watchdog period, the health-gated ping, STATUS lines, and the
notify protocol without libsystemd."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import pytest

from bridged.service import (
    Notifier,
    StatusUpdates,
    loop_lag_problem,
    run_watchdog,
    status_line,
    watchdog_interval,
)


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "43"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], interval: float | None) -> None:
    assert watchdog_interval(environ, 42) == interval


def test_loop_lag() -> None:
    assert loop_lag_problem(0.1, 1.0) is None
    assert loop_lag_problem(1.5, 1.0) == "the event loop is 1.50 s late"


@pytest.fixture
def listener(tmp_path: Path):  # type: ignore[no-untyped-def]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_notify_without_libsystemd(listener: socket.socket, tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    notifier.status("not ready yet")  # goes out with READY=1
    notifier.ready("starting")
    assert listener.recv(512) == b"READY=1\nSTATUS=starting"
    notifier.status("starting")  # unchanged: not sent again
    notifier.status("registered")
    assert listener.recv(512) == b"STATUS=registered"
    notifier.stopping()
    assert listener.recv(512).startswith(b"STOPPING=1\n")


def test_a_status_line_to_a_full_socket_is_dropped_not_waited_for(
    listener: socket.socket, tmp_path: Path
) -> None:
    """A manager that does not read its notify socket must not stop the daemon's event loop
    in ``sendto`` (the bench's unread socket froze a daemon whose 10,000 node endpoints each
    changed the status): a status line is dropped, the next one gets through."""
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    notifier.ready("starting")
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.setblocking(False)
    with filler, pytest.raises(BlockingIOError):
        while True:
            filler.sendto(b"x" * 512, str(tmp_path / "notify"))
    sent = asyncio.run(asyncio.wait_for(asyncio.to_thread(notifier.status, "busy"), 5))
    assert sent is None  # returned: it did not wait for room
    listener.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            listener.recv(1024)
    listener.setblocking(True)
    notifier.status("registered")
    assert listener.recv(512) == b"STATUS=registered"


class StatusSeen:
    """A notifier's status calls, as a stand-in for ``Notifier`` (enabled)."""

    enabled = True

    def __init__(self) -> None:
        self.lines: list[str] = []

    def status(self, line: str) -> None:
        self.lines.append(line)


class Summary:
    """A gateway summary of one count, and how often its line was worked out."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self.computed = 0

    def line(self) -> str:
        self.computed += 1
        return f"{self.count} {self.what}"


async def test_a_burst_of_changes_sends_one_status_line_of_the_settled_summary() -> None:
    """10,000 endpoints registering at a start changed the summary 10,000 times: one line,
    worked out once, with the summary after the burst."""
    seen, summary = StatusSeen(), Summary("registered")
    updates = StatusUpdates(seen, summary.line, settle=0.05)  # type: ignore[arg-type]
    for _ in range(1000):
        summary.count += 1
        updates.changed()
    async with asyncio.timeout(5):
        while not seen.lines:
            await asyncio.sleep(0.01)
    assert seen.lines == ["1000 registered"] and summary.computed == 1
    updates.changed()
    updates.close()  # the daemon stops: nothing is sent after
    await asyncio.sleep(0.1)
    assert seen.lines == ["1000 registered"]


def test_outside_systemd_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False


async def test_the_watchdog_pings_only_while_healthy(
    listener: socket.socket, tmp_path: Path
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    listener.setblocking(False)
    loop = asyncio.get_running_loop()
    problems: list[list[str]] = [[], ["the state database does not take a write"], []]
    checks = asyncio.Queue[None]()

    def health() -> list[str]:
        checks.put_nowait(None)
        return list(problems.pop(0)) if problems else ["stop"]

    task = asyncio.create_task(run_watchdog(notifier, 0.01, health, clock=lambda: 0.0))
    try:
        async with asyncio.timeout(10):
            for _ in range(4):
                await checks.get()
    finally:
        task.cancel()
    pings = []
    while True:
        try:
            pings.append(await asyncio.wait_for(loop.sock_recv(listener, 64), 0.5))
        except TimeoutError:
            break
    assert pings == [b"WATCHDOG=1", b"WATCHDOG=1"]  # the first and third checks passed


async def test_counts_that_move_send_one_line_within_the_interval() -> None:
    """The counts that move with every reading (readings waiting, nodes reachable) send a line
    within the interval, worked out once however often they moved; a change that follows
    sends it at the settle instead, and nothing is worked out while nothing moves."""
    seen, summary = StatusSeen(), Summary("waiting")
    updates = StatusUpdates(seen, summary.line, settle=0.05, interval=60)  # type: ignore[arg-type]
    for _ in range(1000):
        summary.count += 1
        updates.drifted()
    await asyncio.sleep(0.1)
    assert summary.computed == 0  # the interval has not passed
    updates.changed()
    async with asyncio.timeout(5):
        while not seen.lines:
            await asyncio.sleep(0.01)
    assert seen.lines == ["1000 waiting"] and summary.computed == 1
    updates.close()

    updates = StatusUpdates(seen, summary.line, settle=0.05, interval=0.05)  # type: ignore[arg-type]
    summary.count = 0
    updates.drifted()
    async with asyncio.timeout(5):
        while len(seen.lines) < 2:
            await asyncio.sleep(0.01)
    assert seen.lines == ["1000 waiting", "0 waiting"] and summary.computed == 2
    updates.close()


async def test_a_drift_while_a_line_is_armed_reads_no_clock_and_moves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under systemd every report's news drifts the counts: while a line is armed (by a
    change or an earlier drift), a drift returns at once, without the loop's clock, and the
    line goes when it was armed for, once."""
    loop = asyncio.get_running_loop()
    clock = loop.time
    reads = []

    def counted() -> float:
        reads.append(None)
        return clock()

    monkeypatch.setattr(loop, "time", counted)
    seen, summary = StatusSeen(), Summary("waiting")
    updates = StatusUpdates(seen, summary.line, settle=0.05, interval=60)  # type: ignore[arg-type]
    updates.changed()
    armed = len(reads)
    for _ in range(1000):
        summary.count += 1
        updates.drifted()
    assert len(reads) == armed  # not one clock read for the 1,000 drifts
    async with asyncio.timeout(5):
        while not seen.lines:
            await asyncio.sleep(0.01)
    assert seen.lines == ["1000 waiting"] and summary.computed == 1
    sent = len(reads)
    updates.drifted()  # none armed: this one arms a line again, from the clock
    assert len(reads) > sent
    updates.close()


def test_a_settle_longer_than_the_interval_is_refused() -> None:
    """``drifted`` takes an armed line as due within the interval: a settle longer than it
    would hold a drifted count back beyond the interval."""
    with pytest.raises(ValueError, match="longer than the interval"):
        StatusUpdates(StatusSeen(), Summary("x").line, settle=2, interval=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (
            {
                "lwm2m": "started",
                "servers": [{"uri": "coap://a", "registered": True}],
                "nodes": {"paired": 3, "reachable": 2},
            },
            "registered to coap://a; 3 nodes paired, 2 reachable",
        ),
        (
            {
                "lwm2m": "started",
                "servers": [
                    {"uri": "coap://a", "registered": True},
                    {"uri": "coap://b", "registered": False},
                ],
                "nodes": {"paired": 0, "reachable": 0},
            },
            "registered to 1/2 servers; 0 nodes paired, 0 reachable",
        ),
        (
            {
                "lwm2m": "started",
                "servers": [{"uri": "coap://a", "registered": False, "state": "retry-wait"}],
                "nodes": {"paired": 1, "reachable": 0},
            },
            "LwM2M retry-wait (coap://a); 1 nodes paired, 0 reachable",
        ),
        (
            {"lwm2m": "stopped", "servers": [], "nodes": {"paired": 1, "reachable": 1}},
            "LwM2M stopped; 1 nodes paired, 1 reachable",
        ),
        (
            {
                "lwm2m": "started",
                "servers": [
                    {"uri": "coap://a", "registered": True, "delivery": {"backlog": 12}},
                    {"uri": "coap://b", "registered": True, "delivery": {"backlog": 0}},
                ],
                "nodes": {"paired": 2, "reachable": 1},
                "readings": {"dropped": 3},
                "commands": {"pending": 1},
            },
            "registered to coap://a, coap://b; 2 nodes paired, 1 reachable; "
            "readings 12/0 waiting, 3 dropped; 1 commands pending",
        ),
        (
            {
                "lwm2m": "started",
                "servers": [{"uri": "coap://a", "registered": True, "delivery": None}],
                "nodes": {"paired": 3, "reachable": 3},
                "endpoints": {"nodes": 3, "states": {"registered": 2, "registering": 1}},
                "commands": {"pending": 0},
            },
            "registered to coap://a; 3 nodes paired, 3 reachable; 2/3 node endpoints registered",
        ),
    ],
)
def test_status_line(status: dict[str, object], line: str) -> None:
    assert status_line(status) == line
