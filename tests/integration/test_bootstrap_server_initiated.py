"""Bootstrap-Server-initiated bootstrap, end to end with the real daemon (issue 20).

The clause built (OMA LwM2M Core 1.1 §6.1, the Bootstrap interface: the bootstrap modes,
"Server Initiated Bootstrap", and the operations up to Bootstrap-Finish): a client that holds a
Bootstrap-Server account accepts Bootstrap-Write, Read, Discover and Delete from that
Bootstrap-Server, and from nobody else, without having sent a Bootstrap-Request; the
Bootstrap-Server ends with Bootstrap-Finish, which the client accepts (2.04) only when the
configuration is consistent (4.06 otherwise, and the Bootstrap-Server may go on); after an
accepted Finish the client registers with the LwM2M Server(s) it was given.

Here the gateway is registered with a first in-repo server (``old``), listens on
``[bootstrap] server_initiated_port``, and libcoap's coap-client plays the Bootstrap-Server from
the address and port its account names (NoSec), or with the account's credentials over DTLS
(PSK, raw public keys, certificates; the gateway being the DTLS server). What lands is
checked where it lands: the newly provisioned server (``new``) receives the gateway's
Register, the old one its De-register, and the provisioned file is 0600. Requests from
another port or address, or a handshake with other credentials, get nothing and change
nothing; a Finish that fails the consistency check is 4.06 and the gateway goes on as it was.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import cbor2
import pytest
from aiocoap.numbers.codes import Code
from clients import free_udp_port
from cryptography.hazmat.primitives import serialization

from integration.test_daemon import ENDPOINT, config_text, running_daemon
from peers.libcoap import CoapClient, CoapClientError
from peers.lwm2m_server import LwM2MTestServer
from peers.pki import Pki

SENML_CBOR = 112
TLV = 11542
LINK_FORMAT = 40
NO_ANSWER = 2.0
"""How long requests that must not be answered are given."""
PSK = ("gw-bootstrap", "bootstrap-secret")


def security_senml(uri: str, ssid: int) -> bytes:
    """/0/5 as a Bootstrap-Server writes it: a NoSec LwM2M Server account (SenML CBOR,
    RFC 8428 labels: bn -2, n 0, v 2, vs 3, vb 4)."""
    return cbor2.dumps(
        [
            {-2: "/0/5/", 0: "0", 3: uri},
            {0: "1", 4: False},
            {0: "2", 2: 3},
            {0: "10", 2: ssid},
        ]
    )


def _tlv(rid: int, value: bytes) -> bytes:
    """One resource TLV (OMA TLV: type 11, 8-bit identifier, length inline or in one byte)."""
    if len(value) < 8:
        return bytes([0b11000000 | len(value), rid]) + value
    return bytes([0b11001000, rid, len(value)]) + value


def server_tlv(ssid: int) -> bytes:
    """/1/5 in TLV: Short Server ID, Lifetime 120, Notification Storing false, Binding U."""
    return (
        _tlv(0, ssid.to_bytes(1, "big"))
        + _tlv(1, (120).to_bytes(1, "big"))
        + _tlv(6, b"\x00")
        + _tlv(7, b"U")
    )


async def provision(bs: CoapClient, gateway: str, uri: str, ssid: int) -> None:
    """What the Bootstrap-Server sends for a new server account: /0/5 in SenML CBOR, /1/5 in
    TLV, then Bootstrap-Finish; each must be taken."""
    written = await bs.request(
        "put", gateway + "/0/5", content_format=SENML_CBOR, payload=security_senml(uri, ssid)
    )
    assert written.code == "2.04", written
    written = await bs.request(
        "put", gateway + "/1/5", content_format=TLV, payload=server_tlv(ssid)
    )
    assert written.code == "2.04", written
    finished = await bs.request("post", gateway + "/bs")
    assert finished.code == "2.04", finished


async def move_to(
    bs: CoapClient, gateway: str, old: LwM2MTestServer, new: LwM2MTestServer, tmp_path: Path
) -> None:
    """The Bootstrap-Server replaces the gateway's server with ``new``: the gateway
    de-registers from ``old``, registers with ``new``, and keeps the new account 0600."""
    assert (await bs.request("delete", gateway + "/1")).code == "2.02"
    assert (await bs.request("delete", gateway + "/0")).code == "2.02"
    await provision(bs, gateway, new.uri, 7)
    assert (await new.next_event("register", timeout=30)).endpoint == ENDPOINT
    assert (await old.next_event("deregister", timeout=30)).endpoint == ENDPOINT
    assert stat.S_IMODE(os.stat(provisioned_file(tmp_path)).st_mode) == 0o600


def provisioned_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "provisioning.cbor"


def bootstrap_table(uri: str, port: int, keys: str = "") -> str:
    return f"""
