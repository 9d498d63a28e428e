"""Store-and-forward end to end: readings from a transport reach the in-repo LwM2M server by
Send, with their original timestamps, in order, across an outage of the server (on every
transport of tests/airs.py) and across kill -9 of the gateway (issue 4's outage and restart
tests)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path as FsPath

import pytest
from aiocoap.numbers.codes import Code
from airs import (
    AIRS,
    TEMPERATURE,
    Air,
    AirKind,
    HandedOver,
    Rcp,
    SimAir,
    air_kind_fixture,  # noqa: F401 (fixture)
    gateway_paths,
    make_air,
)
from clients import FAST_RETRY, free_udp_port, gateway_tree
from emulators.bluez import bluez_bus, bluez_fixture  # noqa: F401 (fixtures)

from bridged.delivery import Delivery, DeliveryConfig
from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.registration import EventKind
from bridged.exposure.instances import InstancesExposure
from bridged.objects.values import Record
from bridged.registry import COMMIT_WINDOW, NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeId, NodeStore, PairedNode
from bridged.store.readings import Bounds, ReadingStore
from bridged.store.secrets import SecretStore
from bridged.transports.ieee802154.spinel import Command
from peers.lwm2m_server import LwM2MTestServer, SenMLRecord, ServerEvent

TESTS = FsPath(__file__).resolve().parent.parent
SIM = AirKind("sim")


@dataclass
class Gateway:
    registry: NodeRegistry
    readings: ReadingStore
    exposure: InstancesExposure
    air: Air
    client: LwM2MClient
    delivery: Delivery
    handed: HandedOver
    nodes: list[NodeId]

    checked: int = 0
    """How many of ``handed.readings`` an earlier ``burst`` returned."""

    def burst(self, reports: int, start: float) -> list[tuple[str, float, object]]:
        """``reports`` reports of each simulated node, one second apart from ``start``,
        committed; the (gateway path, time, value) of every reading handed over since the last
        burst (the first includes the reports that came with pairing), in order."""
        assert isinstance(self.air, SimAir)
        sim = self.air.sim
        for i in range(reports):
            for node in sim.nodes.values():
                sim.report(node, start + i)
        self.registry.flush()
        out = self.handed_since(self.checked)
        self.checked = len(self.handed.readings)
        return out

    def handed_since(self, mark: int) -> list[tuple[str, float, object]]:
        return gateway_paths(self.handed.readings[mark:], self.exposure.paths.upstream)


FAST_DELIVERY = DeliveryConfig(max_records=64, retry=0.05, max_retry=0.2, poll=0.05)


@contextlib.asynccontextmanager
async def gateway(
    state: FsPath,
    uri: str,
    bounds: Bounds | None = None,
    kind: AirKind = SIM,
    *,
    version: str = "1.1",
    mute_send: bool = False,
    config: DeliveryConfig = FAST_DELIVERY,
    commit_window: float = COMMIT_WINDOW,
) -> AsyncIterator[Gateway]:
    """A gateway with two paired nodes on the ``kind`` air, registered with the server at
    ``uri`` (as LwM2M ``version``, with /1/x/23 Mute Send ``mute_send``), delivering with
    ``config``, its group commit's window ``commit_window``."""
    conn = connect(state / "state.db")
    readings = ReadingStore(conn, bounds)
    registry = NodeRegistry(
        NodeStore(conn), SecretStore(state / "s.json"), readings, commit_window=commit_window
    )
    tree = gateway_tree()
    exposure = InstancesExposure(tree, registry.store)
    registry.listen(exposure)
    handed = HandedOver(registry)
    air = make_air(kind.kind, registry, state, kind.bluez)
    client = LwM2MClient(
        tree,
        "gw-nodes",
        ServerConfig(
            uri, request_timeout=1.0, retry=FAST_RETRY, version=version, mute_send=mute_send
        ),
        bind=("127.0.0.1", 0),
    )
    delivery = Delivery(client, readings, exposure.paths.upstream, config)
    registry.on_commit(delivery.notify)
    await air.start()
    committing = asyncio.create_task(registry.run())
    try:
        nodes = [await air.add(i, f"room-{i}") for i in (1, 2)]
        await client.start()
        await delivery.start()
        yield Gateway(registry, readings, exposure, air, client, delivery, handed, nodes)
    finally:
        committing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await committing
        await delivery.stop()
        await client.stop()
        await air.stop()


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


