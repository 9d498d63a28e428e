"""One CoAP engine for many NoSec uplinks, each on a UDP socket of its own.

The endpoints exposure mode registers every node as a LwM2M endpoint with a socket of its own:
a server answers, and sends its requests for an endpoint, to the address and port the
endpoint registered from, so the port is what tells the endpoints apart. A context per
endpoint (``UdpUplink``: aiocoap's Context, token and message managers, the engine's message
layer with its pacers and duplicate cache) cost 6.4 KB per endpoint, the largest part of the
10,000-node gateway's memory (docs/benchmarks.md). Here one :class:`SharedEngine` holds one
context, token manager and :class:`~bridged.engine.coap.BoundedMessageManager`; its message
interface, :class:`Sockets`, reads and writes every endpoint's socket itself (an ``epoll`` of
its own, one reader of the event loop for all; no aiocoap ``udp6`` interface and transport per
socket: they were 1.3 KB of the 10,000-node gateway's endpoint), and a :class:`Socket` is the
socket and the site it serves.

What keeps the endpoints apart:

* **Addresses.** A remote names the local socket it came in on or goes out of (its
  ``interface``), but aiocoap's ``UDP6EndpointAddress`` compares only the peer's address, so
  the token layer would give a response that came to endpoint B's port to endpoint A's request
  with the same token. Every remote this engine's layers see is a :class:`SocketAddress`, equal
  only to the same peer on the same socket: tokens, exchanges, deduplication, Message-ID
  pacing and held messages are per (server, socket), as they were per context.
* **Sending.** A message goes out of the socket its remote names; an uplink's requests are
  resolved on its own socket (:class:`SocketUplink`), and responses and notifications answer
  a request's remote, so they leave from the socket the request came in on.
* **Serving.** A request is served by the site of the socket it came in on, and only from the
  peers that socket's own requests went to (``peers_only``, per socket: a server's request to
  endpoint A's port never reaches B's tree).
* **Closing.** An uplink's ``shutdown`` closes its socket alone: what was going on with its
  peers ends as a context's shutdown ends it (``BoundedMessageManager.close_interface``).

The engine's context is made when the first uplink opens and ends at :meth:`SharedEngine.
shutdown`. DTLS uplinks keep a context each (their sessions are per peer already, and the
endpoints mode's nodes use NoSec unless a server asks otherwise). The aiocoap internals this
relies on (``UDP6EndpointAddress``'s equality and ``_interface``, what ``MessageInterfaceUDP6``
does with a datagram and its ICMP errors, its ``determine_remote``, the token and message
managers' ``dispatch_error`` and tables) are pinned in ``tests/unit/test_aiocoap_internals.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import socket
from typing import Any

import aiocoap
from aiocoap import interfaces
from aiocoap.message import UndecidedRemote
from aiocoap.transports.udp6 import MessageInterfaceUDP6, SockExtendedErr, UDP6EndpointAddress
from aiocoap.util import socknumbers

from .addresses import Address
from .coap import BoundedMessageManager, CoapLimits, append_message_interface, unshared_socket
from .serving import ServingContext
from .site import Answer, answer_now
from .udp import (
    MSG_TRUNC,
    RECEIVE_LIMIT,
    arrival,
    parsed,
    pktinfo,
    refuse_truncated,
    send_once_more,
    stamp_arrivals,
)
from .uplink import UdpUplink

log = logging.getLogger(__name__)

RECVERR_TYPES = {socknumbers.IPV6_RECVERR, socknumbers.IP_RECVERR}
"""The ancillary data types of an ICMP error read from a socket's error queue."""


class SocketAddress(Address):
    """A peer's UDP address as seen through one local socket: equal only to the same peer
    through the same socket (see the module docstring). It holds its socket itself, where
    aiocoap's holds a weak reference to it: one such reference to each endpoint's socket was
    80 bytes of each of 10,000 (issue 17); a closed socket an address still holds is closed
    (``Sockets.close``), and sends nothing."""

    def __init__(self, sockaddr: Any, interface: Socket, *, pktinfo: bytes | None = None) -> None:
        self.sockaddr = sockaddr
        self.pktinfo = pktinfo
        self._interface = interface

    @property
    def interface(self) -> Socket:
        return self._interface

    def __hash__(self) -> int:
        return hash((self.sockaddr[:-1], self._interface))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UDP6EndpointAddress)
            and self.sockaddr[:-1] == other.sockaddr[:-1]
            and self._interface is other.interface
        )


