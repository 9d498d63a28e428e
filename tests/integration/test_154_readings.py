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
from integration.test_delivery import delivered, gateway, received, registered
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
