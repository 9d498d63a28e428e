"""Delivery through a ``Router`` (bridged/delivery.py), as in the endpoints mode: each node's
readings go through a client of its own. A batch splits into one part per session, sent
concurrently; the cursor moves only once every part is acknowledged, and a retry leaves out the
parts that went; a node whose session is
not registered holds the run up from its first reading; an unexposed node's readings are
skipped and counted.

The sessions are stand-ins that record what a Send carried (the real ones are in
tests/integration/test_delivery_endpoints.py); the store is the real one on SQLite."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from delivery_feed import feed, quick_config, sent_records
from hypothesis import given, settings
from hypothesis import strategies as st

from bridged.delivery import Delivery, DeliveryConfig, Route, consumer_name
from bridged.engine.client import ServerConfig
from bridged.engine.send import SendOutcome, SendStatus
from bridged.objects.builtin import builtin_definitions
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.store.database import connect
from bridged.store.nodes import NodeId
from bridged.store.readings import ReadingStore, Row

NODES = [NodeId("sim", f"{i:04d}") for i in range(3)]
LOCAL = [Path.parse("/3303/0/5700"), Path.parse("/3304/0/5700")]
SERVERS = (ServerConfig("coap://127.0.0.1:5683"),)


@dataclass(eq=False)
class Session:
    """One node's session: takes Sends like a server that answers 2.04 or, at random,
    nothing; ``overlap`` is [Sends in flight, the most ever] over all sessions."""

    tree: ObjectTree
    failures: random.Random
    fail_rate: float
    overlap: list[int]
    short_server_id: int = 1
    registered: bool = True
    received: list[Record] = field(default_factory=list)

    async def send_encoded(self, payload: bytes, count: int) -> SendOutcome:
        records = sent_records(payload, count, self.tree)
        self.overlap[0] += 1
        self.overlap[1] = max(self.overlap[1], self.overlap[0])
        await asyncio.sleep(0)
        self.overlap[0] -= 1
        if self.failures.random() < self.fail_rate:
            return SendOutcome(SendStatus.NO_ANSWER, "test", len(records), "timeout")
        self.received.extend(records)
        return SendOutcome(SendStatus.DELIVERED, "test", len(records))


@dataclass
class Client:
    sessions: list[Session]
    servers: tuple[ServerConfig, ...] = SERVERS


def setup(
    fail_rate: float, seed: int, config: DeliveryConfig
) -> tuple[ReadingStore, dict[NodeId, Session], Delivery, list[int]]:
    store = ReadingStore(connect(":memory:"))
    tree = ObjectTree(builtin_definitions())
    overlap = [0, 0]
    sessions = {
        n: Session(tree, random.Random(seed + i), fail_rate, overlap) for i, n in enumerate(NODES)
    }
    clients = {n: Client([s]) for n, s in sessions.items()}

    def route(node: NodeId) -> Route | None:
        return Route(clients[node], lambda node, local: local)  # type: ignore[arg-type]

    gateway = Client([])
    delivery = Delivery(gateway, store, None, config, route=route)  # type: ignore[arg-type]
    return store, sessions, delivery, overlap


@settings(max_examples=25, deadline=None)
@given(
    bursts=st.lists(st.integers(1, 120), min_size=1, max_size=6),
    max_records=st.integers(1, 64),
    max_bytes=st.integers(64, 4096),
    fail_rate=st.sampled_from([0.0, 0.3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_each_node_gets_its_readings_in_order_and_the_cursor_reaches_the_end(
    bursts: list[int], max_records: int, max_bytes: int, fail_rate: float, seed: int
) -> None:
    rng = random.Random(seed)
    config = quick_config(max_records=max_records, max_bytes=max_bytes)
    store, sessions, delivery, _ = setup(fail_rate, seed, config)
    t = time.time()

    def burst(size: int) -> list[Row]:
        nonlocal t
        out = []
        for _ in range(size):
            t += rng.choice([0.001, 1.0])
            out.append((rng.choice(NODES), Record(rng.choice(LOCAL), rng.random(), t)))
        return out

    stored = feed(delivery, store, bursts, burst)
    for node, session in sessions.items():
        expected = [r for n, r in stored if n == node]
        # Exactly once even with failures: a part that went is not sent again with the retry
        # of a sibling that failed (one measured value, one upstream record).
        assert session.received == expected
    assert delivery.stats(1).delivered == len(stored)


def test_parts_go_concurrently() -> None:
    store, sessions, delivery, overlap = setup(0.0, 0, DeliveryConfig(linger=0))
    now = time.time()
    store.append([(n, Record(LOCAL[0], 20.0 + i, now + i)) for i, n in enumerate(NODES * 2)])

    async def run() -> None:
        await delivery.start()
        async with asyncio.timeout(10):
            while store.pending(consumer_name(1)):
                await asyncio.sleep(0.001)
        await delivery.stop()

    asyncio.run(run())
    assert overlap[1] == len(NODES), "one Send per node's session, all at once"
    assert all(len(s.received) == 2 for s in sessions.values())


def test_an_unregistered_session_holds_the_run_up_from_its_first_reading() -> None:
    store, sessions, delivery, _ = setup(0.0, 0, DeliveryConfig(linger=0, poll=0.01))
    late = sessions[NODES[1]]
    late.registered = False
    now = time.time()
    store.append(
        [
            (NODES[0], Record(LOCAL[0], 1.0, now)),
            (NODES[1], Record(LOCAL[0], 2.0, now + 1)),  # its session is not registered yet
            (NODES[0], Record(LOCAL[0], 3.0, now + 2)),
        ]
    )

    async def run() -> None:
        await delivery.start()
        async with asyncio.timeout(10):
            while len(store.pending(consumer_name(1))) > 2:
                await asyncio.sleep(0.001)
            for _ in range(20):  # the run stays held up
                await asyncio.sleep(0.005)
            assert [r.value for r in sessions[NODES[0]].received] == [1.0]
            late.registered = True
            while store.pending(consumer_name(1)):
                await asyncio.sleep(0.001)
        await delivery.stop()

    asyncio.run(run())
    assert [r.value for r in sessions[NODES[0]].received] == [1.0, 3.0]
    assert [r.value for r in late.received] == [2.0]


def test_an_unexposed_nodes_readings_are_skipped_and_counted() -> None:
    store = ReadingStore(connect(":memory:"))
    session = Session(ObjectTree(builtin_definitions()), random.Random(0), 0.0, [0, 0])
    client = Client([session])

    def route(node: NodeId) -> Route | None:
        exposed = node == NODES[0]
        return Route(client, lambda node, local: local) if exposed else None  # type: ignore[arg-type]

    delivery = Delivery(Client([]), store, None, DeliveryConfig(linger=0), route=route)  # type: ignore[arg-type]
    now = time.time()
    store.append([(n, Record(LOCAL[0], float(i), now + i)) for i, n in enumerate(NODES)])

    async def run() -> None:
        await delivery.start()
        async with asyncio.timeout(10):
            while store.pending(consumer_name(1)):
                await asyncio.sleep(0.001)
        await delivery.stop()

    asyncio.run(run())
    assert [r.value for r in session.received] == [0.0]
    assert (delivery.stats(1).delivered, delivery.stats(1).skipped) == (1, 2)
