"""No reading of an 802.15.4 node is lost when the gateway restarts (kill -9, then SIGTERM).

The real daemon runs as a subprocess opening the RCP emulator's pty; the emulated LwM2M nodes
on its air measure a temperature every few tens of milliseconds and Send it with their time,
again until the gateway answers 2.04 (at least once, as a node that keeps what it has not
delivered). The in-repo LwM2M server upstream decodes the Sends itself. Across both restarts
the nodes go on as they were, without registering again: the gateway kept their
registrations. Every reading the nodes produced reaches the server; a duplicate (a Send whose
2.04 was lost with the gateway) is allowed and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiocoap
import pytest
from aiocoap.numbers.codes import Code
from emulators.lwm2m_node import TEMPERATURE, EmulatedNode
from emulators.world import World, node_eui64

from bridged.engine.registration import EventKind
from bridged.objects.values import Record
from peers.lwm2m_server import LwM2MTestServer, decode_senml_cbor

ENDPOINT = "gw-154-restart"
TIMEOUT = 60.0


async def until(condition: object, what: str) -> None:
    try:
        async with asyncio.timeout(TIMEOUT):
            while not condition():  # type: ignore[operator]
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def received(server: LwM2MTestServer) -> list[float]:
    """The times of the temperatures the server took in Sends (each node's are its own)."""
    return [
        r.time
        for e in server.history
        if e.kind == "send" and e.code == Code.CHANGED
        for r in e.records
        if r.name.endswith("/5700") and r.time is not None
    ]


class Feeder:
    """Each node measures every few tens of milliseconds, keeps what it measured until the
    gateway took it, and Sends what it keeps (oldest first, up to 20 at a time) again until
    the gateway answers 2.04: at least once, as a node with a Send cache does."""

    def __init__(self, nodes: list[EmulatedNode]) -> None:
        self.nodes = nodes
        self.produced: list[float] = []
        self.stopping = False
        self._kept: dict[str, list[Record]] = {node.name: [] for node in nodes}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        base = float(int(time.time()) - 3600)
        for index, node in enumerate(self.nodes):
            self._tasks.append(asyncio.create_task(self._measure(node, base + index / 4)))
            self._tasks.append(asyncio.create_task(self._send(node)))

    async def _measure(self, node: EmulatedNode, t: float) -> None:
        while not self.stopping:
            t += 1.0  # each node its own times: the times name the readings
            value = round(t % 50, 2)
            self.produced.append(t)
            node.tree.set(TEMPERATURE, value)
            self._kept[node.name].append(Record(TEMPERATURE, value, t))
            await asyncio.sleep(0.03)

    async def _send(self, node: EmulatedNode) -> None:
        kept = self._kept[node.name]
        while not (self.stopping and not kept):
            if not kept:
                await asyncio.sleep(0.01)
                continue
            batch = kept[:20]
            try:
                response = await node.send(batch)
            except (TimeoutError, aiocoap.error.Error):
                continue  # no answer (the gateway is away): send it again
            if response.code == Code.CHANGED:
                del kept[: len(batch)]
            else:
                await asyncio.sleep(0.2)  # refused (4.04: it registers again)

    async def stop(self) -> None:
        """The nodes stop measuring; returns once the gateway took all they measured."""
        self.stopping = True
        try:
            async with asyncio.timeout(TIMEOUT):
                await asyncio.gather(*self._tasks)
        finally:
            for task in self._tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def registrations(node: EmulatedNode) -> int:
    return sum(1 for e in node.events if e.kind is EventKind.REGISTRATION_COMPLETE)


@pytest.fixture(autouse=True)
def _short_paths(tmp_path: Path) -> None:
    """Unix socket paths are limited to 107 bytes."""
    assert len(str(tmp_path / "run" / "control.sock")) < 100, tmp_path


async def test_no_reading_is_lost_across_kill_9_and_sigterm(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with World(tmp_path) as world:
        daemon = await world.start_daemon(server.uri, endpoint=ENDPOINT)
        for index in (1, 2):
            await daemon.ctl_json("pair", "802154", node_eui64(index).hex(), "--name", f"n{index}")
        nodes = [await world.add_node(index, f"n{index}") for index in (1, 2)]
        for node in nodes:
            await asyncio.wait_for(node.registered.wait(), TIMEOUT)
        feeder = Feeder(nodes)
        feeder.start()
        try:
            for stop in ("kill -9", "SIGTERM"):
                mark = len(received(server))
                await until(lambda m=mark: len(received(server)) >= m + 10, "readings delivered")  # type: ignore[misc]
                if stop == "kill -9":
                    daemon.proc.kill()
                    await daemon.proc.wait()
                else:
                    assert await daemon.stop() == 0
                down = len(feeder.produced)
                # The nodes go on measuring (and trying to Send) while the gateway is away.
                await until(lambda d=down: len(feeder.produced) >= d + 2, "measuring on")  # type: ignore[misc]
                daemon = await world.start_daemon(server.uri, endpoint=ENDPOINT)
            mark = len(received(server))
            await until(lambda: len(received(server)) >= mark + 10, "readings after the restarts")
        finally:
            await feeder.stop()
        produced = set(feeder.produced)
        await until(lambda: produced <= set(received(server)), "every reading at the server")
        got = received(server)
        duplicates = len(got) - len(set(got))
        lost = produced - set(got)
        assert not lost, f"{len(lost)} of {len(produced)} lost ({duplicates} duplicates)"
        assert [registrations(n) for n in nodes] == [1, 1], "no node had to register again"
        assert "answered 4.04" not in daemon.log.read_text()
        assert await daemon.stop() == 0


async def test_after_a_restart_a_sleeping_nodes_read_answers_its_last_report(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """A node in queue mode (paired without --sleepy) Sends a temperature, which the server
    gets (and the gateway deletes once delivered); the daemon restarts while the node sleeps
    on with its radio off. The server's Read of /3303 has the node's instance with that value
    and the node's time, and the Read of the resource answers it (not 5.03)."""
    async with World(tmp_path) as world:
        assert world.air is not None
        daemon = await world.start_daemon(server.uri, endpoint=ENDPOINT)
        await daemon.ctl_json("pair", "802154", node_eui64(3).hex(), "--name", "cellar")
        node = await world.add_node(3, "cellar", sleepy=True)
        await asyncio.wait_for(node.registered.wait(), TIMEOUT)
        measured = float(int(time.time()) - 100)
        assert (await node.send([Record(TEMPERATURE, 16.5, measured)])).code == Code.CHANGED
        await until(lambda: measured in received(server), "the Send delivered")
        assert await daemon.stop() == 0
        world.air.drop = lambda psdu: True  # asleep: its radio is off
        daemon = await world.start_daemon(server.uri, endpoint=ENDPOINT)
        await until(lambda: ENDPOINT in server.clients, "the gateway registered again")
        read = await server.request(ENDPOINT, Code.GET, "/3303", accept=112)
        assert read.code == Code.CONTENT
        (last,) = [r for r in decode_senml_cbor(read.payload) if r.name.endswith("/5700")]
        assert (last.value, last.time) == (16.5, measured)
        read = await server.request(ENDPOINT, Code.GET, last.name, accept=112)
        assert read.code == Code.CONTENT, read.payload
        assert [(r.value, r.time) for r in decode_senml_cbor(read.payload)] == [(16.5, measured)]
        assert await daemon.stop() == 0
