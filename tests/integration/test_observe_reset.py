"""An RST cancels an observation (RFC 7641 §3.6): nothing of it reaches the server afterwards.

A scripted peer on a raw UDP socket observes two temperatures, ``forgotten`` and ``control``,
and answers a notification of ``forgotten`` with an RST at a chosen moment. What it receives
after its RST is checked up to a notification of ``control`` that the gateway produced after
``forgotten``'s last one, so that anything of ``forgotten`` still on its way would come first:

* ``in flight``: two notifications of ``forgotten`` reach the peer before it resets the first;
  the second was on the wire before the RST, which no client can recall (the one seen after
  Leshan's RST in int-302);
* ``held``: the second waits in the message layer for a Message ID (the ID space shrunk to
  one) when the RST comes;
* ``backlogged``: the next confirmable one waits in aiocoap's backlog behind a confirmable
  notification of ``control`` (one CON in flight per peer) when the RST comes;
* ``waiting for its turn``: the next one waits for the notification pace's next turn (one per
  RTT toward a server) when the RST comes.

In every case the peer gets nothing with ``forgotten``'s token once it has sent its RST.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiocoap
import pytest
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import ACK, CON, RST, Type

from bridged.engine.coap import BoundedMessageManager, CoapLimits, create_context, message_managers
from bridged.engine.dm import DeviceManagement, DeviceManagementResource
from bridged.engine.observe import Observations
from bridged.engine.pacing import BURST
from bridged.objects.builtin import builtin_definitions
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree

TIMEOUT = 10.0
FORGOTTEN, CONTROL = b"\x01", b"\x02"


def temperature(instance: int) -> Path:
    return Path((3303, instance, 5700))


@dataclass
class Peer:
    """The scripted server: a connected UDP socket toward the gateway's context."""

    sock: socket.socket
    tree: ObjectTree
    observations: Observations
    manager: BoundedMessageManager

    async def receive(self) -> aiocoap.Message:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 2048), TIMEOUT)
        return aiocoap.Message.decode(data)

    def empty(self, mtype: Type, mid: int) -> None:
        """An empty ACK or RST."""
        message = aiocoap.Message(code=Code.EMPTY)
        message.mtype, message.mid = mtype, mid
        self.sock.send(message.encode())

    async def observe(self, token: bytes, instance: int) -> None:
        request = aiocoap.Message(code=Code.GET, observe=0)
        request.opt.uri_path = [str(i) for i in temperature(instance).ids]
        request.mtype, request.mid, request.token = CON, instance, token
        self.sock.send(request.encode())
        answer = await self.receive()
        assert (answer.mtype, answer.code, bytes(answer.token)) == (ACK, Code.CONTENT, token)

    async def notified(self, token: bytes, value: float) -> aiocoap.Message:
        """Set ``value`` and take the notification that carries it, which must be next."""
        self.tree.set(temperature(0 if token == FORGOTTEN else 1), value)
        message = await self.receive()
        assert (bytes(message.token), message.payload) == (token, str(value).encode()), message
        return message

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not condition():
                await asyncio.sleep(0.01)

    async def after_reset(self) -> list[bytes]:
        """Change ``control``; the tokens of what arrives up to its notification, each CON
        acknowledged."""
        self.tree.set(temperature(1), 99.0)
        tokens = []
        while True:
            message = await self.receive()
            if message.mtype is CON:
                self.empty(ACK, message.mid)
            tokens.append(bytes(message.token))
            if bytes(message.token) == CONTROL and message.payload == b"99.0":
                return tokens


@pytest.fixture
async def peer(request: pytest.FixtureRequest) -> AsyncIterator[Peer]:
    """The gateway's side: two temperatures, an engine context with ``request.param`` as its
    limits, and the peer connected to it, both observations made."""
    tree = ObjectTree(builtin_definitions())
    for instance in (0, 1):
        tree.create_instance(3303, instance, [(5700, 20.0)])
    dm = DeviceManagement(tree)
    observations = Observations(dm)
    context = await create_context(
        DeviceManagementResource(dm, observations), ("127.0.0.1", 0), limits=request.param
    )
    (manager,) = message_managers(context)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect(("127.0.0.1", manager.message_interface._local_port()))
    peer = Peer(sock, tree, observations, manager)
    try:
        await peer.observe(FORGOTTEN, 0)
        await peer.observe(CONTROL, 1)
        yield peer
    finally:
        sock.close()
        await observations.close()
        await context.shutdown()


