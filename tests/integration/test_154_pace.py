"""The pace of the RCP's reads (pacing.py) on the whole path: a line whose window grew long on
a slow stream loses nothing to a burst at the line's full speed, and a node's CON exchange
completes while the line is paced.

As test_154_readings: emulated LwM2M nodes on the air of the RCP emulator (a pty the
transport opens with pyserial), the 802.15.4 transport, the node registry, Delivery, and the
in-repo LwM2M server, whose own code decodes the Sends. What the nodes put on the air is
counted on the nodes (each notification they sent), what arrived upstream on the server.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path as FsPath

from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import NON
from airs import TEMPERATURE, AirKind, RcpAir, until
from emulators.lwm2m_node import EmulatedNode

from bridged.store.nodes import NodeId, PairedNode
from bridged.transports.ieee802154.pacing import SHORTEN_FILL, TTY_BUFFER
from bridged.transports.ieee802154.port_io import LoopPort
from integration.test_154_readings import barrier
from integration.test_delivery import Gateway, delivered, gateway, received, registered
from peers.lwm2m_server import LwM2MTestServer

SLOW = 0.03
"""Seconds between two reports of the slow stream (the nodes' own pace, not a wait for the
gateway): less than the floor window apart, so the line is busy, and slow enough that the
window grows to its longest."""


async def notifying_node(gw: Gateway, index: int) -> tuple[NodeId, EmulatedNode]:
    """A LwM2M 1.0 node paired and on the air: it reports by notifying its observed temperature,
    and each notification is a reading (sources.py); once its observation answered and all is
    delivered."""
    assert isinstance(gw.air, RcpAir)
    node_id = gw.air.rcp.node_id(index)
    gw.registry.pair(PairedNode(node_id, f"notifying-{index}", "lwm2m"))
    node = await gw.air.rcp.add(index, f"notifying-{index}", version="1.0")
    await until(lambda: node.registered.is_set(), "the node registered")
    await until(lambda: TEMPERATURE in gw.registry.live[node_id].values, "the node observed")
    await barrier(node)
    await delivered(gw)
    return node_id, node


def line_port(gw: Gateway) -> LoopPort:
    assert isinstance(gw.air, RcpAir)
    io = gw.air.transport.radio._io
    assert isinstance(io, LoopPort)
    return io


def upstream_values(
    server: LwM2MTestServer, gw: Gateway, node_id: NodeId, since: int
) -> list[object]:
    """The values of the node's temperature the server received after its ``since`` first."""
    name = str(gw.exposure.paths.upstream(node_id, TEMPERATURE))
    return [r.value for r in received(server)[since:] if r.name == name]


async def test_a_burst_at_the_lines_full_speed_after_a_slow_stream_loses_no_reading(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    """A slow stream of notifications makes the window long (the line fills slowly), then both
    nodes notify as fast as they and the emulator go: within that window the line carries more
    than the measured rate would (a poll finds the buffer past ``SHORTEN_FILL``, and more). Every
    notification the nodes sent is a reading the server received, in order."""
    async with gateway(tmp_path, server.uri, kind=AirKind("802154")) as gw:
        await registered(server)
        nodes = dict([await notifying_node(gw, 3), await notifying_node(gw, 4)])
        port = line_port(gw)
        reads: list[int] = []
        read = port.pacing.read

        def counted(now: float, *, size: int, mid_frame: bool, awaiting: bool) -> None:
            reads.append(size)
            read(now, size=size, mid_frame=mid_frame, awaiting=awaiting)

        port.pacing.read = counted  # type: ignore[method-assign]
        since = len(received(server))
        notified = {node_id: len(node.notifications) for node_id, node in nodes.items()}
        values = itertools.count(100)
        order = itertools.cycle(nodes.values())
        for _ in range(40):
            next(order).tree.set(TEMPERATURE, float(next(values)))
            await asyncio.sleep(SLOW)
        assert port.pacing.window > port.pacing.floor, "the slow stream made the window longer"
        for _ in range(600):
            next(order).tree.set(TEMPERATURE, float(next(values)))
            await asyncio.sleep(0)  # each in a turn of its own: a notification each

        for node in nodes.values():
            await barrier(node)  # what the node sent before has reached the gateway
        await delivered(gw)
        assert max(reads) > SHORTEN_FILL * TTY_BUFFER, "the burst filled the tty's buffer"
        for node_id, node in nodes.items():
            sent = node.notifications[notified[node_id] :]
            assert all(n.mtype is NON for n in sent)
            got = upstream_values(server, gw, node_id, since)
            assert len(got) == len(sent), f"{node.name}: a reading for each notification"
            assert got == sorted(got), "in the order measured"


async def test_a_nodes_con_exchange_completes_while_the_line_is_paced(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    """While one node's slow stream keeps the line paced with a long window, the other node's
    CON Sends are answered (the gateway's ACK goes through the RCP, its outcome awaited), and
    the readings of both reach the server."""
    async with gateway(tmp_path, server.uri, kind=AirKind("802154")) as gw:
        await registered(server)
        assert isinstance(gw.air, RcpAir)
        sending_id = gw.nodes[0]
        sending = gw.air.rcp.nodes[sending_id]
        streaming_id, streaming = await notifying_node(gw, 3)
        nodes = {sending_id: sending, streaming_id: streaming}
        port = line_port(gw)
        since = len(received(server))
        notified = len(streaming.notifications)
        stop = asyncio.Event()

        async def stream() -> None:
            for value in itertools.count(1000):
                if stop.is_set():
                    return
                streaming.tree.set(TEMPERATURE, float(value))
                await asyncio.sleep(SLOW)

        streamer = asyncio.create_task(stream())
        try:
            await until(lambda: port.pacing.window > port.pacing.floor, "a long window")
            for k in range(5):
                response = await sending.measure(50.0 + k, time.time())
                assert response.code == Code.CHANGED, "the gateway took the Send"
        finally:
            stop.set()
            await streamer
        for node in nodes.values():
            await barrier(node)
        await delivered(gw)
        sent = [50.0 + k for k in range(5)]
        assert [v for v in upstream_values(server, gw, sending_id, since) if v in sent] == sent
        streamed = len(streaming.notifications) - notified
        assert len(upstream_values(server, gw, streaming_id, since)) == streamed
