"""/5 Firmware Update of nodes through the gateway, end to end: the real gateway (bridged.app)
over the simulated transport, real SQLite in tmp_path, the in-repo LwM2M server, and package
servers on loopback (http:// and coap://). The server pushes (Block1) or names (pull) a
package, executes Update, and observes State and Update Result move as object 5 says; what the
node received is read from the simulated node itself."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pytest
from aiocoap.numbers.codes import Code
from clients import FAST_RETRY
from firmware_images import image, version_of
from firmware_servers import HttpPackage, coap_package, http_package

from bridged.app import Gateway
from bridged.config import Config, GatewaySection, NodesSection, TransportSection
from bridged.engine.client import ServerConfig
from bridged.exposure.endpoints import endpoint_name
from bridged.objects.formats import ContentFormat
from bridged.objects.paths import Path as PathId
from bridged.store.nodes import NodeId
from bridged.transports.simulated import SimulatedTransport
from peers.gateway import FACTS
from peers.lwm2m_server import LwM2MTestServer, decode_senml_cbor

GATEWAY = "gw-fw"
NODE = NodeId("sim", "0001")
TIMEOUT = 20.0
OPAQUE = ContentFormat.OPAQUE
IDLE, DOWNLOADING, DOWNLOADED, UPDATING = 0, 1, 2, 3


def config(tmp_path: Path, server: LwM2MTestServer, mode: str, max_size: int) -> Config:
    return Config(
        path=tmp_path / "bridged.toml",
        gateway=GatewaySection(
            GATEWAY, exposure=mode, state_dir=tmp_path / "state", runtime_dir=tmp_path / "run"
        ),
        servers=(ServerConfig(server.uri, request_timeout=5, retry=FAST_RETRY),),
        nodes=NodesSection(firmware_max_size=max_size, firmware_timeout=10.0),
        transports=(TransportSection("sim", MappingProxyType({"nodes": 1, "interval": 30})),),
    )


@dataclass
class Updatable:
    """A gateway with node sim:0001 paired, as the server addresses its /5."""

    gw: Gateway
    server: LwM2MTestServer
    endpoint: str
    prefix: str
    states: list[tuple[int, int]]
    """(State, Update Result) pairs the server was notified of, in order."""
    follower: asyncio.Task[None] | None = None

    def path(self, rid: int) -> str:
        return f"{self.prefix}/5/0/{rid}"

    async def read(self, rid: int) -> bytes:
        reply = await self.server.request(self.endpoint, Code.GET, self.path(rid))
        assert reply.code == Code.CONTENT, (rid, reply.code, reply.payload)
        return reply.payload

    async def write(self, rid: int, payload: bytes, content_format: int) -> Code:
        reply = await self.server.request(
            self.endpoint, Code.PUT, self.path(rid), payload, content_format=content_format
        )
        return reply.code

    async def until(self, state: int, result: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while self.states[-1:] != [(state, result)]:
                await asyncio.sleep(0.02)

    @property
    def sim(self) -> SimulatedTransport:
        transport = self.gw.transports["sim"]
        assert isinstance(transport, SimulatedTransport)
        return transport


@contextlib.asynccontextmanager
async def updatable(
    tmp_path: Path, server: LwM2MTestServer, mode: str, *, max_size: int = 100_000
) -> AsyncIterator[Updatable]:
    gw = Gateway(config(tmp_path, server, mode, max_size), facts=FACTS)
    await gw.start()
    try:
        await server.next_event("register", timeout=TIMEOUT)
        await gw.pair(NODE)
        async with asyncio.timeout(TIMEOUT):
            while (upstream := gw.exposure.paths.upstream(NODE, PathId((5, 0)))) is None:
                await asyncio.sleep(0.02)
            endpoint = GATEWAY if mode == "gateway" else endpoint_name(GATEWAY, NODE)
            while endpoint not in server.clients:
                await asyncio.sleep(0.02)
        prefix = "" if upstream.prefix is None else f"/{upstream.prefix}"
        up = Updatable(gw, server, endpoint, prefix, [])
        await observe_state(up)
        try:
            yield up
        finally:
            if up.follower is not None:
                up.follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await up.follower
    finally:
        await gw.stop()


async def observe_state(up: Updatable) -> None:
    """Observe /5/0 (pmin 0): each notification's State and Update Result go to ``states``."""
    attrs = await up.server.request(up.endpoint, Code.PUT, f"{up.prefix}/5/0", query=["pmin=0"])
    assert attrs.code == Code.CHANGED
    request = up.server.observe(up.endpoint, f"{up.prefix}/5/0", accept=ContentFormat.SENML_CBOR)
    first = await asyncio.wait_for(request.response, TIMEOUT)
    up.states.append(state_of(first.payload))

    async def follow() -> None:
        async for note in request.observation:
            up.states.append(state_of(note.payload))

    up.follower = asyncio.create_task(follow())


