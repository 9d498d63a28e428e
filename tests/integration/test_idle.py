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
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from aiocoap.numbers.codes import Code
from timers import armed, due_within, settled

from bridged.app import Gateway
from bridged.config import load
from bridged.objects.paths import Path as LwPath
from bridged.objects.values import Record
from bridged.registry import COMMIT_WINDOW
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
        gw = Gateway(load(config_file(tmp_path, server.uri)))
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

            gw.registry.readings(NODE, [Record(TEMPERATURE, 21.25)])
            # The reading armed the group commit (the one timer due) and waits for it.
            (commit,) = due_within(1.0)
            assert commit.when() - asyncio.get_running_loop().time() <= COMMIT_WINDOW
            await until(lambda: committed(tmp_path) == [(21.25,)])
            await until(lambda: delivered(server, 21.25))
            await until(lambda: gw.delivery.backlog(1) == 0)
            await settled()
            assert due_within(1.0) == [], armed()
        finally:
            await gw.stop()


def committed(tmp_path: Path) -> list[tuple[object, ...]]:
    """The node's last values as a second connection (a restarted gateway) sees them."""
    with contextlib.closing(sqlite3.connect(tmp_path / "state" / "state.db")) as other:
        return other.execute("SELECT value FROM last_values").fetchall()
