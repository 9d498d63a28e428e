"""A DTLS session on a socket of its own, under aiocoap: what the certificate (OpenSSL) and raw
public key (tinydtls) transports share.

LwM2M needs the server's requests (Read, Observe, Write) answered inside the session the client
opened with its Register, to the same 5-tuple. Neither library owns a socket here: each
:class:`DatagramSession` is one connected UDP socket and one DTLS session, the remote of every
message to and from the server; :class:`SessionTransport` is aiocoap's message interface for one
server, holding one session at a time. A subclass does the DTLS library's part: start the
handshake, take a datagram, send application data, say goodbye.

Messages sent before the handshake and the server's identity check are held and go out once
both passed; a failure (``DtlsIdentityError``, ``DtlsAlertError``, ``DtlsHandshakeError``, a
socket error) is handed to aiocoap for every request on the session and ends it. The registrar
logs it once and tries again later, never with less security.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiocoap import Message, error, interfaces
from aiocoap.util import hostportjoin, hostportsplit

from .dtls import DtlsHandshakeError, only_interface
from .serving import ServingContext

log = logging.getLogger(__name__)

COAPS_PORT = 5684


class CoapsAddress(interfaces.EndpointAddress):
    """A peer at the far end of a DTLS session, as aiocoap addresses it: its URIs follow from
    ``hostinfo`` and ``hostinfo_local``."""

    scheme = "coaps"
    is_multicast = False
    is_multicast_locally = False

    @property
    def uri_base(self) -> str:
        return f"coaps://{self.hostinfo}"

    @property
    def uri_base_local(self) -> str:
        return f"coaps://{self.hostinfo_local}"


class DatagramSession(CoapsAddress):
    """One DTLS session with the server on a connected UDP socket (``mode`` names the
    credentials in messages: "certificate", "RPK")."""

    mode = ""

    def __init__(
        self, transport: SessionTransport, host: str, port: int, handshake_timeout: float
    ) -> None:
        self._transport = transport
        self._host, self._port = host, port
        self._hostinfo: str = hostportjoin(host, None if port == COAPS_PORT else port)
        self._held: list[bytes] = []
        self._ready = False
        self._closed = False
        self._answered = False
        self._udp: asyncio.DatagramTransport | None = None
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(handshake_timeout, self._timed_out, handshake_timeout)
        # held: the event loop keeps only a weak reference to a task
        self._start = asyncio.ensure_future(self._open())

    # -- EndpointAddress ---------------------------------------------------------------------

    @property
    def hostinfo(self) -> str:
        return self._hostinfo

    @property
    def hostinfo_local(self) -> str:
        host, port, *_ = self._udp.get_extra_info("sockname") if self._udp else ("::", 0)
        return f"{hostportjoin(host, port)}"

    @property
    def blockwise_key(self) -> object:
        return (self._host, self._port)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.hostinfo}>"

    # -- what a DTLS library does ------------------------------------------------------------

    def _handshake(self) -> None:
        """Start the handshake (the socket is open)."""
        raise NotImplementedError

    def _take(self, data: bytes) -> None:
        """A datagram from the server: handshake, application data (``_deliver``) or alert."""
        raise NotImplementedError

    def _write(self, data: bytes) -> None:
        """Send application data in the established session."""
        raise NotImplementedError

    def _close(self) -> None:
        """Say goodbye (close_notify) and release the library's state; the socket is still
        open."""
        raise NotImplementedError

    # -- I/O ---------------------------------------------------------------------------------

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), remote_addr=(self._host, self._port)
            )
        except OSError as e:
            failure = error.NetworkError(str(e))
            failure.__cause__ = e
            self._fail(failure)
            return
        if self._closed:  # shut down while the socket was being opened
            self._udp.close()
            return
        log.info("Starting a DTLS session (%s) with %s", self.mode, self.hostinfo)
        self._handshake()

    def send(self, data: bytes) -> None:
        if self._closed:
            return
        if not self._ready:
            self._held.append(data)
            return
        self._write(data)

    def received(self, data: bytes) -> None:
        self._answered = True
        if not self._closed:
            self._take(data)

    def _sendto(self, data: bytes) -> None:
        if self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(data)

    def _established(self, description: str) -> None:
        """The handshake finished and the server's identity was checked: send what was held."""
        self._deadline.cancel()
        log.debug("DTLS session with %s up (%s)", self, description)
        self._ready = True
        held, self._held = self._held, []
        for data in held:
            self.send(data)

    def _deliver(self, plain: bytes) -> None:
        self._transport.dispatch(plain, self)

    def _closed_by_server(self) -> None:
        log.info("%s closed the DTLS session; the next Register handshakes again", self)
        self._fail(error.NetworkError(f"{self.hostinfo} closed the DTLS session"))

    def _timed_out(self, timeout: float) -> None:
        self._fail(DtlsHandshakeError(self.hostinfo, timeout, self._answered, self.mode))

    def _fail(self, e: error.NetworkError) -> None:
        if self._closed:
            return
        self.shutdown()
        self._transport.failed(self, e)

    def shutdown(self) -> None:
        """End the session: a close_notify when it was up, then the socket."""
        if self._closed:
            return
        self._closed = True
        self._deadline.cancel()
        self._close()
        if self._udp is not None:
            self._udp.close()
        self._transport.forget(self)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, session: DatagramSession) -> None:
        self.session = session

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.session.received(data)

    def error_received(self, exc: Exception) -> None:
        # the OSError as the cause, which is where registration.failure_text looks for its errno
        failure = error.NetworkError(str(exc))
        failure.__cause__ = exc
        self.session._fail(failure)


