"""The engine against lwm2m-node-lib, a LwM2M server nobody on this project wrote.

The real ``LwM2MClient`` serves the gateway's tree (``peers.gateway``) and registers with the
lwm2m-node-lib server in its Node process; the server then reads, writes, executes, discovers
and sets attributes the way its library does. What the library imposes (text values, single
resources) is in ``tests/peers/node/node_server.js``.

Observe through this server is not tested here yet: the engine's Observe is not built.
"""

from __future__ import annotations

import asyncio

import pytest

from bridged.engine.client import LwM2MClient
from bridged.engine.registration import RegistrationEvent
from bridged.objects.paths import Path
from peers.gateway import ENDPOINT, Gateway, client_port, registration_complete
from peers.lwm2m_node import CommandFailed, LwM2MNodeServer

pytest_plugins = ["peers.fixtures"]

EVENT_TIMEOUT = 10.0


async def registered(
    node_server: LwM2MNodeServer, events: asyncio.Queue[RegistrationEvent]
) -> dict[str, object]:
    """The server's registration event, once the client has its answer too (the peer reports
    a registration before it answers it)."""
    data = (await node_server.wait_event("registration", endpoint=ENDPOINT)).data
    await registration_complete(events)
    return data


async def test_LightweightM2M_1_1_int_101_initial_registration(
    client: LwM2MClient, node_server: LwM2MNodeServer, events: asyncio.Queue[RegistrationEvent]
) -> None:
    """LightweightM2M-1.1-int-101: the server sees the endpoint, lifetime, LwM2M version,
    binding and the object list, from the client's own socket."""
    data = await registered(node_server, events)
    assert (data["lifetime"], data["version"], data["binding"]) == (600, "1.1", "U")
    assert data["port"] == client_port(client)
    links = str(data["payload"]).split(",")
    assert links[0] == '</>;rt="oma.lwm2m";ct="112 110 60"'
    for link in ("</1/0>", "</3>;ver=1.1", "</3/0>", "</4/0>", "</3303/0>", "</32771/0>"):
        assert link in links
    assert not any(link.startswith(("</0", "</21")) for link in links)
    [listed] = await node_server.list_clients()
    assert listed["endpoint"] == ENDPOINT


async def test_LightweightM2M_1_1_int_102_registration_update_on_a_new_instance(
    gw: Gateway,
    client: LwM2MClient,
    node_server: LwM2MNodeServer,
    events: asyncio.Queue[RegistrationEvent],
) -> None:
    """LightweightM2M-1.1-int-102: a new instance sends an Update with the new object list;
    the server keeps the same registration."""
    first = await registered(node_server, events)
    gw.tree.create_instance(3303, 1, [(5700, 19.0)])
    update = await node_server.wait_event("update", endpoint=ENDPOINT)
    assert "</3303/1>" in str(update.data["payload"]).split(",")
    assert update.data["id"] == first["id"]
    gw.tree.delete_instance(3303, 1)
    update = await node_server.wait_event("update", endpoint=ENDPOINT)
    assert "</3303/1>" not in str(update.data["payload"]).split(",")


async def test_LightweightM2M_1_1_int_104_registration_update_trigger(
    client: LwM2MClient,
    node_server: LwM2MNodeServer,
    events: asyncio.Queue[RegistrationEvent],
) -> None:
    """LightweightM2M-1.1-int-104: executing /1/0/8 makes the client send an empty Update."""
    await registered(node_server, events)
    await node_server.execute(ENDPOINT, "/1/0/8")
    update = await node_server.wait_event("update", endpoint=ENDPOINT)
    assert update.data["payload"] == ""
    assert update.data["lifetime"] == 600


