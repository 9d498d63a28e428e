"""The real daemon's first start after nodes were paired allocates every node's instance IDs
in one pass (issue 17: ``NodeStore.allocating`` reads the nodes' IDs a pass at a time and finds
free IDs in memory), and a restart finds the same: what the server is told at both Registers.

The nodes are paired in the state database with the daemon stopped, as ``bench/startup.py``
does (no transport runs, so they stay quiet)."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

from bridged.objects import ids
from bridged.store.database import connect
from bridged.store.nodes import NodeStore
from bridged.transports.nodes import NodeId, PairedNode
from integration.test_daemon import ENDPOINT, config_text, running_daemon, until_sync
from peers.lwm2m_server import LwM2MTestServer

NODES = 12
OBJECTS = {ids.Ipso.TEMPERATURE: [0], ids.Ipso.HUMIDITY: [0, 1]}


def pair(state: Path) -> None:
    state.mkdir(parents=True, exist_ok=True, mode=0o750)
    conn = connect(state / "state.db")
    store = NodeStore(conn)
    for i in range(NODES):
        node = NodeId("sim", f"paired{i:02d}")  # none the simulated transport plays
        store.pair(PairedNode(node, f"node {i}", "sim", paired_at=time.time()))
        store.set_objects(node, OBJECTS)
    # An ID held already: the first start allocates around it.
    store.instance_id(NodeId("sim", "gone"), ids.Ipso.TEMPERATURE)
    conn.close()


async def registered_instances(tmp_path: Path, server: LwM2MTestServer) -> set[tuple[int, int]]:
    """The instances of the daemon's Register, after which it is stopped cleanly."""
    async with running_daemon(tmp_path, config_text(server.uri, tmp_path)) as d:
        await until_sync(lambda: ENDPOINT in server.clients)
        links = server.clients[ENDPOINT].links
        d.proc.send_signal(signal.SIGTERM)
        assert await d.wait() == 0
    server.clients.pop(ENDPOINT, None)
    return {(int(o), int(i)) for o, i in re.findall(r"</(\d+)/(\d+)>", links)}


async def test_a_first_start_and_a_restart_register_every_nodes_instances_alike(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    pair(tmp_path / "state")
    first = await registered_instances(tmp_path, server)
    again = await registered_instances(tmp_path, server)
    assert first == again

    def of(oid: int) -> list[int]:
        return sorted(i for o, i in first if o == oid)

    temperatures, humidities = of(ids.Ipso.TEMPERATURE), of(ids.Ipso.HUMIDITY)
    assert len(temperatures) == NODES and 0 not in temperatures  # 0 is the gone node's
    assert humidities == list(range(2 * NODES))
    assert len(of(ids.Ipso.DIGITAL_INPUT)) == NODES  # each node's availability
