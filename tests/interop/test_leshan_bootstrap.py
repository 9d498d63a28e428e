"""OMA LwM2M 1.1 bootstrap interop cases against Eclipse Leshan's bootstrap server.

The real daemon runs as a subprocess with a ``[bootstrap]`` section pointing at Leshan (2.0.0-M15,
tests/peers/leshan_bootstrap.py). Leshan derives its requests from the ``BootstrapConfig`` each
test gives it, and every assertion on the bootstrap is on what Leshan reported: the requests it
sent, the CoAP code bridged answered each with, the links Leshan parsed from a Bootstrap-Discover
answer and the values it decoded from a Bootstrap-Read answer. That the provisioning took is
shown where it lands: the daemon then registers with the provisioned server (the in-repo LwM2M
test server, or the in-repo DTLS-PSK server for a PSK account) with the provisioned lifetime.

Not run: int-3 (smartcard), which bridged does not support, and int-5 (server-initiated
bootstrap): Leshan's bootstrap server only answers Bootstrap-Requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from integration.test_daemon import Daemon, running_daemon

from peers.dtls_server import DtlsPskServer
from peers.leshan_bootstrap import (
    LeshanBootstrap,
    dm_config,
    leshan_bootstrap_fixture,  # noqa: F401 (fixture)
    security,
)
from peers.leshan_m15 import LauncherError, LeshanM15, leshan_m15_fixture  # noqa: F401 (fixture)
from peers.lwm2m_server import LwM2MTestServer

IDENTITY = b"bridged-bs-psk"
PEER_IDENTITY = b"bridged-bs-peer"
"""Leshan keeps a PSK identity to one endpoint per Bootstrap-Server (its config store checks)."""
KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
DEAD_SERVER = """
[[server]]
uri = "coap://127.0.0.1:9"
short_server_id = 3
lifetime = 77
request_timeout = 1
retry_count = 1
retry_timer = 0.05
retry_sequence_delay = 0.1
retry_sequence_count = 1
"""
"""A factory server account that never answers (nothing listens on the discard port): the
daemon gives up on it and falls back to the Bootstrap-Server (/1/x/16 defaults to true)."""

needs_dtls = pytest.mark.skipif(
    importlib.util.find_spec("DTLSSocket") is None,
    reason="DTLSSocket is not installed (pip install 'bridged[dtls]')",
)


def daemon_config(
    tmp: Path, endpoint: str, bootstrap: str, servers: str = "", extra: str = ""
) -> str:
    """A daemon that knows its Bootstrap-Server and ``servers`` (its factory configuration)."""
    return f"""
[gateway]
endpoint = "{endpoint}"
state_dir = "{tmp / "state"}"
runtime_dir = "{tmp / "run"}"
bind_address = "127.0.0.1"

[bootstrap]
{bootstrap}
request_timeout = 5
retry_timer = 0.05
retry_sequence_delay = 0.2
{servers}
[log]
level = "debug"

[transport.sim]
nodes = 1
interval = 5
{extra}"""


@pytest.fixture
async def dm_server() -> AsyncIterator[LwM2MTestServer]:
    async with LwM2MTestServer() as srv:
        yield srv


@contextlib.asynccontextmanager
async def daemon(
    tmp_path: Path, endpoint: str, bs_uri: str, servers: str = "", bootstrap: str = ""
) -> AsyncIterator[Daemon]:
    config = daemon_config(tmp_path, endpoint, f'uri = "{bs_uri}"\n{bootstrap}', servers)
    async with running_daemon(tmp_path, config) as d:
        yield d


async def leshan_session(leshan: LeshanBootstrap, d: Daemon, endpoint: str) -> dict[str, Any]:
    """Leshan's first finished session with ``endpoint``; a daemon that exits first fails the
    test with its log (a refused configuration, a crash) instead of a bare timeout."""
    session = asyncio.ensure_future(leshan.session(endpoint))
    exited = asyncio.ensure_future(d.proc.wait())
    await asyncio.wait({session, exited}, return_when=asyncio.FIRST_COMPLETED)
    if not session.done():
        session.cancel()
        pytest.fail(f"the daemon exited ({exited.result()}):\n{d.log.read_text()[-2000:]}")
    exited.cancel()
    return session.result()


def exchanges(session: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(op, path, code bridged answered) of every request Leshan sent in ``session``."""
    return [(r["op"], r["path"], r.get("code")) for r in session["requests"]]


