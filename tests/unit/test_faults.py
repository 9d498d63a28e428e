"""The gateway's own faults (bridged/faults.py) in its /3/0/11, and a node's in its mirror."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path as FsPath

import pytest
from timers import settled

from bridged.build import build_faults
from bridged.eventlog import EventLog
from bridged.events import EventHub
from bridged.exposure.mapping import PathMap
from bridged.exposure.mirror import NodeMirror
from bridged.faults import (
    CLOCK_JUMPED,
    RADIO_DOWN,
    STORE_REFUSES_WRITES,
    ClockWatch,
    Fault,
    GatewayFaults,
)
from bridged.health import (
    DATA_REFUSED,
    UNREACHABLE,
    HealthFeed,
    HealthMonitor,
    HealthPolicy,
    NodeHealth,
)
from bridged.objects.builtin import builtin_definitions
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.registry import LiveNode, NodeNews, NodeRegistry
from bridged.store.database import connect
from bridged.store.faultlog import FaultLogStore
from bridged.store.nodes import NodeStore
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from bridged.transports.base import Heard
from bridged.transports.nodes import NodeId, PairedNode

ERROR_CODE = Path((3, 0, 11))


def test_each_fault_is_an_error_code_instance_and_none_is_0() -> None:
    tree, faults, told = watched()
    faults.raise_fault("store", STORE_REFUSES_WRITES, "the state database refuses writes")
    faults.raise_fault("transport.802154", RADIO_DOWN, "radio down: unplugged")
    faults.raise_fault("transport.802154", RADIO_DOWN, "radio down: unplugged")  # no news
    assert tree.get(ERROR_CODE) == {0: RADIO_DOWN, 1: STORE_REFUSES_WRITES}
    faults.clear("store")
    assert tree.get(ERROR_CODE) == {0: RADIO_DOWN}
    faults.clear("transport.802154")
    faults.clear("transport.802154")
    assert tree.get(ERROR_CODE) == {0: 0}
    assert [(f.source, present) for f, present in told] == [
        ("store", True),
        ("transport.802154", True),
        ("store", False),
        ("transport.802154", False),
    ]


def watched(*carried: Fault) -> tuple[ObjectTree, GatewayFaults, list[tuple[Fault, bool]]]:
    """A tree with /3/0/11, its faults (``carried`` from a previous run), what they tell."""
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(3, 0, [(11, {0: 0})])
    faults = GatewayFaults(tree, carried)
    told: list[tuple[Fault, bool]] = []
    faults.listen(lambda fault, present: told.append((fault, present)))
    return tree, faults, told


def test_a_fault_of_the_same_code_is_the_same_fault_whatever_it_says() -> None:
    """An unplugged dongle is a failed read, then a port that cannot be opened: one fault,
    raised once; another code from the same source ends the first."""
    _, faults, told = watched()
    faults.raise_fault("transport.802154", RADIO_DOWN, "radio down: read failed")
    faults.raise_fault("transport.802154", RADIO_DOWN, "radio down: could not open port")
    assert faults.present["transport.802154"].why == "radio down: could not open port"
    faults.raise_fault("transport.802154", STORE_REFUSES_WRITES, "another")
    assert [(f.code, present) for f, present in told] == [
        (RADIO_DOWN, True),
        (RADIO_DOWN, False),
        (STORE_REFUSES_WRITES, True),
    ]


def test_a_carried_fault_is_present_until_its_source_or_the_start_says_it_is_over() -> None:
    """Carried from the previous run: one found again is not raised again, one its source
    clears or that nobody reports by ``settle`` is cleared, a server's waits for it; after
    ``close`` (a stop) nothing ends."""
    tree, faults, told = watched(
        Fault("transport.802154", RADIO_DOWN, "radio down: read failed"),
        Fault("transport.ble", RADIO_DOWN, "radio down: no adapter"),
        Fault("store", STORE_REFUSES_WRITES, "disk full"),
        Fault("server coap://s", UNREACHABLE, "registration-failed"),
    )
    assert tree.get(ERROR_CODE) == {0: UNREACHABLE, 1: RADIO_DOWN, 2: STORE_REFUSES_WRITES}
    faults.raise_fault("transport.802154", RADIO_DOWN, "radio down: could not open port")
    faults.clear("transport.ble")
    faults.settle({"server coap://s"})
    ended = [(Fault("transport.ble", RADIO_DOWN, "radio down: no adapter"), False)]
    ended.append((Fault("store", STORE_REFUSES_WRITES, "disk full"), False))
    assert told == ended
    assert tree.get(ERROR_CODE) == {0: UNREACHABLE, 1: RADIO_DOWN}
    faults.close()
    faults.clear("transport.802154")
    faults.clear("server coap://s")
    assert told == ended


def test_a_fault_carried_across_a_restart_of_its_source_ends_only_when_found_gone() -> None:
    """A reload restarting two radios: the one whose start finds its fault again keeps it,
    not raised again; the one whose start reports nothing is over at ``settle``."""
    _, faults, told = watched()
    down = Fault("transport.802154", RADIO_DOWN, "radio down: read failed")
    lost = Fault("transport.ble", RADIO_DOWN, "radio down: no adapter")
    for fault in (down, lost):
        faults.raise_fault(fault.source, fault.code, fault.why)
        faults.carry(fault.source)
    faults.raise_fault(down.source, RADIO_DOWN, "radio down: could not open port")
    faults.settle(())
    assert told == [(down, True), (lost, True), (lost, False)]
    assert set(faults.present) == {down.source}


def test_a_nodes_device_specific_code_is_shown_in_its_device_object() -> None:
    tree = ObjectTree(builtin_definitions(), "dev0")
    mirror = NodeMirror(tree, PathMap(prefixed=True))
    health = NodeHealth(available=False, problem="bind key does not decrypt its adverts")
    assert mirror.show_health(NodeId("ble", "A4:C1:38:00:00:01"), health.resources())
    assert tree.get(Path((3, 0, 11), "dev0")) == {0: UNREACHABLE, 1: DATA_REFUSED}


def test_a_clock_jump_is_told_as_a_moment_and_leaves_no_code() -> None:
    tree, faults, told = watched()
    wall, mono = [1_000.0], [50.0]
    watch = ClockWatch(faults, clock=lambda: wall[0], monotonic=lambda: mono[0])
    wall[0] += 10
    mono[0] += 10
    watch.check()  # time passed, the clock did not jump
    assert told == []
    wall[0] += 3600
    watch.check()
    assert [(f.code, f.why, present) for f, present in told] == [
        (CLOCK_JUMPED, "the clock jumped by +3600 s", True),
        (CLOCK_JUMPED, "the clock jumped by +3600 s", False),
    ]
    assert tree.get(ERROR_CODE) == {0: 0}


async def test_a_nodes_own_error_codes_join_the_gateways_and_never_overwrite_them() -> None:
    node = NodeId("802154", "00124b0001020304")
    live = LiveNode(PairedNode(node, "boiler", "lwm2m"), {3: [0]})
    now = [100.0]
    monitor = HealthMonitor(HealthPolicy(nodes={node: 60}), monotonic=lambda: now[0])
    feed = HealthFeed(monitor, lambda _node: None)
    feed.node_added(live)
    tree = ObjectTree(builtin_definitions(), "dev0")
    mirror = NodeMirror(tree, PathMap(prefixed=True))
    mirror.sync(live)
    monitor.listen(lambda _node, health, _before: mirror.show_health(node, health.resources()))
    monitor.expire()  # not yet due
    own = [Record(Path((3, 0, 11, 0)), 5)]  # the node's own: out of memory
    monitor.news(node, NodeNews(heard=monitor.clock(), readings=own))  # its report
    assert tree.get(Path((3, 0, 11), "dev0")) == {0: 5}
    now[0] += 61  # its timeout passes
    monitor.expire()
    assert tree.get(Path((3, 0, 11), "dev0")) == {0: UNREACHABLE, 1: 5}
    mirror.apply(live, [Record(Path((3, 0, 11, 0)), 0)])  # a stale report is not set over it
    assert tree.get(Path((3, 0, 11), "dev0")) == {0: UNREACHABLE, 1: 5}


async def test_the_gateway_looks_at_its_clock_once_per_group_commit_not_per_advert(
    tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clock check was a hook of every advert heard (a Python call and two clock reads
    each, issue 17); the readings a jump makes wrong are those of a commit: it is checked
    once per group commit, whatever the commit carries."""
    checks: list[object] = []
    monkeypatch.setattr(ClockWatch, "check", lambda self, *args: checks.append(args))
    conn = connect(tmp_path / "state.db")
    registry = NodeRegistry(NodeStore(conn), SecretStore(tmp_path / "s.json"), ReadingStore(conn))
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(3, 0, [(11, {0: 0})])
    build_faults(tree, registry, EventHub(), EventLog(tree, FaultLogStore(conn)))
    node = NodeId("sim", "0001")
    registry.pair(PairedNode(node, "n", "sim"))
    commit = asyncio.create_task(registry.run())  # the group commit
    await settled()
    for i in range(5):
        registry.heard(Heard(node, 1_700_000_000.0 + i, rssi=-60))
        registry.heard(Heard(NodeId("sim", "0002"), 1_700_000_000.0 + i))  # not paired
        registry.readings(node, [Record(Path.parse("/3303/0/5700"), 20.0 + i, 1_700_000_000.0)])
    assert checks == []
    registry.flush()
    assert checks == [(5,)]
    commit.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await commit
