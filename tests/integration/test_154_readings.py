"""One measured value of an 802.15.4 node is one upstream record, with the node's time.

The whole path is real (test_delivery's gateway on the ``802154`` air): emulated LwM2M nodes
on the air of the RCP emulator (real 802.15.4 frames and 6LoWPAN through pyserial on a pty),
the 802.15.4 transport, the node registry on SQLite, the instances exposure, store-and-forward
delivery, the gateway's LwM2M client, and the in-repo LwM2M server upstream, which decodes the
Sends (SenML CBOR) itself. A node here measures the way a real one that reports by Send does:
the value changes in its own tree (so the observation the gateway keeps on its object
notifies it) and it Sends it with its time.
"""

from __future__ import annotations

import time
from pathlib import Path as FsPath

from aiocoap.numbers.codes import Code
from airs import TEMPERATURE, AirKind, RcpAir, until
from emulators.lwm2m_node import EmulatedNode

from bridged.engine.registration import EventKind
from bridged.objects.paths import Path
from bridged.store.nodes import NodeId, PairedNode
from integration.test_delivery import Gateway, delivered, gateway, received, registered
from peers.lwm2m_server import LwM2MTestServer


async def barrier(node: EmulatedNode) -> None:
    """An Update round trip: what the node sent before it has reached the gateway."""
    mark = len(node.events)
    await node.update()
    await until(
        lambda: any(e.kind is EventKind.UPDATE_COMPLETE for e in node.events[mark:]),
        f"{node.name}'s Update answered",
    )


async def test_each_measured_value_is_one_upstream_record_with_the_nodes_time(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    async with gateway(tmp_path, server.uri, kind=AirKind("802154")) as gw:
        assert isinstance(gw.air, RcpAir)
        nodes = {node_id: gw.air.rcp.nodes[node_id] for node_id in gw.nodes}
        await registered(server)
        for node in nodes.values():
            await barrier(node)  # the observations' first answers are in
        await delivered(gw)
        assert received(server) == [], "what the gateway read of a node is not a reading"

        measured: list[tuple[str, float, float]] = []
        start = time.time() - 3600  # the node's clock: what it measured, an hour of it
        for i in range(5):
            for n, (node_id, node) in enumerate(nodes.items()):
                value, at = 20.0 + n * 10 + i / 4, start + 60 * i + n
                response = await node.measure(value, at)
                assert response.code == Code.CHANGED, "the gateway took the Send"
                path = gw.exposure.paths.upstream(node_id, TEMPERATURE)
                measured.append((str(path), at, value))

        # Every notification of those values has reached the gateway too.
        for node in nodes.values():
            await until(lambda n=node: n.notifications, f"{node.name} notified")  # type: ignore[misc]
            await barrier(node)
        await delivered(gw)

        got = [(r.name, r.time, r.value) for r in received(server)]
        assert sorted(got) == sorted(measured)


SENSOR_VALUE = TEMPERATURE
MIN_MEASURED, MAX_MEASURED = (Path((3303, 0, rid)) for rid in (5601, 5602))
MEASURED = (SENSOR_VALUE, MIN_MEASURED, MAX_MEASURED)


async def blockwise_node(gw: Gateway) -> tuple[NodeId, EmulatedNode]:
    """A LwM2M 1.0 node (it reports by notifying) whose CoAP stack sends 32-byte blocks: its
    temperature instance, with its minimum and maximum, is a notification of several blocks,
    the first of which holds the first value (/3303/0/5601)."""
    assert isinstance(gw.air, RcpAir)
    node_id = gw.air.rcp.node_id(3)
    gw.registry.pair(PairedNode(node_id, "big", "lwm2m"))
    node = await gw.air.rcp.add(3, "big", version="1.0", block_size_exp=1)
    for path in MEASURED:
        node.tree.set(path, 21.0)
    await until(lambda: node.registered.is_set(), "the node registered")
    await until(
        lambda: all(p in gw.registry.live[node_id].values for p in MEASURED), "the node observed"
    )
    await barrier(node)
    await delivered(gw)
    return node_id, node


def measure(node: EmulatedNode, values: tuple[float, ...]) -> None:
    """The node measures its temperature, minimum and maximum at once: one notification."""
    for path, value in zip(MEASURED, values, strict=True):
        node.tree.set(path, value)


async def upstream(
    server: LwM2MTestServer,
    gw: Gateway,
    node_id: NodeId,
    node: EmulatedNode,
    before: int,
    values: tuple[float, ...],
) -> list[tuple[str, object]]:
    """What the server received of the node after its ``before`` first records, once the
    values ``values`` arrived."""
    names = [str(gw.exposure.paths.upstream(node_id, path)) for path in MEASURED]

    def got() -> list[tuple[str, object]]:
        return [(r.name, r.value) for r in received(server)[before:] if r.name in names]

    await until(lambda: set(zip(names, values, strict=True)) <= set(got()), "the values upstream")
    await barrier(node)
    await delivered(gw)
    return got()


async def test_a_notification_in_blocks_reaches_the_server_whole(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    """A node's notification larger than its block size comes as its first block (RFC 7959
    §3.4); the gateway fetches the rest, and the server receives every value of it."""
    async with gateway(tmp_path, server.uri, kind=AirKind("802154")) as gw:
        await registered(server)
        node_id, node = await blockwise_node(gw)
        before = len(received(server))
        sent, asked = len(node.notifications), len(node.blocks_asked)
        values = (25.25, 18.5, 26.75)
        measure(node, values)
        got = await upstream(server, gw, node_id, node, before, values)
        names = [str(gw.exposure.paths.upstream(node_id, path)) for path in MEASURED]
        assert sorted(got) == sorted(zip(names, values, strict=True))
        notified = node.notifications[sent:]
        assert notified and all(n.opt.block2 and n.opt.block2.more for n in notified), (
            "the node notified in blocks"
        )
        assert node.blocks_asked[asked:] and 0 not in node.blocks_asked[asked:], (
            "the rest of the notification was asked for, not its first block again"
        )


async def test_blocks_of_two_representations_are_never_glued(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    """The node measures again right after the first block of a notification went out: the
    rest of that notification is gone (a node keeps no copy; the ETag of the blocks it now
    serves differs, RFC 7959 §2.4). The server receives the new measurement whole, never the
    first block of the old one glued to the rest of the new one."""
    async with gateway(tmp_path, server.uri, kind=AirKind("802154")) as gw:
        await registered(server)
        node_id, node = await blockwise_node(gw)
        before = len(received(server))
        first, then = (27.0, 19.0, 27.5), (30.0, 17.0, 30.5)

        def measure_again() -> None:
            node.between_blocks = None
            measure(node, then)

        node.between_blocks = measure_again
        measure(node, first)
        got = await upstream(server, gw, node_id, node, before, then)
        names = [str(gw.exposure.paths.upstream(node_id, path)) for path in MEASURED]
        assert sorted(got) == sorted(zip(names, then, strict=True))
        assert node.between_blocks is None, "the node measured again between the blocks"
