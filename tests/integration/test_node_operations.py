"""Operations on node-backed resources over the network: the in-repo LwM2M server reads, writes
and executes the instances of nodes (instances mode) through the real client, on each transport
(tests/airs.py: simulated, 802.15.4 through the RCP emulator, BLE through the BlueZ emulation);
and a command kept for a sleepy node survives kill -9 of the process that took it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path as FsPath

import cbor2
import pytest
from aiocoap.numbers.codes import Code
from airs import COLOUR, RESET_MIN_MAX, SWITCH, TEMPERATURE, AirKind, air_kind_fixture, until  # noqa: F401
from clients import FAST_RETRY
from emulators.bluez import bluez_bus, bluez_fixture  # noqa: F401 (fixtures)
from nodegw import AirGateway, air_gateway, node_gateway

from bridged.commands import CommandQueue
from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.objects.errors import LwM2MError
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.operations import NodeOperations
from bridged.registry import NodeRegistry
from bridged.store.commands import CommandStatus
from bridged.store.database import connect
from bridged.store.nodes import NodeStore
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from peers.lwm2m_server import LwM2MTestServer, decode_senml_cbor

EP = "gw-nodes"


@contextlib.asynccontextmanager
async def registered(
    tree: ObjectTree, operations: NodeOperations, server: LwM2MTestServer
) -> AsyncIterator[None]:
    """The real client over ``tree`` and ``operations``, registered with ``server`` as EP."""
    client = LwM2MClient(
        tree,
        EP,
        ServerConfig(server.uri, retry=FAST_RETRY),
        bind=("127.0.0.1", 0),
        nodes=operations,
    )
    await client.start()
    try:
        await until(lambda: EP in server.clients, "the gateway registered")
        yield
    finally:
        await client.stop()


@pytest.fixture
async def gw(
    air_kind: AirKind, server: LwM2MTestServer, tmp_path: FsPath
) -> AsyncIterator[AirGateway]:
    async with air_gateway(tmp_path, air_kind) as gw, registered(gw.tree, gw.operations, server):
        yield gw


async def test_read_reaches_the_node(server: LwM2MTestServer, gw: AirGateway) -> None:
    node = await gw.air.add(1, "kitchen")
    await gw.air.measure(node, 18.25)
    response = await server.request(EP, Code.GET, gw.path(node, TEMPERATURE))
    assert response.code == Code.CONTENT
    assert float(response.payload) == 18.25


async def test_read_of_a_sleepy_node_carries_the_time_of_its_last_report(
    server: LwM2MTestServer, gw: AirGateway
) -> None:
    node = await gw.air.add(2, "cellar", sleepy=True)
    measured = time.time() - 100
    await gw.air.report(node, 16.5, measured)
    await gw.air.sleep(node)
    reported = gw.registry.live[node].values[TEMPERATURE]
    if gw.air.keeps_time:
        assert reported.time == measured, "the time the node measured, not the arrival"
    response = await server.request(EP, Code.GET, gw.path(node, TEMPERATURE), accept=112)
    assert response.code == Code.CONTENT
    (record,) = cbor2.loads(response.payload)
    assert record[2] == reported.value == 16.5
    assert record.get(-3, 0) + record.get(6, 0) == reported.time


async def test_failed_writes_answer_the_nodes_code(server: LwM2MTestServer, gw: AirGateway) -> None:
    node = await gw.air.add(1, "kitchen")
    with pytest.raises(LwM2MError) as direct:  # what the node itself answers
        await gw.air.transport.write(node, COLOUR, [Record(COLOUR, "red")])
    colour = str(gw.exposure.paths.upstream(node, COLOUR))
    refused = await server.request(EP, Code.PUT, colour, b"red", content_format=0)
    assert refused.code == direct.value.code
    assert not refused.code.is_successful()
    if gw.air.kind == "ble":
        return  # BlueZ's connect timeout (>= 10 s) is too slow here; see test_ble_gatt.py
    gw.air.out_of_range(node, True)
    gw.operations.timeout = 0.3
    try:
        slow = await server.request(EP, Code.PUT, gw.path(node, SWITCH), b"1", content_format=0)
    finally:
        gw.air.out_of_range(node, False)
    assert slow.code == Code.GATEWAY_TIMEOUT


async def test_a_write_reaches_the_node(server: LwM2MTestServer, gw: AirGateway) -> None:
    node = await gw.air.add(1, "kitchen")
    written = await server.request(EP, Code.PUT, gw.path(node, SWITCH), b"1", content_format=0)
    assert written.code == Code.CHANGED
    assert await gw.air.switch(node) is True
    after = await server.request(EP, Code.GET, gw.path(node, SWITCH))
    assert after.payload == b"1"


async def test_a_sleepy_nodes_write_is_2_04_then_applied_when_it_wakes(
    server: LwM2MTestServer, gw: AirGateway
) -> None:
    node = await gw.air.add(2, "cellar", sleepy=True)
    await gw.air.sleep(node)
    written = await server.request(EP, Code.PUT, gw.path(node, SWITCH), b"1", content_format=0)
    assert written.code == Code.CHANGED
    assert [c.status for c in gw.commands.pending()] == [CommandStatus.PENDING]
    before = await server.request(EP, Code.GET, gw.path(node, SWITCH))
    assert before.payload != b"1", "the server reads back what the node has, not the wish"
    assert await gw.air.switch(node) is False
    await gw.air.wake(node)
    await until(lambda: not gw.commands.pending(), "the command applied")
    assert [c.status for c in gw.commands.history()] == [CommandStatus.APPLIED]
    after = await server.request(EP, Code.GET, gw.path(node, SWITCH))
    assert after.payload == b"1"
    assert await gw.air.switch(node) is True


async def test_an_execute_reaches_the_node_and_its_refusal_is_the_answer(
    server: LwM2MTestServer, gw: AirGateway
) -> None:
    if gw.air.executable:
        pytest.skip(gw.air.executable)
    node = await gw.air.add(1, "kitchen")
    target = gw.path(node, RESET_MIN_MAX)
    done = await server.request(EP, Code.POST, target, b"1='x'", content_format=0)
    assert done.code == Code.CHANGED
    assert gw.air.executed == [(node, "1='x'")]
    refused = await server.request(EP, Code.POST, target, b"9", content_format=0)
    assert refused.code == Code.FORBIDDEN, "the node's own code"
    assert gw.air.executed == [(node, "1='x'")]


async def test_a_sleepy_nodes_execute_is_kept_then_run_when_it_wakes(
    server: LwM2MTestServer, gw: AirGateway
) -> None:
    if gw.air.executable:
        pytest.skip(gw.air.executable)
    node = await gw.air.add(2, "cellar", sleepy=True)
    await gw.air.sleep(node)
    kept = await server.request(EP, Code.POST, gw.path(node, RESET_MIN_MAX), b"", content_format=0)
    assert kept.code == Code.CHANGED
    assert gw.air.executed == []
    await gw.air.wake(node)
    await until(lambda: not gw.commands.pending(), "the command applied")
    assert gw.air.executed == [(node, "")]


async def test_unpaired_nodes_are_not_served(server: LwM2MTestServer, gw: AirGateway) -> None:
    node = await gw.air.add(1, "kitchen")
    path = gw.path(node, TEMPERATURE)
    gw.registry.unpair(node)
    response = await server.request(EP, Code.GET, path)
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


BATTERY = Path((3, 0, 9))


@pytest.mark.parametrize("air_kind", ["ble"], indirect=True)
async def test_a_read_of_a_nodes_battery_reaches_the_node(
    server: LwM2MTestServer, gw: AirGateway
) -> None:
    """The instances mode shows a node's /3/0/9 as /3300/x/5700 (with units and name the
    gateway holds): a Read of the resource and of the instance answer the node's level."""
    node = await gw.air.add(1, "kitchen")
    battery = gw.path(node, BATTERY)
    assert battery.startswith("/3300/") and battery.endswith("/5700")
    level = await server.request(EP, Code.GET, battery)
    assert (level.code, level.payload) == (Code.CONTENT, b"87")
    instance = battery.rsplit("/", 1)[0]
    read = await server.request(EP, Code.GET, instance, accept=112)
    assert read.code == Code.CONTENT
    values = {r.name: r.value for r in decode_senml_cbor(read.payload)}
    assert values == {
        f"{instance}/5700": 87,
        f"{instance}/5701": "%",
        f"{instance}/5750": "kitchen battery",
    }


async def test_an_object_read_asks_each_nodes_instance(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    """The awake node has never reported: the Read of /3303 asks it, as a Read of its
    instance would, instead of showing its instance without a value; the sleepy node's
    instance has its last report with its time, and the gateway's own instance is there."""
    gw = node_gateway(tmp_path)
    measured = float(int(time.time()) - 100)
    gw.sim.report(gw.sleepy, measured)
    awake, sleepy = (
        str(gw.exposure.paths.upstream(n.id, TEMPERATURE)) for n in (gw.awake, gw.sleepy)
    )
    try:
        async with registered(gw.tree, gw.operations, server):
            read = await server.request(EP, Code.GET, "/3303", accept=112)
    finally:
        await gw.commands.close()
    assert read.code == Code.CONTENT
    values = {r.name: (r.value, r.time) for r in decode_senml_cbor(read.payload)}
    assert values["/3303/0/5750"] == ("gateway", None)
    assert isinstance(values[awake][0], float), "the awake node was asked"
    assert values[sleepy] == (gw.sleepy.values(measured)[0].value, measured)
