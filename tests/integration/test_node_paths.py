"""Every server operation on a node's path reaches the node, in every exposure mode, and every
mode answers for a node's path the way the one mapping (bridged/exposure/mapping.py) says.

Real parts: the 802.15.4 transport on real pyserial with the RCP emulator and emulated LwM2M
nodes on its air (tests/airs.py), real SQLite, the real client(s), and the in-repo LwM2M server
on 127.0.0.1, which decodes what it receives with its own codec. What a node received is read
from the emulated node itself."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path as FsPath

import cbor2
import pytest
from aiocoap.numbers.codes import Code
from airs import RESET_MIN_MAX, SWITCH, TEMPERATURE, RcpAir, until
from clients import FAST_RETRY, bootstrapping, gateway_tree
from emulators.lwm2m_node import EmulatedNode
from nodegw import node_gateway

from bridged.commands import CommandQueue
from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.nodes import NodePaths
from bridged.engine.uplink import OpenUdp
from bridged.exposure.endpoints import EndpointsExposure, NodeEndpoint, endpoint_name
from bridged.exposure.gateway import GatewayExposure
from bridged.exposure.instances import InstancesExposure
from bridged.objects.builtin import builtin_definitions
from bridged.objects.formats import ContentFormat, codec_for
from bridged.objects.paths import Level, Path
from bridged.objects.values import Record
from bridged.operations import NodeOperations
from bridged.registry import NodeRegistry
from bridged.store.commands import CommandStatus
from bridged.store.database import connect
from bridged.store.nodes import NodeId, NodeStore, PairedNode
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from peers.lwm2m_server import LwM2MTestServer, decode_senml_cbor

GATEWAY = "gw-paths"
LINK_FORMAT, TLV = ContentFormat.LINK_FORMAT, ContentFormat.TLV
MODES = ("instances", "gateway", "endpoints")
SENML_CBOR = ContentFormat.SENML_CBOR


@dataclass
class ModeGateway:
    """A gateway in one exposure mode over the 802.15.4 air, registered with ``server``."""

    mode: str
    registry: NodeRegistry
    air: RcpAir
    commands: CommandQueue
    paths: NodePaths
    operations: list[NodeOperations]
    """Every node backend made (one per endpoint in the endpoints mode)."""
    endpoint: Callable[[NodeId], str]
    """The endpoint name under which the server knows the node's paths."""

    def path(self, node: NodeId, local: Path) -> str:
        """The node's ``local`` path as the server addresses it in this mode."""
        upstream = self.paths.upstream(node, local)
        assert upstream is not None, f"{local} of {node} is not shown"
        return str(upstream)

    async def add(self, index: int, name: str, *, sleepy: bool = False) -> NodeId:
        node = await self.air.add(index, name, sleepy=sleepy)
        await until(lambda: self.endpoint(node) in self.server.clients, "the node's endpoint")
        return node

    server: LwM2MTestServer = None  # type: ignore[assignment]
    exposure: EndpointsExposure | None = None
    """The endpoints mode's exposure (None in the other modes)."""


