"""The client end to end: it registers its tree and serves the server's requests over the
socket it registered from, plain or DTLS-PSK (OMA LwM2M 1.1 int-101, 104, 201, 227, 401)."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator

import cbor2
import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code
from clients import FAST_RETRY, gateway_tree, next_event

from bridged.engine.client import LwM2MClient, ServerConfig, ServerSession
from bridged.engine.registration import EventKind, RegistrationEvent
from bridged.objects.formats import ContentFormat
from bridged.objects.paths import Path
from peers.dtls_server import DtlsPskServer
from peers.lwm2m_server import LwM2MTestServer, decode_tlv

IDENTITY = b"urn:imei:490154203237518"
KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")

needs_dtls = pytest.mark.skipif(
    importlib.util.find_spec("DTLSSocket") is None,
    reason="DTLSSocket is not installed (pip install 'bridged[dtls]')",
)


@pytest.fixture
def events() -> asyncio.Queue[RegistrationEvent]:
    return asyncio.Queue()


@pytest.fixture
async def client(
    server: LwM2MTestServer, events: asyncio.Queue[RegistrationEvent]
) -> AsyncIterator[LwM2MClient]:
    c = LwM2MClient(
        gateway_tree(),
        "gw-1",
        ServerConfig(uri=server.uri, request_timeout=3.0, retry=FAST_RETRY),
        bind=("127.0.0.1", 0),
        on_event=events.put_nowait,
    )
    await c.start()
    yield c
    await c.stop()


async def test_LightweightM2M_1_1_int_101_registers_its_objects(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    ev = await server.next_event("register")
    links = ev.payload.decode()
    assert links.startswith('</>;rt="oma.lwm2m"')
    assert "</1/0>" in links and "</3/0>" in links and "</3303/0>" in links
    assert "</0" not in links, "the Security object is never listed"


async def test_LightweightM2M_1_1_int_101_announces_the_optional_formats_it_serves(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """The root link's ``ct`` names the optional formats the client supports (Core 1.1.1
    §6.2.1), SenML CBOR first: SenML CBOR, SenML JSON and plain CBOR. The server reads a
    resource in each and gets it in that format; plain CBOR's is the value itself."""
    ev = await server.next_event("register")
    assert ev.payload.decode().split(",")[0] == '</>;rt="oma.lwm2m";ct="112 110 60"'
    for cf in (112, 110, 60):
        response = await server.request("gw-1", Code.GET, "/3/0/0", accept=cf)
        assert (response.code, response.opt.content_format) == (Code.CONTENT, cf)
    assert cbor2.loads(response.payload) == "ACME"


