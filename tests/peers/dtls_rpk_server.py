"""A DTLS server with raw public keys (tinydtls, through bridged's own ctypes binding in the
server role) that plays a LwM2M server's side of the session by hand: it hands each CoAP message
it decrypts to the test, and sends what the test gives it into the session of that client's
address, as a LwM2M server sends its requests into the session the client opened. ``close``
sends a close_notify, as a server that ends the session.

Small on purpose, like its certificate sibling (dtls_x509_server.py): no CoAP layer of its own,
one session per client address, the client's key required and checked against ``clients``
(the public keys it trusts, SubjectPublicKeyInfo DER).
"""

from __future__ import annotations

from typing import Any

import aiocoap
from aiocoap import Message, interfaces

from bridged.engine.tinydtls import Address, Context, Handlers, RawKey, point_of
from peers.dtls_x509_server import (
    HandPlayedServer,
    SessionPeer,
    SessionServerInterface,
    session_server_context,
)


class RpkDtlsServer(HandPlayedServer, Handlers):
    """The RPK server: ``refused`` has the addresses whose key it refused, ``alerts`` the
    (address, level, code) alerts clients sent it."""

    def __init__(self, key: RawKey, clients: list[bytes]) -> None:
        super().__init__()
        self.key = key
        self.clients = {point_of(c) for c in clients}
        self.context = Context(key, self)
        self.refused: list[Address] = []
        self.alerts: list[tuple[Address, int, int]] = []
        self.lose = 0  # datagrams still to lose on arrival, as a lossy network would

    @classmethod
    async def start(cls, key: RawKey, clients: list[bytes]) -> RpkDtlsServer:
        server = cls(key, clients)
        await server.listen()
        return server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.lose:
            self.lose -= 1
            return
        self.context.handle(addr[:2], data)

    # -- tinydtls' callbacks -----------------------------------------------------------------

    def write(self, peer: Address, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data, peer)

    def read(self, peer: Address, data: bytes) -> None:
        self.received.put_nowait((peer, Message.decode(data)))

    def event(self, peer: Address, level: int, code: int) -> None:
        if level:
            self.alerts.append((peer, level, code))

    def trusted(self, peer: Address, x: bytes, y: bytes) -> bool:
        if (x, y) in self.clients:
            return True
        self.refused.append(peer)
        return False

    # -- the test's side ---------------------------------------------------------------------

    def send(self, addr: Address, message: Message) -> None:
        assert self.context.write(addr, message.encode()) > 0

    def close(self, addr: Address) -> None:
        self.context.close(addr)

    def shutdown(self) -> None:
        super().shutdown()
        self.context.free()


# -- the same, under aiocoap: the in-repo LwM2M and Bootstrap servers over RPK -----------------


class RpkServerInterface(SessionServerInterface, Handlers):
    """aiocoap's message interface for a DTLS server with raw public keys (tinydtls through
    bridged's binding): sessions only from clients whose key is in ``clients``. What tinydtls
    decrypts is dispatched after it returned, so aiocoap's answers never run inside tinydtls."""

    def __init__(self, mman: interfaces.MessageManager, key: RawKey, clients: list[bytes]) -> None:
        super().__init__(mman)
        self.clients = {point_of(c) for c in clients}
        self.context = Context(key, self)
        self._plain: list[tuple[Address, bytes]] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.context.handle(addr[:2], data)
        plain, self._plain = self._plain, []
        for address, payload in plain:
            self.dispatch(address, payload)

    # -- tinydtls' callbacks -----------------------------------------------------------------

    def write(self, peer: Address, data: bytes) -> None:
        if self.transport is not None:
            self.transport.sendto(data, peer)

    def read(self, peer: Address, data: bytes) -> None:
        self._plain.append((peer, data))

    def trusted(self, peer: Address, x: bytes, y: bytes) -> bool:
        return (x, y) in self.clients

    # -- aiocoap -----------------------------------------------------------------------------

    def send(self, message: Message) -> None:
        assert isinstance(message.remote, SessionPeer)
        self.context.write(message.remote.address, message.encode())

    async def shutdown(self) -> None:
        await super().shutdown()
        self.context.free()


async def rpk_server_context(
    site: Any, bind: tuple[str, int], key: RawKey, clients: list[bytes]
) -> tuple[aiocoap.Context, int]:
    """An aiocoap server context serving ``site`` over DTLS with raw public keys on ``bind``
    (port 0: one the system picks); the context and its port."""
    return await session_server_context(
        site, bind, lambda mman: RpkServerInterface(mman, key, clients)
    )
