"""The client end to end: it registers its tree and serves the server's requests over the
socket it registered from (OMA LwM2M 1.1 int-101, 104, 201, 227)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiocoap.numbers.codes import Code

from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.registration import EventKind, RegistrationEvent, RetryPolicy
from bridged.objects.builtin import builtin_registry
from bridged.objects.formats import ContentFormat
from bridged.objects.tree import ObjectTree
from peers.lwm2m_server import LwM2MTestServer


@pytest.fixture(autouse=True)
def _no_port_sharing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOCOAP_REUSE_PORT", "0")


@pytest.fixture
async def server() -> AsyncIterator[LwM2MTestServer]:
    async with LwM2MTestServer() as srv:
        yield srv


@pytest.fixture
def events() -> asyncio.Queue[RegistrationEvent]:
    return asyncio.Queue()


@pytest.fixture
async def client(
    server: LwM2MTestServer, events: asyncio.Queue[RegistrationEvent]
) -> AsyncIterator[LwM2MClient]:
    tree = ObjectTree(builtin_registry())
    tree.create_instance(3, 0, [(0, "ACME"), (16, "U")])
    tree.create_instance(3303, 0, [(5700, 21.5)])
    c = LwM2MClient(
        tree,
        "gw-1",
        ServerConfig(uri=server.uri, request_timeout=3.0, retry=RetryPolicy(2, 0.05, 0.1, 1)),
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


async def test_new_instance_sends_the_object_list(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    await server.next_event("register")
    client.tree.create_instance(3303, 1, [(5700, 19.0)])
    ev = await server.next_event("update")
    assert "</3303/1>" in ev.payload.decode()


async def test_stop_deregisters(
    client: LwM2MClient, server: LwM2MTestServer, events: asyncio.Queue[RegistrationEvent]
) -> None:
    async with asyncio.timeout(10):
        while (await events.get()).kind is not EventKind.REGISTRATION_COMPLETE:
            pass
    await client.stop()
    await server.next_event("deregister")
    assert "gw-1" not in server.clients