@contextlib.asynccontextmanager
async def mode_gateway(
    mode: str, server: LwM2MTestServer, state: FsPath
) -> AsyncIterator[ModeGateway]:
    conn = connect(state / "state.db")
    registry = NodeRegistry(NodeStore(conn), SecretStore(state / "s.json"), ReadingStore(conn))
    commands = CommandQueue(conn, registry, timeout=10.0)
    config = ServerConfig(server.uri, request_timeout=5.0, retry=FAST_RETRY)

    made: list[NodeOperations] = []

    def operations(paths: NodePaths) -> NodeOperations:
        made.append(NodeOperations(registry, paths, commands, timeout=10.0))
        return made[-1]

    air = RcpAir(registry, state)
    stack = contextlib.AsyncExitStack()
    try:
        if mode == "endpoints":

            def make_client(
                ep: NodeEndpoint, servers: object, bind: tuple[str, int], udp: OpenUdp
            ) -> LwM2MClient:
                return LwM2MClient(
                    ep.tree,
                    ep.name,
                    config,
                    bind=bind,
                    udp=udp,
                    on_event=ep.event,
                    nodes=operations(ep.paths),
                )

            endpoints = EndpointsExposure(
                builtin_definitions(), GATEWAY, config, host="127.0.0.1", make_client=make_client
            )
            registry.listen(endpoints)
            await endpoints.start()
            stack.push_async_callback(endpoints.stop)
            paths: NodePaths = endpoints.paths
            name: Callable[[NodeId], str] = lambda node: endpoint_name(GATEWAY, node)  # noqa: E731
        else:
            tree = gateway_tree()
            exposure = (
                InstancesExposure(tree, registry.store)
                if mode == "instances"
                else GatewayExposure(tree, registry.store)
            )
            registry.listen(exposure)
            client = LwM2MClient(
                tree,
                GATEWAY,
                config,
                bind=("127.0.0.1", 0),
                nodes=operations(exposure.paths),
                end_devices=exposure if isinstance(exposure, GatewayExposure) else None,
            )
            await client.start()
            stack.push_async_callback(client.stop)
            await until(lambda: GATEWAY in server.clients, "the gateway registered")
            paths = exposure.paths
            name = lambda node: GATEWAY  # noqa: E731
        await air.start()
        stack.push_async_callback(air.stop)
        gw = ModeGateway(mode, registry, air, commands, paths, made, name)
        gw.server = server
        gw.exposure = endpoints if mode == "endpoints" else None
        yield gw
    finally:
        await stack.aclose()
        await commands.close()
        conn.close()


@pytest.fixture(params=MODES)
async def gw(
    request: pytest.FixtureRequest, server: LwM2MTestServer, tmp_path: FsPath
) -> AsyncIterator[ModeGateway]:
    async with mode_gateway(request.param, server, tmp_path) as gw:
        yield gw


async def test_a_read_reaches_the_node(server: LwM2MTestServer, gw: ModeGateway) -> None:
    """The gateway's copy of the node's value is no answer: a node out of range times out."""
    node = await gw.add(1, "kitchen")
    target = gw.path(node, TEMPERATURE)
    read = await server.request(gw.endpoint(node), Code.GET, target)
    assert read.code == Code.CONTENT
    for operations in gw.operations:
        operations.timeout = 0.3
    gw.air.out_of_range(node, True)
    try:
        lost = await server.request(gw.endpoint(node), Code.GET, target)
    finally:
        gw.air.out_of_range(node, False)
    assert lost.code == Code.GATEWAY_TIMEOUT


async def test_a_write_reaches_the_node(server: LwM2MTestServer, gw: ModeGateway) -> None:
    node = await gw.add(1, "kitchen")
    target = gw.path(node, SWITCH)
    written = await server.request(gw.endpoint(node), Code.PUT, target, b"1", content_format=0)
    assert written.code == Code.CHANGED
    assert await gw.air.switch(node) is True, "the node itself has the value written"


async def test_an_execute_reaches_the_node(server: LwM2MTestServer, gw: ModeGateway) -> None:
    node = await gw.add(1, "kitchen")
    target = gw.path(node, RESET_MIN_MAX)
    done = await server.request(gw.endpoint(node), Code.POST, target, b"1='x'", content_format=0)
    assert done.code == Code.CHANGED
    assert gw.air.executed == [(node, "1='x'")]


async def test_a_write_composite_reaches_the_node(server: LwM2MTestServer, gw: ModeGateway) -> None:
    node = await gw.add(1, "kitchen")
    body = cbor2.dumps([{0: gw.path(node, SWITCH), 4: True}])
    written = await server.request(
        gw.endpoint(node), Code.iPATCH, "/", body, content_format=SENML_CBOR
    )
    assert written.code == Code.CHANGED
    assert await gw.air.switch(node) is True


async def test_a_sleepy_nodes_write_is_kept_then_reaches_it(
    server: LwM2MTestServer, gw: ModeGateway
) -> None:
    node = await gw.add(2, "cellar", sleepy=True)
    await gw.air.sleep(node)
    target = gw.path(node, SWITCH)
    written = await server.request(gw.endpoint(node), Code.PUT, target, b"1", content_format=0)
    assert written.code == Code.CHANGED
    assert [c.status for c in gw.commands.pending()] == [CommandStatus.PENDING]
    assert await gw.air.switch(node) is False
    await gw.air.wake(node)
    await until(lambda: not gw.commands.pending(), "the command applied")
    assert await gw.air.switch(node) is True


