"""A DTLS server with certificates (OpenSSL, through pyOpenSSL) that plays a LwM2M server's side of
the session by hand: it hands each CoAP message it decrypts to the test, and sends what the test
gives it into the session of that client's address, as a LwM2M server sends its requests into
the session the client opened. ``close`` sends a close_notify, as a server that ends the session.

It is small on purpose: no CoAP layer of its own (the test answers, with the message IDs and
tokens it read), one session per client address, the client's certificate required and checked
against the test CA (``trust``).

``SessionServerInterface`` is the same under aiocoap, for the in-repo LwM2M and Bootstrap
servers over DTLS: ``X509ServerInterface`` here, ``RpkServerInterface`` in dtls_rpk_server.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiocoap
from aiocoap import Message, interfaces
from aiocoap.util import hostportjoin
from cryptography import x509
from OpenSSL import SSL, crypto

from bridged.engine.coap import append_message_interface
from bridged.engine.dtls_session import CoapsAddress
from peers.pki import Issued

DATAGRAM = 65536


class HandPlayedServer(asyncio.DatagramProtocol):
    """A DTLS server a test plays by hand: listens on 127.0.0.1 (``listen``); ``received`` has
    (client address, CoAP message) pairs; ``send`` and ``close`` act on a client's session."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[Any, Message]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    async def listen(self) -> None:
        await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )

    @property
    def uri(self) -> str:
        assert self.transport is not None
        return f"coaps://127.0.0.1:{self.transport.get_extra_info('sockname')[1]}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport

    def send(self, addr: Any, message: Message) -> None:
        """``message`` (its type, ID and token set by the test) into ``addr``'s session."""
        raise NotImplementedError

    def close(self, addr: Any) -> None:
        """End ``addr``'s session with a close_notify."""
        raise NotImplementedError

    def shutdown(self) -> None:
        if self.transport is not None:
            self.transport.close()


def server_ssl_context(certificate: Issued, trust: x509.Certificate) -> SSL.Context:
    """A DTLS server's OpenSSL context: ``certificate`` its own, the client's certificate
    required and of the CA ``trust``."""
    context = SSL.Context(SSL.DTLS_SERVER_METHOD)
    context.use_certificate(certificate.certificate)
    context.use_privatekey(certificate.key)
    store = context.get_cert_store()
    assert store is not None
    store.add_cert(crypto.X509.from_cryptography(trust))
    context.set_verify(
        SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: bool(args[-1])
    )
    return context


def received(
    context: SSL.Context, sessions: dict[Any, SSL.Connection], data: bytes, addr: Any
) -> tuple[SSL.Connection, list[bytes]]:
    """``data`` from ``addr`` into its session (a new one, accepting, if it has none); the
    session and what it decrypted. A refused handshake ends the session (its alert is still
    to be flushed)."""
    connection = sessions.get(addr)
    if connection is None:
        connection = sessions[addr] = SSL.Connection(context, None)
        connection.set_accept_state()
    connection.bio_write(data)
    plain: list[bytes] = []
    try:
        while True:
            plain.append(connection.recv(DATAGRAM))
    except (SSL.WantReadError, SSL.ZeroReturnError):
        pass
    except SSL.Error:
        sessions.pop(addr, None)
    return connection, plain


def flush(
    transport: asyncio.DatagramTransport | None, connection: SSL.Connection, addr: Any
) -> None:
    """Send what OpenSSL has for ``addr``."""
    assert transport is not None
    while True:
        try:
            transport.sendto(connection.bio_read(DATAGRAM), addr)
        except SSL.WantReadError:
            return


class X509DtlsServer(HandPlayedServer):
    """The certificate server: the client's certificate must be of the CA ``trust``."""

    def __init__(self, certificate: Issued, trust: x509.Certificate) -> None:
        super().__init__()
        self.certificate = certificate
        self.context = server_ssl_context(certificate, trust)
        self.sessions: dict[Any, SSL.Connection] = {}

    @classmethod
    async def start(cls, certificate: Issued, trust: x509.Certificate) -> X509DtlsServer:
        server = cls(certificate, trust)
        await server.listen()
        return server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        connection, plain = received(self.context, self.sessions, data, addr)
        for payload in plain:
            self.received.put_nowait((addr, Message.decode(payload)))
        flush(self.transport, connection, addr)

    def send(self, addr: Any, message: Message) -> None:
        self.sessions[addr].send(message.encode())
        flush(self.transport, self.sessions[addr], addr)

    def close(self, addr: Any) -> None:
        connection = self.sessions.pop(addr)
        connection.shutdown()
        flush(self.transport, connection, addr)


