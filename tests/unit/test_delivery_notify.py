"""Store-and-forward to servers without Send: the selection and batching logic.

* ``bridged.engine.series``: which formats carry time, which observations include a path, how a
  series is cut to fit a notification (hypothesis: nothing lost, reordered or oversized);
* ``Observations.notify_series`` over a recording pipe: records go to the observations that
  can carry time, in order, cut by bytes, one confirmable notification at a time, and the
  outcome waits for the acknowledgement;
* ``Delivery`` with a stand-in session whose Send is refused (LwM2M 1.0) and whose series
  notifications fail at random: every observed reading arrives, in order, at least once, and
  the unobserved ones are skipped and counted, once each.

The real exchange (CON notifications and their ACKs over UDP) is tested end to end in
tests/integration/test_delivery_notify.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import aiocoap
import pytest
from aiocoap.numbers.codes import Code
from delivery_feed import feed, quick_config
from hypothesis import given, settings
from hypothesis import strategies as st

from bridged.delivery import Delivery, DeliveryConfig, may_skip_unobserved
from bridged.engine.client import ServerConfig
from bridged.engine.dm import DeviceManagement
from bridged.engine.observe import Observations
from bridged.engine.send import SendUnsupported
from bridged.engine.series import SeriesOutcome, covers, leading_fit, split
from bridged.objects.builtin import builtin_definitions
from bridged.objects.formats import ContentFormat, carries_time
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.store.database import connect
from bridged.store.nodes import NodeId
from bridged.store.readings import ReadingStore, Row

# -- bridged.engine.series ----------------------------------------------------------------------


def test_only_formats_with_a_time_field_carry_a_series() -> None:
    timed = {ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR, ContentFormat.LWM2M_JSON}
    for cf in ContentFormat:
        assert carries_time(cf) is (cf in timed), cf
    assert not carries_time(None)


def test_an_observation_covers_its_path_and_below() -> None:
    p = Path.parse
    assert covers([p("/3303")], p("/3303/1/5700"))
    assert covers([p("/3303/1/5700")], p("/3303/1/5700"))
    assert not covers([p("/3303/0")], p("/3303/1/5700"))
    assert covers([p("/3304/0"), p("/3303/1")], p("/3303/1/5700"))  # a composite
    assert covers([p("/")], p("/dev3/3303/0/5700"))
    assert not covers([p("/3303")], p("/dev3/3303/0/5700"))
    assert covers([p("/dev3/3303")], p("/dev3/3303/0/5700"))


@given(
    sizes=st.lists(st.integers(1, 500), max_size=60),
    overhead=st.integers(0, 100),
    max_bytes=st.integers(64, 2048),
)
def test_split_keeps_every_item_in_order_and_runs_fit(
    sizes: list[int], overhead: int, max_bytes: int
) -> None:
    def size(run: Sequence[int]) -> int:
        return overhead + sum(run)

    runs = split(sizes, size, max_bytes)
    assert [x for run in runs for x in run] == sizes
    for run in runs:
        assert run and (len(run) == 1 or size(run) <= max_bytes)
    if sizes:
        assert 1 <= leading_fit(sizes, size, max_bytes) <= len(sizes)


def test_skipping_unobserved_waits_for_grace_and_a_sign_of_life() -> None:
    grace = 30.0
    assert not may_skip_unobserved(now=100.0, settled=80.0, heard=99.0, grace=grace)
    assert may_skip_unobserved(now=110.0, settled=80.0, heard=99.0, grace=grace)
    assert may_skip_unobserved(now=110.0, settled=80.0, heard=80.0, grace=grace)
    assert not may_skip_unobserved(now=200.0, settled=80.0, heard=79.0, grace=grace)  # gone?
    assert may_skip_unobserved(now=200.0, settled=200.0, heard=0.0, grace=0.0)


def test_delivery_config_refuses_impossible_bounds() -> None:
    with pytest.raises(ValueError):
        DeliveryConfig(notification_bytes=10)
    with pytest.raises(ValueError):
        DeliveryConfig(observe_grace=-1)


# -- Observations.notify_series -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class RecordingPipe:
    """Stands in for aiocoap's pipe; ``acks`` acknowledges each confirmable message added."""

    def __init__(self, request: aiocoap.Message, acks: Acks) -> None:
        self.request = request
        self.acks = acks
        self.responses: list[aiocoap.Message] = []
        self.task: asyncio.Task[None] | None = None  # the observation, ended by ``close``

    def add_response(self, message: aiocoap.Message, is_last: bool = False) -> None:
        self.responses.append(message)
        self.acks.sent(message)


