"""The node registry (bridged/registry.py) with the simulated transport and real SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path as FsPath

import pytest
from timers import armed, due_within, settled

from bridged.objects.listeners import Listeners
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.registry import COMMIT_WINDOW, LiveNode, NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeId, NodeStore, PairedNode
from bridged.store.readings import Bounds, ReadingStore
from bridged.store.secrets import Secret, SecretStore
from bridged.transports.base import Heard, NodeState
from bridged.transports.simulated import TEMPERATURE, SimulatedTransport

KEY = Secret(bytes(range(16)))


class Exposure:
    """Records what the registry tells the exposure."""

    def __init__(self) -> None:
        self.added: list[NodeId] = []
        self.removed: list[NodeId] = []
        self.readings: list[tuple[NodeId, list[Record]]] = []
        self.objects: list[NodeId] = []

    def node_added(self, node: LiveNode) -> None:
        self.added.append(node.id)

    def node_removed(self, node: NodeId) -> None:
        self.removed.append(node)

    def node_objects(self, node: LiveNode) -> None:
        self.objects.append(node.id)

    def node_readings(self, node: LiveNode, records: Sequence[Record]) -> None:
        self.readings.append((node.id, list(records)))

    def node_values(self, node: LiveNode, records: Sequence[Record]) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(state: FsPath, monotonic: Clock | None = None) -> NodeRegistry:
    conn = connect(state / "state.db")
    readings = ReadingStore(conn)
    readings.add_consumer("server")
    return NodeRegistry(
        NodeStore(conn),
        SecretStore(state / "secrets.json"),
        readings,
        monotonic=monotonic or time.monotonic,
    )


@pytest.fixture
def registry(tmp_path: FsPath) -> NodeRegistry:
    return make(tmp_path)


def test_only_paired_nodes_reach_the_exposure_and_the_store(registry: NodeRegistry) -> None:
    sim = SimulatedTransport({"nodes": 2}, registry)
    registry.attach(sim)
    exposure = Exposure()
    registry.listen(exposure)
    a, b = sim.nodes.values()
    registry.pair(PairedNode(a.id, "kitchen", "sim"))
    sim.report(a, time.time())
    sim.report(b, time.time())
    assert exposure.added == [a.id]
    assert exposure.objects == [a.id]
    assert [n for n, _ in exposure.readings] == [a.id]
    assert registry.unpaired_readings == 0  # b was only heard: the simulation sends it no readings
    registry.readings(b.id, [Record(TEMPERATURE, 1.0)])
    assert registry.unpaired_readings == 1
    assert set(registry.heard_nodes) == {a.id, b.id}
    stored = registry.readings_store.pending("server")
    assert len(stored) == 3
    assert {n for n, _ in stored.rows} == {a.id}
    assert registry.live[a.id].values[TEMPERATURE].time is not None


def test_a_listener_can_leave_out_each_reports_readings(registry: NodeRegistry) -> None:
    """One with nothing to do for a report (the node health model, told by the node's news;
    the firmware updates) is not called for each (issue 17), and hears of the nodes as all do."""
    told, left_out = Exposure(), Exposure()
    registry.listen(told)
    registry.listen(left_out, readings=False)
    node = NodeId("sim", "0001")
    registry.pair(PairedNode(node, "n", "sim"))
    registry.readings(node, [Record(TEMPERATURE, 1.0)])
    assert told.added == left_out.added == [node]
    assert [n for n, _ in told.readings] == [node] and left_out.readings == []


def test_reading_times_become_absolute(registry: NodeRegistry) -> None:
    node = NodeId("sim", "0001")
    registry.pair(PairedNode(node, "n", "sim"))
    before = time.time()
    measured = before - 3600
    registry.readings(
        node,
        [
            Record(TEMPERATURE, 20.5),
            Record(TEMPERATURE, 20.0, -5.0),
            Record(TEMPERATURE, 1.0, measured),
        ],
    )
    after = time.time()
    registry.flush()
    now, relative, absolute = (r.time for _, r in registry.readings_store.pending("server").rows)
    assert before <= now <= after
    assert before - 5 <= relative <= after - 5
    assert absolute == measured


def test_a_reading_with_its_absolute_time_reaches_the_listeners_as_it_came(
    registry: NodeRegistry,
) -> None:
    """Nothing is rebuilt on the way (issue 17): the record a transport made is the one the
    exposure is told, and the one the store hands delivery, when its time needs no stamping;
    the others are stamped."""
    exposure = Exposure()
    registry.listen(exposure)
    node = NodeId("sim", "0001")
    registry.pair(PairedNode(node, "n", "sim"))
    absolute, unstamped = Record(TEMPERATURE, 1.0, time.time() - 60), Record(TEMPERATURE, 2.0)
    registry.readings(node, [absolute, unstamped])
    ((_, told),) = exposure.readings
    assert told[0] is absolute
    assert told[1] is not unstamped and told[1].time is not None
    assert registry.live[node].values[TEMPERATURE] is told[1]
    assert all(
        a is b
        for (_, a), b in zip(registry.readings_store.pending("server").rows, told, strict=True)
    )


def test_pairing_survives_a_restart_with_secrets_and_ids(tmp_path: FsPath) -> None:
    first = make(tmp_path)
    node = NodeId("ble", "A4:C1:38:00:11:22")
    first.pair(PairedNode(node, "kitchen", "bthome"), {"bindkey": KEY})
    iid = first.store.instance_id(node, 3303)
    again = make(tmp_path)
    assert list(again.live) == [node]
    assert again.secrets.get(node) == {"bindkey": KEY}
    assert again.store.instance_id(node, 3303) == iid
    exposure = Exposure()
    again.listen(exposure)
    assert exposure.added == [node]


def test_a_node_is_exposed_with_its_objects_straight_after_a_restart(tmp_path: FsPath) -> None:
    """An 802.15.4 node says what it has only when it registers: a restarted gateway shows it
    (and can deliver its stored readings) with the objects it last reported."""
    first = make(tmp_path)
    node = NodeId("802154", "00124b0001020304")
    first.pair(PairedNode(node, "n1", "lwm2m"))
    first.objects(node, {3303: [0], 3311: [1, 0]})
    first.readings(node, [Record(TEMPERATURE, 20.5, 1.0e9)])
    again = make(tmp_path)
    assert again.live[node].objects == {3303: [0], 3311: [0, 1]}
    seen: list[dict[int, list[int]]] = []

    class Added(Exposure):
        def node_added(self, live: LiveNode) -> None:
            seen.append(dict(live.objects))

    again.listen(Added())
    assert seen == [{3303: [0], 3311: [0, 1]}]
    # Unpairing forgets them with the pairing; a new value's instance is remembered too.
    again.readings(node, [Record(Path((3303, 1, 5700)), 21.0, 1.0e9)])
    assert make(tmp_path).live[node].objects[3303] == [0, 1]
    again.unpair(node)
    again.pair(PairedNode(node, "n1", "lwm2m"))
    assert make(tmp_path).live[node].objects == {}


def test_unpairing_removes_the_node_upstream_and_forgets_its_secrets(
    registry: NodeRegistry,
) -> None:
    sim = SimulatedTransport({"nodes": 1}, registry)
    registry.attach(sim)
    exposure = Exposure()
    registry.listen(exposure)
    node = next(iter(sim.nodes.values()))
    registry.pair(PairedNode(node.id, "n", "sim"), {"key": KEY})
    assert registry.unpair(node.id)
    assert not registry.unpair(node.id)
    assert exposure.removed == [node.id]
    assert node.id not in sim.paired
    assert registry.secrets.get(node.id) == {}
    sim.report(node, time.time())
    assert len(exposure.readings) == 0


def test_permit_join_admits_while_open_and_refusals_are_logged_once(
    tmp_path: FsPath, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    registry = make(tmp_path, monotonic=clock)
    stranger = Heard(NodeId("802154", "00124b0001020304"), 1.0, "door", profile="lwm2m")
    for _ in range(5):
        assert not registry.admit(stranger)
    assert sum("not paired" in r.message for r in caplog.records) == 1
    registry.permit_join(60)
    clock.now += 59
    assert registry.admit(stranger)
    assert registry.live[stranger.node].paired.name == "door"
    clock.now += 2
    late = Heard(NodeId("802154", "00124b0001020305"), 1.0)
    assert not registry.admit(late)
    assert registry.admit(stranger)  # paired now: always admitted


def test_the_refused_list_is_bounded(
    registry: NodeRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    for i in range(5000):
        registry.admit(Heard(NodeId("802154", f"{i:016x}"), 1.0))
    assert len(registry._refused) <= 4096
    assert len(registry.heard_nodes) <= 4096


def test_a_report_is_durable_when_it_returns(tmp_path: FsPath) -> None:
    """Without the group commit running (before start, while stopping), nothing waits in
    memory for a later commit, which a kill -9 would lose."""
    registry = make(tmp_path)
    node = NodeId("sim", "0001")
    registry.pair(PairedNode(node, "n", "sim"))
    registry.readings(node, [Record(TEMPERATURE, float(i)) for i in range(10)])
    assert len(make(tmp_path).readings_store) == 10, "committed: another connection has them"


class Failing(Exposure):
    """A listener with a defect: it raises on every reading and every object list."""

    def node_readings(self, node: LiveNode, records: Sequence[Record]) -> None:
        raise RuntimeError("a listener's own defect")

    def node_objects(self, node: LiveNode) -> None:
        raise RuntimeError("a listener's own defect")


def broken(_: object) -> None:
    raise RuntimeError("a hook's own defect")


def test_a_listener_that_raises_does_not_stop_the_others(
    registry: NodeRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """The failing listener comes first; the reading is still stored, the listener after it
    and the hooks still get it, and the transport reporting it sees no exception."""
    node = NodeId("sim", "0001")
    registry.pair(PairedNode(node, "n", "sim"))
    registry.listen(Failing())
    exposure = Exposure()
    registry.listen(exposure)
    awake: list[NodeId] = []
    committed: list[int] = []
    registry.on_awake(broken)
    registry.on_awake(awake.append)
    registry.on_commit(broken)
    registry.on_commit(committed.append)
    with caplog.at_level(logging.ERROR, logger="bridged.objects.listeners"):
        registry.readings(node, [Record(TEMPERATURE, 21.5)])
    assert [(n, [r.value for r in rs]) for n, rs in exposure.readings] == [(node, [21.5])]
    assert exposure.objects == [node]  # the new instance /3303/0, past the failing listener
    assert awake == [node]
    assert committed == [1]
    stored = registry.readings_store.pending("server")
    assert [(n, r.value) for n, r in stored.rows] == [(node, 21.5)]
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 4 and all(r.exc_info for r in failures)


def test_nodes_with_the_same_objects_share_them_and_one_growing_leaves_the_others(
    tmp_path: FsPath,
) -> None:
    """A restart with thousands of nodes of one kind keeps one object map for all of them
    (memory: 10,000 nodes in 64 MB); a node that shows a new instance gets a map of its own,
    and the others keep theirs, in memory and in the store."""
    first = make(tmp_path)
    nodes = [NodeId("sim", f"{i:04d}") for i in range(3)]
    for node in nodes:
        first.pair(PairedNode(node, str(node), "sim"))
        first.objects(node, {3303: [0], 3304: [0]})
    again = make(tmp_path)
    a, b, c = (again.live[n] for n in nodes)
    assert a.objects is b.objects is c.objects
    again.objects(nodes[2], {3304: [0], 3303: [0]})  # the same again: still shared
    assert again.live[nodes[2]].objects is a.objects
    again.readings(nodes[0], [Record(Path((3303, 1, 5700)), 21.0, 1.0e9)])
    assert again.live[nodes[0]].objects == {3303: [0, 1], 3304: [0]}
    assert b.objects == c.objects == {3303: [0], 3304: [0]}
    restarted = make(tmp_path)
    assert restarted.live[nodes[1]].objects == {3303: [0], 3304: [0]}
    assert restarted.live[nodes[0]].objects == {3303: [0, 1], 3304: [0]}


def test_nodes_reporting_the_same_objects_share_them_without_a_restart(
    tmp_path: FsPath,
) -> None:
    """Nodes of one kind paired while the gateway runs report their objects one by one (the
    simulated transport at pairing): each report is the one map of that kind (440 bytes of
    each of 10,000 nodes, issue 17), and two nodes that grow the same instance share again;
    the store has each node's own."""
    registry = make(tmp_path)
    nodes = [NodeId("sim", f"{i:04d}") for i in range(3)]
    for node in nodes:
        registry.pair(PairedNode(node, str(node), "sim"))
        registry.objects(node, {3303: [0], 3304: [0]})
    a, b, c = (registry.live[n] for n in nodes)
    assert a.objects is b.objects is c.objects
    for node in nodes[:2]:
        registry.readings(node, [Record(Path((3303, 1, 5700)), 21.0, 1.0e9)])
    assert a.objects is b.objects
    assert a.objects == {3303: [0, 1], 3304: [0]}
    assert c.objects == {3303: [0], 3304: [0]}
    assert make(tmp_path).live[nodes[1]].objects == {3303: [0, 1], 3304: [0]}


