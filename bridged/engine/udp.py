"""A guard for aiocoap's UDP transport: stale ICMP errors are not blamed on the next peer.

The hazard (aiocoap 0.4.17, Linux): aiocoap's ``udp6`` transport serves every peer from one
unconnected socket with ``IPV6_RECVERR`` set. When a datagram to a peer that has gone away
(say a server that cancelled its confirmable observation and closed its socket) draws an ICMP
port-unreachable, the kernel queues the error on the error queue *and* keeps it pending on the
socket, and the next ``sendmsg`` on that socket, whatever its destination, fails with
``ECONNREFUSED`` without sending anything. aiocoap reports that failure as an error of the
peer it was sending to: it fails that peer's outgoing requests and ends every request that
peer has running here, its observations included, although that peer is fine. When the send
was a notification, the pipe also ends in the middle of delivering it and aiocoap raises
``TypeError: 'bool' object is not iterable`` (``Pipe._add_event`` asks ``_any_interest()`` of
a pipe whose callbacks became ``False``). The observation stops without a word.

The error queue still carries the error with the right address, which aiocoap handles
correctly a moment later. So the guard replaces the transport's ``sendmsg``: a send that fails is
tried once more before aiocoap sees the failure. A stale error has been consumed by the first
attempt, so the retry goes through; an error about this destination (no route, say) fails
again and aiocoap reports it as before. Nothing is sent twice: a failed ``sendmsg`` sent
nothing.

This touches aiocoap internals (``Context.request_interfaces``, the message manager's
``message_interface`` and its transport's ``sendmsg``), pinned by the tests in
``tests/integration/test_observe.py``; keep aiocoap's version pinned. The DTLS transport is not
affected: it uses a connected socket per session, whose errors are that session's.

A second guard, ``guard_received_datagrams``, stands between the socket and aiocoap's parser
for two datagrams aiocoap 0.4.17 mishandles:

- A datagram larger than aiocoap's receive buffer (``RecvmsgSelectorDatagramTransport.max_size``,
  4096 bytes) arrives cut short, and aiocoap ignores the kernel's ``MSG_TRUNC`` flag: a request
  would be served with its payload (or its options) cut off. The guard never passes such a
  datagram on; a confirmable request gets 4.13 Request Entity Too Large (RFC 7959 2.9.3), so
  the server knows to send it block-wise, anything else is dropped (and so is a request from
  an address the socket does not serve, ``peers_only`` in ``bridged.engine.coap``).
- A text option (Uri-Path, Uri-Query...) that is not UTF-8 makes aiocoap's parser raise
  ``UnicodeDecodeError`` instead of its ``UnparsableMessage``, which escapes into the event
  loop's reader callback and is logged with a traceback. The guard drops the datagram as
  aiocoap drops every other unparsable one.

The guard also has the kernel stamp each datagram with the time it arrived (``SO_TIMESTAMPNS``)
and tells the message layer (``BoundedMessageManager.received_at``) before aiocoap sees the
datagram: an ACK's RTT sample, which paces notifications, is then the server's RTT, not that
plus however long this process's event loop was busy before it read the ACK.

The guard replaces the protocol's ``datagram_msg_received``, which aiocoap's transport looks up
on the protocol instance for every datagram (aiocoap internals again). Both guards are
installed by changing the class of aiocoap's object to a subclass with the guard, so that a
socket costs no wrapper of its own. Pinned by
``tests/integration/test_malformed.py``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import aiocoap
from aiocoap import interfaces
from aiocoap.message import Direction
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type
from aiocoap.transports.udp6 import MessageInterfaceUDP6, UDP6EndpointAddress
from aiocoap.util.asyncio.recvmsg import RecvmsgSelectorDatagramTransport

from .coap import BoundedMessageManager

log = logging.getLogger(__name__)

RECEIVE_LIMIT = RecvmsgSelectorDatagramTransport.max_size
"""The largest datagram aiocoap receives whole."""

MSG_TRUNC = int(socket.MSG_TRUNC)
"""As a plain int: ``socket.MSG_TRUNC`` is an enum flag, and ``&`` with one builds an enum
member per datagram."""

SO_TIMESTAMPNS = 35 if sys.platform == "linux" else None
"""Linux's socket option for a datagram's arrival time, and the kind of its control message
(SCM_TIMESTAMPNS, the same number; asm-generic, as on x86 and ARM): Python's socket module
does not export it."""
TIMESPEC = struct.Struct("@ll")
"""The control message's ``struct timespec``: seconds and nanoseconds, native longs."""


