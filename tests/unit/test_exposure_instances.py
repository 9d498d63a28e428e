"""The instances exposure mode (bridged/exposure/instances.py)."""

from __future__ import annotations

import time
from pathlib import Path as FsPath

import pytest

from bridged.exposure.instances import InstancesExposure
from bridged.health import NodeHealth
from bridged.objects.builtin import builtin_definitions
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.registry import NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeId, NodeStore, PairedNode
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from bridged.transports.simulated import SimulatedTransport


def gateway(
    state: FsPath,
) -> tuple[NodeRegistry, ObjectTree, InstancesExposure, SimulatedTransport]:
    conn = connect(state / "state.db")
    registry = NodeRegistry(NodeStore(conn), SecretStore(state / "s.json"), ReadingStore(conn))
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(3303, 0, [(5700, 19.5)])  # the gateway's own thermometer
    exposure = InstancesExposure(tree, registry.store)
    sim = SimulatedTransport({"nodes": 3}, registry)
    registry.attach(sim)
    registry.listen(exposure)
    return registry, tree, exposure, sim


def test_nodes_become_instances_named_after_them(tmp_path: FsPath) -> None:
    registry, tree, exposure, sim = gateway(tmp_path)
    a, b, _ = sim.nodes.values()
    registry.pair(PairedNode(a.id, "kitchen", "sim"))
    registry.pair(PairedNode(b.id, "hall", "sim"))
    assert tree.instance_ids(3303) == [0, 1, 2]  # 0 stays the gateway's
    assert tree.get(Path((3303, 1, 5750))) == "kitchen"
    assert tree.get(Path((3303, 2, 5750))) == "hall"
    now = time.time()
    sim.report(a, now)
    assert tree.get(Path((3303, 1, 5700))) == a.values(now)[0].value
    assert tree.get(Path((3303, 0, 5700))) == 19.5
    assert exposure.paths.local(Path((3303, 2, 5700))) == (b.id, Path((3303, 0, 5700)))
    assert exposure.paths.local(Path((3303, 0, 5700))) is None


def test_instance_ids_survive_restart_and_repairing(tmp_path: FsPath) -> None:
    registry, tree, _, sim = gateway(tmp_path)
    a, b, c = sim.nodes.values()
    for node, name in ((a, "a"), (b, "b"), (c, "c")):
        registry.pair(PairedNode(node.id, name, "sim"))
    registry.unpair(b.id)
    assert tree.instance_ids(3303) == [0, 1, 3]
    registry.pair(PairedNode(b.id, "b", "sim"))
    assert tree.get(Path((3303, 2, 5750))) == "b"

    _, tree2, _, _ = gateway(tmp_path)
    assert tree2.instance_ids(3303) == [0, 1, 2, 3]
    assert [tree2.get(Path((3303, i, 5750))) for i in (1, 2, 3)] == ["a", "b", "c"]


def test_unpairing_deletes_the_instances(tmp_path: FsPath) -> None:
    registry, tree, exposure, sim = gateway(tmp_path)
    a = next(iter(sim.nodes.values()))
    registry.pair(PairedNode(a.id, "kitchen", "sim"))
    assert tree.instance_ids(3311) == [0]
    registry.unpair(a.id)
    assert tree.instance_ids(3311) == []
    assert exposure.paths.local(Path((3311, 0))) is None


def test_a_nodes_health_instances_follow_its_health_and_go_with_it(tmp_path: FsPath) -> None:
    registry, tree, exposure, sim = gateway(tmp_path)
    a, b, _ = sim.nodes.values()
    registry.pair(PairedNode(a.id, "kitchen", "sim"))
    registry.pair(PairedNode(b.id, "hall", "sim"))
    exposure.node_health(a.id, NodeHealth(rssi=-70))
    exposure.node_health(b.id, NodeHealth())
    available = {tree.get(Path((3200, i, 5750))): i for i in tree.instance_ids(3200)}
    assert set(available) == {"kitchen available", "hall available"}
    signal = {tree.get(Path((3300, i, 5750))): i for i in tree.instance_ids(3300)}
    assert set(signal) == {"kitchen signal"}
    exposure.node_health(a.id, NodeHealth(available=False, rssi=-80))
    assert tree.get(Path((3200, available["kitchen available"], 5500))) is False
    assert tree.get(Path((3300, signal["kitchen signal"], 5700))) == -80
    registry.unpair(a.id)
    assert [tree.get(Path((3200, i, 5750))) for i in tree.instance_ids(3200)] == ["hall available"]
    assert tree.instance_ids(3300) == []


