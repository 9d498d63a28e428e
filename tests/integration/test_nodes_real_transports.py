"""The gateway and endpoints exposure modes each see a node from a real transport (the
instances mode is in test_node_operations.py, on every transport): an 802.15.4 node behind
/25 with its prefix, a BLE node as an endpoint of its own. Real client, real SQLite, the
in-repo LwM2M server; the nodes on the air of tests/airs.py."""

from __future__ import annotations

import asyncio
from pathlib import Path as FsPath

from aiocoap.numbers.codes import Code
from airs import make_air
from clients import FAST_RETRY, gateway_tree
from emulators.bluez import BluezEmulator, bluez_bus, bluez_fixture  # noqa: F401 (fixtures)

from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.registration import RegistrationEvent
from bridged.exposure.endpoints import EndpointsExposure, endpoint_name
from bridged.exposure.gateway import GatewayExposure
from bridged.objects.builtin import builtin_definitions
from bridged.objects.formats import ContentFormat
from bridged.operations import NodeOperations
from bridged.registry import NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeStore
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from peers.gateway import registration_complete
from peers.lwm2m_server import LwM2MTestServer, decode_senml_cbor

TIMEOUT = 20.0


def registry_in(state: FsPath) -> NodeRegistry:
    conn = connect(state / "state.db")
    return NodeRegistry(NodeStore(conn), SecretStore(state / "s.json"), ReadingStore(conn))


async def test_gateway_mode_shows_an_802154_node_behind_its_prefix(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    registry = registry_in(tmp_path)
    tree = gateway_tree()
    exposure = GatewayExposure(tree, registry.store)
    registry.listen(exposure)
    air = make_air("802154", registry, tmp_path)
    await air.start()
    events: asyncio.Queue[RegistrationEvent] = asyncio.Queue()
    client = LwM2MClient(
        tree,
        "gw-modes",
        ServerConfig(server.uri, request_timeout=5.0, retry=FAST_RETRY),
        bind=("127.0.0.1", 0),
        on_event=events.put_nowait,
        end_devices=exposure,
        nodes=NodeOperations(registry, exposure.paths),
    )
    await client.start()
    try:
        await registration_complete(events)
        node = await air.add(1, "kitchen")
        prefix = exposure.prefix(node)
        assert prefix == "dev0"
        update = await server.next_event("update")  # the node's /25 instance
        assert "</25/0>" in update.payload.decode().split(",")
        read = await server.request("gw-modes", Code.GET, "/25/0", accept=ContentFormat.SENML_CBOR)
        by_name = {r.name: r.value for r in decode_senml_cbor(read.payload)}
        assert by_name["/25/0/0"] == str(node)
        assert by_name["/25/0/1"] == "dev0"
        assert "</3303/0>" in str(by_name["/25/0/3"]), "the objects the node registered"
        await air.measure(node, 23.75)
        value = await server.request("gw-modes", Code.GET, f"/{prefix}/3303/0/5700")
        assert (value.code, float(value.payload)) == (Code.CONTENT, 23.75)
    finally:
        await client.stop()
        await air.stop()


async def test_endpoints_mode_registers_a_ble_node_as_its_own_endpoint(
    server: LwM2MTestServer, tmp_path: FsPath, bluez: BluezEmulator
) -> None:
    registry = registry_in(tmp_path)
    exposure = EndpointsExposure(
        builtin_definitions(),
        "gw-ep",
        ServerConfig(server.uri, request_timeout=5.0, retry=FAST_RETRY),
        host="127.0.0.1",
    )
    registry.listen(exposure)
    air = make_air("ble", registry, tmp_path, bluez)
    await air.start()
    await exposure.start()
    try:
        node = await air.add(1, "attic")
        name = endpoint_name("gw-ep", node)
        register = await server.next_event("register")
        assert register.endpoint == name
        ep = exposure.endpoint(node)
        assert ep is not None
        async with asyncio.timeout(TIMEOUT):
            await ep.settled.wait()
        await air.report(node, 19.5, 0.0)  # an advert: no time of its own
        value = await server.request(name, Code.GET, "/3303/0/5700")
        assert (value.code, float(value.payload)) == (Code.CONTENT, 19.5)
        device = await server.request(name, Code.GET, "/3/0", accept=ContentFormat.SENML_CBOR)
        values = {r.name: r.value for r in decode_senml_cbor(device.payload)}
        assert (values["/3/0/9"], values["/3/0/17"]) == (87, "attic"), "battery and name"
    finally:
        await exposure.stop()
        await air.stop()
