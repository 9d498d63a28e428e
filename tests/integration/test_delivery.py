"""Store-and-forward end to end: readings from the simulated transport reach the in-repo LwM2M
server by Send, with their original timestamps, in order, across an outage of the server and
across kill -9 of the gateway (issue 4's outage and restart tests)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path as FsPath

from aiocoap.numbers.codes import Code
from clients import FAST_RETRY, gateway_tree

from bridged.delivery import Delivery, DeliveryConfig
from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.exposure.instances import InstancesExposure
from bridged.registry import NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeStore, PairedNode
from bridged.store.readings import Bounds, ReadingStore
from bridged.store.secrets import SecretStore
from bridged.transports.simulated import SimulatedTransport
from peers.lwm2m_server import LwM2MTestServer, SenMLRecord

TESTS = FsPath(__file__).resolve().parent.parent


@dataclass
class Gateway:
    registry: NodeRegistry
    readings: ReadingStore
    exposure: InstancesExposure
    sim: SimulatedTransport
    client: LwM2MClient
    delivery: Delivery

    def burst(self, reports: int, start: float) -> list[tuple[str, float, object]]:
        """``reports`` reports of each node, one second apart from ``start``, committed; the
        (gateway path, time, value) of every reading, in the order handed over."""
        out = []
        for i in range(reports):
            for node in self.sim.nodes.values():
                t = start + i
                self.sim.report(node, t)
                for r in node.values(t):
                    path = self.exposure.gateway_path(node.id, r.path)
                    out.append((str(path), t, r.value))
        self.registry.flush()
        return out


FAST_DELIVERY = DeliveryConfig(max_records=64, retry=0.05, max_retry=0.2, poll=0.05)


@contextlib.asynccontextmanager
async def gateway(
    state: FsPath,
    uri: str,
    bounds: Bounds | None = None,
    *,
    version: str = "1.1",
    mute_send: bool = False,
    config: DeliveryConfig = FAST_DELIVERY,
) -> AsyncIterator[Gateway]:
    """A gateway with two simulated nodes paired, registered with the server at ``uri`` (as
    LwM2M ``version``, with /1/x/23 Mute Send ``mute_send``), delivering with ``config``."""
    conn = connect(state / "state.db")
    readings = ReadingStore(conn, bounds)
    registry = NodeRegistry(NodeStore(conn), SecretStore(state / "s.json"), readings)
    tree = gateway_tree()
    exposure = InstancesExposure(tree, registry.store)
    registry.listen(exposure)
    sim = SimulatedTransport({"nodes": 2}, registry)
    registry.attach(sim)
    for node in sim.nodes.values():
        registry.pair(PairedNode(node.id, f"room-{node.index}", "sim"))
    client = LwM2MClient(
        tree,
        "gw-nodes",
        ServerConfig(
            uri, request_timeout=1.0, retry=FAST_RETRY, version=version, mute_send=mute_send
        ),
        bind=("127.0.0.1", 0),
    )
    delivery = Delivery(client, readings, exposure.gateway_path, config)
    registry.on_commit(delivery.notify)
    await client.start()
    await delivery.start()
    try:
        yield Gateway(registry, readings, exposure, sim, client, delivery)
    finally:
        await delivery.stop()
        await client.stop()


def received(server: LwM2MTestServer) -> list[SenMLRecord]:
    return [
        r for e in server.history if e.kind == "send" and e.code == Code.CHANGED for r in e.records
    ]


async def until(condition: object, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def registered(server: LwM2MTestServer) -> None:
    await until(lambda: "gw-nodes" in server.clients)


async def test_a_burst_goes_in_few_sends_in_order(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    async with gateway(tmp_path, server.uri) as gw:
        await registered(server)
        sent = gw.burst(100, time.time() - 1000)  # 600 readings
        await until(lambda: len(received(server)) >= len(sent))
        got = received(server)
        assert [(r.name, r.time, r.value) for r in got] == sent
        sends = [e for e in server.history if e.kind == "send"]
        assert len(sends) <= len(sent) // 64 + 2, "many readings per Send"
        assert gw.delivery.backlog(1) == 0


async def outage(
    tmp_path: FsPath, bounds: Bounds | None, reports: int
) -> tuple[list, list, Gateway]:
    first = LwM2MTestServer()
    await first.start()
    port = first.port
    async with gateway(tmp_path, first.uri, bounds) as gw:
        await registered(first)
        await first.stop()  # the server goes down
        sent = gw.burst(reports, time.time() - 1000)
        await asyncio.sleep(0)  # delivery tries, and finds no server
        async with LwM2MTestServer(port=port) as back:
            # The server came back without the registration: the Send gets 4.04, the client
            # registers again, and the backlog follows.
            expected = sent if bounds is None else sent[-bounds.max_count :]
            await until(lambda: len(received(back)) >= len(expected))
            return sent, received(back), gw


async def test_outage_every_reading_arrives_with_its_time_in_order(tmp_path: FsPath) -> None:
    sent, got, gw = await outage(tmp_path, None, 50)
    assert [(r.name, r.time, r.value) for r in got] == sent
    assert gw.readings.dropped() == {}
    assert gw.delivery.stats(1).failed_sends >= 1


async def test_outage_beyond_the_bounds_drops_the_oldest_and_counts_them(
    tmp_path: FsPath,
) -> None:
    bounds = Bounds(max_count=90)
    sent, got, gw = await outage(tmp_path, bounds, 25)  # 150 readings, 60 too many
    assert [(r.name, r.time, r.value) for r in got] == sent[-90:]
    assert gw.readings.dropped() == {"dropped_count": 60}


async def test_restart_after_kill_9_loses_no_reading(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    """A real gateway process (python -m peers.node_gateway) is killed with SIGKILL while
    readings stream; restarted, its nodes keep their instances and every reading committed
    before the kill reaches the server, with the time it was measured."""

    async def start() -> tuple[asyncio.subprocess.Process, dict[str, list[str]]]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "peers.node_gateway",
            str(tmp_path),
            server.uri,
            stdout=asyncio.subprocess.PIPE,
            cwd=TESTS,
        )
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = await proc.stdout.readline()
        return proc, json.loads(line)["instances"]

    committed: set[tuple[str, float]] = set()

    async def follow(proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            committed.update((p, t) for p, t in json.loads(line)["committed"])

    proc, instances = await start()
    reader = asyncio.create_task(follow(proc))
    try:
        await until(lambda: len(committed) >= 300 and received(server))
        # The server starts refusing Sends, so that a backlog builds up before the kill.
        server.send_code = Code.SERVICE_UNAVAILABLE
        backlog_from = len(committed)
        await until(lambda: len(committed) >= backlog_from + 300)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await reader
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = set(committed)
    delivered_before = {(r.name, r.time) for r in received(server)}
    assert before - delivered_before, "the kill came mid-stream, with readings not yet sent"
    server.send_code = None

    again, instances_again = await start()
    reader = asyncio.create_task(follow(again))
    try:
        assert instances_again == instances
        await until(lambda: before <= {(r.name, r.time) for r in received(server)})
    finally:
        again.kill()
        await again.wait()
        await reader
