"""Security mode 2 (DTLS 1.2 with X.509 certificates): the credentials, and whether a server's
certificate proves it is the server /0/x/4 and /0/x/15 name.

The server's identity is checked by :func:`verify_server`, after the handshake and before any
CoAP message goes out (``dtls_openssl``, the transport), with ``cryptography``'s path validation,
as /0/x/15 Certificate Usage says (RFC 6698's usages, as the Core spec takes them):

* 3, domain-issued certificate (the default): the server's certificate is /0/x/4 itself, and is
  within its validity period; no chain.
* 2, trust anchor assertion: /0/x/4 is the one trust anchor; the chain must lead to it and name
  the server's host (DNS name or IP address in its subjectAltName).
* 1, service certificate constraint: the chain must lead to one of the configured trust anchors
  and the server's certificate must be /0/x/4.
* 0, CA constraint: the chain must lead to one of the configured trust anchors through the
  CA certificate /0/x/4.

This module needs ``cryptography`` only, so the configuration can read certificates without the
DTLS library; the transport (pyOpenSSL) is imported when a certificate session is opened. The
credentials themselves (``credentials``) need neither: a gateway without certificates
never imports this module.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence

from aiocoap import error
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification

from bridged.objects.ids import CertificateUsage

from .credentials import X509Credentials


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


def load_public_key(data: bytes) -> bytes:
    """A public key from PEM or DER (SubjectPublicKeyInfo), as DER (/0/x/3 and /0/x/4's form in
    raw public key mode); ValueError when it is neither."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, TypeError):
        raise ValueError("not a public key (SubjectPublicKeyInfo) in PEM or DER") from None
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def subject_name(host: str) -> x509.DNSName | x509.IPAddress:
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
        .build_server_verifier(subject_name(host))
    )
    try:
        path = verifier.verify(leaf, intermediates)
    except verification.VerificationError as e:
        raise ValueError(f"its certificate chain does not validate (usage {usage}): {e}") from None
    if usage == CertificateUsage.SERVICE_CERTIFICATE_CONSTRAINT and leaf != expected:
        raise ValueError("its certificate is not the server certificate configured (usage 1)")
    if usage == CertificateUsage.CA_CONSTRAINT and expected not in path[1:]:
        raise ValueError("its chain does not go through the CA certificate configured (usage 0)")
