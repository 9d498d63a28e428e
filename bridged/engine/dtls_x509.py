"""CoAP over DTLS 1.2 with X.509 certificates towards one LwM2M server (security mode 2).

Why pyOpenSSL and not aiocoap's tinydtls transport: tinydtls has no X.509 at all (docs/security.md
has the comparison). pyOpenSSL drives OpenSSL's DTLS through memory buffers, so this module owns
the socket: one connected UDP socket per session, the session the client opens with its Register,
and the server's own requests (Read, Observe, Write) are answered inside it, as LwM2M requires.

The server's identity is checked here, after the handshake and before any CoAP message goes
out, by :func:`verify_server` with ``cryptography``'s path validation, as /0/x/15 Certificate
Usage says (RFC 6698's usages, as the Core spec takes them):

* 3, domain-issued certificate (the default): the server's certificate is /0/x/4 itself, and is
  within its validity period; no chain.
* 2, trust anchor assertion: /0/x/4 is the one trust anchor; the chain must lead to it and name
  the server's host (DNS name or IP address in its subjectAltName).
* 1, service certificate constraint: the chain must lead to one of the configured trust anchors
  and the server's certificate must be /0/x/4.
* 0, CA constraint: the chain must lead to one of the configured trust anchors through the
  CA certificate /0/x/4.

OpenSSL itself accepts any chain (its verify callback returns true) so that the one decision is
made here, with a message that says why; nothing is sent on a session whose server was refused.
A refusal, a handshake alert or a handshake that does not complete are each a typed error
(:class:`DtlsIdentityError`, :class:`DtlsAlertError`, :class:`DtlsHandshakeError`), given to the
requests waiting on the session; the registrar logs it once and tries again later, never with
less security.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiocoap import Context, Message, error, interfaces
from aiocoap.util import hostportjoin, hostportsplit
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification
from OpenSSL import SSL

from bridged.objects.ids import CertificateUsage

from .dtls import DEFAULT_HANDSHAKE_TIMEOUT, DtlsEndpoint, DtlsHandshakeError, only_transport
from .options import CheckedSite

log = logging.getLogger(__name__)

COAPS_PORT = 5684
CIPHERS = b"ECDHE-ECDSA-AES128-CCM8:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE+AESGCM:ECDHE+AES"
"""LwM2M's mandatory suite (TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8) first, then OpenSSL's ECDHE ones
with AEAD or CBC: never a suite without forward secrecy."""
DATAGRAM = 65536
DTLS1_2_VERSION = 0xFEFD
"""DTLS 1.2's version number on the wire (RFC 6347), OpenSSL's ``DTLS1_2_VERSION``, which
pyOpenSSL does not name: the session never falls back to DTLS 1.0."""


@dataclass(frozen=True, slots=True)
class X509Credentials:
    """What the client needs for security mode 2: its certificate and key (/0/x/3, /0/x/5, DER),
    the server's certificate (/0/x/4, DER) with its usage (/0/x/15), and the trust anchors
    usages 0 and 1 validate against (DER; the configuration's ``trust_store``).

    ``repr`` never shows the key."""

    certificate: bytes
    private_key: bytes = field(repr=False)
    server_certificate: bytes
    usage: int = CertificateUsage.DOMAIN_ISSUED_CERTIFICATE
    trust_store: tuple[bytes, ...] = ()


class DtlsIdentityError(error.NetworkError):
    """The server's certificate does not prove it is the server /0/x/4 and /0/x/15 name."""

    def __init__(self, hostinfo: str, why: str) -> None:
        super().__init__(hostinfo, why)
        self.hostinfo, self.why = hostinfo, why

    def __str__(self) -> str:
        return f"DTLS server {self.hostinfo} refused: {self.why}"


class DtlsAlertError(error.NetworkError):
    """The DTLS handshake failed with an alert or an OpenSSL error (the server refused the
    client's certificate, no common cipher suite...); the text is OpenSSL's reason."""

    def __init__(self, hostinfo: str, reason: str) -> None:
        super().__init__(hostinfo, reason)
        self.hostinfo, self.reason = hostinfo, reason

    def __str__(self) -> str:
        return f"DTLS handshake with {self.hostinfo} failed: {self.reason}"


def load_certificate(data: bytes) -> x509.Certificate:
    """A certificate from PEM or DER bytes; ValueError when it is neither."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, or the one of a DER file."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def load_private_key(data: bytes) -> bytes:
    """A private key from PEM or DER (PKCS#8, SEC1 or PKCS#1), as PKCS#8 DER (/0/x/5's form);
    ValueError when it is none of them. The message never shows the key."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ValueError("not an unencrypted private key in PEM or DER") from None
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _subject(host: str) -> x509.DNSName | x509.IPAddress:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def verify_server(
    chain: Sequence[x509.Certificate],
    host: str,
    credentials: X509Credentials,
    now: datetime.datetime | None = None,
) -> None:
    """Raise ValueError (why) unless ``chain`` (the server's, leaf first) proves it is the
    server ``credentials`` name at ``host``, by the usage rules of the module docstring."""
    if not chain:
        raise ValueError("it sent no certificate")
    now = now or datetime.datetime.now(datetime.UTC)
    leaf, intermediates = chain[0], list(chain[1:])
    expected = load_certificate(credentials.server_certificate)
    usage = credentials.usage
    if usage == CertificateUsage.DOMAIN_ISSUED_CERTIFICATE:
        if leaf != expected:
            raise ValueError(
                f"its certificate ({leaf.subject.rfc4514_string()}) is not the server"
                " certificate configured (certificate usage 3, domain-issued certificate)"
            )
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            since, until = leaf.not_valid_before_utc, leaf.not_valid_after_utc
            raise ValueError(
                f"its certificate is not valid now (valid {since:%Y-%m-%d %H:%M} to"
                f" {until:%Y-%m-%d %H:%M} UTC)"
            )
        return
    if usage == CertificateUsage.TRUST_ANCHOR_ASSERTION:
        anchors = [expected]
    elif usage in (CertificateUsage.CA_CONSTRAINT, CertificateUsage.SERVICE_CERTIFICATE_CONSTRAINT):
        anchors = [load_certificate(c) for c in credentials.trust_store]
        if not anchors:
            raise ValueError(f"certificate usage {usage} needs a trust store, and none is set")
    else:
        raise ValueError(f"certificate usage {usage} is not one of 0-3")
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(anchors))
        .time(now)
        .build_server_verifier(_subject(host))
    )
    try:
        path = verifier.verify(leaf, intermediates)
    except verification.VerificationError as e:
        raise ValueError(f"its certificate chain does not validate (usage {usage}): {e}") from None
    if usage == CertificateUsage.SERVICE_CERTIFICATE_CONSTRAINT and leaf != expected:
        raise ValueError("its certificate is not the server certificate configured (usage 1)")
    if usage == CertificateUsage.CA_CONSTRAINT and expected not in path[1:]:
        raise ValueError("its chain does not go through the CA certificate configured (usage 0)")


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
        if not isinstance(_subject(host), x509.IPAddress):
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


class DtlsX509Endpoint(DtlsEndpoint):
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
    ) -> DtlsX509Endpoint:
        """The context for ``server_uri``, serving ``site`` over the session it opens."""
        context = Context(serversite=CheckedSite(site), loggername=loggername)
        transport = await only_transport(
            context, lambda mman: _X509Transport(mman, credentials, handshake_timeout)
        )
        return cls(context, transport, server_uri)
