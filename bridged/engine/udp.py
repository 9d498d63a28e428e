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
correctly a moment later. So the guard wraps the transport's ``sendmsg``: a send that fails is
tried once more before aiocoap sees the failure. A stale error has been consumed by the first
attempt, so the retry goes through; an error about this destination (no route, say) fails
again and aiocoap reports it as before. Nothing is sent twice: a failed ``sendmsg`` sent
nothing.

This touches aiocoap internals (``Context.request_interfaces``, the message manager's
``message_interface`` and its transport's ``sendmsg``), pinned by the tests in
``tests/integration/test_observe.py``; keep aiocoap's version pinned. The DTLS transport is not
affected: it uses a connected socket per session, whose errors are that session's.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from typing import Any

import aiocoap
from aiocoap.transports.udp6 import MessageInterfaceUDP6

log = logging.getLogger(__name__)


def guard_stale_icmp_errors(context: aiocoap.Context) -> int:
    """Install the guard on every ``udp6`` transport of ``context``; returns how many."""
    guarded = 0
    for interface in context.request_interfaces:
        messages = getattr(getattr(interface, "token_interface", None), "message_interface", None)
        if not isinstance(messages, MessageInterfaceUDP6):
            continue
        transport = messages.transport
        sock = transport.get_extra_info("socket")
        if not isinstance(sock, socket.socket):
            continue
        transport.sendmsg = _retrying_sendmsg(sock, transport.sendmsg)
        guarded += 1
    return guarded


def _retrying_sendmsg(sock: socket.socket, original: Any) -> Any:
    def sendmsg(data: bytes, ancdata: Sequence[Any], flags: int, address: Any) -> None:
        try:
            sock.sendmsg((data,), ancdata, flags, address)
        except OSError as e:
            log.debug("send to %s failed (%s); sending again in case it was stale", address, e)
            original(data, ancdata, flags, address)

    return sendmsg