def test_a_nodes_first_value_is_its_own_and_the_others_have_none(tmp_path: FsPath) -> None:
    """Nodes with no value known start with one shared empty map (memory); a node's first
    value gives it a map of its own, never one the others see, and it is back after a
    restart."""
    first = make(tmp_path)
    nodes = [NodeId("sim", f"{i:04d}") for i in range(3)]
    for node in nodes:
        first.pair(PairedNode(node, str(node), "sim"))
    again = make(tmp_path)
    a, b, c = (again.live[n] for n in nodes)
    assert a.values == b.values == c.values == {}
    value = Record(Path((3303, 0, 5700)), 21.0, 1.0e9)
    again.readings(nodes[0], [value])
    assert a.values == {value.path: value}
    assert b.values == c.values == {}
    again.readings(nodes[1], [Record(Path((3303, 0, 5700)), 22.0, 1.0e9)])
    assert a.values[value.path].value == 21.0 and b.values[value.path].value == 22.0
    assert c.values == {}
    restarted = make(tmp_path)
    assert restarted.live[nodes[0]].values[value.path].value == 21.0
    assert restarted.live[nodes[2]].values == {}


async def test_the_group_commit_has_no_timer_while_idle_and_expires_on_time(
    tmp_path: FsPath,
) -> None:
    """Idle means asleep: with nothing refused and nothing stored, the group commit arms no
    timer (it was a 20 ms loop, 50 wake-ups a second). A reading stored arms one deadline,
    its age bound, and the reading is dropped when it is reached (it was looked at every 60 s).
    Before that, the reading armed the group commit, once: it is what a reading waits for."""
    registry = make(tmp_path)
    registry.readings_store.bounds = Bounds(max_age=0.3)
    node = NodeId("sim", "0001")
    registry.pair(PairedNode(node, "n1", "sim"))
    task = asyncio.create_task(registry.run())
    try:
        await settled()
        assert armed() == []
        registry.readings(node, [Record(TEMPERATURE, 20.5)])
        registry.readings(node, [Record(TEMPERATURE, 20.6)])
        (commit,) = armed()
        assert commit.when() - asyncio.get_running_loop().time() <= COMMIT_WINDOW
        async with asyncio.timeout(30):
            while registry.unstored:
                await asyncio.sleep(0.01)
        await settled()
        (deadline,) = armed()
        assert deadline.when() - asyncio.get_running_loop().time() > 0.1
        async with asyncio.timeout(30):
            while len(registry.readings_store):
                await asyncio.sleep(0.05)
        assert registry.readings_store.dropped() == {"dropped_age": 2}
        await settled()
        assert armed() == []
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Ordered(Exposure):
    """Records, in order, what it was shown and whether each reading was committed by then
    (seen from a second connection: what a restarted gateway would find)."""

    def __init__(self, db: FsPath) -> None:
        super().__init__()
        self.db = db
        self.shown: list[tuple[str, float, bool]] = []

    def node_readings(self, node: LiveNode, records: Sequence[Record]) -> None:
        with contextlib.closing(connect(self.db)) as other:
            stored = {v for (v,) in other.execute("SELECT value FROM readings")}
        self.shown += [("reading", float(r.value), r.value in stored) for r in records]  # type: ignore[arg-type]

    def node_values(self, node: LiveNode, records: Sequence[Record]) -> None:
        self.shown += [("value", float(r.value), False) for r in records]  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def group_commit(registry: NodeRegistry) -> AsyncIterator[list[int]]:
    """``registry`` with its group commit running; yields the sizes of its commits so far."""
    commits: list[int] = []
    registry.on_commit(commits.append)
    task = asyncio.create_task(registry.run())
    try:
        await settled()
        yield commits
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_readings_of_one_window_share_a_commit_and_are_shown_after_it(
    tmp_path: FsPath,
) -> None:
    """The group commit: readings reported while a commit is due share it (one transaction,
    one commit hook), and nothing is shown, nor taken as the node's known value (what
    node.show and a sleepy node's Read answer), before the readings are committed; a value
    read from the node meanwhile commits the readings reported before it at once, and is
    shown after them. Each node's readings of a commit are shown together, in the order it
    reported them (one tell per node and commit), the nodes in the order they first reported."""
    registry = make(tmp_path)
    nodes = [NodeId("sim", f"{i:04d}") for i in range(3)]
    for node in nodes:
        registry.pair(PairedNode(node, str(node), "sim"))
    exposure = Ordered(tmp_path / "state.db")
    registry.listen(exposure)
    async with group_commit(registry) as commits:
        for i in range(30):
            registry.readings(nodes[i % 3], [Record(TEMPERATURE, float(i))])
            if i == 10:
                registry.values(nodes[0], [Record(TEMPERATURE, 100.0)])

        def by_node(reported: range) -> list[tuple[str, float, bool]]:
            return [("reading", float(i), True) for n in range(3) for i in reported if i % 3 == n]

        # The value read committed the 11 readings before it (they are shown before it), the
        # 19 after it wait for the group commit; node 2 reported first after it.
        first, then = by_node(range(11)), by_node(range(11, 30))
        then = [r for r in then if r[1] % 3 == 2] + [r for r in then if r[1] % 3 != 2]
        assert exposure.shown == [*first, ("value", 100.0, False)]
        assert registry.live[nodes[1]].values[TEMPERATURE].value == 10.0, "known uncommitted"
        async with asyncio.timeout(30):
            while len(exposure.shown) < 31:
                await asyncio.sleep(0.01)
        assert commits == [11, 19]
        assert registry.live[nodes[1]].values[TEMPERATURE].value == 28.0
    assert exposure.shown == [*first, ("value", 100.0, False), *then]
    stored = registry.readings_store.pending("server")
    assert [r.value for _, r in stored.rows] == [float(i) for i in range(30)]


