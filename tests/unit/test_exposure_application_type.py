"""5750 Application Type in every exposure mode: the node's name, unless the node's own data
fills it (3347 Push button, where the BLE decoders put the button event type): the rule of
bridged/exposure/mirror.py ``initial_values``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path as FsPath

import pytest

from bridged.exposure.endpoints import EndpointsExposure
from bridged.exposure.gateway import GatewayExposure
from bridged.exposure.instances import InstancesExposure
from bridged.objects.builtin import builtin_definitions
from bridged.objects.errors import NotFound
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record, Value
from bridged.registry import NodeRegistry, RegistryListener
from bridged.store.database import connect
from bridged.store.nodes import NodeId, NodeStore, PairedNode
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from bridged.transports.ble.measurements import Measurement, RecordMapper

NODE = NodeId("ble", "A4:C1:38:0A:0B:0C")
Reader = Callable[[int, int], Value]
"""The value upstream of the node's node-local /oid/0/5750."""


def registry(tmp_path: FsPath) -> NodeRegistry:
    conn = connect(tmp_path / "state.db")
    return NodeRegistry(NodeStore(conn), SecretStore(tmp_path / "secrets.json"), ReadingStore(conn))


def instances(reg: NodeRegistry) -> tuple[RegistryListener, Reader]:
    tree = ObjectTree(builtin_definitions())
    exposure = InstancesExposure(tree, reg.store)

    def read(oid: int, rid: int) -> Value:
        path = exposure.paths.upstream(NODE, Path((oid, 0, rid)))
        assert path is not None
        return tree.get(path)

    return exposure, read


def gateway(reg: NodeRegistry) -> tuple[RegistryListener, Reader]:
    exposure = GatewayExposure(ObjectTree(builtin_definitions()), reg.store)

    def read(oid: int, rid: int) -> Value:
        prefix = exposure.prefix(NODE)
        assert prefix is not None
        tree = exposure.end_device_tree(prefix)
        assert tree is not None
        return tree.get(Path((oid, 0, rid), prefix))

    return exposure, read


def endpoints(reg: NodeRegistry) -> tuple[RegistryListener, Reader]:
    exposure = EndpointsExposure(builtin_definitions(), "gw-1", ())

    def read(oid: int, rid: int) -> Value:
        return exposure.endpoints[NODE].tree.get(Path((oid, 0, rid)))

    return exposure, read


Mode = Callable[[NodeRegistry], tuple[RegistryListener, Reader]]
MODES = pytest.mark.parametrize("mode", [instances, gateway, endpoints])


def paired(tmp_path: FsPath, mode: Mode, name: str, profile: str) -> tuple[NodeRegistry, Reader]:
    """A registry shown upstream by ``mode``, with NODE paired as ``name``."""
    reg = registry(tmp_path)
    listener, read = mode(reg)
    reg.listen(listener)
    reg.pair(PairedNode(NODE, name, profile))
    return reg, read


@MODES
def test_a_button_shows_its_event_and_a_sensor_the_node_name(tmp_path: FsPath, mode: Mode) -> None:
    reg, read = paired(tmp_path, mode, "front door", "bthome")
    mapper = RecordMapper()
    press = [Measurement("button", "press"), Measurement("temperature", 21.5, "Cel")]
    reg.readings(NODE, mapper.records(press, None, [1]))
    assert read(3347, 5750) == "press"  # the node's data, not its name
    assert read(3347, 5500) is True
    assert read(3303, 5750) == "front door"  # no 5750 in the node's data: its name

    long = [Measurement("button", "long_press"), Measurement("temperature", 21.75, "Cel")]
    reg.readings(NODE, mapper.records(long, None, [2]))
    assert read(3347, 5750) == "long_press"
    assert read(3347, 5501) == 2
    assert read(3303, 5750) == "front door"
    assert read(3303, 5700) == 21.75


@MODES
def test_a_button_never_carries_the_name_even_before_its_first_event(
    tmp_path: FsPath, mode: Mode
) -> None:
    reg, read = paired(tmp_path, mode, "front door", "bthome")
    reg.objects(NODE, {3347: [0], 3303: [0]})  # announced before any value
    with pytest.raises(NotFound):
        read(3347, 5750)
    assert read(3303, 5750) == "front door"
    reg.readings(NODE, RecordMapper().records([Measurement("button", "double_press")], None, [1]))
    assert read(3347, 5750) == "double_press"


@MODES
def test_a_5750_the_node_reports_itself_wins(tmp_path: FsPath, mode: Mode) -> None:
    reg, read = paired(tmp_path, mode, "cellar", "lwm2m")
    reg.readings(
        NODE, [Record(Path.parse("/3303/0/5700"), 9.5), Record(Path.parse("/3303/0/5750"), "wine")]
    )
    assert read(3303, 5750) == "wine"
