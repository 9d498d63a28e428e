"""LwM2M security mode 2 (DTLS 1.2 with certificates) over the client's own session, against
the in-repo certificate DTLS server (tests/peers/dtls_x509_server.py, OpenSSL on the server side).

The client is ``bridged.engine.dtls_openssl.DtlsX509Uplink`` with a site of its own; the test
plays the LwM2M server by hand: it answers the client's requests and sends its own into the
session the client opened. The in-repo LwM2M and Bootstrap servers over certificates
(tests/peers/lwm2m_server.py, bootstrap_server.py, on the same OpenSSL server) then take the
whole client. Everything synchronises on queues and futures with timeouts, never on sleeps.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiocoap import ACK, CON, GET, POST, Code, Message, resource
from clients import a_series, assert_decoded_whole

from bridged.engine.bootstrap_client import BootstrapConfig
from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.credentials import RpkCredentials, X509Credentials
from bridged.engine.dtls import DtlsHandshakeError, DtlsUplink
from bridged.engine.dtls_openssl import DtlsX509Uplink
from bridged.engine.dtls_x509 import DtlsIdentityError
from bridged.engine.registration import RetryPolicy
from bridged.objects.builtin import builtin_definitions
from bridged.objects.formats import ContentFormat
from bridged.objects.ids import CertificateUsage, SecurityMode
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from peers.bootstrap_server import BootstrapTestServer
from peers.dtls_x509_server import HandPlayedServer, X509DtlsServer
from peers.lwm2m_server import LwM2MTestServer, SenMLRecord
from peers.pki import Pki, now

TIMEOUT = 10.0


class Manufacturer(resource.Resource):  # type: ignore[misc]
    async def render_get(self, request: Message) -> Message:
        return Message(code=Code.CONTENT, payload=b"ACME")


def site() -> resource.Site:
    s = resource.Site()
    s.add_resource(["3", "0", "0"], Manufacturer())
    return s


@pytest.fixture(name="pki", scope="module")
def pki_fixture() -> Pki:
    return Pki()


@pytest.fixture(name="server")
async def server_fixture(pki: Pki) -> AsyncIterator[X509DtlsServer]:
    server = await X509DtlsServer.start(
        pki.issue("server", server_host="127.0.0.1"), pki.ca.certificate
    )
    yield server
    server.shutdown()


def credentials(pki: Pki, server_certificate: bytes) -> X509Credentials:
    """A client certificate of the test CA, pinning ``server_certificate`` (usage 3)."""
    client = pki.issue("bridged-test")
    return X509Credentials(client.der, client.key_der(), server_certificate)


def by_hand(message: Message, mtype: Any, mid: int, token: bytes) -> Message:
    """``message`` with the type, ID and token the test (playing the server) picks: set after
    construction, as aiocoap deprecates them as constructor arguments."""
    message.mtype, message.mid, message.token = mtype, mid, token
    return message


async def answered(
    server: HandPlayedServer, request: asyncio.Future[Message]
) -> tuple[Any, Message]:
    """The server's side of one client request: read it, answer 2.01 piggybacked; returns the
    client's address and what the client got."""
    addr, message = await asyncio.wait_for(server.received.get(), TIMEOUT)
    assert message.code == POST
    server.send(addr, by_hand(Message(code=Code.CREATED), ACK, message.mid, message.token))
    response = await asyncio.wait_for(request, TIMEOUT)
    assert response.code == Code.CREATED
    return addr, response


async def test_server_requests_travel_in_the_clients_session_and_close_notify_handshakes_anew(
    pki: Pki, server: X509DtlsServer
) -> None:
    """The server reads /3/0/0 through the session the client's Register opened; after the
    server's close_notify the client's next request handshakes again, from a new port."""
    endpoint = await DtlsX509Uplink.create(
        server.uri, credentials(pki, server.certificate.der), site()
    )
    await served_in_session_then_closed(server, endpoint)


async def served_in_session_then_closed(server: HandPlayedServer, endpoint: DtlsUplink) -> None:
    """The walk each DTLS mode's test takes with its hand-played server: Register, the server's
    Read of /3/0/0 in that session, its close_notify, a new Register from a new port; the
    endpoint is shut down at the end."""
    try:
        register = Message(code=POST, uri=f"{server.uri}/rd?ep=bridged-test")
        addr, _ = await answered(server, asyncio.ensure_future(endpoint.request(register)))

        read = Message(code=GET, uri_path=("3", "0", "0"))
        server.send(addr, by_hand(read, CON, 77, b"rd"))
        got, answer = await asyncio.wait_for(server.received.get(), TIMEOUT)
        assert got == addr and answer.code == Code.CONTENT and answer.payload == b"ACME"
        assert (answer.mid, answer.token) == (77, b"rd")

        server.close(addr)
        again = Message(code=POST, uri=f"{server.uri}/rd?ep=bridged-test")
        new_addr, _ = await answered(server, asyncio.ensure_future(endpoint.request(again)))
        assert new_addr != addr
    finally:
        await endpoint.shutdown()


