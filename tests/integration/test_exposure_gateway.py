"""The ``gateway`` exposure mode end to end: the real client, the node registry with the
simulated transport, real SQLite in tmp_path and the in-repo LwM2M server on 127.0.0.1.

The server sees /25 (LwM2M Gateway TS 1.1, object 25 version 2.0): one instance per paired
node, Register and Update without the nodes' objects, and reaches each node's objects at its
prefix (``/dev0/3303/0/5700``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path as FsPath

import cbor2
import pytest
from aiocoap.numbers.codes import Code
from clients import FAST_RETRY, bootstrapping, gateway_tree

from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.registration import RegistrationEvent
from bridged.exposure.gateway import GatewayExposure
from bridged.objects.formats import ContentFormat
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.registry import NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeId, NodeStore, PairedNode
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from bridged.transports.simulated import SimulatedNode, SimulatedTransport
from peers.gateway import registration_complete
from peers.lwm2m_server import LwM2MTestServer, decode_senml_cbor

ENDPOINT = "gw-modes"
TIMEOUT = 10.0


@dataclass
class Setup:
    registry: NodeRegistry
    tree: ObjectTree
    exposure: GatewayExposure
    sim: SimulatedTransport

    def node(self, index: int) -> SimulatedNode:
        return list(self.sim.nodes.values())[index]

    def pair(self, index: int, name: str) -> SimulatedNode:
        node = self.node(index)
        self.registry.pair(PairedNode(node.id, name, "sim"))
        return node


def setup(state: FsPath) -> Setup:
    conn = connect(state / "state.db")
    registry = NodeRegistry(NodeStore(conn), SecretStore(state / "s.json"), ReadingStore(conn))
    tree = gateway_tree()
    exposure = GatewayExposure(tree, registry.store)
    sim = SimulatedTransport({"nodes": 3}, registry)
    registry.attach(sim)
    registry.listen(exposure)
    return Setup(registry, tree, exposure, sim)


@pytest.fixture
def gw(tmp_path: FsPath) -> Setup:
    return setup(tmp_path)


@pytest.fixture
async def client(gw: Setup, server: LwM2MTestServer) -> AsyncIterator[LwM2MClient]:
    events: asyncio.Queue[RegistrationEvent] = asyncio.Queue()
    c = LwM2MClient(
        gw.tree,
        ENDPOINT,
        ServerConfig(server.uri, request_timeout=5.0, retry=FAST_RETRY),
        bind=("127.0.0.1", 0),
        on_event=events.put_nowait,
        end_devices=gw.exposure,
    )
    await c.start()
    await registration_complete(events)
    try:
        yield c
    finally:
        await c.stop()


def links(text: str) -> list[str]:
    return text.split(",")


async def test_register_carries_the_gateway_objects_and_25_only(
    tmp_path: FsPath, server: LwM2MTestServer
) -> None:
    gw = setup(tmp_path)
    gw.pair(0, "kitchen")
    gw.pair(1, "hall")
    events: asyncio.Queue[RegistrationEvent] = asyncio.Queue()
    c = LwM2MClient(
        gw.tree,
        ENDPOINT,
        ServerConfig(server.uri, request_timeout=5.0, retry=FAST_RETRY),
        bind=("127.0.0.1", 0),
        on_event=events.put_nowait,
        end_devices=gw.exposure,
    )
    await c.start()
    try:
        register = await server.next_event("register")
        listed = links(register.payload.decode())
        assert "</25>;ver=2.0" in listed
        assert {"</25/0>", "</25/1>", "</3/0>", "</3303/0>"} <= set(listed)
        # The nodes' objects are not in Register: the server reads /25 to learn them.
        assert not any(link.startswith(("</3304", "</3311", "</dev")) for link in listed)
        await registration_complete(events)
        read = await server.request(ENDPOINT, Code.GET, "/25/1", accept=ContentFormat.SENML_CBOR)
        by_name = {r.name: r.value for r in decode_senml_cbor(read.payload)}
        assert by_name == {
            "/25/1/0": str(gw.node(1).id),
            "/25/1/1": "dev1",
            "/25/1/3": "</3303>;ver=1.1,</3303/0>,</3304>;ver=1.1,</3304/0>,</3311/0>",
        }
    finally:
        await c.stop()


async def test_pairing_and_unpairing_send_an_update_with_the_25_change(
    gw: Setup, client: LwM2MClient, server: LwM2MTestServer
) -> None:
    node = gw.pair(2, "porch")
    update = await server.next_event("update")
    assert "</25/0>" in links(update.payload.decode())
    read = await server.request(ENDPOINT, Code.GET, "/25/0/1")
    assert read.payload == b"dev0"
    gw.registry.unpair(node.id)
    update = await server.next_event("update")
    assert "</25/0>" not in links(update.payload.decode())
    gone = await server.request(ENDPOINT, Code.GET, "/dev0/3303/0/5700")
    assert gone.code == Code.NOT_FOUND


async def test_a_change_of_a_nodes_objects_updates_25_3_and_the_registration(
    gw: Setup, client: LwM2MClient, server: LwM2MTestServer
) -> None:
    node = gw.pair(0, "kitchen")
    await server.next_event("update")
    gw.registry.objects(node.id, {3303: [0], 3304: [0, 1]})
    await server.next_event("update")
    read = await server.request(ENDPOINT, Code.GET, "/25/0/3")
    assert read.payload == b"</3303>;ver=1.1,</3303/0>,</3304>;ver=1.1,</3304/0>,</3304/1>"


async def test_node_readings_are_read_at_the_prefixed_path(
    gw: Setup, client: LwM2MClient, server: LwM2MTestServer
) -> None:
    node = gw.pair(0, "kitchen")
    now = time.time()
    gw.sim.report(node, now)
    read = await server.request(ENDPOINT, Code.GET, "/dev0/3303/0/5700")
    assert read.code == Code.CONTENT
    assert float(read.payload) == node.values(now)[0].value
    whole = await server.request(ENDPOINT, Code.GET, "/dev0/3303/0", accept=112)
    names = {r.name: r.value for r in decode_senml_cbor(whole.payload)}
    assert names["/dev0/3303/0/5750"] == "kitchen"
    assert names["/dev0/3303/0/5700"] == node.values(now)[0].value
    unknown = await server.request(ENDPOINT, Code.GET, "/dev7/3303/0/5700")
    assert unknown.code == Code.NOT_FOUND
    absent = await server.request(ENDPOINT, Code.GET, "/dev0/3342/0")
    assert absent.code == Code.NOT_FOUND


async def test_discover_write_execute_and_attributes_through_the_prefix(
    gw: Setup, client: LwM2MClient, server: LwM2MTestServer
) -> None:
    node = gw.pair(0, "kitchen")
    gw.sim.report(node, time.time())
    discover = await server.request(
        ENDPOINT, Code.GET, "/dev0/3311/0", accept=ContentFormat.LINK_FORMAT
    )
    # Gateway TS: a Discover through a prefix lists the links without it.
    assert discover.payload.decode().startswith("</3311/0>,</3311/0/5750>,</3311/0/5850>")
    write = await server.request(
        ENDPOINT, Code.PUT, "/dev0/3311/0/5850", b"1", content_format=ContentFormat.TEXT
    )
    assert write.code == Code.CHANGED
    assert gw.exposure.end_device_tree("dev0") is not None
    tree = gw.exposure.end_device_tree("dev0")
    assert tree is not None and tree.get(Path((3311, 0, 5850), "dev0")) is True
    ran: list[tuple[Path, str]] = []
    tree.on_execute(3303, 5605, lambda path, args: ran.append((path, args)))
    execute = await server.request(ENDPOINT, Code.POST, "/dev0/3303/0/5605", b"")
    assert execute.code == Code.CHANGED
    assert ran == [(Path((3303, 0, 5605), "dev0"), "")]
    attrs = await server.request(ENDPOINT, Code.PUT, "/dev0/3303/0/5700", query=["pmin=5"])
    assert attrs.code == Code.CHANGED
    discover = await server.request(
        ENDPOINT, Code.GET, "/dev0/3303/0/5700", accept=ContentFormat.LINK_FORMAT
    )
    assert discover.payload == b"</3303/0/5700>;pmin=5"


async def test_composite_read_and_write_mix_the_gateway_and_end_devices(
    gw: Setup, client: LwM2MClient, server: LwM2MTestServer
) -> None:
    a = gw.pair(0, "kitchen")
    gw.pair(1, "hall")
    now = time.time()
    gw.sim.report(a, now)
    paths = ["/3303/0/5700", "/dev0/3303/0/5700", "/dev1/3311/0", "/dev9/3303/0"]
    read = await server.request(
        ENDPOINT,
        Code.FETCH,
        "",
        cbor2.dumps([{0: p} for p in paths]),
        content_format=ContentFormat.SENML_CBOR,
    )
    assert read.code == Code.CONTENT
    names = {r.name: r.value for r in decode_senml_cbor(read.payload)}
    assert names["/3303/0/5700"] == 21.5
    assert names["/dev0/3303/0/5700"] == a.values(now)[0].value
    assert names["/dev1/3311/0/5750"] == "hall"
    write = await server.request(
        ENDPOINT,
        Code.iPATCH,
        "",
        cbor2.dumps([{0: "/dev1/3311/0/5850", 4: True}, {0: "/3303/0/5750", 3: "gateway"}]),
        content_format=ContentFormat.SENML_CBOR,
    )
    assert write.code == Code.CHANGED
    tree = gw.exposure.end_device_tree("dev1")
    assert tree is not None and tree.get(Path((3311, 0, 5850), "dev1")) is True
    assert gw.tree.get(Path((3303, 0, 5750))) == "gateway"


async def test_observe_of_a_prefixed_path_notifies_on_node_readings(
    gw: Setup, client: LwM2MClient, server: LwM2MTestServer
) -> None:
    node = gw.pair(0, "kitchen")
    gw.sim.report(node, time.time())
    attrs = await server.request(ENDPOINT, Code.PUT, "/dev0/3303/0/5700", query=["pmin=0"])
    assert attrs.code == Code.CHANGED
    request = server.observe(ENDPOINT, "/dev0/3303/0/5700")
    first = await asyncio.wait_for(request.response, TIMEOUT)
    assert first.code == Code.CONTENT
    notifications = aiter(request.observation)
    later = time.time() + 300  # another phase of the simulated signal: another value
    gw.sim.report(node, later)
    note = await asyncio.wait_for(anext(notifications), TIMEOUT)
    assert float(note.payload) == node.values(later)[0].value
    gw.registry.unpair(node.id)
    # The end device is gone: its observation ends with 4.04 (RFC 7641 §4.2).
    last = await asyncio.wait_for(anext(notifications), TIMEOUT)
    assert (last.code, last.opt.observe) == (Code.NOT_FOUND, None)


def test_prefixes_and_25_instances_are_the_same_after_a_restart(tmp_path: FsPath) -> None:
    first = setup(tmp_path)
    for index, name in ((0, "a"), (1, "b"), (2, "c")):
        first.pair(index, name)
    first.registry.unpair(first.node(1).id)
    first.pair(1, "b")  # re-pairing keeps the prefix
    before = {
        first.exposure.prefix(first.node(i).id): first.tree.get(Path((25, i, 0))) for i in range(3)
    }
    assert set(before) == {"dev0", "dev1", "dev2"}
    second = setup(tmp_path)  # the same SQLite state: a restart
    after = {
        second.exposure.prefix(second.node(i).id): second.tree.get(Path((25, i, 0)))
        for i in range(3)
    }
    assert after == before


def test_node_device_values_land_on_its_own_device_object(gw: Setup) -> None:
    node = NodeId("ble", "A4:C1:38:00:11:22")
    gw.registry.pair(PairedNode(node, "attic", "bthome"))
    gw.registry.readings(node, [Record(Path((3, 0, 9)), 87), Record(Path((3, 0, 0)), "Xiaomi")])
    prefix = gw.exposure.prefix(node)
    assert prefix is not None
    tree = gw.exposure.end_device_tree(prefix)
    assert tree is not None
    assert tree.get(Path((3, 0, 9), prefix)) == 87
    assert tree.get(Path((3, 0, 0), prefix)) == "Xiaomi"
    assert gw.exposure.paths.local(Path((3, 0, 9), prefix)) == (node, Path((3, 0, 9)))
    assert gw.exposure.paths.local(Path((3, 0, 9))) is None
    assert gw.exposure.paths.local(Path((3342, 0), prefix)) is None


async def test_25_is_not_created_written_or_deleted_by_a_server(
    gw: Setup, client: LwM2MClient, server: LwM2MTestServer
) -> None:
    node = gw.pair(0, "kitchen")
    await server.next_event("update")
    body = cbor2.dumps([{0: "/25/0/1", 3: "mine"}])
    for code, path, payload in [
        (Code.POST, "/25", b""),
        (Code.PUT, "/25/0", body),
        (Code.POST, "/25/0", body),
        (Code.DELETE, "/25/0", b""),
    ]:
        format_ = ContentFormat.SENML_CBOR if payload else None
        answer = await server.request(ENDPOINT, code, path, payload, content_format=format_)
        assert answer.code == Code.METHOD_NOT_ALLOWED, (code, path)
    read = await server.request(ENDPOINT, Code.GET, "/25", accept=ContentFormat.SENML_CBOR)
    assert {r.name: r.value for r in decode_senml_cbor(read.payload)} == {
        "/25/0/0": str(node.id),
        "/25/0/1": "dev0",
        "/25/0/3": "</3303>;ver=1.1,</3303/0>,</3304>;ver=1.1,</3304/0>,</3311/0>",
    }


async def test_a_bootstrap_server_changes_neither_25_nor_end_devices(gw: Setup) -> None:
    node = gw.pair(0, "kitchen")
    async with bootstrapping(gw.tree, ENDPOINT, end_devices=gw.exposure) as (bs, request):
        entry = b'[{"bn":"/25/0/","n":"1","vs":"mine"}]'
        assert (await bs.write(request, "/25/0", entry)).code == Code.METHOD_NOT_ALLOWED
        assert (await bs.write(request, "/25", entry)).code == Code.METHOD_NOT_ALLOWED
        assert (await bs.delete(request, "/25/0")).code == Code.METHOD_NOT_ALLOWED
        assert (await bs.delete(request, "/25")).code == Code.METHOD_NOT_ALLOWED
        theirs = b'[{"bn":"/dev0/3311/0/","n":"5850","vb":true}]'
        written = await bs.write(request, "/dev0/3311/0", theirs)
        assert written.code == Code.METHOD_NOT_ALLOWED
        assert (await bs.delete(request, "/dev0/3311/0")).code == Code.METHOD_NOT_ALLOWED
        links = (await bs.discover(request)).payload.decode()
        assert "</25/0>" in links.split(","), "the paired node is still an end device"
        assert gw.tree.get(Path((25, 0, 0))) == str(node.id)
