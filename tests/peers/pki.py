"""A throwaway public-key infrastructure for the DTLS certificate tests, made at test time.

No private key is ever committed: each test run makes its CA, its servers' and clients'
certificates with ``cryptography`` (ECDSA P-256, the curve LwM2M's cipher suite names), and
writes what a peer or the daemon reads into the test's own directory, keys 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Issued:
    """A key pair and its certificate."""

    key: ec.EllipticCurvePrivateKey = field(repr=False)
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def public_der(self) -> bytes:
        """The SubjectPublicKeyInfo, DER (what a raw public key is)."""
        return self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def key_der(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """``name.pem`` (the certificate) and ``name.key`` (the key, PEM, 0600)."""
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / f"{name}.pem", directory / f"{name}.key"
        cert.write_bytes(self.pem)
        key.touch(mode=0o600)
        key.chmod(0o600)
        key.write_bytes(self.key_pem())
        return cert, key

    def write_rpk(self, directory: Path, name: str) -> tuple[Path, Path]:
        """The key pair for the raw public key mode: ``name.pub`` (the public key, PEM) and
        ``name.key`` (the key, PEM, 0600)."""
        _, key = self.write(directory, name)
        public = directory / f"{name}.pub"
        public.write_bytes(
            self.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return public, key


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class Pki:
    """A CA (``ca``) that issues server and client certificates."""

    def __init__(self, name: str = "bridged test CA") -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            self._builder(_name(name), _name(name), key.public_key(), now(), days=2)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        self.ca = Issued(key, certificate)

    @staticmethod
    def _builder(
        subject: x509.Name,
        issuer: x509.Name,
        public: ec.EllipticCurvePublicKey,
        since: datetime.datetime,
        days: float,
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(since - datetime.timedelta(hours=1))
            .not_valid_after(since + datetime.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        )

    def issue(
        self,
        common_name: str,
        *,
        server_host: str | None = None,
        valid_from: datetime.datetime | None = None,
        days: float = 1,
    ) -> Issued:
        """A certificate for ``common_name``: a server's (``server_host``: its IP address or
        DNS name in subjectAltName, server authentication) or a client's (CN = the endpoint
        name, as Leshan wants); ``valid_from``/``days`` make an expired one."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            self._builder(
                _name(common_name),
                self.ca.certificate.subject,
                key.public_key(),
                valid_from or now(),
                days,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca.key.public_key()),
                critical=False,
            )
        )
        if server_host is not None:
            try:
                alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(server_host))
            except ValueError:
                alt = x509.DNSName(server_host)
            builder = builder.add_extension(
                x509.SubjectAlternativeName([alt]), critical=False
            ).add_extension(
                # Californium wants client authentication too of a server's certificate (it
                # may act as a DTLS client with it)
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        return Issued(key, builder.sign(self.ca.key, hashes.SHA256()))

    def leshan_credentials(self, server: Issued, directory: Path) -> Path:
        """The directory the Leshan M15 launcher reads its own DTLS credentials from (see
        LeshanServerPeer's usage): ``server``'s key pair and chain, this CA as trusted."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "server.key").write_bytes(server.key_der())
        (directory / "server.key").chmod(0o600)
        (directory / "server.pub").write_bytes(server.public_der)
        (directory / "chain.pem").write_bytes(server.pem)
        (directory / "trust.pem").write_bytes(self.ca.pem)
        return directory
