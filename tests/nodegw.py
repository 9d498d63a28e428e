"""A gateway with nodes for the node-operation tests: real SQLite, a transport, the instances
exposure, the node registry, the command queue and device management over them (the same parts
the daemon wires, without the upstream socket). ``node_gateway`` has the simulated transport
and its nodes at hand (unit tests); ``air_gateway`` takes any transport of tests/airs.py."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path as FsPath

from airs import Air, AirKind, HandedOver, make_air

from bridged.commands import CommandQueue
from bridged.engine.dm import DeviceManagement
from bridged.exposure.instances import InstancesExposure
from bridged.objects.builtin import builtin_definitions
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.operations import NodeOperations
from bridged.registry import NodeRegistry
from bridged.store.commands import Command
from bridged.store.database import connect
from bridged.store.nodes import NodeId, NodeStore, PairedNode
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from bridged.transports.simulated import SimulatedNode, SimulatedTransport


class Clock:
    """Seconds since the epoch that only move when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class NodeGateway:
    registry: NodeRegistry
    tree: ObjectTree
    exposure: InstancesExposure
    sim: SimulatedTransport
    commands: CommandQueue
    operations: NodeOperations
    dm: DeviceManagement
    clock: Clock
    ended: list[Command]

    @property
    def awake(self) -> SimulatedNode:
        """sim:0001, paired, not sleepy: its instances are /33xx/1."""
        return self.sim.nodes[next(iter(self.sim.nodes))]

    @property
    def sleepy(self) -> SimulatedNode:
        """sim:0002, paired as sleepy: its instances are /33xx/2; asleep until it reports."""
        return list(self.sim.nodes.values())[1]

    def wake(self, node: SimulatedNode) -> None:
        """``node`` reports (and, if sleepy, stays reachable for a minute)."""
        self.sim.report(node, time.time())

    def sleep(self, node: SimulatedNode) -> None:
        node.last_report = float("-inf")


def node_gateway(
    state: FsPath, *, delay: float = 0.0, timeout: float = 5.0, ttl: float = 3600.0
) -> NodeGateway:
    """Three simulated nodes; the first two paired (the second as sleepy), the third not.
    The gateway has an instance of its own of each object the nodes have (/33xx/0)."""
    conn = connect(state / "state.db")
    clock = Clock()
    registry = NodeRegistry(NodeStore(conn), SecretStore(state / "s.json"), ReadingStore(conn))
    tree = ObjectTree(builtin_definitions())
    for oid in (3303, 3304, 3311):
        tree.create_instance(oid, 0, [(5750, "gateway")])
    exposure = InstancesExposure(tree, registry.store)
    sim = SimulatedTransport({"nodes": 3, "sleepy": 2, "awake": 60, "delay": delay}, registry)
    registry.attach(sim)
    registry.listen(exposure)
    commands = CommandQueue(conn, registry, clock=clock, ttl=ttl, timeout=timeout)
    ended: list[Command] = []
    commands.listen(ended.append)
    operations = NodeOperations(registry, exposure.paths, commands, timeout=timeout)
    dm = DeviceManagement(tree, nodes=operations)
    a, b, _ = sim.nodes.values()
    registry.pair(PairedNode(a.id, "kitchen", "sim"))
    registry.pair(PairedNode(b.id, "cellar", "sim", sleepy=True))
    return NodeGateway(registry, tree, exposure, sim, commands, operations, dm, clock, ended)


@dataclass
class AirGateway:
    """A gateway whose nodes are on the air of a transport (tests/airs.py): the same parts as
    ``NodeGateway``, over any transport."""

    registry: NodeRegistry
    tree: ObjectTree
    exposure: InstancesExposure
    air: Air
    commands: CommandQueue
    operations: NodeOperations
    dm: DeviceManagement
    handed: HandedOver

    def path(self, node: NodeId, local: Path) -> str:
        """The gateway path of the node's ``local`` path (instances mode)."""
        target = self.exposure.paths.upstream(node, local)
        assert target is not None, f"{local} of {node} is not exposed"
        return str(target)


@contextlib.asynccontextmanager
async def air_gateway(
    state: FsPath, kind: AirKind, *, timeout: float = 10.0
) -> AsyncIterator[AirGateway]:
    """A gateway over the ``kind`` air (no node on it yet), with instances of its own of the
    objects the nodes have (/3/0, /3303/0, /3304/0, /3311/0)."""
    conn = connect(state / "state.db")
    registry = NodeRegistry(NodeStore(conn), SecretStore(state / "s.json"), ReadingStore(conn))
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(3, 0, [(0, "ACME"), (16, "U")])
    for oid in (3303, 3304, 3311):
        tree.create_instance(oid, 0, [(5750, "gateway")])
    exposure = InstancesExposure(tree, registry.store)
    registry.listen(exposure)
    handed = HandedOver(registry)
    commands = CommandQueue(conn, registry, timeout=timeout)
    operations = NodeOperations(registry, exposure.paths, commands, timeout=timeout)
    dm = DeviceManagement(tree, nodes=operations)
    air = make_air(kind.kind, registry, state, kind.bluez)
    await air.start()
    try:
        yield AirGateway(registry, tree, exposure, air, commands, operations, dm, handed)
    finally:
        await commands.close()
        await air.stop()
        conn.close()
