"""LwM2M security mode 0 (DTLS 1.2 PSK) in both directions over the client's own session.

A real client context from ``bridged.engine.dtls`` registers to the DTLS test server peer on
127.0.0.1, and the server then reads, writes and observes the client through the session the
client opened. Everything synchronises on futures and queues with timeouts, never on sleeps.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiocoap import ACK, EMPTY, GET, POST, PUT, RST, Code, Message, error, resource
from aiocoap.numbers.constants import TransportTuning
from aiocoap.transports.tinydtls import DTLSClientConnection

from bridged.engine.dtls import DtlsHandshakeError, DtlsPskUplink, credentials_pattern
from peers.dtls_server import DtlsPskServer, Registration

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("DTLSSocket") is None,
    reason="DTLSSocket is not installed (pip install 'bridged[dtls]'; building it needs "
    "autoconf, automake and libtool)",
)

IDENTITY = b"urn:imei:490154203237518"
KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
TEST_TIMEOUT = 10.0


class FastTuning(TransportTuning):  # type: ignore[misc]
    """Loopback only: a request into a dead session fails in under a second, not after 93 s."""

    ACK_TIMEOUT = 0.2
    MAX_RETRANSMIT = 1


@pytest.fixture(autouse=True)
def _no_reuse_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two servers silently sharing a port (SO_REUSEPORT) would hide restart bugs."""
    monkeypatch.setenv("AIOCOAP_REUSE_PORT", "0")


def run(body: Callable[[], Awaitable[None]]) -> None:
    """Run one test body on a fresh event loop, bounded so a hang fails instead of stalling."""

    async def bounded() -> None:
        await asyncio.wait_for(body(), TEST_TIMEOUT)

    asyncio.run(bounded())


class Value(resource.Resource):  # type: ignore[misc]
    """A readable and writable resource; each write is handed to ``writes``."""

    def __init__(self, value: bytes) -> None:
        super().__init__()
        self.value = value
        self.writes: asyncio.Queue[Message] = asyncio.Queue()

    async def render_get(self, request: Message) -> Message:
        return Message(payload=self.value)

    async def render_put(self, request: Message) -> Message:
        self.value = request.payload
        self.writes.put_nowait(request)
        return Message(code=Code.CHANGED)


class Observed(resource.ObservableResource):  # type: ignore[misc]
    """An observable counter; observer counts are handed to ``observers`` as they change."""

    def __init__(self) -> None:
        super().__init__()
        self.value = 0
        self.observers: asyncio.Queue[int] = asyncio.Queue()

    def update_observation_count(self, newcount: int) -> None:
        self.observers.put_nowait(newcount)

    def change(self) -> None:
        self.value += 1
        self.updated_state()

    async def render_get(self, request: Message) -> Message:
        return Message(payload=str(self.value).encode())


@dataclass
class Client:
    endpoint: DtlsPskUplink
    manufacturer: Value
    large: Value
    counter: Observed

    async def register(self) -> Message:
        return await self.endpoint.request(
            Message(code=POST, uri=f"{self.endpoint.server_uri}/rd?ep=node-1&lt=300&lwm2m=1.1")
        )

    async def update(
        self, location: tuple[str, ...], tuning: TransportTuning | None = None
    ) -> Message:
        path = "/".join(location)
        return await self.endpoint.request(
            Message(code=POST, uri=f"{self.endpoint.server_uri}/{path}", transport_tuning=tuning)
        )


async def start_client(
    server_uri: str, key: bytes = KEY, *, handshake_timeout: float = 5.0
) -> Client:
    site = resource.Site()
    manufacturer = Value(b"bridged")
    large = Value(bytes(range(256)) * 12)
    counter = Observed()
    site.add_resource(("3", "0", "0"), manufacturer)
    site.add_resource(("3", "0", "1"), large)
    site.add_resource(("3", "0", "13"), counter)
    endpoint = await DtlsPskUplink.create(
        server_uri, IDENTITY, key, site, handshake_timeout=handshake_timeout
    )
    return Client(endpoint, manufacturer, large, counter)