def guard_stale_icmp_errors(context: aiocoap.Context) -> int:
    """Install the guard on every ``udp6`` transport of ``context``; returns how many."""
    return sum(guard_sends(messages) for messages in _udp6_interfaces(context))


def guard_sends(messages: MessageInterfaceUDP6) -> bool:
    """Install the guard on the transport of one ``udp6`` message interface; False if it has
    no socket to guard."""
    transport = messages.transport
    if not isinstance(transport, RecvmsgSelectorDatagramTransport) or not isinstance(
        transport.get_extra_info("socket"), socket.socket
    ):
        return False
    # A class of its own, not a wrapper per socket: nothing allocated for each of the
    # endpoints mode's thousands of sockets (``bridged.engine.sockets``).
    transport.__class__ = _RetryingTransport
    return True


class _RetryingTransport(RecvmsgSelectorDatagramTransport):
    """aiocoap's transport, whose failed send is tried once more before aiocoap sees it."""

    def sendmsg(self, data: bytes, ancdata: Sequence[Any], flags: int, address: Any) -> None:
        try:
            send_once_more(self.get_extra_info("socket"), data, ancdata, address, flags)
        except OSError as e:
            self._protocol.error_received(e)


def send_once_more(
    sock: socket.socket, data: bytes, ancdata: Sequence[Any], address: Any, flags: int = 0
) -> None:
    """Send ``data``, and once more when that fails (see the module docstring); the second
    failure raises its ``OSError``."""
    try:
        sock.sendmsg((data,), ancdata, flags, address)
    except OSError as e:
        log.debug("send to %s failed (%s); sending again in case it was stale", address, e)
        sock.sendmsg((data,), ancdata, flags, address)


def guard_received_datagrams(context: aiocoap.Context) -> int:
    """Install the receive guard (see the module docstring) on every ``udp6`` transport of
    ``context``; returns how many."""
    guarded = 0
    for messages in _udp6_interfaces(context):
        guard_receives(messages)
        guarded += 1
    return guarded


def guard_receives(messages: MessageInterfaceUDP6) -> None:
    """Install the receive guard on one ``udp6`` message interface (a class of its own, as
    ``guard_sends``)."""
    messages.__class__ = _GuardedUDP6
    stamp_arrivals(messages.transport.get_extra_info("socket"))


def stamp_arrivals(sock: socket.socket) -> None:
    """Have the kernel give each datagram ``sock`` receives the time it arrived (read by
    ``arrival``); nothing where the platform has no ``SO_TIMESTAMPNS``."""
    if SO_TIMESTAMPNS is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def arrival(ancdata: Sequence[Any]) -> tuple[list[Any], float | None]:
    """The ancillary data without the kernel's arrival time, and that time (``time.time()``'s
    scale; None when absent), so that aiocoap, which logs every kind it does not know, never
    sees it."""
    rest, at = [], None
    for cmsg in ancdata:
        if (cmsg[0], cmsg[1]) == (socket.SOL_SOCKET, SO_TIMESTAMPNS):
            seconds, nanoseconds = TIMESPEC.unpack_from(cmsg[2])
            at = seconds + nanoseconds / 1e9
        else:
            rest.append(cmsg)
    return rest, at


