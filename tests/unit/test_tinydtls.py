"""The ctypes binding to tinydtls (bridged/engine/tinydtls.py): addresses, keys, and two contexts
handshaking in memory, without sockets, over IPv4 and IPv6 (the retransmission of a lost flight
is test_dtls_rpk's, on the session's timer)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bridged.engine import tinydtls
from bridged.engine.tinydtls import Address, Handlers, RawKey

CONNECTED = (0, tinydtls.EVENT_CONNECTED)


def key(curve: ec.EllipticCurve | None = None) -> RawKey:
    private = ec.generate_private_key(curve or ec.SECP256R1())
    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return RawKey.from_der(der)


class Peer(Handlers):
    """One side: what it sent (to be delivered by the test), read and was told."""

    def __init__(self, own: RawKey, trusts: RawKey) -> None:
        self.trusts = (trusts.x, trusts.y)
        self.context = tinydtls.Context(own, self)
        self.outbox: list[tuple[Address, bytes]] = []
        self.inbox: list[tuple[Address, bytes]] = []
        self.events: list[tuple[int, int]] = []

    def write(self, peer: Address, data: bytes) -> None:
        self.outbox.append((peer, data))

    def read(self, peer: Address, data: bytes) -> None:
        self.inbox.append((peer, data))

    def event(self, peer: Address, level: int, code: int) -> None:
        self.events.append((level, code))

    def trusted(self, peer: Address, x: bytes, y: bytes) -> bool:
        return (x, y) == self.trusts


def deliver(a: Peer, a_address: Address, b: Peer, b_address: Address) -> None:
    """Carry datagrams both ways until none is left."""
    while a.outbox or b.outbox:
        for sender, sender_address, receiver in ((a, a_address, b), (b, b_address, a)):
            sent, sender.outbox = sender.outbox, []
            for _, data in sent:
                receiver.context.handle(sender_address, data)


@pytest.mark.parametrize(
    ("client", "server"),
    [(("127.0.0.1", 40001), ("127.0.0.1", 5684)), (("::1", 40002), ("fe80::1", 5684))],
)
def test_a_handshake_then_data_both_ways(client: Address, server: Address) -> None:
    client_key, server_key = key(), key()
    c, s = Peer(client_key, server_key), Peer(server_key, client_key)
    try:
        assert c.context.connect(server) > 0
        deliver(c, client, s, server)
        assert CONNECTED in c.events and CONNECTED in s.events
        assert c.context.write(server, b"hello") == 5
        assert s.context.write(client, b"world") == 5
        deliver(c, client, s, server)
        assert s.inbox == [(client, b"hello")] and c.inbox == [(server, b"world")]
    finally:
        c.context.free()
        s.context.free()


def test_an_untrusted_key_ends_the_handshake_with_bad_certificate() -> None:
    """The client does not trust the server's key: tinydtls answers with a fatal
    bad_certificate alert, which the server is told of, and no session comes up."""
    client_key, server_key = key(), key()
    c, s = Peer(client_key, key()), Peer(server_key, client_key)
    client, server = ("127.0.0.1", 40004), ("127.0.0.1", 5684)
    try:
        c.context.connect(server)
        deliver(c, client, s, server)
        assert (tinydtls.ALERT_LEVEL_FATAL, tinydtls.ALERT_BAD_CERTIFICATE) in s.events
        assert CONNECTED not in c.events + s.events
        assert c.context.write(server, b"x") <= 0  # not sent: no session (tinydtls would start one)
    finally:
        c.context.free()
        s.context.free()


@pytest.mark.parametrize("address", [("192.0.2.7", 5684), ("2001:db8::7", 61616)])
def test_sockaddr_round_trip(address: Address) -> None:
    assert tinydtls.address_of(tinydtls.sockaddr(address)) == address


def test_keys_must_be_p256() -> None:
    with pytest.raises(ValueError, match="not an EC P-256 key"):
        key(ec.SECP384R1())


def test_a_public_key_is_taken_as_spki_or_raw_coordinates() -> None:
    k = key()
    assert tinydtls.point_of(k.public_der) == (k.x, k.y) == tinydtls.point_of(k.x + k.y)
    assert "private" not in repr(k) and k.private.hex() not in repr(k)


def test_an_unknown_tinydtls_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A DTLSSocket whose tinydtls layout was not read is refused with the reason, rather than
    driven with structures that may not match."""
    monkeypatch.setattr(tinydtls, "KNOWN_VERSIONS", frozenset({b"0.0.0"}))
    tinydtls.library.cache_clear()
    try:
        with pytest.raises(tinydtls.TinyDtlsUnavailable, match=r"0\.8\.6.*not checked"):
            tinydtls.library()
    finally:
        monkeypatch.undo()
        tinydtls.library.cache_clear()
