"""A batch of malformed CoAP and LwM2M requests against a running client.

Every request of the tables below is sent to the real client (its aiocoap socket on
127.0.0.1) from the server's own address and port (the client serves no other), the raw
datagrams too. Each must get its code (or, for what is not a CoAP request, the CoAP reaction:
silence, a Reset); afterwards the client still answers a normal Read, is still registered, and
nothing was logged with a traceback (an exception that escaped the engine or aiocoap).

Block-wise bodies (Block1) are sent block by block the same way, so each answer is seen: 2.31
Continue for a block that is taken, 4.13 at the first block past the 64 KiB bound (with Size1
telling the bound), 4.08 for a block that does not follow on.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiocoap
import cbor2
import pytest
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption, OpaqueOption

from bridged.engine.client import LwM2MClient
from bridged.engine.dm import MAX_PAYLOAD
from bridged.engine.sockets import SharedEngine
from bridged.objects.formats import ContentFormat as CF
from bridged.objects.values import MAX_STRING_BYTES
from peers.gateway import ENDPOINT, PROBE_VALUES, Gateway, gateway, running_client
from peers.lwm2m_server import LwM2MTestServer

ANSWER_TIMEOUT = 5.0


@dataclass(frozen=True)
class Case:
    """One request and the code it must get."""

    method: Code
    path: str
    expected: Code
    payload: bytes = b""
    content_format: int | None = None
    accept: int | None = None
    query: tuple[str, ...] = ()

    def __str__(self) -> str:
        extra = [f"{k}={v}" for k, v in (("cf", self.content_format), ("accept", self.accept)) if v]
        q = "?" + "&".join(self.query) if self.query else ""
        return f"{self.method} {self.path}{q} {' '.join(extra)} {self.payload[:24]!r}"


SECURITY = [  # LightweightM2M-1.1-int-221: /0 (and /21) are for the bootstrap server only
    Case(Code.GET, "/0", Code.UNAUTHORIZED),
    Case(Code.GET, "/0/0/0", Code.UNAUTHORIZED),
    Case(Code.GET, "/0/0", Code.UNAUTHORIZED, accept=CF.LINK_FORMAT),
    Case(Code.PUT, "/0/0/0", Code.UNAUTHORIZED, b"coap://evil", CF.TEXT),
    Case(Code.PUT, "/0/0/0", Code.UNAUTHORIZED, query=("pmin=1",)),
    Case(Code.POST, "/0", Code.UNAUTHORIZED, b'[{"n":"/0/1/0","vs":"x"}]', CF.SENML_JSON),
    Case(Code.POST, "/0/0/0", Code.UNAUTHORIZED),
    Case(Code.DELETE, "/0/0", Code.UNAUTHORIZED),
    Case(Code.GET, "/21", Code.UNAUTHORIZED),
    Case(Code.FETCH, "/", Code.UNAUTHORIZED, b'[{"n":"/0/0/0"}]', CF.SENML_JSON),
    Case(Code.iPATCH, "/", Code.UNAUTHORIZED, b'[{"n":"/0/0/0","vs":"x"}]', CF.SENML_JSON),
]

WRITE_FAILURES = [  # LightweightM2M-1.1-int-256: a failed write changes nothing
    # truncated TLV: a header cut short, a length beyond the payload
    Case(Code.PUT, "/32771/0/0", Code.BAD_REQUEST, bytes.fromhex("c8"), CF.TLV),
    Case(Code.PUT, "/32771/0/0", Code.BAD_REQUEST, bytes.fromhex("c80005616263"), CF.TLV),
    Case(Code.PUT, "/32771/0", Code.BAD_REQUEST, bytes.fromhex("c1020a00"), CF.TLV),
    # bad CBOR, bad JSON
    Case(Code.PUT, "/32771/0/0", Code.BAD_REQUEST, b"\xff\xff", CF.SENML_CBOR),
    Case(Code.PUT, "/32771/0/0", Code.BAD_REQUEST, b"\xa1", CF.LWM2M_CBOR),
    Case(Code.PUT, "/32771/0/0", Code.BAD_REQUEST, b"\xff", CF.CBOR),
    Case(Code.PUT, "/32771/0", Code.BAD_REQUEST, cbor2.dumps({1: 2}), CF.SENML_CBOR),
    Case(Code.PUT, "/32771/0/0", Code.BAD_REQUEST, b"[{", CF.SENML_JSON),
    Case(Code.PUT, "/32771/0/0", Code.BAD_REQUEST, b'{"e":', CF.LWM2M_JSON),
    Case(Code.PUT, "/32771/0/0", Code.BAD_REQUEST, b'"just a string"', CF.LWM2M_JSON),
    # wrong types
    Case(Code.PUT, "/32771/0/2", Code.BAD_REQUEST, b"abc", CF.TEXT),
    Case(Code.PUT, "/32771/0/2", Code.BAD_REQUEST, b'[{"n":"/32771/0/2","vs":"x"}]', CF.SENML_JSON),
    Case(Code.PUT, "/32771/0/2", Code.BAD_REQUEST, b'[{"n":"/32771/0/2","v":1.5}]', CF.SENML_JSON),
    Case(
        Code.PUT,
        "/32771/0",
        Code.BAD_REQUEST,
        cbor2.dumps([{0: "/32771/0/2", 3: "x"}]),
        CF.SENML_CBOR,
    ),
    Case(Code.PUT, "/32771/0/3", Code.BAD_REQUEST, b"-1", CF.TEXT),
    Case(Code.PUT, "/32771/0/5", Code.BAD_REQUEST, b"2", CF.TEXT),
    Case(Code.PUT, "/32771/0/5", Code.BAD_REQUEST, b"\xff", CF.TEXT),
    Case(Code.PUT, "/32771/0/4", Code.BAD_REQUEST, b"nan", CF.TEXT),
    Case(Code.PUT, "/32771/0/7", Code.BAD_REQUEST, b"3303", CF.TEXT),
    Case(Code.PUT, "/32771/0/1", Code.BAD_REQUEST, b"!!!", CF.TEXT),
    Case(Code.PUT, "/32771/0/8", Code.BAD_REQUEST, b'[{"n":"/32771/0/8","v":1}]', CF.SENML_JSON),
    # out-of-range values
    Case(Code.PUT, "/32771/0/2", Code.BAD_REQUEST, b"101", CF.TEXT),
    Case(
        Code.PUT, "/32771/0/2", Code.BAD_REQUEST, b'[{"n":"/32771/0/2","v":1e400}]', CF.SENML_JSON
    ),
    Case(Code.PUT, "/32771/0", Code.BAD_REQUEST, cbor2.dumps([{0: "/32771/0/3", 2: 2**70}]), 112),
    Case(Code.iPATCH, "/", Code.BAD_REQUEST, b'[{"n":"/32771/0/2","v":500}]', CF.SENML_JSON),
    # a value outside the target, a resource the object does not have
    Case(Code.PUT, "/32771/0", Code.BAD_REQUEST, b'[{"n":"/3303/0/5750","vs":"x"}]', 110),
    Case(Code.PUT, "/32771/0", Code.NOT_FOUND, b'[{"n":"/32771/0/99","v":1}]', CF.SENML_JSON),
    # read-only resources: 4.05, also inside an instance write or a composite write
    Case(Code.PUT, "/3/0/0", Code.METHOD_NOT_ALLOWED, b"Evil Corp", CF.TEXT),
    Case(Code.PUT, "/32771/0/9", Code.METHOD_NOT_ALLOWED, b"x", CF.TEXT),
    Case(Code.POST, "/32771/0", Code.METHOD_NOT_ALLOWED, b'[{"n":"/32771/0/9","vs":"x"}]', 110),
    Case(Code.iPATCH, "/", Code.METHOD_NOT_ALLOWED, b'[{"n":"/3/0/0","vs":"x"}]', 110),
    # unsupported Content-Format: 4.15
    Case(Code.PUT, "/32771/0/2", Code.UNSUPPORTED_CONTENT_FORMAT, b"1", 50),  # application/json
    Case(Code.PUT, "/32771/0/2", Code.UNSUPPORTED_CONTENT_FORMAT, b"1", 9999),
    Case(Code.PUT, "/32771/0/2", Code.UNSUPPORTED_CONTENT_FORMAT, b"1"),
    Case(Code.PUT, "/32771/0/2", Code.UNSUPPORTED_CONTENT_FORMAT, b"\x01", CF.OPAQUE),
    Case(Code.PUT, "/32771/0", Code.UNSUPPORTED_CONTENT_FORMAT, b"x", CF.TEXT),
    Case(Code.POST, "/32771/0", Code.UNSUPPORTED_CONTENT_FORMAT, b"</1>", CF.LINK_FORMAT),
    Case(Code.iPATCH, "/", Code.UNSUPPORTED_CONTENT_FORMAT, b"x", CF.TLV),
    # too large: 4.13 (sent with Block1 by the server's aiocoap)
    Case(Code.PUT, "/32771/0/0", Code.REQUEST_ENTITY_TOO_LARGE, b"x" * (MAX_PAYLOAD + 1), 0),
]

OTHERS = [
    # bad paths: non-numeric, too deep, out-of-range or non-canonical IDs
    Case(Code.GET, "/abc", Code.NOT_FOUND),
    Case(Code.GET, "/dev1/3/0", Code.NOT_FOUND),
    Case(Code.GET, "/3/x", Code.BAD_REQUEST),
    Case(Code.GET, "/3/0/0/0/0", Code.BAD_REQUEST),
    Case(Code.GET, "/70000", Code.BAD_REQUEST),
    Case(Code.GET, "/65535", Code.BAD_REQUEST),
    Case(Code.GET, "/03", Code.BAD_REQUEST),
    Case(Code.GET, "/3/" + "9" * 30, Code.BAD_REQUEST),
    # unknown objects, instances, resources
    Case(Code.GET, "/9999", Code.NOT_FOUND),
    Case(Code.GET, "/5", Code.NOT_FOUND),
    Case(Code.GET, "/3303/7", Code.NOT_FOUND),
    Case(Code.GET, "/3303/0/9999", Code.NOT_FOUND),
    Case(Code.GET, "/32771/0/8/5", Code.NOT_FOUND),
    Case(Code.GET, "/9999/0", Code.NOT_FOUND, accept=CF.LINK_FORMAT),
    Case(Code.PUT, "/9999/0/0", Code.NOT_FOUND, query=("pmin=1",)),
    Case(Code.iPATCH, "/", Code.NOT_FOUND, b'[{"n":"/9999/0/0","vs":"x"}]', CF.SENML_JSON),
    Case(Code.iPATCH, "/", Code.NOT_FOUND, b'[{"n":"/32771/5/2","v":5}]', CF.SENML_JSON),
    Case(Code.DELETE, "/3303/7", Code.NOT_FOUND),
    Case(Code.POST, "/32771/0/99", Code.NOT_FOUND),
    # wrong methods for the target
    Case(Code.GET, "/", Code.METHOD_NOT_ALLOWED),
    Case(Code.GET, "/3303/0/5605", Code.METHOD_NOT_ALLOWED),
    Case(Code.POST, "/3/0/0/0", Code.METHOD_NOT_ALLOWED),
    Case(Code.POST, "/32771/0/2", Code.METHOD_NOT_ALLOWED),
    Case(Code.DELETE, "/3/0", Code.METHOD_NOT_ALLOWED),
    Case(Code.DELETE, "/3", Code.METHOD_NOT_ALLOWED),
    Case(Code.DELETE, "/3303/0/5700", Code.METHOD_NOT_ALLOWED),
    Case(Code.PATCH, "/3/0/0", Code.METHOD_NOT_ALLOWED, b"x", CF.TEXT),
    Case(Code.FETCH, "/3/0", Code.BAD_REQUEST, b'[{"n":"/3/0/0"}]', CF.SENML_JSON),
    Case(Code.iPATCH, "/3/0", Code.BAD_REQUEST, b"[]", CF.SENML_JSON),
    # unacceptable Accept: 4.06
    Case(Code.GET, "/32771/0", Code.NOT_ACCEPTABLE, accept=60),
    Case(Code.GET, "/32771/0/2", Code.NOT_ACCEPTABLE, accept=CF.OPAQUE),
    Case(Code.GET, "/32771/0", Code.NOT_ACCEPTABLE, accept=CF.TEXT),
    Case(Code.GET, "/32771/0/8", Code.NOT_ACCEPTABLE, accept=CF.TEXT),
    Case(Code.FETCH, "/", Code.NOT_ACCEPTABLE, b'[{"n":"/3/0/0"}]', CF.SENML_JSON, CF.TLV),
    # composite requests with bad bodies
    Case(Code.FETCH, "/", Code.BAD_REQUEST, b"", CF.SENML_JSON),
    Case(Code.FETCH, "/", Code.BAD_REQUEST, b"\x9f", CF.SENML_CBOR),
    Case(Code.FETCH, "/", Code.UNSUPPORTED_CONTENT_FORMAT, b'[{"n":"/3/0/0"}]', CF.TEXT),
    Case(Code.FETCH, "/", Code.UNSUPPORTED_CONTENT_FORMAT, b'[{"n":"/3/0/0"}]'),
    Case(Code.iPATCH, "/", Code.BAD_REQUEST, b'[{"n":"/32771/0/2"}]', CF.SENML_JSON),
    # Execute with bad argument syntax: 4.00
    Case(Code.POST, "/32771/0/10", Code.BAD_REQUEST, b"1='a", CF.TEXT),
    Case(Code.POST, "/32771/0/10", Code.BAD_REQUEST, b"1='a',1='b'", CF.TEXT),
    Case(Code.POST, "/32771/0/10", Code.BAD_REQUEST, b"a=1", CF.TEXT),
    Case(Code.POST, "/32771/0/10", Code.BAD_REQUEST, b"10", CF.TEXT),
    Case(Code.POST, "/32771/0/10", Code.BAD_REQUEST, b"1='\"'", CF.TEXT),
    Case(Code.POST, "/32771/0/10", Code.BAD_REQUEST, b"1='\xff'", CF.TEXT),
    Case(Code.POST, "/32771/0/10", Code.UNSUPPORTED_CONTENT_FORMAT, b"1", CF.OPAQUE),
    # Create and Write-Attributes gone wrong
    Case(Code.POST, "/32771", Code.BAD_REQUEST, b'[{"n":"/32771/0/0","vs":"dup"}]', 110),
    Case(Code.POST, "/3", Code.METHOD_NOT_ALLOWED, b'[{"n":"/3/1/0","vs":"x"}]', 110),
    Case(Code.POST, "/32771", Code.UNSUPPORTED_CONTENT_FORMAT, b"x"),
    Case(Code.POST, "/32771", Code.BAD_REQUEST, b"\x00", CF.TLV),
    Case(Code.PUT, "/32771/0/2", Code.BAD_REQUEST, query=("pmin=abc",)),
    Case(Code.PUT, "/32771/0/2", Code.BAD_REQUEST, query=("pmin=1", "pmin=2")),
    Case(Code.PUT, "/32771/0/2", Code.BAD_REQUEST, query=("foo=1",)),
    Case(Code.PUT, "/32771/0/2", Code.BAD_REQUEST, query=("st=-1",)),
    Case(Code.PUT, "/32771/0/2", Code.BAD_REQUEST, query=("gt=5", "lt=10")),
    Case(Code.PUT, "/32771/0/2", Code.BAD_REQUEST, query=("gt=10", "lt=5", "st=3")),
    Case(Code.PUT, "/32771/0/0", Code.BAD_REQUEST, query=("gt=1",)),
    Case(Code.PUT, "/3/0", Code.BAD_REQUEST, query=("lt=1",)),
]

BATCH = SECURITY + WRITE_FAILURES + OTHERS


@dataclass(frozen=True)
class Datagram:
    """A raw UDP datagram and the CoAP reaction it must get: ``None`` for silence, else the
    (message type, code) of the answer (type 2 is ACK, 3 is RST)."""

    name: str
    data: bytes
    answer: tuple[int, Code] | None


ACK, RST = 2, 3


def coap(type_: int, code: int, mid: int, token: bytes = b"", rest: bytes = b"") -> bytes:
    """A CoAP header (version 1) with token, followed by raw options and payload."""
    return bytes([0x40 | type_ << 4 | len(token), code]) + mid.to_bytes(2, "big") + token + rest


GARBAGE = [
    Datagram("empty datagram", b"", None),
    Datagram("one byte", b"\x00", None),
    Datagram("text", b"hello world", None),
    Datagram("all zeros", bytes(600), None),
    Datagram("CoAP version 2", b"\x80\x01\x12\x34", None),
    Datagram("option delta 15 (reserved)", coap(0, 1, 0x1236, rest=b"\xf0"), None),
    Datagram("option length 15 (reserved)", coap(0, 1, 0x1237, rest=b"\x1f"), None),
    Datagram("option longer than the datagram", coap(0, 1, 0x1238, rest=b"\xb5\x33"), None),
    Datagram("unsolicited empty ACK", coap(2, 0, 0x1239), None),
    Datagram("unsolicited RST", coap(3, 0, 0x123A), None),
    Datagram("CoAP ping", coap(0, 0, 0x123B), (RST, Code.EMPTY)),
    Datagram(
        "CON response instead of a request", coap(0, 0x45, 0x123C, b"\x01"), (RST, Code.EMPTY)
    ),
    Datagram("GET without a path", coap(0, 1, 0x123D, b"\x02"), (ACK, Code.METHOD_NOT_ALLOWED)),
    Datagram(
        "unknown method code 0.31",
        coap(0, 31, 0x123F, b"\x04", b"\xb1\x33"),
        (ACK, Code.METHOD_NOT_ALLOWED),
    ),
]


def with_options(
    code: Code,
    path: str,
    *options: tuple[int, bytes],
    mid: int,
    payload: bytes = b"",
    token: bytes = b"\x21",
    type_: int = 0,
) -> bytes:
    """A request with raw ``options`` (number, value) besides its Uri-Path, encoded by aiocoap."""
    message = aiocoap.Message(code=code, uri_path=[s for s in path.split("/") if s])
    for number, value in options:
        message.opt.add_option(OpaqueOption(number, value))
    if payload:
        message.payload, message.opt.content_format = payload, CF.TEXT
    message.mtype, message.mid, message.token = aiocoap.Type(type_), mid, token
    return bytes(message.encode())


IF_MATCH, URI_HOST, IF_NONE_MATCH, URI_PORT, OSCORE = 1, 3, 5, 7, 9
ACCEPT, Q_BLOCK1, EDHOC, Q_BLOCK2, BLOCK1, PROXY_URI, PROXY_SCHEME = 17, 19, 21, 31, 27, 35, 39

BAD_OPTIONS: list[tuple[str, Code, str, list[tuple[int, bytes]], bytes]] = [
    # RFC 7252 5.4.1: critical options the client does not serve are refused, not ignored
    ("If-None-Match on GET", Code.GET, "/3/0/0", [(IF_NONE_MATCH, b"")], b""),
    ("If-Match on PUT (no ETags here)", Code.PUT, "/32771/0/0", [(IF_MATCH, b"\x01")], b"new"),
    ("If-Match on GET", Code.GET, "/3/0/0", [(IF_MATCH, b"")], b""),
    ("OSCORE", Code.GET, "/3/0/0", [(OSCORE, b"\x09\x00")], b""),
    ("EDHOC", Code.GET, "/3/0/0", [(EDHOC, b"")], b""),
    ("Q-Block2", Code.GET, "/3/0/0", [(Q_BLOCK2, b"\x00")], b""),
    ("Q-Block1", Code.PUT, "/32771/0/0", [(Q_BLOCK1, b"\x00")], b"x"),
    ("Block1 on GET", Code.GET, "/3/0/0", [(BLOCK1, b"\x00")], b""),
    ("Accept twice", Code.GET, "/3/0/0", [(ACCEPT, b""), (ACCEPT, b"")], b""),
    ("Uri-Port twice", Code.GET, "/3/0/0", [(URI_PORT, b"\x16\x33"), (URI_PORT, b"\x16")], b""),
    ("unknown critical option 2049", Code.GET, "/3/0/0", [(2049, b"x")], b""),
]

OPTIONS = [
    *(
        Datagram(name, with_options(method, path, *opts, mid=0x1400 + i, payload=payload), bad)
        for i, (name, method, path, opts, payload) in enumerate(BAD_OPTIONS)
        for bad in [(ACK, Code.BAD_OPTION)]
    ),
    # RFC 7252 5.10.2: not a forward proxy
    Datagram(
        "Proxy-Uri",
        with_options(Code.GET, "/", (PROXY_URI, b"coap://127.0.0.1/3/0/0"), mid=0x1420),
        (ACK, Code.PROXYING_NOT_SUPPORTED),
    ),
    Datagram(
        "Proxy-Scheme",
        with_options(Code.GET, "/3/0/0", (PROXY_SCHEME, b"coap"), mid=0x1421),
        (ACK, Code.PROXYING_NOT_SUPPORTED),
    ),
    # RFC 7252 3: token lengths 9-15 are a message format error
    Datagram(
        "9-byte token, CON",
        with_options(Code.GET, "/3/0/0", mid=0x1422, token=bytes(9)),
        (RST, Code.EMPTY),
    ),
    Datagram(
        "15-byte token, NON",
        with_options(Code.GET, "/3/0/0", mid=0x1423, token=bytes(15), type_=1),
        None,
    ),
    # what is served: Uri-Host and Uri-Port once, Accept once, elective options unknown
    Datagram(
        "Uri-Host, Uri-Port, Accept, unknown elective",
        with_options(
            Code.GET,
            "/3/0/0",
            (URI_HOST, b"gw"),
            (URI_PORT, b"\x16\x33"),
            (ACCEPT, b""),
            (2048, b"x"),
            mid=0x1424,
        ),
        (ACK, Code.CONTENT),
    ),
]


@pytest.fixture
def gw() -> Gateway:
    return gateway()


@pytest.fixture(params=["own context"])
async def client(
    request: pytest.FixtureRequest, gw: Gateway, server: LwM2MTestServer
) -> AsyncIterator[LwM2MClient]:
    """The client on a context of its own, or (parametrized ``"shared engine"``) on a socket
    of the endpoints mode's shared engine, which reads its sockets itself."""
    if request.param == "own context":
        async with running_client(gw, server.uri) as c:
            await server.next_event("register")
            yield c
        return
    engine = SharedEngine()
    try:
        async with running_client(gw, server.uri, udp=engine.open) as c:
            await server.next_event("register")
            yield c
    finally:
        await engine.shutdown()