async def test_a_read_of_a_nodes_instance_has_its_name_and_its_values(
    server: LwM2MTestServer, gw: ModeGateway
) -> None:
    node = await gw.add(1, "kitchen")
    await gw.air.measure(node, 19.25)
    instance = gw.path(node, TEMPERATURE.truncate(TEMPERATURE.level.INSTANCE))
    read = await server.request(gw.endpoint(node), Code.GET, instance, accept=SENML_CBOR)
    assert read.code == Code.CONTENT
    values = {r.name: r.value for r in decode_senml_cbor(read.payload)}
    assert values[f"{instance}/5750"] == "kitchen", "the node's name, which Discover lists"
    assert values[f"{instance}/5700"] == 19.25, "the node's own value"
    name = await server.request(gw.endpoint(node), Code.GET, f"{instance}/5750")
    assert (name.code, name.payload) == (Code.CONTENT, b"kitchen")
    links = await server.request(gw.endpoint(node), Code.GET, instance, accept=40)
    assert any(link.endswith("/5750>") for link in links.payload.decode().split(","))


async def test_a_nodes_instance_is_not_deleted_and_its_readings_still_flow(
    server: LwM2MTestServer, gw: ModeGateway
) -> None:
    node = await gw.add(1, "kitchen")
    instance = gw.path(node, TEMPERATURE.truncate(TEMPERATURE.level.INSTANCE))
    deleted = await server.request(gw.endpoint(node), Code.DELETE, instance)
    assert deleted.code == Code.METHOD_NOT_ALLOWED
    await gw.air.measure(node, 17.5)
    read = await server.request(gw.endpoint(node), Code.GET, f"{instance}/5700")
    assert (read.code, float(read.payload)) == (Code.CONTENT, 17.5)


async def test_nothing_is_created_where_nodes_instances_are(
    server: LwM2MTestServer, gw: ModeGateway
) -> None:
    """A Create in a node's object (``/devN/3303``, ``/3303`` of its endpoint, ``/3303`` of
    the instances mode) is 4.05: the server sees no new instance, and in the instances mode the
    next node's instance still gets its ID (a created one would have taken it)."""
    node = await gw.add(1, "kitchen")
    endpoint = gw.endpoint(node)
    instance = gw.path(node, TEMPERATURE.truncate(Level.INSTANCE))
    target = instance.rsplit("/", 1)[0]
    listed = await server.request(endpoint, Code.GET, target, accept=LINK_FORMAT)
    body = codec_for(ContentFormat.TLV).encode(
        [Record(Path((3303, 9, 5750)), "phantom")], Path((3303,)), builtin_definitions()
    )
    created = await server.request(endpoint, Code.POST, target, body, content_format=TLV)
    assert created.code == Code.METHOD_NOT_ALLOWED
    after = await server.request(endpoint, Code.GET, target, accept=LINK_FORMAT)
    assert after.payload == listed.payload, "no instance the server did not have before"
    other = await gw.add(2, "cellar")
    await gw.air.measure(other, 16.5)
    read = await server.request(gw.endpoint(other), Code.GET, gw.path(other, TEMPERATURE))
    assert (read.code, float(read.payload)) == (Code.CONTENT, 16.5)


# -- a node's housekeeping ----------------------------------------------------------------------


NODE_LIFETIME = 3000


async def _node_with_a_server_object(gw: ModeGateway, index: int) -> EmulatedNode:
    """An 802.15.4 node whose own tree has /1/0 (its account with the gateway), as real
    LwM2M nodes do; it registers with it."""
    rcp = gw.air.rcp
    node_id = rcp.node_id(index)
    gw.registry.pair(PairedNode(node_id, f"porch-{index}", "lwm2m"))
    node = EmulatedNode(bytes.fromhex(node_id.address), f"porch-{index}")
    node.tree.create_instance(1, 0, [(0, 1), (1, NODE_LIFETIME), (6, False), (7, "U")])
    rcp.nodes[node_id] = node
    await rcp.air.add(node)
    await asyncio.wait_for(node.registered.wait(), 20)
    await until(lambda: 1 in gw.registry.live[node_id].objects, "the node's object list")
    await until(lambda: gw.endpoint(node_id) in gw.server.clients, "the node's endpoint")
    return node


