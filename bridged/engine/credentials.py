"""The credentials of security modes 1 (raw public keys) and 2 (certificates) as the client
holds them: DER bytes.

A module of its own so that the configuration and the clients carry them without importing
``cryptography`` (about 9 MB of a start's RSS): the certificate checks in ``dtls_x509`` and the
key checks in ``tinydtls`` load it only when a configuration has such an account.
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


@dataclass(frozen=True, slots=True)
class RpkCredentials:
    """What the client needs for security mode 1: its key pair (/0/x/5, a PKCS#8 or SEC1 DER
    private key; /0/x/3, its public key) and the server's public key (/0/x/4); public keys as
    SubjectPublicKeyInfo DER or raw x||y. ``repr`` never shows the private key.

    ValueError when a key is not P-256 or the public key is not the private key's."""

    public_key: bytes
    private_key: bytes = field(repr=False)
    server_public_key: bytes

    def __post_init__(self) -> None:
        from .tinydtls import RawKey, point_of  # cryptography, only for a mode 1 account

        try:
            own = RawKey.from_der(self.private_key)
        except ValueError as e:
            raise ValueError(f"the client's private key (/0/x/5): {e}") from None
        try:
            ours = point_of(self.public_key)
        except ValueError as e:
            raise ValueError(f"the client's public key (/0/x/3): {e}") from None
        if ours != (own.x, own.y):
            raise ValueError("the client's public key (/0/x/3) is not its private key's (/0/x/5)")
        try:
            point_of(self.server_public_key)
        except ValueError as e:
            raise ValueError(f"the server's public key (/0/x/4): {e}") from None

    @property
    def server_point(self) -> tuple[bytes, bytes]:
        from .tinydtls import point_of

        return point_of(self.server_public_key)
