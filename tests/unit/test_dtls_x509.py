"""The server identity check of security mode 2 (``dtls_x509.verify_server``), each
Certificate Usage (/0/x/15) with the chains that must pass and those that must not. The
handshake itself runs against Leshan in tests/interop/test_leshan_security.py."""

from __future__ import annotations

import datetime

import pytest

from bridged.engine.credentials import X509Credentials
from bridged.engine.dtls_x509 import verify_server
from bridged.objects.ids import CertificateUsage
from peers.pki import Issued, Pki, now

HOST = "127.0.0.1"


@pytest.fixture(name="pki", scope="module")
def pki_fixture() -> Pki:
    return Pki()


def credentials(server: Issued | Pki, usage: int, trust: Pki | None = None) -> X509Credentials:
    """The client's credentials naming ``server`` (a certificate, or a CA's) with ``usage``."""
    client = Pki("client CA").issue("bridged-test")
    named = server.ca if isinstance(server, Pki) else server
    return X509Credentials(
        certificate=client.der,
        private_key=client.key_der(),
        server_certificate=named.der,
        usage=usage,
        trust_store=(trust.ca.der,) if trust is not None else (),
    )


def check(chain: list[Issued], host: str, creds: X509Credentials) -> str | None:
    """None when the chain is accepted, else why it is refused."""
    try:
        verify_server([c.certificate for c in chain], host, creds)
    except ValueError as e:
        return str(e)
    return None


def test_domain_issued_certificate_is_the_certificate_itself(pki: Pki) -> None:
    server = pki.issue("server", server_host="other.example")  # no name check: it is pinned
    usage = CertificateUsage.DOMAIN_ISSUED_CERTIFICATE
    assert check([server], HOST, credentials(server, usage)) is None
    impostor = pki.issue("server", server_host=HOST)
    why = check([impostor], HOST, credentials(server, usage))
    assert why is not None and "not the server certificate configured" in why


def test_an_expired_certificate_is_refused_in_every_usage(pki: Pki) -> None:
    old = pki.issue("server", server_host=HOST, valid_from=now() - datetime.timedelta(days=3))
    why = check([old], HOST, credentials(old, CertificateUsage.DOMAIN_ISSUED_CERTIFICATE))
    assert why is not None and "not valid now" in why
    for usage, trust in (
        (CertificateUsage.TRUST_ANCHOR_ASSERTION, None),
        (CertificateUsage.SERVICE_CERTIFICATE_CONSTRAINT, pki),
    ):
        named: Issued | Pki = pki if usage == CertificateUsage.TRUST_ANCHOR_ASSERTION else old
        why = check([old], HOST, credentials(named, usage, trust))
        assert why is not None and "does not validate" in why, usage


def test_trust_anchor_assertion_validates_the_chain_and_the_name(pki: Pki) -> None:
    usage = CertificateUsage.TRUST_ANCHOR_ASSERTION
    server = pki.issue("server", server_host=HOST)
    assert check([server], HOST, credentials(pki, usage)) is None
    stranger = Pki("another CA")
    assert "does not validate" in (check([server], HOST, credentials(stranger, usage)) or "")
    # the right CA, but a certificate for another host
    assert "does not validate" in (check([server], "192.0.2.1", credentials(pki, usage)) or "")
    named = pki.issue("server", server_host="lwm2m.example")
    assert check([named], "lwm2m.example", credentials(pki, usage)) is None


def test_service_certificate_constraint_is_this_certificate_from_a_trusted_ca(pki: Pki) -> None:
    usage = CertificateUsage.SERVICE_CERTIFICATE_CONSTRAINT
    server = pki.issue("server", server_host=HOST)
    assert check([server], HOST, credentials(server, usage, pki)) is None
    other = pki.issue("server", server_host=HOST)
    why = check([other], HOST, credentials(server, usage, pki))
    assert why is not None and "not the server certificate configured" in why
    why = check([server], HOST, credentials(server, usage, Pki("another CA")))
    assert why is not None and "does not validate" in why


def test_ca_constraint_is_a_chain_through_this_ca(pki: Pki) -> None:
    usage = CertificateUsage.CA_CONSTRAINT
    server = pki.issue("server", server_host=HOST)
    assert check([server], HOST, credentials(pki, usage, pki)) is None
    why = check([server], HOST, credentials(Pki("another CA"), usage, pki))
    assert why is not None and "does not go through the CA certificate" in why


def test_no_certificate_and_no_trust_store_are_refusals(pki: Pki) -> None:
    server = pki.issue("server", server_host=HOST)
    assert "no certificate" in (
        check([], HOST, credentials(server, CertificateUsage.DOMAIN_ISSUED_CERTIFICATE)) or ""
    )
    usage = CertificateUsage.SERVICE_CERTIFICATE_CONSTRAINT
    assert "needs a trust store" in (check([server], HOST, credentials(server, usage)) or "")
