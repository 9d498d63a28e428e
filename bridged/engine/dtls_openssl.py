"""CoAP over DTLS 1.2 with X.509 certificates towards one LwM2M server (security mode 2).

Why pyOpenSSL and not aiocoap's tinydtls transport: tinydtls has no X.509 at all (docs/security.md
has the comparison). pyOpenSSL drives OpenSSL's DTLS through memory buffers, so this module owns
the socket: one connected UDP socket per session, the session the client opens with its Register,
and the server's own requests (Read, Observe, Write) are answered inside it, as LwM2M requires.

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
import logging
from typing import Any

from aiocoap import Message, error, interfaces
from aiocoap.util import hostportjoin, hostportsplit
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from .dtls import DEFAULT_HANDSHAKE_TIMEOUT, DtlsHandshakeError, DtlsUplink, only_interface
from .dtls_x509 import (
    DtlsAlertError,
    DtlsIdentityError,
    load_certificate,
    subject_name,
    verify_server,
)
from .serving import ServingContext
from .x509_credentials import X509Credentials

log = logging.getLogger(__name__)

COAPS_PORT = 5684
CIPHERS = b"ECDHE-ECDSA-AES128-CCM8:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE+AESGCM:ECDHE+AES"
"""LwM2M's mandatory suite (TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8) first, then OpenSSL's ECDHE ones
with AEAD or CBC: never a suite without forward secrecy."""
DATAGRAM = 65536
DTLS1_2_VERSION = 0xFEFD
"""DTLS 1.2's version number on the wire (RFC 6347), OpenSSL's ``DTLS1_2_VERSION``, which
pyOpenSSL does not name: the session never falls back to DTLS 1.0."""


def _context(credentials: X509Credentials) -> SSL.Context:
    context = SSL.Context(SSL.DTLS_CLIENT_METHOD)
    context.set_min_proto_version(DTLS1_2_VERSION)
    context.set_cipher_list(CIPHERS)
    context.use_certificate(load_certificate(credentials.certificate))
    key = serialization.load_der_private_key(credentials.private_key, password=None)
    context.use_privatekey(key)  # type: ignore[arg-type]
    context.check_privatekey()
    # Ask for the server's chain and accept it: verify_server decides, after the handshake.
    context.set_verify(SSL.VERIFY_PEER, lambda *args: True)
    return context


class X509Session(interfaces.EndpointAddress):
    """One DTLS session with the server: the remote of every message to and from it.

    Messages sent before the handshake and the identity check are held, and go out once both
    passed; a failure hands its error to aiocoap for every request on the session and ends it.
    """

    scheme = "coaps"
    is_multicast = False
    is_multicast_locally = False

    def __init__(
        self,
        transport: _X509Transport,
        host: str,
        port: int,
        credentials: X509Credentials,
        handshake_timeout: float,
    ) -> None:
        self._transport = transport
        self._host, self._port = host, port
        self._credentials = credentials
        self._hostinfo: str = hostportjoin(host, None if port == COAPS_PORT else port)
        self._connection = SSL.Connection(_context(credentials), None)
        self._connection.set_connect_state()
        if not isinstance(subject_name(host), x509.IPAddress):
            self._connection.set_tlsext_host_name(host.encode("idna"))
        self._held: list[bytes] = []
        self._ready = False
        self._closed = False
        self._answered = False
        self._udp: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
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
    def uri_base(self) -> str:
        return "coaps://" + self.hostinfo

    @property
    def uri_base_local(self) -> str:
        return "coaps://" + self.hostinfo_local

    @property
    def blockwise_key(self) -> object:
        return (self._host, self._port)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.hostinfo}>"

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
        log.info("Starting a DTLS session (certificate) with %s", self.hostinfo)
        self._handshake()

    def send(self, data: bytes) -> None:
        if self._closed:
            return
        if not self._ready:
            self._held.append(data)
            return
        self._connection.send(data)
        self._flush()

    def received(self, data: bytes) -> None:
        self._answered = True
        if self._closed:
            return
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
                log.info("%s closed the DTLS session; the next Register handshakes again", self)
                self._fail(error.NetworkError(f"{self.hostinfo} closed the DTLS session"))
                return
            except SSL.Error as e:
                self._fail(DtlsAlertError(self.hostinfo, _reason(e)))
                return
            self._transport.dispatch(plain, self)
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
        self._deadline.cancel()
        chain = self._connection.get_peer_cert_chain(as_cryptography=True) or []
        try:
            verify_server(chain, self._host, self._credentials)
        except ValueError as e:
            self._fail(DtlsIdentityError(self.hostinfo, str(e)))
            return
        log.debug("DTLS session with %s up (%s)", self, self._connection.get_cipher_name())
        self._ready = True
        held, self._held = self._held, []
        for data in held:
            self.send(data)

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
            if self._udp is not None and not self._udp.is_closing():
                self._udp.sendto(data)

    def _timed_out(self, timeout: float) -> None:
        self._fail(DtlsHandshakeError(self.hostinfo, timeout, self._answered, "certificate"))

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
        if self._timer is not None:
            self._timer.cancel()
        if self._ready:
            try:
                self._connection.shutdown()
            except SSL.Error:
                pass
            self._flush()
        if self._udp is not None:
            self._udp.close()
        self._transport.forget(self)


def _reason(e: SSL.Error) -> str:
    """OpenSSL's reasons, without its error codes: "sslv3 alert bad certificate"."""
    reasons = [r[2] for r in e.args[0] if isinstance(r, tuple) and len(r) == 3] if e.args else []
    text = "; ".join(str(r) for r in reasons if r)
    return text or str(e) or type(e).__name__


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, session: X509Session) -> None:
        self.session = session

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.session.received(data)

    def error_received(self, exc: Exception) -> None:
        # the OSError as the cause, which is where registration.failure_text looks for its errno
        failure = error.NetworkError(str(exc))
        failure.__cause__ = exc
        self.session._fail(failure)


class _X509Transport(interfaces.MessageInterface):
    """aiocoap's message interface for one server: a :class:`X509Session` at a time."""

    def __init__(
        self,
        mman: interfaces.MessageManager,
        credentials: X509Credentials,
        handshake_timeout: float,
    ) -> None:
        self._mman = mman
        self._credentials = credentials
        self._handshake_timeout = handshake_timeout
        self.session: X509Session | None = None
        self._shutting_down = False

    async def determine_remote(self, request: Message) -> X509Session | None:
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
            self.session = X509Session(
                self, host, port or COAPS_PORT, self._credentials, self._handshake_timeout
            )
        return self.session

    async def recognize_remote(self, remote: interfaces.EndpointAddress) -> bool:
        return remote is self.session and self.session is not None

    def send(self, message: Message) -> None:
        remote = message.remote
        assert isinstance(remote, X509Session)
        remote.send(message.encode())

    def dispatch(self, data: bytes, session: X509Session) -> None:
        try:
            message = Message.decode(data, session)
        except error.UnparsableMessage:
            log.warning("Ignoring an unparsable message from %s", session)
            return
        self._mman.dispatch_message(message)

    def failed(self, session: X509Session, e: error.NetworkError) -> None:
        self._mman.dispatch_error(e, session)

    def forget(self, session: X509Session) -> None:
        if self.session is session:
            self.session = None

    def close_sessions(self) -> None:
        if self.session is not None:
            self.session.shutdown()

    async def shutdown(self) -> None:
        self._shutting_down = True
        self.close_sessions()


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
        context = ServingContext(site, loggername=loggername)
        transport = await only_interface(
            context, lambda mman: _X509Transport(mman, credentials, handshake_timeout)
        )
        return cls(context, transport, server_uri)