async def test_a_batch_a_window_after_the_report_before_is_committed_at_the_end_of_its_turn(
    tmp_path: FsPath,
) -> None:
    """A radio read once per 0.25 s hands the registry some 25 reports in one turn (issue 17):
    they waited on the line already and the next read is a window away, so the group commit
    arms no timer for them (a wake-up of its own): they are committed, then shown, at the end
    of that turn, in one transaction. The first report after a start has nothing before it to
    foretell the next one, and keeps the window."""
    registry = make(tmp_path)
    node = NodeId("sim", "0001")
    registry.pair(PairedNode(node, "n", "sim"))
    exposure = Ordered(tmp_path / "state.db")
    registry.listen(exposure)
    loop = asyncio.get_running_loop()
    async with group_commit(registry) as commits:
        registry.readings(node, [Record(TEMPERATURE, 0.0)])
        (commit,) = due_within(1.0)
        quiet_until = commit.when() + COMMIT_WINDOW / 2
        async with asyncio.timeout(30):
            while not commits or loop.time() < quiet_until:
                await asyncio.sleep(0.01)
        for i in range(1, 26):
            registry.readings(node, [Record(TEMPERATURE, float(i))])
        assert due_within(1.0) == [] and commits == [1]
        await asyncio.sleep(0)  # the end of the turn that brought them
        assert commits == [1, 25]
    assert exposure.shown == [("reading", float(i), True) for i in range(26)]


