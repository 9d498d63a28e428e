"""The gateway as a DTLS server, for one peer: the Bootstrap-Server of a server-initiated
bootstrap (``bootstrap_listener``), which opens the session itself.

Everywhere else the gateway is the DTLS client (``dtls``, ``dtls_rpk``, ``dtls_openssl``). Here
each listening context accepts one credential, the Bootstrap-Server account's, so a handshake
with any other completes never and nothing else is served:

* **PSK** (mode 0): aiocoap's ``tinydtls_server`` transport (DTLSSocket) holding the account's
  /0/x/3 identity and /0/x/5 key. Two things are changed (aiocoap internals, pinned as the
  client's are): the port is used as given (aiocoap adds the CoAP-to-CoAPS offset, 1), and a
  close_notify, a warning-level alert, ends the session (aiocoap 0.4.17 logs it as unhandled
  and keeps the session).
* **RPK** (mode 1): tinydtls through our binding (``tinydtls``) in the server role, with the
  gateway's key pair from /0/x/3 and /0/x/5; the peer's raw public key must be /0/x/4's,
  checked inside the handshake (a client that shows no key or another one gets no session).
  Its socket is opened as the gateway's other sockets are (``coap.unshared_socket``).
* **Certificates** (mode 2): OpenSSL in the server role (``dtls_openssl``, imported only then:
  pyOpenSSL is in the dtls extra), on a socket of its own too; the peer's certificate is
  required and checked as a server's would be (``dtls_x509.verify_server``).

Each answers a ClientHello with a HelloVerifyRequest first (RFC 6347 section 4.2.1: tinydtls
does it itself, OpenSSL with a cookie per session), so a spoofed ClientHello gets no
certificate flight; the listening port is opt-in all the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiocoap
from aiocoap import Message, credentials, error, interfaces
from aiocoap.transports.tinydtls import CODE_CLOSE_NOTIFY, LEVEL_WARNING, CloseNotifyReceived
from aiocoap.transports.tinydtls_server import (
    MessageInterfaceTinyDTLSServer,
    _AddressDTLS,
    _DatagramServerSocketSimpleDTLS,
)
from aiocoap.util import hostportjoin

from .coap import append_message_interface, unshared_socket
from .credentials import RpkCredentials
from .dtls_session import CoapsAddress
from .serving import ServingContext
from .tinydtls import ALERT_CLOSE_NOTIFY, Address, Context, Handlers, RawKey

log = logging.getLogger(__name__)


class _PskSession(_AddressDTLS):
    """A PSK session of the listener, ended by the peer's close_notify."""

    def _event(self, level: int, code: int) -> None:
        if (level, code) == (LEVEL_WARNING, CODE_CLOSE_NOTIFY):
            self._inject_error(CloseNotifyReceived())
            return
        super()._event(level, code)


class _PskSessions(_DatagramServerSocketSimpleDTLS):
    _Address = _PskSession


class _PskListener(MessageInterfaceTinyDTLSServer):
    """aiocoap's tinydtls server transport on the port it is given, whose sessions end at a
    close_notify."""

    _serversocket = _PskSessions

    @classmethod
    async def create_server(
        cls,
        bind: tuple[str, int],
        ctx: interfaces.MessageManager,
        log: logging.Logger,
        loop: asyncio.AbstractEventLoop,
        server_credentials: credentials.CredentialsMap,
    ) -> _PskListener:
        self = cls(ctx, log, loop)
        self._pool = await self._serversocket.create(bind, log, loop, self)
        self._pool._server_credentials = server_credentials
        return self


async def psk_listener(
    site: Any, bind: tuple[str, int], identity: bytes, key: bytes
) -> aiocoap.Context:
    """A context serving ``site`` on ``bind`` to the DTLS-PSK peer with ``identity`` and ``key``
    only (``bind``'s host must be one address: aiocoap's server socket refuses the any-address)."""
    accepted = credentials.CredentialsMap()
    accepted[":peer"] = credentials.DTLS(psk=key, client_identity=identity)
    loop = asyncio.get_running_loop()

    async def dtls(mman: interfaces.MessageManager) -> _PskListener:
        return await _PskListener.create_server(bind, mman, log, loop, accepted)

    return await _listening(site, dtls)


async def _listening(
    site: Any, create: Callable[[interfaces.MessageManager], Awaitable[Any]]
) -> aiocoap.Context:
    """A context serving ``site`` through the one message interface ``create`` makes."""
    context = ServingContext(site, loggername=__name__)
    try:
        await append_message_interface(context, create)
    except BaseException:
        await context.shutdown()
        raise
    return context


class ListenerPeer(CoapsAddress):
    """A peer of a :class:`SessionListener`, by its address: one object per address, so
    aiocoap's exchanges compare it by identity."""

    def __init__(self, interface: SessionListener, address: Address) -> None:
        self.interface, self.address = interface, address

    @property
    def hostinfo(self) -> str:
        return str(hostportjoin(*self.address))

    @property
    def hostinfo_local(self) -> str:
        return self.interface.hostinfo_local

    @property
    def blockwise_key(self) -> object:
        return self.address