def on_socket(remote: interfaces.EndpointAddress) -> interfaces.EndpointAddress:
    """``remote`` made a :class:`SocketAddress` when it is a UDP one (in place: it holds
    nothing more but its socket, which it then holds itself); the shared message layer's
    ``address``."""
    if type(remote) in (UDP6EndpointAddress, Address):
        interface = remote.interface
        remote.__class__ = SocketAddress
        remote._interface = interface
    return remote


class Socket:
    """One endpoint's UDP socket and the site it serves: the ``interface`` of the remotes
    received on it and sent from it. Only the socket and its site: what reads and writes it is
    :class:`Sockets`, once for all."""

    __slots__ = ("__weakref__", "site", "sock")  # weak: a UDP6EndpointAddress's _interface

    def __init__(self, sock: socket.socket, site: Any) -> None:
        self.sock = sock
        self.site = site

    def _local_port(self) -> int:
        """The port bound (aiocoap's name: ``UDP6EndpointAddress.hostinfo_local`` asks it)."""
        return int(self.sock.getsockname()[1])


class Sockets(interfaces.MessageInterface):
    """The shared message layer's message interface: the open sockets, read through one
    ``epoll`` of its own (one reader of the event loop for them all) and written directly,
    with nothing of aiocoap's ``udp6`` interface per socket (its protocol, transport, ``ready``
    future, ``ContextVar`` and reader closure were 1.3 KB per socket, and a reader of the
    event loop, its handle, copied context and selector key, another 300 bytes,
    docs/benchmarks.md). What aiocoap's interface does with a datagram is done here: the
    error queue's ICMP errors are the peer's errors, a datagram is parsed and dispatched to
    the layer; and so are the guards of ``bridged.engine.udp``. It is the context's server
    site too: a request goes to the site of the socket it came in on.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._open: dict[int, Socket] = {}  # by file descriptor
        self._layer: BoundedMessageManager | None = None
        # aiocoap's determine_remote (``resolve``) reads these two of its interface
        self.loop = loop
        self.log = log
        self._poll = select.epoll()
        loop.add_reader(self._poll.fileno(), self._ready)
        # the servers' addresses resolved, each one tuple that every endpoint's uplink keeps
        # (its text and tuple were 150 bytes of each endpoint): one per address, so few
        self._servers: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def attach(self, layer: BoundedMessageManager) -> Sockets:
        """Dispatch what the sockets receive to ``layer``; returns this interface."""
        self._layer = layer
        return self

    def open(self, sock: socket.socket, site: Any) -> Socket:
        """Read and write ``sock`` (bound, not yet read), serving ``site``; the socket options
        aiocoap's ``udp6`` sets: the local address of what arrives, and ICMP errors queued."""
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        stamp_arrivals(sock)
        if socknumbers.HAS_RECVERR:
            sock.setsockopt(socket.IPPROTO_IPV6, socknumbers.IPV6_RECVERR, 1)
            sock.setsockopt(socket.IPPROTO_IP, socknumbers.IP_RECVERR, 1)
        sock.setblocking(False)
        opened = Socket(sock, site)
        self._poll.register(sock.fileno(), select.EPOLLIN)
        self._open[sock.fileno()] = opened
        return opened

    def close(self, socket_: Socket) -> None:
        """Stop reading ``socket_`` and close it; a datagram for it after is not sent."""
        if socket_ not in self:
            return
        fd = socket_.sock.fileno()
        del self._open[fd]
        self._poll.unregister(fd)
        socket_.sock.close()
        socket_.site = None

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, socket_: object) -> bool:
        return isinstance(socket_, Socket) and self._open.get(socket_.sock.fileno()) is socket_

    async def resolve(
        self, message: aiocoap.Message, socket_: Socket
    ) -> interfaces.EndpointAddress | None:
        """The address of ``message``'s URI as aiocoap's ``udp6`` resolves it, through
        ``socket_``; None for a URI that is not CoAP over UDP."""
        remote = await MessageInterfaceUDP6.determine_remote(self, message)
        if remote is None:
            return None
        sockaddr = self._servers.setdefault(remote.sockaddr, remote.sockaddr)
        return SocketAddress(sockaddr, socket_, pktinfo=remote.pktinfo)

    # -- reading -----------------------------------------------------------------------------

    def _ready(self) -> None:
        """What the loop calls when a socket is readable: each readable one is read once (one
        still readable after is read on the loop's next pass, fairly)."""
        for fd, _ in self._poll.poll(0):
            socket_ = self._open.get(fd)
            if socket_ is not None:
                self._read(socket_)

    def _read(self, socket_: Socket) -> None:
        """Read ``socket_``: an ICMP error queued, then one datagram, as aiocoap's transport
        reads them."""
        sock = socket_.sock
        if socknumbers.HAS_RECVERR:
            try:
                _, ancdata, _, address = sock.recvmsg(RECEIVE_LIMIT, 1024, socknumbers.MSG_ERRQUEUE)
            except OSError:
                pass  # nothing queued (BlockingIOError); nothing else comes from this call
            else:
                self._icmp_error(socket_, ancdata, address)
        try:
            data, ancdata, flags, address = sock.recvmsg(RECEIVE_LIMIT, 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            log.debug("receiving on %s failed: %s", sock.getsockname(), e)
            return
        self._received(socket_, data, ancdata, flags, address)

    def _icmp_error(self, socket_: Socket, ancdata: list[Any], address: Any) -> None:
        """An ICMP error about a datagram sent to ``address``: that peer's error (aiocoap's
        ``datagram_errqueue_received``)."""
        found = next((data for _, kind, data in ancdata if kind in RECVERR_TYPES), None)
        if found is None or self._layer is None:
            return
        number = SockExtendedErr.load(found).ee_errno
        error = OSError(number, f"{os.strerror(number)} (received through errqueue)")
        self._layer.dispatch_error(error, SocketAddress(address, socket_, pktinfo=pktinfo(ancdata)))

    def _received(
        self, socket_: Socket, data: bytes, ancdata: list[Any], flags: int, address: Any
    ) -> None:
        layer = self._layer
        if layer is None:
            return
        ancdata, layer.received_at = arrival(ancdata)
        remote = SocketAddress(address, socket_, pktinfo=pktinfo(ancdata))
        if flags & MSG_TRUNC:
            refuse_truncated(data, remote, layer.serves, self.send)
            return
        message = parsed(data, remote)
        try:
            if message is not None:
                layer.dispatch_message(message)
        finally:
            layer.received_at = None

    # -- the message interface -------------------------------------------------------------

    def send(self, message: Any) -> None:
        remote = message.remote
        socket_ = remote.interface
        if socket_ not in self:
            log.debug("not sending to %s: its socket is closed", remote)
            return
        ancdata = (
            []
            if remote.pktinfo is None
            else [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, remote.pktinfo)]
        )
        try:
            send_once_more(socket_.sock, message.encode(), ancdata, remote.sockaddr)
        except OSError as e:
            if self._layer is not None:
                self._layer.dispatch_error(e, remote)

    async def recognize_remote(self, remote: interfaces.EndpointAddress) -> bool:
        return isinstance(remote, UDP6EndpointAddress) and remote.interface in self

    async def determine_remote(self, message: aiocoap.Message) -> None:
        """None: which socket a request leaves from is its uplink's choice (``SocketUplink``),
        never this interface's."""
        return None

    async def shutdown(self) -> None:
        for socket_ in list(self._open.values()):
            self.close(socket_)
        self.loop.remove_reader(self._poll.fileno())
        self._poll.close()

    # -- the server site ---------------------------------------------------------------------

    def _site(self, request: aiocoap.Message) -> Any:
        site = getattr(request.remote.interface, "site", None)
        if site is None:
            raise aiocoap.error.ServiceUnavailable("this endpoint's socket is closing")
        return site

    async def render_to_pipe(self, pipe: Any) -> None:
        await self._site(pipe.request).render_to_pipe(pipe)

    def answer_now(self, request: aiocoap.Message) -> Answer | None:
        return answer_now(getattr(request.remote.interface, "site", None), request)