async def test_a_reading_of_a_node_unpaired_before_its_commit_is_not_shown(
    tmp_path: FsPath,
) -> None:
    """The node's instance is gone upstream: showing its reading would bring it back."""
    registry = make(tmp_path)
    node = NodeId("sim", "0001")
    registry.pair(PairedNode(node, "n", "sim"))
    exposure = Exposure()
    registry.listen(exposure)
    async with group_commit(registry) as commits:
        registry.readings(node, [Record(TEMPERATURE, 21.5)])
        registry.unpair(node)
        async with asyncio.timeout(30):
            while not commits:
                await asyncio.sleep(0.01)
    assert exposure.removed == [node]
    assert exposure.readings == []


def test_a_report_is_taken_for_the_node_paired_now_whatever_id_object_it_comes_with(
    registry: NodeRegistry,
) -> None:
    """A report's events find the node by the identity of the id they come with (issue 17):
    pairing and unpairing in between are not missed, and an equal id made anew is the node."""
    node = NodeId("sim", "0001")
    registry.readings(node, [Record(TEMPERATURE, 1.0)])
    assert registry.unpaired_readings == 1
    registry.pair(PairedNode(NodeId("sim", "0001"), "n", "sim"))
    registry.readings(node, [Record(TEMPERATURE, 2.0)])
    registry.readings(NodeId("sim", "0001"), [Record(TEMPERATURE, 3.0)])
    registry.unpair(NodeId("sim", "0001"))
    registry.readings(node, [Record(TEMPERATURE, 4.0)])
    assert registry.unpaired_readings == 2
    registry.flush()
    stored = registry.readings_store.pending("server").rows
    assert [r.value for _, r in stored] == [2.0, 3.0]


