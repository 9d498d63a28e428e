"""Notifications to one server go at its pace: a burst of changes does not overflow its socket.

A group commit changes every observed resource at once, and every observation is due at once.
Sent as one burst of NON notifications, most were dropped by the kernel at the server's socket
(bench/nodes.py at 5,000 nodes: nearly every node's last value), and a lost NON is never sent
again: the server kept an old value until the next change. RFC 7641 §4.5.1 puts congestion
control on the notifying side (``bridged.engine.pacing.NotificationPace``): here a server in a
process of its own, on a socket with a small receive buffer (``peers/raw_observer.py``),
observes ``COUNT`` resources that change several times in a few bursts; each of its
observations must end with the last value, and every notification the gateway produced must
have arrived (each takes the next Observe number of the session, so the greatest number the
server saw, less that of the first answers, is how many were produced).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

import pytest

from bridged.engine.coap import BoundedMessageManager, create_context, message_managers
from bridged.engine.dm import DeviceManagement, DeviceManagementResource
from bridged.engine.observe import Observations
from bridged.engine.udp import guard_received_datagrams
from bridged.objects.builtin import builtin_definitions
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from peers.processes import wait_or_kill

COUNT = 1000
ROUNDS = 4
RCVBUF = 8192
"""Bytes asked for the server's receive buffer (the kernel doubles it): a few dozen small
datagrams, where the default holds hundreds."""
TIMEOUT = 120.0
PEER = FilePath(__file__).parent.parent / "peers" / "raw_observer.py"


@dataclass
class Server:
    process: asyncio.subprocess.Process

    async def line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(TIMEOUT):
            line = await self.process.stdout.readline()
        assert line, "the observer exited"
        result: dict[str, Any] = json.loads(line)
        return result

    async def report(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(b"report\n")
        await self.process.stdin.drain()
        return await self.line()


@dataclass
class Gateway:
    tree: ObjectTree
    observations: Observations
    manager: BoundedMessageManager


@pytest.fixture(params=["paced", "unpaced"])
async def gateway(request: pytest.FixtureRequest) -> AsyncIterator[Gateway]:
    tree = ObjectTree(builtin_definitions())
    for i in range(COUNT):
        tree.create_instance(3303, i, [(5700, 0.0)])
    dm = DeviceManagement(tree)
    observations = Observations(dm, limit=COUNT)
    context = await create_context(DeviceManagementResource(dm, observations), ("127.0.0.1", 0))
    guard_received_datagrams(context)  # as an uplink's: the kernel stamps arrivals
    (manager,) = message_managers(context)
    if request.param == "paced":
        observations.turns = manager
    try:
        yield Gateway(tree, observations, manager)
    finally:
        await observations.close()
        await context.shutdown()


@pytest.fixture
async def server(gateway: Gateway) -> AsyncIterator[Server]:
    port = gateway.manager.message_interface._local_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PEER),
        str(port),
        str(COUNT),
        str(RCVBUF),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        yield Server(process)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        await wait_or_kill(process)


async def settled(gateway: Gateway) -> None:
    """Until the gateway has nothing left to send: no change unpolled, no turn waited for,
    nothing held."""
    manager = gateway.manager
    async with asyncio.timeout(TIMEOUT):
        while gateway.observations._ready or any(manager._turns.values()) or manager.held:
            await asyncio.sleep(0.05)


async def test_a_burst_reaches_a_server_with_a_small_buffer_whole_and_latest(
    gateway: Gateway, server: Server, request: pytest.FixtureRequest
) -> None:
    observing = await server.line()
    assert observing["observing"] == COUNT and len(gateway.observations) == COUNT
    for value in range(1, ROUNDS + 1):
        for i in range(COUNT):  # a group commit: every node's value at once
            gateway.tree.set(Path((3303, i, 5700)), float(value))
        await asyncio.sleep(0)
    await settled(gateway)
    report = await server.report()
    stale = {i: v for i, v in report["latest"].items() if v != float(ROUNDS)}
    produced = report["observe"] - observing["observe"]
    if request.node.callspec.params["gateway"] == "unpaced":
        # What the pace prevents: the burst overflows the server's socket.
        assert stale and report["notifications"] < produced
        return
    assert not stale, f"{len(stale)} of {COUNT} observations left without their last value"
    assert report["notifications"] == produced, "every notification produced arrived"
    assert COUNT <= produced < COUNT * ROUNDS, "what waited was coalesced, not queued"