[bootstrap]
uri = "{uri}"
server_initiated_port = {port}
{keys}
"""


async def test_nosec_bootstrap_server_provisions_a_new_server_at_any_time(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    old = server
    bs_port, listen = free_udp_port(), free_udp_port()
    config = config_text(
        old.uri, tmp_path, sim=None, extra=bootstrap_table(f"coap://127.0.0.1:{bs_port}", listen)
    )
    async with LwM2MTestServer() as new:
        async with running_daemon(tmp_path, config):
            await old.next_event("register", timeout=30)
            gateway = f"coap://127.0.0.1:{listen}"

            # Another port of the same host, or another address (127.0.0.2 on Linux loopback) even
            # from the Bootstrap-Server's port, is not the Bootstrap-Server: nothing answers them.
            for bind in (None, ("127.0.0.2", bs_port)):
                intruder = CoapClient(bind=bind, timeout=NO_ANSWER)
                for method, path in (("delete", "/0"), ("delete", "/1"), ("post", "/bs")):
                    with pytest.raises(CoapClientError):
                        await intruder.request(method, gateway + path)

            bs = CoapClient(bind=("127.0.0.1", bs_port))
            discovered = await bs.request("get", gateway + "/0", accept=LINK_FORMAT)
            assert discovered.code == "2.05"
            assert f'uri="coap://127.0.0.1:{bs_port}"'.encode() in discovered.payload
            read = await bs.request("get", gateway + "/1/0", accept=SENML_CBOR)
            assert read.code == "2.05", read
            assert 120 in [record.get(2) for record in cbor2.loads(read.payload)]  # the lifetime

            # A configuration with no LwM2M Server account is refused, and changes nothing.
            assert (await bs.request("delete", gateway + "/0")).code == "2.02"
            assert (await bs.request("delete", gateway + "/1")).code == "2.02"
            refused = await bs.request("post", gateway + "/bs")
            assert refused.code == "4.06", refused
            assert not provisioned_file(tmp_path).exists()
            read = await old.request(ENDPOINT, Code.GET, "/1/0/1")  # still registered, /1/0 live
            assert (read.code, read.payload) == (Code.CONTENT, b"120")

            # The Bootstrap-Server goes on: a new server, written in SenML CBOR and TLV.
            await provision(bs, gateway, new.uri, 7)

            registered = await new.next_event("register", timeout=30)
            assert registered.endpoint == ENDPOINT
            assert (await old.next_event("deregister", timeout=30)).endpoint == ENDPOINT
            saved = provisioned_file(tmp_path)
            assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
            assert new.uri.encode() in saved.read_bytes()
            read = await new.request(ENDPOINT, Code.GET, "/1/5/0")
            assert (read.code, read.payload) == (Code.CONTENT, b"7")

        # A restart registers with what was provisioned only: the [[server]] it replaced stays gone.
        async with running_daemon(tmp_path, config):
            assert (await new.next_event("register", timeout=30)).endpoint == ENDPOINT
            with pytest.raises(TimeoutError):
                await old.next_event("register", timeout=NO_ANSWER)


async def test_psk_bootstrap_server_is_the_only_dtls_peer_served(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    old = server
    listen = free_udp_port()
    keys = f'psk_identity = "{PSK[0]}"\npsk_key = "{PSK[1].encode().hex()}"'
    config = config_text(
        old.uri,
        tmp_path,
        sim=None,
        extra=bootstrap_table("coaps://127.0.0.1:5784", listen, keys),
    )
    async with LwM2MTestServer() as new, running_daemon(tmp_path, config):
        await old.next_event("register", timeout=30)
        gateway = f"coaps://127.0.0.1:{listen}"

        stranger = CoapClient("coap-client-openssl", psk=("stranger", PSK[1]), timeout=NO_ANSWER)
        with pytest.raises(CoapClientError):
            await stranger.request("delete", gateway + "/1")
        wrong_key = CoapClient(
            "coap-client-openssl", psk=(PSK[0], "not-the-key"), timeout=NO_ANSWER
        )
        with pytest.raises(CoapClientError):
            await wrong_key.request("delete", gateway + "/1")

        bs = CoapClient("coap-client-openssl", psk=PSK)
        await move_to(bs, gateway, old, new, tmp_path)


def sec1_key(key: Path) -> Path:
    """The private key as GnuTLS takes a raw public key's (-M): SEC1 PEM, "EC PRIVATE KEY"."""
    loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
    sec1 = key.with_suffix(".sec1.pem")
    sec1.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return sec1