def test_the_scan_table_has_every_node_heard_last_and_bounds_only_the_unpaired(
    registry: NodeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A paired node's last advert is kept with the node (no lookup of its own per advert,
    issue 17): the table still answers for it, counts it, and keeps it across pairing and
    unpairing; the bound applies to the unpaired, a street's worth of strangers."""
    monkeypatch.setattr("bridged.registry.HEARD_LIMIT", 3)
    mine, stranger = NodeId("sim", "0001"), NodeId("sim", "0002")
    registry.heard(Heard(mine, 1.0, "kitchen", -70, "sim"))
    registry.pair(PairedNode(mine, "kitchen", "sim"))
    registry.heard(Heard(NodeId("sim", "0001"), 2.0, "kitchen", -60, "sim"))
    registry.heard(Heard(stranger, 3.0))
    assert registry.heard_nodes[mine].time == 2.0 and registry.heard_nodes.get(mine) is not None
    assert set(registry.heard_nodes) == {mine, stranger} and len(registry.heard_nodes) == 2
    for i in range(10):
        registry.heard(Heard(NodeId("sim", f"1{i:03d}"), 4.0 + i))
    assert mine in registry.heard_nodes and stranger not in registry.heard_nodes
    assert len(registry.heard_nodes) == 4  # the paired one and the 3 latest strangers
    registry.unpair(mine)
    assert registry.heard_nodes[mine].time == 2.0
    assert len(registry.heard_nodes) == 3


