"""Batching in store-and-forward delivery (bridged/delivery.py): random bursts, random batch
bounds and a server that fails at random still get every reading, once, in the order stored.

The session here is a stand-in that records what a Send carried (the real Send is tested
end to end in tests/integration/test_delivery.py); the store is the real one on SQLite."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import pytest
from delivery_feed import feed, quick_config, sent_records
from hypothesis import given, settings
from hypothesis import strategies as st
from timers import armed, settled

from bridged.delivery import Delivery, DeliveryConfig, consumer_name
from bridged.engine.client import ServerConfig
from bridged.engine.send import SendOutcome, SendStatus
from bridged.exposure.mapping import PathMap, Shown
from bridged.objects.builtin import builtin_definitions
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.store.database import connect
from bridged.store.nodes import NodeId
from bridged.store.readings import Bounds, ReadingStore, Row

NODES = [NodeId("sim", f"{i:04d}") for i in range(3)]
NOW = time.time()
LOCAL = [Path.parse("/3303/0/5700"), Path.parse("/3304/0/5700")]


@dataclass(eq=False)  # one per server and client, told apart by identity as the real one
class Session:
    """Takes Sends like a server that answers 2.04 or, at random, nothing."""

    tree: ObjectTree
    failures: random.Random
    fail_rate: float
    short_server_id: int = 1
    registered: bool = True
    received: list[Record] = field(default_factory=list)
    sends: int = 0

    async def send_encoded(self, payload: bytes, count: int) -> SendOutcome:
        records = sent_records(payload, count, self.tree)
        self.sends += 1
        if self.failures.random() < self.fail_rate:
            return SendOutcome(SendStatus.NO_ANSWER, "test", len(records), "timeout")
        self.received.extend(records)
        return SendOutcome(SendStatus.DELIVERED, "test", len(records))


@dataclass
class Client:
    sessions: list[Session]
    servers: tuple[ServerConfig, ...] = (ServerConfig("coap://127.0.0.1:5683"),)


def gateway_path(node: NodeId, local: Path) -> Path:
    return Path((local.ids[0], NODES.index(node) + 1, *local.ids[2:]))


@settings(max_examples=25, deadline=None)
@given(
    bursts=st.lists(st.integers(1, 120), min_size=1, max_size=8),
    max_records=st.integers(1, 64),
    max_bytes=st.integers(64, 4096),
    fail_rate=st.sampled_from([0.0, 0.3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_bursts_arrive_complete_and_in_order(
    bursts: list[int], max_records: int, max_bytes: int, fail_rate: float, seed: int
) -> None:
    rng = random.Random(seed)
    store = ReadingStore(connect(":memory:"))
    tree = ObjectTree(builtin_definitions())
    session = Session(tree, random.Random(seed + 1), fail_rate)
    config = quick_config(max_records=max_records, max_bytes=max_bytes)
    delivery = Delivery(Client([session]), store, gateway_path, config)  # type: ignore[arg-type]
    t = time.time()

    def burst(size: int) -> list[Row]:
        nonlocal t
        out = []
        for _ in range(size):
            t += rng.choice([0.0, 0.001, 1.0])
            out.append((rng.choice(NODES), Record(rng.choice(LOCAL), rng.random(), t)))
        return out

    stored = feed(delivery, store, bursts, burst)
    expected = [Record(gateway_path(n, r.path), r.value, r.time) for n, r in stored]
    assert session.received == expected
    assert not store.pending(consumer_name(1))
    if fail_rate == 0 and max_bytes >= 4096:
        assert session.sends <= len(stored)


def test_a_reading_no_send_may_carry_is_skipped_not_blocking() -> None:
    store = ReadingStore(connect(":memory:"))
    session = Session(ObjectTree(builtin_definitions()), random.Random(0), 0.0)
    delivery = Delivery(Client([session]), store, gateway_path, DeliveryConfig(linger=0))  # type: ignore[arg-type]
    node = NODES[0]
    store.append(
        [
            (node, Record(LOCAL[0], 20.5, NOW + 0)),
            (node, Record(LOCAL[0], "warm", NOW + 1)),  # 5700 is a Float
            (node, Record(LOCAL[0], 21.0, NOW + 2)),
        ]
    )

    async def run() -> None:
        await delivery.start()
        async with asyncio.timeout(10):
            while len(session.received) < 2:
                await asyncio.sleep(0.001)
        await delivery.stop()

    asyncio.run(run())
    assert [r.value for r in session.received] == [20.5, 21.0]
    assert delivery.stats(1).skipped == 1
    assert not store.pending(consumer_name(1))


async def test_with_nothing_to_deliver_delivery_arms_no_timer() -> None:
    """Idle means asleep: with nothing waiting, delivery waits for ``notify`` without a timer
    (it looked at the store every second); a reading stored then is delivered at once."""
    store = ReadingStore(connect(":memory:"))
    session = Session(ObjectTree(builtin_definitions()), random.Random(0), 0.0)
    delivery = Delivery(Client([session]), store, gateway_path, DeliveryConfig(linger=0))  # type: ignore[arg-type]
    await delivery.start()
    try:
        await settled()
        assert armed() == []
        store.append([(NODES[0], Record(LOCAL[0], 20.5, NOW))])
        delivery.notify()
        async with asyncio.timeout(10):
            while not session.received:
                await asyncio.sleep(0.01)
        assert session.received == [Record(gateway_path(NODES[0], LOCAL[0]), 20.5, NOW)]
        await settled()
        assert armed() == []
    finally:
        await delivery.stop()


async def test_a_send_reads_the_drop_counters_only_after_the_store_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A batch is logged with what the store's bounds dropped since the one before; the
    store says when it dropped, so a Send of a quiet store reads no counters (a statement
    per Send, whatever its size, that a low rate pays per few records)."""
    conn = connect(":memory:")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    store = ReadingStore(conn, Bounds(max_count=4))
    session = Session(ObjectTree(builtin_definitions()), random.Random(0), 0.0)
    delivery = Delivery(Client([session]), store, gateway_path, DeliveryConfig(linger=0))  # type: ignore[arg-type]
    await delivery.start()
    try:
        statements.clear()
        for k in range(3):
            store.append([(NODES[0], Record(LOCAL[0], float(k), NOW + k))])
            delivery.notify()
            async with asyncio.timeout(10):
                while len(session.received) < k + 1:
                    await asyncio.sleep(0.001)
        assert not [s for s in statements if "FROM counters" in s]
        await delivery.stop()  # the next batch is stored whole, then its bound drops 2
        store.append([(NODES[0], Record(LOCAL[0], 10.0 + k, NOW + 10 + k)) for k in range(6)])
        await delivery.start()
        async with asyncio.timeout(10):
            while len(session.received) < 3 + 4:
                await asyncio.sleep(0.001)
    finally:
        await delivery.stop()
    assert [r.value for r in session.received] == [0.0, 1.0, 2.0, 12.0, 13.0, 14.0, 15.0]
    assert "2 readings dropped by the store's bounds before delivery" in caplog.text