async def test_rpk_bootstrap_server_is_known_by_its_key(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """Raw public keys (mode 1): the gateway is the DTLS server with its key pair (/0/x/3, 5)
    and takes a session only from the key of /0/x/4, the Bootstrap-Server's."""
    old = server
    listen = free_udp_port()
    pki = Pki()
    public, key = pki.issue("gateway").write_rpk(tmp_path / "gateway", "gateway")
    bs_public, bs_key = pki.issue("bootstrap").write_rpk(tmp_path / "bs", "bs")
    _, stranger_key = pki.issue("stranger").write_rpk(tmp_path / "stranger", "stranger")
    keys = f'public_key = "{public}"\nprivate_key = "{key}"\nserver_public_key = "{bs_public}"'
    config = config_text(
        old.uri, tmp_path, sim=None, extra=bootstrap_table("coaps://127.0.0.1:5784", listen, keys)
    )
    async with LwM2MTestServer() as new, running_daemon(tmp_path, config):
        await old.next_event("register", timeout=30)
        gateway = f"coaps://127.0.0.1:{listen}"

        stranger = CoapClient("coap-client-gnutls", rpk=sec1_key(stranger_key), timeout=NO_ANSWER)
        with pytest.raises(CoapClientError):
            await stranger.request("delete", gateway + "/1")

        bs = CoapClient("coap-client-gnutls", rpk=sec1_key(bs_key))
        await move_to(bs, gateway, old, new, tmp_path)


async def test_a_server_initiated_bootstrap_ends_the_gateways_own_attempts(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """With no server account the gateway keeps asking a Bootstrap-Server that does not answer
    its Bootstrap-Request; that Bootstrap-Server bootstrapping it on its own initiative ends
    those attempts, and the gateway registers where it was told."""
    bs_port, listen = free_udp_port(), free_udp_port()
    config = f"""
[gateway]
endpoint = "{ENDPOINT}"
state_dir = "{tmp_path / "state"}"
runtime_dir = "{tmp_path / "run"}"
bind_address = "127.0.0.1"
{bootstrap_table(f"coap://127.0.0.1:{bs_port}", listen)}
request_timeout = 60
"""
    async with running_daemon(tmp_path, config) as daemon:
        bs = CoapClient(bind=("127.0.0.1", bs_port))
        await provision(bs, f"coap://127.0.0.1:{listen}", server.uri, 7)
        assert (await server.next_event("register", timeout=30)).endpoint == ENDPOINT
        assert stat.S_IMODE(os.stat(provisioned_file(tmp_path)).st_mode) == 0o600
        assert daemon.proc.returncode is None


async def test_a_bootstrap_server_that_moves_is_listened_for_at_its_new_address(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """A Bootstrap-Server that rewrites its own account (/0/x/0, its URI) is served from its
    new address and port after its Finish, and no longer from the old ones."""
    bs_port, moved, listen = free_udp_port(), free_udp_port(), free_udp_port()
    config = config_text(
        server.uri, tmp_path, sim=None, extra=bootstrap_table(f"coap://127.0.0.1:{bs_port}", listen)
    )
    async with running_daemon(tmp_path, config):
        await server.next_event("register", timeout=30)
        gateway = f"coap://127.0.0.1:{listen}"
        bs = CoapClient(bind=("127.0.0.1", bs_port))
        links = (await bs.request("get", gateway + "/0", accept=LINK_FORMAT)).payload.decode()
        # the Bootstrap-Server's own account: a Bootstrap-Discover gives it a uri and no ssid
        [account] = [
            link.split(">")[0][1:]
            for link in links.split(",")
            if "uri=" in link and "ssid=" not in link
        ]
        uri = cbor2.dumps([{-2: f"{account}/", 0: "0", 3: f"coap://127.0.0.1:{moved}"}])
        written = await bs.request("put", gateway + account, content_format=SENML_CBOR, payload=uri)
        assert written.code == "2.04", written
        assert (await bs.request("post", gateway + "/bs")).code == "2.04"
        assert (await server.next_event("deregister", timeout=30)).endpoint == ENDPOINT
        await server.next_event("register", timeout=30)

        with pytest.raises(CoapClientError):
            await CoapClient(bind=("127.0.0.1", bs_port), timeout=NO_ANSWER).request(
                "get", gateway + "/0", accept=LINK_FORMAT
            )
        read = await CoapClient(bind=("127.0.0.1", moved)).request(
            "get", gateway + "/0", accept=LINK_FORMAT
        )
        assert read.code == "2.05" and f"127.0.0.1:{moved}".encode() in read.payload


async def test_certificate_bootstrap_server_is_known_by_its_certificate(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """Certificates (mode 2): the gateway is the DTLS server with its certificate (/0/x/3, 5)
    and takes a session only from a client whose certificate /0/x/4 and /0/x/15 accept
    (usage 3 here: exactly that certificate)."""
    old = server
    listen = free_udp_port()
    pki = Pki()
    certificate, key = pki.issue("gateway").write(tmp_path / "gateway", "gateway")
    bs_certificate, bs_key = pki.issue("bootstrap").write(tmp_path / "bs", "bs")
    stranger = pki.issue("stranger").write(tmp_path / "stranger", "stranger")
    keys = (
        f'certificate = "{certificate}"\nprivate_key = "{key}"\n'
        f'server_certificate = "{bs_certificate}"'
    )
    config = config_text(
        old.uri, tmp_path, sim=None, extra=bootstrap_table("coaps://127.0.0.1:5784", listen, keys)
    )
    async with LwM2MTestServer() as new, running_daemon(tmp_path, config):
        await old.next_event("register", timeout=30)
        gateway = f"coaps://127.0.0.1:{listen}"

        intruder = CoapClient("coap-client-openssl", certificate=stranger, timeout=NO_ANSWER)
        with pytest.raises(CoapClientError):
            await intruder.request("delete", gateway + "/1")

        bs = CoapClient("coap-client-openssl", certificate=(bs_certificate, bs_key))
        await move_to(bs, gateway, old, new, tmp_path)
