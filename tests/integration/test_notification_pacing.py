"""Notifications under Message-ID pressure: they wait and coalesce, observations never end.

A server observing many fast-changing resources asks for more notifications than RFC 7252 lets
one endpoint send to one peer (65,536 Message IDs per lifetime). The message layer holds what
it cannot send yet, but only up to ``held_per_peer`` messages; beyond that it fails them, and a
failed notification ends its observation. The scheduler therefore asks the message layer for a
turn (which waits for a free Message ID too), and keeps due notifications back until it comes:
what finally goes is rendered from the tree at that moment, the latest state.

The test shrinks the ID space (8 IDs, live for 0.2 s) and the held queue (4 messages) so that
a few dozen changes reach the limits the real numbers reach under a flood.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import aiocoap
import pytest
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import CON

from bridged.engine.coap import CoapLimits, create_context, notification_turns
from bridged.engine.dm import DeviceManagement, DeviceManagementResource
from bridged.engine.observe import Observations
from bridged.objects.builtin import builtin_definitions
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree

OBSERVED = 12
TIMEOUT = 20.0


async def observe_all(sock: socket.socket) -> dict[bytes, float]:
    """Observe /3303/i/5700 for every i; the latest value seen per token, once all answered."""
    loop = asyncio.get_running_loop()
    for i in range(OBSERVED):
        message = aiocoap.Message(code=Code.GET, uri_path=("3303", str(i), "5700"), observe=0)
        message.mtype, message.mid, message.token = CON, i, bytes([i + 1])
        await loop.sock_sendall(sock, message.encode())
    latest: dict[bytes, float] = {}
    while len(latest) < OBSERVED:
        latest.update(await receive(sock))
    return latest


async def receive(sock: socket.socket) -> dict[bytes, float]:
    data = await asyncio.get_running_loop().sock_recv(sock, 2048)
    message = aiocoap.Message.decode(data)
    if message.mtype is CON:
        sock.send(bytes([0x60, 0]) + data[2:4])
    if message.code != Code.CONTENT:
        return {}
    return {bytes(message.token): float(message.payload.decode())}


@pytest.mark.parametrize("paced", [True, False], ids=["paced", "unpaced"])
async def test_notifications_wait_for_message_ids_instead_of_ending_observations(
    paced: bool, caplog: pytest.LogCaptureFixture
) -> None:
    tree = ObjectTree(builtin_definitions())
    for i in range(OBSERVED):
        tree.create_instance(3303, i, [(5700, 0.0)])
    dm = DeviceManagement(tree)
    observations = Observations(dm)
    limits = CoapLimits(message_ids=8, non_lifetime=0.2, con_lifetime=0.2, held_per_peer=4)
    context = await create_context(
        DeviceManagementResource(dm, observations), ("127.0.0.1", 0), limits=limits
    )
    if paced:
        observations.turns = notification_turns(context)
    port = context.request_interfaces[0].token_interface.message_interface._local_port()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect(("127.0.0.1", port))
    try:
        latest = await asyncio.wait_for(observe_all(sock), TIMEOUT)
        with caplog.at_level(logging.WARNING):
            for value in range(1, 21):
                for i in range(OBSERVED):
                    tree.set(Path((3303, i, 5700)), float(value))
                await asyncio.sleep(0)

            async def until_final() -> None:
                while any(v != 20.0 for v in latest.values()):
                    latest.update(await receive(sock))

            if paced:
                await asyncio.wait_for(until_final(), TIMEOUT)
                assert len(observations) == OBSERVED, "every observation is still alive"
                assert "ended while notifying" not in caplog.text
            else:
                # Without the scheduler asking, the held queue overflows and observations end:
                # this is what the pacing check above prevents.
                await asyncio.sleep(0.5)
                assert len(observations) < OBSERVED
    finally:
        sock.close()
        await observations.close()
        await context.shutdown()
