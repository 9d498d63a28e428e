"""A server's plain Read answered inline (``bridged.engine.serving``): the same response as the
general path, and only for the requests the inline answer is meant for.

Each request is answered both ways: inline (``CheckedSite.answer_now``, what the message layer
asks as the request arrives) and the general way aiocoap runs in a task
(``CheckedSite.render_to_pipe``); the responses must match in code, options and payload. On
the wire, a real context answers a datagram inline and one whose inline answer is switched off
answers it the general way: the datagrams must be equal byte for byte, a duplicate must get
the first answer's bytes again, and what the inline answer is not for (Observe, NON, No-Response,
a token still in use) must be answered as the general path answers it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable

import aiocoap
import pytest
from aiocoap import resource
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import ACK, CON, NON
from aiocoap.optiontypes import BlockOption
from aiocoap.pipe import Pipe
from aiocoap.transports.udp6 import UDP6EndpointAddress

from bridged.engine.coap import create_context, message_managers
from bridged.engine.dm import DeviceManagement, DeviceManagementResource, Reply, reply_message
from bridged.engine.observe import Observations
from bridged.engine.options import CheckedSite
from bridged.objects.builtin import builtin_definitions
from bridged.objects.formats import ContentFormat
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree

log = logging.getLogger(__name__)

LONG = "M" * 2000  # more than one 1024-byte block
Answer = tuple[Code, bytes, bytes]
"""A response as the server gets it: code, encoded options, payload."""


def site() -> CheckedSite:
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(0, 0, [(0, "coap://127.0.0.1"), (1, False), (2, 3)])
    tree.create_instance(3, 0, [(0, LONG), (1, "GW-1"), (11, {0: 0}), (16, "U")])
    tree.create_instance(3303, 0, [(5700, 21.5), (5750, "kitchen")])
    tree.on_execute(3, 4, lambda path, args: None)
    dm = DeviceManagement(tree)
    return CheckedSite(DeviceManagementResource(dm, Observations(dm)))


@pytest.fixture(autouse=True)
async def server_address() -> AsyncIterator[None]:
    """The address requests come from: a server's on a real UDP socket (aiocoap's Block2
    handling asks it its block size)."""
    global SERVER
    context = await create_context(None, ("::1", 0))
    interface = context.request_interfaces[0].token_interface.message_interface
    SERVER = UDP6EndpointAddress(("::ffff:127.0.0.1", 5683, 0, 0), interface)
    yield
    await context.shutdown()


SERVER: UDP6EndpointAddress


def request(path: str, edit: Callable[[aiocoap.Message], None] = lambda m: None) -> aiocoap.Message:
    message = aiocoap.Message(code=Code.GET, uri_path=[s for s in path.split("/") if s])
    message.mtype, message.mid, message.token, message.remote = CON, 1, b"t", SERVER
    edit(message)
    return message


def collect(message: aiocoap.Message) -> tuple[Pipe, list[Answer]]:
    pipe = Pipe(message, log)
    answers: list[Answer] = []

    def on_event(event: Pipe.Event) -> bool:
        assert event.message is not None, event.exception
        m = event.message
        answers.append((m.code, m.opt.encode(), bytes(m.payload)))
        return not event.is_last

    pipe.on_event(on_event)
    return pipe, answers


def inline(served: CheckedSite, message: aiocoap.Message) -> list[Answer] | None:
    m = served.answer_now(message)
    if isinstance(m, Reply):
        m = reply_message(m)
    return None if m is None else [(m.code, m.opt.encode(), bytes(m.payload))]


async def general(served: CheckedSite, message: aiocoap.Message) -> list[Answer]:
    pipe, answers = collect(message)
    await served.render_to_pipe(pipe)
    return answers


def accept(number: int) -> Callable[[aiocoap.Message], None]:
    return lambda m: setattr(m.opt, "accept", number)


def block2(number: int, szx: int) -> Callable[[aiocoap.Message], None]:
    return lambda m: setattr(m.opt, "block2", BlockOption.BlockwiseTuple(number, False, szx))


def if_none_match(m: aiocoap.Message) -> None:
    m.opt.if_none_match = True


READS = {
    "text/plain resource": ("/3/0/1", None),
    "TLV instance": ("/3/0", accept(ContentFormat.TLV)),
    "SenML CBOR instance": ("/3303/0", accept(ContentFormat.SENML_CBOR)),
    "object (tree only)": ("/3303", accept(ContentFormat.SENML_JSON)),
    "Discover": ("/3/0", accept(ContentFormat.LINK_FORMAT)),
    "a large value: its first block": ("/3/0/0", None),
    "a large value: block 0 of 64 bytes": ("/3/0/0", block2(0, 2)),
    "absent: 4.04": ("/3/7", None),
    "not readable: 4.05": ("/3/0/4", None),
    "unsupported Accept: 4.06": ("/3/0", accept(9999)),
    "Security object: 4.01": ("/0/0", None),
    "unserved critical option: 4.02": ("/3/0/1", if_none_match),
    "a name that is no path: 4.04": ("/nosuchdevice/3/0", None),
}


@pytest.mark.parametrize("case", READS.values(), ids=READS.keys())
async def test_a_read_answered_inline_is_the_general_paths_answer(
    case: tuple[str, Callable[[aiocoap.Message], None] | None],
) -> None:
    path, edit = case
    served = site()
    got = inline(served, request(path, edit or (lambda m: None)))
    assert got is not None, "answered inline"
    assert got == await general(site(), request(path, edit or (lambda m: None)))
    assert len(got) == 1


async def test_the_blocks_after_an_inline_first_block_come_from_the_same_response() -> None:
    """The first block answered inline leaves the whole response where aiocoap's general path
    finds the later blocks (RFC 7959 §2.4: every block of one representation)."""
    served = site()
    first = inline(served, request("/3/0/0", block2(0, 6)))
    assert first is not None and first[0][0] == Code.CONTENT
    payload, number = first[0][2], 1
    while True:
        message = request("/3/0/0", block2(number, 6))
        assert inline(served, request("/3/0/0", block2(number, 6))) is None
        [(code, _options, part)] = await general(served, message)
        assert code == Code.CONTENT
        payload += part
        if len(part) < 1024:
            break
        number += 1
    assert payload == LONG.encode()


def put_block1(m: aiocoap.Message) -> None:
    m.code, m.opt.block1 = Code.PUT, BlockOption.BlockwiseTuple(0, True, 2)


OTHERS = {
    "Observe": lambda m: setattr(m.opt, "observe", 0),
    "cancelling Observe": lambda m: setattr(m.opt, "observe", 1),
    "a Write's first Block1 block": put_block1,
    "a Write": lambda m: setattr(m, "code", Code.PUT),
    "a Delete": lambda m: setattr(m, "code", Code.DELETE),
}


@pytest.mark.parametrize("edit", OTHERS.values(), ids=OTHERS.keys())
async def test_other_requests_are_left_to_the_general_path(
    edit: Callable[[aiocoap.Message], None],
) -> None:
    assert site().answer_now(request("/3303/0/5700", edit)) is None


class Slow(resource.Resource):
    """Answers once ``release`` is set: a request that cannot be answered at once."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        await self.release.wait()
        return aiocoap.Message(code=Code.CONTENT, payload=b"late")


