"""LwM2M security mode 1 (DTLS 1.2 with raw public keys, RFC 7250) over the client's own session,
against the in-repo RPK DTLS server (tests/peers/dtls_rpk_server.py: tinydtls in the server role
through the same ctypes binding).

The client is ``bridged.engine.dtls_rpk.DtlsRpkUplink`` with a site of its own; the test plays
the LwM2M server by hand, as test_dtls_x509.py does (whose helpers it shares). Then the engine's
LwM2M client against the in-repo LwM2M and Bootstrap servers, run over the same binding under
aiocoap. Everything synchronises on queues and futures with timeouts, never on sleeps.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiocoap import POST, Message
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bridged.engine.bootstrap_client import BootstrapConfig
from bridged.engine.credentials import RpkCredentials
from bridged.engine.dtls import DtlsHandshakeError
from bridged.engine.dtls_rpk import DtlsRpkUplink
from bridged.engine.dtls_x509 import DtlsAlertError, DtlsIdentityError
from bridged.engine.tinydtls import RawKey
from bridged.objects.ids import SecurityMode
from integration.test_dtls_x509 import (
    FAST_RETRY,
    TIMEOUT,
    answered,
    bootstrapped_then_registered,
    served_in_session_then_closed,
    site,
    walked_with_the_in_repo_server,
)
from peers.bootstrap_server import BootstrapTestServer
from peers.dtls_rpk_server import RpkDtlsServer
from peers.lwm2m_server import LwM2MTestServer


def private_der() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


CLIENT_KEY = private_der()
SERVER_KEY = private_der()


def credentials(client: bytes = CLIENT_KEY, server: bytes = SERVER_KEY) -> RpkCredentials:
    """The client's key pair (private key ``client``), trusting the server key of ``server``."""
    return RpkCredentials(
        RawKey.from_der(client).public_der, client, RawKey.from_der(server).public_der
    )


@pytest.fixture(name="server")
async def server_fixture() -> AsyncIterator[RpkDtlsServer]:
    server = await RpkDtlsServer.start(
        RawKey.from_der(SERVER_KEY), [RawKey.from_der(CLIENT_KEY).public_der]
    )
    yield server
    server.shutdown()


async def test_server_requests_travel_in_the_clients_session_and_close_notify_handshakes_anew(
    server: RpkDtlsServer,
) -> None:
    """Register over RPK, the server reads /3/0/0 through the session the client's Register
    opened; after the server's close_notify the client's next request handshakes again, from a
    new port."""
    endpoint = await DtlsRpkUplink.create(server.uri, credentials(), site())
    await served_in_session_then_closed(server, endpoint)


async def test_a_lost_client_hello_is_sent_again(server: RpkDtlsServer) -> None:
    """The network loses the client's first ClientHello: the session's retransmission timer
    (tinydtls' schedule) sends it again and the Register gets through."""
    server.lose = 1
    endpoint = await DtlsRpkUplink.create(server.uri, credentials(), site())
    try:
        register = Message(code=POST, uri=f"{server.uri}/rd?ep=bridged-test")
        await answered(server, asyncio.ensure_future(endpoint.request(register)))
        assert server.lose == 0
    finally:
        await endpoint.shutdown()


async def test_an_impostor_server_gets_nothing(server: RpkDtlsServer) -> None:
    """The server's key is not /0/x/4's: the request fails with DtlsIdentityError, the client
    ends the handshake with a bad_certificate alert, and the server never gets a CoAP message."""
    endpoint = await DtlsRpkUplink.create(server.uri, credentials(server=private_der()), site())
    try:
        with pytest.raises(DtlsIdentityError, match="not the server public key of /0/x/4"):
            await asyncio.wait_for(
                endpoint.request(Message(code=POST, uri=f"{server.uri}/rd?ep=x")), TIMEOUT
            )
        assert server.received.empty()
        assert [(level, code) for _, level, code in server.alerts] == [(2, 42)]
    finally:
        await endpoint.shutdown()