class SessionListener(interfaces.MessageInterface, asyncio.DatagramProtocol):
    """aiocoap's message interface for a DTLS server on a socket of its own (the subclass holds
    the DTLS library): it only answers, into the sessions its peer opened."""

    def __init__(self, mman: interfaces.MessageManager) -> None:
        self._mman = mman
        self._peers: dict[Address, ListenerPeer] = {}
        self.transport: asyncio.DatagramTransport | None = None

    @property
    def hostinfo_local(self) -> str:
        assert self.transport is not None
        return str(hostportjoin(*self.transport.get_extra_info("sockname")[:2]))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport

    def dispatch(self, address: Address, payload: bytes) -> None:
        """A CoAP message decrypted from ``address``'s session, to aiocoap."""
        remote = self._peers.setdefault(address, ListenerPeer(self, address))
        try:
            message = Message.decode(payload, remote)
        except error.UnparsableMessage:
            log.info("an unparsable CoAP message from %s", remote.hostinfo)
            return
        self._mman.dispatch_message(message)

    def ended(self, address: Address) -> None:
        """``address``'s session is over."""
        self._peers.pop(address, None)

    async def determine_remote(self, request: Message) -> None:
        return None  # a listener only answers, into the sessions its peer opened

    async def recognize_remote(self, remote: interfaces.EndpointAddress) -> bool:
        return isinstance(remote, ListenerPeer) and remote.interface is self

    async def shutdown(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def session_listener(
    site: Any, bind: tuple[str, int], make: Callable[[interfaces.MessageManager], SessionListener]
) -> aiocoap.Context:
    """A context serving ``site`` on ``bind`` (a socket as the gateway's others are:
    ``coap.unshared_socket``) through the listener ``make`` makes."""

    async def dtls(mman: interfaces.MessageManager) -> SessionListener:
        interface = make(mman)
        sock = await unshared_socket(*bind)
        try:
            await asyncio.get_running_loop().create_datagram_endpoint(lambda: interface, sock=sock)
        except BaseException:
            sock.close()
            await interface.shutdown()
            raise
        return interface

    return await _listening(site, dtls)


class _RpkListener(SessionListener, Handlers):
    """The listener with raw public keys (tinydtls through our binding), taking sessions from
    the one peer key it trusts. What tinydtls decrypts is dispatched after it returned, so
    aiocoap never runs inside tinydtls."""

    def __init__(self, mman: interfaces.MessageManager, rpk: RpkCredentials) -> None:
        super().__init__(mman)
        self._trusted = rpk.server_point
        self._context: Context | None = Context(RawKey.from_der(rpk.private_key), self)
        self._plain: list[tuple[Address, bytes]] = []
        self._ended: list[Address] = []
        self._timer: asyncio.TimerHandle | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self._context is None:
            return
        self._context.handle((addr[0], addr[1]), data)
        plain, self._plain = self._plain, []
        for address, payload in plain:
            self.dispatch(address, payload)
        ended, self._ended = self._ended, []
        for address in ended:
            self.ended(address)
        self._arm_retransmission()

    def _arm_retransmission(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        wait = self._context.retransmit() if self._context is not None else None
        if wait is not None:
            self._timer = asyncio.get_running_loop().call_later(wait, self._arm_retransmission)

    # -- tinydtls' callbacks -----------------------------------------------------------------

    def write(self, peer: Address, data: bytes) -> None:
        if self.transport is not None:
            self.transport.sendto(data, peer)

    def read(self, peer: Address, data: bytes) -> None:
        self._plain.append((peer, data))

    def event(self, peer: Address, level: int, code: int) -> None:
        if level and code == ALERT_CLOSE_NOTIFY:
            self._ended.append(peer)

    def trusted(self, peer: Address, x: bytes, y: bytes) -> bool:
        if (x, y) == self._trusted:
            return True
        log.warning("refused a DTLS session from %s: its raw public key is not /0/x/4's", peer)
        return False

    # -- aiocoap -----------------------------------------------------------------------------

    def send(self, message: Message) -> None:
        remote = message.remote
        if self._context is not None and isinstance(remote, ListenerPeer):
            self._context.write(remote.address, message.encode())

    async def shutdown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await super().shutdown()
        if self._context is not None:
            self._context.free()
            self._context = None


async def rpk_listener(site: Any, bind: tuple[str, int], rpk: RpkCredentials) -> aiocoap.Context:
    """A context serving ``site`` on ``bind`` to the DTLS peer whose raw public key is
    ``rpk.server_public_key`` only, with the gateway's ``rpk.public_key`` pair."""
    return await session_listener(site, bind, lambda mman: _RpkListener(mman, rpk))
