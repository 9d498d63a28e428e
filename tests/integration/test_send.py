"""The Send operation end to end against the in-repo server (OMA LwM2M 1.1 int-306, 307, 311).

The server decodes the SenML CBOR itself (cbor2, not the engine's codec), so these tests see
the names, values and times a server would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import aiocoap
import aiocoap.protocol
import pytest
from aiocoap.numbers.codes import Code
from clients import (
    FAST_RETRY,
    a_series,
    assert_decoded_whole,
    free_udp_port,
    gateway_tree,
    next_event,
)

from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.registration import EventKind, RegistrationEvent
from bridged.engine.send import SendMuted, SendNotRegistered, SendStatus, SendUnsupported
from bridged.objects.errors import BadRequest
from bridged.objects.paths import Path
from bridged.objects.values import Record
from peers.lwm2m_server import LwM2MTestServer, SenMLRecord

TEMPERATURE = Path.parse("/3303/0/5700")
SERIES = [
    Record(TEMPERATURE, 21.5, 1_700_000_000.0),
    Record(TEMPERATURE, 21.75, 1_700_000_060.0),
    Record(TEMPERATURE, 22.0, 1_700_000_120.5),
]


async def registered_client(
    server: LwM2MTestServer, uri: str | None = None, timeout: float = 3.0
) -> tuple[LwM2MClient, asyncio.Queue[RegistrationEvent]]:
    events: asyncio.Queue[RegistrationEvent] = asyncio.Queue()
    client = LwM2MClient(
        gateway_tree(),
        "gw-1",
        ServerConfig(uri or server.uri, request_timeout=timeout, retry=FAST_RETRY),
        bind=("127.0.0.1", 0),
        on_event=events.put_nowait,
    )
    await client.start()
    return client, events


@pytest.fixture
async def registered(
    server: LwM2MTestServer,
) -> AsyncIterator[tuple[LwM2MClient, asyncio.Queue[RegistrationEvent]]]:
    c, events = await registered_client(server)
    await next_event(events, EventKind.REGISTRATION_COMPLETE)
    yield c, events
    await c.stop()


@pytest.fixture
def client(registered: tuple[LwM2MClient, asyncio.Queue[RegistrationEvent]]) -> LwM2MClient:
    return registered[0]


async def test_int_306_send_delivers_a_time_series_with_its_timestamps(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-306 (Send): a buffered series of one resource arrives as one
    record per reading, each with the time it was measured."""
    outcome = await client.send([*SERIES, Record(Path.parse("/3/0/0"), "ACME")])
    assert outcome.delivered and outcome.records == 4
    ev = await server.next_event("send")
    assert (ev.endpoint, ev.content_format, ev.code) == ("gw-1", 112, Code.CHANGED)
    assert ev.records == (
        SenMLRecord("/3303/0/5700", 1_700_000_000.0, 21.5),
        SenMLRecord("/3303/0/5700", 1_700_000_060.0, 21.75),
        SenMLRecord("/3303/0/5700", 1_700_000_120.5, 22.0),
        SenMLRecord("/3/0/0", None, "ACME"),
    )


async def test_int_311_send_of_current_values(client: LwM2MClient, server: LwM2MTestServer) -> None:
    """LightweightM2M-1.1-int-311 (Send command): the current values, read from the tree."""
    outcome = await client.send(client.tree.read(Path.parse("/3303/0")))
    assert outcome.delivered
    ev = await server.next_event("send")
    assert ev.records == (SenMLRecord("/3303/0/5700", None, 21.5),)


