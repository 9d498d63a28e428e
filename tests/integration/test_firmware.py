"""/5 Firmware Update of nodes through the gateway, end to end: the real gateway (bridged.app)
over the simulated transport, real SQLite in tmp_path, the in-repo LwM2M server, and package
servers on loopback (http://, coap://, and coaps:// from a DTLS-PSK LwM2M server the gateway
is registered with). The server pushes (Block1) or names (pull) a
package, executes Update, and observes State and Update Result move as object 5 says; what the
node received is read from the simulated node itself."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from aiocoap.numbers.codes import Code
from clients import FAST_RETRY
from emulators.mcuboot import image, version_of
from firmware_servers import HttpPackage, Package, X509PackageHost, coap_package, http_package
from firmware_view import (
    DOWNLOADED,
    DOWNLOADING,
    FULL_WALK,
    IDLE,
    OPAQUE,
    TEXT,
    TIMEOUT,
    UPDATING,
    FirmwareView,
)

from bridged.app import Gateway
from bridged.config import Config, GatewaySection, NodesSection, TransportSection
from bridged.download import Trust
from bridged.engine.client import ServerConfig
from bridged.engine.credentials import X509Credentials
from bridged.exposure.endpoints import endpoint_name
from bridged.objects.paths import Path as PathId
from bridged.store.nodes import NodeId
from bridged.transports.simulated import SimulatedNode, SimulatedTransport
from peers.dtls_server import DtlsPskServer
from peers.dtls_x509_server import X509DtlsServer
from peers.gateway import FACTS
from peers.lwm2m_server import LwM2MTestServer, decode_senml_cbor
from peers.pki import Pki

GATEWAY = "gw-fw"
NODE = NodeId("sim", "0001")
MODES = ("gateway", "endpoints")
NEEDS_DTLS_PSK = pytest.mark.skipif(
    importlib.util.find_spec("DTLSSocket") is None,
    reason="DTLSSocket is not installed (pip install 'bridged[dtls]')",
)
NEEDS_DTLS_X509 = pytest.mark.skipif(
    importlib.util.find_spec("OpenSSL") is None,
    reason="pyOpenSSL is not installed (pip install 'bridged[dtls]')",
)
IDENTITY = b"gw-fw"
KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


def secured(uri: str, **credentials: Any) -> ServerConfig:
    """Server 2 at coaps:// ``uri``, with ``credentials`` (a PSK, or ``x509``)."""
    return ServerConfig(
        uri, 2, request_timeout=5, retry=FAST_RETRY, dtls_handshake_timeout=5, **credentials
    )


def config(
    tmp_path: Path,
    server: LwM2MTestServer,
    mode: str,
    max_size: int,
    more: tuple[ServerConfig, ...] = (),
    trust: Trust = (),
) -> Config:
    """The gateway registered with ``server`` and the servers ``more`` says, https://
    packages verified against ``trust``."""
    return Config(
        path=tmp_path / "bridged.toml",
        gateway=GatewaySection(
            GATEWAY, exposure=mode, state_dir=tmp_path / "state", runtime_dir=tmp_path / "run"
        ),
        servers=(ServerConfig(server.uri, request_timeout=5, retry=FAST_RETRY), *more),
        nodes=NodesSection(
            firmware_max_size=max_size, firmware_timeout=10.0, firmware_trust_store=trust
        ),
        transports=(TransportSection("sim", MappingProxyType({"nodes": 1, "interval": 30})),),
    )


@dataclass
class Updatable:
    """A gateway with node sim:0001 paired, and the server's view of the node's /5."""

    gw: Gateway
    fw: FirmwareView

    @property
    def node(self) -> SimulatedNode:
        transport = self.gw.transports["sim"]
        assert isinstance(transport, SimulatedTransport)
        return transport.nodes[NODE]