ON_BOTH = pytest.mark.parametrize("client", ["own context", "shared engine"], indirect=True)


async def send(server: LwM2MTestServer, case: Case) -> Code:
    response = await server.request(
        ENDPOINT,
        case.method,
        case.path,
        case.payload,
        content_format=case.content_format,
        accept=case.accept,
        query=case.query,
        timeout=ANSWER_TIMEOUT,
    )
    return Code(response.code)


async def run_batch(server: LwM2MTestServer, cases: list[Case]) -> list[str]:
    """Send every case; return a line for each one that got another code."""
    wrong = []
    for case in cases:
        code = await send(server, case)
        if code != case.expected:
            wrong.append(f"{case}: expected {case.expected}, got {code}")
    return wrong


async def exchange_all(server: LwM2MTestServer, datagrams: list[Datagram]) -> list[str]:
    """Send every datagram from the server's socket; return a line for each one that got
    another reaction."""
    wrong = []
    for datagram in datagrams:
        answer = await server.exchange(ENDPOINT, datagram.data, ANSWER_TIMEOUT)
        got = None if answer is None else (answer[0] >> 4 & 3, Code(answer[1]))
        if got != datagram.answer:
            wrong.append(f"datagram {datagram.name}: expected {datagram.answer}, got {got}")
    return wrong


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.exc_info
    ]