async def test_a_send_follows_the_exposures_mapping_once_it_changes() -> None:
    """Delivery keeps each node path's upstream path from one batch to the next
    (``Delivery._mapped``); once the exposure shows the node's instance elsewhere, or not at
    all, the next Send carries the node's readings where they are shown now (what the
    stand-in server decodes from the payload), and a reading of an instance no longer shown is
    skipped: the same node path object in every reading, as a transport hands them over."""
    store = ReadingStore(connect(":memory:"))
    session = Session(ObjectTree(builtin_definitions()), random.Random(0), 0.0)
    paths = PathMap()
    node, local = NODES[0], LOCAL[0]
    paths.show(node, Shown((3303, 0), Path((3303, 1))))
    delivery = Delivery(Client([session]), store, paths.upstream, DeliveryConfig(linger=0))  # type: ignore[arg-type]

    async def sent(value: float, at: float, count: int) -> None:
        store.append([(node, Record(local, value, at))])
        delivery.notify()
        async with asyncio.timeout(10):
            while len(session.received) + delivery.stats(1).skipped < count:
                await asyncio.sleep(0.001)

    await delivery.start()
    try:
        await sent(20.5, NOW, 1)
        await sent(20.6, NOW + 1, 2)
        paths.hide(node, (3303, 0))
        paths.show(node, Shown((3303, 0), Path((3303, 7))))
        await sent(21.0, NOW + 2, 3)
        paths.hide_node(node)
        await sent(21.5, NOW + 3, 4)
    finally:
        await delivery.stop()
    at_1, at_7 = Path.parse("/3303/1/5700"), Path.parse("/3303/7/5700")
    assert session.received == [
        Record(at_1, 20.5, NOW),
        Record(at_1, 20.6, NOW + 1),
        Record(at_7, 21.0, NOW + 2),
    ]
    assert delivery.stats(1).skipped == 1
    assert not store.pending(consumer_name(1))


async def test_more_node_paths_than_are_kept_mapped_are_all_sent_where_they_are_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Delivery keeps at most ``MAPPED_LIMIT`` node paths mapped, over all the nodes; past it
    it forgets them all and maps again. With a bound of 2 and 6 node paths (3 nodes, 2
    resources each, in one batch and then another), every reading still reaches the server
    at its node's shown path, in order, and no more than the bound are kept."""
    monkeypatch.setattr("bridged.delivery.MAPPED_LIMIT", 2)
    store = ReadingStore(connect(":memory:"))
    session = Session(ObjectTree(builtin_definitions()), random.Random(0), 0.0)
    delivery = Delivery(Client([session]), store, gateway_path, DeliveryConfig(linger=0))  # type: ignore[arg-type]
    rows = [(node, local) for node in NODES for local in LOCAL]
    await delivery.start()
    try:
        for batch in range(2):
            store.append([(n, Record(p, float(batch), NOW + batch)) for n, p in rows])
            delivery.notify()
            async with asyncio.timeout(10):
                while len(session.received) < len(rows) * (batch + 1):
                    await asyncio.sleep(0.001)
    finally:
        await delivery.stop()
    expected = [
        Record(gateway_path(n, p), float(batch), NOW + batch) for batch in range(2) for n, p in rows
    ]
    assert session.received == expected
    assert delivery._mapped_count <= 2
    assert sum(len(kept) for kept in delivery._mapped.values()) <= 2