def state_of(payload: bytes) -> tuple[int, int]:
    values = {r.name.rsplit("/", 2)[-1]: r.value for r in decode_senml_cbor(payload)}
    return int(values["3"]), int(values["5"])


def in_order(seen: list[tuple[int, int]], wanted: list[tuple[int, int]]) -> bool:
    it = iter(seen)
    return all(step in it for step in wanted)


MODES = ("gateway", "endpoints")


@pytest.mark.parametrize("mode", MODES)
async def test_a_pushed_package_updates_the_node(
    tmp_path: Path, server: LwM2MTestServer, mode: str
) -> None:
    package = image((2, 1, 0, 7))
    async with updatable(tmp_path, server, mode) as up:
        assert await up.write(0, package, OPAQUE) == Code.CHANGED  # Block1: 20 kB
        await up.until(DOWNLOADED, 0)
        assert (await up.read(7)).decode() == "2.1.0+7"
        reply = await server.request(up.endpoint, Code.POST, up.path(2))
        assert reply.code == Code.CHANGED
        await up.until(IDLE, 1)
        node = up.sim.nodes[NODE]
        assert hashlib.sha256(node.firmware).digest() == hashlib.sha256(package).digest()
        assert in_order(
            up.states, [(IDLE, 0), (DOWNLOADING, 0), (DOWNLOADED, 0), (UPDATING, 0), (IDLE, 1)]
        )
        firmware = await server.request(up.endpoint, Code.GET, f"{up.prefix}/3/0/3")
        assert firmware.payload.decode() == version_of(package)


@pytest.mark.parametrize("mode", MODES)
async def test_a_package_pulled_over_http_resumes_a_cut_transfer(
    tmp_path: Path, server: LwM2MTestServer, mode: str
) -> None:
    package = image((3, 0, 0, 1), 40_000)
    with http_package(HttpPackage(package, cut=10_000)) as http:
        async with updatable(tmp_path, server, mode) as up:
            assert await up.write(1, http.url.encode(), ContentFormat.TEXT) == Code.CHANGED
            await up.until(DOWNLOADED, 0)
            assert http.requests == [None, "bytes=10000-"]
            assert await server.request(up.endpoint, Code.POST, up.path(2)) is not None
            await up.until(IDLE, 1)
            assert up.sim.nodes[NODE].firmware == package
            assert in_order(
                up.states, [(DOWNLOADING, 0), (DOWNLOADED, 0), (UPDATING, 0), (IDLE, 1)]
            )


async def test_a_package_pulled_over_coap(tmp_path: Path, server: LwM2MTestServer) -> None:
    package = image((3, 1, 0, 0), 30_000)
    async with coap_package(package) as uri, updatable(tmp_path, server, "gateway") as up:
        assert await up.write(1, uri.encode(), ContentFormat.TEXT) == Code.CHANGED
        await up.until(DOWNLOADED, 0)
        await server.request(up.endpoint, Code.POST, up.path(2))
        await up.until(IDLE, 1)
        assert up.sim.nodes[NODE].firmware == package