async def registered() -> tuple[DtlsPskServer, Client, Registration]:
    server = await DtlsPskServer.start(IDENTITY, KEY)
    client = await start_client(server.uri)
    response = await client.register()
    assert response.code == Code.CREATED
    registration = await server.registrations.get()
    assert registration.location == tuple(response.opt.location_path)
    return server, client, registration


async def read(server: DtlsPskServer, registration: Registration, *path: str) -> Message:
    return await server.request(registration, Message(code=GET, uri_path=path)).response


def test_LightweightM2M_1_1_int_401_psk_mode() -> None:
    """Register over DTLS-PSK, then the server reads the client over the same 5-tuple."""

    async def body() -> None:
        server, client, registration = await registered()
        try:
            assert registration.endpoint == "node-1"
            session = client.endpoint.session
            assert isinstance(session, DTLSClientConnection)
            assert registration.remote.hostinfo == session.hostinfo_local
            assert len(client.endpoint.context.request_interfaces) == 1  # no plain CoAP

            response = await read(server, registration, "3", "0", "0")

            assert response.code == Code.CONTENT
            assert response.payload == b"bridged"
        finally:
            await client.endpoint.shutdown()
            await server.shutdown()

    run(body)


def test_server_write_uses_block1_over_client_session() -> None:
    async def body() -> None:
        server, client, registration = await registered()
        try:
            payload = bytes(range(256)) * 10  # 2560 bytes: three 1024-byte blocks
            request = Message(code=PUT, uri_path=("3", "0", "0"), payload=payload)

            response = await server.request(registration, request).response
            written = await client.manufacturer.writes.get()

            assert response.code == Code.CHANGED
            assert [m.opt.block1.block_number for m in server.sent if m.code == PUT] == [0, 1, 2]
            assert written.payload == payload
            assert written.remote is client.endpoint.session
        finally:
            await client.endpoint.shutdown()
            await server.shutdown()

    run(body)


def test_server_read_uses_block2_over_client_session() -> None:
    async def body() -> None:
        server, client, registration = await registered()
        try:
            response = await read(server, registration, "3", "0", "1")

            assert response.code == Code.CONTENT
            assert response.payload == client.large.value
            blocks = [m.opt.block2 for m in server.sent if m.code == GET]
            assert [b.block_number for b in blocks[1:]] == [1, 2]
        finally:
            await client.endpoint.shutdown()
            await server.shutdown()

    run(body)


def test_observe_notifications_and_rst_cancel_over_client_session() -> None:
    async def body() -> None:
        server, client, registration = await registered()
        try:
            request = server.request(
                registration, Message(code=GET, uri_path=("3", "0", "13"), observe=0)
            )
            first = await request.response
            assert await client.counter.observers.get() == 1
            notifications = aiter(request.observation)

            client.counter.change()
            second = await anext(notifications)
            client.counter.change()
            third = await anext(notifications)

            assert [first.payload, second.payload, third.payload] == [b"0", b"1", b"2"]
            # aiocoap cancels lazily: it still acknowledges the first notification after
            # cancel(), forgets the token then, and answers the next one with RST.
            request.observation.cancel()
            acknowledged = server.expect_sent(lambda m: m.mtype == ACK and m.code == EMPTY)
            client.counter.change()
            await acknowledged
            reset = server.expect_sent(lambda m: m.mtype == RST)
            client.counter.change()
            await reset

            assert await client.counter.observers.get() == 0
        finally:
            await client.endpoint.shutdown()
            await server.shutdown()

    run(body)


def test_session_is_held_when_nothing_else_references_it() -> None:
    """Rule 1: aiocoap's pool is weak; without the endpoint's reference the session is gone."""

    async def body() -> None:
        server, client, registration = await registered()
        try:
            gc.collect()
            response = await read(server, registration, "3", "0", "0")

            assert response.payload == b"bridged"
            assert len(client.endpoint._transport._pool) == 1
        finally:
            await client.endpoint.shutdown()
            await server.shutdown()

    run(body)