def test_a_report_tells_the_awake_hooks_once_in_either_order_and_a_kept_command_is_not_missed(
    registry: NodeRegistry,
) -> None:
    """A report says the node is awake twice (its state reachable, its readings), in either
    order (the simulated transport, BLE's adverts): the command queue's hook is called once
    per report; two reports are two calls; and a command kept between a report's two events
    is told at the second (``expect_wake``), as before."""
    node = NodeId("sim", "0001")
    registry.pair(PairedNode(node, "n", "sim"))
    awake: list[NodeId] = []
    registry.on_awake(awake.append)
    reading = [Record(TEMPERATURE, 21.5, time.time())]

    def state() -> None:
        registry.state(node, NodeState(True, time.time()))

    registry.heard(Heard(node, time.time(), rssi=-60))
    state()
    registry.readings(node, reading)
    assert len(awake) == 1
    registry.readings(node, reading)  # BLE: readings, then state
    state()
    assert len(awake) == 2
    state()  # two reports saying only their state
    state()
    assert len(awake) == 4
    state()
    registry.expect_wake()  # a command kept for the node meanwhile
    registry.readings(node, reading)
    assert len(awake) == 6


async def test_a_commit_looks_up_each_readers_method_once_and_tells_each_nodes_reports_once(
    tmp_path: FsPath,
) -> None:
    """A commit tells each reader every committed report, each node's once with all it
    reported since the last commit, in order, with the reader's method looked up once per
    commit (issue 17: a ``methodcaller`` and a ``notify`` per report, then a tell per report:
    dozens of each node's in a commit at the maximum)."""

    class Counted(Exposure):
        looked_up = 0

        def __getattribute__(self, name: str) -> object:
            if name == "node_readings":
                Counted.looked_up += 1
            return super().__getattribute__(name)

    registry = make(tmp_path)
    nodes = [NodeId("sim", f"{i:04d}") for i in range(3)]
    for node in nodes:
        registry.pair(PairedNode(node, str(node), "sim"))
    exposure = Counted()
    registry.listen(exposure)
    async with group_commit(registry) as commits:
        for i in range(30):
            registry.readings(nodes[i % 3], [Record(TEMPERATURE, float(i), 1_700_000_000.0 + i)])
        registry.flush()
    assert commits == [30]
    assert [(n, [r.value for r in rs]) for n, rs in exposure.readings] == [
        (nodes[n], [float(i) for i in range(n, 30, 3)]) for n in range(3)
    ]
    assert Counted.looked_up == 1