async def test_a_nodes_housekeeping_is_never_shown(
    server: LwM2MTestServer, gw: ModeGateway
) -> None:
    nodes = [await _node_with_a_server_object(gw, i) for i in (3, 4)]
    node_ids = [gw.air.rcp.node_id(i) for i in (3, 4)]
    await gw.air.measure(node_ids[-1], 18.0)  # everything the node reported is in by now
    for node_id in node_ids:
        endpoint = gw.endpoint(node_id)
        links = server.clients[endpoint].links.split(",")
        assert [link for link in links if link.startswith("</1/")] == ["</1/0>"]
        discover = await server.request(endpoint, Code.GET, "/1", accept=40)
        listed = [link for link in discover.payload.decode().split(",") if link.count("/") == 2]
        assert listed == ["</1/0>"], "one Server account: the gateway's (or the endpoint's)"
        servers = await server.request(endpoint, Code.GET, "/1", accept=SENML_CBOR)
        short_ids = [r.value for r in decode_senml_cbor(servers.payload) if r.name.endswith("/0")]
        assert short_ids == [1]
        written = await server.request(endpoint, Code.PUT, "/1/0/1", b"600", content_format=0)
        assert written.code == Code.CHANGED
        if gw.mode == "gateway":
            devices = await server.request(endpoint, Code.GET, "/25", accept=SENML_CBOR)
            objects = [str(r.value) for r in decode_senml_cbor(devices.payload)]
            assert not any("</1/" in o or "</1>" in o for o in objects), objects
            prefix = gw.path(node_id, TEMPERATURE).split("/")[1]
            theirs = await server.request(
                endpoint, Code.PUT, f"/{prefix}/1/0/1", b"600", content_format=0
            )
            assert theirs.code == Code.NOT_FOUND
    for node in nodes:
        assert node.tree.get(Path((1, 0, 1))) == NODE_LIFETIME, "the node's lifetime untouched"


async def test_a_bootstrap_server_neither_writes_nor_deletes_a_nodes_instance(
    tmp_path: FsPath,
) -> None:
    gw = node_gateway(tmp_path)
    instance = gw.exposure.paths.upstream(gw.awake.id, Path((3303, 0)))
    assert instance is not None
    async with bootstrapping(gw.tree, GATEWAY, nodes=gw.operations) as (bs, request):
        assert (await bs.delete(request, str(instance))).code == Code.METHOD_NOT_ALLOWED
        entry = f'[{{"bn":"{instance}/","n":"5750","vs":"mine"}}]'.encode()
        written = await bs.write(request, str(instance), entry)
        assert written.code == Code.METHOD_NOT_ALLOWED
        assert (await bs.write(request, "/3303", entry)).code == Code.METHOD_NOT_ALLOWED
        new = b'[{"bn":"/3303/9/","n":"5750","vs":"phantom"}]'
        created = await bs.write(request, "/3303/9", new)
        assert created.code == Code.METHOD_NOT_ALLOWED, "no instance that stands for no node"
        assert (await bs.delete(request, "/3303")).code == Code.DELETED
        links = (await bs.discover(request, "/3303")).payload.decode().split(",")
        assert f"<{instance}>" in links, "the node's instance stays"
        assert "</3303/0>" not in links, "the gateway's own went"
    assert gw.tree.get(Path((*instance.ids, 5750))) == "kitchen"


# -- after a restart, and when a node cannot answer ---------------------------------------------


def _object_of(instance: str) -> str:
    """``/dev0/3303/0`` -> ``/dev0/3303``: the object path of an instance path."""
    return instance.rsplit("/", 1)[0]


def _timed(payload: bytes) -> dict[str, tuple[object, float | None]]:
    return {r.name: (r.value, r.time) for r in decode_senml_cbor(payload)}