async def delivered(gw: Gateway) -> None:
    """Everything handed over so far is durable and delivered."""
    gw.registry.flush()
    await until(lambda: gw.delivery.backlog(1) == 0)


def sends(server: LwM2MTestServer) -> list[ServerEvent]:
    return [e for e in server.history if e.kind == "send"]


async def test_a_burst_goes_in_few_sends_in_order(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    async with gateway(tmp_path, server.uri) as gw:
        await registered(server)
        await delivered(gw)  # the nodes' first reports
        assert len(received(server)) == len(gw.burst(0, 0.0))  # (a burst of none: those)
        before, sends_before = len(received(server)), len(sends(server))
        sent = gw.burst(100, time.time() - 1000)  # 600 readings
        await until(lambda: len(received(server)) >= before + len(sent))
        got = received(server)[before:]
        assert [(r.name, r.time, r.value) for r in got] == sent
        assert len(sends(server)) - sends_before <= len(sent) // 64 + 2, "many readings per Send"
        # The server records the last Send before its acknowledgement moves the gateway's cursor.
        await until(lambda: gw.delivery.backlog(1) == 0)


async def test_a_backlog_goes_in_full_block1_blocks(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    """A backlog larger than a Send: every Send but the last fills each Block1 block it takes
    (within a record of the end of its last one), so the backlog takes one message per 1,024
    bytes; each Send at the server came in as many requests as its blocks."""
    config = replace(FAST_DELIVERY, max_records=256)
    async with gateway(tmp_path, server.uri, config=config) as gw:
        await registered(server)
        await delivered(gw)  # the nodes' first reports
        gw.burst(0, 0.0)  # (a burst of none: those)
        before, first = len(received(server)), len(sends(server))
        sent = gw.burst(100, time.time() - 1000)  # 600 readings, 3 to 4 Sends
        await until(lambda: len(received(server)) >= before + len(sent))
        assert [(r.name, r.time, r.value) for r in received(server)[before:]] == sent
        backlog = sends(server)[first:]
        sizes = [len(e.payload) for e in backlog]
        assert len(backlog) >= 3, sizes
        for e in backlog:
            assert e.messages == -(-len(e.payload) // 1024), "blocks of 1,024 bytes"
        # a record here is about 30 bytes: n, v and bt
        assert all(s > 1024 and -s % 1024 < 64 for s in sizes[:-1]), sizes
        assert sum(e.messages for e in backlog) <= sum(sizes) // 1024 + 1


async def outage(
    tmp_path: FsPath, kind: AirKind, bounds: Bounds | None, reports: int
) -> tuple[list, list, Gateway]:
    """The server goes down; each node reports ``reports`` times through the air; the server
    comes back. Returns what was handed over meanwhile, what the server got, and the gateway."""
    first = LwM2MTestServer()
    await first.start()
    port = first.port
    async with gateway(tmp_path, first.uri, bounds, kind) as gw:
        await registered(first)
        await delivered(gw)  # what came before
        await first.stop()  # the server goes down
        mark = len(gw.handed.readings)
        start = time.time() - 1000
        for i in range(reports):
            for n, node in enumerate(gw.nodes):
                await gw.air.report(node, 10.0 + n * 10 + i / 10, start + i)
        gw.registry.flush()
        sent = gw.handed_since(mark)
        if gw.air.keeps_time:
            times = [h.time for h in gw.handed.readings[mark:] if h.path == TEMPERATURE]
            assert times == [start + i for i in range(reports) for _ in gw.nodes]
        await asyncio.sleep(0)  # delivery tries, and finds no server
        async with LwM2MTestServer(port=port) as back:
            # The server came back without the registration: the Send gets 4.04, the client
            # registers again, and the backlog follows.
            expected = sent if bounds is None else sent[-bounds.max_count :]
            await until(lambda: len(received(back)) >= len(expected))
            return sent, received(back), gw


@pytest.mark.parametrize("air_kind", AIRS, indirect=True)
async def test_outage_every_reading_arrives_with_its_time_in_order(
    tmp_path: FsPath, air_kind: AirKind
) -> None:
    sent, got, gw = await outage(tmp_path, air_kind, None, 20)
    assert len(sent) >= 40
    assert [(r.name, r.time, r.value) for r in got] == sent
    assert gw.readings.dropped() == {}
    assert gw.delivery.stats(1).failed_sends >= 1


async def test_outage_beyond_the_bounds_drops_the_oldest_and_counts_them(
    tmp_path: FsPath,
) -> None:
    bounds = Bounds(max_count=90)
    sent, got, gw = await outage(tmp_path, SIM, bounds, 25)  # 150 readings, 60 too many
    assert len(sent) == 150
    assert [(r.name, r.time, r.value) for r in got] == sent[-90:]
    assert gw.readings.dropped() == {"dropped_count": 60}


async def test_the_backlog_of_a_node_not_yet_back_after_a_restart_is_delivered(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    node = Rcp.node_id(1)
    measured = time.time() - 500
    down = f"coap://127.0.0.1:{free_udp_port()}"
    async with gateway(tmp_path, down) as gw:  # the server is down: the reading is kept
        gw.registry.pair(PairedNode(node, "n1", "lwm2m"))
        gw.registry.objects(node, {3303: [0]})
        gw.registry.readings(node, [Record(TEMPERATURE, 20.5, measured)])
        path = str(gw.exposure.paths.upstream(node, TEMPERATURE))
        gw.registry.flush()
    async with gateway(tmp_path, server.uri) as gw:  # restarted; the node is not back yet
        await registered(server)
        await delivered(gw)
        assert (path, measured) in {(r.name, r.time) for r in received(server)}


async def test_a_node_paired_just_after_the_register_is_sent_after_the_update_that_lists_it(
    tmp_path: FsPath,
) -> None:
    """A node paired right after the gateway registered: its instance is new, the Update that
    lists it waits out the 1 s floor between Updates, and its first reading is committed and
    handed to delivery meanwhile (lingering 0: at once). A server that checks a Send's paths
    against the registration, as Leshan does, must get that Update before any Send naming the
    instance; a 4.04 would make the gateway register again (Leshan then cancels every request
    of the old registration). The order is the event loop's: the pairing wakes the registrar
    (which starts waiting out the floor) before the commit wakes delivery."""
    config = replace(FAST_DELIVERY, linger=0.0)
    async with (
        LwM2MTestServer(strict_send=True) as server,
        gateway(tmp_path, server.uri, config=config) as gw,
    ):
        await registered(server)
        node = await gw.air.add(3, "room-3")
        gw.registry.flush()
        instance = str(gw.exposure.paths.upstream(node, TEMPERATURE)).rsplit("/", 1)[0]

        def names(event: ServerEvent) -> bool:
            return any(r.name.startswith(instance + "/") for r in event.records)

        await until(lambda: any(names(e) and e.code == Code.CHANGED for e in sends(server)))
    kinds = [(e.kind, e.code) for e in server.history]
    link = f"<{instance}>".encode()
    lists = next(i for i, e in enumerate(server.history) if e.kind != "send" and link in e.payload)
    first_send = next(i for i, e in enumerate(server.history) if e.kind == "send" and names(e))
    assert server.history[lists].kind == "update" and lists < first_send, kinds
    assert [e.code for e in sends(server)] == [Code.CHANGED] * len(sends(server)), kinds
    assert [e.kind for e in server.history].count("register") == 1, kinds


class Feeder:
    """The 802.15.4 nodes of the restart test, each sending readings with its own time."""

    def __init__(self, rcp: Rcp) -> None:
        self.rcp = rcp
        self.task: asyncio.Task[None] | None = None
        self.resets = 0

    async def _run(self) -> None:
        t = time.time() - 10_000
        while True:
            for node_id in self.rcp.nodes:
                t += 0.001
                await self.rcp.send(node_id, [Record(TEMPERATURE, round(t % 100, 3), t)])
            await asyncio.sleep(0.005)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    def _reset_count(self) -> int:
        return sum(r.command == Command.RESET for r in self.rcp.emulator.requests)

    async def killed(self) -> None:
        """The gateway is gone: the nodes' next Send would go unanswered."""
        await self.stop()
        self.resets = self._reset_count()

    async def restarted(self) -> None:
        """Once the new gateway has brought the radio up, the nodes' next Update is taken
        (it kept their registrations: they need not register again); returns when it is."""
        emulator = self.rcp.emulator
        await emulator.wait_until(
            lambda: self._reset_count() > self.resets and emulator.raw_stream, timeout=30
        )
        for node in self.rcp.nodes.values():
            mark = len(node.events)
            await node.update()
            await until(
                lambda n=node, m=mark: any(
                    e.kind is EventKind.UPDATE_COMPLETE for e in n.events[m:]
                )
            )


@pytest.mark.parametrize(("kind", "batch"), [("sim", 300), ("802154", 30)])
async def test_restart_after_kill_9_loses_no_reading(
    server: LwM2MTestServer, tmp_path: FsPath, kind: str, batch: int
) -> None:
    """A real gateway process (python -m peers.node_gateway) is killed with SIGKILL while
    readings stream; restarted, its nodes keep their instances and every reading committed
    before the kill reaches the server, with the time it was measured. With ``802154`` the
    RCP emulator and the nodes live here, and the gateway process opens the emulator's pty."""
    if kind == "sim":
        await restart_after_kill_9(server, tmp_path, [], batch)
        return
    async with Rcp(tmp_path) as rcp:
        options = ["--port", str(rcp.emulator.link)]
        for index in (1, 2):
            options += ["--node", Rcp.node_id(index).address]
            await rcp.add(index, f"n{index}")
        feeder = Feeder(rcp)
        feeder.start()
        try:
            await restart_after_kill_9(server, tmp_path, options, batch, feeder)
        finally:
            await feeder.stop()


async def restart_after_kill_9(
    server: LwM2MTestServer,
    tmp_path: FsPath,
    options: list[str],
    batch: int,
    feeder: Feeder | None = None,
) -> None:
    instances: dict[str, list[str]] = {}
    committed: set[tuple[str, float]] = set()

    async def start() -> asyncio.subprocess.Process:
        instances.clear()
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "peers.node_gateway",
            str(tmp_path),
            server.uri,
            *options,
            stdout=asyncio.subprocess.PIPE,
            cwd=TESTS,
        )

    async def follow(proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            event = json.loads(line)
            instances.update(event.get("instances", {}))
            committed.update((p, t) for p, t in event.get("committed", ()))

    proc = await start()
    reader = asyncio.create_task(follow(proc))
    try:
        await until(lambda: len(instances) == 2 and len(committed) >= batch and received(server))
        # The server starts refusing Sends, so that a backlog builds up before the kill.
        server.send_code = Code.SERVICE_UNAVAILABLE
        backlog_from = len(committed)
        await until(lambda: len(committed) >= backlog_from + batch)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await reader
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = set(committed)
    known = dict(instances)
    delivered_before = {(r.name, r.time) for r in received(server)}
    assert before - delivered_before, "the kill came mid-stream, with readings not yet sent"
    if feeder is not None:
        await feeder.killed()

    again = await start()
    reader = asyncio.create_task(follow(again))
    try:
        # Sends are taken again at once: the restarted gateway exposes the nodes with the
        # objects they last reported, before an 802.15.4 node has registered again.
        server.send_code = None
        await until(lambda: len(instances) == 2)
        assert instances == known
        if feeder is not None:
            await feeder.restarted()
            feeder.start()  # the nodes are back: they go on sending
        await until(lambda: before <= {(r.name, r.time) for r in received(server)})
    finally:
        again.kill()
        await again.wait()
        await reader
