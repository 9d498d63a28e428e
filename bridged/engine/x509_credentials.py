"""Security mode 2's credentials as the client holds them: DER bytes, nothing parsed.

A module of its own so that the configuration and the clients carry them without importing
``cryptography`` (about 9 MB of a start's RSS): the certificate checks in ``dtls_x509`` load it
only when a certificate is read or a server's identity is verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridged.objects.ids import CertificateUsage


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
