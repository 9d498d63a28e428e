"""What the gateway acknowledged to a node is durable before the acknowledgement.

An 802.15.4 node's Send answered 2.04 has been received, as far as the node knows: it will
not send those values again. So they must be committed to the state database before the 2.04
leaves, not at the next group commit (kill -9 in between lost them, uncounted). Checked from
a second SQLite connection, which sees exactly what a restarted process would: committed rows.
The group commit's window does not delay them: ``durable`` commits at once.

Then end to end through the real daemon on the RCP emulator, killed right after the last 2.04:
every value a node was answered 2.04 for reaches the server after the restart.

And when the store refuses writes (here a full database: SQLITE_FULL through
``max_page_count``), the node is not told 2.04: it gets 5.03 and keeps its values.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path as FsPath

import pytest
from emulators.lwm2m_node import TEMPERATURE, EmulatedNode
from emulators.world import World

from bridged.objects.values import Record
from integration.test_daemon import sends
from integration.test_node_server import TIMEOUT, Air, air, until  # noqa: F401 (fixture)
from peers.lwm2m_server import LwM2MTestServer

NOW = round(time.time())  # within the store's age bound
SENT = [Record(TEMPERATURE, 19.25 + i, NOW + i) for i in range(3)]


def committed(db: FsPath) -> list[tuple[str, object, float]]:
    with contextlib.closing(sqlite3.connect(db)) as other:
        return list(other.execute("SELECT path, value, time FROM readings ORDER BY seq"))


@pytest.fixture
async def committing(air: Air) -> AsyncIterator[Air]:  # noqa: F811 (the fixture imported)
    """test_node_server's ``air`` with the registry's group commit running."""
    task = asyncio.create_task(air.registry.run())
    yield air
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_send_answered_2_04_is_committed_before_the_answer(
    committing: Air, tmp_path: FsPath
) -> None:
    node = await registered(committing, 7)
    response = await node.send(SENT)
    assert response.code.is_successful()
    rows = committed(tmp_path / "state.db")
    assert [(p, v, t) for p, v, t in rows if (p, v, t) in _expected()] == _expected()


async def test_a_send_the_store_cannot_keep_is_answered_5_03(
    committing: Air, tmp_path: FsPath
) -> None:
    gw = committing
    node = await registered(gw, 8)
    conn = gw.registry.readings_store._conn
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count={pages}")  # the disk is full
    try:
        big = [Record(TEMPERATURE, float(i), NOW + 100.0 + i) for i in range(200)]
        response = await node.send(big)
        assert str(response.code).startswith("5.03"), response
        assert gw.registry.store_problem is not None
    finally:
        conn.execute("PRAGMA max_page_count=1073741823")
    # Space is back: what was kept in memory is stored at the next try.
    await until(lambda: gw.registry.flush() > 0 or gw.registry.store_problem is None)
    assert gw.registry.store_problem is None
    stored = {(v, t) for p, v, t in committed(tmp_path / "state.db") if p == str(TEMPERATURE)}
    assert {(r.value, r.time) for r in big} <= stored


async def registered(gw: Air, index: int) -> EmulatedNode:
    node = await gw.node(index)
    gw.pair(node)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    return node


def _expected() -> list[tuple[str, object, float]]:
    return [(str(r.path), r.value, r.time) for r in SENT]


async def test_every_send_answered_2_04_reaches_the_server_across_kill_9(
    tmp_path: FsPath, server: LwM2MTestServer
) -> None:
    """Through the real daemon on the RCP emulator: a node Sends, each answered 2.04, and the
    daemon is killed right after the last answer. Restarted, it delivers every value that was
    answered: what was produced (acknowledged) = what the server received."""
    async with World(tmp_path) as world:
        daemon = await world.start_daemon(server.uri, endpoint="gw-kill")
        await daemon.ctl_json("permit-join", "30")
        node = await world.add_node(1, "porch")
        await asyncio.wait_for(node.registered.wait(), TIMEOUT)
        update = await server.next_event("update", timeout=TIMEOUT)
        (iid,) = {int(i) for i in re.findall(r"</3303/(\d+)>", update.payload.decode())}
        name = f"/3303/{iid}/5700"
        acknowledged = set()
        for i in range(10):
            record = Record(TEMPERATURE, 100.0 + i, NOW + i)
            response = await node.send([record])
            assert response.code.is_successful()
            acknowledged.add((name, record.time, record.value))
        daemon.proc.kill()
        await daemon.proc.wait()
        await world.start_daemon(server.uri, endpoint="gw-kill")
        await until(lambda: acknowledged <= sends(server), timeout=60)