async def test_LightweightM2M_1_1_int_103_deregistration(
    client: LwM2MClient,
    node_server: LwM2MNodeServer,
    events: asyncio.Queue[RegistrationEvent],
) -> None:
    """LightweightM2M-1.1-int-103: stopping the client de-registers it."""
    await registered(node_server, events)
    await client.stop()
    gone = await node_server.wait_event("unregistration", endpoint=ENDPOINT)
    assert gone.data["reason"] == "deregister"
    assert await node_server.list_clients() == []


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/3/0/0", "Raspberry Pi Ltd"),  # String
        ("/3/0/1", "Raspberry Pi 5 Model B"),
        ("/3/0/13", "1700000000"),  # Time
        ("/3/0/21", "4096000"),  # Integer (KiB converted to kB)
        ("/1/0/1", "600"),
        ("/1/0/6", "0"),  # Boolean
        ("/3303/0/5700", "21.5"),  # Float
        ("/32771/0/3", "7"),  # Unsigned Integer
        ("/32771/0/7", "3303:0"),  # Objlnk
    ],
)
async def test_LightweightM2M_1_1_int_201_224_read_single_resources(
    client: LwM2MClient,
    node_server: LwM2MNodeServer,
    path: str,
    text: str,
    events: asyncio.Queue[RegistrationEvent],
) -> None:
    """LightweightM2M-1.1-int-201 (plain text) and int-224 (Read on a resource): what the
    server gets back is the tree's value."""
    await registered(node_server, events)
    assert await node_server.read(ENDPOINT, path, accept="text/plain") == text
    assert await node_server.read(ENDPOINT, path) == text  # no Accept: a single value is plain text


async def test_LightweightM2M_1_1_int_205_227_write_single_resources(
    gw: Gateway,
    client: LwM2MClient,
    node_server: LwM2MNodeServer,
    events: asyncio.Queue[RegistrationEvent],
) -> None:
    """LightweightM2M-1.1-int-205 (plain text) and int-227 (Replace on a resource): the
    values land in the tree with their types, and read back the same."""
    await registered(node_server, events)
    await node_server.write(ENDPOINT, "/3303/0/5750", "garage")
    await node_server.write(ENDPOINT, "/32771/0/2", "77")
    await node_server.write(ENDPOINT, "/32771/0/4", "-0.25")
    await node_server.write(ENDPOINT, "/32771/0/5", "0")
    await node_server.write(ENDPOINT, "/32771/0/7", "3:0")
    assert gw.value("/3303/0/5750") == "garage"
    assert gw.value("/32771/0/2") == 77
    assert gw.value("/32771/0/4") == -0.25
    assert gw.value("/32771/0/5") is False
    assert str(gw.value("/32771/0/7")) == "3:0"
    assert await node_server.read(ENDPOINT, "/3303/0/5750") == "garage"


async def test_LightweightM2M_1_1_int_227_lifetime_write_sends_an_update(
    gw: Gateway,
    client: LwM2MClient,
    node_server: LwM2MNodeServer,
    events: asyncio.Queue[RegistrationEvent],
) -> None:
    """LightweightM2M-1.1-int-227 on /1/0/1: the server writes a new lifetime, the client
    announces it in an Update, and the server's registration takes it."""
    await registered(node_server, events)
    await node_server.write(ENDPOINT, "/1/0/1", "900")
    update = await node_server.wait_event("update", endpoint=ENDPOINT)
    assert update.data["lifetime"] == 900
    assert gw.value("/1/0/1") == 900


async def test_LightweightM2M_1_1_int_256_write_failures_reach_the_server(
    gw: Gateway,
    client: LwM2MClient,
    node_server: LwM2MNodeServer,
    events: asyncio.Queue[RegistrationEvent],
) -> None:
    """LightweightM2M-1.1-int-256: failed writes and reads come back to the server as the
    CoAP errors its library reports, and change nothing."""
    await registered(node_server, events)
    with pytest.raises(CommandFailed, match=r"4\.05"):
        await node_server.write(ENDPOINT, "/3/0/0", "Evil Corp")
    with pytest.raises(CommandFailed, match=r"4\.00"):
        await node_server.write(ENDPOINT, "/32771/0/2", "101")  # outside 0..100
    with pytest.raises(CommandFailed, match=r"4\.04"):
        await node_server.read(ENDPOINT, "/3303/0/9999")
    with pytest.raises(CommandFailed, match=r"4\.01"):
        await node_server.read(ENDPOINT, "/0/0/0")
    assert gw.value("/3/0/0") == "Raspberry Pi Ltd"
    assert gw.value("/32771/0/2") == 42


