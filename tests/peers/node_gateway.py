"""A gateway process for the restart test: ``python -m peers.node_gateway STATE_DIR SERVER_URI``.

It wires what the daemon wires for store-and-forward (state database, node registry, the
simulated transport reporting fast, the instances exposure, the LwM2M client with node
operations, the command queue, delivery) and prints one JSON line per event on stdout, flushed,
so the test knows what the process had made durable when it killed it:

* ``{"instances": {node: [gateway instance paths]}}`` once at start;
* ``{"committed": [[gateway path, time], ...]}`` after each group commit, listing every reading
  the transport handed over before it (printed after the commit returned: durable).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path as FsPath

from bridged.commands import CommandQueue
from bridged.delivery import Delivery, DeliveryConfig
from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.registration import RetryPolicy
from bridged.exposure.instances import InstancesExposure
from bridged.objects.builtin import builtin_registry
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.operations import NodeOperations
from bridged.registry import NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeId, NodeStore, PairedNode
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from bridged.transports.simulated import HUMIDITY, SWITCH, TEMPERATURE, SimulatedTransport


class Handover:
    """The transport's events, passed on to the registry and noted until the next commit."""

    def __init__(self, registry: NodeRegistry, exposure: InstancesExposure) -> None:
        self.registry = registry
        self.exposure = exposure
        self.handed: list[tuple[str, float]] = []

    def readings(self, node: NodeId, records: Sequence[Record]) -> None:
        self.registry.readings(node, records)
        for r in records:
            target = self.exposure.gateway_path(node, r.path)
            assert target is not None and r.time is not None
            self.handed.append((str(target), r.time))

    def committed(self, count: int) -> None:
        print(json.dumps({"committed": self.handed}), flush=True)
        self.handed = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.registry, name)


async def main(state: FsPath, uri: str) -> None:
    conn = connect(state / "state.db")
    readings = ReadingStore(conn)
    registry = NodeRegistry(NodeStore(conn), SecretStore(state / "secrets.json"), readings)
    tree = ObjectTree(builtin_registry())
    tree.create_instance(3, 0, [(0, "ACME"), (16, "U")])
    exposure = InstancesExposure(tree, registry.store)
    registry.listen(exposure)
    handover = Handover(registry, exposure)
    sim = SimulatedTransport({"nodes": 2, "interval": 0.02}, handover)  # type: ignore[arg-type]
    registry.attach(sim)
    for node in sim.nodes.values():
        if node.id not in registry.live:
            registry.pair(PairedNode(node.id, f"room-{node.index}", "sim"))
    instances = {
        str(node): [str(exposure.gateway_path(node, p)) for p in (TEMPERATURE, HUMIDITY, SWITCH)]
        for node in registry.live
    }
    print(json.dumps({"instances": instances}), flush=True)
    commands = CommandQueue(conn, registry)
    client = LwM2MClient(
        tree,
        "gw-restart",
        ServerConfig(
            uri,
            request_timeout=2.0,
            retry=RetryPolicy(count=2, timer=0.05, sequence_delay=0.1, sequence_count=1),
        ),
        bind=("127.0.0.1", 0),
        nodes=NodeOperations(registry, exposure, commands),
    )
    delivery = Delivery(
        client,
        readings,
        exposure.gateway_path,
        DeliveryConfig(retry=0.05, max_retry=0.5, poll=0.05),
    )
    registry.on_commit(delivery.notify)
    registry.on_commit(handover.committed)
    await client.start()
    await delivery.start()
    await sim.start()
    await registry.run(interval=0.02)


if __name__ == "__main__":
    asyncio.run(main(FsPath(sys.argv[1]), sys.argv[2]))