async def test_an_impostor_server_gets_nothing(pki: Pki, server: X509DtlsServer) -> None:
    """The server's certificate is not the one pinned: the request fails with
    DtlsIdentityError and the server never receives a CoAP message."""
    other = pki.issue("server", server_host="127.0.0.1").der
    endpoint = await DtlsX509Uplink.create(server.uri, credentials(pki, other), site())
    try:
        with pytest.raises(DtlsIdentityError, match="not the server certificate configured"):
            await asyncio.wait_for(
                endpoint.request(Message(code=POST, uri=f"{server.uri}/rd?ep=x")), TIMEOUT
            )
        assert server.received.empty()
    finally:
        await endpoint.shutdown()


@pytest.mark.parametrize(
    ("usage", "why"),
    [
        pytest.param(CertificateUsage.DOMAIN_ISSUED_CERTIFICATE, "not valid now", id="pinned"),
        pytest.param(CertificateUsage.TRUST_ANCHOR_ASSERTION, "does not validate", id="anchor"),
    ],
)
async def test_a_server_with_an_expired_certificate_gets_nothing(
    pki: Pki, usage: int, why: str
) -> None:
    """The server presents an expired certificate, pinned itself (usage 3) or issued by the
    configured trust anchor (usage 2): the request fails with DtlsIdentityError saying why,
    and the server never receives a CoAP message."""
    expired = pki.issue(
        "server", server_host="127.0.0.1", valid_from=now() - datetime.timedelta(days=3)
    )
    server = await X509DtlsServer.start(expired, pki.ca.certificate)
    client = pki.issue("bridged-test")
    anchor = expired.der if usage == CertificateUsage.DOMAIN_ISSUED_CERTIFICATE else pki.ca.der
    creds = X509Credentials(client.der, client.key_der(), anchor, usage)
    endpoint = await DtlsX509Uplink.create(server.uri, creds, site())
    try:
        with pytest.raises(DtlsIdentityError, match=why):
            await asyncio.wait_for(
                endpoint.request(Message(code=POST, uri=f"{server.uri}/rd?ep=x")), TIMEOUT
            )
        assert server.received.empty()
    finally:
        await endpoint.shutdown()
        server.shutdown()


