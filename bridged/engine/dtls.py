"""CoAP over DTLS-PSK towards one LwM2M server (LwM2M security mode 0).

LwM2M needs DTLS to work both ways: the client opens the session with its Register, and the
server then sends its own requests (Read, Write, Observe, ...) into that same session, to the same
5-tuple. aiocoap's ``tinydtls`` client transport does this when the context also has a server
site, with a few sharp edges that this module deals with in one place:

* **The session must be held.** aiocoap keeps DTLS connections in a weak pool; once nothing
  references a connection it is garbage-collected and closed without a word, and the server's
  requests are lost. :class:`DtlsPskUplink` keeps the remote of the last response.
* **A dead session is not noticed.** After a server restart without ICMP errors, aiocoap keeps
  writing into a session the server no longer knows, and no new handshake happens.
  :meth:`DtlsPskUplink.request` shuts the session down when a request fails at the network
  level, so the caller's next Register handshakes afresh (on a new local port).
* **A wrong PSK is silent.** A DTLS server discards a Finished message it cannot verify (RFC 6347
  section 4.1.2.1 allows invalid records to be dropped), so a wrong identity or key only shows as
  a handshake that never completes. Connections here give up after a handshake timeout with
  :class:`DtlsHandshakeError`, which names the likely cause.
* **close_notify.** After a server's close_notify, tinydtls handshakes again inside the same
  connection on the next write. Stock aiocoap logs that alert as unhandled and then fails on the
  second "connected" event (``InvalidStateError``); tinydtls also drops the data written while
  it handshakes, so the first message sent afterwards is lost. Those messages are held here
  and sent once the session is up again.

The tinydtls pieces used (``DTLSClientConnection`` with its ``send``, ``_event``,
``_inject_error`` and ``shutdown`` hooks and its ``SingleConnection`` protocol; the transport's
``_pool`` keyed by ``(host, port, identity)``) are aiocoap internals, pinned by
``tests/integration/test_dtls.py``; keep aiocoap's version pinned. The transport is added
through :func:`bridged.engine.coap.append_message_interface`, so the DTLS context has the same
memory bound and Message-ID pacing as the plain one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

from aiocoap import GET, Context, Message, credentials, error, interfaces
from aiocoap.transports.tinydtls import (
    CODE_CLOSE_NOTIFY,
    DTLS_EVENT_CONNECTED,
    LEVEL_NOALERT,
    LEVEL_WARNING,
    DTLSClientConnection,
    MessageInterfaceTinyDTLS,
)

from .coap import append_message_interface
from .serving import ServingContext

#: Same budget CoAP gives a confirmable message before giving up (MAX_TRANSMIT_SPAN, RFC 7252).
DEFAULT_HANDSHAKE_TIMEOUT = 45.0


class DtlsHandshakeError(error.NetworkError):
    """The DTLS handshake with the server did not complete in time (``mode``: "PSK" or
    "certificate", which names what to check).

    A subclass of aiocoap's ``NetworkError`` so that aiocoap hands it to the failing request
    unchanged instead of wrapping it; ``__str__`` is overridden because aiocoap's only names the
    class, and this error must say what to check. ``answered`` tells a server that is silent
    (wrong address, filtered) from one that refused the keys.
    """

    def __init__(self, hostinfo: str, timeout: float, answered: bool, mode: str = "PSK") -> None:
        super().__init__(hostinfo, timeout, answered)
        self.hostinfo = hostinfo
        self.timeout = timeout
        self.answered = answered
        self.mode = mode

    def __str__(self) -> str:
        failed = (
            f"DTLS-{self.mode} handshake with {self.hostinfo} did not complete within"
            f" {self.timeout:g} s"
        )
        if not self.answered:
            return f"{failed}: no answer from the server"
        if self.mode != "PSK":
            return f"{failed}: the server answered but did not finish the handshake"
        return (
            f"{failed}: the server answered but did not accept the handshake; check the PSK"
            " identity and key (/0/x/3, /0/x/5), as a server silently drops a Finished message"
            " it cannot verify"
        )


class _PskConnection(DTLSClientConnection):
    """A tinydtls client connection with a handshake deadline and clean re-handshakes.

    After a close_notify, tinydtls handshakes again on the next write but drops the data of that
    write and of any during the handshake; those messages are held and sent once the session is
    up again, so the first message after a close_notify is not lost to a CoAP retransmission
    (or lost for good, if it is non-confirmable).
    """

    def __init__(
        self,
        host: str,
        port: int,
        identity: bytes,
        key: bytes,
        transport: _PskTransport,
        handshake_timeout: float,
    ) -> None:
        self._established = False
        self._answered = False
        self._held: list[bytes] | None = None  # messages held back during a re-handshake
        self._handshake_timeout = handshake_timeout
        self._handshake_timer = asyncio.get_running_loop().call_later(
            handshake_timeout, self._handshake_timed_out
        )
        super().__init__(host, port, identity, key, transport)

    def _handshake_timed_out(self) -> None:
        self._inject_error(
            DtlsHandshakeError(self.hostinfo, self._handshake_timeout, self._answered)
        )

    def send(self, message: bytes) -> None:
        if self._held is None:
            super().send(message)
            return
        if not self._held:
            # This write makes tinydtls start the new handshake, but tinydtls drops the data.
            super().send(message)
        self._held.append(message)

    def _event(self, level: int, code: int) -> None:
        if (level, code) == (LEVEL_NOALERT, DTLS_EVENT_CONNECTED):
            self._handshake_timer.cancel()
            if self._established:
                self.log.debug("DTLS session with %s established again", self.hostinfo)
                held, self._held = self._held or [], None
                for message in held:
                    super().send(message)
                return
            self._established = True
        elif (level, code) == (LEVEL_WARNING, CODE_CLOSE_NOTIFY):
            self.log.info(
                "%s closed the DTLS session; the next message handshakes again", self.hostinfo
            )
            self._held = []
            return
        super()._event(level, code)

    def shutdown(self) -> None:
        self._handshake_timer.cancel()
        super().shutdown()

    class SingleConnection(DTLSClientConnection.SingleConnection):
        """The connection's UDP protocol, noting whether the server sent anything at all."""

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            connection = self.parent()
            if connection is not None:
                connection._answered = True
            super().datagram_received(data, addr)