async def test_LightweightM2M_1_1_int_201_server_reads_over_the_registered_socket(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    await server.next_event("register")
    response = await server.request("gw-1", Code.GET, "/3/0/0")
    assert (response.code, response.payload) == (Code.CONTENT, b"ACME")
    response = await server.request("gw-1", Code.GET, "/0/0")
    assert response.code == Code.UNAUTHORIZED


async def test_LightweightM2M_1_1_int_227_lifetime_write_sends_an_update(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    await server.next_event("register")
    response = await server.request(
        "gw-1", Code.PUT, "/1/0/1", b"120", content_format=ContentFormat.TEXT
    )
    assert response.code == Code.CHANGED
    ev = await server.next_event("update")
    assert ev.query == {"lt": "120"}


async def test_LightweightM2M_1_1_int_104_registration_update_trigger(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    await server.next_event("register")
    response = await server.request("gw-1", Code.POST, "/1/0/8")
    assert response.code == Code.CHANGED
    ev = await server.next_event("update")
    assert (ev.query, ev.payload) == ({}, b"")


@pytest.mark.parametrize(
    ("path", "payload", "content_format"),
    [
        ("/1/0/1", b"\xc1\x01\x9b", ContentFormat.TLV),  # one byte, two's complement: -101
        ("/1/0/1", b"-5", ContentFormat.TEXT),
        ("/1/0/1", b"0", ContentFormat.TEXT),
        ("/1/0/1", b"2147483648", ContentFormat.TEXT),
        ("/1/0/2", b"-1", ContentFormat.TEXT),
        ("/1/0/3", b"-1", ContentFormat.TEXT),
        ("/1/0/7", b"X", ContentFormat.TEXT),  # a Binding is made of U, T, S and N
        ("/1/0/7", b"UU", ContentFormat.TEXT),
        ("/1/0/7", b"", ContentFormat.TEXT),
    ],
)
async def test_out_of_range_server_resource_is_refused_and_never_sent(
    client: LwM2MClient, server: LwM2MTestServer, path: str, payload: bytes, content_format: int
) -> None:
    """A lifetime, default period or binding out of range is 4.00; what the server then gets
    in an Update is no ``lt`` or ``b`` at all, and the lifetime reads as before."""
    await server.next_event("register")
    response = await server.request("gw-1", Code.PUT, path, payload, content_format=content_format)
    assert response.code == Code.BAD_REQUEST, response.payload
    assert (await server.request("gw-1", Code.POST, "/1/0/8")).code == Code.CHANGED
    assert (await server.next_event("update")).query == {}
    assert (await server.request("gw-1", Code.GET, "/1/0/1")).payload == b"300"


async def test_a_one_second_lifetime_does_not_flood_the_server(
    server: LwM2MTestServer, events: asyncio.Queue[RegistrationEvent]
) -> None:
    """However short the lifetime, Updates keep at least ``MIN_UPDATE_INTERVAL`` apart: over
    two seconds the server gets a couple, not hundreds."""
    client = LwM2MClient(
        gateway_tree(),
        "gw-1",
        ServerConfig(uri=server.uri, lifetime=1, request_timeout=3.0, retry=FAST_RETRY),
        bind=("127.0.0.1", 0),
        on_event=events.put_nowait,
    )
    await client.start()
    try:
        await server.next_event("register")
        await server.next_event("update")
        counted = len(server.history)
        await asyncio.sleep(2.0)  # the window the Updates are counted over
        updates = [e for e in server.history[counted:] if e.kind == "update"]
        assert 1 <= len(updates) <= 3, f"{len(updates)} Updates in 2 s with lt=1"
    finally:
        await client.stop()


async def test_a_burst_of_object_changes_does_not_flood_the_server(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """Nodes coming and going every few milliseconds each change the object list; the Updates
    keep ``MIN_UPDATE_INTERVAL`` apart and the last one carries every change."""
    await server.next_event("register")
    counted = len(server.history)
    for iid in range(1, 41):
        client.tree.create_instance(3303, iid, [(5700, 19.0)])
        await asyncio.sleep(0.025)  # the pace of the burst
    async with asyncio.timeout(10):
        while "</3303/40>" not in server.clients["gw-1"].links:
            await asyncio.sleep(0.05)
    updates = [e for e in server.history[counted:] if e.kind == "update"]
    assert len(updates) <= 3, f"{len(updates)} Updates for a 1 s burst"


async def test_new_instance_sends_the_object_list(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    await server.next_event("register")
    client.tree.create_instance(3303, 1, [(5700, 19.0)])
    ev = await server.next_event("update")
    assert "</3303/1>" in ev.payload.decode()


async def test_a_readings_change_asks_no_session_and_the_next_update_is_the_servers_own(
    client: LwM2MClient, server: LwM2MTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reading's resource (every node's reading goes through the tree) is no part of what
    an Update carries: no session is asked whether it is, nothing is sent for it, and a
    change an Update does carry (a new instance) still brings one, with the object list."""
    await server.next_event("register")
    asked: list[Path] = []
    carries = ServerSession.carries

    def counted(session: ServerSession, path: Path) -> bool:
        asked.append(path)
        return carries(session, path)

    monkeypatch.setattr(ServerSession, "carries", counted)
    for value in (20.0, 21.0, 22.0):
        client.tree.set(Path.parse("/3303/0/5700"), value)
    assert asked == []
    client.tree.create_instance(3303, 2, [(5700, 19.0)])
    assert asked == [Path.parse("/3303/2")]
    ev = await server.next_event("update")
    assert "</3303/2>" in ev.payload.decode()


async def test_stop_deregisters(
    client: LwM2MClient, server: LwM2MTestServer, events: asyncio.Queue[RegistrationEvent]
) -> None:
    await next_event(events, EventKind.REGISTRATION_COMPLETE)
    await client.stop()
    await server.next_event("deregister")
    assert "gw-1" not in server.clients


async def test_a_server_that_refuses_1_1_is_offered_and_served_lwm2m_1_0_formats() -> None:
    """After a 4.12 the client registers as LwM2M 1.0: the root link announces LwM2M JSON
    (11543), not SenML CBOR, the core objects come without a ``ver`` the server cannot know, and
    a Read without Accept answers TLV, which the server decodes itself."""
    async with LwM2MTestServer(accepted_versions=("1.0",)) as server:
        client = LwM2MClient(
            gateway_tree(),
            "gw-1",
            ServerConfig(uri=server.uri, request_timeout=3.0, retry=FAST_RETRY),
            bind=("127.0.0.1", 0),
        )
        await client.start()
        try:
            assert (await server.next_event("register")).code == Code.PRECONDITION_FAILED
            register = await server.next_event("register")
            assert (register.code, register.query["lwm2m"]) == (Code.CREATED, "1.0")
            links = register.payload.decode()
            assert links.startswith('</>;rt="oma.lwm2m";ct=11543,'), links
            assert "</1>" not in links and "</3>" not in links, links
            assert "</1/0>" in links and "</3/0>" in links
            response = await server.request("gw-1", Code.GET, "/3/0")
            assert response.opt.content_format == ContentFormat.TLV
            assert decode_tlv(response.payload, (3, 0))[(3, 0, 0)] == b"ACME"
            for oid in (1, 3):  # Discover shows the versions the Register showed
                found = await server.request("gw-1", Code.GET, f"/{oid}", accept=40)
                assert found.code == Code.CONTENT
                assert found.payload.decode().startswith(f"</{oid}>,"), found.payload
            client.tree.create_instance(3303, 1, [(5700, 19.0)])
            update = await server.next_event("update")
            assert update.payload.decode().startswith('</>;rt="oma.lwm2m";ct=11543,')
        finally:
            await client.stop()


@pytest.mark.parametrize(
    ("uri", "psk", "message"),
    [
        ("coaps://127.0.0.1", {}, "coaps:// needs psk_identity and psk_key"),
        ("coap://127.0.0.1", {"psk_identity": IDENTITY, "psk_key": KEY}, "needs a coaps:// URI"),
        ("http://127.0.0.1", {}, "must be coap:// or coaps://"),
    ],
)
def test_server_config_security_must_match_the_uri(
    uri: str, psk: dict[str, bytes], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ServerConfig(uri, **psk)  # type: ignore[arg-type]


def test_servers_need_distinct_short_server_ids() -> None:
    with pytest.raises(ValueError, match="must differ"):
        LwM2MClient(gateway_tree(), "gw-1", [ServerConfig("coap://a"), ServerConfig("coap://b")])


@needs_dtls
async def test_int_401_registers_over_dtls_psk_and_is_read_over_that_session() -> None:
    """LightweightM2M-1.1-int-401 (UDP Channel Security, PSK Mode): the identity and key go from
    the configuration into /0, the client registers over DTLS-PSK, and the server reads the
    client through the same session."""
    server = await DtlsPskServer.start(IDENTITY, KEY)
    tree = gateway_tree()
    client = LwM2MClient(
        tree,
        "gw-1",
        ServerConfig(
            server.uri,
            psk_identity=IDENTITY,
            psk_key=KEY,
            request_timeout=3.0,
            retry=FAST_RETRY,
            dtls_handshake_timeout=3.0,
        ),
    )
    try:
        await client.start()
        assert [tree.get(Path((0, 0, r))) for r in (2, 3, 5)] == [0, IDENTITY, KEY]
        async with asyncio.timeout(10):
            registration = await server.registrations.get()
        assert registration.endpoint == "gw-1"
        assert b"</3303/0>" in registration.payload
        read = server.request(registration, Message(code=Code.GET, uri_path=("3", "0", "0")))
        async with asyncio.timeout(10):
            response = await read.response
        assert (response.code, response.payload) == (Code.CONTENT, b"ACME")
        security = server.request(registration, Message(code=Code.GET, uri_path=("0", "0")))
        async with asyncio.timeout(10):
            assert (await security.response).code == Code.UNAUTHORIZED
    finally:
        await client.stop()
        await server.shutdown()


@needs_dtls
async def test_wrong_psk_is_a_clear_event_and_the_other_server_carries_on() -> None:
    server = await DtlsPskServer.start(IDENTITY, KEY)
    events: asyncio.Queue[RegistrationEvent] = asyncio.Queue()
    async with LwM2MTestServer() as plain:
        client = LwM2MClient(
            gateway_tree(),
            "gw-1",
            [
                ServerConfig(
                    server.uri,
                    1,
                    psk_identity=IDENTITY,
                    psk_key=b"not the key",
                    request_timeout=3.0,
                    retry=FAST_RETRY,
                    dtls_handshake_timeout=0.3,
                ),
                ServerConfig(plain.uri, 2, request_timeout=3.0, retry=FAST_RETRY),
            ],
            bind=("127.0.0.1", 0),
            on_event=events.put_nowait,
        )
        try:
            await client.start()
            failure = await next_event(events, EventKind.REGISTRATION_FAILURE, server.uri)
            assert failure.detail.startswith("DtlsHandshakeError: DTLS-PSK handshake")
            assert "check the PSK identity and key" in failure.detail
            await plain.next_event("register")
            await next_event(events, EventKind.REGISTRATION_FAILURE, server.uri)  # still trying
            assert server.registrations.empty()
            assert client.session(2).registered and not client.session(1).registered
        finally:
            await client.stop()
            await server.shutdown()