async def test_a_client_key_the_server_does_not_know_is_refused_with_its_alert(
    server: RpkDtlsServer,
) -> None:
    """The server does not trust the client's key: its bad_certificate alert fails the request
    with DtlsAlertError naming it, and no CoAP message got through."""
    endpoint = await DtlsRpkUplink.create(server.uri, credentials(client=private_der()), site())
    try:
        with pytest.raises(DtlsAlertError, match="bad_certificate"):
            await asyncio.wait_for(
                endpoint.request(Message(code=POST, uri=f"{server.uri}/rd?ep=x")), TIMEOUT
            )
        assert server.received.empty()
        assert len(server.refused) == 1
    finally:
        await endpoint.shutdown()


async def test_a_silent_server_is_a_handshake_timeout() -> None:
    """Nothing answers: DtlsHandshakeError says the server never answered (after tinydtls'
    own retransmissions of its ClientHello)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        uri = f"coaps://127.0.0.1:{silent.getsockname()[1]}"
        endpoint = await DtlsRpkUplink.create(uri, credentials(), site(), handshake_timeout=1.0)
        try:
            with pytest.raises(DtlsHandshakeError, match=r"DTLS-RPK .* no answer from the server"):
                await asyncio.wait_for(
                    endpoint.request(Message(code=POST, uri=f"{uri}/rd?ep=x")), TIMEOUT
                )
        finally:
            await endpoint.shutdown()


def test_credentials_refuse_a_public_key_that_is_not_the_private_keys() -> None:
    """/0/x/3 and /0/x/5 that do not belong together are refused before any handshake."""
    with pytest.raises(ValueError, match=r"public key \(/0/x/3\) is not its private key's"):
        RpkCredentials(RawKey.from_der(private_der()).public_der, CLIENT_KEY, CLIENT_KEY)


def test_credentials_never_show_the_private_key() -> None:
    creds = credentials()
    assert CLIENT_KEY.hex() not in repr(creds) and "private_key" not in repr(creds)


# -- the in-repo LwM2M and Bootstrap servers over RPK (aiocoap on the same binding) ------------


def rpk_peer(server: bytes = SERVER_KEY) -> tuple[RawKey, list[bytes]]:
    """A server's key pair (private key ``server``) taking the client key of CLIENT_KEY."""
    return RawKey.from_der(server), [RawKey.from_der(CLIENT_KEY).public_der]


async def test_register_read_observe_send_and_deregister_with_the_in_repo_server() -> None:
    """A LwM2M client in security mode 1 with the in-repo LwM2M server over DTLS-RPK: the
    server decodes its Register, Reads /3/0/0 and Observes a temperature over the session (a
    notification follows a change), decodes a Send, and sees the De-register."""
    async with LwM2MTestServer(rpk=rpk_peer()) as server:
        await walked_with_the_in_repo_server(server, rpk=credentials())


async def test_bootstrap_over_rpk_provisions_an_rpk_account_the_client_registers_with() -> None:
    """Bootstrap over DTLS-RPK from the in-repo Bootstrap-Server, which provisions a mode 1
    account (/0/x/3, 4, 5) for the in-repo LwM2M server (a key pair of its own); the client
    registers there over RPK."""
    dm_key = private_der()
    async with (
        BootstrapTestServer(rpk=rpk_peer()) as bs,
        LwM2MTestServer(rpk=rpk_peer(dm_key)) as dm_server,
    ):
        creds = credentials()
        config = BootstrapConfig(bs.uri, rpk=creds, request_timeout=3.0, retry=FAST_RETRY)
        await bootstrapped_then_registered(
            bs,
            dm_server,
            config,
            mode=SecurityMode.RPK,
            identity=creds.public_key,
            server_key=RawKey.from_der(dm_key).public_der,
            key=creds.private_key,
        )