@contextlib.asynccontextmanager
async def updatable(
    tmp_path: Path,
    server: LwM2MTestServer,
    mode: str,
    *,
    max_size: int = 100_000,
    more: tuple[ServerConfig, ...] = (),
    trust: Trust = (),
) -> AsyncIterator[Updatable]:
    gw = Gateway(config(tmp_path, server, mode, max_size, more, trust), facts=FACTS)
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
        async with FirmwareView(server, endpoint, prefix).watching() as fw:
            yield Updatable(gw, fw)
    finally:
        await gw.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_a_pushed_package_updates_the_node(
    tmp_path: Path, server: LwM2MTestServer, mode: str
) -> None:
    package = image((2, 1, 0, 7))
    async with updatable(tmp_path, server, mode) as up:
        fw = up.fw
        assert await fw.write(0, package, OPAQUE) == Code.CHANGED  # Block1: 20 kB
        await fw.until(DOWNLOADED, 0)
        assert (await fw.read(7)).decode() == "2.1.0+7"
        assert await fw.execute() == Code.CHANGED
        await fw.until(IDLE, 1)
        assert hashlib.sha256(up.node.firmware).digest() == hashlib.sha256(package).digest()
        assert fw.went(FULL_WALK)
        firmware = await server.request(fw.endpoint, Code.GET, f"{fw.prefix}/3/0/3")
        assert firmware.payload.decode() == version_of(package)


@pytest.mark.parametrize("mode", MODES)
async def test_a_package_pulled_over_http_resumes_a_cut_transfer(
    tmp_path: Path, server: LwM2MTestServer, mode: str
) -> None:
    package = image((3, 0, 0, 1), 40_000)
    with http_package(HttpPackage(package, cut=10_000)) as http:
        async with updatable(tmp_path, server, mode) as up:
            fw = up.fw
            assert await fw.write(1, http.url.encode(), TEXT) == Code.CHANGED
            await fw.until(DOWNLOADED, 0)
            assert http.requests == [None, "bytes=10000-"]
            assert (await fw.read(6)).decode() == "fw.bin"  # named by its URI
            assert await fw.execute() == Code.CHANGED
            await fw.until(IDLE, 1)
            assert up.node.firmware == package
            assert fw.went([(DOWNLOADING, 0), (DOWNLOADED, 0), (UPDATING, 0), (IDLE, 1)])


async def test_a_package_pulled_over_coap(tmp_path: Path, server: LwM2MTestServer) -> None:
    package = image((3, 1, 0, 0), 30_000)
    async with coap_package(package) as uri, updatable(tmp_path, server, "gateway") as up:
        assert await up.fw.write(1, uri.encode(), TEXT) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        assert await up.fw.execute() == Code.CHANGED
        await up.fw.until(IDLE, 1)
        assert up.node.firmware == package