@dataclass
class Acks:
    """Stands in for the message layer's ``watch_ack``: acknowledges after the message is
    added, unless ``lose`` is set."""

    lose: bool = False
    watched: dict[int, asyncio.Future[None]] = field(default_factory=dict)

    def watch(self, message: aiocoap.Message) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.watched[id(message)] = future
        return future

    def sent(self, message: aiocoap.Message) -> None:
        future = self.watched.pop(id(message), None)
        if future is not None and not self.lose:
            asyncio.get_running_loop().call_soon(future.set_result, None)


@pytest.fixture
def tree() -> ObjectTree:
    t = ObjectTree(builtin_definitions())
    t.create_instance(1, 0, [(0, 1), (1, 300), (6, False), (7, "U")])
    t.create_instance(3303, 0, [(5700, 20.0)])
    t.create_instance(3304, 0, [(5700, 40.0)])
    return t


@pytest.fixture
async def observations(tree: ObjectTree) -> AsyncIterator[tuple[Observations, Acks]]:
    acks = Acks()
    obs = Observations(DeviceManagement(tree), server_instance=0, clock=Clock())
    obs.watch_ack = acks.watch
    yield obs, acks
    await obs.close()


async def start(
    obs: Observations, acks: Acks, path: str, accept: int | None, token: bytes
) -> RecordingPipe:
    msg = aiocoap.Message(code=Code.GET, uri_path=[s for s in path.split("/") if s], observe=0)
    if accept is not None:
        msg.opt.accept = accept
    msg.token = token
    msg.remote = "server"
    pipe = RecordingPipe(msg, acks)
    pipe.task = asyncio.create_task(obs.serve(pipe))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert not pipe.task.done() and pipe.responses[0].code == Code.CONTENT
    return pipe


def series(pipe: RecordingPipe) -> list[tuple[str, float, float]]:
    """The (name, time, value) of the series notifications (LwM2M JSON) on ``pipe``."""
    out = []
    for m in pipe.responses[1:]:
        assert m.transport_tuning.reliability is True and m.opt.content_format == 11543
        doc = json.loads(m.payload)
        out += [(doc["bn"] + e.get("n", ""), e["t"], e["v"]) for e in doc["e"]]
    return out


TEMPERATURE, HUMIDITY = Path.parse("/3303/0/5700"), Path.parse("/3304/0/5700")


async def test_a_series_goes_to_the_observations_with_time_in_order_cut_by_bytes(
    observations: tuple[Observations, Acks],
) -> None:
    obs, acks = observations
    timed = await start(obs, acks, "/3303/0/5700", 11543, b"a")
    untimed = await start(obs, acks, "/3304/0", ContentFormat.TLV, b"b")
    records = [Record(TEMPERATURE, 20.0 + i, 1_700_000_000.0 + i) for i in range(40)]
    records.insert(5, Record(HUMIDITY, 41.0, 1_700_000_004.5))
    assert obs.observes_with_time(TEMPERATURE) and not obs.observes_with_time(HUMIDITY)

    outcome = await obs.notify_series(records, max_bytes=256)

    assert outcome.acknowledged and outcome.uncovered == (5,)
    expected = [(str(r.path), r.time, r.value) for r in records if r.path == TEMPERATURE]
    assert series(timed) == expected
    assert outcome.notifications == len(timed.responses) - 1 > 1
    assert all(len(m.payload) <= 256 for m in timed.responses[1:])
    numbers = [m.opt.observe for m in timed.responses]
    assert numbers == sorted(numbers)
    assert len(untimed.responses) == 1  # TLV has no time: no series


async def test_an_unacknowledged_notification_stops_the_series(
    observations: tuple[Observations, Acks],
) -> None:
    obs, acks = observations
    pipe = await start(obs, acks, "/3303", 11543, b"a")
    acks.lose = True
    records = [Record(TEMPERATURE, 20.0 + i, 1_700_000_000.0 + i) for i in range(40)]
    outcome = await obs.notify_series(records, max_bytes=256, timeout=0.01)
    assert not outcome.acknowledged and outcome.notifications == 0
    assert "no acknowledgement" in outcome.detail
    assert len(pipe.responses) == 2  # the first series notification, then nothing more


async def test_held_notifications_hold_the_series_and_wake_the_client(
    observations: tuple[Observations, Acks],
) -> None:
    obs, acks = observations
    pipe = await start(obs, acks, "/3303", 11543, b"a")
    woken: list[bool] = []
    obs.on_held = lambda: woken.append(True)
    obs.hold()
    outcome = await obs.notify_series([Record(TEMPERATURE, 21.0, 1_700_000_000.0)])
    assert not outcome.acknowledged and woken == [True]
    assert len(pipe.responses) == 1