# -- under aiocoap: the in-repo LwM2M and Bootstrap servers over DTLS --------------------------


class SessionPeer(CoapsAddress):
    """A client of a :class:`SessionServerInterface`, by its address: one object per address,
    so aiocoap's exchanges and the servers' records compare it by identity."""

    def __init__(self, interface: SessionServerInterface, address: Any) -> None:
        self.interface, self.address = interface, address

    @property
    def hostinfo(self) -> str:
        return str(hostportjoin(*self.address[:2]))

    @property
    def hostinfo_local(self) -> str:
        return self.interface.hostinfo_local

    @property
    def blockwise_key(self) -> object:
        return self.address

    def __repr__(self) -> str:
        return f"<SessionPeer {self.hostinfo}>"


class SessionServerInterface(interfaces.MessageInterface, asyncio.DatagramProtocol):
    """aiocoap's message interface for a DTLS server (the subclass holds the DTLS library):
    the server's requests go to a client's :class:`SessionPeer`, into the session it opened,
    never anywhere else."""

    def __init__(self, mman: interfaces.MessageManager) -> None:
        self._mman = mman
        self.peers: dict[Any, SessionPeer] = {}
        self.transport: asyncio.DatagramTransport | None = None

    @property
    def hostinfo_local(self) -> str:
        assert self.transport is not None
        return str(hostportjoin(*self.transport.get_extra_info("sockname")[:2]))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport

    def dispatch(self, address: Any, payload: bytes) -> None:
        """A CoAP message decrypted from ``address``'s session, to aiocoap."""
        peer = self.peers.setdefault(address, SessionPeer(self, address))
        self._mman.dispatch_message(Message.decode(payload, peer))

    async def determine_remote(self, request: Message) -> None:
        return None  # a server sends only into the sessions its clients opened

    async def recognize_remote(self, remote: interfaces.EndpointAddress) -> bool:
        return isinstance(remote, SessionPeer) and remote.interface is self

    async def shutdown(self) -> None:
        if self.transport is not None:
            self.transport.close()


class X509ServerInterface(SessionServerInterface):
    """aiocoap's message interface for a DTLS server with certificates (OpenSSL): sessions
    only from clients whose certificate is of the CA ``trust``."""

    def __init__(
        self, mman: interfaces.MessageManager, certificate: Issued, trust: x509.Certificate
    ) -> None:
        super().__init__(mman)
        self.context = server_ssl_context(certificate, trust)
        self.sessions: dict[Any, SSL.Connection] = {}

    def datagram_received(self, data: bytes, addr: Any) -> None:
        connection, plain = received(self.context, self.sessions, data, addr)
        flush(self.transport, connection, addr)
        for payload in plain:
            self.dispatch(addr, payload)

    def send(self, message: Message) -> None:
        assert isinstance(message.remote, SessionPeer)
        connection = self.sessions.get(message.remote.address)
        if connection is not None:  # else the session ended: lost, as a datagram would be
            connection.send(message.encode())
            flush(self.transport, connection, message.remote.address)


async def session_server_context(
    site: Any,
    bind: tuple[str, int],
    make: Callable[[interfaces.MessageManager], SessionServerInterface],
) -> tuple[aiocoap.Context, int]:
    """An aiocoap server context serving ``site`` on ``bind`` (port 0: one the system picks)
    through the DTLS interface ``make`` makes; the context and its port."""
    context = aiocoap.Context(serversite=site, loggername="dtls-test-server")
    made: list[SessionServerInterface] = []

    async def create(mman: interfaces.MessageManager) -> SessionServerInterface:
        interface = make(mman)
        await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: interface, local_addr=bind
        )
        made.append(interface)
        return interface

    await append_message_interface(context, create)
    assert made[0].transport is not None
    return context, int(made[0].transport.get_extra_info("sockname")[1])


async def x509_server_context(
    site: Any, bind: tuple[str, int], certificate: Issued, trust: x509.Certificate
) -> tuple[aiocoap.Context, int]:
    """An aiocoap server context serving ``site`` over DTLS with certificates on ``bind``:
    ``certificate`` the server's, clients' certificates of the CA ``trust``."""
    return await session_server_context(
        site, bind, lambda mman: X509ServerInterface(mman, certificate, trust)
    )
