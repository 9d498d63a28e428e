"""The transport contract (transports/base.py) and the simulated transport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

import pytest

from bridged.objects.errors import MethodNotAllowed, NotFound, ServiceUnavailable
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.store.nodes import NodeId, PairedNode
from bridged.transports.base import (
    ENTRY_POINT_GROUP,
    Heard,
    NodeState,
    TransportConfigError,
    TransportLoadError,
    UnknownTransport,
    transport_class,
)
from bridged.transports.simulated import SWITCH, TEMPERATURE, SimulatedNode, SimulatedTransport


class Recorder:
    """Collects what a transport reports."""

    def __init__(self) -> None:
        self.heard_: list[Heard] = []
        self.readings_: list[tuple[NodeId, list[Record]]] = []
        self.objects_: dict[NodeId, Mapping[int, Sequence[int]]] = {}
        self.states: list[tuple[NodeId, NodeState]] = []

    def heard(self, heard: Heard) -> None:
        self.heard_.append(heard)

    def readings(self, node: NodeId, records: Sequence[Record]) -> None:
        self.readings_.append((node, list(records)))

    def values(self, node: NodeId, records: Sequence[Record]) -> None:
        pass

    def session(self, node: NodeId, session: Mapping[str, Any] | None) -> None:
        pass

    async def durable(self) -> None:
        pass

    def objects(self, node: NodeId, objects: Mapping[int, Sequence[int]]) -> None:
        self.objects_[node] = objects

    def state(self, node: NodeId, state: NodeState) -> None:
        self.states.append((node, state))

    def admit(self, heard: Heard) -> bool:
        return False


def test_transports_are_found_by_entry_point_name() -> None:
    assert transport_class("sim") is SimulatedTransport


def test_an_unknown_transport_lists_the_installed_ones() -> None:
    with pytest.raises(UnknownTransport, match=r"'zigbee'.*known: .*sim"):
        transport_class("zigbee")


def test_a_transport_that_fails_to_import_is_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = metadata.EntryPoint("broken", "no_such_module_for_bridged:Radio", ENTRY_POINT_GROUP)
    monkeypatch.setattr(
        metadata, "entry_points", lambda **select: metadata.EntryPoints([broken]).select(**select)
    )
    with pytest.raises(TransportLoadError) as raised:
        transport_class("broken")
    message = str(raised.value)
    assert "'broken'" in message and "no_such_module_for_bridged" in message
    assert "\n" not in message
    assert isinstance(raised.value, UnknownTransport)  # refused like a missing one


def paired(sim: SimulatedTransport, node: NodeId) -> None:
    sim.pair(PairedNode(node, "n", "sim"), {})


def test_unpaired_nodes_are_only_heard() -> None:
    events = Recorder()
    sim = SimulatedTransport({"nodes": 2}, events)
    a, b = list(sim.nodes.values())
    paired(sim, a.id)
    sim.report(a, time.time())
    sim.report(b, time.time())
    assert [h.node for h in events.heard_] == [a.id, b.id]
    assert [n for n, _ in events.readings_] == [a.id]
    assert {r.path for r in events.readings_[0][1]} >= {TEMPERATURE, SWITCH}
    assert events.objects_[a.id] == {3303: [0], 3304: [0], 3311: [0]}
    sim.unpair(a.id)
    sim.report(a, time.time())
    assert len(events.readings_) == 1


async def test_reads_and_writes_reach_the_node() -> None:
    sim = SimulatedTransport({"nodes": 1}, Recorder())
    node = next(iter(sim.nodes))
    paired(sim, node)
    await sim.write(node, SWITCH, [Record(SWITCH, True)])
    assert [r.value for r in await sim.read(node, SWITCH)] == [True]
    assert len(await sim.read(node, Path((3303,)))) == 1
    with pytest.raises(MethodNotAllowed):
        await sim.write(node, TEMPERATURE, [Record(TEMPERATURE, 3.0)])
    with pytest.raises(NotFound):
        await sim.read(node, Path((3306, 0)))
    with pytest.raises(NotFound):
        await sim.read(NodeId("sim", "9999"), SWITCH)


async def test_a_sleepy_node_is_reachable_only_just_after_it_reports() -> None:
    sim = SimulatedTransport({"nodes": 1, "sleepy": 1, "awake": 60}, Recorder())
    node = next(iter(sim.nodes.values()))
    paired(sim, node.id)
    with pytest.raises(ServiceUnavailable):
        await sim.read(node.id, SWITCH)
    sim.report(node, time.time())
    assert await sim.read(node.id, SWITCH)


async def test_the_simulation_reports_by_itself() -> None:
    events = Recorder()
    sim = SimulatedTransport({"nodes": 2, "interval": 0.01}, events)
    await sim.start()
    try:
        while len(events.heard_) < 4:
            await asyncio.sleep(0.01)
    finally:
        await sim.stop()
    assert {h.node for h in events.heard_} == set(sim.nodes)


@pytest.mark.parametrize(
    "config", [{"nodes": "3"}, {"nodes": -1}, {"interval": 0}, {"sleepy": True}]
)
def test_bad_configuration_names_the_key(config: dict[str, object]) -> None:
    key = next(iter(config))
    with pytest.raises(TransportConfigError, match=f"simulated.{key}"):
        SimulatedTransport(config, Recorder())


def test_a_simulated_node_is_slotted() -> None:
    """The benchmarks simulate 10,000 nodes (issue 17): a simulated node holds its state in
    slots, with no dict of its own."""
    node = SimulatedNode(1, sleepy=False)
    assert not hasattr(node, "__dict__")
    node.firmware = b"image"
    assert node.firmware == b"image"