async def assert_still_serving(server: LwM2MTestServer, client: LwM2MClient) -> None:
    """A normal Read answers, and the registration is alive on both sides: an Update trigger
    reaches the server."""
    response = await server.request(ENDPOINT, Code.GET, "/3303/0/5700")
    assert (response.code, response.payload) == (Code.CONTENT, b"21.5")
    assert client.sessions[0].registered
    assert ENDPOINT in server.clients
    response = await server.request(ENDPOINT, Code.POST, "/1/0/8")
    assert response.code == Code.CHANGED
    await server.next_event("update")


async def test_LightweightM2M_1_1_int_221_operations_on_security_fail(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-221: every operation of a LwM2M server on the Security object
    (and OSCORE) fails with 4.01, and the Security instance stays as it was."""
    before = client.tree.read(client.tree.instances().__next__())
    assert await run_batch(server, SECURITY) == []
    assert client.tree.read(client.tree.instances().__next__()) == before


async def test_LightweightM2M_1_1_int_256_write_operation_failure(
    gw: Gateway, client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-256: writes that cannot succeed get their error code and leave
    every value as it was."""
    assert await run_batch(server, WRITE_FAILURES) == []
    for rid, value in PROBE_VALUES.items():
        assert gw.value(f"/32771/0/{rid}") == value
    assert gw.value("/3/0/0") == "Raspberry Pi Ltd"
    assert gw.value("/3303/0/5750") == "kitchen"


@ON_BOTH
async def test_malformed_request_batch(
    client: LwM2MClient, server: LwM2MTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole batch, LwM2M requests and raw datagrams, against one client: each gets its
    code, and the client comes out of it serving and registered, with nothing escaped."""
    wrong = await run_batch(server, BATCH) + await exchange_all(server, GARBAGE)
    assert wrong == [], "\n".join(wrong)
    await assert_still_serving(server, client)
    assert tracebacks(caplog) == []


async def test_unknown_critical_option_is_a_bad_option(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """RFC 7252 5.4.1: a CON request with an unrecognised critical option gets 4.02."""
    # Uri-Path "3", then option 65003 (odd: critical): delta 64992 = 269 + 0xFCD3
    request = coap(0, 1, 0x123E, b"\x03", b"\xb1\x33\xe1\xfc\xd3\x01")
    answer = await server.exchange(ENDPOINT, request)
    assert answer is not None and Code(answer[1]) == Code.BAD_OPTION


async def test_options_not_served_are_refused(
    gw: Gateway, client: LwM2MClient, server: LwM2MTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Each request with a critical option the client does not serve gets 4.02 (5.05 for the
    proxy options), a reserved token length is a format error, and nothing is served as if the
    option were absent: the conditional write changed nothing."""
    wrong = await exchange_all(server, OPTIONS)
    assert wrong == [], "\n".join(wrong)
    assert gw.value("/32771/0/0") == "probe"
    await assert_still_serving(server, client)
    assert tracebacks(caplog) == []


@ON_BOTH
async def test_uri_path_that_is_not_utf8_escapes_nothing(
    client: LwM2MClient, server: LwM2MTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A Uri-Path of bytes that are not UTF-8 is dropped or refused without a traceback."""
    answer = await server.exchange(ENDPOINT, coap(0, 1, 0x1300, b"\x06", b"\xb2\xff\xfe"))
    assert answer is None or Code(answer[1]) == Code.BAD_REQUEST
    await assert_still_serving(server, client)
    assert tracebacks(caplog) == []


@ON_BOTH
async def test_oversized_datagram_is_refused_not_truncated(
    gw: Gateway, client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """A single datagram larger than the client reads is refused with 4.13 (RFC 7959 2.9.3),
    never written cut short."""
    rest = b"\xb5" + b"32771" + b"\x01" + b"0" + b"\x01" + b"0" + b"\x10" + b"\xff" + b"y" * 5000
    answer = await server.exchange(ENDPOINT, coap(0, 3, 0x1301, b"\x07", rest))
    assert gw.value("/32771/0/0") == "probe"
    assert answer is not None and Code(answer[1]) == Code.REQUEST_ENTITY_TOO_LARGE


# -- Block1 (RFC 7959) sent block by block: each answer is seen -------------------------------

SIZE_EXPONENT = 6  # 1024-byte blocks
BLOCK = 1 << (SIZE_EXPONENT + 4)
TARGET = "/32771/0/0"  # a string resource of the probe object


def block(number: int, *, more: bool = True, mid: int, size1: int | None = None) -> bytes:
    """Block ``number`` of a text Write to ``TARGET``, a CON with Message ID ``mid``."""
    message = aiocoap.Message(code=Code.PUT, uri_path=[s for s in TARGET.split("/") if s])
    message.payload = b"x" * BLOCK
    message.opt.content_format = CF.TEXT
    message.opt.block1 = BlockOption.BlockwiseTuple(number, more, SIZE_EXPONENT)
    if size1 is not None:
        message.opt.size1 = size1
    message.mtype, message.mid, message.token = aiocoap.CON, mid, bytes([number & 0xFF])
    return bytes(message.encode())


async def answer(server: LwM2MTestServer, datagram: bytes) -> aiocoap.Message:
    raw = await server.exchange(ENDPOINT, datagram)
    assert raw is not None, "no answer"
    return aiocoap.Message.decode(raw)


async def test_the_first_block_past_the_bound_is_refused(
    gw: Gateway, client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """Blocks up to 64 KiB are taken (2.31); the first one beyond gets 4.13 with Size1, before
    any more is kept, and the transfer is over: its next block is 4.08. Nothing was written."""
    blocks = MAX_PAYLOAD // BLOCK
    for n in range(blocks):
        taken = await answer(server, block(n, mid=0x2000 + n))
        assert taken.code == Code.CONTINUE, (n, taken)
    refused = await answer(server, block(blocks, mid=0x2000 + blocks))
    assert (refused.code, refused.opt.size1) == (Code.REQUEST_ENTITY_TOO_LARGE, MAX_PAYLOAD)
    after = await answer(server, block(blocks + 1, mid=0x2000 + blocks + 1))
    assert after.code == Code.REQUEST_ENTITY_INCOMPLETE
    assert gw.value(TARGET) == "probe"


async def test_a_first_block_announcing_too_much_is_refused(
    gw: Gateway, client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """RFC 7959 §4: Size1 in the first block announces the body's size; over the bound, the
    transfer is refused at once."""
    refused = await answer(server, block(0, mid=0x2100, size1=16 * 1024 * 1024))
    assert (refused.code, refused.opt.size1) == (Code.REQUEST_ENTITY_TOO_LARGE, MAX_PAYLOAD)


async def test_a_broken_block_sequence_is_incomplete(
    gw: Gateway, client: LwM2MClient, server: LwM2MTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A block that skips one, and a block with no transfer in progress, get 4.08 (RFC 7959
    §2.9.2), without an error in the log; a write after them works."""
    assert (await answer(server, block(0, mid=0x2200))).code == Code.CONTINUE
    assert (await answer(server, block(2, mid=0x2201))).code == Code.REQUEST_ENTITY_INCOMPLETE
    assert (await answer(server, block(5, mid=0x2202))).code == Code.REQUEST_ENTITY_INCOMPLETE
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    assert gw.value(TARGET) == "probe"
    body = "y" * (MAX_STRING_BYTES - 1)  # several blocks, within what a string may hold
    written = await server.request(
        ENDPOINT, Code.PUT, TARGET, body.encode(), content_format=CF.TEXT
    )
    assert written.code == Code.CHANGED
    assert gw.value(TARGET) == body
