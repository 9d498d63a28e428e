"""Eclipse Leshan's bootstrap server as a test peer (tests/peers/leshan-m15/, LeshanBootstrapPeer).

Leshan's library (leshan-server-cf 2.0.0-M15, the newest served; the pom says why not the DM
server peer's 2.0.0-M4) does the bootstrap; the launcher around it only starts it on 127.0.0.1,
takes Leshan ``BootstrapConfig`` objects per endpoint over a small HTTP API and reports what
Leshan's session listener saw: each session's state, every request Leshan sent with the CoAP
code it got back, the links Leshan parsed from a Bootstrap-Discover answer and the values it
decoded from a Bootstrap-Read answer. Tests assert on that report, which is Leshan's reading of
the exchange, not the gateway's.

Started and built like Leshan M15's LwM2M server peer (:class:`peers.leshan_m15.Launcher`): once
per test run, by the session-scoped fixture ``leshan_bootstrap``, which a test module imports as
``leshan_bootstrap_fixture``; each test uses its own endpoint name, so sessions never mix.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from peers.leshan_m15 import HOST, Launcher
from peers.pki import Issued, Pki

DONE = frozenset({"finished", "failed", "unauthorized"})
"""Session states after which Leshan sends nothing more (a missing config is a failure with
cause NO_BOOTSTRAP_CONFIG; a refused identity has no session, only this state)."""


# -- Leshan's BootstrapConfig, as the launcher's JSON carries it -------------------------------


def security(
    uri: str,
    *,
    server_id: int | None = None,
    bootstrap: bool = False,
    psk: tuple[bytes, bytes] | None = None,
    x509: tuple[bytes, bytes, bytes] | None = None,
    rpk: tuple[bytes, bytes, bytes] | None = None,
) -> dict[str, Any]:
    """A ``BootstrapConfig.ServerSecurity`` (an /0 instance): NoSec, PSK (identity, key), X509
    (the client's certificate, the server's, the client's key: DER) or RPK (the client's public
    key, the server's, the client's key: DER)."""
    out: dict[str, Any] = {"uri": uri, "bootstrapServer": bootstrap, "securityMode": "NO_SEC"}
    if server_id is not None:
        out["serverId"] = server_id
    if psk is not None:
        identity, key = psk
        out["securityMode"] = "PSK"
        out["publicKeyOrId"] = base64.b64encode(identity).decode()
        out["secretKey"] = base64.b64encode(key).decode()
    for mode, keys in (("X509", x509), ("RPK", rpk)):
        if keys is not None:
            own, server_side, private_key = keys
            out["securityMode"] = mode
            out["publicKeyOrId"] = base64.b64encode(own).decode()
            out["serverPublicKey"] = base64.b64encode(server_side).decode()
            out["secretKey"] = base64.b64encode(private_key).decode()
    return out


def server(short_id: int, lifetime: int, binding: str = "U") -> dict[str, Any]:
    """A ``BootstrapConfig.ServerConfig`` (an /1 instance)."""
    return {"shortId": short_id, "lifetime": lifetime, "binding": list(binding)}


def dm_config(
    dm_uri: str,
    *,
    ssid: int = 1,
    lifetime: int = 120,
    instance: int = 1,
    psk: tuple[bytes, bytes] | None = None,
    delete: Sequence[str] = ("/0", "/1"),
    **extra: Any,
) -> dict[str, Any]:
    """The usual configuration: delete what is there, then one LwM2M Server account (/0 and /1
    instance ``instance``) for ``dm_uri``."""
    return {
        "toDelete": list(delete),
        "security": {str(instance): security(dm_uri, server_id=ssid, psk=psk)},
        "servers": {str(instance): server(ssid, lifetime)},
        **extra,
    }


# -- the process --------------------------------------------------------------------------------


class LeshanBootstrap(Launcher):
    """Leshan 2.0.0-M15's bootstrap server (LeshanBootstrapPeer), its own certificate
    (``certificate``, for 127.0.0.1) from the test CA ``pki``, whose clients it trusts."""

    MAIN = "LeshanBootstrapPeer"
    pki: Pki
    certificate: Issued

    def put_config(
        self, endpoint: str, config: dict[str, Any], before: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Give Leshan ``config`` for ``endpoint``; ``before`` are (``"discover"``|``"read"``,
        path) requests Leshan sends ahead of the ones it derives from the config."""
        steps = [{"op": op, "path": path} for op, path in before]
        self._call("PUT", f"/config/{endpoint}", {"config": config, "before": steps})

    def config(self, endpoint: str) -> dict[str, Any] | None:
        """The config Leshan holds for ``endpoint`` (with Leshan's defaults filled in)."""
        found = self._call("GET", f"/config/{endpoint}")
        return None if found is None else found["config"]

    def delete_config(self, endpoint: str) -> None:
        self._call("DELETE", f"/config/{endpoint}")

    def sessions(self, endpoint: str) -> list[dict[str, Any]]:
        """Leshan's sessions with ``endpoint``, oldest first."""
        found = self._call("GET", f"/sessions?endpoint={endpoint}")
        return list(found or [])

    async def session(self, endpoint: str, index: int = 0, timeout: float = 30.0) -> dict[str, Any]:
        """Session ``index`` with ``endpoint`` once it is over (finished, failed, refused)."""
        async with asyncio.timeout(timeout):
            while True:
                found = await asyncio.to_thread(self.sessions, endpoint)
                if len(found) > index and found[index]["state"] in DONE:
                    return found[index]
                await asyncio.sleep(0.05)


@pytest.fixture(name="leshan_bootstrap", scope="session")
def leshan_bootstrap_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeshanBootstrap]:
    """Leshan's bootstrap server, started once per test run and stopped at its end."""
    pki = Pki("bootstrap test CA")
    certificate = pki.issue("leshan-bootstrap", server_host=HOST)
    credentials = pki.leshan_credentials(certificate, tmp_path_factory.mktemp("leshan-bs-dtls"))
    for peer in LeshanBootstrap.fixture(tmp_path_factory, str(credentials)):
        peer.pki, peer.certificate = pki, certificate
        yield peer