class _PskTransport(MessageInterfaceTinyDTLS):
    """The ``tinydtls`` client transport, creating :class:`_PskConnection` connections."""

    def __init__(
        self,
        mman: interfaces.MessageManager,
        log: logging.Logger,
        loop: asyncio.AbstractEventLoop,
        handshake_timeout: float,
    ) -> None:
        super().__init__(mman, log, loop)
        self._handshake_timeout = handshake_timeout

    def _connection_for_address(
        self, host: str, port: int, identity: bytes, key: bytes
    ) -> _PskConnection:
        # Same pool key as DTLSClientConnection._remove_from_pool uses.
        pool_key = (host, port, identity)
        connection: _PskConnection | None = self._pool.get(pool_key)
        if connection is None:
            self.log.info("Starting a DTLS session with %s port %s", host, port)
            connection = _PskConnection(host, port, identity, key, self, self._handshake_timeout)
            self._pool[pool_key] = connection
        return connection

    def close_sessions(self) -> None:
        """Shut down every session in the pool (all to the one server), held or not."""
        for connection in list(self._pool.values()):
            connection.shutdown()


def credentials_pattern(server_uri: str) -> str:
    """The client-credentials key covering every request to ``server_uri``'s origin.

    Built from aiocoap's own rendering of the URI (host case, explicit port), because aiocoap
    matches credentials against that rendering. Any path or query of the Server URI is left
    out: Registration goes below the path, Updates go to the returned Location-Path.
    """
    rendered = origin(server_uri)
    if not rendered.startswith("coaps://"):
        raise ValueError(f"not a coaps:// Server URI: {server_uri!r}")
    return f"{rendered}/*"


def origin(uri: str) -> str:
    """``uri``'s scheme, host and port as aiocoap renders them (host case, explicit port), so
    two URIs of one server compare equal however they are written."""
    rendered = urlsplit(Message(code=GET, uri=uri).get_request_uri())
    return f"{rendered.scheme}://{rendered.netloc}"