@NEEDS_DTLS_PSK
async def test_a_package_pulled_over_coaps_from_a_psk_servers_host(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The package's host and port are those of a server the gateway is registered with
    over DTLS-PSK: its identity and key (/0) open the session, blocks come by Block2, and the
    node gets exactly the image."""
    package = image((3, 2, 0, 0), 30_000)
    dtls = await DtlsPskServer.start(IDENTITY, KEY)
    dtls.serve(("fw",), Package(package))
    try:
        psk = secured(dtls.uri, psk_identity=IDENTITY, psk_key=KEY)
        async with updatable(tmp_path, server, "gateway", more=(psk,)) as up:
            async with asyncio.timeout(TIMEOUT):
                await dtls.registrations.get()
            assert await up.fw.write(1, f"{dtls.uri}/fw".encode(), TEXT) == Code.CHANGED
            await up.fw.until(DOWNLOADED, 0)
            blocks = [m for m in dtls.sent if m.opt.block2 is not None]
            assert len(blocks) == -(-len(package) // 1024)  # block by block, each once
            assert await up.fw.execute() == Code.CHANGED
            await up.fw.until(IDLE, 1)
            assert hashlib.sha256(up.node.firmware).digest() == hashlib.sha256(package).digest()
    finally:
        await dtls.shutdown()


@NEEDS_DTLS_X509
async def test_a_package_pulled_over_coaps_from_an_x509_servers_host(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The package's host and port are those of a server the gateway is registered with
    over DTLS with certificates (security mode 2): its certificate, key and the server's
    certificate (/0) open a session of the download's own, every block comes in it, and the
    node gets exactly the image."""
    package = image((3, 4, 0, 0), 20_000)
    pki = Pki()
    dtls = await X509DtlsServer.start(
        pki.issue("server", server_host="127.0.0.1"), pki.ca.certificate
    )
    host = X509PackageHost(dtls, package)
    playing = asyncio.create_task(host.run())
    client = pki.issue(GATEWAY)
    credentials = X509Credentials(client.der, client.key_der(), dtls.certificate.der)
    try:
        async with updatable(
            tmp_path, server, "gateway", more=(secured(dtls.uri, x509=credentials),)
        ) as up:
            registration = await asyncio.wait_for(host.registrations.get(), TIMEOUT)
            assert registration.opt.uri_query[0] == f"ep={GATEWAY}"
            assert await up.fw.write(1, f"{dtls.uri}/fw".encode(), TEXT) == Code.CHANGED
            await up.fw.until(DOWNLOADED, 0)
            blocks = -(-len(package) // X509PackageHost.BLOCK)
            assert [n for _, n in host.blocks] == list(range(blocks))  # each once, in order
            assert len({addr for addr, _ in host.blocks}) == 1  # one session
            assert await up.fw.execute() == Code.CHANGED
            await up.fw.until(IDLE, 1)
            assert hashlib.sha256(up.node.firmware).digest() == hashlib.sha256(package).digest()
    finally:
        playing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await playing
        dtls.shutdown()


async def test_protocol_support_offers_every_scheme(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with updatable(tmp_path, server, "gateway") as up:
        offered = [r.value for r in decode_senml_cbor(await up.fw.read(8))]
        assert offered == [0, 1, 2, 3]  # coap, coaps, http, https


@pytest.mark.parametrize(
    ("uri", "result"),
    [("not a uri", 7), ("ftp://127.0.0.1/fw.bin", 9), ("coaps://127.0.0.1:5684/fw", 7)],
)
async def test_a_uri_that_cannot_be_fetched_ends_idle_with_its_result(
    tmp_path: Path, server: LwM2MTestServer, uri: str, result: int
) -> None:
    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.fw.write(1, uri.encode(), TEXT) == Code.CHANGED
        await up.fw.until(IDLE, result)
        assert await up.fw.execute() == Code.METHOD_NOT_ALLOWED  # nothing downloaded


def https(tmp_path: Path, pki: Pki, package: HttpPackage) -> HttpPackage:
    """``package`` on https://, with a certificate of ``pki``'s for 127.0.0.1."""
    package.tls = pki.issue("firmware", server_host="127.0.0.1").write(tmp_path, "https")
    return package


async def test_without_a_trust_store_https_is_verified_against_the_systems_cas(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """No ``[nodes] firmware_trust_store``: a server whose CA only the test knows is refused
    at its handshake (Update Result 4), once, no request sent: verification is never off."""
    with http_package(https(tmp_path, Pki(), HttpPackage(image((1, 0, 0, 0))))) as served:
        async with updatable(tmp_path, server, "gateway") as up:
            assert await up.fw.write(1, served.url.encode(), TEXT) == Code.CHANGED
            await up.fw.until(IDLE, 4)
        assert (served.connections, served.requests) == (1, [])


async def test_an_https_package_is_not_taken_from_a_redirect_to_http(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The trusted https:// server redirects to an http:// URL: following it would take the
    package from a server nobody verified, so the download ends there (Update Result 4),
    the http:// server asked nothing; a redirect to another https:// URL is followed."""
    pki = Pki()
    package = image((1, 0, 0, 1))
    with (
        http_package(HttpPackage(package)) as plain,
        http_package(https(tmp_path, pki, HttpPackage(b"", redirect=plain.url))) as downgrade,
        http_package(https(tmp_path, pki, HttpPackage(package))) as secure,
        http_package(https(tmp_path, pki, HttpPackage(b"", redirect=secure.url))) as moved,
    ):
        async with updatable(tmp_path, server, "gateway", trust=(pki.ca.der,)) as up:
            assert await up.fw.write(1, downgrade.url.encode(), TEXT) == Code.CHANGED
            await up.fw.until(IDLE, 4)
            assert plain.requests == []
            assert await up.fw.write(1, moved.url.encode(), TEXT) == Code.CHANGED
            await up.fw.until(DOWNLOADED, 0)
            assert secure.requests == [None]
            assert await up.fw.execute() == Code.CHANGED
            await up.fw.until(IDLE, 1)
            assert up.node.firmware == package


async def test_a_missing_package_is_an_invalid_uri(tmp_path: Path, server: LwM2MTestServer) -> None:
    with http_package(HttpPackage(b"")) as http:
        async with updatable(tmp_path, server, "gateway") as up:
            await up.fw.write(1, http.url.replace("fw.bin", "nope").encode(), TEXT)
            await up.fw.until(IDLE, 7)


async def test_a_package_too_big_is_not_enough_flash(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with updatable(tmp_path, server, "endpoints", max_size=10_000) as up:
        assert await up.fw.write(0, image((1, 0, 0, 0), 12_000), OPAQUE) == Code.CHANGED
        await up.fw.until(IDLE, 2)


async def test_a_coap_package_too_big_is_not_enough_flash(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """Fetched block by block, a coap:// package is refused at the first block past the
    bound, not after all of it is in memory."""
    async with (
        coap_package(image((1, 0, 0, 0), 30_000)) as uri,
        updatable(tmp_path, server, "gateway", max_size=10_000) as up,
    ):
        assert await up.fw.write(1, uri.encode(), TEXT) == Code.CHANGED
        await up.fw.until(IDLE, 2)


async def test_a_package_that_is_no_image_is_refused(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.fw.write(0, b"\x7fELF" + bytes(3000), OPAQUE) == Code.CHANGED
        await up.fw.until(IDLE, 6)


async def test_a_package_changed_on_disk_before_update_is_an_integrity_failure(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The SHA-256 recorded when the package was taken is checked again before the node gets
    a byte: a kept package that changed meanwhile (a disk fault) is Idle with Integrity failure
    (5), and the node runs what it ran."""
    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.fw.write(0, image((4, 1, 0, 0)), OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        (kept,) = (up.gw.config.gateway.state_dir / "firmware").iterdir()
        changed = bytearray(kept.read_bytes())
        changed[-1] ^= 1
        kept.write_bytes(bytes(changed))
        assert await up.fw.execute() == Code.CHANGED
        await up.fw.until(IDLE, 5)
        assert up.node.firmware == b""


async def test_an_empty_uri_or_package_resets_to_idle(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.fw.write(0, image((1, 0, 0, 0)), OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        assert await up.fw.write(1, b"", TEXT) == Code.CHANGED
        await up.fw.until(IDLE, 0)
        assert await up.fw.execute() == Code.METHOD_NOT_ALLOWED
        assert await up.fw.write(0, image((1, 0, 0, 1)), OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        assert await up.fw.write(0, b"\0", OPAQUE) == Code.CHANGED  # NUL: reset too
        await up.fw.until(IDLE, 0)
        assert not any((up.gw.config.gateway.state_dir / "firmware").iterdir())


async def test_a_restart_keeps_the_servers_view(tmp_path: Path, server: LwM2MTestServer) -> None:
    package = image((4, 0, 0, 0))
    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.fw.write(0, package, OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
    async with updatable(tmp_path, server, "gateway") as up:
        assert up.fw.states[0] == (DOWNLOADED, 0)
        assert (await up.fw.read(7)).decode() == "4.0.0+0"
        assert await up.fw.execute() == Code.CHANGED
        await up.fw.until(IDLE, 1)
        assert up.node.firmware == package


async def test_a_node_endpoint_registers_its_5(tmp_path: Path, server: LwM2MTestServer) -> None:
    """In the endpoints mode the node's /5/0 is in its endpoint's Register."""
    async with updatable(tmp_path, server, "endpoints") as up:
        while (register := await server.next_event("register")).endpoint != up.fw.endpoint:
            pass
        assert "</5/0>" in register.payload.decode().split(",")


async def test_the_instances_mode_shows_no_nodes_5(tmp_path: Path, server: LwM2MTestServer) -> None:
    """In the instances mode a node's /5 is never an instance of the gateway's (README: node
    updates need the other modes)."""
    gw = Gateway(config(tmp_path, server, "instances", 100_000), facts=FACTS)
    await gw.start()
    try:
        await server.next_event("register", timeout=TIMEOUT)
        await gw.pair(NODE)
        async with asyncio.timeout(TIMEOUT):
            while gw.exposure.paths.upstream(NODE, PathId((3311, 0))) is None:
                await asyncio.sleep(0.02)
        assert gw.exposure.paths.upstream(NODE, PathId((5, 0))) is None
        assert 5 not in gw.tree.object_ids() or gw.tree.instance_ids(5) == [0]
    finally:
        await gw.stop()


async def test_a_package_larger_than_other_bodies_is_pushed(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """A package may be larger than the 64 KiB any other request body is bounded by, up to
    ``firmware_max_size``; past that bound the Block1 transfer is refused at once (4.13)."""
    package = image((5, 0, 0, 0), 150_000)
    async with updatable(tmp_path, server, "gateway", max_size=160_000) as up:
        assert await up.fw.write(0, package, OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        assert await up.fw.write(0, image((5, 0, 0, 1), 170_000), OPAQUE) == (
            Code.REQUEST_ENTITY_TOO_LARGE
        )
        assert await up.fw.execute() == Code.CHANGED  # the package taken before is kept
        await up.fw.until(IDLE, 1)
        assert up.node.firmware == package


async def test_a_node_out_of_reach_ends_the_update_failed(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The node cannot be reached when Update is executed (it sleeps): Idle with Update
    Result 8, not Updating for ever."""
    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.fw.write(0, image((6, 0, 0, 0)), OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        up.node.sleepy, up.node.last_report = True, 0.0  # asleep from now on
        assert await up.fw.execute() == Code.CHANGED
        await up.fw.until(IDLE, 8)
        assert up.node.firmware == b""


async def test_a_pull_cut_by_a_restart_resumes_where_it_was(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The gateway stops while it fetches a package (the server stalls after 10 kB): started
    again, it asks for the rest only (Range), and the stopped fetch asked for nothing more."""
    package = image((9, 0, 0, 0), 40_000)
    kept = tmp_path / "state" / "firmware" / "sim_0001.fw"
    with http_package(HttpPackage(package, cut=10_000, stall=True)) as http:
        async with updatable(tmp_path, server, "gateway") as up:
            assert await up.fw.write(1, http.url.encode(), TEXT) == Code.CHANGED
            async with asyncio.timeout(TIMEOUT):
                while not (kept.exists() and kept.stat().st_size == 10_000):
                    await asyncio.sleep(0.02)
        http.release.set()  # the first connection ends, its fetch was told to stop
        async with updatable(tmp_path, server, "gateway") as up:
            await up.fw.until(DOWNLOADED, 0)
            assert await up.fw.execute() == Code.CHANGED
            await up.fw.until(IDLE, 1)
            assert up.node.firmware == package
        assert http.requests == [None, "bytes=10000-"]


async def test_the_gateways_own_5_is_not_the_node_talking(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The node's /5 values are the gateway's: showing and changing them is no sign the node
    was heard (its last seen time, and the wake its sleepy commands wait for)."""
    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.fw.write(0, image((1, 2, 3, 4)), OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        assert up.gw.registry.live[NODE].last_seen is None  # it has not reported since paired