SessionFactory = Callable[["SessionTransport", str, int], DatagramSession]
"""Opens a session for the transport to the server's host and port."""


async def session_context(
    site: interfaces.Resource, loggername: str, open_session: SessionFactory
) -> tuple[ServingContext, SessionTransport]:
    """A context serving ``site`` whose one message interface is a :class:`SessionTransport`
    opening its sessions with ``open_session``."""
    context = ServingContext(site, loggername=loggername)
    transport = await only_interface(context, lambda mman: SessionTransport(mman, open_session))
    return context, transport


class SessionTransport(interfaces.MessageInterface):
    """aiocoap's message interface for one server: one :class:`DatagramSession` at a time."""

    def __init__(self, mman: interfaces.MessageManager, open_session: SessionFactory) -> None:
        self._mman = mman
        self._open_session = open_session
        self.session: DatagramSession | None = None
        self._shutting_down = False

    async def determine_remote(self, request: Message) -> DatagramSession | None:
        if request.requested_scheme != "coaps":
            return None
        if self._shutting_down:
            raise error.LibraryShutdown
        if request.unresolved_remote:
            host, port = hostportsplit(request.unresolved_remote)
        elif request.opt.uri_host:
            host, port = request.opt.uri_host, request.opt.uri_port
        else:
            raise ValueError("no server address in the request")
        if self.session is None:
            self.session = self._open_session(self, host, port or COAPS_PORT)
        return self.session

    async def recognize_remote(self, remote: interfaces.EndpointAddress) -> bool:
        return remote is self.session and self.session is not None

    def send(self, message: Message) -> None:
        remote = message.remote
        assert isinstance(remote, DatagramSession)
        remote.send(message.encode())

    def dispatch(self, data: bytes, session: DatagramSession) -> None:
        try:
            message = Message.decode(data, session)
        except error.UnparsableMessage:
            log.warning("Ignoring an unparsable message from %s", session)
            return
        self._mman.dispatch_message(message)

    def failed(self, session: DatagramSession, e: error.NetworkError) -> None:
        self._mman.dispatch_error(e, session)

    def forget(self, session: DatagramSession) -> None:
        if self.session is session:
            self.session = None

    def close_sessions(self) -> None:
        if self.session is not None:
            self.session.shutdown()

    async def shutdown(self) -> None:
        self._shutting_down = True
        self.close_sessions()
