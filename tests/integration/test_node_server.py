"""The gateway as the LwM2M server of 802.15.4 nodes, over CoAP on the node link.

Emulated nodes (tests/emulators/lwm2m_node.py, real CoAP from this project's engine) talk to
the gateway's ``NodeServer`` through a direct datagram link; the gateway side reports to the
real node registry on real SQLite. The same server runs over the radio in the transport tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path as FsPath

import aiocoap
import pytest
from aiocoap.numbers.codes import Code
from aiocoap.numbers.constants import COAP_PORT
from aiocoap.numbers.types import ACK, CON, NON, RST
from aiocoap.optiontypes import BlockOption
from airs import HandedOver
from emulators.lwm2m_node import SWITCH, TEMPERATURE, DirectLink, EmulatedNode

from bridged.engine.coap import append_message_interface
from bridged.engine.registration import EventKind
from bridged.objects.builtin import builtin_definitions
from bridged.objects.errors import MethodNotAllowed, ServiceUnavailable
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.registry import NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeId, NodeStore, PairedNode
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from bridged.transports.ieee802154.coap_link import LowpanAddress, create_link_context
from bridged.transports.ieee802154.lowpan import link_local
from bridged.transports.ieee802154.node_events import NodeEvents
from bridged.transports.ieee802154.node_server import NodeServer, registered_objects

GATEWAY_EUI = bytes.fromhex("00124b0000000001")
TIMEOUT = 15.0


async def until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


class Air:
    """The gateway's node server on a direct link, and the nodes put on it."""

    def __init__(self, registry: NodeRegistry, server: NodeServer, link: DirectLink) -> None:
        self.registry = registry
        self.server = server
        self.link = link
        self.nodes: list[EmulatedNode] = []

    async def node(self, index: int, **kwargs: object) -> EmulatedNode:
        node = EmulatedNode(bytes.fromhex(f"00124b00000100{index:02x}"), f"node-{index}", **kwargs)  # type: ignore[arg-type]
        self.link.nodes[node.ip] = node
        await node.start(self.link.from_node(node), self.link.gateway_ip)
        self.nodes.append(node)
        return node

    def pair(self, node: EmulatedNode) -> NodeId:
        node_id = NodeId("802154", node.eui64.hex())
        self.registry.pair(PairedNode(node_id, node.name, "lwm2m"))
        return node_id


@pytest.fixture
async def air(tmp_path: FsPath) -> AsyncIterator[Air]:
    conn = connect(tmp_path / "state.db")
    registry = NodeRegistry(
        NodeStore(conn), SecretStore(tmp_path / "secrets.json"), ReadingStore(conn)
    )
    server = NodeServer(
        "802154", NodeEvents(registry), builtin_definitions(), awake_window=0.5, request_timeout=5
    )
    link = DirectLink(link_local(GATEWAY_EUI))
    context, link.gateway = await create_link_context(
        server.site, link.to_node, link.gateway_ip, COAP_PORT, append_message_interface
    )
    server.attach(context, link.gateway)
    air = Air(registry, server, link)
    yield air
    link.gateway = None  # nothing more reaches the gateway while it shuts down
    await server.close()
    for node in air.nodes:
        await node.stop(deregister=False)
    await context.shutdown()
    conn.close()


def test_registered_objects_from_a_register_payload() -> None:
    payload = b'</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</3303/0>,</3303/1>,</3311>'
    assert registered_objects(payload) == {1: [0], 3: [0], 3303: [0, 1], 3311: []}
    alternate = b'</lwm2m>;rt="oma.lwm2m",</lwm2m/3303/0>'
    assert registered_objects(alternate) == {3303: [0]}


async def test_a_paired_node_registers_and_its_values_become_readings(air: Air) -> None:
    node = await air.node(1)
    node_id = air.pair(node)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    live = air.registry.live[node_id]
    assert {3303, 3311} <= live.objects.keys()
    await until(lambda: TEMPERATURE in live.values)
    assert live.values[TEMPERATURE].value == 21.0
    node.tree.set(TEMPERATURE, 22.5)
    await until(lambda: live.values[TEMPERATURE].value == 22.5)
    assert live.state is not None and live.state.reachable