async def test_LightweightM2M_1_1_int_241_execute(
    gw: Gateway,
    client: LwM2MClient,
    node_server: LwM2MNodeServer,
    events: asyncio.Queue[RegistrationEvent],
) -> None:
    """LightweightM2M-1.1-int-241: the server executes Reboot (/3/0/4) and the gateway's
    handler runs; an Execute with arguments hands them to the handler as sent."""
    await registered(node_server, events)
    await node_server.execute(ENDPOINT, "/3/0/4")
    async with asyncio.timeout(EVENT_TIMEOUT):
        await gw.reboots.get()
    await node_server.execute(ENDPOINT, "/3303/0/5605", "0='now',5")
    async with asyncio.timeout(EVENT_TIMEOUT):
        assert await gw.executed.get() == ("/3303/0/5605", "0='now',5")
    with pytest.raises(CommandFailed, match=r"4\.00"):
        await node_server.execute(ENDPOINT, "/32771/0/10", "1='unterminated")
    with pytest.raises(CommandFailed, match=r"4\.05"):
        await node_server.execute(ENDPOINT, "/3303/0/5700")
    assert gw.executed.empty()


async def test_LightweightM2M_1_1_int_260_261_discover_and_write_attributes(
    client: LwM2MClient,
    node_server: LwM2MNodeServer,
    events: asyncio.Queue[RegistrationEvent],
) -> None:
    """LightweightM2M-1.1-int-260 (Discover) and int-261 (Write-Attributes on a multiple
    resource): the attributes the server set are shown by the next Discover."""
    await registered(node_server, events)
    links = (await node_server.discover(ENDPOINT, "/32771/0")).split(",")
    assert links[0] == "</32771/0>"
    assert {"</32771/0/0>", "</32771/0/8>;dim=2", "</32771/0/10>"} <= set(links)
    await node_server.write_attributes(ENDPOINT, "/32771/0/8", pmin=5, pmax=60)
    await node_server.write_attributes(ENDPOINT, "/3303/0/5700", gt=30, lt=10, st=1)
    assert "</32771/0/8>;dim=2;pmin=5;pmax=60" in (
        await node_server.discover(ENDPOINT, "/32771/0/8")
    ).split(",")
    assert "</3303/0/5700>;gt=30;lt=10;st=1" in (
        await node_server.discover(ENDPOINT, "/3303/0")
    ).split(",")


async def test_LightweightM2M_1_1_int_301_303_observe_and_notify(
    gw: Gateway,
    client: LwM2MClient,
    node_server: LwM2MNodeServer,
    events: asyncio.Queue[RegistrationEvent],
) -> None:
    """LightweightM2M-1.1-int-301 (Observe) and int-303 (notification on change), driven by
    lwm2m-node-lib: the first answer carries the value and every change notifies with the new
    one. (Its cancel only forgets the observation on the server side; cancelling by Observe=1
    and by Reset is proven in tests/integration/test_observe.py.)"""
    await registered(node_server, events)
    assert await node_server.observe(ENDPOINT, "/3303/0/5700") == "21.5"
    assert len(client.sessions[0].observations) == 1
    for value in (22.0, 22.5):
        gw.tree.set(Path((3303, 0, 5700)), value)
        notified = await node_server.wait_event(
            "notification", endpoint=ENDPOINT, path="/3303/0/5700"
        )
        assert notified.data["value"] == f"{value}"