def test_a_value_of_an_unannounced_instance_exposes_it(tmp_path: FsPath) -> None:
    registry, tree, _, _ = gateway(tmp_path)
    node = NodeId("ble", "A4:C1:38:00:11:22")
    registry.pair(PairedNode(node, "attic", "bthome"))
    registry.readings(node, [Record(Path((3304, 0, 5700)), 55.5)])
    assert tree.get(Path((3304, 0, 5700))) == 55.5
    assert tree.get(Path((3304, 0, 5750))) == "attic"


def test_objects_without_a_definition_are_skipped(
    tmp_path: FsPath, caplog: pytest.LogCaptureFixture
) -> None:
    registry, tree, _, _ = gateway(tmp_path)
    node = NodeId("ble", "A4:C1:38:00:11:22")
    registry.pair(PairedNode(node, "attic", "bthome"))
    registry.readings(node, [Record(Path((33333, 0, 1)), 1)] * 3)
    assert 33333 not in tree.object_ids()
    assert sum("33333" in r.message for r in caplog.records) == 1


def test_the_node_battery_becomes_a_generic_sensor_named_after_the_node(tmp_path: FsPath) -> None:
    registry, tree, exposure, _ = gateway(tmp_path)
    node = NodeId("ble", "A4:C1:38:00:11:22")
    registry.pair(PairedNode(node, "attic", "bthome"))
    registry.readings(node, [Record(Path((3303, 0, 5700)), 19.5)])
    assert 3300 not in tree.object_ids()  # no level reported yet
    registry.readings(node, [Record(Path((3, 0, 0)), "Xiaomi"), Record(Path((3, 0, 9)), 87)])
    assert 3 not in tree.object_ids()  # the node's /3 is not the gateway's
    [battery] = tree.instance_ids(3300)
    assert tree.get(Path((3300, battery, 5700))) == 87.0
    assert tree.get(Path((3300, battery, 5701))) == "%"
    assert tree.get(Path((3300, battery, 5750))) == "attic battery"
    registry.readings(node, [Record(Path((3, 0, 9)), 86)])
    assert tree.get(Path((3300, battery, 5700))) == 86.0
    assert exposure.paths.local(Path((3300, battery, 5700))) == (node, Path((3, 0, 9)))
    assert exposure.paths.upstream(node, Path((3, 0, 9))) == Path((3300, battery, 5700))
    assert exposure.paths.upstream(node, Path((3, 0, 0))) is None


def test_the_battery_instance_is_stable_and_goes_with_the_node(tmp_path: FsPath) -> None:
    registry, tree, _, _ = gateway(tmp_path)
    a, b = NodeId("ble", "A4:C1:38:00:00:0A"), NodeId("ble", "A4:C1:38:00:00:0B")
    for node, name in ((a, "a"), (b, "b")):
        registry.pair(PairedNode(node, name, "bthome"))
        registry.readings(node, [Record(Path((3, 0, 9)), 50), Record(Path((3300, 0, 5700)), 1.0)])
    ids = {tree.get(Path((3300, i, 5750))): i for i in tree.instance_ids(3300)}
    assert set(ids) == {"a", "b", "a battery", "b battery"}
    registry.unpair(a)
    assert "a battery" not in {tree.get(Path((3300, i, 5750))) for i in tree.instance_ids(3300)}
    registry2, tree2, _, _ = gateway(tmp_path)  # a restart
    registry2.pair(PairedNode(a, "a", "bthome"))
    registry2.readings(a, [Record(Path((3, 0, 9)), 49)])
    registry2.readings(b, [Record(Path((3, 0, 9)), 48)])
    assert tree2.get(Path((3300, ids["a battery"], 5700))) == 49.0
    assert tree2.get(Path((3300, ids["b battery"], 5700))) == 48.0