def refusal_of_truncated(datagram: bytes) -> aiocoap.Message | None:
    """The 4.13 answer to ``datagram``, the first bytes of a datagram too large to receive
    whole: a piggybacked ACK when it is a confirmable request, else ``None`` (nothing to
    answer: a NON request would need a message ID of its own, and a response, a Reset or
    garbage gets no answer anyway). Only the header and token are read, which the truncated
    part always holds."""
    if len(datagram) < 4 or datagram[0] >> 6 != 1:
        return None
    token_length = datagram[0] & 0x0F
    if token_length > 8 or len(datagram) < 4 + token_length:
        return None
    header = aiocoap.Message.decode(datagram[: 4 + token_length])
    if header.mtype is not Type.CON or not header.code.is_request():
        return None
    refusal = aiocoap.Message(
        code=Code.REQUEST_ENTITY_TOO_LARGE,
        payload=f"datagram larger than {RECEIVE_LIMIT} bytes".encode(),
    )
    # set after construction: aiocoap deprecates them as constructor arguments, as the message
    # layer normally picks them; here there is no exchange in that layer to pick them from
    refusal.mtype, refusal.mid, refusal.token = Type.ACK, header.mid, header.token
    return refusal


def _udp6_interfaces(context: aiocoap.Context) -> Iterator[MessageInterfaceUDP6]:
    for interface in context.request_interfaces:
        messages = getattr(getattr(interface, "token_interface", None), "message_interface", None)
        if isinstance(messages, MessageInterfaceUDP6):
            yield messages


class _GuardedUDP6(MessageInterfaceUDP6):
    """aiocoap's ``udp6`` message interface behind the receive guard."""

    def datagram_msg_received(
        self, data: bytes, ancdata: Sequence[Any], flags: int, address: Any
    ) -> None:
        ancdata, at = arrival(ancdata)
        if flags & MSG_TRUNC:
            remote = UDP6EndpointAddress(address, self, pktinfo=pktinfo(ancdata))
            refuse_truncated(data, remote, getattr(self._ctx, "serves", None), self.send)
            return
        layer = self._ctx
        if isinstance(layer, BoundedMessageManager):
            layer.received_at = at
        try:
            super().datagram_msg_received(data, ancdata, flags, address)
        except UnicodeDecodeError as e:
            _not_utf8(address, e)
        finally:
            if isinstance(layer, BoundedMessageManager):
                layer.received_at = None

    def datagram_errqueue_received(
        self, data: bytes, ancdata: Sequence[Any], flags: int, address: Any
    ) -> None:
        # aiocoap asserts that an error carries IPv6 control messages only.
        super().datagram_errqueue_received(data, arrival(ancdata)[0], flags, address)


def parsed(data: bytes, remote: interfaces.EndpointAddress) -> aiocoap.Message | None:
    """``data`` as a message received from ``remote``, or None for a datagram that does not
    parse (logged, as aiocoap's ``udp6`` logs it), a text option that is not UTF-8 among them."""
    try:
        message = aiocoap.Message.decode(data, remote)
    except aiocoap.error.UnparsableMessage:
        log.warning("Ignoring unparsable message from %s", remote)
        return None
    except UnicodeDecodeError as e:
        _not_utf8(remote, e)
        return None
    message.direction = Direction.INCOMING
    return message


def _not_utf8(address: object, e: UnicodeDecodeError) -> None:
    log.warning("Ignoring message from %s with a text option that is not UTF-8: %s", address, e)


def refuse_truncated(
    data: bytes,
    remote: interfaces.EndpointAddress,
    serves: Callable[[interfaces.EndpointAddress], bool] | None,
    send: Callable[[aiocoap.Message], None],
) -> None:
    """Answer (with ``send``) ``data``, the start of a datagram from ``remote`` too large to
    receive whole, if it is a confirmable request from an address the socket ``serves``."""
    if serves is not None and not serves(remote):
        return  # not an address this socket serves: no answer
    refusal = refusal_of_truncated(data)
    log.warning(
        "Datagram from %s larger than %d bytes: %s",
        remote.sockaddr,
        RECEIVE_LIMIT,
        "dropped" if refusal is None else "refused with 4.13",
    )
    if refusal is None:
        return
    refusal.remote = remote
    send(refusal)


def pktinfo(ancdata: Sequence[Any]) -> Any:
    """The local address a datagram arrived at, from its ancillary data (None if absent)."""
    return next(
        (
            cmsg_data
            for level, kind, cmsg_data in ancdata
            if (level, kind) == (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO)
        ),
        None,
    )
