"""A node id as a value: hashed, compared and ordered with no Python call, the same when
copied, pickled or parsed again, and no bigger than the dataclass it replaced."""

from __future__ import annotations

import copy
import pickle
import sys
from collections.abc import Callable
from pathlib import Path as FsPath
from types import FrameType

import pytest

from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.registry import NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeStore
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from bridged.transports.nodes import NodeId, NodeIdError, PairedNode


def python_calls(operation: Callable[[], object]) -> list[str]:
    """The Python functions ``operation`` calls (the profiler's "call" events, not C calls)."""
    called: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code is not operation.__code__:
            called.append(frame.f_code.co_qualname)

    sys.setprofile(profile)
    try:
        operation()
    finally:
        sys.setprofile(None)
    return called


def test_a_node_id_is_hashed_compared_and_ordered_with_no_python_call() -> None:
    """A node id keys the lookups of every report a node makes, often by an equal id that is
    another object (the transport's, not the registry's): hashing, comparing and ordering
    call no Python function."""
    node, twin = NodeId("ble", "A4:C1:38:00:11:22"), NodeId.parse("ble:A4:C1:38:00:11:22")
    other = NodeId("ble", "A4:C1:38:00:11:33")
    table = {node: "live"}
    assert twin is not node and twin == node and hash(twin) == hash(node)
    assert python_calls(lambda: (hash(twin), table[twin], twin == node, node < other)) == []
    assert table.get(other) is None and node != other


def test_the_order_is_the_transport_then_the_address() -> None:
    ordered = [NodeId("802154", "ff"), NodeId("ble", "10"), NodeId("ble", "9"), NodeId("sim", "1")]
    for i, a in enumerate(ordered):
        for j, b in enumerate(ordered):
            assert (a < b, a <= b, a > b, a >= b, a == b) == (i < j, i <= j, i > j, i >= j, i == j)


def test_a_node_id_copied_pickled_or_printed_is_the_same_id() -> None:
    node = NodeId("802154", "00124b0001020304")
    for again in (copy.copy(node), copy.deepcopy(node), pickle.loads(pickle.dumps(node))):
        assert again == node and type(again) is NodeId
    assert (node.transport, node.address) == ("802154", "00124b0001020304")
    assert str(node) == "802154:00124b0001020304" and f"{node}" == str(node)
    assert repr(node) == "NodeId(transport='802154', address='00124b0001020304')"
    assert NodeId(transport="ble", address="x") == NodeId("ble", "x")


@pytest.mark.parametrize(("transport", "address"), [("BLE", "x"), ("b-le", "x"), ("ble", "")])
def test_a_node_id_is_checked_when_made(transport: str, address: str) -> None:
    with pytest.raises(NodeIdError):
        NodeId(transport, address)
    with pytest.raises(NodeIdError):
        NodeId("ble", "a b")


def test_a_node_id_takes_no_more_memory_than_the_three_slots_it_had() -> None:
    class ThreeSlots:
        __slots__ = ("_hash", "address", "transport")

    assert sys.getsizeof(NodeId("ble", "A4:C1:38:00:11:22")) <= sys.getsizeof(ThreeSlots())


def test_readings_reported_under_an_equal_id_are_the_paired_nodes(tmp_path: FsPath) -> None:
    """What lands: a transport reports with a node id of its own making (equal to the paired
    one, another object); the registry finds the paired node by it and keeps its value."""
    conn = connect(tmp_path / "state.db")
    paired = NodeId("ble", "A4:C1:38:00:11:22")
    registry = NodeRegistry(
        NodeStore(conn), SecretStore(tmp_path / "secrets.json"), ReadingStore(conn)
    )
    registry.pair(PairedNode(paired, "kitchen", "bthome"))
    temperature = Path.parse("/3303/0/5700")
    registry.readings(NodeId.parse(str(paired)), [Record(temperature, 21.5, 1_700_000_000.0)])
    registry.flush()
    assert registry.live[paired].values[temperature].value == 21.5