class SharedEngine:
    """One context for the NoSec uplinks of many endpoints (see the module docstring);
    ``open`` is an ``OpenUdp``."""

    def __init__(self, limits: CoapLimits | None = None) -> None:
        self._limits = limits
        self._sockets: Sockets | None = None
        self._context: aiocoap.Context | None = None
        self._layer: BoundedMessageManager | None = None
        self._starting = asyncio.Lock()

    @property
    def context(self) -> aiocoap.Context | None:
        """The shared context, once an uplink has opened."""
        return self._context

    @property
    def sockets(self) -> int:
        """How many sockets are open."""
        return 0 if self._sockets is None else len(self._sockets)

    async def _started(self) -> Sockets:
        async with self._starting:
            if self._sockets is None:
                sockets = Sockets(asyncio.get_running_loop())
                context = ServingContext(sockets, loop=sockets.loop, loggername="coap-endpoints")

                async def interface(mman: BoundedMessageManager) -> Sockets:
                    return sockets.attach(mman)

                self._layer = await append_message_interface(
                    context, interface, self._limits, peers_only=True, address=on_socket
                )
                self._context, self._sockets = context, sockets
            return self._sockets

    async def open(
        self, site: interfaces.Resource, bind: tuple[str, int] = ("::", 0)
    ) -> SocketUplink:
        """An uplink on a new socket bound to ``bind``, serving ``site``; the errors of
        :func:`~bridged.engine.coap.unshared_socket` when the socket cannot open."""
        sockets = await self._started()
        assert self._context is not None
        sock = await unshared_socket(bind[0], bind[1])
        try:
            opened = sockets.open(sock, site)
        except BaseException:
            sock.close()
            raise
        return SocketUplink(self, self._context, opened)

    async def resolve(
        self, message: aiocoap.Message, socket_: Socket
    ) -> interfaces.EndpointAddress | None:
        """``Sockets.resolve``."""
        return None if self._sockets is None else await self._sockets.resolve(message, socket_)

    async def close(self, socket_: Socket) -> None:
        """Close one uplink's socket, ending what was going on through it."""
        if self._layer is None or self._sockets is None or socket_ not in self._sockets:
            return
        self._layer.close_interface(socket_, aiocoap.error.LibraryShutdown())
        self._sockets.close(socket_)

    async def shutdown(self) -> None:
        """Close every socket and the context; the next ``open`` makes a new one."""
        context, self._context, self._layer, self._sockets = self._context, None, None, None
        if context is not None:
            await context.shutdown()  # and with it every socket (``Sockets.shutdown``)


class SocketUplink(UdpUplink):
    """A NoSec uplink on its own socket of a :class:`SharedEngine`: its requests leave from
    that socket (the server's address is resolved on it), and ``shutdown`` closes the socket
    alone."""

    __slots__ = ("_engine", "_socket")

    def __init__(self, engine: SharedEngine, context: aiocoap.Context, socket_: Socket) -> None:
        super().__init__(context, address=SocketAddress)
        self._engine = engine
        self._socket = socket_

    async def request(self, message: aiocoap.Message, *, blockwise: bool = True) -> aiocoap.Message:
        asked = message.remote
        if isinstance(asked, UndecidedRemote) and self.resolved(asked) is None:
            remote = await self._engine.resolve(message, self._socket)
            if remote is None:
                raise aiocoap.error.ResolutionError(f"{asked} is not a CoAP-over-UDP address")
            self.resolving(asked, remote)
        return await super().request(message, blockwise=blockwise)

    async def shutdown(self) -> None:
        await self._engine.close(self._socket)
