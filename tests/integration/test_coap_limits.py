"""The engine's CoAP contexts on real sockets: duplicates answered from the bounded cache, the
cache's bound held under thousands of requests, and Message IDs paced toward a peer."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import aiocoap
import pytest
from aiocoap import resource
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import CON, NON, Type

from bridged.engine.coap import (
    BoundedMessageManager,
    CoapLimits,
    create_context,
    message_managers,
)
from bridged.engine.dm import DeviceManagement, DeviceManagementResource
from bridged.objects.builtin import builtin_definitions
from bridged.objects.tree import ObjectTree

TIMEOUT = 20.0


class Counter(resource.Resource):
    """Answers every GET with how many it has answered."""

    def __init__(self) -> None:
        super().__init__()
        self.renders = 0

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        self.renders += 1
        return aiocoap.Message(code=Code.CONTENT, payload=str(self.renders).encode())


def port_of(context: aiocoap.Context) -> int:
    return int(message_managers(context)[0].message_interface._local_port())


async def held_back(mman: BoundedMessageManager, count: int = 1) -> None:
    """Return once ``mman`` holds ``count`` messages back for want of a Message ID."""
    while mman.held < count:
        await asyncio.sleep(0.001)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def raw() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


@pytest.fixture
async def counter_context() -> AsyncIterator[tuple[aiocoap.Context, Counter]]:
    site = resource.Site()
    counter = Counter()
    site.add_resource(["count"], counter)
    context = await create_context(site, ("127.0.0.1", 0))
    yield context, counter
    await context.shutdown()


async def exchange(sock: socket.socket, port: int, message: aiocoap.Message) -> bytes:
    """Send ``message`` from ``sock`` and return the datagram that answers it."""
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(sock, message.encode(), ("127.0.0.1", port))
    return await asyncio.wait_for(loop.sock_recv(sock, 2048), TIMEOUT)


def payload(datagram: bytes) -> bytes:
    return bytes(aiocoap.Message.decode(datagram).payload)


def get(mid: int, token: bytes, mtype: Type = CON) -> aiocoap.Message:
    """A request as a peer's bytes would carry it: its own Message ID and token."""
    message = aiocoap.Message(code=Code.GET, uri_path=["count"])
    message.mtype, message.mid, message.token = mtype, mid, token
    return message


async def test_a_duplicate_con_is_answered_from_the_cache_within_the_window(
    counter_context: tuple[aiocoap.Context, Counter], raw: socket.socket
) -> None:
    context, counter = counter_context
    clock = FakeClock()
    mman = message_managers(context)[0]
    mman.clock = clock
    port = port_of(context)

    first = await exchange(raw, port, get(0x1234, b"t1"))
    again = await exchange(raw, port, get(0x1234, b"t1"))
    assert (payload(first), payload(again)) == (b"1", b"1")
    assert again == first, "the same ACK, byte for byte"
    assert counter.renders == 1

    clock.now += mman.limits.dedup_con_window
    late = await exchange(raw, port, get(0x1234, b"t1"))
    assert payload(late) == b"2", "after the window the same Message ID is a new request"


async def test_a_duplicate_non_is_dropped(
    counter_context: tuple[aiocoap.Context, Counter], raw: socket.socket
) -> None:
    context, counter = counter_context
    port = port_of(context)
    first = await exchange(raw, port, get(0x4321, b"n1", NON))
    assert payload(first) == b"1"
    # The duplicate NON gets nothing; a CON behind it proves it was seen and dropped.
    await asyncio.get_running_loop().sock_sendto(
        raw, get(0x4321, b"n1", NON).encode(), ("127.0.0.1", port)
    )
    after = await exchange(raw, port, get(0x4322, b"c1"))
    assert (payload(after), counter.renders) == (b"2", 2)


