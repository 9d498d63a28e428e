"""The registration interface against the in-repo server (OMA LwM2M 1.1 int-101..105)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiocoap
import pytest
from aiocoap import resource
from aiocoap.numbers.codes import Code

from bridged.engine.registration import (
    EventKind,
    Registrar,
    RegistrationEvent,
    RegistrationParams,
    RegistrationState,
    RetryPolicy,
    ServerTarget,
    register_query,
    update_margin,
)
from peers.lwm2m_server import LwM2MTestServer

LINKS = '</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>'
FAST_RETRY = RetryPolicy(count=2, timer=0.05, sequence_delay=0.1, sequence_count=1)


class Client:
    """A client context and a registrar with editable parameters and an event log, run as
    ``driver`` says: ``run()`` as a task, or ``start()`` (a task only while busy)."""

    driver = "run"

    def __init__(self, context: aiocoap.Context, target: ServerTarget) -> None:
        self.carried = RegistrationParams(lifetime=300, binding="U", queue=False, links=LINKS)
        self.events: asyncio.Queue[RegistrationEvent] = asyncio.Queue()
        self.registrar = Registrar(context, target, self, self.events.put_nowait, endpoint="gw-1")
        self.task: asyncio.Task[None] | None = None
        if self.driver == "run":
            self.task = asyncio.create_task(self.registrar.run())
        else:
            self.registrar.start()

    def params(self) -> RegistrationParams:
        """The registration's ``Registrant``: ``carried``, which a test edits."""
        return self.carried

    def answered(self) -> None:
        pass

    async def event(self, kind: EventKind, timeout: float = 10.0) -> RegistrationEvent:
        async with asyncio.timeout(timeout):
            while True:
                ev = await self.events.get()
                if ev.kind is kind:
                    return ev

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.registrar.stop()


