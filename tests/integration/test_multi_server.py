"""One client, several LwM2M servers: a session each over one tree (OMA LwM2M 1.1 int-101,
int-102, int-104 with two servers).

Both servers are the in-repo test server on 127.0.0.1; a server that is down is a free port
with nothing listening.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiocoap.numbers.codes import Code
from clients import FAST_RETRY, free_udp_port, gateway_tree, next_event

from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.registration import EventKind, RegistrationEvent
from bridged.objects.formats import ContentFormat
from bridged.objects.paths import Path
from peers.lwm2m_server import LwM2MTestServer


@pytest.fixture
async def servers() -> AsyncIterator[tuple[LwM2MTestServer, LwM2MTestServer]]:
    async with LwM2MTestServer() as one, LwM2MTestServer() as two:
        yield one, two


def config(uri: str, ssid: int, *, lifetime: int = 300, timeout: float = 3.0) -> ServerConfig:
    return ServerConfig(uri, ssid, lifetime=lifetime, request_timeout=timeout, retry=FAST_RETRY)


@pytest.fixture
async def client(
    servers: tuple[LwM2MTestServer, LwM2MTestServer],
) -> AsyncIterator[LwM2MClient]:
    one, two = servers
    c = LwM2MClient(
        gateway_tree(),
        "gw-1",
        [config(one.uri, 1, lifetime=300), config(two.uri, 2, lifetime=600)],
        bind=("127.0.0.1", 0),
    )
    await c.start()
    yield c
    await c.stop()


async def test_int_101_each_server_registers_with_its_own_server_instance(
    client: LwM2MClient, servers: tuple[LwM2MTestServer, LwM2MTestServer]
) -> None:
    """LightweightM2M-1.1-int-101 with two servers: each Register carries the lifetime of its
    own /1 instance, and every /0 and /1 instance comes from the configuration."""
    one, two = servers
    first, second = await one.next_event("register"), await two.next_event("register")
    assert (first.query["lt"], second.query["lt"]) == ("300", "600")
    assert "</1/0>,</1/1>" in first.payload.decode()
    assert client.tree.instance_ids(0) == [0, 1] and client.tree.instance_ids(1) == [0, 1]
    assert [client.tree.get(Path((1, i, 0))) for i in (0, 1)] == [1, 2]
    assert [s.dm.server_id for s in client.sessions] == [1, 2]


async def test_each_server_is_served_over_its_own_socket(
    client: LwM2MClient, servers: tuple[LwM2MTestServer, LwM2MTestServer]
) -> None:
    one, two = servers
    await one.next_event("register")
    await two.next_event("register")
    assert one.clients["gw-1"].remote.hostinfo != two.clients["gw-1"].remote.hostinfo  # type: ignore[attr-defined]
    for server in servers:
        response = await server.request("gw-1", Code.GET, "/3/0/0")
        assert (response.code, response.payload) == (Code.CONTENT, b"ACME")


async def test_int_102_new_instance_updates_every_server(
    client: LwM2MClient, servers: tuple[LwM2MTestServer, LwM2MTestServer]
) -> None:
    """LightweightM2M-1.1-int-102 with two servers: an instance created on the tree sends the
    new object list to both."""
    for server in servers:
        await server.next_event("register")
    client.tree.create_instance(3303, 1, [(5700, 19.0)])
    for server in servers:
        ev = await server.next_event("update")
        assert "</3303/1>" in ev.payload.decode()


async def test_lifetime_written_by_one_server_updates_only_that_server(
    client: LwM2MClient, servers: tuple[LwM2MTestServer, LwM2MTestServer]
) -> None:
    one, two = servers
    await one.next_event("register")
    await two.next_event("register")
    response = await two.request("gw-1", Code.PUT, "/1/1/1", b"900", content_format=0)
    assert response.code == Code.CHANGED
    assert (await two.next_event("update")).query == {"lt": "900"}
    # int-104 on server 1's own instance: its next Update is the triggered, empty one, so the
    # lifetime write above sent server 1 nothing.
    assert (await one.request("gw-1", Code.POST, "/1/0/8")).code == Code.CHANGED
    ev = await one.next_event("update")
    assert (ev.query, ev.payload) == ({}, b"")


async def test_one_server_down_does_not_stop_the_other(
    servers: tuple[LwM2MTestServer, LwM2MTestServer],
) -> None:
    one, _ = servers
    dead = f"coap://127.0.0.1:{free_udp_port()}"
    events: asyncio.Queue[RegistrationEvent] = asyncio.Queue()
    client = LwM2MClient(
        gateway_tree(),
        "gw-1",
        [config(dead, 1, timeout=0.3), config(one.uri, 2)],
        bind=("127.0.0.1", 0),
        on_event=events.put_nowait,
    )
    await client.start()
    try:
        await next_event(events, EventKind.REGISTRATION_FAILURE, server=dead)
        await one.next_event("register")
        client.tree.create_instance(3303, 1, [(5700, 19.0)])
        assert "</3303/1>" in (await one.next_event("update")).payload.decode()
        assert (await one.request("gw-1", Code.GET, "/3303/1/5700")).payload == b"19.0"
        assert not client.session(1).registered and client.session(2).registered
    finally:
        await client.stop()
    await one.next_event("deregister")


async def test_factory_bootstrap_keeps_the_server_instances_already_there(
    servers: tuple[LwM2MTestServer, LwM2MTestServer],
) -> None:
    """Instances persisted or bootstrapped earlier win over the configuration: matched by
    Short Server ID, whatever their instance ID."""
    one, _ = servers
    tree = gateway_tree()
    tree.create_instance(1, 5, [(0, 1), (1, 120), (6, False), (7, "U")])
    client = LwM2MClient(tree, "gw-1", config(one.uri, 1), bind=("127.0.0.1", 0))
    await client.start()
    try:
        assert (await one.next_event("register")).query["lt"] == "120"
        assert tree.instance_ids(1) == [5]
        response = await one.request(
            "gw-1", Code.GET, "/1/5/1", accept=ContentFormat.TEXT, timeout=5
        )
        assert response.payload == b"120"
    finally:
        await client.stop()


async def test_int_2xx_access_control_applies_between_two_servers(
    client: LwM2MClient, servers: tuple[LwM2MTestServer, LwM2MTestServer]
) -> None:
    """Access Control with two servers (factory defaults): the first server manages the
    gateway's instances, the second may read and observe them, and each server owns its /1."""
    one, two = servers
    await one.next_event("register")
    await two.next_event("register")
    text = ContentFormat.TEXT

    async def code(server: LwM2MTestServer, method: Code, path: str, payload: bytes = b"") -> Code:
        response = await server.request(
            "gw-1", method, path, payload, content_format=text if payload else None
        )
        return response.code

    assert await code(two, Code.GET, "/3/0/0") == Code.CONTENT
    assert await code(two, Code.PUT, "/3/0/13", b"1700000000") == Code.UNAUTHORIZED
    assert await code(one, Code.PUT, "/3/0/13", b"1700000000") == Code.CHANGED
    assert await code(two, Code.PUT, "/1/1/1", b"700") == Code.CHANGED
    assert await code(two, Code.PUT, "/1/0/1", b"700") == Code.UNAUTHORIZED
    assert client.tree.get(Path((1, 0, 1))) == 300
    assert len(client.tree.instance_ids(2)) >= 4  # /3/0, /3303/0, /1/0 and /1/1 are governed
