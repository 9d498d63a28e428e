"""What the gateway acknowledged to a node is durable before the acknowledgement.

An 802.15.4 node's Send answered 2.04 has been received, as far as the node knows: it will
not send those values again. So they must be committed to the state database before the 2.04
leaves, not at the next group commit (kill -9 in between lost them, uncounted). Checked from
a second SQLite connection, which sees exactly what a restarted process would: committed rows.
The group commit's own timer is made very long, so only the hand-off can have committed them.

And when the store refuses writes (here a full database: SQLITE_FULL through
``max_page_count``), the node is not told 2.04: it gets 5.03 and keeps its values.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path as FsPath

import pytest
from emulators.lwm2m_node import TEMPERATURE, EmulatedNode

from bridged.objects.values import Record
from integration.test_node_server import TIMEOUT, Air, air, until  # noqa: F401 (fixture)

NOW = round(time.time())  # within the store's age bound
SENT = [Record(TEMPERATURE, 19.25 + i, NOW + i) for i in range(3)]


def committed(db: FsPath) -> list[tuple[str, object, float]]:
    with contextlib.closing(sqlite3.connect(db)) as other:
        return list(other.execute("SELECT path, value, time FROM readings ORDER BY seq"))


@pytest.fixture
async def committing(air: Air) -> AsyncIterator[Air]:  # noqa: F811 (the fixture imported)
    """test_node_server's ``air`` with the registry's group commit running, on a timer that
    never fires during a test."""
    task = asyncio.create_task(air.registry.run(interval=3600))
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