async def test_a_silent_server_is_a_handshake_timeout(pki: Pki) -> None:
    """Nothing answers: DtlsHandshakeError says the server never answered."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        uri = f"coaps://127.0.0.1:{silent.getsockname()[1]}"
        client = pki.issue("bridged-test")
        creds = X509Credentials(client.der, client.key_der(), client.der)
        endpoint = await DtlsX509Uplink.create(uri, creds, site(), handshake_timeout=1.0)
        try:
            with pytest.raises(DtlsHandshakeError, match="no answer from the server"):
                await asyncio.wait_for(
                    endpoint.request(Message(code=POST, uri=f"{uri}/rd?ep=x")), TIMEOUT
                )
        finally:
            await endpoint.shutdown()


# -- the in-repo LwM2M and Bootstrap servers over certificates (aiocoap over OpenSSL) ----------

FAST_RETRY = RetryPolicy(count=2, timer=0.05, sequence_delay=0.1, sequence_count=1)
TEMPERATURE = Path((3303, 0, 5700))


def gateway_tree() -> ObjectTree:
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(3, 0, [(0, "ACME"), (16, "U")])
    tree.create_instance(3303, 0, [(5700, 21.5)])
    return tree


async def walked_with_the_in_repo_server(
    server: LwM2MTestServer,
    *,
    x509: X509Credentials | None = None,
    rpk: RpkCredentials | None = None,
) -> None:
    """A LwM2M client with credentials (``x509`` or ``rpk``) and the in-repo LwM2M
    server over DTLS: the server decodes its Register, Reads /3/0/0 and Observes a temperature
    over the session (a notification follows a change), decodes a Send, and sees the
    De-register."""
    config = ServerConfig(server.uri, request_timeout=3.0, retry=FAST_RETRY, x509=x509, rpk=rpk)
    client = LwM2MClient(gateway_tree(), "gw-dtls", config, bind=("127.0.0.1", 0))
    await client.start()
    try:
        register = await server.next_event("register")
        assert (register.endpoint, register.code) == ("gw-dtls", Code.CREATED)
        read = await server.request("gw-dtls", Code.GET, "/3/0/0", accept=ContentFormat.TEXT)
        assert (read.code, read.payload) == (Code.CONTENT, b"ACME")

        observation = server.observe("gw-dtls", str(TEMPERATURE), accept=ContentFormat.TEXT)
        notifications: asyncio.Queue[Message] = asyncio.Queue()
        assert observation.observation is not None
        observation.observation.register_callback(
            notifications.put_nowait, _suppress_deprecation=True
        )
        first = await asyncio.wait_for(observation.response, TIMEOUT)
        assert (first.code, first.payload) == (Code.CONTENT, b"21.5")
        client.tree.set(TEMPERATURE, 23.0)
        while (await asyncio.wait_for(notifications.get(), TIMEOUT)).payload != b"23.0":
            pass

        outcome = await client.send([Record(TEMPERATURE, 24.5, 1_700_000_000.0)])
        assert outcome.delivered
        sent = await server.next_event("send")
        assert (sent.endpoint, sent.code) == ("gw-dtls", Code.CHANGED)
        assert sent.records == (SenMLRecord(str(TEMPERATURE), 1_700_000_000.0, 24.5),)

        # A server that takes 256-byte blocks only (4.13 to larger ones): over DTLS too the
        # client sends the body again in blocks of that size (engine/block1.py).
        server.send_block_exponent = 4
        series = a_series(TEMPERATURE)
        assert (await client.send(series)).delivered
        sent = await server.next_event("send")
        assert_decoded_whole(sent, series)
        assert server.send_blocks[0] == 1024 and max(server.send_blocks[1:]) == 256
    finally:
        await client.stop()
    assert (await server.next_event("deregister")).endpoint == "gw-dtls"


async def test_register_read_observe_send_and_deregister_with_the_in_repo_server(pki: Pki) -> None:
    """Security mode 2 with the in-repo LwM2M server over DTLS with certificates (OpenSSL on
    both sides; the server takes only clients of its CA, the client pins the server's)."""
    issued = pki.issue("server", server_host="127.0.0.1")
    async with LwM2MTestServer(x509=(issued, pki.ca.certificate)) as server:
        await walked_with_the_in_repo_server(server, x509=credentials(pki, issued.der))


async def test_bootstrap_over_certificates_provisions_a_certificate_account(pki: Pki) -> None:
    """Bootstrap over DTLS with certificates from the in-repo Bootstrap-Server, which
    provisions a mode 2 account (/0/x/3, 4, 5; usage 3 when /0/x/15 is absent) for the in-repo
    LwM2M server (a certificate of its own); the client registers there with it."""
    bs_cert = pki.issue("bootstrap", server_host="127.0.0.1")
    dm_cert = pki.issue("server", server_host="127.0.0.1")
    async with (
        BootstrapTestServer(x509=(bs_cert, pki.ca.certificate)) as bs,
        LwM2MTestServer(x509=(dm_cert, pki.ca.certificate)) as dm_server,
    ):
        creds = credentials(pki, bs_cert.der)
        config = BootstrapConfig(bs.uri, x509=creds, request_timeout=3.0, retry=FAST_RETRY)
        await bootstrapped_then_registered(
            bs,
            dm_server,
            config,
            mode=SecurityMode.CERTIFICATE,
            identity=creds.certificate,
            server_key=dm_cert.der,
            key=creds.private_key,
        )


async def bootstrapped_then_registered(
    bs: BootstrapTestServer, dm_server: LwM2MTestServer, config: BootstrapConfig, **keys: Any
) -> None:
    """A client with only ``config`` (a Bootstrap-Server over DTLS) is provisioned an account
    for ``dm_server`` (its security ``keys``: mode, identity, server_key, key) and registers
    there."""
    client = LwM2MClient(gateway_tree(), "gw-dtls", None, bind=("127.0.0.1", 0), bootstrap=config)
    await client.start()
    try:
        request = await bs.next_request()
        assert request.query["ep"] == "gw-dtls"
        await bs.provision(request, dm_server.uri, **keys)
        register = await dm_server.next_event("register")
        assert (register.endpoint, register.code) == ("gw-dtls", Code.CREATED)
    finally:
        await client.stop()
