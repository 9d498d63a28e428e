"""The 802.15.4 transport end to end: real pyserial on a pty, the RCP emulator on the other end,
emulated LwM2M nodes on its air (real 802.15.4 frames, 6LoWPAN, CoAP), and the real node
registry on SQLite."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path as FsPath

import aiocoap
import pytest
from aiocoap.numbers.codes import Code
from airs import HandedOver
from emulators.lwm2m_node import SWITCH, TEMPERATURE, EmulatedNode, RadioAir
from emulators.rcp import RcpEmulator

from bridged.commands import CommandQueue
from bridged.engine.registration import EventKind
from bridged.exposure.instances import InstancesExposure
from bridged.hosting import transport_host
from bridged.objects.builtin import builtin_definitions
from bridged.objects.ddf import load_ddf_file
from bridged.objects.errors import GatewayTimeout
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.operations import NodeOperations
from bridged.registry import NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeId, NodeStore, PairedNode
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from bridged.transports.base import TransportConfigError, transport_class
from bridged.transports.ieee802154.lowpan import UdpDatagram, link_local
from bridged.transports.ieee802154.mac import parse_frame
from bridged.transports.ieee802154.spinel import Status
from bridged.transports.ieee802154.transport import (
    IEEE802154Transport,
    coap_ports,
    normalise_eui64,
)

PAN = 0xFACE
NODE_MAC = bytes.fromhex("00124b0000020099")
TIMEOUT = 20.0


async def until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


class Gateway:
    def __init__(
        self, registry: NodeRegistry, transport: IEEE802154Transport, air: RadioAir
    ) -> None:
        self.registry = registry
        self.transport = transport
        self.air = air
        self.nodes: list[EmulatedNode] = []

    async def node(self, index: int, *, paired: bool = True, **kwargs: object) -> EmulatedNode:
        node = EmulatedNode(bytes.fromhex(f"00124b00000200{index:02x}"), f"n{index}", **kwargs)  # type: ignore[arg-type]
        if paired:
            self.registry.pair(PairedNode(self.id(node), node.name, "lwm2m"))
        await self.air.add(node)
        self.nodes.append(node)
        return node

    @staticmethod
    def id(node: EmulatedNode) -> NodeId:
        return NodeId("802154", node.eui64.hex())


@pytest.fixture
async def gateway(tmp_path: FsPath) -> AsyncIterator[Gateway]:
    conn = connect(tmp_path / "state.db")
    secrets = SecretStore(tmp_path / "secrets.json")
    registry = NodeRegistry(NodeStore(conn), secrets, ReadingStore(conn))
    async with RcpEmulator(tmp_path / "ttyRCP") as rcp:
        config = {"port": str(rcp.link), "pan_id": PAN, "awake_window": 1, "request_timeout": 3}
        transport = IEEE802154Transport(config, registry, transport_host(builtin_definitions()))
        registry.attach(transport)
        air = RadioAir(rcp, PAN)
        await transport.start()
        await rcp.wait_until(lambda: rcp.raw_stream)
        gw = Gateway(registry, transport, air)
        yield gw
        # Should stopping hang again (as when the transmit sender swallowed stop()'s cancel,
        # which test_rcp_radio.py reproduces), the per-test timeout stops it and the guard of
        # tests/conftest.py names the tasks still waiting, with their lines.
        try:
            await transport.stop()
            for node in gw.nodes:
                await node.stop(deregister=False)
        finally:
            conn.close()


def test_the_transport_is_found_by_its_entry_point() -> None:
    assert transport_class("802154") is IEEE802154Transport
    assert normalise_eui64("00:12:4B:00:01:02:03:04") == "00124b0001020304"


async def test_a_node_registers_over_the_air_and_reports(gateway: Gateway) -> None:
    node = await gateway.node(1)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    live = gateway.registry.live[gateway.id(node)]
    await until(lambda: TEMPERATURE in live.values)
    node.tree.set(TEMPERATURE, 24.5)
    await until(lambda: live.values[TEMPERATURE].value == 24.5)
    assert live.state is not None and live.state.rssi == -50 and live.state.lqi == 200


async def test_notifications_that_arrive_in_one_read_are_each_a_reading(gateway: Gateway) -> None:
    """A LwM2M 1.0 node's notifications are its readings: three that reach the host in one
    serial read (as the reader's pace hands over a busy line's frames, pacing.py) are three
    readings, not the last one (aiocoap's observation iterator keeps only the latest).

    Only the node's own frames are held, and each value waits for the node's notification of
    it (three on one observation's token): holding every frame and counting frames let a late
    frame of the gateway to the node stand for a notification under load, and the last
    value then went on the air alone before the held ones, which RFC 7641 §3.4's order
    check rightly refuses as older."""
    node = await gateway.node(1, version="1.0")
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    live = gateway.registry.live[gateway.id(node)]
    await until(lambda: TEMPERATURE in live.values)
    handed = HandedOver(gateway.registry)
    held: list[bytes] = []
    before = len(node.notifications)

    def notified() -> int:
        """The most notifications the node sent on one observation since ``before``."""
        tokens = collections.Counter(n.token for n in node.notifications[before:])
        return max(tokens.values(), default=0)

    gateway.air.drop = lambda psdu: parse_frame(psdu).src == node.mac and not held.append(psdu)
    values = [30.5, 31.5, 32.5]
    for k, value in enumerate(values):
        node.tree.set(TEMPERATURE, value)
        await until(lambda k=k: notified() > k)  # type: ignore[misc]
    gateway.air.drop = lambda psdu: False
    assert gateway.air.rcp.inject_together(held)
    await until(lambda: live.values[TEMPERATURE].value == values[-1])

    await until(lambda: len([h for h in handed.readings if h.path == TEMPERATURE]) >= 3)
    assert [h.value for h in handed.readings if h.path == TEMPERATURE] == values


async def test_read_and_write_reach_the_node_over_the_air(gateway: Gateway) -> None:
    node = await gateway.node(2)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    node_id = gateway.id(node)
    node.tree.set(TEMPERATURE, 18.0)
    records = await gateway.transport.read(node_id, TEMPERATURE)
    assert [r.value for r in records] == [18.0]
    await gateway.transport.write(node_id, SWITCH, [Record(SWITCH, True)])
    assert node.tree.get(SWITCH) is True


async def test_a_fragmented_send_arrives_whole(gateway: Gateway) -> None:
    node = await gateway.node(3)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    live = gateway.registry.live[gateway.id(node)]
    await until(lambda: TEMPERATURE in live.values)
    series = [Record(TEMPERATURE, 20 + i / 10, 1_700_000_000.0 + i) for i in range(40)]
    frames_before = len(gateway.air.rcp.sent)
    response = await node.send(series)
    assert response.code.is_successful()
    await until(lambda: live.values[TEMPERATURE].value == pytest.approx(23.9))
    assert gateway.transport.link.reassembler.counters.completed >= 1, "it came in fragments"
    assert len(gateway.air.rcp.sent) > frames_before  # the ACK went back


async def test_an_unpaired_node_is_refused_until_permit_join(gateway: Gateway) -> None:
    node = await gateway.node(4, paired=False)
    await until(lambda: gateway.id(node) in gateway.registry.heard_nodes)
    assert gateway.id(node) not in gateway.registry.live
    gateway.registry.permit_join(60)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    assert gateway.id(node) in gateway.registry.live


async def test_lost_frames_are_recovered_by_coap(gateway: Gateway) -> None:
    lost: list[bytes] = []

    def drop(psdu: bytes) -> bool:
        if len(lost) < 3:
            lost.append(psdu)
            return True
        return False

    gateway.air.drop = drop
    node = await gateway.node(5)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    assert len(lost) == 3


async def test_no_ack_then_recovery(gateway: Gateway) -> None:
    node = await gateway.node(6)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    rcp = gateway.air.rcp
    rcp.tx_outcome = Status.NO_ACK
    air_drop = gateway.air.drop
    gateway.air.drop = lambda psdu: True  # the node is out of range: nothing gets through
    with pytest.raises(GatewayTimeout):
        await gateway.transport.write(gateway.id(node), SWITCH, [Record(SWITCH, True)])
    rcp.tx_outcome = None
    gateway.air.drop = air_drop
    # CoAP keeps retransmitting the confirmable write after the gateway stopped waiting for
    # it: once the node is back in range, it lands, and the node answers reads again.
    await until(lambda: node.tree.get(SWITCH) is True)
    node.tree.set(TEMPERATURE, 17.0)
    records = await gateway.transport.read(gateway.id(node), TEMPERATURE)
    assert [r.value for r in records] == [17.0]


async def test_an_unsolicited_reset_and_an_unplugged_dongle_are_survived(
    gateway: Gateway,
) -> None:
    node = await gateway.node(7)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    node_id = gateway.id(node)
    rcp = gateway.air.rcp
    rcp.reset()
    await rcp.wait_until(lambda: rcp.raw_stream and rcp.pan_id == PAN)
    node.tree.set(TEMPERATURE, 30.0)
    assert [r.value for r in await gateway.transport.read(node_id, TEMPERATURE)] == [30.0]
    rcp.unplug()
    await asyncio.sleep(0.2)
    rcp.replug()
    # A replugged RCP powers on with its PAN unset, and the radio says it is up only once it
    # has applied its whole state: a read sent before that is not transmitted (seen once in
    # CI, where the RCP's raw stream was on but the radio not yet up, and the read timed out).
    await rcp.wait_until(lambda: rcp.raw_stream and rcp.pan_id == PAN, timeout=TIMEOUT)
    async with asyncio.timeout(TIMEOUT):
        while not gateway.transport.radio.state.up:
            await asyncio.sleep(0.02)
    node.tree.set(TEMPERATURE, 31.0)
    assert [r.value for r in await gateway.transport.read(node_id, TEMPERATURE)] == [31.0]


def started_anew(
    conn: sqlite3.Connection, tmp_path: FsPath, rcp: RcpEmulator
) -> tuple[NodeRegistry, IEEE802154Transport, HandedOver]:
    """A gateway on the state database ``conn`` (the same one at each restart), not started,
    and what its registry hands over."""
    registry = NodeRegistry(
        NodeStore(conn), SecretStore(tmp_path / "secrets.json"), ReadingStore(conn)
    )
    handed = HandedOver(registry)
    transport = IEEE802154Transport(
        {"port": str(rcp.link), "pan_id": PAN}, registry, transport_host(builtin_definitions())
    )
    registry.attach(transport)
    return registry, transport, handed


async def test_a_restarted_gateway_keeps_its_nodes_registrations_and_observes_them_again(
    tmp_path: FsPath,
) -> None:
    """A node that reports by notifying (LwM2M 1.0: no Send) goes on being heard after the
    gateway restarts, without registering again: the registration was kept, and the gateway
    observes the node anew at once. That Observe is sent at ``start``, before the radio is up
    (it comes up in the background): it waits for the radio, and is the first thing the node
    hears from the restarted gateway, before the answer to an Update the node sends once the
    radio is up. It was dropped, and came only with CoAP's retransmission, seconds later."""
    conn = connect(tmp_path / "state.db")
    async with RcpEmulator(tmp_path / "ttyRCP") as rcp:
        air = RadioAir(rcp, PAN)
        registry, transport, _ = started_anew(conn, tmp_path, rcp)
        await transport.start()
        node = EmulatedNode(bytes.fromhex("00124b0000020099"), "old", version="1.0")
        heard: list[aiocoap.Message] = []
        receive = node.received

        def received(ip: bytes, port: int, payload: bytes) -> None:
            heard.append(aiocoap.Message.decode(payload))
            receive(ip, port, payload)

        node.received = received  # type: ignore[method-assign]
        try:
            node_id = await join(registry, air, node)
            await transport.stop()

            # the same state database
            registry, transport, handed = started_anew(conn, tmp_path, rcp)
            heard.clear()
            await transport.start()
            try:
                await until(lambda: transport.radio.state.up)
                await node.update()
                await until(lambda: any(m.code == Code.CHANGED for m in heard))  # its answer
                assert (heard[0].code, heard[0].opt.observe) == (Code.GET, 0), heard
                live = registry.live[node_id]
                await until(lambda: TEMPERATURE in live.values)  # observed again
                node.tree.set(TEMPERATURE, 26.5)
                await until(lambda: any(h.value == 26.5 for h in handed.readings))
            finally:
                await transport.stop()
            registered = [e for e in node.events if e.kind is EventKind.REGISTRATION_COMPLETE]
            assert len(registered) == 1, "it did not have to register again"
        finally:
            await node.stop(deregister=False)
            conn.close()


def test_a_restarted_gateway_does_not_begin_its_mac_sequence_numbers_where_it_did(
    tmp_path: FsPath,
) -> None:
    """A node drops a frame whose MAC sequence number it heard last from the same source (a
    retransmission whose ACK was lost, mac.DuplicateFilter): a gateway that began at 0 after
    each start had its first frames after a restart dropped, until CoAP retransmitted them
    (the test above took 15 to 20 s of its 20). Each start begins at a random number."""
    random.seed(17)
    conn = connect(tmp_path / "state.db")
    registry = NodeRegistry(
        NodeStore(conn), SecretStore(tmp_path / "secrets.json"), ReadingStore(conn)
    )
    datagram = UdpDatagram(link_local(bytes(8)), 5683, link_local(NODE_MAC), 5683, b"hello")
    first_seqs = []
    for _ in range(2):  # the same gateway, started twice
        transport = IEEE802154Transport(
            {"port": "/dev/null", "pan_id": PAN}, registry, transport_host(builtin_definitions())
        )
        (psdu,) = transport.link.send(datagram, src_mac=bytes(8), dst_mac=NODE_MAC, pan_id=PAN)
        first_seqs.append(parse_frame(psdu).seq)
    conn.close()
    assert first_seqs[0] != first_seqs[1]


async def test_a_node_with_a_short_address_pairs_by_pan_id_and_short_address(
    gateway: Gateway,
) -> None:
    """It registers, Sends, and every answer goes to its short address (unicast), never to
    the broadcast address every node would hear and drop."""
    node_id = NodeId("802154", "face:0001")
    assert IEEE802154Transport.normalise_address("0xFACE:0x0001") == node_id.address
    gateway.registry.pair(PairedNode(node_id, "short", "lwm2m"))
    node = EmulatedNode(bytes.fromhex("00124b00000200aa"), "short", short=b"\x00\x01")
    gateway.nodes.append(node)
    sent_before = len(gateway.air.rcp.sent)
    await gateway.air.add(node)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    handed = HandedOver(gateway.registry)
    response = await node.send([Record(TEMPERATURE, 19.5, 1_700_000_000.0)])
    assert response.code == Code.CHANGED
    # The Send is a reading before its 2.04 (the node's time kept). The node's value as the
    # gateway shows it may be newer by then: the first answer of the gateway's observation.
    sent = [(h.node, h.path, h.value, h.time) for h in handed.readings if h.path == TEMPERATURE]
    assert (node_id, TEMPERATURE, 19.5, 1_700_000_000.0) in sent
    to = {parse_frame(f.psdu).dst for f in gateway.air.rcp.sent[sent_before:]}
    assert to == {b"\x00\x01"}, "answers go to the node's short address"


async def test_the_ports_the_gateway_serves_are_a_setting_and_other_ports_are_said_once(
    tmp_path: FsPath, caplog: pytest.LogCaptureFixture
) -> None:
    """Nodes given ``coap://[gateway]:61617`` (0xF0B1: 6LoWPAN's NHC carries 0xF0B0..0xF0BF
    in 4 bits each) get in when the gateway serves that port; a node sending elsewhere is
    dropped, and the log says which node, which port and why, once."""
    conn = connect(tmp_path / "state.db")
    registry = NodeRegistry(
        NodeStore(conn), SecretStore(tmp_path / "secrets.json"), ReadingStore(conn)
    )
    async with RcpEmulator(tmp_path / "ttyRCP") as rcp:
        config = {"port": str(rcp.link), "pan_id": PAN, "coap_ports": [0xF0B1]}
        transport = IEEE802154Transport(config, registry, transport_host(builtin_definitions()))
        registry.attach(transport)
        air = RadioAir(rcp, PAN)
        await transport.start()
        compact = EmulatedNode(node_eui(0x30), "compact", port=0xF0B0, server_port=0xF0B1)
        elsewhere = EmulatedNode(node_eui(0x31), "elsewhere", server_port=5683)
        for node in (compact, elsewhere):
            registry.pair(PairedNode(NodeId("802154", node.eui64.hex()), node.name, "lwm2m"))
        try:
            with caplog.at_level(logging.WARNING):
                for node in (compact, elsewhere):
                    await air.add(node)
                await asyncio.wait_for(compact.registered.wait(), TIMEOUT)
                response = await compact.send([Record(TEMPERATURE, 18.5, 1_700_000_000.0)])
                assert response.code == Code.CHANGED
                await until(lambda: len(elsewhere.events) >= 2)  # it tried, twice, unanswered
            assert not elsewhere.registered.is_set()
            said = [r.getMessage() for r in caplog.records if "does not serve" in r.getMessage()]
            assert said == [
                f"node 802154:{elsewhere.eui64.hex()} sends to UDP port 5683, which the gateway "
                "does not serve ([transport.802154] coap_ports = [61617]): its datagrams are "
                "dropped (logged once)"
            ]
        finally:
            await transport.stop()
            for node in (compact, elsewhere):
                await node.stop(deregister=False)
            conn.close()


@pytest.mark.parametrize("ports", [[], [0], [5683, 5683], 5683, ["5683"], [True]])
def test_coap_ports_are_checked(ports: object) -> None:
    with pytest.raises(TransportConfigError, match=r"802154\.coap_ports must be a list"):
        coap_ports(ports)
    assert coap_ports([5683, 0xF0B1]) == (5683, 61617)


def node_eui(index: int) -> bytes:
    return bytes.fromhex(f"00124b00000200{index:02x}")


async def test_a_node_in_queue_mode_is_sleepy_after_a_restart_though_paired_awake(
    tmp_path: FsPath,
) -> None:
    """The node registers in queue mode; its pairing does not say it sleeps. The transport's
    knowledge wins, also after a restart before the node has talked again: a write for it is
    kept (not sent into the void, not 5.03/5.04) and reaches the node when it wakes."""
    conn = connect(tmp_path / "state.db")
    asleep = False

    def gateway() -> tuple[NodeRegistry, IEEE802154Transport, NodeOperations, CommandQueue]:
        registry = NodeRegistry(
            NodeStore(conn), SecretStore(tmp_path / "secrets.json"), ReadingStore(conn)
        )
        config = {"port": str(rcp.link), "pan_id": PAN, "awake_window": 1, "request_timeout": 2}
        transport = IEEE802154Transport(config, registry, transport_host(builtin_definitions()))
        registry.attach(transport)
        commands = CommandQueue(conn, registry, timeout=5)
        exposure = InstancesExposure(ObjectTree(builtin_definitions()), registry.store)
        operations = NodeOperations(registry, exposure, commands, timeout=5)
        return registry, transport, operations, commands

    async with RcpEmulator(tmp_path / "ttyRCP") as rcp:
        air = RadioAir(rcp, PAN)
        air.drop = lambda psdu: asleep  # the node's radio is off while it sleeps
        registry, transport, _, commands = gateway()
        await transport.start()
        node = EmulatedNode(node_eui(0x40), "cellar", sleepy=True)
        try:
            node_id = await join(registry, air, node)  # paired without saying it sleeps
            await commands.close()
            await transport.stop()
            asleep = True

            _, transport, operations, commands = gateway()  # restarted, the node asleep
            await transport.start()
            try:
                await operations.write(node_id, SWITCH, [Record(SWITCH, True)], replace=True)
                assert node.tree.get(SWITCH) is False, "kept while it sleeps"
                asleep = False
                await node.update()  # it wakes and talks
                await until(lambda: node.tree.get(SWITCH) is True)
            finally:
                await commands.close()
                await transport.stop()
        finally:
            await node.stop(deregister=False)
            conn.close()


async def join(registry: NodeRegistry, air: RadioAir, node: EmulatedNode) -> NodeId:
    """Pair ``node`` (not as sleepy), put it on the air; its id once it has registered."""
    node_id = NodeId("802154", node.eui64.hex())
    registry.pair(PairedNode(node_id, node.name, "lwm2m"))
    await air.add(node)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    return node_id


SOIL_PROBE_DDF = FsPath(__file__).resolve().parents[1] / "fixtures" / "ddf" / "good" / "32769.xml"
MOISTURE = Path((32769, 0, 0))


async def test_an_object_taught_by_a_ddf_file_reaches_the_node_server(tmp_path: FsPath) -> None:
    """The transport is lent the gateway's definitions (built-in plus the operator's DDF
    files): a node's object known only from a DDF file is observed like a built-in one, so its
    values and changes reach the gateway."""
    soil = load_ddf_file(SOIL_PROBE_DDF)
    definitions = builtin_definitions()
    definitions.extend(soil)
    conn = connect(tmp_path / "state.db")
    registry = NodeRegistry(
        NodeStore(conn), SecretStore(tmp_path / "secrets.json"), ReadingStore(conn)
    )
    async with RcpEmulator(tmp_path / "ttyRCP") as rcp:
        config = {"port": str(rcp.link), "pan_id": PAN}
        transport = IEEE802154Transport(config, registry, transport_host(definitions))
        registry.attach(transport)
        air = RadioAir(rcp, PAN)
        await transport.start()
        node = EmulatedNode(node_eui(0x40), "soil")
        node.tree.definitions.extend(soil)
        node.tree.create_instance(32769, 0, [(0, 31.5)])
        node_id = NodeId("802154", node.eui64.hex())
        registry.pair(PairedNode(node_id, node.name, "lwm2m"))
        try:
            await air.add(node)
            await asyncio.wait_for(node.registered.wait(), TIMEOUT)
            live = registry.live[node_id]
            await until(lambda: MOISTURE in live.values)
            assert live.values[MOISTURE].value == 31.5
            node.tree.set(MOISTURE, 42.0)
            await until(lambda: live.values[MOISTURE].value == 42.0)
        finally:
            await transport.stop()
            await node.stop(deregister=False)
            conn.close()
