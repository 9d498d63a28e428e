"""CoAP over DTLS 1.2 with X.509 certificates towards one LwM2M server (security mode 2).

Why pyOpenSSL and not tinydtls: tinydtls has no X.509 at all (docs/security.md has the
comparison). pyOpenSSL drives OpenSSL's DTLS through memory buffers, on a socket of the
session's own (``dtls_session``: the session the client opens with its Register, the server's
own requests answered inside it, as LwM2M requires).

OpenSSL itself accepts any chain (its verify callback returns true) so that the one decision is
made by ``dtls_x509.verify_server``, after the handshake, with a message that says why; nothing
is sent on a session whose server was refused. A refusal, a handshake alert or a handshake that
does not complete are each a typed error (``DtlsIdentityError``, ``DtlsAlertError``,
``DtlsHandshakeError``), given to the requests waiting on the session; the registrar logs it once
and tries again later, never with less security.

Imported only when a certificate session is opened (``client.open_uplink``): pyOpenSSL is part
of the ``dtls`` extra, which a gateway without DTLS servers (the demo) does not install.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import weakref
from typing import Any

import aiocoap
from aiocoap import interfaces
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from .credentials import X509Credentials
from .dtls import DEFAULT_HANDSHAKE_TIMEOUT, DtlsUplink
from .dtls_listen import ListenerPeer, SessionListener, session_listener
from .dtls_session import DatagramSession, SessionTransport, session_context
from .dtls_x509 import (
    DtlsAlertError,
    DtlsIdentityError,
    load_certificate,
    subject_name,
    verify_server,
)

log = logging.getLogger(__name__)

CIPHERS = b"ECDHE-ECDSA-AES128-CCM8:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE+AESGCM:ECDHE+AES"
"""LwM2M's mandatory suite (TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8) first, then OpenSSL's ECDHE ones
with AEAD or CBC: never a suite without forward secrecy."""
DATAGRAM = 65536
DTLS1_2_VERSION = 0xFEFD
"""DTLS 1.2's version number on the wire (RFC 6347), OpenSSL's ``DTLS1_2_VERSION``, which
pyOpenSSL does not name: the session never falls back to DTLS 1.0."""


def _context(credentials: X509Credentials, method: int = SSL.DTLS_CLIENT_METHOD) -> SSL.Context:
    context = SSL.Context(method)
    context.set_min_proto_version(DTLS1_2_VERSION)
    context.set_cipher_list(CIPHERS)
    context.use_certificate(load_certificate(credentials.certificate))
    key = serialization.load_der_private_key(credentials.private_key, password=None)
    context.use_privatekey(key)  # type: ignore[arg-type]
    context.check_privatekey()
    # Ask for the peer's chain (a client of the listener must send one) and accept it:
    # verify_server decides, after the handshake.
    required = SSL.VERIFY_FAIL_IF_NO_PEER_CERT if method == SSL.DTLS_SERVER_METHOD else 0
    context.set_verify(SSL.VERIFY_PEER | required, lambda *args: True)
    return context


class X509Session(DatagramSession):
    """One DTLS session with certificates: OpenSSL through memory buffers, its retransmission
    timer from ``DTLSv1_get_timeout``; the server's chain is checked by ``verify_server``
    before anything is sent."""

    mode = "certificate"

    def __init__(
        self,
        transport: SessionTransport,
        host: str,
        port: int,
        credentials: X509Credentials,
        handshake_timeout: float,
    ) -> None:
        self._credentials = credentials
        self._connection = SSL.Connection(_context(credentials), None)
        self._connection.set_connect_state()
        if not isinstance(subject_name(host), x509.IPAddress):
            self._connection.set_tlsext_host_name(host.encode("idna"))
        self._timer: asyncio.TimerHandle | None = None
        super().__init__(transport, host, port, handshake_timeout)

    def _write(self, data: bytes) -> None:
        self._connection.send(data)
        self._flush()

    def _take(self, data: bytes) -> None:
        self._connection.bio_write(data)
        if not self._ready:
            self._handshake()
            if not self._ready:
                return
        while not self._closed:
            try:
                plain = self._connection.recv(DATAGRAM)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self._closed_by_server()
                return
            except SSL.Error as e:
                self._fail(DtlsAlertError(self.hostinfo, _reason(e)))
                return
            self._deliver(plain)
        self._flush()

    def _handshake(self) -> None:
        try:
            self._connection.do_handshake()
        except SSL.WantReadError:
            self._flush()
            self._arm_retransmission()
            return
        except SSL.Error as e:
            self._flush()  # the alert, if OpenSSL made one
            self._fail(DtlsAlertError(self.hostinfo, _reason(e)))
            return
        self._flush()
        chain = self._connection.get_peer_cert_chain(as_cryptography=True) or []
        try:
            verify_server(chain, self._host, self._credentials)
        except ValueError as e:
            self._fail(DtlsIdentityError(self.hostinfo, str(e)))
            return
        self._established(str(self._connection.get_cipher_name()))

    def _arm_retransmission(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        wait = self._connection.DTLSv1_get_timeout()
        if wait is not None:
            self._timer = asyncio.get_running_loop().call_later(wait, self._retransmit)

    def _retransmit(self) -> None:
        self._timer = None
        if self._ready or self._closed:
            return
        self._connection.DTLSv1_handle_timeout()
        self._flush()
        self._arm_retransmission()

    def _flush(self) -> None:
        while True:
            try:
                data = self._connection.bio_read(DATAGRAM)
            except SSL.WantReadError:
                return
            self._sendto(data)

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._ready:
            try:
                self._connection.shutdown()
            except SSL.Error:
                pass
            self._flush()


def _reason(e: SSL.Error) -> str:
    """OpenSSL's reasons, without its error codes: "sslv3 alert bad certificate"."""
    reasons = [r[2] for r in e.args[0] if isinstance(r, tuple) and len(r) == 3] if e.args else []
    text = "; ".join(str(r) for r in reasons if r)
    return text or str(e) or type(e).__name__


