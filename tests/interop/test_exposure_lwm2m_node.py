"""The exposure modes against lwm2m-node-lib, a LwM2M server nobody on this project wrote.

The library addresses resources as object, instance and resource numbers only, so it cannot
send a prefixed path (``/dev0/3303/0/5700``): in ``gateway`` mode it is shown the Register with
/25 and reads each end device's /25 instance (its ID, prefix and object list), which is what a
gateway-unaware server can do; the prefixed operations are proven against the in-repo server
(tests/integration/test_exposure_gateway.py). The ``endpoints`` mode needs nothing beyond
LwM2M 1.0 from a server, and goes all the way here: a node registers as its own endpoint, the
server reads and observes the node's readings, and unpairing de-registers it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path as FsPath

import pytest
from clients import FAST_RETRY, gateway_tree

from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.exposure.endpoints import EndpointsExposure, endpoint_name
from bridged.exposure.gateway import GatewayExposure
from bridged.objects.builtin import builtin_definitions
from bridged.registry import NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeStore, PairedNode
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from bridged.transports.simulated import SimulatedTransport
from peers.lwm2m_node import LwM2MNodeServer, NodeServerFactory

pytest_plugins = ["peers.fixtures"]

GATEWAY = "gw-node-lib"


@pytest.fixture
async def peer(lwm2m_node_server: NodeServerFactory) -> AsyncIterator[LwM2MNodeServer]:
    async with lwm2m_node_server() as srv:
        yield srv


def nodes(state: FsPath) -> tuple[NodeRegistry, SimulatedTransport]:
    conn = connect(state / "state.db")
    registry = NodeRegistry(NodeStore(conn), SecretStore(state / "s.json"), ReadingStore(conn))
    sim = SimulatedTransport({"nodes": 2}, registry)
    registry.attach(sim)
    return registry, sim


def config(uri: str) -> ServerConfig:
    return ServerConfig(uri, lifetime=600, request_timeout=5.0, retry=FAST_RETRY)


async def test_endpoints_mode_register_read_observe_and_deregister(
    tmp_path: FsPath, peer: LwM2MNodeServer
) -> None:
    registry, sim = nodes(tmp_path)
    exposure = EndpointsExposure(builtin_definitions(), GATEWAY, config(peer.uri), host="127.0.0.1")
    registry.listen(exposure)
    node = next(iter(sim.nodes.values()))
    name = endpoint_name(GATEWAY, node.id)
    await exposure.start()
    try:
        registry.pair(PairedNode(node.id, "kitchen", "sim"))
        registration = await peer.wait_event("registration", endpoint=name)
        assert "</3303/0>" in str(registration.data["payload"]).split(",")
        ep = exposure.endpoint(node.id)
        assert ep is not None
        await ep.settled.wait()
        assert await peer.read(name, "/3/0/17") == "kitchen"
        now = time.time()
        sim.report(node, now)
        assert float(await peer.read(name, "/3303/0/5700")) == node.values(now)[0].value
        await peer.write_attributes(name, "/3303/0/5700", pmin=0)
        await peer.observe(name, "/3303/0/5700")
        later = now + 300
        sim.report(node, later)
        note = await peer.wait_event("notification", endpoint=name, path="/3303/0/5700")
        assert float(note.data["value"]) == node.values(later)[0].value
        registry.unpair(node.id)
        gone = await peer.wait_event("unregistration", endpoint=name)
        assert gone.data["reason"] == "deregister"
    finally:
        await exposure.stop()


async def test_gateway_mode_register_carries_25_and_the_server_reads_the_end_devices(
    tmp_path: FsPath, peer: LwM2MNodeServer
) -> None:
    registry, sim = nodes(tmp_path)
    tree = gateway_tree()
    exposure = GatewayExposure(tree, registry.store)
    registry.listen(exposure)
    first, second = sim.nodes.values()
    registry.pair(PairedNode(first.id, "kitchen", "sim"))
    client = LwM2MClient(
        tree, GATEWAY, config(peer.uri), bind=("127.0.0.1", 0), end_devices=exposure
    )
    await client.start()
    try:
        registration = await peer.wait_event("registration", endpoint=GATEWAY)
        listed = str(registration.data["payload"]).split(",")
        assert {"</25>;ver=2.0", "</25/0>"} <= set(listed)
        assert not any(link.startswith("</3311") for link in listed)
        assert await peer.read(GATEWAY, "/25/0/0") == str(first.id)
        assert await peer.read(GATEWAY, "/25/0/1") == "dev0"
        assert "</3311/0>" in (await peer.read(GATEWAY, "/25/0/3")).split(",")
        registry.pair(PairedNode(second.id, "hall", "sim"))
        update = await peer.wait_event("update", endpoint=GATEWAY)
        assert "</25/1>" in str(update.data["payload"]).split(",")
        assert await peer.read(GATEWAY, "/25/1/1") == "dev1"
    finally:
        await client.stop()