async def test_nothing_observed_is_acknowledged_with_everything_uncovered(
    observations: tuple[Observations, Acks],
) -> None:
    obs, _ = observations
    outcome = await obs.notify_series([Record(TEMPERATURE, 21.0, 1.0)] * 3)
    assert outcome == SeriesOutcome(True, 0, (0, 1, 2))


# -- Delivery with a server without Send ------------------------------------------------------

NODES = [NodeId("sim", f"{i:04d}") for i in range(2)]
LOCAL = [Path.parse("/3303/0/5700"), Path.parse("/3304/0/5700")]


def gateway_path(node: NodeId, local: Path) -> Path:
    return Path((local.ids[0], NODES.index(node) + 1, *local.ids[2:]))


@dataclass
class SeriesObservations:
    """Stands in for ``Observations``: observes ``observed`` with time; each series fails at
    random, having delivered a random part of its records first (as a real series stopped
    mid-way does)."""

    observed: Path
    rng: random.Random
    fail_rate: float
    received: list[Record] = field(default_factory=list)
    heard_at: float = 0.0
    lost_at: float | None = None

    def now(self) -> float:
        return time.monotonic()

    def observes_with_time(self, path: Path) -> bool:
        return self.observed.contains(path)

    async def notify_series(self, records: Sequence[Record], **_: object) -> SeriesOutcome:
        self.heard_at = self.now()
        covered = [r for r in records if self.observed.contains(r.path)]
        uncovered = tuple(i for i, r in enumerate(records) if not self.observed.contains(r.path))
        if self.rng.random() < self.fail_rate:
            self.received += covered[: self.rng.randrange(len(covered) + 1)]
            return SeriesOutcome(False, 0, uncovered, "lost")
        self.received += covered
        return SeriesOutcome(True, 1, uncovered)


@dataclass
class Registrar:
    location_path: str | None = "rd/c1"

    @property
    def location(self) -> tuple[str, ...]:
        """Delivery tells registrations apart by ``location_path``: this tuple is built from
        that string on each call, which a batch need not pay for."""
        raise AssertionError("delivery built the Location tuple")


@dataclass(eq=False)  # told apart by identity, as the real session
class Session:
    """A LwM2M 1.0 registration: Send is refused, notifications go to ``observations``."""

    tree: ObjectTree
    observations: SeriesObservations
    short_server_id: int = 1
    registered: bool = True
    name: str = "coap://test"
    registrar: Registrar = field(default_factory=Registrar)

    async def send_encoded(self, payload: bytes, count: int) -> None:
        raise SendUnsupported("LwM2M 1.0")


@dataclass
class Client:
    sessions: list[Session]
    servers: tuple[ServerConfig, ...] = (ServerConfig("coap://127.0.0.1:5683"),)


@settings(max_examples=20, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 80), min_size=1, max_size=6),
    max_records=st.integers(1, 64),
    fail_rate=st.sampled_from([0.0, 0.4]),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_server_without_send_gets_what_it_observes_in_order_and_the_rest_is_counted(
    sizes: list[int], max_records: int, fail_rate: float, seed: int
) -> None:
    rng = random.Random(seed)
    store = ReadingStore(connect(":memory:"))
    observed = SeriesObservations(Path.parse("/3303"), random.Random(seed + 1), fail_rate)
    session = Session(ObjectTree(builtin_definitions()), observed)
    config = quick_config(max_records=max_records, observe_grace=0)
    delivery = Delivery(Client([session]), store, gateway_path, config)  # type: ignore[arg-type]
    t = time.time()
    count = 0

    def burst(size: int) -> list[Row]:
        nonlocal count
        out = [
            (rng.choice(NODES), Record(rng.choice(LOCAL), rng.random(), t + count + i))
            for i in range(size)
        ]
        count += size
        return out

    stored = feed(delivery, store, sizes, burst)
    records = [Record(gateway_path(n, r.path), r.value, r.time) for n, r in stored]
    temperatures = [r for r in records if r.path.ids[0] == 3303]
    # At least once, in order: without the repeats a retried batch brings, exactly the series.
    first_seen = list(dict.fromkeys(observed.received))
    assert first_seen == temperatures
    stats = delivery.stats(1)
    assert stats.unobserved == stats.skipped == len(records) - len(temperatures)
    assert stats.delivered == len(temperatures)
    assert stats.sends == 0
    if fail_rate == 0:
        assert observed.received == temperatures