class DtlsX509Uplink(DtlsUplink):
    """The endpoint towards a server in security mode 2 (certificates), over OpenSSL."""

    @classmethod
    async def create(
        cls,
        server_uri: str,
        credentials: X509Credentials,
        site: interfaces.Resource,
        *,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        loggername: str = "bridged.engine.dtls_x509",
    ) -> DtlsX509Uplink:
        """The context for ``server_uri``, serving ``site`` over the session it opens."""
        context, transport = await session_context(
            site,
            loggername,
            lambda t, host, port: X509Session(t, host, port, credentials, handshake_timeout),
        )
        return cls(context, transport, server_uri)


# -- the gateway as the DTLS server: a Bootstrap-Server-initiated bootstrap (dtls_listen) -------


MAX_SESSIONS = 8
"""Sessions a listener holds at once: its one peer's, and room for handshakes it refuses."""


class _Accepted:
    """One peer's session on the listener: its connection, whether the peer was verified, and
    the handshake's retransmission timer."""

    def __init__(self, connection: SSL.Connection) -> None:
        self.connection = connection
        self.verified = False
        self.timer: asyncio.TimerHandle | None = None


class _X509Listener(SessionListener):
    """The listener with certificates (OpenSSL through memory buffers): the peer must send its
    certificate, and its chain is checked by ``verify_server`` as the gateway checks a server's
    (/0/x/4 and /0/x/15, the host of the account's URI) once the handshake is done; nothing of
    a peer that fails is served, and its session is dropped."""

    def __init__(
        self, mman: interfaces.MessageManager, credentials: X509Credentials, host: str
    ) -> None:
        super().__init__(mman)
        self._context = _context(credentials, SSL.DTLS_SERVER_METHOD)
        # A HelloVerifyRequest first (RFC 6347 section 4.2.1): a spoofed ClientHello gets only
        # that small answer, never the certificate flight. OpenSSL sees no addresses through
        # memory buffers, so the cookie is a secret of the connection, which is the address's.
        if SSL.OP_COOKIE_EXCHANGE is None:
            raise ValueError("this OpenSSL has no DTLS cookie exchange (OP_COOKIE_EXCHANGE)")
        self._context.set_options(SSL.OP_COOKIE_EXCHANGE)
        self._context.set_cookie_generate_callback(self._cookie)
        self._context.set_cookie_verify_callback(
            lambda connection, cookie: hmac.compare_digest(cookie, self._cookie(connection))
        )
        self._cookies: weakref.WeakKeyDictionary[SSL.Connection, bytes] = (
            weakref.WeakKeyDictionary()
        )
        self._credentials = credentials
        self._host = host
        self._sessions: dict[tuple[str, int], _Accepted] = {}

    def _cookie(self, connection: SSL.Connection) -> bytes:
        return self._cookies.setdefault(connection, secrets.token_bytes(16))

    def datagram_received(self, data: bytes, addr: Any) -> None:
        peer = (addr[0], addr[1])
        session = self._sessions.get(peer)
        if session is None:
            if len(self._sessions) >= MAX_SESSIONS:  # the oldest goes: bounded by any flood
                self._drop(next(iter(self._sessions)))
            connection = SSL.Connection(self._context, None)
            connection.set_accept_state()
            session = self._sessions[peer] = _Accepted(connection)
        session.connection.bio_write(data)
        if not session.verified and not self._handshake(peer, session):
            return
        while True:
            try:
                plain = session.connection.recv(DATAGRAM)
            except SSL.WantReadError:
                break
            except SSL.Error:  # a close_notify (ZeroReturnError) or a broken session
                self._drop(peer)
                return
            self.dispatch(peer, plain)
        self._flush(peer)

    def _handshake(self, peer: tuple[str, int], session: _Accepted) -> bool:
        """Go on with ``peer``'s handshake; True once it is done and the peer verified."""
        connection = session.connection
        try:
            connection.do_handshake()
        except SSL.WantReadError:
            self._flush(peer)
            self._arm_retransmission(peer, session)
            return False
        except SSL.Error as e:
            self._flush(peer)  # the alert, if OpenSSL made one
            log.warning("refused a DTLS session from %s: %s", peer, _reason(e))
            self._drop(peer)
            return False
        self._flush(peer)
        leaf = connection.get_peer_certificate(as_cryptography=True)
        chain = connection.get_peer_cert_chain(as_cryptography=True) or []
        if leaf is not None and (not chain or chain[0] != leaf):
            chain = [leaf, *chain]  # a server's OpenSSL leaves the peer's leaf out of its chain
        try:
            verify_server(chain, self._host, self._credentials)
        except ValueError as e:
            log.warning("refused a DTLS session from %s: %s", peer, e)
            self._drop(peer, notify=True)
            return False
        session.verified = True
        self._cancel(session)
        return True

    def _arm_retransmission(self, peer: tuple[str, int], session: _Accepted) -> None:
        self._cancel(session)
        wait = session.connection.DTLSv1_get_timeout()
        if wait is not None:
            session.timer = asyncio.get_running_loop().call_later(
                wait, self._retransmit, peer, session
            )

    def _retransmit(self, peer: tuple[str, int], session: _Accepted) -> None:
        session.timer = None
        if self._sessions.get(peer) is not session or session.verified:
            return
        session.connection.DTLSv1_handle_timeout()
        self._flush(peer)
        self._arm_retransmission(peer, session)

    @staticmethod
    def _cancel(session: _Accepted) -> None:
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None

    def _flush(self, peer: tuple[str, int]) -> None:
        session = self._sessions.get(peer)
        while session is not None and self.transport is not None:
            try:
                data = session.connection.bio_read(DATAGRAM)
            except SSL.WantReadError:
                return
            self.transport.sendto(data, peer)

    def _drop(self, peer: tuple[str, int], *, notify: bool = False) -> None:
        session = self._sessions.get(peer)
        if session is None:
            return
        if notify:
            try:
                session.connection.shutdown()
            except SSL.Error:
                pass
            self._flush(peer)
        self._cancel(session)
        del self._sessions[peer]
        self.ended(peer)

    def send(self, message: aiocoap.Message) -> None:
        remote = message.remote
        session = self._sessions.get(remote.address) if isinstance(remote, ListenerPeer) else None
        if session is not None and session.verified:
            session.connection.send(message.encode())
            self._flush(remote.address)

    async def shutdown(self) -> None:
        for peer in list(self._sessions):
            self._drop(peer, notify=True)
        await super().shutdown()


async def x509_listener(
    site: Any, bind: tuple[str, int], credentials: X509Credentials, host: str
) -> aiocoap.Context:
    """A context serving ``site`` on ``bind`` to the DTLS peer whose certificate
    ``credentials`` accept (as a server's at ``host``) only, with the gateway's certificate."""
    return await session_listener(site, bind, lambda mman: _X509Listener(mman, credentials, host))