def test_wrong_psk_fails_handshake_with_clear_error() -> None:
    async def body() -> None:
        server = await DtlsPskServer.start(IDENTITY, KEY)
        client = await start_client(server.uri, b"not the key", handshake_timeout=0.5)
        try:
            with pytest.raises(DtlsHandshakeError, match="check the PSK identity and key"):
                await client.register()
            assert server.registrations.empty()
            assert client.endpoint.session is None
        finally:
            await client.endpoint.shutdown()
            await server.shutdown()

    run(body)


def test_silent_server_fails_handshake_saying_so() -> None:
    """A server that never answers is told apart from one that refuses the keys."""

    class Silent(asyncio.DatagramProtocol):
        pass

    async def body() -> None:
        loop = asyncio.get_running_loop()
        silent, _ = await loop.create_datagram_endpoint(Silent, local_addr=("127.0.0.1", 0))
        port = silent.get_extra_info("sockname")[1]
        client = await start_client(f"coaps://127.0.0.1:{port}", handshake_timeout=0.3)
        try:
            with pytest.raises(DtlsHandshakeError, match="no answer from the server"):
                await client.register()
        finally:
            await client.endpoint.shutdown()
            silent.close()

    run(body)


@pytest.mark.parametrize(
    "down_first", [False, True], ids=["restart-unnoticed", "down-connection-refused"]
)
def test_server_restart_is_recovered_by_registering_again(down_first: bool) -> None:
    """Rule 2: a restarted server ignores the old session; Register handshakes afresh.

    With ``down_first`` an Update is tried while nothing listens (ICMP port unreachable) before
    the server comes back; without, the server restarts before the client notices anything.
    """

    async def body() -> None:
        server, client, registration = await registered()
        port = server.port
        await server.shutdown()
        if down_first:
            with pytest.raises(error.NetworkError):
                await client.update(registration.location, FastTuning())
        server = await DtlsPskServer.start(IDENTITY, KEY, port=port)
        try:
            if not down_first:
                with pytest.raises(error.NetworkError):
                    await client.update(registration.location, FastTuning())
            assert client.endpoint.session is None

            assert (await client.register()).code == Code.CREATED
            again = await server.registrations.get()
            response = await read(server, again, "3", "0", "0")

            assert again.remote.hostinfo != registration.remote.hostinfo
            assert response.payload == b"bridged"
        finally:
            await client.endpoint.shutdown()
            await server.shutdown()

    run(body)


def test_close_notify_rehandshakes_in_same_session(caplog: pytest.LogCaptureFixture) -> None:
    """After the server's close_notify the next Update handshakes on the same 5-tuple, quietly.

    The Update goes out once the new handshake completes, not by a CoAP retransmission.
    """

    async def body() -> None:
        server, client, registration = await registered()
        try:
            remote = registration.remote
            remote._dtls_socket.close(remote._dtls_session)

            response = await client.update(registration.location)  # ACK_TIMEOUT 2 s
            update = await server.updates.get()
            read_back = await read(server, update, "3", "0", "0")

            assert response.code == Code.CHANGED
            assert update.remote is remote
            assert read_back.payload == b"bridged"
        finally:
            await client.endpoint.shutdown()
            await server.shutdown()

    with caplog.at_level(logging.INFO):
        run(body)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "DTLS" in r.name]
    assert "InvalidStateError" not in caplog.text
    assert "Retransmission" not in caplog.text
    assert "closed the DTLS session" in caplog.text


@pytest.mark.parametrize(
    ("server_uri", "pattern"),
    [
        ("coaps://127.0.0.1:5684", "coaps://127.0.0.1:5684/*"),
        ("coaps://Example.com/i/am?x=1", "coaps://example.com/*"),
        ("coaps://[::1]:5000", "coaps://[::1]:5000/*"),
    ],
)
def test_credentials_pattern_matches_aiocoap_request_uri(server_uri: str, pattern: str) -> None:
    assert credentials_pattern(server_uri) == pattern


def test_credentials_pattern_refuses_plain_coap() -> None:
    with pytest.raises(ValueError, match="not a coaps"):
        credentials_pattern("coap://127.0.0.1")
