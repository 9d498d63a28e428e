"""Idle means asleep (DESIGN, invariants): the whole gateway, registered to a server, with a
paired node that is quiet, arms no timer but its deadlines, none of which is due within a
second; a reading that arrives then is committed and reaches the server by Send, and the
gateway is asleep again after it.

The server runs in a thread of its own, with its own event loop, so that the loop under test
holds the gateway's timers only. Nothing here waits for time to pass: the timers are read
from the loop's heap once every task waits (tests/timers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiocoap.numbers.codes import Code
from clients import free_udp_port
from timers import armed, due_within, settled

from bridged import daemon, service
from bridged.app import Gateway
from bridged.config import load
from bridged.objects.paths import Path as LwPath
from bridged.objects.values import Record
from bridged.registry import COMMIT_WINDOW
from bridged.store.readings import ReadingStore
from bridged.transports.nodes import NodeId
from peers.lwm2m_server import LwM2MTestServer

NODE = NodeId("sim", "0001")
TEMPERATURE = LwPath((3303, 0, 5700))


@contextlib.contextmanager
def server_in_thread() -> Iterator[LwM2MTestServer]:
    """The in-repo LwM2M test server on an event loop in another thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-server", daemon=True)
    thread.start()
    server = LwM2MTestServer()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
        yield server
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def config_file(tmp: Path, uri: str) -> Path:
    path = tmp / "bridged.toml"
    path.write_text(f"""
[gateway]
endpoint = "gw-idle"
state_dir = "{tmp / "state"}"
runtime_dir = "{tmp / "run"}"
bind_address = "127.0.0.1"

[[server]]
uri = "{uri}"
lifetime = 300
request_timeout = 10
""")
    return path


async def until(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def delivered(server: LwM2MTestServer, value: float) -> bool:
    return any(
        r.value == value
        for e in list(server.history)
        if e.kind == "send" and e.code == Code.CHANGED
        for r in e.records
    )


async def test_an_idle_gateway_arms_only_deadlines_and_still_delivers(tmp_path: Path) -> None:
    with server_in_thread() as server:
        drifts: list[int] = []
        gw = Gateway(
            load(config_file(tmp_path, server.uri)),
            on_drift=lambda: drifts.append(gw.delivery.backlog(1)),
        )
        await gw.pair(NODE, name="porch")
        gw.registry.objects(NODE, {3303: [0]})  # quiet: no transport runs it
        await gw.start()
        try:
            await until(lambda: bool(gw.client.sessions) and gw.client.sessions[0].registered)
            await settled()
            assert due_within(1.0) == [], armed()
            # The registry's group commit and delivery run, waiting for work without a timer.
            tasks = {t.get_name() for t in asyncio.all_tasks() if not t.done()}
            assert {"registry", "delivery-1", "command-expiry"} <= tasks
            drifts.clear()

            gw.registry.readings(NODE, [Record(TEMPERATURE, 21.25)])
            # The reading armed the group commit (the one timer due) and waits for it.
            (commit,) = due_within(1.0)
            assert commit.when() - asyncio.get_running_loop().time() <= COMMIT_WINDOW
            await until(lambda: committed(tmp_path) == [21.25])
            await until(lambda: delivered(server, 21.25))
            await until(lambda: gw.delivery.backlog(1) == 0)
            await settled()
            assert due_within(1.0) == [], armed()
            # The status line's counts were said to move (the reading waiting, then
            # delivered), so that the daemon need not ask while idle.
            assert drifts[0] == 1 and drifts[-1] == 0, drifts
        finally:
            await gw.stop()


def committed(tmp_path: Path) -> list[object]:
    """The node's last values as a second connection (a restarted gateway) sees them."""
    with contextlib.closing(sqlite3.connect(tmp_path / "state" / "state.db")) as other:
        last = ReadingStore(other).last_values()
        return [record.value for records in last.values() for record in records]


async def test_the_idle_daemons_watchdog_works_out_no_status_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog's ping is an idle daemon's one wake-up: it proves that the daemon works
    and does nothing more. The STATUS= line (the whole gateway's summary, SQLite reads among
    it) is worked out when the summary changed (``StatusUpdates``), so not while idle; it was
    worked out at every ping, most of the ping's CPU."""
    path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(path))
    notify.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # a ping every 0.05 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    worked_out: list[str] = []

    def line(status: Mapping[str, Any]) -> str:
        worked_out.append(service.status_line(status))
        return worked_out[-1]

    monkeypatch.setattr(daemon, "status_line", line)
    loop = asyncio.get_running_loop()

    async def next_message() -> dict[str, str]:
        data = await asyncio.wait_for(loop.sock_recv(notify, 4096), 30)
        return dict(f.split("=", 1) for f in data.decode().splitlines())

    with server_in_thread() as server, contextlib.closing(notify):
        d = daemon.Daemon(load(config_file(tmp_path, server.uri)))
        task = asyncio.create_task(d.run())
        try:
            while not (await next_message()).get("STATUS", "").startswith("registered to"):
                pass
            before = len(worked_out)
            pings = 0
            while pings < 10:
                pings += (await next_message()).get("WATCHDOG") == "1"
            assert worked_out[before:] == []
        finally:
            d.request_stop()
            assert await task == 0


async def test_register_retries_toward_a_server_that_is_down_change_no_status(
    tmp_path: Path,
) -> None:
    """A Register retried toward a server that is down leaves the status summary as it was
    (retrying, the same server): the first failure changes it, the retries that follow do
    not, so an idle gateway does not work the summary out again at each retry."""
    changes: list[int] = []
    config = config_file(tmp_path, f"coap://127.0.0.1:{free_udp_port()}")
    config.write_text(config.read_text() + "retry_timer = 0.05\nretry_count = 5\n")
    gw = Gateway(load(config), on_change=lambda: changes.append(len(changes)))
    registrations = gw.events.subscribe(["registration"])
    await gw.start()
    try:
        failed = []  # the changes counted when each failure was told
        async with asyncio.timeout(30):
            while len(failed) < 3:
                event = await registrations.get()
                assert event is not None
                if event.data["event"] == "registration-failure":
                    failed.append(len(changes))
        assert failed == [failed[0]] * 3, failed
    finally:
        registrations.close()
        await gw.stop()