T = TypeVar("T", bound=interfaces.MessageInterface)


async def only_interface(context: Context, create: Callable[[interfaces.MessageManager], T]) -> T:
    """Give ``context`` its one message interface, ``create``d over the engine's bounded message
    manager (``coap.append_message_interface``): the default set would also open plain UDP, TCP and
    WebSocket endpoints on the CoAP ports, which a gateway must not expose."""
    made: list[T] = []

    async def create_interface(mman: interfaces.MessageManager) -> T:
        made.append(create(mman))
        return made[0]

    await append_message_interface(context, create_interface)
    return made[0]


class Sessions(Protocol):
    """A DTLS transport as its endpoint sees it: sessions it can end."""

    def close_sessions(self) -> None: ...


class DtlsUplink:
    """The client's CoAP endpoint towards one LwM2M server over DTLS, whatever the credentials.

    Its :attr:`context` serves the client's site to the server over the DTLS session the client
    opens, and sends the client's own requests (Register, Update, ...) through :meth:`request`,
    which keeps that session alive and usable. The subclasses build the context with their
    transport: :class:`DtlsPskUplink` (PSK, tinydtls) and ``dtls_openssl.DtlsX509Uplink``
    (certificates, OpenSSL).
    """

    def __init__(self, context: Context, transport: Sessions, server_uri: str) -> None:
        self.context = context
        self.server_uri = server_uri
        self._transport = transport
        self._session: interfaces.EndpointAddress | None = None

    address: None = None
    """No plain UDP address to name (``Uplink.address``): a session's block size is aiocoap's."""

    @property
    def session(self) -> interfaces.EndpointAddress | None:
        """The DTLS session held for the server, or None before the first answered request."""
        return self._session

    async def request(self, message: Message, *, blockwise: bool = True) -> Message:
        """Send a request to the server and return its response.

        The response's remote is the session; holding it keeps aiocoap from collecting it, which
        would make the server's requests to the client disappear. A network-level failure
        (timeout, DTLS alert, handshake failure) drops the session before the error is raised:
        the caller then Registers again, which starts a new handshake.
        """
        try:
            request = self.context.request(message, handle_blockwise=blockwise)
            response: Message = await request.response
        except error.NetworkError:
            self.drop_session()
            raise
        self._session = response.remote
        return response

    def drop_session(self) -> None:
        """Shut the session down, so that the next request handshakes afresh.

        For when the server has lost the session but the client cannot tell, e.g. it restarted
        and silently ignores records of the old session: aiocoap would otherwise keep using it
        forever. A session still in its handshake (a Register that failed) goes too. After this
        the caller must Register again, as the server will see the client on a new 5-tuple.
        """
        self._session = None
        self._transport.close_sessions()

    async def shutdown(self) -> None:
        """Close the session and the context."""
        self.drop_session()
        await self.context.shutdown()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.server_uri}>"


class DtlsPskUplink(DtlsUplink):
    """The endpoint towards a server in security mode 0 (PSK), over aiocoap's tinydtls."""

    @classmethod
    async def create(
        cls,
        server_uri: str,
        identity: bytes,
        key: bytes,
        site: interfaces.Resource,
        *,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        loggername: str = "bridged.engine.dtls",
    ) -> DtlsPskUplink:
        """Build the context for ``server_uri`` with PSK ``identity`` (/0/x/3) and ``key`` (/0/x/5).

        The context gets exactly one transport, tinydtls: the default set would also open plain
        UDP, TCP and WebSocket endpoints on the CoAP ports, which a gateway must not expose.
        """
        client_credentials = credentials.CredentialsMap()
        client_credentials[credentials_pattern(server_uri)] = credentials.DTLS(
            psk=key, client_identity=identity
        )
        context = ServingContext(
            site,
            loggername=loggername,
            client_credentials=client_credentials,
        )
        loop = asyncio.get_running_loop()
        transport = await only_interface(
            context, lambda mman: _PskTransport(mman, context.log, loop, handshake_timeout)
        )
        return cls(context, transport, server_uri)
