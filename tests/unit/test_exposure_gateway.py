"""The gateway mode's end devices tell every party of a change in their trees (the
observations of /devN paths, the engine's view of end devices), and one party's failure is
not the others' loss."""

from __future__ import annotations

import logging
from pathlib import Path as FsPath

import pytest

from bridged.exposure.gateway import GatewayExposure
from bridged.exposure.mapping import PathMap
from bridged.exposure.mirror import NodeMirror
from bridged.health import NodeHealth
from bridged.objects.builtin import builtin_definitions
from bridged.objects.ids import LwM2MGateway
from bridged.objects.linkformat import format_links, object_links
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.registry import NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeId, NodeStore, PairedNode
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore

NODE = NodeId("sim", "0001")


def test_an_end_device_listener_that_raises_does_not_stop_the_others(
    tmp_path: FsPath, caplog: pytest.LogCaptureFixture
) -> None:
    conn = connect(tmp_path / "state.db")
    reg = NodeRegistry(NodeStore(conn), SecretStore(tmp_path / "secrets.json"), ReadingStore(conn))
    exposure = GatewayExposure(ObjectTree(builtin_definitions()), reg.store)
    reg.listen(exposure)

    def broken(path: Path) -> None:
        raise RuntimeError("a listener's own defect")

    seen: list[str] = []
    exposure.subscribe(broken)
    exposure.subscribe(lambda path: seen.append(str(path)))
    reg.pair(PairedNode(NODE, "n", "sim"))
    prefix = exposure.prefix(NODE)
    with caplog.at_level(logging.ERROR, logger="bridged.objects.listeners"):
        reg.readings(NODE, [Record(Path.parse("/3303/0/5700"), 21.5)])
        reg.unpair(NODE)
    assert f"/{prefix}/3303/0/5700" in seen
    assert seen[-1] == f"/{prefix}"  # the end device went away
    failures = [r for r in caplog.records if "end device tree changes" in r.getMessage()]
    assert failures and all(r.exc_info for r in failures)


def _answers(tree: ObjectTree) -> object:
    """What a server learns of an end device's tree: each object's Read and Discover."""
    objects = [Path((oid,), tree.prefix) for oid in tree.object_ids()]
    return [tree.read(o) for o in objects], [tree.resource_paths(o) for o in objects]


def test_a_quiet_end_device_kept_frozen_answers_as_one_built_at_once(tmp_path: FsPath) -> None:
    conn = connect(tmp_path / "state.db")
    reg = NodeRegistry(NodeStore(conn), SecretStore(tmp_path / "secrets.json"), ReadingStore(conn))
    exposure = GatewayExposure(ObjectTree(builtin_definitions()), reg.store)
    reg.listen(exposure)
    node = reg.pair(PairedNode(NODE, "n", "sim"))
    reg.objects(NODE, {3303: [0], 3311: [0]})
    health = NodeHealth(timeout=60.0, battery=80, bearer=21)
    exposure.node_health(NODE, health)
    prefix = exposure.prefix(NODE)
    assert prefix is not None and exposure._end_devices[NODE].frozen is not None
    eager = ObjectTree(exposure.tree.definitions, prefix)
    mirror = NodeMirror(eager, PathMap(prefixed=True))
    mirror.sync(reg.live[NODE])
    mirror.show_health(NODE, health.resources())
    built = exposure.end_device_tree(prefix)
    assert built is not None and _answers(built) == _answers(eager)
    assert [p.ids for p in built.instances()] == [(3, 0), (4, 0), (3303, 0), (3311, 0)]
    seen: list[str] = []
    exposure.subscribe(lambda path: seen.append(str(path)))
    reg.readings(NODE, [Record(Path.parse("/3303/0/5700"), 21.5)])
    assert node.id == NODE and seen == [f"/{prefix}/3303/0/5700"]
    assert built.read(Path.parse(f"/{prefix}/3303/0/5700"))[0].value == 21.5


def test_end_devices_of_a_kind_share_one_object_list(tmp_path: FsPath) -> None:
    """Nodes of one kind have one /25/x/3 text (issue 17: formatting each node's twice was a
    tenth of a 5,000-node start), and it is the object list of each node's own tree, also
    after one of them reports other objects."""
    conn = connect(tmp_path / "state.db")
    reg = NodeRegistry(NodeStore(conn), SecretStore(tmp_path / "secrets.json"), ReadingStore(conn))
    exposure = GatewayExposure(ObjectTree(builtin_definitions()), reg.store)
    reg.listen(exposure)
    nodes = [NodeId("sim", f"000{i}") for i in range(3)]
    for node in nodes:
        reg.pair(PairedNode(node, "n", "sim"))
        reg.objects(node, {3303: [0], 3311: [1, 0]})
        exposure.node_health(node, NodeHealth(timeout=60.0, battery=80, bearer=21))
    reg.objects(nodes[2], {3303: [0]})

    def listed(node: NodeId) -> str:
        device = exposure._end_devices[node]
        value = exposure.tree.get(
            Path((LwM2MGateway.OBJECT, device.instance, LwM2MGateway.IOT_DEVICE_OBJECTS))
        )
        assert isinstance(value, str)
        return value

    def own(node: NodeId) -> str:
        prefix = exposure.prefix(node)
        tree = exposure.end_device_tree(prefix) if prefix else None
        assert tree is not None
        return format_links(object_links(tree.objects()))

    first, second, other = (listed(node) for node in nodes)
    assert first is second
    assert (first, other) == (own(nodes[0]), own(nodes[2])) and first != other
    assert "</3311/1>" in first and "3311" not in other