async def test_int_307_muted_send_is_refused_locally(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-307 (Muting Send): with /1/0/23 true the client sends nothing."""
    mute = await server.request("gw-1", Code.PUT, "/1/0/23", b"1", content_format=0)
    assert mute.code == Code.CHANGED
    with pytest.raises(SendMuted, match="muted Send"):
        await client.send(SERIES)
    unmute = await server.request("gw-1", Code.PUT, "/1/0/23", b"0", content_format=0)
    assert unmute.code == Code.CHANGED
    assert (await client.send(SERIES[:1])).delivered
    assert [e.records for e in server.history if e.kind == "send"] == [
        (SenMLRecord("/3303/0/5700", 1_700_000_000.0, 21.5),)
    ], "nothing was sent while muted"


async def test_send_404_registers_again(
    registered: tuple[LwM2MClient, asyncio.Queue[RegistrationEvent]], server: LwM2MTestServer
) -> None:
    client, events = registered
    server.forget("gw-1")
    outcome = await client.send(SERIES)
    assert outcome.status is SendStatus.REGISTER_AGAIN and not outcome.delivered
    assert (await server.next_event("send")).code == Code.NOT_FOUND
    await next_event(events, EventKind.REGISTRATION_COMPLETE)
    assert (await client.send(SERIES)).delivered


async def test_other_errors_are_reported(client: LwM2MClient, server: LwM2MTestServer) -> None:
    server.send_code = Code.INTERNAL_SERVER_ERROR
    outcome = await client.send(SERIES)
    assert outcome.status is SendStatus.REJECTED
    assert outcome.detail.startswith("5.00")
    assert client.session(1).registered, "a refused Send leaves the registration alone"


async def test_lwm2m_1_0_registration_has_no_send() -> None:
    async with LwM2MTestServer(accepted_versions=("1.0",)) as server:
        client, events = await registered_client(server)
        try:
            await next_event(events, EventKind.REGISTRATION_COMPLETE)
            with pytest.raises(SendUnsupported, match="notify instead"):
                await client.send(SERIES)
        finally:
            await client.stop()
        assert not [e for e in server.history if e.kind == "send"]


async def test_send_before_registration_is_refused(server: LwM2MTestServer) -> None:
    client, events = await registered_client(
        server, f"coap://127.0.0.1:{free_udp_port()}", timeout=0.3
    )
    try:
        await next_event(events, EventKind.REGISTRATION_FAILURE)
        with pytest.raises(SendNotRegistered):
            await client.send(SERIES)
    finally:
        await client.stop()


async def test_bad_records_are_refused_before_anything_is_sent(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    with pytest.raises(BadRequest, match="takes Float"):
        await client.send([Record(TEMPERATURE, "warm")])
    with pytest.raises(BadRequest, match="bootstrap-only"):
        await client.send([Record(Path.parse("/0/0/5"), b"key")])
    assert not [e for e in server.history if e.kind == "send"]


async def test_long_series_goes_out_in_blocks(client: LwM2MClient, server: LwM2MTestServer) -> None:
    """Half a day of minute readings is far larger than one CoAP block: Block1 carries it whole."""
    series = a_series(TEMPERATURE)
    assert (await client.send(series)).delivered
    ev = await server.next_event("send")
    assert len(ev.payload) > 4 * 1024
    assert ev.messages == -(-len(ev.payload) // 1024)
    assert_decoded_whole(ev, series)


async def test_a_send_of_a_new_instance_goes_after_the_update_that_announces_it(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """A node paired a moment ago: its instance is new in the tree and its first reading is
    Sent at once. The server must have been told of the instance first (Leshan checks a
    Send's paths against the registration and answers 4.04 otherwise), so the Update that lists
    it comes before the Send, even within the 1 s floor between two Updates."""
    client.tree.create_instance(3303, 7, [(5700, 18.0)])
    outcome = await client.send([Record(Path.parse("/3303/7/5700"), 18.0, 1_700_000_000.0)])
    assert outcome.delivered
    kinds = [e.kind for e in server.history if e.kind in ("update", "send")]
    assert kinds[:2] == ["update", "send"], kinds
    update = next(e for e in server.history if e.kind == "update")
    assert "</3303/7>" in update.payload.decode()


@contextlib.contextmanager
def counted_lookups() -> Iterator[list[object]]:
    """The hosts the running loop's ``getaddrinfo`` is asked for, as it is asked."""
    loop = asyncio.get_running_loop()
    lookups: list[object] = []
    resolve = loop.getaddrinfo

    async def counted(*args: object, **kwargs: object) -> object:
        lookups.append(args[0])
        return await resolve(*args, **kwargs)  # type: ignore[arg-type]

    loop.getaddrinfo = counted  # type: ignore[method-assign, assignment]
    try:
        yield lookups
    finally:
        del loop.getaddrinfo


async def test_sends_go_to_the_address_resolved_once_not_resolved_per_request(
    server: LwM2MTestServer,
) -> None:
    """aiocoap resolves a request's URI every time (a getaddrinfo in a worker thread, even for
    an IP literal): the client resolves the server's address once and sends there."""
    with counted_lookups() as lookups:
        client, events = await registered_client(server, uri=f"coap://localhost:{server.port}")
        await next_event(events, EventKind.REGISTRATION_COMPLETE)
        before = len(lookups)
        for record in SERIES:
            assert (await client.send([record])).delivered
        got = [(await server.next_event("send")).records for _ in SERIES]
        await client.stop()
    assert got == [(SenMLRecord("/3303/0/5700", r.time, r.value),) for r in SERIES]
    assert before >= 1 and len(lookups) == before


async def test_register_retries_toward_an_ip_literal_resolve_it_once(
    server: LwM2MTestServer,
) -> None:
    """A server that is down (nothing listens on its port: ICMP port unreachable) is tried
    again on the retry schedule. An IP literal's address cannot move, so the retries go to
    the address the first attempt worked out; aiocoap resolved it again for each (a worker
    thread's getaddrinfo and a socket to check the route, most of an idle gateway's retry)."""
    with counted_lookups() as lookups:
        client, events = await registered_client(server, uri=f"coap://127.0.0.1:{free_udp_port()}")
        seen = []  # the lookups made by each failed attempt's end
        while len(seen) < 3:
            event = await next_event(events, EventKind.REGISTRATION_FAILURE)
            if "refused" in event.detail:
                seen.append(len(lookups))
        await client.stop()
    assert seen[0] >= 1 and seen == [seen[0]] * 3, lookups


async def test_the_servers_reads_do_not_ask_the_kernel_for_the_interface_name_per_request(
    client: LwM2MClient, server: LwM2MTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiocoap names the task of every request it serves by the request's repr, and the repr
    of an address received with its local address asks the kernel for the interface name (a
    socket, an ioctl, a close): the engine's addresses answer that once per address."""
    import socket
    import traceback

    asked: list[int] = []
    name = socket.if_indextoname

    def counted(index: int) -> str:
        # The test server is in this process too: count the gateway's calls only.
        if any("/bridged/engine/" in frame.filename for frame in traceback.extract_stack()):
            asked.append(index)
        return name(index)

    monkeypatch.setattr(socket, "if_indextoname", counted)
    for _ in range(10):
        response = await server.request("gw-1", Code.GET, "/3/0/0")
        assert (response.code, response.payload) == (Code.CONTENT, b"ACME")
    assert len(asked) <= 1


@pytest.mark.parametrize("records", [720, 20], ids=["in blocks", "in one message"])
async def test_a_server_asking_for_smaller_blocks_gets_them(
    client: LwM2MClient, server: LwM2MTestServer, records: int
) -> None:
    """A server that takes Send bodies in 256-byte blocks only answers a larger request or
    block 4.13 with a Block1 option of that size (RFC 7959 §2.9.3): the client sends the body
    again in blocks of that size, and the server gets every record; later Sends go in blocks
    of that size from the start."""
    server.send_block_exponent = 4
    series = a_series(TEMPERATURE, records)
    assert (await client.send(series)).delivered
    ev = await server.next_event("send")
    assert_decoded_whole(ev, series)
    assert server.send_blocks[-1] <= 256 and len(ev.payload) > 256
    server.send_blocks.clear()  # the next Send goes in blocks of that size at once
    assert (await client.send(series)).delivered
    assert server.send_blocks and max(server.send_blocks) <= 256


async def test_a_send_goes_in_blocks_without_aiocoaps_blockwise_client(
    client: LwM2MClient, server: LwM2MTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Send's blocks are prepared messages of their own (``block1.send_in_blocks``): aiocoap's
    block-wise client deep-copied the whole request for every block and ran a task for it.
    The server still decodes every record of the body from its blocks."""
    made: list[object] = []
    blockwise = aiocoap.protocol.BlockwiseRequest.__init__

    def counted(self: object, *args: object) -> None:
        made.append(self)
        blockwise(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(aiocoap.protocol.BlockwiseRequest, "__init__", counted)
    series = a_series(TEMPERATURE)
    assert (await client.send(series)).delivered
    ev = await server.next_event("send")
    assert ev.messages == -(-len(ev.payload) // 1024) > 4
    assert_decoded_whole(ev, series)
    assert made == []


async def test_a_server_naming_its_block_size_in_size1_gets_that_size_at_once(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """A 4.13 that names the size the server takes in Size1 only (no Block1, RFC 7959 §2.9.3
    and §4): the body goes again in blocks of at most that size, not one size smaller per
    refusal."""
    server.send_block_exponent = 4
    server.send_size1_only = True
    series = a_series(TEMPERATURE)
    assert (await client.send(series)).delivered
    ev = await server.next_event("send")
    assert_decoded_whole(ev, series)
    assert server.send_blocks[0] == 1024 and max(server.send_blocks[1:]) == 256


async def test_a_server_asking_for_smaller_blocks_on_the_way_gets_the_rest_in_them(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """Late negotiation (RFC 7959 §2.3): a server that answers the first 1,024-byte block 2.31
    Continue with a Block1 of 256 bytes gets the rest from the next byte on in 256-byte
    blocks, decodes every record, and the next Send goes in 256-byte blocks from the start."""
    server.send_late_exponent = 4
    series = a_series(TEMPERATURE)
    assert (await client.send(series)).delivered
    ev = await server.next_event("send")
    assert_decoded_whole(ev, series)
    assert server.send_blocks[0] == 1024 and max(server.send_blocks[1:]) == 256
    server.send_blocks.clear()
    assert (await client.send(series)).delivered
    assert max(server.send_blocks) == 256


async def test_a_success_to_the_first_of_several_blocks_is_not_a_delivery(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """A server that answers 2.04 without Block1 to the first block of a Send ignored the
    option and read one block of the body: the Send is not delivered (its readings stay to
    be sent again), and the outcome says why."""
    server.send_ignores_block1 = True
    series = a_series(TEMPERATURE)
    outcome = await client.send(series)
    assert outcome.status is SendStatus.REJECTED and "block-wise" in outcome.detail
    assert server.send_blocks == [1024]
