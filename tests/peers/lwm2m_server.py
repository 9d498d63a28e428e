"""An in-repo LwM2M server for the engine's tests, built on aiocoap.

It does what the independent peers cannot script: it records every registration interface
message (Register, Update, De-register, Send) as an event, refuses LwM2M versions on demand,
hands out multi-segment Location-Paths (or, with ``omit_location``, none at all), and sends
device-management requests to a registered client from its own address and port, as a real
server does (``exchange`` sends hand-made datagrams from there too, since a NoSec client serves
its server's address only). ``drop`` loses chosen datagrams before aiocoap sees them, as a lossy
network or an overloaded server would; ``reset`` answers chosen responses (notifications) with
an RST, as a server that forgot an observation does.

Send (``POST /dp``) is answered as a LwM2M 1.1 server does: 4.04 from a client it does not know
(which must register again), 4.15 for anything but SenML CBOR, 4.00 for a payload that
does not decode, else 2.04 (or ``send_code``, to test how the client takes an error). With
``strict_send`` it is as strict as Leshan: a Send naming an object instance the client's
registration does not list is 4.04 (``unlisted``). The SenML
CBOR payload is decoded here with cbor2 alone, independently of the engine's codec, so a test
sees the names, times and values as a server would. ``decode_timed`` does the same for a
notification in any format with times (SenML CBOR or JSON, LwM2M JSON 11543).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiocoap
import cbor2
from aiocoap import resource
from aiocoap.blockwise import Block1Spool
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption
from cryptography.x509 import Certificate

from bridged.engine.tinydtls import RawKey
from peers.dtls_rpk_server import rpk_server_context
from peers.dtls_x509_server import x509_server_context
from peers.pki import Issued


@dataclass
class ClientRecord:
    """What the server knows of one registered client."""

    endpoint: str
    location: tuple[str, ...]
    lifetime: int
    version: str
    binding: str
    queue: bool
    links: str
    remote: object
    query: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class SenMLRecord:
    """One record of a Send, resolved: full name, time (None: none given) and value."""

    name: str
    time: float | None
    value: object


@dataclass(frozen=True)
class ServerEvent:
    """One registration-interface message as the server saw it."""

    kind: str  # "register", "update", "deregister", "send", "bootstrap-request"
    endpoint: str
    query: dict[str, str | None]
    payload: bytes
    content_format: int | None
    code: Code
    records: tuple[SenMLRecord, ...] = ()  # a Send's decoded SenML CBOR
    messages: int = 1
    """The requests the body came in: its Block1 blocks (the last one's number + 1), else 1."""


_SENML_VALUES = (2, 3, 4, 8, "vlo")
"""RFC 8428 CBOR labels of v, vs, vb, vd, and LwM2M's object link "vlo"."""


def decode_senml_cbor(payload: bytes) -> tuple[SenMLRecord, ...]:
    """RFC 8428 resolution: name = bn + n, time = bt + t, with bn and bt inherited."""
    return _resolve(cbor2.loads(payload), (-2, -3, 0, 6), _SENML_VALUES)


_SENML_JSON_VALUES = ("v", "vs", "vb", "vd", "vlo")
_LWM2M_JSON_VALUES = ("v", "sv", "bv", "ov")


def _resolve(
    items: list[dict], keys: tuple[object, object, object, object], values: Iterable[object]
) -> tuple[SenMLRecord, ...]:
    """Name = bn + n and time = bt + t, with bn and bt inherited (``keys``: the labels of bn,
    bt, n and t)."""
    bn_key, bt_key, n_key, t_key = keys
    bn, bt = "", None
    out = []
    for item in items:
        bn = item.get(bn_key, bn)
        bt = item.get(bt_key, bt)
        t = item.get(t_key)
        time = None if t is None and bt is None else (bt or 0) + (t or 0)
        value = next(item[k] for k in values if k in item)
        out.append(SenMLRecord(bn + item.get(n_key, ""), time, value))
    return tuple(out)


def decode_timed(payload: bytes, content_format: int) -> tuple[SenMLRecord, ...]:
    """The records of a payload in a format with times: SenML CBOR (112) or JSON (110), or
    LwM2M JSON (11543: ``bn`` and ``bt`` once at the top, the records in ``e``)."""
    if content_format == 112:
        return decode_senml_cbor(payload)
    if content_format == 110:
        return _resolve(json.loads(payload), ("bn", "bt", "n", "t"), _SENML_JSON_VALUES)
    if content_format == 11543:
        document = json.loads(payload)
        top = {k: document[k] for k in ("bn", "bt") if k in document}
        items = [{**top, **document["e"][0]}, *document["e"][1:]] if document["e"] else []
        return _resolve(items, ("bn", "bt", "n", "t"), _LWM2M_JSON_VALUES)
    raise ValueError(f"content format {content_format} carries no times")


def decode_tlv(payload: bytes, base: tuple[int, ...] = ()) -> dict[tuple[int, ...], bytes]:
    """An OMA TLV (11542) payload as the raw value bytes of each resource (instance), keyed by
    its ID path below ``base`` (the request's path); a server decodes the value by type itself.

    Header byte: bits 7-6 the kind (object instance, resource instance, multiple resource,
    resource with value), bit 5 a 16-bit ID, bits 4-3 the size of the length field (0: the
    length is bits 2-0). The first three kinds nest TLVs.
    """
    out: dict[tuple[int, ...], bytes] = {}
    at = 0
    while at < len(payload):
        kind, wide, length_size = payload[at] >> 6, payload[at] & 0x20, (payload[at] >> 3) & 3
        at += 1
        id_size = 2 if wide else 1
        ident = int.from_bytes(payload[at : at + id_size], "big")
        at += id_size
        if length_size:
            length = int.from_bytes(payload[at : at + length_size], "big")
            at += length_size
        else:
            length = payload[at - 1 - id_size] & 7
        value = payload[at : at + length]
        if len(value) != length:
            raise ValueError(f"TLV truncated at byte {at}")
        at += length
        if kind == 3 or kind == 1:
            out[(*base, ident)] = value
        else:
            out.update(decode_tlv(value, (*base, ident)))
    return out


_LINK_TARGET = re.compile(r"<([^>]*)>")


def unlisted(links: str, records: Iterable[SenMLRecord]) -> str | None:
    """The first object instance (``/3303/0``) a Send's ``records`` name that the registration's
    ``links`` (CoRE link format, root ``/``) do not list, None when all are listed. Names that
    do not start with an object and instance ID (an end device's prefix, ``/dev3/...``) are
    not checked: a Send may carry those unregistered (LwM2M 1.2 Gateway)."""
    listed = set(_LINK_TARGET.findall(links))
    for record in records:
        ids = record.name.strip("/").split("/")[:2]
        instance = "/" + "/".join(ids)
        if len(ids) == 2 and all(i.isdigit() for i in ids) and instance not in listed:
            return instance
    return None


def _parse_query(options: Iterable[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for q in options:
        name, sep, value = q.partition("=")
        out[name] = value if sep else None
    return out


class _Root(resource.Resource):
    """Routes by path: Register at the directory, Update and De-register at the locations it
    handed out, Send at ``/dp``; anything else is 4.04."""

    def __init__(self, server: LwM2MTestServer) -> None:
        super().__init__()
        self.server = server
        self._spool = Block1Spool()
        self._received: dict[Any, bytearray] = {}

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return not self.server.send_blocks_own() or tuple(request.opt.uri_path) != ("dp",)

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        path = tuple(request.opt.uri_path)
        if path == self.server.rd_path and request.code == Code.POST:
            return self.server._register(request)
        if path == ("dp",) and request.code == Code.POST:
            if self.server.send_blocks_own():
                self.server.send_blocks.append(len(request.payload))
                answer = self._send_block(request)
                if answer is not None:
                    return answer
                request = self._body(request)
            return self.server._send(request)
        record = self.server._by_location(path)
        if record is not None:
            return self.server._update_or_delete(record, request)
        return aiocoap.Message(code=Code.NOT_FOUND)

    def _send_block(self, request: aiocoap.Message) -> aiocoap.Message | None:
        """This server's answer to a Send's block when it is not (yet) the whole body's."""
        server, block = self.server, request.opt.block1
        if server.send_ignores_block1:
            return aiocoap.Message(code=Code.CHANGED)  # no Block1: it did not look
        exponent = server.send_block_exponent
        if exponent is not None:
            too_large = len(request.payload) > 2 ** (exponent + 4)
            if too_large or (block is not None and block.size_exponent > exponent):
                # RFC 7959 §2.9.3: 4.13, with the block size this server takes
                refusal = aiocoap.Message(code=Code.REQUEST_ENTITY_TOO_LARGE)
                if server.send_size1_only:
                    refusal.opt.size1 = 2 ** (exponent + 4)
                else:
                    refusal.opt.block1 = BlockOption.BlockwiseTuple(0, False, exponent)
                return refusal
        late = server.send_late_exponent
        if block is None or not block.more or late is None:
            return None  # the whole body, or a block for aiocoap's spool (``_body``)
        received = self._received.setdefault(request.remote, bytearray())
        if block.block_number == 0:
            received.clear()
        if block.start != len(received):
            return aiocoap.Message(code=Code.REQUEST_ENTITY_INCOMPLETE)
        received += request.payload
        # RFC 7959 §2.3: the block acknowledged, at the (smaller) size this server asks for
        answer = aiocoap.Message(code=Code.CONTINUE)
        answer.opt.block1 = (block.block_number, True, min(late, block.size_exponent))
        return answer

    def _body(self, request: aiocoap.Message) -> aiocoap.Message:
        """The whole body once its last block is in (aiocoap's spool raises its
        ContinueException, 2.31, for a block before it)."""
        if self.server.send_late_exponent is None:
            return self._spool.feed_and_take(request)  # 2.31 until the last block
        received = self._received.pop(request.remote, bytearray())
        request.payload = bytes(received) + request.payload
        return request


class LwM2MTestServer:
    """A LwM2M server on 127.0.0.1 for tests; ``async with`` starts and stops it."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rd_path: tuple[str, ...] = ("rd",),
        location_prefix: tuple[str, ...] = ("rd",),
        accepted_versions: tuple[str, ...] = ("1.0", "1.1", "1.2"),
        rpk: tuple[RawKey, list[bytes]] | None = None,
        x509: tuple[Issued, Certificate] | None = None,
        strict_send: bool = False,
    ) -> None:
        self.host = host
        # DTLS with raw public keys: the server's key pair and the client keys it takes
        self.rpk = rpk
        # DTLS with certificates: the server's certificate and the CA its clients' are of
        self.x509 = x509
        self.port = port
        self.rd_path = rd_path
        self.location_prefix = location_prefix
        self.accepted_versions = accepted_versions
        self.clients: dict[str, ClientRecord] = {}
        self.events: asyncio.Queue[ServerEvent] = asyncio.Queue()
        self.history: list[ServerEvent] = []  # every event in order, for ordering checks
        self.send_code: Code | None = None  # answer every Send with this code instead
        self.send_block_exponent: int | None = None
        """Take a Send's body only in Block1 blocks of at most 2 ** (this + 4) bytes: a larger
        request or block is answered 4.13 with a Block1 option of this size (RFC 7959 §2.9.3),
        as a server with a small buffer does. The payload sizes received are in
        ``send_blocks``."""
        self.send_blocks: list[int] = []
        self.send_size1_only = False
        """With ``send_block_exponent``: the 4.13 names the size in Size1, with no Block1."""
        self.send_late_exponent: int | None = None
        """Take a Send's body in blocks of any size, but answer each 2.31 Continue with a
        Block1 of at most this size exponent: the client is to send the rest in blocks of
        that size (late negotiation, RFC 7959 §2.3)."""
        self.send_ignores_block1 = False
        """Answer 2.04 without a Block1 option to a Send's first message, as a server that
        does not look at the option would: what it decoded is the first block alone."""
        self.strict_send = strict_send
        """Answer 4.04 to a Send naming an object instance the registration does not list,
        as Leshan does ("object instance /3303/0 not registered"). LwM2M 1.1 Core's Send
        operation lets a server reject data of objects it does not know of, and a client
        tells its server of them in the Register or Update; so a client's Send right after
        an instance appeared must follow the Update that lists it. Off by default: the
        in-repo server takes any well-formed Send, so other tests can Send freely."""
        # answer Register 2.01 without a Location-Path, as a broken server does
        self.omit_location = False
        # every datagram received is offered to ``drop`` first: True loses it unanswered
        self.drop: Callable[[aiocoap.Message], bool] | None = None
        # every response received is offered to ``reset``: True answers it with an RST (by its
        # Message ID) instead of passing it on, and keeps it in ``resets``
        self.reset: Callable[[aiocoap.Message], bool] | None = None
        self.resets: list[aiocoap.Message] = []
        self.context: aiocoap.Context | None = None
        self._ids = itertools.count(1)
        # raw exchanges in flight: Message IDs answered by an ACK or RST -> the answer
        self._raw: dict[int, asyncio.Future[bytes]] = {}
        # each exchange's ping has an ID of its own: a late RST must not answer the next one
        self._ping_ids = itertools.cycle(range(0xBE00, 0xBF00))

    async def __aenter__(self) -> LwM2MTestServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def uri(self) -> str:
        return f"{'coaps' if self.rpk or self.x509 else 'coap'}://{self.host}:{self.port}"

    async def start(self) -> None:
        if self.rpk is not None:  # no drop, reset or exchange: those work on the UDP socket
            bind = (self.host, self.port)
            self.context, self.port = await rpk_server_context(_Root(self), bind, *self.rpk)
            return
        if self.x509 is not None:  # the same
            bind = (self.host, self.port)
            self.context, self.port = await x509_server_context(_Root(self), bind, *self.x509)
            return
        self.context = await aiocoap.Context.create_server_context(
            _Root(self), bind=(self.host, self.port), transports=["udp6"]
        )
        if self.port == 0:
            self.port = self._bound_port()
        self._socket().setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._filter_received()

    def _socket(self) -> socket.socket:
        """The server's UDP socket. It gets SO_REUSEADDR, so that libcoap's coap-client can
        send from the server's address and port (``peers.libcoap``) while the server runs."""
        assert self.context is not None
        udp = self.context.request_interfaces[0].token_interface.message_interface
        sock: socket.socket = udp.transport.get_extra_info("socket")
        return sock

    def _bound_port(self) -> int:
        return int(self._socket().getsockname()[1])

    def _filter_received(self) -> None:
        """Offer every datagram to ``drop`` and ``reset`` before aiocoap parses it (aiocoap's
        transport looks ``datagram_msg_received`` up on its protocol for every datagram)."""
        assert self.context is not None
        udp = self.context.request_interfaces[0].token_interface.message_interface
        receive = udp.datagram_msg_received

        def received(data: bytes, ancdata: Any, flags: int, address: Any) -> None:
            raw = self._raw.get(int.from_bytes(data[2:4], "big")) if len(data) >= 4 else None
            if raw is not None and data[0] >> 4 & 3 in (2, 3) and not raw.done():
                raw.set_result(data)  # an ACK or RST answering a raw exchange
                return
            try:
                message = aiocoap.Message.decode(data)
            except aiocoap.error.UnparsableMessage:
                message = None
            if message is not None and self.drop is not None and self.drop(message):
                return
            if (
                message is not None
                and self.reset is not None
                and message.code.is_response()
                and self.reset(message)
            ):
                rst = aiocoap.Message(code=Code.EMPTY)
                rst.mtype, rst.mid = aiocoap.RST, message.mid
                self._socket().sendto(rst.encode(), address)
                self.resets.append(message)
                return
            receive(data, ancdata, flags, address)

        udp.datagram_msg_received = received

    async def stop(self) -> None:
        if self.context is not None:
            await self.context.shutdown()
            self.context = None

    # -- registration interface ----------------------------------------------------------

    def _emit(
        self,
        kind: str,
        endpoint: str,
        request: aiocoap.Message,
        code: Code,
        records: tuple[SenMLRecord, ...] = (),
    ) -> None:
        event = ServerEvent(
            kind,
            endpoint,
            _parse_query(request.opt.uri_query),
            bytes(request.payload),
            request.opt.content_format,
            code,
            records,
            1 if request.opt.block1 is None else request.opt.block1.block_number + 1,
        )
        self.history.append(event)
        self.events.put_nowait(event)

    def send_blocks_own(self) -> bool:
        """Whether the Send's blocks come to ``_Root.render`` one by one (a behaviour set)."""
        return (
            self.send_block_exponent is not None
            or self.send_late_exponent is not None
            or self.send_ignores_block1
        )

    def _send(self, request: aiocoap.Message) -> aiocoap.Message:
        ep = self._endpoint_of(request.remote)
        records: tuple[SenMLRecord, ...] = ()
        if ep is None:
            code = Code.NOT_FOUND
        elif request.opt.content_format != 112:
            code = Code.UNSUPPORTED_CONTENT_FORMAT
        else:
            try:
                records = decode_senml_cbor(bytes(request.payload))
            except (ValueError, AttributeError, StopIteration, TypeError):
                code = Code.BAD_REQUEST
            else:
                code = self.send_code or Code.CHANGED
                if self.strict_send and unlisted(self.clients[ep].links, records) is not None:
                    code = Code.NOT_FOUND
        self._emit("send", ep or "", request, code, records)
        return aiocoap.Message(code=code)

    def _register(self, request: aiocoap.Message) -> aiocoap.Message:
        q = _parse_query(request.opt.uri_query)
        ep = q.get("ep") or ""
        version = q.get("lwm2m") or "1.0"
        if version not in self.accepted_versions:
            self._emit("register", ep, request, Code.PRECONDITION_FAILED)
            return aiocoap.Message(code=Code.PRECONDITION_FAILED)
        if not ep or request.opt.content_format not in (40, None):
            self._emit("register", ep, request, Code.BAD_REQUEST)
            return aiocoap.Message(code=Code.BAD_REQUEST)
        location = (*self.location_prefix, f"c{next(self._ids)}")
        binding = q.get("b") or "U"
        self.clients[ep] = ClientRecord(
            endpoint=ep,
            location=location,
            lifetime=int(q.get("lt") or 86400),
            version=version,
            binding=binding,
            queue="Q" in q or "Q" in binding,
            links=bytes(request.payload).decode(),
            remote=request.remote,
            query=q,
        )
        self._emit("register", ep, request, Code.CREATED)
        if self.omit_location:
            return aiocoap.Message(code=Code.CREATED)
        return aiocoap.Message(code=Code.CREATED, location_path=location)

    def _by_location(self, path: tuple[str, ...]) -> ClientRecord | None:
        return next((c for c in self.clients.values() if c.location == path), None)

    def _endpoint_of(self, remote: object) -> str | None:
        return next((c.endpoint for c in self.clients.values() if c.remote == remote), None)

    def _update_or_delete(self, record: ClientRecord, request: aiocoap.Message) -> aiocoap.Message:
        if request.code == Code.DELETE:
            del self.clients[record.endpoint]
            self._emit("deregister", record.endpoint, request, Code.DELETED)
            return aiocoap.Message(code=Code.DELETED)
        if request.code != Code.POST:
            return aiocoap.Message(code=Code.METHOD_NOT_ALLOWED)
        q = _parse_query(request.opt.uri_query)
        if "lt" in q:
            record.lifetime = int(q["lt"] or 0)
        if "b" in q:
            record.binding = q["b"] or ""
        if request.payload:
            record.links = bytes(request.payload).decode()
        record.remote = request.remote
        self._emit("update", record.endpoint, request, Code.CHANGED)
        return aiocoap.Message(code=Code.CHANGED)

    async def exchange(self, endpoint: str, datagram: bytes, timeout: float = 10.0) -> bytes | None:
        """Send one hand-made datagram to a registered client from the server's socket, then
        a CoAP ping: the client handles them in order, so the first ACK or
        RST is the datagram's answer, or, when the ping's RST comes first, it got none (None).
        Only piggybacked answers are seen (a NON request's answer has an ID of its own)."""
        sock = self._socket()
        address = self.clients[endpoint].remote.sockaddr  # type: ignore[attr-defined]
        ping_id = next(self._ping_ids)
        ids = {ping_id} | ({int.from_bytes(datagram[2:4], "big")} if len(datagram) >= 4 else set())
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        for mid in ids:
            self._raw[mid] = answer
        try:
            sock.sendto(datagram, address)
            sock.sendto(bytes([0x40, 0]) + ping_id.to_bytes(2, "big"), address)
            async with asyncio.timeout(timeout):
                first = await answer
        finally:
            for mid in ids:
                self._raw.pop(mid, None)
        ping = first[0] >> 4 & 3 == 3 and int.from_bytes(first[2:4], "big") == ping_id
        return None if ping else first

    def forget(self, endpoint: str) -> None:
        """Drop a registration, as a restarted server would: the next Update gets 4.04."""
        self.clients.pop(endpoint, None)

    async def next_event(self, kind: str | None = None, timeout: float = 10.0) -> ServerEvent:
        """The next event (of ``kind`` when given, skipping others)."""
        async with asyncio.timeout(timeout):
            while True:
                ev = await self.events.get()
                if kind is None or ev.kind == kind:
                    return ev

    # -- device management ---------------------------------------------------------------

    def _message(
        self,
        endpoint: str,
        code: Code,
        path: str,
        payload: bytes,
        content_format: int | None,
        accept: int | None,
        query: Iterable[str],
        observe: int | None,
    ) -> aiocoap.Message:
        record = self.clients[endpoint]
        msg = aiocoap.Message(code=code, payload=payload)
        msg.opt.uri_path = tuple(s for s in path.split("/") if s)
        msg.opt.uri_query = tuple(query)
        if content_format is not None:
            msg.opt.content_format = content_format
        if accept is not None:
            msg.opt.accept = accept
        if observe is not None:
            msg.opt.observe = observe
        msg.remote = record.remote
        return msg

    async def request(
        self,
        endpoint: str,
        code: Code,
        path: str,
        payload: bytes = b"",
        *,
        content_format: int | None = None,
        accept: int | None = None,
        query: Iterable[str] = (),
        timeout: float = 10.0,
        observe: int | None = None,
    ) -> aiocoap.Message:
        """Send one request to a registered client and return its response (``observe=1``:
        a GET that cancels an observation of the same path, on a token of its own)."""
        assert self.context is not None
        msg = self._message(endpoint, code, path, payload, content_format, accept, query, observe)
        async with asyncio.timeout(timeout):
            return await self.context.request(msg).response

    def observe(
        self,
        endpoint: str,
        path: str,
        *,
        accept: int | None = None,
        code: Code = Code.GET,
        payload: bytes = b"",
        content_format: int | None = None,
    ) -> aiocoap.protocol.Request:
        """Start an observation; the returned request's ``observation`` yields notifications."""
        assert self.context is not None
        msg = self._message(endpoint, code, path, payload, content_format, accept, (), 0)
        return self.context.request(msg)
