"""One CoAP engine for many NoSec uplinks, each on a UDP socket of its own.

The endpoints exposure mode registers every node as a LwM2M endpoint with a socket of its own:
a server answers, and sends its requests for an endpoint, to the address and port the
endpoint registered from, so the port is what tells the endpoints apart. A context per
endpoint (``UdpUplink``: aiocoap's Context, token and message managers, the engine's message
layer with its pacers and duplicate cache) cost 6.4 KB per endpoint, the largest part of the
10,000-node gateway's memory (docs/benchmarks.md). Here one :class:`SharedEngine` holds one
context, token manager and :class:`~bridged.engine.coap.BoundedMessageManager`; its message
interface, :class:`Sockets`, holds one aiocoap ``udp6`` message interface (the socket and its
transport) per endpoint and the site each one serves.

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
relies on (``UDP6EndpointAddress``'s equality and ``_interface``, ``MessageInterfaceUDP6``'s
``_create_transport_endpoint``, ``determine_remote`` and ``shutdown``, the token and message
managers' ``dispatch_error`` and tables) are pinned in ``tests/unit/test_aiocoap_internals.py``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiocoap
from aiocoap import interfaces
from aiocoap.message import UndecidedRemote
from aiocoap.transports.udp6 import MessageInterfaceUDP6, UDP6EndpointAddress

from .addresses import Address
from .coap import BoundedMessageManager, CoapLimits, append_message_interface, unshared_socket
from .serving import ServingContext
from .site import Answer, answer_now
from .udp import guard_receives, guard_sends
from .uplink import UdpUplink

log = logging.getLogger(__name__)


class SocketAddress(Address):
    """A peer's UDP address as seen through one local socket: equal only to the same peer
    through the same socket (see the module docstring)."""

    def __hash__(self) -> int:
        return hash((self.sockaddr[:-1], self._interface))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UDP6EndpointAddress)
            and self.sockaddr[:-1] == other.sockaddr[:-1]
            and self._interface == other._interface
        )


def on_socket(remote: interfaces.EndpointAddress) -> interfaces.EndpointAddress:
    """``remote`` made a :class:`SocketAddress` when it is a UDP one (in place: it holds
    nothing more); the shared message layer's ``address``."""
    if type(remote) in (UDP6EndpointAddress, Address):
        remote.__class__ = SocketAddress
    return remote


class Sockets(interfaces.MessageInterface):
    """The shared message layer's message interface: the open sockets (aiocoap ``udp6``
    message interfaces), each with the site it serves. It is the context's server site too:
    a request goes to the site of the socket it came in on."""

    def __init__(self) -> None:
        self._sites: dict[MessageInterfaceUDP6, Any] = {}

    def add(self, socket: MessageInterfaceUDP6, site: Any) -> None:
        self._sites[socket] = site

    def remove(self, socket: MessageInterfaceUDP6) -> None:
        self._sites.pop(socket, None)

    def __len__(self) -> int:
        return len(self._sites)

    def __contains__(self, socket: object) -> bool:
        return socket in self._sites

    # -- the message interface -------------------------------------------------------------

    def send(self, message: Any) -> None:
        socket = message.remote.interface
        if socket not in self._sites:
            log.debug("not sending to %s: its socket is closed", message.remote)
            return
        socket.send(message)

    async def recognize_remote(self, remote: interfaces.EndpointAddress) -> bool:
        return isinstance(remote, UDP6EndpointAddress) and remote.interface in self._sites

    async def determine_remote(self, message: aiocoap.Message) -> None:
        """None: which socket a request leaves from is its uplink's choice (``SocketUplink``),
        never this interface's."""
        return None

    async def shutdown(self) -> None:
        sockets = list(self._sites)
        self._sites.clear()
        await asyncio.gather(*(s.shutdown() for s in sockets))

    # -- the server site ---------------------------------------------------------------------

    def _site(self, request: aiocoap.Message) -> Any:
        site = self._sites.get(request.remote.interface)
        if site is None:
            raise aiocoap.error.ServiceUnavailable("this endpoint's socket is closing")
        return site

    async def render_to_pipe(self, pipe: Any) -> None:
        await self._site(pipe.request).render_to_pipe(pipe)

    def answer_now(self, request: aiocoap.Message) -> Answer | None:
        return answer_now(self._sites.get(request.remote.interface), request)


class SharedEngine:
    """One context for the NoSec uplinks of many endpoints (see the module docstring);
    ``open`` is an ``OpenUdp``."""

    def __init__(self, limits: CoapLimits | None = None) -> None:
        self._limits = limits
        self._sockets = Sockets()
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
        return len(self._sockets)

    async def _started(self) -> BoundedMessageManager:
        async with self._starting:
            if self._layer is None:
                context = ServingContext(
                    self._sockets, loop=asyncio.get_running_loop(), loggername="coap-endpoints"
                )

                async def sockets(mman: BoundedMessageManager) -> Sockets:
                    return self._sockets

                self._layer = await append_message_interface(
                    context, sockets, self._limits, peers_only=True, address=on_socket
                )
                self._context = context
            return self._layer

    async def open(
        self, site: interfaces.Resource, bind: tuple[str, int] = ("::", 0)
    ) -> SocketUplink:
        """An uplink on a new socket bound to ``bind``, serving ``site``; the errors of
        :func:`~bridged.engine.coap.unshared_socket` when the socket cannot open."""
        layer = await self._started()
        assert self._context is not None
        sock = await unshared_socket(bind[0], bind[1])
        try:
            socket = await MessageInterfaceUDP6._create_transport_endpoint(
                sock, layer, log, asyncio.get_running_loop()
            )
        except BaseException:
            sock.close()
            raise
        guard_sends(socket)
        guard_receives(socket)
        self._sockets.add(socket, site)
        return SocketUplink(self, self._context, socket)

    async def close(self, socket: MessageInterfaceUDP6) -> None:
        """Close one uplink's socket, ending what was going on through it."""
        if self._layer is None or socket not in self._sockets:
            return
        self._layer.close_interface(socket, aiocoap.error.LibraryShutdown())
        self._sockets.remove(socket)
        await socket.shutdown()

    async def shutdown(self) -> None:
        """Close every socket and the context; the next ``open`` makes a new one."""
        context, self._context, self._layer = self._context, None, None
        if context is not None:
            await context.shutdown()  # and with it every socket (``Sockets.shutdown``)


class SocketUplink(UdpUplink):
    """A NoSec uplink on its own socket of a :class:`SharedEngine`: its requests leave from
    that socket (the server's address is resolved on it), and ``shutdown`` closes the socket
    alone."""

    def __init__(
        self, engine: SharedEngine, context: aiocoap.Context, socket: MessageInterfaceUDP6
    ) -> None:
        super().__init__(context, address=SocketAddress)
        self._engine = engine
        self._socket = socket

    async def request(self, message: aiocoap.Message) -> aiocoap.Message:
        asked = message.remote
        if isinstance(asked, UndecidedRemote) and self.resolved(asked) is None:
            remote = await self._socket.determine_remote(message)
            if remote is None:
                raise aiocoap.error.ResolutionError(f"{asked} is not a CoAP-over-UDP address")
            self._resolved = (
                asked,
                SocketAddress(remote.sockaddr, self._socket, pktinfo=remote.pktinfo),
            )
        return await super().request(message)

    async def shutdown(self) -> None:
        await self._engine.close(self._socket)
