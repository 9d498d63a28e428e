"""A gateway process for the restart test:
``python -m peers.node_gateway STATE_DIR SERVER_URI [--port TTY --node EUI64 ...]``.

It wires what the daemon wires for store-and-forward (state database, node registry, a
transport, the instances exposure, the LwM2M client with node operations, the command queue,
delivery) and prints one JSON line per event on stdout, flushed, so the test knows what the
process had made durable when it killed it:

* ``{"instances": {node: [gateway instance paths]}}`` whenever a node's instances are exposed
  or change;
* ``{"committed": [[gateway path, time], ...]}`` after each group commit, listing every reading
  the transport handed over before it (printed after the commit returned: durable).

The transport is the simulated one, reporting fast, unless ``--port`` names the serial port of
an 802.15.4 dongle (the test's RCP emulator): then the ``802154`` transport serves the nodes
given by ``--node``, paired at the first start, whose readings the test makes them send.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from pathlib import Path as FsPath

from bridged.commands import CommandQueue
from bridged.delivery import Delivery, DeliveryConfig
from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.registration import RetryPolicy
from bridged.exposure.instances import InstancesExposure
from bridged.hosting import transport_host
from bridged.objects.builtin import builtin_definitions
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.operations import NodeOperations
from bridged.registry import LiveNode, NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeId, NodeStore, PairedNode
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from bridged.transports.base import Transport
from bridged.transports.ieee802154.transport import IEEE802154Transport
from bridged.transports.simulated import SimulatedTransport

PAN = 0xFACE


class Handover:
    """A registry listener that notes every reading handed over (with the time the registry
    gave it) until the next commit, and prints each node's instances once the exposure has
    them (it listens after the exposure)."""

    def __init__(self, exposure: InstancesExposure) -> None:
        self.exposure = exposure
        self.handed: list[tuple[str, float]] = []

    def committed(self, count: int) -> None:
        print(json.dumps({"committed": self.handed}), flush=True)
        self.handed = []

    def node_added(self, node: LiveNode) -> None:
        self.node_objects(node)

    def node_removed(self, node: NodeId) -> None:
        pass

    def node_objects(self, node: LiveNode) -> None:
        paths = [
            str(self.exposure.paths.upstream(node.id, Path((oid, iid))))
            for oid, iids in sorted(node.objects.items())
            for iid in iids
        ]
        if paths:
            print(json.dumps({"instances": {str(node.id): paths}}), flush=True)

    def node_values(self, node: LiveNode, records: Sequence[Record]) -> None:
        pass  # not readings: never stored nor delivered

    def node_readings(self, node: LiveNode, records: Sequence[Record]) -> None:
        for r in records:
            target = self.exposure.paths.upstream(node.id, r.path)
            if target is not None and r.time is not None:  # else never delivered
                self.handed.append((str(target), r.time))


async def main(state: FsPath, uri: str, port: str | None, nodes: Sequence[str]) -> None:
    conn = connect(state / "state.db")
    readings = ReadingStore(conn)
    registry = NodeRegistry(NodeStore(conn), SecretStore(state / "secrets.json"), readings)
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(3, 0, [(0, "ACME"), (16, "U")])
    exposure = InstancesExposure(tree, registry.store)
    registry.listen(exposure)
    handover = Handover(exposure)
    registry.listen(handover)
    transport: Transport
    if port is None:
        transport = SimulatedTransport({"nodes": 2, "interval": 0.02}, registry)
        ids = list(transport.nodes)
    else:
        config = {"port": port, "pan_id": PAN, "request_timeout": 5}
        transport = IEEE802154Transport(config, registry, transport_host(builtin_definitions()))
        ids = [NodeId("802154", eui64) for eui64 in nodes]
    registry.attach(transport)
    for index, node in enumerate(ids, 1):
        if node not in registry.live:
            registry.pair(PairedNode(node, f"room-{index}", transport.name))
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
        nodes=NodeOperations(registry, exposure.paths, commands),
    )
    delivery = Delivery(
        client,
        readings,
        exposure.paths.upstream,
        DeliveryConfig(retry=0.05, max_retry=0.5, poll=0.05),
    )
    registry.on_commit(delivery.notify)
    registry.on_commit(handover.committed)
    await client.start()
    await delivery.start()
    await transport.start()
    await registry.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m peers.node_gateway")
    parser.add_argument("state", type=FsPath)
    parser.add_argument("uri")
    parser.add_argument("--port", help="the 802.15.4 dongle's serial port")
    parser.add_argument("--node", action="append", default=[], help="an 802.15.4 node's EUI-64")
    args = parser.parse_args()
    asyncio.run(main(args.state, args.uri, args.port, args.node))
