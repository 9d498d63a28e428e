"""The client's uplink: its CoAP socket (and security session) toward one LwM2M server,
whatever its security mode. (A LwM2M endpoint is a registration: see docs/architecture.md.)

A session needs three things of its uplink: a context that serves the client's site to the
server (the server's requests arrive on the socket the client registered from), a way to send
the client's own requests (Register, Update, Send...), and a way to forget a session the server
may have lost so that the next Register starts afresh. ``Uplink`` is that contract;
``UdpUplink`` fulfils it for NoSec (security mode 3), ``dtls.DtlsPskUplink`` for PSK
(security mode 0) and ``dtls_openssl.DtlsX509Uplink`` for certificates (security mode 2), so the
registrar and the Send code do not care which one they talk through.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Protocol

import aiocoap
from aiocoap import interfaces
from aiocoap.message import UndecidedRemote
from aiocoap.transports.udp6 import UDP6EndpointAddress
from aiocoap.util import hostportsplit

from .addresses import Address
from .coap import create_context
from .udp import guard_received_datagrams, guard_stale_icmp_errors


@functools.lru_cache(maxsize=64)
def _one_origin(asked: UndecidedRemote) -> UndecidedRemote:
    """One origin object for all equal ones (the endpoints' uplinks ask one server's)."""
    return asked


class Uplink(Protocol):
    """What a session asks of its uplink (see the module docstring)."""

    @property
    def context(self) -> aiocoap.Context: ...

    async def request(self, message: aiocoap.Message, *, blockwise: bool = True) -> aiocoap.Message:
        """Send ``message`` as a request and return the response; without ``blockwise``, as
        one message whatever its size (a block of a body sent in blocks, ``block1``)."""
        ...

    @property
    def address(self) -> UDP6EndpointAddress | None: ...

    def drop_session(self) -> None: ...

    async def shutdown(self) -> None: ...


OpenUdp = Callable[[interfaces.Resource, tuple[str, int]], Awaitable[Uplink]]
"""Opens a NoSec uplink serving a site, bound to an address: ``UdpUplink.create`` (a context
of its own) or a shared engine's ``open`` (``bridged.engine.sockets``: a socket of its own in a
context shared with other endpoints)."""


class UdpUplink:
    """Plain CoAP over UDP (NoSec): one socket, serving ``site`` and sending requests.

    The socket is the client's address as the server sees it, so it is opened once per server
    and kept for the life of the session. Without a security layer to bind it to its server,
    it serves only the addresses its own requests went to (the server's: ``peers_only`` in
    ``bridged.engine.coap``); requests from anywhere else are dropped.

    The server's address is resolved once: aiocoap 0.4.17 resolves a request's URI for every
    request (a ``getaddrinfo`` handed to a worker thread, even for an IP literal), which cost
    a busy gateway more than the Send itself. The address the server answered from is kept
    for the URI's origin and used until a request fails (``drop_session``), after which the
    host is resolved again. An IP literal's address cannot move: it is kept from the first
    request on, answered or not, and a failure does not drop it, so that an idle gateway's
    Register retries toward a server that is down resolve nothing (each was a worker
    thread's wake-up, a netlink dump of the interfaces and a socket to check the route, most
    of a retry's CPU). Slotted: each node endpoint has one (``SocketUplink``).
    """

    __slots__ = ("_address", "_asked", "_context", "_remote")

    def __init__(
        self,
        context: aiocoap.Context,
        address: type[UDP6EndpointAddress] = Address,
    ) -> None:
        self._context = context
        self._address = address  # the kind of address the context's message layer keys by
        self._asked: UndecidedRemote | None = None
        """The server's URI origin as asked (one server per uplink), one for all uplinks that
        ask it (``resolving``), and ``_remote``, its address: two slots, not a tuple of them
        and the origin each (120 bytes of each of 10,000 node endpoints, issue 17)."""
        self._remote: interfaces.EndpointAddress | None = None

    @classmethod
    async def create(
        cls, site: interfaces.Resource, bind: tuple[str, int] = ("::", 0)
    ) -> UdpUplink:
        """Open the socket on ``bind``; only UDP, so that no TCP or WebSocket port opens too."""
        context = await create_context(site, bind, peers_only=True)
        guard_stale_icmp_errors(context)
        guard_received_datagrams(context)
        return cls(context)

    @property
    def context(self) -> aiocoap.Context:
        return self._context

    async def request(self, message: aiocoap.Message, *, blockwise: bool = True) -> aiocoap.Message:
        asked = message.remote
        known = self.resolved(asked)
        if known is not None:
            message.remote = known
        try:
            request = self._context.request(message, handle_blockwise=blockwise)
            response: aiocoap.Message = await request.response
        except aiocoap.error.NetworkError:
            self.drop_session()
            raise
        finally:
            sent_to = message.remote  # aiocoap's resolution, once the request went
            if known is None and _literal(asked) and isinstance(sent_to, UDP6EndpointAddress):
                self.resolving(asked, self._address(sent_to.sockaddr, sent_to.interface))
        remote = response.remote
        if (
            isinstance(asked, UndecidedRemote)
            and isinstance(remote, UDP6EndpointAddress)
            and (known is None or known != remote)
        ):
            # As aiocoap's own resolution gives it, without the local address it was received
            # on: aiocoap names every request's task by its repr, and that address's repr asks
            # the kernel for the interface's name (a socket and an ioctl) each time. The one
            # known already stays when the server answered from it (an endpoint's server
            # address is one for all endpoints, ``bridged.engine.sockets``).
            self.resolving(asked, self._address(remote.sockaddr, remote.interface))
        return response

    @property
    def address(self) -> UDP6EndpointAddress | None:
        """The server's address as resolved, None before its first answer: a plain UDP address
        is what a request names to be sent in smaller Block1 blocks (its
        ``maximum_block_size_exp``; a DTLS uplink has none, aiocoap fixes its session's)."""
        remote = self._remote
        return remote if isinstance(remote, UDP6EndpointAddress) else None

    def resolved(self, asked: interfaces.EndpointAddress) -> interfaces.EndpointAddress | None:
        """The address ``asked`` (a URI's origin) was resolved to, if it is kept."""
        if self._asked is None or not isinstance(asked, UndecidedRemote):
            return None  # an address already (a Send in smaller blocks names its own)
        return self._remote if self._asked == asked else None

    def resolving(self, asked: UndecidedRemote, remote: interfaces.EndpointAddress) -> None:
        """Keep ``remote`` as what ``asked`` resolves to."""
        self._asked, self._remote = _one_origin(asked), remote

    def drop_session(self) -> None:
        """Plain UDP has no session state the server could have lost; forget its resolved
        address, so that the next request resolves the host again (it may have moved), unless
        the host is an IP literal."""
        if self._asked is not None and _literal(self._asked):
            return
        self._asked = self._remote = None

    async def shutdown(self) -> None:
        await self._context.shutdown()


def _literal(asked: interfaces.EndpointAddress | None) -> bool:
    """Whether ``asked`` (a URI's origin) names its host by an IP address, not a name."""
    if not isinstance(asked, UndecidedRemote):
        return False
    host, _ = hostportsplit(asked.hostinfo)
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True