async def test_thousands_of_reads_never_grow_the_cache_beyond_its_bound() -> None:
    """A server reading a client's /3/0/0 3,000 times, 50 at a time, from one socket."""
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(3, 0, [(0, "ACME")])
    bound = 200
    client = await create_context(
        DeviceManagementResource(DeviceManagement(tree)),
        ("127.0.0.1", 0),
        limits=CoapLimits(dedup_capacity=bound),
    )
    server = await aiocoap.Context.create_client_context(transports=["udp6"])
    uri = f"coap://127.0.0.1:{port_of(client)}/3/0/0"
    cache = message_managers(client)[0].dedup
    largest = 0
    try:
        for _ in range(60):
            batch = [server.request(aiocoap.Message(code=Code.GET, uri=uri)).response]
            batch += [
                server.request(aiocoap.Message(code=Code.GET, uri=uri)).response for _ in range(49)
            ]
            responses = await asyncio.wait_for(asyncio.gather(*batch), TIMEOUT)
            assert {(r.code, r.payload) for r in responses} == {(Code.CONTENT, b"ACME")}
            largest = max(largest, len(cache))
    finally:
        await server.shutdown()
        await client.shutdown()
    assert largest == bound, "the cache filled up to its bound and no further"
    assert cache.evicted >= 3000 - bound


@pytest.mark.parametrize("tuning", [aiocoap.Unreliable, aiocoap.Reliable], ids=["NON", "CON"])
async def test_messages_wait_for_a_free_message_id_instead_of_reusing_a_live_one(
    tuning: type[aiocoap.TransportTuning],
) -> None:
    """A sender with only 8 Message IDs, live for 0.3 s, sends 30 requests at once: they go out
    as IDs free up (CONs one at a time, as NSTART=1 asks), and the receiver, which drops a
    Message ID it saw in the last 0.2 s as a duplicate, answers every one."""
    site = resource.Site()
    counter = Counter()
    site.add_resource(["count"], counter)
    receiver = await create_context(
        site, ("127.0.0.1", 0), limits=CoapLimits(dedup_con_window=0.2, dedup_non_window=0.2)
    )
    sender = await create_context(
        None,
        ("127.0.0.1", 0),
        limits=CoapLimits(message_ids=8, con_lifetime=0.3, non_lifetime=0.3),
    )
    uri = f"coap://127.0.0.1:{port_of(receiver)}/count"
    mman = message_managers(sender)[0]
    try:
        requests = [
            sender.request(
                aiocoap.Message(code=Code.GET, uri=uri, transport_tuning=tuning())
            ).response
            for _ in range(30)
        ]
        await asyncio.wait_for(held_back(mman), TIMEOUT)
        responses = await asyncio.wait_for(asyncio.gather(*requests), TIMEOUT)
    finally:
        await sender.shutdown()
        await receiver.shutdown()
    assert sorted(int(r.payload) for r in responses) == list(range(1, 31))
    assert mman.held == 0


async def test_beyond_the_held_limit_a_message_fails_at_once() -> None:
    """One Message ID, live for a minute, and room to hold two messages: the first request goes
    out, two wait, and the fourth fails with a network error instead of queueing."""
    receiver = await create_context(resource.Site(), ("127.0.0.1", 0))
    sender = await create_context(
        None, ("127.0.0.1", 0), limits=CoapLimits(message_ids=1, held_per_peer=2)
    )
    uri = f"coap://127.0.0.1:{port_of(receiver)}/nothing"
    mman = message_managers(sender)[0]

    def request() -> asyncio.Future[aiocoap.Message]:
        message = aiocoap.Message(code=Code.GET, uri=uri, transport_tuning=aiocoap.Unreliable())
        return asyncio.ensure_future(sender.request(message).response)

    try:
        first = await asyncio.wait_for(request(), TIMEOUT)
        assert first.code == Code.NOT_FOUND
        waiting = []
        for held in (1, 2):  # one at a time, so that they are held in this order
            waiting.append(request())
            await asyncio.wait_for(held_back(mman, held), TIMEOUT)
        with pytest.raises(aiocoap.error.NetworkError):
            await asyncio.wait_for(request(), TIMEOUT)
        assert mman.held == 2
    finally:
        await sender.shutdown()
        await receiver.shutdown()
    for held_request in waiting:
        with pytest.raises(aiocoap.error.LibraryShutdown):
            await held_request
