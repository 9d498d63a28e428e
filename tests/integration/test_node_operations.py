"""Operations on node-backed resources over the network: the in-repo LwM2M server reads and
writes the instances of simulated nodes (instances mode) through the real client; and a
command kept for a sleepy node survives kill -9 of the process that took it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path as FsPath

import cbor2
import pytest
from aiocoap.numbers.codes import Code
from clients import FAST_RETRY
from nodegw import NodeGateway, node_gateway

from bridged.commands import CommandQueue, CommandStatus
from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.objects.paths import Path
from bridged.registry import NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeStore
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from peers.lwm2m_server import LwM2MTestServer

EP = "gw-nodes"


@pytest.fixture
async def gw(server: LwM2MTestServer, tmp_path: FsPath) -> AsyncIterator[NodeGateway]:
    gw = node_gateway(tmp_path)
    gw.tree.create_instance(3, 0, [(0, "ACME"), (16, "U")])
    client = LwM2MClient(
        gw.tree,
        EP,
        ServerConfig(server.uri, retry=FAST_RETRY),
        bind=("127.0.0.1", 0),
        nodes=gw.operations,
    )
    await client.start()
    async with asyncio.timeout(10):
        while EP not in server.clients:
            await asyncio.sleep(0.02)
    yield gw
    await client.stop()
    await gw.commands.close()


async def test_read_reaches_the_node(server: LwM2MTestServer, gw: NodeGateway) -> None:
    response = await server.request(EP, Code.GET, "/3303/1/5700")
    assert response.code == Code.CONTENT
    assert float(response.payload) == gw.tree.get(Path.parse("/3303/1/5700"))


async def test_read_of_a_sleepy_node_carries_the_time_of_its_last_report(
    server: LwM2MTestServer, gw: NodeGateway
) -> None:
    gw.wake(gw.sleepy)
    gw.sleep(gw.sleepy)
    reported = gw.registry.live[gw.sleepy.id].values[Path.parse("/3303/0/5700")]
    response = await server.request(EP, Code.GET, "/3303/2/5700", accept=112)
    assert response.code == Code.CONTENT
    (record,) = cbor2.loads(response.payload)
    assert record[2] == reported.value
    assert record.get(-3, 0) + record.get(6, 0) == reported.time


async def test_failed_writes_answer_the_nodes_code(
    server: LwM2MTestServer, gw: NodeGateway
) -> None:
    refused = await server.request(EP, Code.PUT, "/3311/1/5706", b"red", content_format=0)
    assert refused.code == Code.METHOD_NOT_ALLOWED
    gw.sim.delay = 30.0
    gw.operations.timeout = 0.1
    slow = await server.request(EP, Code.PUT, "/3311/1/5850", b"1", content_format=0)
    assert slow.code == Code.GATEWAY_TIMEOUT


async def test_a_sleepy_nodes_write_is_2_04_then_applied_when_it_wakes(
    server: LwM2MTestServer, gw: NodeGateway
) -> None:
    gw.wake(gw.sleepy)
    gw.sleep(gw.sleepy)
    written = await server.request(EP, Code.PUT, "/3311/2/5850", b"1", content_format=0)
    assert written.code == Code.CHANGED
    assert [c.status for c in gw.commands.pending()] == [CommandStatus.PENDING]
    before = await server.request(EP, Code.GET, "/3311/2/5850")
    assert before.payload == b"0", "the server reads back what the node has"
    gw.wake(gw.sleepy)
    async with asyncio.timeout(10):
        while gw.commands.pending():
            await asyncio.sleep(0.02)
    after = await server.request(EP, Code.GET, "/3311/2/5850")
    assert after.payload == b"1"
    assert gw.sleepy.switch is True


async def test_unpaired_nodes_are_not_served(server: LwM2MTestServer, gw: NodeGateway) -> None:
    gw.registry.unpair(gw.awake.id)
    response = await server.request(EP, Code.GET, "/3303/1/5700")
    assert response.code == Code.NOT_FOUND


TAKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path as FsPath
    from bridged.commands import CommandQueue
    from bridged.objects.paths import Path
    from bridged.objects.values import Record
    from bridged.registry import NodeRegistry
    from bridged.store.database import connect
    from bridged.store.nodes import NodeId, NodeStore, PairedNode
    from bridged.store.readings import ReadingStore
    from bridged.store.secrets import SecretStore

    state = FsPath(sys.argv[1])
    conn = connect(state / "state.db")
    registry = NodeRegistry(NodeStore(conn), SecretStore(state / "s.json"), ReadingStore(conn))
    node = NodeId("sim", "0002")
    registry.pair(PairedNode(node, "cellar", "sim", sleepy=True))
    commands = CommandQueue(conn, registry)
    switch = Path.parse("/3311/0/5850")
    for value in (True, False, True):
        commands.submit_write(node, switch, [Record(switch, value)], replace=True)
    print("taken", flush=True)
    time.sleep(600)
    """
)


def test_kept_commands_survive_kill_9(tmp_path: FsPath) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", TAKER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline() == "taken\n"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    conn = connect(tmp_path / "state.db")
    registry = NodeRegistry(NodeStore(conn), SecretStore(tmp_path / "s.json"), ReadingStore(conn))
    commands = CommandQueue(conn, registry)
    (pending,) = commands.pending()
    assert pending.records[0].value is True
    assert [c.status for c in commands.history()] == [CommandStatus.SUPERSEDED] * 2