@pytest.mark.parametrize("mode", MODES)
async def test_after_a_restart_a_sleepy_nodes_reads_answer_its_last_report(
    mode: str, server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    """The node Sent its temperature, which was delivered (and so deleted from the store); the
    gateway restarts and the node sleeps on without a word. A Read of the resource answers the
    last report with the time it was measured, and the object's Read has the node's instance
    with it (not 5.03, not an instance without its value)."""
    measured = float(int(time.time()) - 100)
    async with mode_gateway(mode, server, tmp_path) as gw:
        node = await gw.add(2, "cellar", sleepy=True)
        await gw.air.report(node, 16.5, measured)  # its Send, durable before its 2.04
    async with mode_gateway(mode, server, tmp_path) as gw:  # the node asleep, not on the air
        endpoint = gw.endpoint(node)
        await until(lambda: endpoint in server.clients, "registered again")
        target = gw.path(node, TEMPERATURE)
        read = await server.request(endpoint, Code.GET, target, accept=SENML_CBOR)
        assert read.code == Code.CONTENT, read.payload
        assert _timed(read.payload) == {target: (16.5, measured)}
        whole = _object_of(gw.path(node, TEMPERATURE.truncate(TEMPERATURE.level.INSTANCE)))
        read = await server.request(endpoint, Code.GET, whole, accept=SENML_CBOR)
        assert read.code == Code.CONTENT, read.payload
        assert _timed(read.payload)[target] == (16.5, measured)


@pytest.mark.parametrize("mode", MODES)
async def test_an_object_read_keeps_a_node_that_cannot_answer_with_its_last_report(
    mode: str, server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    """An awake node reported, then the gateway restarted and the node is gone from the air. A
    Read of its resource says why (the node does not answer); the Read of the object still has
    the node's instance with the value it last reported and that value's time."""
    measured = float(int(time.time()) - 30)
    async with mode_gateway(mode, server, tmp_path) as gw:
        node = await gw.add(1, "kitchen")
        await gw.air.report(node, 19.25, measured)
    async with mode_gateway(mode, server, tmp_path) as gw:
        endpoint = gw.endpoint(node)
        await until(lambda: endpoint in server.clients, "registered again")
        for operations in gw.operations:
            operations.timeout = 0.3
        target = gw.path(node, TEMPERATURE)
        lost = await server.request(endpoint, Code.GET, target)
        assert lost.code in (Code.SERVICE_UNAVAILABLE, Code.GATEWAY_TIMEOUT), lost
        whole = _object_of(gw.path(node, TEMPERATURE.truncate(TEMPERATURE.level.INSTANCE)))
        read = await server.request(endpoint, Code.GET, whole, accept=SENML_CBOR)
        assert read.code == Code.CONTENT, read.payload
        assert _timed(read.payload)[target] == (19.25, measured)


async def test_a_quiet_endpoints_tree_rests_and_what_a_server_asks_of_it_reaches_the_node(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    """A quiet node endpoint holds its tree at rest, as data (issue 17: 10,000 endpoints in
    64 MB); a server's Read, Write and Observe still reach the node and are answered with what
    the node has, a reading still reaches the observing server, and the tree rests again once
    nothing is asked of it and nothing is observed."""
    async with mode_gateway("endpoints", server, tmp_path) as gw:
        assert gw.exposure is not None
        node = await gw.add(1, "kitchen")
        ep = gw.exposure.endpoint(node)
        assert ep is not None
        await until(lambda: ep.registered and ep.tree.resting, "the endpoint at rest")
        name, temperature = gw.endpoint(node), gw.path(node, TEMPERATURE)

        await gw.air.measure(node, 21.5)
        assert ep.tree.resting, "a reading leaves no live tree behind"
        read = await server.request(name, Code.GET, temperature)
        assert (read.code, float(read.payload)) == (Code.CONTENT, 21.5)
        assert ep.tree.resting

        switch = gw.path(node, SWITCH)
        written = await server.request(name, Code.PUT, switch, b"1", content_format=0)
        assert written.code == Code.CHANGED
        assert await gw.air.switch(node) is True, "the node itself has the value written"
        assert ep.tree.resting

        request = server.observe(name, temperature)
        first = await asyncio.wait_for(request.response, 10.0)
        assert (first.code, float(first.payload)) == (Code.CONTENT, 21.5)
        assert not ep.tree.resting, "an observed endpoint's notifications read its tree"
        await gw.air.measure(node, 23.0)
        assert request.observation is not None
        note = await asyncio.wait_for(anext(aiter(request.observation)), 10.0)
        assert float(note.payload) == 23.0
        cancelled = await server.request(name, Code.GET, temperature, observe=1)
        assert cancelled.code == Code.CONTENT
        await until(lambda: ep.tree.resting, "the endpoint at rest once no longer observed")
