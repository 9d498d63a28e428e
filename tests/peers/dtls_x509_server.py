"""A DTLS server with certificates (OpenSSL, through pyOpenSSL) that plays a LwM2M server's side of
the session by hand: it hands each CoAP message it decrypts to the test, and sends what the test
gives it into the session of that client's address, as a LwM2M server sends its requests into
the session the client opened. ``close`` sends a close_notify, as a server that ends the session.

It is small on purpose: no CoAP layer of its own (the test answers, with the message IDs and
tokens it read), one session per client address, the client's certificate required and checked
against the test CA (``trust``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiocoap import Message
from cryptography import x509
from OpenSSL import SSL, crypto

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


class X509DtlsServer(HandPlayedServer):
    """The certificate server: the client's certificate must be of the CA ``trust``."""

    def __init__(self, certificate: Issued, trust: x509.Certificate) -> None:
        super().__init__()
        self.certificate = certificate
        self.context = SSL.Context(SSL.DTLS_SERVER_METHOD)
        self.context.use_certificate(certificate.certificate)
        self.context.use_privatekey(certificate.key)
        store = self.context.get_cert_store()
        assert store is not None
        store.add_cert(crypto.X509.from_cryptography(trust))
        self.context.set_verify(
            SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: bool(args[-1])
        )
        self.sessions: dict[Any, SSL.Connection] = {}

    @classmethod
    async def start(cls, certificate: Issued, trust: x509.Certificate) -> X509DtlsServer:
        server = cls(certificate, trust)
        await server.listen()
        return server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        connection = self.sessions.get(addr)
        if connection is None:
            connection = self.sessions[addr] = SSL.Connection(self.context, None)
            connection.set_accept_state()
        connection.bio_write(data)
        try:
            while True:
                plain = connection.recv(DATAGRAM)
                self.received.put_nowait((addr, Message.decode(plain)))
        except (SSL.WantReadError, SSL.ZeroReturnError):
            pass
        except SSL.Error:
            self.sessions.pop(addr, None)  # a refused handshake: its alert still goes out
        self._flush(connection, addr)

    def send(self, addr: Any, message: Message) -> None:
        self.sessions[addr].send(message.encode())
        self._flush(self.sessions[addr], addr)

    def close(self, addr: Any) -> None:
        connection = self.sessions.pop(addr)
        connection.shutdown()
        self._flush(connection, addr)

    def _flush(self, connection: SSL.Connection, addr: Any) -> None:
        assert self.transport is not None
        while True:
            try:
                self.transport.sendto(connection.bio_read(DATAGRAM), addr)
            except SSL.WantReadError:
                return