async def test_an_unpaired_node_is_refused_once_and_logged_once(
    air: Air, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        node = await air.node(2)
        node_id = NodeId("802154", node.eui64.hex())
        await until(lambda: node_id in air.registry.heard_nodes)
        await asyncio.sleep(1.0)  # the node keeps retrying
    assert not node.registered.is_set()
    assert node_id not in air.registry.live
    refusals = [r for r in caplog.records if r.name == "bridged.registry"]
    assert len(refusals) == 1 and "not paired" in refusals[0].getMessage()


async def test_permit_join_pairs_a_node_that_registers(air: Air) -> None:
    air.registry.permit_join(30)
    node = await air.node(3)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    assert NodeId("802154", node.eui64.hex()) in air.registry.live


async def test_an_update_of_another_nodes_location_is_4_04(air: Air) -> None:
    """A node that Updates a location now another node's (it was freed and given again)
    must register again, not update that."""
    first, second = await air.node(5), await air.node(6)
    for node in (first, second):
        air.pair(node)
        await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    assert first.registrar is not None and second.registrar is not None
    theirs, mine = first.registrar.location, second.registrar.location
    assert theirs != mine
    second.registrar.location = theirs  # as after a restart of the gateway
    mark = len(second.events)
    await second.update()
    await until(lambda: any(e.kind.value == "registration-complete" for e in second.events[mark:]))
    assert second.events[mark].detail == "4.04 Not Found: re-register"
    registrations = air.server.registrations
    assert registrations[NodeId("802154", first.eui64.hex())].location == theirs[-1]
    assert registrations[NodeId("802154", second.eui64.hex())].location != theirs[-1]


async def test_a_send_of_a_registration_the_gateway_lost_is_4_04_and_it_registers_again(
    air: Air, caplog: pytest.LogCaptureFixture
) -> None:
    """As Leshan answers a Send from a client it does not know: the node registers at once
    rather than when its next Update fails (a lifetime later), and the gateway says so once."""
    node = await air.node(7)
    air.pair(node)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    await air.server.close()  # its registration is gone (a state directory lost, say)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            response = await node.send([Record(TEMPERATURE, 19.0, 1_700_000_000.0)])
            assert response.code == Code.NOT_FOUND
    await until(lambda: sum(e.kind is EventKind.REGISTRATION_COMPLETE for e in node.events) == 2)
    response = await node.send([Record(TEMPERATURE, 19.0, 1_700_000_000.0)])
    assert response.code == Code.CHANGED
    said = [
        r.getMessage()
        for r in caplog.records
        if r.name.endswith("node_server") and r.levelno >= logging.WARNING
    ]
    assert len(said) == 1 and "no registration of it: answered 4.04" in said[0]


async def test_send_from_a_node_is_readings_with_their_time(air: Air) -> None:
    node = await air.node(4)
    node_id = air.pair(node)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    live = air.registry.live[node_id]
    await until(lambda: TEMPERATURE in live.values)  # the observation's first value is in
    response = await node.send([Record(TEMPERATURE, 19.25, 1_700_000_000.0)])
    assert response.code.is_successful()
    await until(lambda: live.values[TEMPERATURE].value == 19.25)
    assert live.values[TEMPERATURE].time == 1_700_000_000.0


async def test_read_write_execute_reach_the_node_and_its_errors_come_back(air: Air) -> None:
    node = await air.node(5)
    node_id = air.pair(node)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    node.tree.set(TEMPERATURE, 23.0)
    records = await air.server.read(node_id, TEMPERATURE)
    assert [(r.path, r.value) for r in records] == [(TEMPERATURE, 23.0)]
    await air.server.write(node_id, SWITCH, [Record(SWITCH, True)])
    assert node.tree.get(SWITCH) is True
    with pytest.raises(MethodNotAllowed):  # Sensor Value is read-only: the node says 4.05
        await air.server.write(node_id, TEMPERATURE, [Record(TEMPERATURE, 1.0)])
    with pytest.raises(MethodNotAllowed):  # not executable
        await air.server.execute(node_id, Path((3303, 0, 5700)), "")


async def test_a_sleepy_node_is_reachable_only_after_it_talks(air: Air) -> None:
    node = await air.node(6, sleepy=True)
    node_id = air.pair(node)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    live = air.registry.live[node_id]
    assert live.state is not None and live.state.sleepy
    await until(lambda: live.state is not None and not live.state.reachable)
    with pytest.raises(ServiceUnavailable):
        await air.server.write(node_id, SWITCH, [Record(SWITCH, True)])
    assert node.tree.get(SWITCH) is False, "nothing was sent into the void"
    await node.update()
    await until(lambda: live.state is not None and live.state.reachable)
    await air.server.write(node_id, SWITCH, [Record(SWITCH, True)])
    assert node.tree.get(SWITCH) is True


async def test_deregistration_makes_the_node_unreachable(air: Air) -> None:
    node = await air.node(7)
    node_id = air.pair(node)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    await node.stop()
    live = air.registry.live[node_id]
    await until(lambda: live.state is not None and not live.state.reachable)
    with pytest.raises(ServiceUnavailable):
        await air.server.read(node_id, TEMPERATURE)


async def test_lost_datagrams_are_retransmitted(air: Air) -> None:
    lost: list[bytes] = []

    def drop(src: bytes, data: bytes) -> bool:
        if len(lost) < 2:
            lost.append(data)
            return True
        return False

    air.link.drop = drop
    node = await air.node(8)
    air.pair(node)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    assert len(lost) == 2


def patched(
    data: bytes, *, mtype: int | None = None, mid: int | None = None, token: bytes | None = None
) -> bytes:
    """A CoAP message's bytes with another type, Message ID or token (RFC 7252 §3)."""
    tkl = data[0] & 0x0F
    old_type, old_mid, old_token = (data[0] >> 4) & 0x03, data[2:4], data[4 : 4 + tkl]
    token = old_token if token is None else token
    first = 0x40 | (old_type if mtype is None else mtype) << 4 | len(token)
    mid_bytes = old_mid if mid is None else mid.to_bytes(2, "big")
    return bytes([first, data[1]]) + mid_bytes + token + data[4 + tkl :]


class Notifications:
    """A 1.0 node (its notifications are its readings) whose notifications of its readings
    are held off the link when asked, to be put back by hand, and the gateway's empty ACKs
    and RSTs to it: what the registry is handed over is what the core receives."""

    def __init__(self, air: Air, node: EmulatedNode, handed: HandedOver) -> None:
        self.air, self.node, self.handed = air, node, handed
        self.held: list[bytes] = []
        self.holding = False
        self.answers: list[aiocoap.Message] = []
        air.link.drop = self._drop

    def _drop(self, src: bytes, data: bytes) -> bool:
        message = aiocoap.Message.decode(data)
        if src == self.node.ip:
            notification = message.code.is_response() and message.opt.observe is not None
            if notification and self.holding:
                assert message.mtype is NON
                self.held.append(data)
                return True
        elif message.code is Code.EMPTY and message.mtype in (ACK, RST):
            self.answers.append(message)
        return False

    async def measure(self, *values: float) -> list[bytes]:
        """The node's notifications of ``values``, held."""
        self.holding, start = True, len(self.held)
        for k, value in enumerate(values, start + 1):
            self.node.tree.set(TEMPERATURE, value)
            await until(lambda k=k: len(self.held) >= k)  # type: ignore[misc]
        self.holding = False
        return self.held[-len(values) :]

    def put(self, data: bytes) -> None:
        """``data`` as the gateway would receive it from the node."""
        assert self.air.link.gateway is not None
        self.air.link.gateway.received(self.node.ip, COAP_PORT, data, self.node.eui64)

    async def readings(self, last: float) -> list[object]:
        """The temperatures handed over as readings, once ``last`` (measured after all else,
        and not held) is among them: what came before it has been taken or not by then."""
        self.node.tree.set(TEMPERATURE, last)
        taken = self.handed.readings
        await until(lambda: any(h.path == TEMPERATURE and h.value == last for h in taken))
        return [h.value for h in taken if h.path == TEMPERATURE]


@pytest.fixture
async def notifications(air: Air) -> Notifications:
    node = await air.node(9, version="1.0")
    node_id = air.pair(node)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    live = air.registry.live[node_id]
    await until(lambda: TEMPERATURE in live.values)
    handed = HandedOver(air.registry)
    return Notifications(air, node, handed)


async def test_an_older_or_repeated_notification_is_not_taken(
    notifications: Notifications,
) -> None:
    """RFC 7641 §3.4: notifications that come out of order are taken newest first, and one
    older than a notification taken (or the same again) is not: it would overwrite a newer
    value with an older one, or make one measured value two readings."""
    first, second, third = await notifications.measure(30.5, 31.5, 32.5)
    for data in (third, first, second, third):
        notifications.put(data)
    assert await notifications.readings(33.5) == [32.5, 33.5]


def mid_of(data: bytes) -> int:
    return int.from_bytes(data[2:4], "big")


async def test_a_confirmable_notification_is_acknowledged_each_time_and_taken_once(
    notifications: Notifications,
) -> None:
    (data,) = await notifications.measure(34.5)
    mid = (mid_of(data) + 1000) & 0xFFFF
    confirmable = patched(data, mtype=int(CON), mid=mid)
    notifications.put(confirmable)
    notifications.put(confirmable)  # its ACK lost: the node sends it again
    assert await notifications.readings(35.5) == [34.5, 35.5]
    assert [a.mtype for a in notifications.answers if a.mid == mid] == [ACK, ACK]


async def test_a_notification_of_no_observation_is_reset_if_confirmable_else_ignored(
    notifications: Notifications,
) -> None:
    confirmable, other = await notifications.measure(36.5, 37.5)
    unknown = b"\xff" * 8  # aiocoap's tokens are 8 bytes or fewer
    mid = (mid_of(confirmable) + 1000) & 0xFFFF
    notifications.put(patched(confirmable, mtype=int(CON), mid=mid, token=unknown))
    notifications.put(patched(other, token=unknown))
    assert await notifications.readings(38.5) == [38.5]
    answers = [(a.mtype, a.mid) for a in notifications.answers]
    assert (RST, mid) in answers and all(m != mid_of(other) for _, m in answers)


async def test_a_non_notification_is_decoded_by_the_link_and_taken_without_aiocoap(
    notifications: Notifications, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node's NON notification, the common message on the node link, is decoded by the
    link's own decoder (coap_notification.py) and reaches the registry as a reading: no
    aiocoap message is made of it on the gateway's side."""
    (data,) = await notifications.measure(39.5)
    decoded: list[bytes] = []
    decode = aiocoap.Message.decode

    def counted(data: bytes, remote: object = None) -> aiocoap.Message:
        decoded.append(data)
        return decode(data, remote)

    monkeypatch.setattr(aiocoap.Message, "decode", counted)
    notifications.put(data)
    assert decoded == []
    assert await notifications.readings(40.5) == [39.5, 40.5]


async def fetch_block(node: EmulatedNode, token: str, number: int) -> aiocoap.Message:
    """What ``node`` receives for its GET of block ``number`` (1024 bytes) of ``/fw/{token}``
    on the gateway, asked by itself (no block asked before it)."""
    assert node.context is not None and node.interface is not None
    request = aiocoap.Message(
        code=Code.GET,
        uri_path=("fw", token),
        block2=BlockOption.BlockwiseTuple(number, False, 6),
    )
    request.remote = LowpanAddress(node.interface, link_local(GATEWAY_EUI), COAP_PORT)
    return await asyncio.wait_for(
        node.context.request(request, handle_blockwise=False).response, TIMEOUT
    )


async def test_an_offered_image_is_served_any_block_at_any_time_and_a_withdrawn_one_is_4_04(
    air: Air,
) -> None:
    """The gateway keeps no state between the blocks of an image a node pulls (RFC 7959 §2.4):
    a block asked first, as a node resuming a pull or asking again after a long pause does,
    is the block; once the image is no longer offered (its update ended, or the gateway
    restarted since the pull began) the node receives 4.04 Not Found, not 4.08 Request Entity
    Incomplete (RFC 7959 §2.9.2: a Block1 code, for a request body missing blocks)."""
    node = await air.node(9)
    node_id = air.pair(node)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    image = bytes(range(256)) * 10  # 2,560 bytes: blocks 0 and 1 of 1024, block 2 of 512
    with air.server.offer(node_id, "0123", image):
        last = await fetch_block(node, "0123", 2)
        assert last.code == Code.CONTENT, (last.code, last.payload)
        assert last.opt.block2 == (2, False, 6) and last.payload == image[2048:]
        first = await fetch_block(node, "0123", 0)
        assert first.opt.block2 == (0, True, 6) and first.payload == image[:1024]
    withdrawn = await fetch_block(node, "0123", 1)
    assert withdrawn.code == Code.NOT_FOUND and withdrawn.opt.block2 is None