async def test_a_request_not_answered_at_once_still_gets_an_empty_ack_then_its_response() -> None:
    """RFC 7252 §5.2.2: the empty-ACK timer is armed only for a request not answered inline,
    and such a request gets the empty ACK, then its response as a CON of its own."""
    slow = Slow()
    context = await create_context(slow, ("127.0.0.1", 0))
    port = context.request_interfaces[0].token_interface.message_interface._local_port()
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect(("127.0.0.1", port))
    try:
        get = aiocoap.Message(code=Code.GET)
        get.mtype, get.mid, get.token = CON, 0x1234, b"sl"
        await loop.sock_sendall(sock, get.encode())
        ack = aiocoap.Message.decode(await asyncio.wait_for(loop.sock_recv(sock, 1500), 10))
        assert (ack.mtype, ack.code, ack.mid, ack.token) == (ACK, Code.EMPTY, 0x1234, b"")
        slow.release.set()
        late = aiocoap.Message.decode(await asyncio.wait_for(loop.sock_recv(sock, 1500), 10))
        assert (late.mtype, late.code, late.token, late.payload) == (
            CON,
            Code.CONTENT,
            b"sl",
            b"late",
        )
    finally:
        sock.close()
        await context.shutdown()


# -- on the wire ---------------------------------------------------------------------------------


class Wire:
    """A real context serving ``served`` on loopback, and a client socket that sends it
    datagrams; ``inline=False`` switches the inline answer off (every request then takes
    aiocoap's general path)."""

    def __init__(self, context: aiocoap.Context, sock: socket.socket) -> None:
        self.context, self.sock = context, sock

    @classmethod
    async def open(cls, served: object, *, inline: bool = True) -> Wire:
        context = await create_context(served, ("127.0.0.1", 0))
        [mman] = message_managers(context)
        if not inline:
            mman.answer = None
        port = mman.message_interface._local_port()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect(("127.0.0.1", port))
        return cls(context, sock)

    async def ask(self, datagram: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self.sock, datagram)
        return await asyncio.wait_for(loop.sock_recv(self.sock, 4096), 10)

    async def close(self) -> None:
        self.sock.close()
        await self.context.shutdown()
        served = self.context.serversite.site
        if isinstance(served, DeviceManagementResource) and served.observations is not None:
            await served.observations.close()


