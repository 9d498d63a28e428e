"""Queue mode end to end against the in-repo server (OMA LwM2M 1.1 int-108, int-109).

What a server can observe of a queue-mode client is its outgoing traffic: the ``Q`` (1.1) or
``b=UQ`` (1.0) in the Register, nothing held back while the client sleeps, and the Update that
tells the server the client is awake before anything held comes out. The socket stays open, so
the server's own requests are still answered; that is this gateway's choice, not a promise.

A session's observations are held and released by queue mode; a recorder watches those calls
and notes what the server had seen at each.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from clients import FAST_RETRY, gateway_tree

from bridged.engine.client import LwM2MClient, ServerConfig, ServerSession
from bridged.engine.observe import Observations
from bridged.engine.queue_mode import QueueState
from bridged.objects.paths import Path
from bridged.objects.values import Record
from peers.lwm2m_server import LwM2MTestServer

WINDOW = 0.2
"""A short awake window, so that the client falls asleep during the test."""


class Recorder:
    """Watches a session's real observations: records each hold and release with the kinds of
    the messages the server had received by then."""

    def __init__(self, server: LwM2MTestServer, observations: Observations) -> None:
        self.server = server
        self.calls: asyncio.Queue[tuple[str, list[str]]] = asyncio.Queue()
        for name in ("hold", "release"):
            setattr(observations, name, self._spy(name, getattr(observations, name)))

    def _spy(self, name: str, real: Callable[[], None]) -> Callable[[], None]:
        def spy() -> None:
            self.calls.put_nowait((name, [e.kind for e in self.server.history]))
            real()

        return spy

    async def next(self, expected: str) -> list[str]:
        async with asyncio.timeout(10):
            call, seen = await self.calls.get()
        assert call == expected
        return seen


@pytest.fixture
async def client(server: LwM2MTestServer) -> AsyncIterator[LwM2MClient]:
    c = LwM2MClient(
        gateway_tree(),
        "gw-1",
        ServerConfig(
            server.uri, queue=True, queue_window=WINDOW, request_timeout=3.0, retry=FAST_RETRY
        ),
        bind=("127.0.0.1", 0),
    )
    await c.start()
    yield c
    await c.stop()


def plug(client: LwM2MClient, server: LwM2MTestServer) -> tuple[ServerSession, Recorder]:
    session = client.session(1)
    return session, Recorder(server, session.observations)


async def test_int_108_register_turns_on_queue_mode(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-108 (Turn on Queue Mode): 1.1 says ``Q`` beside ``b=U``."""
    ev = await server.next_event("register")
    assert ev.query["b"] == "U" and "Q" in ev.query and ev.query["Q"] is None
    assert server.clients["gw-1"].queue


async def test_int_108_lwm2m_1_0_says_b_uq() -> None:
    """LightweightM2M-1.1-int-108 against a 1.0 server: queue mode is in the binding."""
    async with LwM2MTestServer(accepted_versions=("1.0",)) as server:
        client = LwM2MClient(
            gateway_tree(),
            "gw-1",
            ServerConfig(server.uri, queue=True, request_timeout=3.0, retry=FAST_RETRY),
            bind=("127.0.0.1", 0),
        )
        await client.start()
        try:
            await server.next_event("register")  # the 1.1 attempt, refused with 4.12
            ev = await server.next_event("register")
            assert (ev.query["lwm2m"], ev.query["b"]) == ("1.0", "UQ") and "Q" not in ev.query
            assert server.clients["gw-1"].queue
        finally:
            await client.stop()


async def test_int_109_held_traffic_waits_for_an_update(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-109 (Behavior in Queue Mode): after the window the client holds
    its notifications; when one must go out it sends an Update first, and releases what it
    held only once the server has answered that Update."""
    session, observations = plug(client, server)
    await server.next_event("register")
    assert await observations.next("hold") == ["register"]
    assert session.queue_state is QueueState.SLEEPING

    session.wake()  # what the observations do when they hold a notification
    session.wake()  # ...and again: still one Update
    ev = await server.next_event("update")
    assert (ev.query, ev.payload) == ({}, b""), "a plain Update: 'I am awake'"
    assert await observations.next("release") == ["register", "update"]
    assert await observations.next("hold") == ["register", "update"], "asleep again"
    assert [e.kind for e in server.history] == ["register", "update"]


async def test_send_wakes_a_sleeping_client_by_itself(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """A Send while asleep is the message that wakes the client: no Update before it."""
    _, observations = plug(client, server)
    await server.next_event("register")
    await observations.next("hold")
    outcome = await client.send([Record(Path.parse("/3303/0/5700"), 22.0, 1_700_000_000.0)])
    assert outcome.delivered
    assert await observations.next("release") == ["register", "send"]


async def test_structural_update_while_asleep_releases_held_traffic(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    _, observations = plug(client, server)
    await server.next_event("register")
    await observations.next("hold")
    client.tree.create_instance(3303, 1, [(5700, 19.0)])
    assert await observations.next("release") == ["register", "update"]
    assert "</3303/1>" in server.history[-1].payload.decode()


async def test_awake_client_holds_nothing(server: LwM2MTestServer) -> None:
    """Without queue mode there is no gate: wake() does nothing and nothing is held."""
    client = LwM2MClient(
        gateway_tree(),
        "gw-1",
        ServerConfig(server.uri, request_timeout=3.0, retry=FAST_RETRY),
        bind=("127.0.0.1", 0),
    )
    await client.start()
    try:
        session, observations = plug(client, server)
        await server.next_event("register")
        session.wake()
        assert session.queue_state is None
        client.session(1).trigger_update()
        await server.next_event("update")
        assert observations.calls.empty()
    finally:
        await client.stop()