def links(request: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The links Leshan parsed from a Bootstrap-Discover answer: target -> attributes."""
    return {link["url"]: {k: v for k, v in link.items() if k != "url"} for link in request["links"]}


PROVISION = [("write", "/0/1", "2.04"), ("write", "/1/1", "2.04"), ("finish", "/", "2.04")]
"""What Leshan sends for ``dm_config`` after its deletes: the account, then Finish."""


async def test_LightweightM2M_1_1_int_0_client_initiated_bootstrap(
    tmp_path: Path, leshan_bootstrap: LeshanBootstrap, dm_server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-0: the client asks Leshan for a bootstrap (pct: SenML CBOR);
    Leshan deletes /0 and /1, writes a Server account in the client's preferred format, sends
    Finish; the client registers where it was told, with the lifetime it was given."""
    ep = "bs-int-0"
    leshan_bootstrap.put_config(ep, dm_config(dm_server.uri, ssid=7, lifetime=120))
    async with daemon(tmp_path, ep, leshan_bootstrap.uri) as d:
        session = await leshan_session(leshan_bootstrap, d, ep)
        assert session["state"] == "finished", session
        assert (session["identity"], session["pct"], session["format"]) == ("unsecure", 112, 112)
        assert exchanges(session) == [
            ("delete", "/0", "2.02"),
            ("delete", "/1", "2.02"),
            *PROVISION,
        ]
        register = await dm_server.next_event("register", timeout=30)
        assert register.endpoint == ep
        assert (register.query["lt"], register.query["lwm2m"]) == ("120", "1.1")


@needs_dtls
async def test_LightweightM2M_1_1_int_1_psk_server_account(
    tmp_path: Path, leshan_bootstrap: LeshanBootstrap
) -> None:
    """LightweightM2M-1.1-int-1, the provisioning half: Leshan writes a DTLS-PSK Server account
    (security mode 0, identity, key) and the client registers over DTLS with that PSK."""
    ep = "bs-int-1-account"
    dm = await DtlsPskServer.start(IDENTITY, KEY)
    try:
        config = dm_config(dm.uri, ssid=5, lifetime=90, psk=(IDENTITY, KEY))
        leshan_bootstrap.put_config(ep, config)
        async with daemon(tmp_path, ep, leshan_bootstrap.uri) as d:
            session = await leshan_session(leshan_bootstrap, d, ep)
            assert session["state"] == "finished", session
            assert exchanges(session)[2:] == PROVISION
            async with asyncio.timeout(30):
                registration = await dm.registrations.get()
            assert registration.endpoint == ep and "lt=90" in registration.query
    finally:
        await dm.shutdown()


@needs_dtls
async def test_LightweightM2M_1_1_int_1_bootstrap_over_dtls_psk(
    tmp_path: Path, leshan_bootstrap: LeshanBootstrap, dm_server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-1: the client bootstraps from Leshan's CoAPS endpoint with its
    PSK (Leshan checks it against the Bootstrap-Server account of the config), then registers."""
    ep = "bs-int-1"
    config = dm_config(dm_server.uri, ssid=5, lifetime=90)
    config["security"]["0"] = security(
        leshan_bootstrap.secure_uri, bootstrap=True, psk=(IDENTITY, KEY)
    )
    leshan_bootstrap.put_config(ep, config)
    bootstrap = (
        f'uri = "{leshan_bootstrap.secure_uri}"\n'
        f'psk_identity = "{IDENTITY.decode()}"\npsk_key = "{KEY.hex()}"'
    )
    async with running_daemon(tmp_path, daemon_config(tmp_path, ep, bootstrap)) as d:
        session = await leshan_session(leshan_bootstrap, d, ep)
        assert session["state"] == "finished", session
        assert session["identity"] == f"psk:{IDENTITY.decode()}"
        register = await dm_server.next_event("register", timeout=30)
        assert register.endpoint == ep and register.query["lt"] == "90"


async def test_LightweightM2M_1_1_int_4_bootstrap_delete(
    tmp_path: Path, leshan_bootstrap: LeshanBootstrap, dm_server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-4: Delete / removes the Server accounts the client had (here the
    factory one it fell back from), as Leshan's Bootstrap-Read of /1 before and after shows;
    the client then registers where the new account says."""
    ep = "bs-int-4"
    before = [("read", "/1"), ("delete", "/"), ("read", "/1")]
    leshan_bootstrap.put_config(ep, dm_config(dm_server.uri, delete=()), before)
    async with daemon(tmp_path, ep, leshan_bootstrap.uri, DEAD_SERVER) as d:
        session = await leshan_session(leshan_bootstrap, d, ep)
        assert session["state"] == "finished", session
        first, deleted, second, *rest = session["requests"]
        assert [(r["op"], r["code"]) for r in (first, deleted, second)] == [
            ("read", "2.05"),
            ("delete", "2.02"),
            ("read", "2.05"),
        ]
        assert 3 in first["values"].values() and 77 in first["values"].values(), first
        assert second["values"] == {}, second
        assert exchanges({"requests": rest}) == PROVISION
        register = await dm_server.next_event("register", timeout=30)
        assert register.endpoint == ep


async def test_LightweightM2M_1_1_int_4_delete_keeps_bootstrap_account_and_device(
    tmp_path: Path, leshan_bootstrap: LeshanBootstrap, dm_server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-4: after Delete /, Leshan's Bootstrap-Discover shows the
    Bootstrap-Server account (the /0 instance without ssid) and /3/0 still there, and no Server
    account left."""
    ep = "bs-int-4-discover"
    before = [("delete", "/"), ("discover", "/")]
    leshan_bootstrap.put_config(ep, dm_config(dm_server.uri, delete=()), before)
    async with daemon(tmp_path, ep, leshan_bootstrap.uri, DEAD_SERVER) as d:
        session = await leshan_session(leshan_bootstrap, d, ep)
        deleted, discover = session["requests"][:2]
        assert [(r["op"], r.get("code")) for r in (deleted, discover)] == [
            ("delete", "2.02"),
            ("discover", "2.05"),
        ], session
        after = links(discover)
        assert not any(url.startswith("/1/") for url in after), after
        bs_accounts = [url for url in after if url.startswith("/0/")]
        assert len(bs_accounts) == 1 and "ssid" not in after[bs_accounts[0]], after
        assert "/3/0" in after


async def test_LightweightM2M_1_1_int_6_bootstrap_discover_by_leshan(
    tmp_path: Path, leshan_bootstrap: LeshanBootstrap, dm_server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-6 (Bootstrap Sequence): with autoIdForSecurityObject Leshan
    starts with its own Bootstrap-Discover to find the Bootstrap-Server account (the /0
    instance without ssid), writes the new account around it, and the client registers."""
    ep = "bs-int-6"
    config = dm_config(dm_server.uri, ssid=4, lifetime=150, autoIdForSecurityObject=True)
    leshan_bootstrap.put_config(ep, config)
    async with daemon(tmp_path, ep, leshan_bootstrap.uri) as d:
        session = await leshan_session(leshan_bootstrap, d, ep)
        assert session["state"] == "finished", session
        discover, *rest = session["requests"]
        assert (discover["op"], discover["path"], discover["code"]) == ("discover", "/", "2.05")
        found = links(discover)
        assert "/0/0" in found and "ssid" not in found["/0/0"], found
        assert [r["op"] for r in rest] == ["delete", "delete", "write", "write", "finish"]
        assert all(r["code"] in ("2.02", "2.04") for r in rest), rest
        register = await dm_server.next_event("register", timeout=30)
        assert register.endpoint == ep and register.query["lt"] == "150"


async def test_LightweightM2M_1_1_int_6_discover_reports_the_version_leshan_reads(
    tmp_path: Path, leshan_bootstrap: LeshanBootstrap, dm_server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-6: the Bootstrap-Discover of / states the client's LwM2M version
    on its first link, and Leshan reads it as 1.1."""
    ep = "bs-int-6-version"
    leshan_bootstrap.put_config(ep, dm_config(dm_server.uri), [("discover", "/")])
    async with daemon(tmp_path, ep, leshan_bootstrap.uri) as d:
        session = await leshan_session(leshan_bootstrap, d, ep)
    discover = session["requests"][0]
    assert (discover["op"], discover.get("code")) == ("discover", "2.05"), session
    assert links(discover)["/"] == {"lwm2m": "1.1"}


async def test_LightweightM2M_1_1_int_7_fallback_to_bootstrap(
    tmp_path: Path, leshan_bootstrap: LeshanBootstrap, dm_server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-7: the factory Server never answers, so the client bootstraps
    from Leshan and registers at the server Leshan provisioned."""
    ep = "bs-int-7"
    leshan_bootstrap.put_config(ep, dm_config(dm_server.uri, ssid=9, lifetime=100))
    async with daemon(tmp_path, ep, leshan_bootstrap.uri, DEAD_SERVER) as d:
        session = await leshan_session(leshan_bootstrap, d, ep)
        assert session["state"] == "finished", session
        assert exchanges(session) == [
            ("delete", "/0", "2.02"),
            ("delete", "/1", "2.02"),
            *PROVISION,
        ]
        register = await dm_server.next_event("register", timeout=30)
        assert register.endpoint == ep and register.query["lt"] == "100"


async def test_LightweightM2M_1_1_int_8_bootstrap_read(
    tmp_path: Path, leshan_bootstrap: LeshanBootstrap, dm_server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-8: Leshan's Bootstrap-Read of /1 decodes the Server account the
    client has (the factory one: ssid 3, lifetime 77); /0 is not (Core 1.1, Bootstrap-Read: the
    operation is limited to the Server and Access Control objects; 4.01 among its codes)."""
    ep = "bs-int-8"
    before = [("read", "/1"), ("read", "/0")]
    leshan_bootstrap.put_config(ep, dm_config(dm_server.uri), before)
    async with daemon(tmp_path, ep, leshan_bootstrap.uri, DEAD_SERVER) as d:
        session = await leshan_session(leshan_bootstrap, d, ep)
        assert session["state"] == "finished", session
        read, security_read, *rest = session["requests"]
        assert (read["op"], read["path"], read["code"]) == ("read", "/1", "2.05")
        values = read["values"]
        ssids = {p.split("/")[2]: v for p, v in values.items() if p.split("/")[3:] == ["0"]}
        instance = next(iid for iid, ssid in ssids.items() if ssid == 3)
        assert values[f"/1/{instance}/1"] == 77, values
        assert (security_read["op"], security_read["code"]) == ("read", "4.01")
        assert exchanges({"requests": rest}) == [
            ("delete", "/0", "2.02"),
            ("delete", "/1", "2.02"),
            *PROVISION,
        ]
        await dm_server.next_event("register", timeout=30)


async def test_LightweightM2M_1_1_int_9_inconsistent_configuration_is_refused(
    tmp_path: Path, leshan_bootstrap: LeshanBootstrap, dm_server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-9: a Security account whose Short Server ID has no Server
    instance is refused at Bootstrap-Finish (4.06), so Leshan's session fails; the client,
    hearing nothing more (finish_timeout), asks again, and a consistent configuration then
    finishes and the client registers."""
    ep = "bs-int-9"
    inconsistent = dm_config(dm_server.uri, ssid=6)
    inconsistent["servers"] = {}
    leshan_bootstrap.put_config(ep, inconsistent)
    async with daemon(tmp_path, ep, leshan_bootstrap.uri, bootstrap="finish_timeout = 3") as d:
        refused = await leshan_session(leshan_bootstrap, d, ep)
        assert (refused["state"], refused.get("cause")) == ("failed", "FINISH_FAILED"), refused
        assert exchanges(refused)[-1] == ("finish", "/", "4.06")
        leshan_bootstrap.put_config(ep, dm_config(dm_server.uri, ssid=6, lifetime=110))
        accepted = await leshan_bootstrap.session(ep, index=1)
        assert accepted["state"] == "finished", accepted
        register = await dm_server.next_event("register", timeout=30)
        assert register.endpoint == ep and register.query["lt"] == "110"


@needs_dtls
async def test_dtls_psk_handshake_with_leshan_coaps(leshan_bootstrap: LeshanBootstrap) -> None:
    """bridged's own DTLS-PSK endpoint against Leshan's CoAPS endpoint, the transport int-1
    needs once [bootstrap] takes coaps://: a Bootstrap-Request with the config's Bootstrap-Server
    PSK starts a session Leshan authorizes with that identity, and one naming an endpoint that
    has no such PSK is refused (Leshan answers 4.00 and reports it unauthorized)."""
    from aiocoap import Code, Message, resource

    from bridged.engine.dtls import DtlsPskUplink

    ep = "bs-coaps-peer"
    config = dm_config("coap://127.0.0.1:9")
    config["security"]["0"] = security(
        leshan_bootstrap.secure_uri, bootstrap=True, psk=(PEER_IDENTITY, KEY)
    )
    leshan_bootstrap.put_config(ep, config)
    client = await DtlsPskUplink.create(
        leshan_bootstrap.secure_uri, PEER_IDENTITY, KEY, resource.Site(), handshake_timeout=5
    )
    try:
        uri = f"{leshan_bootstrap.secure_uri}/bs?ep="
        async with asyncio.timeout(10):
            accepted = await client.request(Message(code=Code.POST, uri=uri + ep))
            refused = await client.request(Message(code=Code.POST, uri=uri + "bs-coaps-other"))
        assert (accepted.code, refused.code) == (Code.CHANGED, Code.BAD_REQUEST)
        session = await leshan_bootstrap.session(ep)
        assert session["identity"] == f"psk:{PEER_IDENTITY.decode()}"
        other = await leshan_bootstrap.session("bs-coaps-other")
        assert (other["state"], other["identity"]) == ("unauthorized", session["identity"])
    finally:
        await client.shutdown()


async def test_harness_config_api_and_a_session_without_config(
    leshan_bootstrap: LeshanBootstrap,
) -> None:
    """The peer on its own, played by hand with aiocoap: a config Leshan's ConfigurationChecker
    refuses is an error naming the problem, a stored one reads back and deletes, and a
    Bootstrap-Request for an endpoint without config is refused and reported as such."""
    import aiocoap

    ep = "bs-harness"
    broken = dm_config("coaps://127.0.0.1:9")
    broken["security"]["1"]["securityMode"] = "PSK"  # no identity, no key
    with pytest.raises(LauncherError, match="400"):
        leshan_bootstrap.put_config(ep, broken)
    leshan_bootstrap.put_config(ep, dm_config("coap://127.0.0.1:9", ssid=2))
    stored = leshan_bootstrap.config(ep)
    assert stored is not None and stored["security"]["1"]["uri"] == "coap://127.0.0.1:9"
    assert stored["servers"]["1"]["shortId"] == 2
    leshan_bootstrap.delete_config(ep)
    assert leshan_bootstrap.config(ep) is None

    context = await aiocoap.Context.create_client_context()
    try:
        request = aiocoap.Message(code=aiocoap.POST, uri=f"{leshan_bootstrap.uri}/bs?ep={ep}")
        async with asyncio.timeout(30):
            answer = await context.request(request).response
    finally:
        await context.shutdown()
    assert answer.code == aiocoap.BAD_REQUEST
    session = await leshan_bootstrap.session(ep)
    assert (session["state"], session["cause"]) == ("failed", "NO_BOOTSTRAP_CONFIG"), session
    assert session["requests"] == []


@pytest.mark.parametrize("mode", ["certificate", "raw-public-key"])
async def test_LightweightM2M_1_1_int_2_bootstrap_over_dtls(
    tmp_path: Path, leshan_bootstrap: LeshanBootstrap, leshan_m15: LeshanM15, mode: str
) -> None:
    """LightweightM2M-1.1-int-2: the client bootstraps from Leshan's CoAPS endpoint with its
    certificate (security mode 2; Leshan: identity ``x509:<endpoint>``) or raw public key
    (mode 1; ``rpk:<its SubjectPublicKeyInfo>``), is given an account of the same mode (/0/x/3,
    4, 5, 10, and 15 for a certificate) for Leshan's LwM2M server, and registers there over
    DTLS with it; what was provisioned is persisted 0600, no key is logged."""
    ep = f"bs-int-2-{mode}"
    bs_client = leshan_bootstrap.pki.issue(ep)
    dm_client = leshan_m15.pki.issue(ep)
    if mode == "certificate":
        kind, bs_identity, dm_identity = "x509", f"x509:{ep}", f"x509:{ep}"
        dm_keys = (dm_client.der, leshan_m15.certificate.der)
        bs_keys = (bs_client.der, leshan_bootstrap.certificate.der)
        leshan_m15.add_x509(ep)
        cert, key = bs_client.write(tmp_path / "pki", "client")
        (tmp_path / "pki" / "bootstrap.pem").write_bytes(leshan_bootstrap.certificate.pem)
        names = ("certificate", "server_certificate", "bootstrap.pem")
    else:
        kind = "rpk"
        bs_identity = f"rpk:{bs_client.public_der.hex()}"
        dm_identity = f"rpk:{dm_client.public_der.hex()}"
        dm_keys = (dm_client.public_der, leshan_m15.certificate.public_der)
        bs_keys = (bs_client.public_der, leshan_bootstrap.certificate.public_der)
        leshan_m15.add_rpk(ep, dm_client.public_der)
        cert, key = bs_client.write_rpk(tmp_path / "pki", "client")
        (tmp_path / "pki" / "bootstrap.pub").write_bytes(leshan_bootstrap.certificate.public_der)
        names = ("public_key", "server_public_key", "bootstrap.pub")
    config = dm_config(leshan_m15.secure_uri, ssid=6, lifetime=95)
    config["security"]["1"] = security(
        leshan_m15.secure_uri, server_id=6, **{kind: (*dm_keys, dm_client.key_der())}
    )
    config["security"]["0"] = security(
        leshan_bootstrap.secure_uri, bootstrap=True, **{kind: (*bs_keys, bs_client.key_der())}
    )
    leshan_bootstrap.put_config(ep, config)
    own, server_key, server_file = names
    bootstrap = (
        f'uri = "{leshan_bootstrap.secure_uri}"\n{own} = "{cert}"\n'
        f'private_key = "{key}"\n{server_key} = "{tmp_path / "pki" / server_file}"'
    )
    try:
        async with running_daemon(tmp_path, daemon_config(tmp_path, ep, bootstrap)) as d:
            session = await leshan_session(leshan_bootstrap, d, ep)
            assert session["state"] == "finished", session
            assert session["identity"] == bs_identity
            _, registered = await leshan_m15.event(ep, "registered")
            assert registered["registration"]["identity"] == dm_identity
            assert registered["registration"]["lifetime"] == 95
            log = d.log.read_text()
        saved = [p for p in (tmp_path / "state").iterdir() if p.name.startswith("provision")]
        assert saved and all(p.stat().st_mode & 0o077 == 0 for p in saved), saved
        assert dm_client.key_der().hex() not in log and bs_client.key_der().hex() not in log
    finally:
        leshan_m15.remove_security(ep)