def reset(peer: Peer, notification: aiocoap.Message) -> Awaitable[None]:
    """The RST to ``notification``; done once the gateway has ended the observation."""
    peer.empty(RST, notification.mid)
    return peer.until(lambda: len(peer.observations) == 1)


@pytest.mark.parametrize("peer", [CoapLimits()], indirect=True)
async def test_a_notification_on_the_wire_before_the_rst_is_the_last(peer: Peer) -> None:
    first = await peer.notified(FORGOTTEN, 21.0)
    await peer.notified(FORGOTTEN, 22.0)  # sent before the RST: seen after it
    await reset(peer, first)
    assert FORGOTTEN not in await peer.after_reset()


@pytest.mark.parametrize(
    "peer", [CoapLimits(message_ids=1, non_lifetime=1.0, con_lifetime=1.0)], indirect=True
)
async def test_a_notification_held_for_a_message_id_is_dropped_by_the_rst(peer: Peer) -> None:
    """The only Message ID is taken by the first notification: the next one is held for it
    (the scheduler is not told to wait, as a producer that does not ask would not)."""
    first = await peer.notified(FORGOTTEN, 21.0)
    peer.tree.set(temperature(0), 22.0)
    await peer.until(lambda: peer.manager.held == 1)
    await reset(peer, first)
    assert FORGOTTEN not in await peer.after_reset()


@pytest.mark.parametrize("peer", [CoapLimits()], indirect=True)
async def test_a_confirmable_notification_in_the_backlog_is_dropped_by_the_rst(
    peer: Peer,
) -> None:
    """With a liveness of 0, notifications alternate NON and CON (``Reliability``): the CON of
    ``control`` stays unacknowledged, so the next CON of ``forgotten`` waits behind it."""
    peer.observations.liveness = 0.0
    first = await peer.notified(FORGOTTEN, 21.0)
    pending = await peer.notified(CONTROL, 21.0)
    assert pending.mtype is CON
    await peer.notified(FORGOTTEN, 22.0)
    peer.tree.set(temperature(0), 23.0)
    manager = peer.manager  # aiocoap's exchanges and backlog, pinned by test_aiocoap_internals
    await peer.until(lambda: any(manager._backlogs.values()))
    await reset(peer, first)
    peer.empty(ACK, pending.mid)  # the backlog goes on
    await peer.until(lambda: all(mid != pending.mid for _, mid in manager._active_exchanges))
    assert FORGOTTEN not in await peer.after_reset()


@pytest.mark.parametrize("peer", [CoapLimits()], indirect=True)
async def test_a_notification_waiting_for_its_turn_is_dropped_by_the_rst(peer: Peer) -> None:
    """With the notification pace (``BoundedMessageManager.turn``), the next notification of
    ``forgotten`` waits for its turn, one RTT after the first (the RTT made 1 s here), when the
    RST comes."""
    manager = peer.manager
    peer.observations.turns = manager
    probe = await peer.notified(CONTROL, 21.0)
    assert probe.mtype is CON, "without an RTT estimate a notification measures one"
    peer.empty(ACK, probe.mid)
    await peer.until(lambda: any(p.srtt is not None for p in manager.paces.values()))
    (pace,) = manager.paces.values()
    pace.srtt, pace.rttvar = 1.0, 0.0
    for _ in range(BURST - 1):  # the burst allowance used up but for one turn
        pace.take(manager.clock())
    first = await peer.notified(FORGOTTEN, 21.0)
    peer.tree.set(temperature(0), 22.0)
    await peer.until(lambda: any(manager._turns.values()))
    await reset(peer, first)
    assert not any(manager._turns.values()), "its wait was withdrawn"
    assert FORGOTTEN not in await peer.after_reset()
