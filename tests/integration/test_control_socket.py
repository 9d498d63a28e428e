"""The control socket served in-process by a real Gateway (SQLite in tmp_path, the simulated
transport, the in-repo LwM2M server): the streamed methods (scan, subscribe), the tree
operations, the errors, and the socket's mode."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from unittest.mock import ANY

import pytest
from aiocoap.numbers.codes import Code
from clients import FAST_RETRY

from bridged import cli, verbs
from bridged.app import Gateway
from bridged.config import Config, ConfigError, GatewaySection, StoreSection, TransportSection
from bridged.control import FAILED, INVALID_PARAMS, METHOD_NOT_FOUND, REFUSED, ControlServer
from bridged.engine.client import ServerConfig
from bridged.objects.paths import Path as PathId
from bridged.store.nodes import NodeId
from bridged.transports.base import Heard
from bridged.verb import TEXT, Param, Verb
from peers.gateway import FACTS
from peers.lwm2m_server import LwM2MTestServer


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.next_id = 0

    async def request(self, method: str, **params: Any) -> int:
        self.next_id += 1
        line = {"id": self.next_id, "method": method, "params": params}
        self.writer.write(json.dumps(line).encode() + b"\n")
        await self.writer.drain()
        return self.next_id

    async def line(self, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            data = await self.reader.readline()
        assert data, "the daemon closed the connection"
        message: dict[str, Any] = json.loads(data)
        return message

    async def answer(self, rid: int) -> dict[str, Any]:
        """The final answer to request ``rid`` (events before it are skipped)."""
        while True:
            message = await self.line()
            if message.get("id") == rid and "event" not in message:
                return message

    async def call(self, method: str, **params: Any) -> Any:
        answer = await self.answer(await self.request(method, **params))
        assert "result" in answer, answer
        return answer["result"]

    async def error(self, method: str, **params: Any) -> dict[str, Any]:
        answer = await self.answer(await self.request(method, **params))
        assert "error" in answer, answer
        error: dict[str, Any] = answer["error"]
        return error


@pytest.fixture
async def gateway(tmp_path: Path, server: LwM2MTestServer) -> AsyncIterator[Gateway]:
    config = Config(
        path=tmp_path / "bridged.toml",
        gateway=GatewaySection(
            "gw-control", state_dir=tmp_path / "state", runtime_dir=tmp_path / "run"
        ),
        servers=(ServerConfig(server.uri, request_timeout=5, retry=FAST_RETRY),),
        transports=(TransportSection("sim", MappingProxyType({"nodes": 3, "interval": 0.1})),),
    )
    gw = Gateway(config, facts=FACTS)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


@pytest.fixture
async def control(gateway: Gateway, tmp_path: Path) -> AsyncIterator[ControlServer]:
    srv = ControlServer(gateway, tmp_path / "run" / "control.sock")
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def conn(control: ControlServer) -> AsyncIterator[Connection]:
    reader, writer = await asyncio.open_unix_connection(str(control.path))
    try:
        yield Connection(reader, writer)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_the_socket_is_0660(control: ControlServer) -> None:
    assert stat.S_IMODE(control.path.stat().st_mode) == 0o660
    assert stat.S_ISSOCK(control.path.stat().st_mode)


async def test_a_second_daemon_on_the_same_socket_is_refused(
    control: ControlServer, gateway: Gateway
) -> None:
    with pytest.raises(Exception, match="another bridged is running"):
        await ControlServer(gateway, control.path).start()


async def test_scan_streams_progress_and_what_is_heard(conn: Connection) -> None:
    rid = await conn.request("scan", seconds=1.5)
    progress, heard = [], []
    while True:
        message = await conn.line()
        if message.get("event") == "progress":
            progress.append(message["data"])
        elif message.get("event") == "node.heard":
            heard.append(message["data"]["id"])
        else:
            break
    assert message["id"] == rid
    result = message["result"]
    assert {n["id"] for n in result} == {"sim:0001", "sim:0002", "sim:0003"} == set(heard)
    assert all(not n["paired"] for n in result)
    assert progress[0]["elapsed"] < 1.5 and progress[-1]["elapsed"] == 1.5 and len(progress) >= 2
    assert progress[-1]["heard"] == 3
    assert [p["elapsed"] for p in progress] == sorted(p["elapsed"] for p in progress)


async def test_subscribe_streams_pairing_and_readings(conn: Connection, gateway: Gateway) -> None:
    await conn.call("subscribe", events=["node", "readings"])
    result = await conn.call("pair", node="sim:0002", name="shed", keys={"bindkey": "00ff"})
    assert result["name"] == "shed"
    kinds: dict[str, dict[str, Any]] = {}
    while "readings" not in kinds:
        message = await conn.line()
        if "event" in message:
            kinds[message["event"]] = message["data"]
    assert kinds["node.paired"] == {"id": "sim:0002", "name": "shed"}
    assert kinds["readings"]["id"] == "sim:0002"
    shown = await conn.call("node.show", node="sim:0002")
    assert shown["secrets"] == ["bindkey"]  # names only: a key never leaves the daemon
    assert "00ff" not in json.dumps(shown)
    await conn.call("unsubscribe")
    await conn.call("unpair", node="sim:0002")


async def test_tree_operations(conn: Connection, gateway: Gateway) -> None:
    """In the instances mode every object but the housekeeping ones holds nodes' instances:
    nothing is created there; the tree is listed and a non-executable resource is 4.05."""
    error = await conn.error("create", path="/3303")
    assert error["coap"] == "4.05", "the instances mode's /3303 holds the nodes' instances"
    resources = await conn.call("ls", path="/3/0")
    assert {"path": "/3/0/0", "name": "Manufacturer", "operations": "R"} in resources
    error = await conn.error("exec", path="/3/0/0")
    assert error["code"] == FAILED and error["coap"] == "4.05"


async def test_tree_operations_on_the_gateways_own_objects(
    devices: tuple[Gateway, Connection],
) -> None:
    """In the gateway mode the unprefixed objects are the gateway's own: created with their
    mandatory resources, written, read and deleted."""
    _, conn = devices
    created = await conn.call("create", path="/3201", values={"5550": "1"})
    assert created == {"created": "/3201/0"}
    await conn.call("write", path="/3201/0/5550", value=False)
    assert await conn.call("read", path="/3201/0/5550") == [
        {"path": "/3201/0/5550", "value": False}
    ]
    await conn.call("delete", path="/3201/0")
    error = await conn.error("read", path="/3201/0")
    assert error["coap"] == "4.04"


async def test_create_without_mandatory_resources_is_refused_as_a_servers_create(
    devices: tuple[Gateway, Connection], server: LwM2MTestServer
) -> None:
    """``bridgectl create /3303`` (the gateway mode's own /3303) would make a temperature
    instance without its Sensor Value (mandatory, and read-only: nothing would ever set it):
    4.00, as a server's Create."""
    gateway, conn = devices
    await server.next_event("register")
    error = await conn.error("create", path="/3303")
    assert error["code"] == FAILED and error["coap"] == "4.00", error
    assert "5700 (Sensor Value)" in error["message"]
    reply = await server.request("gw-25", Code.POST, "/3303", b"\x80", content_format=112)
    assert reply.code == Code.BAD_REQUEST
    assert "5700 (Sensor Value)" in reply.payload.decode()
    assert not gateway.tree.has(PathId((3303, 0))), "no instance was made"
    error = await conn.error("create", path="/3201/4")
    assert error["coap"] == "4.00" and "5550 (Digital Output State)" in error["message"]
    assert await conn.call("create", path="/3201/4", values={"5550": "0"}) == {"created": "/3201/4"}


async def test_a_write_of_a_read_only_resource_is_405_and_never_reaches_the_server(
    conn: Connection, gateway: Gateway, server: LwM2MTestServer
) -> None:
    """``bridgectl write /3303/0/5700 -40`` of a node's sensor value was accepted, and a Send
    then delivered -40 as the node's reading: 4.05, as a server's Write of it is, and the
    Send carries what the node measured."""
    await server.next_event("register")
    node = NodeId("sim", "0001")
    await gateway.pair(node)
    temperature = PathId((3303, 0, 5700))
    live = gateway.registry.live[node]
    async with asyncio.timeout(10):
        while (upstream := gateway.exposure.paths.upstream(node, temperature)) is None:
            await asyncio.sleep(0.01)
        while temperature not in live.values:
            await asyncio.sleep(0.01)
        while not (await conn.call("status"))["servers"][0]["registered"]:
            await asyncio.sleep(0.01)
    error = await conn.error("write", path=str(upstream), value=-40)
    assert error["code"] == FAILED and error["coap"] == "4.05", error
    reply = await server.request("gw-control", Code.PUT, str(upstream), b"-40", content_format=0)
    assert reply.code == Code.METHOD_NOT_ALLOWED, "the same code as a server's Write"
    manufacturer = gateway.tree.get(PathId((3, 0, 0)))
    error = await conn.error("write", path="/3/0/0", value="Evil Corp")
    assert error["coap"] == "4.05", "the gateway's own read-only resources alike"
    assert (await conn.call("send", paths=[str(upstream), "/3/0/0"]))["status"] == "delivered"
    names = {str(upstream), "/3/0/0"}
    send = await server.next_event("send")
    while {r.name for r in send.records} != names:  # the node's readings, delivered anyway
        send = await server.next_event("send")
    values = {r.name: r.value for r in send.records}
    assert values["/3/0/0"] == manufacturer != "Evil Corp"
    sent = values[str(upstream)]
    assert isinstance(sent, float) and sent > -39, "the node's own measurement, not -40"


async def test_errors(conn: Connection) -> None:
    assert (await conn.error("frobnicate"))["code"] == METHOD_NOT_FOUND
    error = await conn.error("read", pth="/3")
    assert error["code"] == INVALID_PARAMS and "pth" in error["message"]
    assert await conn.call("commands.pending") == []
    error = await conn.error("commands.history", node="nocolon")
    assert error["code"] == INVALID_PARAMS and "params.node" in error["message"]
    error = await conn.error("send", paths=[])
    assert error["code"] == INVALID_PARAMS
    conn.writer.write(b"{not json\n")
    message = await conn.line()
    assert message["error"]["code"] == -32700
    # The connection survives a bad line.
    assert (await conn.call("status"))["endpoint"] == "gw-control"


async def test_observe_list_send_and_update(
    conn: Connection, gateway: Gateway, server: LwM2MTestServer
) -> None:
    await server.next_event("register")
    async with asyncio.timeout(10):  # the client has the server's answer
        while not (await conn.call("status"))["servers"][0]["registered"]:
            await asyncio.sleep(0.01)
    observation = server.observe("gw-control", "/3/0/13")
    await observation.response
    listed = await conn.call("observe.list")
    assert listed[0]["observations"] == [["/3/0/13"]]
    result = await conn.call("send", paths=["/3/0/0"])
    assert result["status"] == "delivered"
    send = await server.next_event("send")
    assert [r.name for r in send.records] == ["/3/0/0"]
    assert (await conn.call("update"))["updating"] == [server.uri]
    await server.next_event("update")
    error = await conn.error("update", server=9)
    assert error["code"] == FAILED and "9" in error["message"]
    observation.observation.cancel()


async def test_reload_applies_what_it_can(gateway: Gateway) -> None:
    old = gateway.config
    sim = TransportSection("sim", MappingProxyType({"nodes": 1, "interval": 0.1}))
    moved = ServerConfig("coap://127.0.0.1:9", short_server_id=2)
    pending = await gateway.reload(
        replace(old, transports=(sim,), store=StoreSection(max_readings=10), servers=(moved,))
    )
    assert pending == ["server"]
    assert gateway.config.servers == old.servers  # kept until a restart
    assert gateway.readings.bounds.max_count == 10
    assert gateway.transport_state == {"sim": "up"}
    assert len(gateway.transports["sim"].nodes) == 1  # type: ignore[attr-defined]
    bad = TransportSection("sim", MappingProxyType({"nodes": -1}))
    with pytest.raises(ConfigError, match=r"transport\.sim"):
        await gateway.reload(replace(old, transports=(bad,)))
    assert gateway.config.transports == (sim,) and gateway.transport_state == {"sim": "up"}


def gateway_mode(tmp_path: Path, server: LwM2MTestServer, **sim: Any) -> Config:
    """A configuration in the gateway exposure mode (nodes behind ``/devN`` prefixes) over the
    simulated transport configured by ``sim``."""
    return Config(
        path=tmp_path / "bridged.toml",
        gateway=GatewaySection(
            "gw-25", exposure="gateway", state_dir=tmp_path / "state", runtime_dir=tmp_path / "run"
        ),
        servers=(ServerConfig(server.uri, request_timeout=5, retry=FAST_RETRY),),
        transports=(TransportSection("sim", MappingProxyType(sim)),),
    )


async def test_the_gateway_exposure_mode_serves_paired_nodes_at_their_prefix(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """``exposure = "gateway"``: Register carries /25 and the gateway's own objects only; a
    paired node appears as a /25 instance and its values at its prefix."""
    gw = Gateway(gateway_mode(tmp_path, server, nodes=1, interval=0.1), facts=FACTS)
    await gw.start()
    try:
        registered = await server.next_event("register")
        assert b"</25>" in registered.payload and b"</3303" not in registered.payload
        await gw.pair(NodeId("sim", "0001"))
        await server.next_event("update")
        prefix = (await server.request("gw-25", Code.GET, "/25/0/1")).payload.decode()
        assert prefix.startswith("dev")
        for _ in range(100):
            reply = await server.request("gw-25", Code.GET, f"/{prefix}/3303/0/5700")
            if reply.code == Code.CONTENT:
                break
            await asyncio.sleep(0.05)
        assert reply.code == Code.CONTENT and float(reply.payload) > -50
    finally:
        await gw.stop()


async def shown(gateway: Gateway, node: NodeId, local: PathId) -> PathId:
    """Where ``node``'s ``local`` path is shown, once it is."""
    async with asyncio.timeout(10):
        while (upstream := gateway.exposure.paths.upstream(node, local)) is None:
            await asyncio.sleep(0.01)
    return upstream


async def test_a_nodes_instance_is_not_deleted_here(conn: Connection, gateway: Gateway) -> None:
    node = NodeId("sim", "0001")
    await gateway.pair(node)
    local = PathId((3303, 0))
    upstream = await shown(gateway, node, local)
    error = await conn.error("delete", path=str(upstream))
    assert error["coap"] == "4.05"
    assert await conn.call("read", path=f"{upstream}/5750") == [
        {"path": f"{upstream}/5750", "value": "sim-1"}
    ]


async def test_send_takes_a_nodes_prefixed_paths(tmp_path: Path, server: LwM2MTestServer) -> None:
    """``bridgectl send /devN/...``: the server receives the node's value at that path."""
    gw = Gateway(gateway_mode(tmp_path, server, nodes=1, interval=0.1), facts=FACTS)
    await gw.start()
    srv = ControlServer(gw, tmp_path / "run" / "control.sock")
    await srv.start()
    reader, writer = await asyncio.open_unix_connection(str(srv.path))
    try:
        await server.next_event("register")
        node = NodeId("sim", "0001")
        await gw.pair(node)
        temperature = PathId((3303, 0, 5700))
        live = gw.registry.live[node]
        async with asyncio.timeout(10):
            while temperature not in live.values:
                await asyncio.sleep(0.01)
            while not (await Connection(reader, writer).call("status"))["servers"][0]["registered"]:
                await asyncio.sleep(0.01)
        upstream = gw.exposure.paths.upstream(node, temperature)
        assert upstream is not None and upstream.prefix is not None
        conn = Connection(reader, writer)
        result = await conn.call("send", paths=[str(upstream)])
        assert result["status"] == "delivered"
        names = [str(upstream)]
        send = await server.next_event("send")
        while [r.name for r in send.records] != names:  # the node's readings, delivered anyway
            send = await server.next_event("send")
        (record,) = send.records
        reported = live.values[temperature]
        assert isinstance(record.value, float) and isinstance(reported.value, float)
        assert abs(record.value - reported.value) < 0.05, "the node's value (it drifts slowly)"
    finally:
        writer.close()
        await writer.wait_closed()
        await srv.stop()
        await gw.stop()


async def test_write_and_exec_of_a_nodes_resource_reach_the_node(
    conn: Connection, gateway: Gateway
) -> None:
    node = NodeId("sim", "0001")
    await gateway.pair(node)
    upstream = await shown(gateway, node, PathId((3311, 0, 5850)))
    simulated = gateway.transports["sim"].nodes[node]  # type: ignore[attr-defined]
    assert simulated.switch is False
    assert await conn.call("write", path=str(upstream), value=True) == {"written": str(upstream)}
    assert simulated.switch is True, "the node itself took the write"
    error = await conn.error("exec", path=f"{upstream.parent}/5850")
    assert error["coap"] == "4.05" and "not executable" in error["message"], "a server's 4.05"


async def test_bridgectl_write_of_a_lifetime_out_of_range_is_refused_and_never_sent(
    conn: Connection, server: LwM2MTestServer
) -> None:
    await server.next_event("register")
    async with asyncio.timeout(10):
        while not (await conn.call("status"))["servers"][0]["registered"]:
            await asyncio.sleep(0.01)
    for value in (-101, 0):
        error = await conn.error("write", path="/1/0/1", value=value)
        assert error["code"] == FAILED and error["coap"] == "4.00", error
    await conn.call("update")
    assert (await server.next_event("update")).query == {}, "no lt= in the Update"


@pytest.fixture
async def devices(
    tmp_path: Path, server: LwM2MTestServer
) -> AsyncIterator[tuple[Gateway, Connection]]:
    """A gateway in the gateway mode whose simulated nodes report only when a test makes them
    (``report``), and a connection to its control socket."""
    config = gateway_mode(tmp_path, server, nodes=2, sleepy=1, interval=86400)
    gw = Gateway(config, facts=FACTS)
    await gw.start()
    srv = ControlServer(gw, tmp_path / "run" / "control.sock")
    await srv.start()
    reader, writer = await asyncio.open_unix_connection(str(srv.path))
    try:
        yield gw, Connection(reader, writer)
    finally:
        writer.close()
        await writer.wait_closed()
        await srv.stop()
        await gw.stop()


async def test_ls_and_read_of_a_nodes_prefixed_path_go_to_the_node(
    devices: tuple[Gateway, Connection],
) -> None:
    """``bridgectl ls /devN/...`` lists the end device's tree; ``read`` asks the node itself
    (its switch flipped on the node, never reported, is what the read answers), or, for a
    sleepy node, answers its last report with the time it was made; ``create`` there is
    4.05."""
    gateway, conn = devices
    awake, sleepy = NodeId("sim", "0001"), NodeId("sim", "0002")
    await gateway.pair(awake)
    await gateway.pair(sleepy, sleepy=True)
    switch = await shown(gateway, awake, PathId((3311, 0, 5850)))
    assert switch.prefix is not None
    listed = await conn.call("ls", path=str(switch.parent))
    name = {"path": f"{switch.parent}/5750", "name": "Application Type", "operations": "RW"}
    assert name in listed, "the end device's tree (the node has reported nothing yet)"
    objects = await conn.call("ls", path=f"/{switch.prefix}")
    assert "/3311" in [o["path"] for o in objects]
    transport = gateway.transports["sim"]
    transport.nodes[awake].switch = True  # type: ignore[attr-defined]
    assert await conn.call("read", path=str(switch)) == [
        {"path": str(switch), "value": True, "time": ANY}
    ], "the node's own value, not the gateway's copy (it has none)"
    instance = await conn.call("read", path=str(switch.parent))
    assert {"path": f"{switch.parent}/5750", "value": "sim-1"} in instance, "the gateway's own"
    assert {"path": str(switch), "value": True, "time": ANY} in instance

    temperature = await shown(gateway, sleepy, PathId((3303, 0, 5700)))
    made = time.time() - 100
    simulated = transport.nodes[sleepy]  # type: ignore[attr-defined]
    transport.report(simulated, made)  # type: ignore[attr-defined]
    (value,) = simulated.values(made)[:1]
    assert await conn.call("read", path=str(temperature)) == [
        {"path": str(temperature), "value": value.value, "time": made}
    ]
    error = await conn.error("create", path=f"/{switch.prefix}/3303")
    assert error["coap"] == "4.05"


# -- issue 18.8: the read-only role and the permit-join countdown -------------------------------


async def test_the_monitor_socket_watches_and_never_changes(
    control: ControlServer, gateway: Gateway
) -> None:
    """monitor.sock, beside control.sock: status, nodes, reads and events; every method that
    changes the gateway is REFUSED, naming the socket that may."""
    path = control.monitor_path
    assert path.name == "monitor.sock" and path.parent == control.path.parent
    assert stat.S_IMODE(path.stat().st_mode) == 0o660 and stat.S_ISSOCK(path.stat().st_mode)
    reader, writer = await asyncio.open_unix_connection(str(path))
    monitor = Connection(reader, writer)
    try:
        assert (await monitor.call("status"))["endpoint"] == "gw-control"
        assert await monitor.call("nodes") == []
        assert (await monitor.call("read", path="/3/0/0"))[0]["path"] == "/3/0/0"
        assert await monitor.call("subscribe", events=["node"]) == {"subscribed": ["node"]}
        for method, params in [
            ("pair", {"node": "sim:0002"}),
            ("write", {"path": "/3/0/15", "value": "UTC"}),
            ("exec", {"path": "/3/0/4"}),
            ("permit_join", {"seconds": 30}),
            ("create", {"path": "/3201", "values": {"5550": "1"}}),
            ("stop", {}),
        ]:
            error = await monitor.error(method, **params)
            assert error["code"] == REFUSED, (method, error)
            assert "read-only" in error["message"] and str(control.path) in error["message"]
        assert NodeId("sim", "0002") not in gateway.registry.live
        assert gateway.tree.get(PathId((3, 0, 15))) != "UTC" and gateway.client_running
    finally:
        writer.close()
        await writer.wait_closed()


def _runs_as_nobody() -> bool:
    return os.getuid() == 0 and os.path.exists(SYSTEM_PYTHON) and _world_readable(REPO)


def _world_readable(path: Path) -> bool:
    return all(p.stat().st_mode & 0o005 == 0o005 for p in [path, *path.parents])


REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"


async def bridgectl(socket_path: Path, *argv: str, **popen: Any) -> asyncio.subprocess.Process:
    """bridgectl as a user runs it, in a process of its own; it needs the standard library
    only, so a user without the venv (nobody) runs it with the system Python."""
    python = sys.executable
    if popen.pop("as_nobody", False):
        python = SYSTEM_PYTHON
        popen.update(user="nobody", group="nogroup", extra_groups=[])
    return await asyncio.create_subprocess_exec(
        python,
        "-m",
        "bridged.cli",
        "--socket",
        str(socket_path),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        **popen,
    )


@pytest.mark.skipif(not _runs_as_nobody(), reason="needs root, to run bridgectl as nobody")
async def test_a_monitoring_user_runs_status_and_events_but_not_pair_or_write(
    gateway: Gateway,
) -> None:
    """nobody, a member of the monitor socket's group but not of the control socket's:
    bridgectl finds control.sock closed to it and watches through monitor.sock."""
    run = Path(tempfile.mkdtemp(prefix="bridged-monitor-"))
    try:
        run.chmod(0o751)
        control = ControlServer(gateway, run / "control.sock", monitor_group="nogroup")
        await control.start()
        try:
            status = await bridgectl(control.path, "status", "--json", as_nobody=True)
            out, err = await status.communicate()
            assert status.returncode == 0, err
            assert json.loads(out)["endpoint"] == "gw-control"
            events = await bridgectl(control.path, "events", as_nobody=True)
            assert events.stdout is not None
            async with asyncio.timeout(10):
                while not gateway.events.wanted("node.paired"):
                    await asyncio.sleep(0.01)
            await gateway.pair(NodeId("sim", "0003"))
            async with asyncio.timeout(10):  # every event streams: the nodes heard come too
                line = ""
                while " node.paired " not in line:
                    line = (await events.stdout.readline()).decode()
            assert " node.paired id=sim:0003 " in line, line
            events.send_signal(signal.SIGINT)
            assert await events.wait() == 0
            for argv in (("pair", "sim:0002"), ("write", "/3/0/15", "UTC")):
                refused = await bridgectl(control.path, *argv, as_nobody=True)
                _, err = await refused.communicate()
                assert refused.returncode == 1 and b"read-only" in err, (argv, err)
            assert NodeId("sim", "0002") not in gateway.registry.live
        finally:
            await control.stop()
    finally:
        shutil.rmtree(run, ignore_errors=True)


async def test_permit_join_counts_down_shows_each_join_and_ends_with_the_window(
    control: ControlServer, gateway: Gateway
) -> None:
    proc = await bridgectl(control.path, "permit-join", "1.5", "--wait")
    assert proc.stdout is not None
    async with asyncio.timeout(10):
        while not gateway.registry.join_open:
            await asyncio.sleep(0.01)
    stranger = NodeId("sim", "0009")
    assert gateway.registry.admit(Heard(stranger, time.time(), name="stranger"))
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert out.decode().splitlines() == [
        "joined sim:0009 (stranger)",
        "permit-join closed: 1 joined",
    ]
    assert not gateway.registry.join_open


async def test_ctrl_c_during_permit_join_closes_the_window(
    control: ControlServer, gateway: Gateway
) -> None:
    proc = await bridgectl(control.path, "permit-join", "600", "--wait", "--json")
    async with asyncio.timeout(10):
        while not gateway.registry.join_open:
            await asyncio.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = await proc.communicate()
    assert proc.returncode == 130, err
    assert json.loads(out.decode().splitlines()[-1]) == {"closed": "interrupted", "joined": []}
    assert not gateway.registry.join_open, "Ctrl-C closed the window"
    assert b"Traceback" not in err


async def test_a_verb_added_to_the_table_is_a_bridgectl_command_end_to_end(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One declaration and the gateway call it makes: the socket serves it and bridgectl
    offers it (its help, its params, its text and JSON output), with no other edit."""
    count = Verb(
        "node.count",
        "count the paired nodes",
        lambda gw, a, s: {
            "paired": len([n for n in gw.node_list() if n["transport"] == a.transport])
        },
        params=(Param("transport", TEXT, "only this transport's", "sim"),),
        show=lambda r, o: o.write(f"{r['paired']} paired\n"),
    )
    monkeypatch.setattr(verbs, "VERBS", (*verbs.VERBS, count))
    control = ControlServer(gateway, tmp_path / "run" / "control.sock")
    await control.start()
    try:
        await gateway.pair(NodeId("sim", "0002"))
        parser = cli.build_parser()
        assert "count the paired nodes" in parser.parse_args(["node", "count"]).verb.help

        def bridgectl(*argv: str) -> tuple[int, str]:
            args = cli.build_parser().parse_args(argv)
            client = cli.Client(str(control.path), 5)
            out, err = io.StringIO(), io.StringIO()
            try:
                return cli.run(args, client, out, err), out.getvalue()
            finally:
                client.close()

        assert await asyncio.to_thread(bridgectl, "node", "count") == (0, "1 paired\n")
        argv = ("node", "count", "--transport", "ble", "--json")
        code, out = await asyncio.to_thread(bridgectl, *argv)
        assert (code, json.loads(out)) == (0, {"paired": 0})
    finally:
        await control.stop()


async def test_a_key_is_checked_by_its_transports_declaration_even_when_not_configured(
    conn: Connection,
) -> None:
    """This gateway runs only the simulated transport; a BLE node paired with a bind key of
    the wrong length is still refused, as its transport declares it (16 bytes)."""
    bad = await conn.error("pair", node="ble:A4:C1:38:00:11:22", keys={"bindkey": "00ff"})
    assert bad["code"] == INVALID_PARAMS and "16 bytes" in bad["message"]
    assert "00ff" not in bad["message"]
    assert await conn.call("nodes") == []
