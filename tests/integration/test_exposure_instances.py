"""The ``instances`` exposure mode end to end: many simulated nodes mirrored into the gateway's
own objects, real SQLite in tmp_path, the real client and the in-repo LwM2M server on
127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path as FsPath

from aiocoap.numbers.codes import Code
from clients import FAST_RETRY, gateway_tree

from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.registration import RegistrationEvent
from bridged.exposure.instances import InstancesExposure
from bridged.objects.formats import ContentFormat
from bridged.objects.ids import IpsoResource
from bridged.registry import NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeStore, PairedNode
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from bridged.transports.simulated import TEMPERATURE, SimulatedTransport
from peers.gateway import registration_complete
from peers.lwm2m_server import LwM2MTestServer

ENDPOINT = "gw-instances"
NODES = 200


async def test_a_discover_of_one_instance_among_many_lists_that_instance_only(
    tmp_path: FsPath, server: LwM2MTestServer
) -> None:
    """LwM2M Core §5.4.1: a Discover of an instance lists it and its resources. With 200
    nodes' 600 instances shown, the server's Discover of one node's temperature gets that
    instance's links and nothing of the others; one of the object lists every instance."""
    conn = connect(tmp_path / "state.db")
    registry = NodeRegistry(NodeStore(conn), SecretStore(tmp_path / "s.json"), ReadingStore(conn))
    tree = gateway_tree()
    exposure = InstancesExposure(tree, registry.store)
    sim = SimulatedTransport({"nodes": NODES}, registry)
    registry.attach(sim)
    registry.listen(exposure)
    now = time.time()
    for i, node in enumerate(sim.nodes.values()):
        registry.pair(PairedNode(node.id, f"room{i}", "sim"))
        sim.report(node, now)
    picked = list(sim.nodes.values())[NODES // 2]
    instance = exposure.paths.upstream(picked.id, TEMPERATURE.parent)
    assert instance is not None
    events: asyncio.Queue[RegistrationEvent] = asyncio.Queue()
    client = LwM2MClient(
        tree,
        ENDPOINT,
        ServerConfig(server.uri, request_timeout=5.0, retry=FAST_RETRY),
        bind=("127.0.0.1", 0),
        on_event=events.put_nowait,
    )
    await client.start()
    try:
        await registration_complete(events)
        discover = await server.request(
            ENDPOINT, Code.GET, str(instance), accept=ContentFormat.LINK_FORMAT
        )
        assert discover.code == Code.CONTENT
        resources = (IpsoResource.SENSOR_VALUE, IpsoResource.APPLICATION_TYPE)
        expected = [instance, *(instance.child(rid) for rid in resources)]
        assert discover.payload.decode() == ",".join(f"<{p}>" for p in expected)
        whole = await server.request(
            ENDPOINT, Code.GET, f"/{instance.ids[0]}", accept=ContentFormat.LINK_FORMAT
        )
        listed = [link for link in whole.payload.decode().split(",") if link.count("/") == 2]
        assert len(listed) == NODES + 1, "every node's temperature and the gateway's own"
    finally:
        await client.stop()