@pytest.mark.parametrize(
    ("uri", "result"),
    [("not a uri", 7), ("ftp://127.0.0.1/fw.bin", 9), ("coaps://127.0.0.1/fw", 9)],
)
async def test_a_uri_that_cannot_be_fetched_ends_idle_with_its_result(
    tmp_path: Path, server: LwM2MTestServer, uri: str, result: int
) -> None:
    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.write(1, uri.encode(), ContentFormat.TEXT) == Code.CHANGED
        await up.until(IDLE, result)
        reply = await server.request(up.endpoint, Code.POST, up.path(2))
        assert reply.code == Code.METHOD_NOT_ALLOWED  # nothing downloaded


async def test_a_missing_package_is_an_invalid_uri(tmp_path: Path, server: LwM2MTestServer) -> None:
    with http_package(HttpPackage(b"")) as http:
        async with updatable(tmp_path, server, "gateway") as up:
            await up.write(1, http.url.replace("fw.bin", "nope").encode(), ContentFormat.TEXT)
            await up.until(IDLE, 7)


async def test_a_package_too_big_is_not_enough_flash(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with updatable(tmp_path, server, "endpoints", max_size=10_000) as up:
        assert await up.write(0, image((1, 0, 0, 0), 12_000), OPAQUE) == Code.CHANGED
        await up.until(IDLE, 2)


async def test_a_package_that_is_no_image_is_refused(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.write(0, b"\x7fELF" + bytes(3000), OPAQUE) == Code.CHANGED
        await up.until(IDLE, 6)


async def test_an_empty_uri_resets_to_idle(tmp_path: Path, server: LwM2MTestServer) -> None:
    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.write(0, image((1, 0, 0, 0)), OPAQUE) == Code.CHANGED
        await up.until(DOWNLOADED, 0)
        assert await up.write(1, b"", ContentFormat.TEXT) == Code.CHANGED
        await up.until(IDLE, 0)
        reply = await server.request(up.endpoint, Code.POST, up.path(2))
        assert reply.code == Code.METHOD_NOT_ALLOWED


async def test_a_restart_keeps_the_servers_view(tmp_path: Path, server: LwM2MTestServer) -> None:
    package = image((4, 0, 0, 0))
    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.write(0, package, OPAQUE) == Code.CHANGED
        await up.until(DOWNLOADED, 0)
    async with updatable(tmp_path, server, "gateway") as up:
        assert up.states[0] == (DOWNLOADED, 0)
        assert (await up.read(7)).decode() == "4.0.0+0"
        await server.request(up.endpoint, Code.POST, up.path(2))
        await up.until(IDLE, 1)
        assert up.sim.nodes[NODE].firmware == package


async def test_a_node_endpoint_registers_its_5(tmp_path: Path, server: LwM2MTestServer) -> None:
    """In the endpoints mode the node's /5/0 is in its endpoint's Register; in the instances
    mode a node's /5 is never an instance of the gateway's (README: use the other modes)."""
    async with updatable(tmp_path, server, "endpoints") as up:
        while (register := await server.next_event("register")).endpoint != up.endpoint:
            pass
        assert "</5/0>" in register.payload.decode().split(",")


async def test_the_instances_mode_shows_no_nodes_5(tmp_path: Path, server: LwM2MTestServer) -> None:
    gw = Gateway(config(tmp_path, server, "instances", 100_000), facts=FACTS)
    await gw.start()
    try:
        await server.next_event("register", timeout=TIMEOUT)
        await gw.pair(NODE)
        async with asyncio.timeout(TIMEOUT):
            while gw.exposure.paths.upstream(NODE, PathId((3311, 0))) is None:
                await asyncio.sleep(0.02)
        assert gw.exposure.paths.upstream(NODE, PathId((5, 0))) is None
        assert 5 not in gw.tree.object_ids() or gw.tree.instance_ids(5) in ([], [0])
    finally:
        await gw.stop()