@pytest.fixture(autouse=True, params=["run", "start"])
def driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test twice: the registrar as one task throughout, and as ``start`` runs it."""
    monkeypatch.setattr(Client, "driver", request.param)


@pytest.fixture
async def context() -> AsyncIterator[aiocoap.Context]:
    ctx = await aiocoap.Context.create_server_context(
        resource.Site(), bind=("127.0.0.1", 0), transports=["udp6"]
    )
    yield ctx
    await ctx.shutdown()


def target(uri: str, **kw: object) -> ServerTarget:
    return ServerTarget(uri=uri, request_timeout=3.0, retry=FAST_RETRY, **kw)  # type: ignore[arg-type]


async def test_LightweightM2M_1_1_int_101_initial_registration(
    context: aiocoap.Context, server: LwM2MTestServer
) -> None:
    client = Client(context, target(server.uri))
    ev = await server.next_event("register")
    assert ev.query == {"ep": "gw-1", "lt": "300", "lwm2m": "1.1", "b": "U"}
    assert ev.payload.decode() == LINKS
    assert ev.content_format == 40
    await client.event(EventKind.REGISTRATION_COMPLETE)
    assert client.registrar.location == server.clients["gw-1"].location
    await client.close()


async def test_LightweightM2M_1_1_int_102_update_carries_only_what_changed(
    context: aiocoap.Context, server: LwM2MTestServer
) -> None:
    client = Client(context, target(server.uri))
    await client.event(EventKind.REGISTRATION_COMPLETE)
    client.registrar.trigger_update()
    ev = await server.next_event("update")
    assert (ev.query, ev.payload) == ({}, b""), "nothing changed: an empty Update"
    client.carried = RegistrationParams(600, "U", False, LINKS + ",</3303/0>")
    client.registrar.trigger_update()
    ev = await server.next_event("update")
    assert ev.query == {"lt": "600"}
    assert ev.payload.decode().endswith("</3303/0>") and ev.content_format == 40
    await client.close()


async def test_update_goes_out_before_the_lifetime_ends(
    context: aiocoap.Context, server: LwM2MTestServer
) -> None:
    client = Client(context, target(server.uri))
    client.carried = RegistrationParams(2, "U", False, LINKS)
    await server.next_event("register")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await server.next_event("update", timeout=5)
    assert loop.time() - t0 < 2 - 0.5, "the Update must beat the 2 s lifetime"
    await client.close()


async def test_LightweightM2M_1_1_int_103_deregistration(
    context: aiocoap.Context, server: LwM2MTestServer
) -> None:
    client = Client(context, target(server.uri))
    await client.event(EventKind.REGISTRATION_COMPLETE)
    await client.registrar.deregister()
    await server.next_event("deregister")
    assert "gw-1" not in server.clients
    assert client.registrar.state is RegistrationState.DEREGISTERED
    await client.close()


async def test_multi_segment_location_and_server_uri_path_are_kept(
    context: aiocoap.Context,
) -> None:
    async with LwM2MTestServer(
        rd_path=("i", "am", "rd"), location_prefix=("some", "weird", "rd")
    ) as server:
        client = Client(context, target(server.uri + "/i/am?x=1"))
        ev = await server.next_event("register")
        assert ev.query["x"] == "1" and ev.query["ep"] == "gw-1"
        await client.event(EventKind.REGISTRATION_COMPLETE)
        assert client.registrar.location is not None
        assert client.registrar.location[:3] == ("some", "weird", "rd")
        client.registrar.trigger_update()
        await server.next_event("update")  # routed by the full location only
        await client.close()


async def test_LightweightM2M_1_1_int_105_update_404_registers_again(
    context: aiocoap.Context, server: LwM2MTestServer
) -> None:
    client = Client(context, target(server.uri))
    await client.event(EventKind.REGISTRATION_COMPLETE)
    server.forget("gw-1")
    client.registrar.trigger_update()
    await client.event(EventKind.UPDATE_FAILURE)
    ev = await server.next_event("register")
    assert ev.payload.decode() == LINKS, "a full Register with the object list"
    await client.event(EventKind.REGISTRATION_COMPLETE)
    await client.close()


async def test_server_refusing_1_1_gets_a_1_0_registration(context: aiocoap.Context) -> None:
    async with LwM2MTestServer(accepted_versions=("1.0",)) as server:
        client = Client(context, target(server.uri))
        client.carried = RegistrationParams(300, "U", True, LINKS)
        first = await server.next_event("register")
        assert first.query["lwm2m"] == "1.1" and "Q" in first.query
        second = await server.next_event("register")
        assert second.query["lwm2m"] == "1.0" and second.query["b"] == "UQ"
        assert "Q" not in second.query
        await client.event(EventKind.REGISTRATION_COMPLETE)
        assert client.registrar.version == "1.0"
        await client.close()


async def test_created_without_location_path_is_a_failed_registration(
    context: aiocoap.Context, server: LwM2MTestServer
) -> None:
    """A 2.01 that names no Location-Path leaves nowhere to send Updates to: the Register
    failed, and it is retried as /1/x/17-20 say until the server answers properly."""
    server.omit_location = True
    client = Client(context, target(server.uri))
    failure = await client.event(EventKind.REGISTRATION_FAILURE)
    assert "Location-Path" in failure.detail
    assert (await server.next_event("register")).code == Code.CREATED
    await server.next_event("register")  # the retry
    assert not client.registrar.registered
    server.omit_location = False
    complete = await client.event(EventKind.REGISTRATION_COMPLETE)
    assert complete.detail == "/" + "/".join(server.clients["gw-1"].location)
    client.registrar.trigger_update()
    await server.next_event("update")
    assert [e.kind for e in server.history if e.kind != "register"] == ["update"]
    await client.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_server_is_retried_until_it_comes_up(context: aiocoap.Context) -> None:
    port = free_udp_port()
    client = Client(
        context,
        ServerTarget(uri=f"coap://127.0.0.1:{port}", request_timeout=0.5, retry=FAST_RETRY),
    )
    failure = await client.event(EventKind.REGISTRATION_FAILURE)
    assert failure.server.endswith(str(port))
    # It said "NetworkError: Network error: NetworkError": which server, what happened, when
    # the next try is.
    assert failure.detail.startswith(f"coap://127.0.0.1:{port} refused: nothing listens"), (
        failure.detail
    )
    assert "; next try in 0.05 s, at " in failure.detail, failure.detail
    async with LwM2MTestServer(port=port) as server:
        await server.next_event("register", timeout=15)
        await client.event(EventKind.REGISTRATION_COMPLETE, timeout=15)
    await client.close()


async def test_a_server_that_does_not_answer_is_a_timeout_with_the_next_try(
    context: aiocoap.Context,
) -> None:
    """A socket that takes the Register and never answers: the failure says it timed out,
    within the request timeout, and when the last attempt of a sequence tries again (its
    delay, then the sequence delay)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        uri = f"coap://127.0.0.1:{silent.getsockname()[1]}"
        retry = RetryPolicy(count=2, timer=0.05, sequence_delay=0.1, sequence_count=1)
        client = Client(context, ServerTarget(uri=uri, request_timeout=0.3, retry=retry))
        first = await client.event(EventKind.REGISTRATION_FAILURE)
        assert first.detail.startswith(f"{uri} timed out: no answer within 0.3 s; "), first.detail
        assert "next try in 0.05 s" in first.detail
        second = await client.event(EventKind.REGISTRATION_FAILURE)
        assert "next try in 0.2 s" in second.detail, "0.1 s, then the sequence's 0.1 s"
        await client.close()


def test_retry_policy_backs_off_exponentially() -> None:
    assert RetryPolicy(count=4, timer=60).delays() == [60, 120, 240, 480]


def test_update_margin_is_bounded() -> None:
    assert update_margin(2) == 1.0
    assert update_margin(300) == 30.0
    assert update_margin(86400) == 93.0


def test_queue_mode_syntax_per_version() -> None:
    p = RegistrationParams(60, "U", True, "")
    assert register_query("e", p, "1.1") == ["ep=e", "lt=60", "lwm2m=1.1", "b=U", "Q"]
    assert register_query("e", p, "1.0") == ["ep=e", "lt=60", "lwm2m=1.0", "b=UQ"]