def resource_of(served: CheckedSite) -> DeviceManagementResource:
    dmr = served.site
    assert isinstance(dmr, DeviceManagementResource)
    return dmr


def datagram(
    path: str, edit: Callable[[aiocoap.Message], None] = lambda m: None, mid: int = 0x4242
) -> bytes:
    message = aiocoap.Message(code=Code.GET, uri_path=[s for s in path.split("/") if s])
    message.mtype, message.mid, message.token = CON, mid, b"tk"
    edit(message)
    return bytes(message.encode())


@pytest.mark.parametrize("case", READS.values(), ids=READS.keys())
async def test_the_inline_datagram_is_the_general_paths_byte_for_byte(
    case: tuple[str, Callable[[aiocoap.Message], None] | None],
) -> None:
    path, edit = case
    ask = datagram(path, edit or (lambda m: None))
    fast, slow = (
        await Wire.open(resource_of(site())),
        await Wire.open(resource_of(site()), inline=False),
    )
    try:
        got = await fast.ask(ask)
        assert got == await slow.ask(ask)
        answer = aiocoap.Message.decode(got)
        assert (answer.mtype, answer.mid, answer.token) == (ACK, 0x4242, b"tk")
    finally:
        await fast.close()
        await slow.close()


async def test_a_duplicate_gets_the_inline_answers_bytes_again() -> None:
    """RFC 7252 §4.5: a duplicate CON gets the same response, not a new one: the value changed
    in between, and the duplicate still gets the bytes of the first answer."""
    served = site()
    wire = await Wire.open(resource_of(served))
    try:
        first = await wire.ask(datagram("/3303/0/5700"))
        resource_of(served).dm.tree.set(Path.parse("/3303/0/5700"), 30.0)
        assert await wire.ask(datagram("/3303/0/5700")) == first
        fresh = await wire.ask(datagram("/3303/0/5700", mid=0x4243))
        assert aiocoap.Message.decode(fresh).payload == b"30.0"
        assert aiocoap.Message.decode(first).payload == b"21.5"
    finally:
        await wire.close()


def no_response(m: aiocoap.Message) -> None:
    m.opt.no_response = 0  # suppress nothing: the response comes, by the general path


def non(m: aiocoap.Message) -> None:
    m.mtype = NON


NOT_INLINE = {
    "Observe": lambda m: setattr(m.opt, "observe", 0),
    "NON": non,
    "No-Response": no_response,
}


@pytest.mark.parametrize("edit", NOT_INLINE.values(), ids=NOT_INLINE.keys())
async def test_what_the_inline_answer_is_not_for_is_answered_by_the_general_path(
    edit: Callable[[aiocoap.Message], None],
) -> None:
    served = site()
    wire = await Wire.open(resource_of(served))
    [mman] = message_managers(wire.context)
    asked: list[aiocoap.Message] = []
    inline_answer = mman.answer
    assert inline_answer is not None

    def answer(request: aiocoap.Message) -> aiocoap.Message | None:
        response = inline_answer(request)
        asked.append(request)
        assert response is None, "not for the inline answer"
        return response

    mman.answer = answer
    try:
        answer_datagram = await wire.ask(datagram("/3303/0/5700", edit))
        response = aiocoap.Message.decode(answer_datagram)
        request = aiocoap.Message.decode(datagram("/3303/0/5700", edit))
        assert (response.code, response.payload) == (Code.CONTENT, b"21.5")
        assert response.token == b"tk"
        if request.opt.observe is not None:
            assert response.opt.observe is not None, "the observation was registered"
        else:
            assert asked == [], "the message layer did not ask"
        assert response.mtype == (NON if request.mtype == NON else ACK)
    finally:
        await wire.close()


async def test_a_read_on_a_token_still_in_use_ends_that_request_first() -> None:
    """A Read whose token an observation of the same server still uses: aiocoap's general path
    ends the observation before serving the Read (the token names one request at a time), so
    the inline answer leaves it to that path; the Read is answered all the same."""
    served = site()
    wire = await Wire.open(resource_of(served))
    try:
        observe = datagram("/3303/0/5700", lambda m: setattr(m.opt, "observe", 0), mid=1)
        assert aiocoap.Message.decode(await wire.ask(observe)).opt.observe is not None
        [tman] = wire.context.request_interfaces
        assert len(tman.incoming_requests) == 1
        read = aiocoap.Message.decode(await wire.ask(datagram("/3/0/1", mid=2)))
        assert (read.code, read.payload, read.opt.observe) == (Code.CONTENT, b"GW-1", None)
        assert tman.incoming_requests == {}
    finally:
        await wire.close()