def test_what_is_heard_is_told_only_to_whoever_listens_and_while_they_do(
    registry: NodeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An advert heard (every report's first event) tells the heard hooks, a live scan's or
    the event stream's, while there are any; with none, as most of the time, nothing is
    called for it (issue 17), and a hook added later hears the next."""
    told: list[tuple[object, ...]] = []
    call = Listeners.call
    monkeypatch.setattr(
        Listeners, "call", lambda self, *args: told.append(args) or call(self, *args)
    )
    node = NodeId("sim", "0001")
    registry.heard(Heard(node, 1_700_000_000.0, rssi=-60))
    assert not [args for args in told if isinstance(args[0], Heard)]
    heard: list[Heard] = []
    stop = registry.on_heard(heard.append)
    later = Heard(node, 1_700_000_001.0, rssi=-61)
    registry.heard(later)
    stop()
    registry.heard(Heard(node, 1_700_000_002.0, rssi=-62))
    assert heard == [later]


def test_an_awake_hook_stopped_is_not_called_and_one_added_mid_report_is(
    registry: NodeRegistry,
) -> None:
    """``on_awake`` returns what stops the hook (the command queue listens only while a
    command waits); a hook added between a report's two events is told at the second."""
    node = NodeId("sim", "0001")
    registry.pair(PairedNode(node, "n", "sim"))
    reading = [Record(TEMPERATURE, 21.5, time.time())]
    first: list[NodeId] = []
    stop = registry.on_awake(first.append)
    registry.state(node, NodeState(True, time.time()))
    stop()
    registry.readings(node, reading)
    registry.state(node, NodeState(True, time.time()))
    assert first == [node]
    registry.state(node, NodeState(True, time.time()))  # a report's first event, unheard
    later: list[NodeId] = []
    registry.on_awake(later.append)
    registry.readings(node, reading)  # its second
    assert later == [node]
