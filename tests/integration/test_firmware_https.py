"""A firmware package pulled over https://, end to end: the real daemon (a subprocess) with the
RCP emulator on a pty and an emulated 802.15.4 LwM2M node on its air; the in-repo LwM2M server
writes an https:// URI to the node's /5/0/1, served on loopback with a certificate a test CA
made at test time (``peers.pki``). The daemon trusts that CA through ``[nodes]
firmware_trust_store``, and checks every server it fetches from against it: chain, name and
dates. What the node received is read from the node, what the server observed from the
server, what the package server was asked from the package server."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from aiocoap.numbers.codes import Code
from emulators.lwm2m_node import EmulatedNode
from emulators.mcuboot import image, version_of
from emulators.world import Daemon, World, node_eui64
from firmware_servers import HttpPackage, http_package
from firmware_view import DOWNLOADED, FULL_WALK, IDLE, TEXT, TIMEOUT, FirmwareView

from peers.lwm2m_server import LwM2MTestServer
from peers.pki import Issued, Pki, now

ENDPOINT = "gw-fwhttps"
INDEX = 5
NODE = f"802154:{node_eui64(INDEX).hex()}"
HOST = "127.0.0.1"
CONNECTION_LOST = 4
"""Object 5's Update Result for an https:// server that fails verification (5.xml, resource 5
Update Result: "4: Connection lost during downloading process"). Object 5 has no code of its
own for it: 7 Invalid URI is for a URI that names no package, 9 Unsupported protocol "when the
URI contained a URI scheme unsupported by the client", and https is offered (/5/0/8). The
connection the download needed could not be made safely, so the download failed as one whose
connection broke does, and as Anjay's downloader reports a failed handshake."""
UPDATE_TIMEOUT = 120.0


@dataclass
class Updatable:
    daemon: Daemon
    node: EmulatedNode
    fw: FirmwareView
    trusted: Pki
    """The CA of the daemon's ``[nodes] firmware_trust_store``."""


@contextlib.asynccontextmanager
async def updatable(tmp_path: Path, server: LwM2MTestServer) -> AsyncIterator[Updatable]:
    """The daemon in the gateway mode, trusting a test CA's certificates for https://
    packages, with an 802.15.4 node that pulls its image from the gateway (Block2)."""
    trusted = Pki("firmware CA")
    store = tmp_path / "firmware-ca.pem"
    store.write_bytes(trusted.ca.pem)
    async with World(tmp_path) as world:
        daemon = await world.start_daemon(
            server.uri,
            endpoint=ENDPOINT,
            gateway='exposure = "gateway"',
            nodes=f'firmware_trust_store = "{store}"',
        )
        await daemon.ctl_json("pair", "802154", node_eui64(INDEX).hex(), "--name", "valve")
        node = await world.add_node(INDEX, "valve", firmware_delivery=0)
        await asyncio.wait_for(node.registered.wait(), TIMEOUT)
        view = await FirmwareView.of_node(server, daemon, ENDPOINT, NODE, "gateway")
        async with view.watching() as fw:
            yield Updatable(daemon, node, fw, trusted)


@contextlib.contextmanager
def https_package(
    tmp_path: Path, package: HttpPackage, certificate: Issued
) -> Iterator[HttpPackage]:
    """``package`` served over https:// with ``certificate`` (its files in ``tmp_path``)."""
    package.tls = certificate.write(tmp_path, f"https-{certificate.certificate.serial_number}")
    with http_package(package) as served:
        yield served


async def test_a_package_pulled_over_https_resumes_and_reaches_the_node(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The server's certificate comes from the configured CA and names 127.0.0.1: the gateway
    fetches the package, its first transfer cut after 2000 bytes and resumed with a Range
    request, and the node ends running exactly that image."""
    package = image((4, 2, 0, 1), 5_000)
    async with updatable(tmp_path, server) as up:
        certificate = up.trusted.issue("firmware", server_host=HOST)
        with https_package(tmp_path, HttpPackage(package, cut=2_000), certificate) as https:
            assert https.url.startswith("https://")
            assert await up.fw.write(1, https.url.encode(), TEXT) == Code.CHANGED
            await up.fw.until(DOWNLOADED, 0)
            assert https.requests == [None, "bytes=2000-"]
        assert (await up.fw.read(6)).decode() == "fw.bin"
        assert (await up.fw.read(7)).decode() == version_of(package)
        assert await up.fw.execute() == Code.CHANGED
        await up.fw.until(IDLE, 1, timeout=UPDATE_TIMEOUT)
        assert hashlib.sha256(up.node.firmware).digest() == hashlib.sha256(package).digest()
        assert up.fw.went(FULL_WALK[1:])


async def test_an_https_server_that_fails_verification_is_a_lost_connection(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """A server whose certificate a CA the gateway does not trust issued, one for another
    host, and an expired one: each ends the download at its handshake with Update Result 4,
    tried once (another try would meet the same certificate), no request sent (the package's
    path never leaves the gateway), the node asked nothing, and the log says why."""
    package = image((4, 3, 0, 0), 3_000)
    async with updatable(tmp_path, server) as up:
        three_days_ago = now() - datetime.timedelta(days=3)
        cases = {
            "unable to get local issuer certificate": Pki("another CA").issue(
                "firmware", server_host=HOST
            ),
            "certificate is not valid for '127.0.0.1'": up.trusted.issue(
                "firmware", server_host="firmware.example"
            ),
            "certificate has expired": up.trusted.issue(
                "firmware", server_host=HOST, valid_from=three_days_ago, days=1
            ),
        }
        for why, certificate in cases.items():
            with https_package(tmp_path, HttpPackage(package), certificate) as https:
                assert await up.fw.write(1, https.url.encode(), TEXT) == Code.CHANGED
                await up.fw.until(IDLE, CONNECTION_LOST)
                assert (https.connections, https.requests) == (1, []), why
            assert await up.fw.execute() == Code.METHOD_NOT_ALLOWED, why  # nothing downloaded
            log = up.daemon.log.read_text()
            assert f"{https.url}: the server's certificate fails verification" in log, why
            assert why in log
            assert await up.fw.write(1, b"", TEXT) == Code.CHANGED  # reset for the next one
            await up.fw.until(IDLE, 0)
        assert up.node.package == b"" and up.node.firmware == b""
        assert up.node.firmware_states == [IDLE]
