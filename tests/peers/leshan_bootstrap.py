"""Eclipse Leshan's bootstrap server as a test peer (tests/peers/leshan-bootstrap/).

Leshan's library (leshan-server-cf 2.0.0-M15, the newest served; the pom says why not the DM
server peer's 2.0.0-M4) does the bootstrap; the launcher around it only starts it on 127.0.0.1,
takes Leshan ``BootstrapConfig`` objects per endpoint over a small HTTP API and reports what
Leshan's session listener saw: each session's state, every request Leshan sent with the CoAP
code it got back, the links Leshan parsed from a Bootstrap-Discover answer and the values it
decoded from a Bootstrap-Read answer. Tests assert on that report, which is Leshan's reading of
the exchange, not the gateway's.

``make unit`` builds the launcher with Maven (a stamp re-run when its pom or source changes).
The process is started once per test run (the session-scoped fixture ``leshan_bootstrap``, which
a test module imports as ``leshan_bootstrap_fixture``) on ports the system picks, which the
launcher prints once it listens; each test uses its own endpoint name, so sessions never mix.
A missing java or jar skips outside CI and fails in CI (``CI=true``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import select
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
JAR = REPO / "build" / "peers" / "leshan-bootstrap" / "leshan-bootstrap.jar"
START_TIMEOUT = 60.0
"""A JVM and Californium start in seconds, but the machine is shared by parallel runs."""
DONE = frozenset({"finished", "failed", "unauthorized"})
"""Session states after which Leshan sends nothing more (a missing config is a failure with
cause NO_BOOTSTRAP_CONFIG; a refused identity has no session, only this state)."""


class LeshanBootstrapUnavailable(RuntimeError):
    """java or the built launcher is missing, or it did not start; the message says why."""


class LeshanBootstrapError(RuntimeError):
    """The launcher refused an API call (e.g. Leshan's ConfigurationChecker refused a config)."""


# -- Leshan's BootstrapConfig, as the launcher's JSON carries it -------------------------------


def security(
    uri: str,
    *,
    server_id: int | None = None,
    bootstrap: bool = False,
    psk: tuple[bytes, bytes] | None = None,
) -> dict[str, Any]:
    """A ``BootstrapConfig.ServerSecurity`` (an /0 instance): NoSec, or PSK (identity, key)."""
    out: dict[str, Any] = {"uri": uri, "bootstrapServer": bootstrap, "securityMode": "NO_SEC"}
    if server_id is not None:
        out["serverId"] = server_id
    if psk is not None:
        identity, key = psk
        out["securityMode"] = "PSK"
        out["publicKeyOrId"] = base64.b64encode(identity).decode()
        out["secretKey"] = base64.b64encode(key).decode()
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


class LeshanBootstrap:
    """The running launcher: its CoAP/CoAPS URIs and its HTTP API."""

    def __init__(self, process: subprocess.Popen[bytes], ports: dict[str, int], log: Path) -> None:
        self.process = process
        self.log = log
        self.uri = f"coap://{HOST}:{ports['coap']}"
        self.secure_uri = f"coaps://{HOST}:{ports['coaps']}"
        self._api = f"http://{HOST}:{ports['http']}"

    @classmethod
    def start(cls, workdir: Path, java: str, jar: Path = JAR) -> LeshanBootstrap:
        """Start the launcher in ``workdir`` (Californium writes its properties file there) and
        wait until it reports its ports."""
        log = workdir / "leshan-bootstrap.log"
        with log.open("wb") as stderr:
            process = subprocess.Popen(
                [
                    java,
                    "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
                    "-jar",
                    str(jar),
                    "0",
                    "0",
                    "0",
                ],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        try:
            ports = _ready_line(process, log)
        except BaseException:
            process.kill()
            process.wait()
            raise
        return cls(process, ports, log)

    def stop(self) -> None:
        """SIGTERM (the JVM's shutdown hook stops Leshan), then kill if it lingers."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    # -- the HTTP API ---------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self._api + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                text = answer.read()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise LeshanBootstrapError(f"{method} {path}: {e.code} {e.read().decode()}") from None
        return json.loads(text) if text else None

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


def _ready_line(process: subprocess.Popen[bytes], log: Path) -> dict[str, int]:
    """The ports of ``READY coap=P coaps=P http=P``, waiting on the pipe (not sleeping)."""
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([process.stdout], [], [], left)
        if not readable:
            break
        line = process.stdout.readline().decode()
        if line.startswith("READY "):
            return {k: int(v) for k, v in (f.split("=") for f in line.split()[1:])}
        if not line:  # EOF: the process exited
            process.wait()
            raise LeshanBootstrapUnavailable(
                f"Leshan's bootstrap server exited ({process.returncode}):\n{_tail(log)}"
            )
    raise LeshanBootstrapUnavailable(f"no READY within {START_TIMEOUT} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-20:])


def _missing(what: str) -> None:
    """A missing prerequisite: a failure in CI, where ``make test`` must have installed it."""
    if os.environ.get("CI") == "true":
        pytest.fail(what)
    pytest.skip(what)


@pytest.fixture(name="leshan_bootstrap", scope="session")
def leshan_bootstrap_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeshanBootstrap]:
    """Leshan's bootstrap server, started once per test run and stopped at its end."""
    java = shutil.which("java")
    if java is None:
        _missing("java is not installed: apt-get install default-jre-headless maven")
    assert java is not None
    if not JAR.is_file():
        _missing(
            f"{JAR} is not built: make unit (or mvn -q -B package -f tests/peers/leshan-bootstrap)"
        )
    peer = LeshanBootstrap.start(tmp_path_factory.mktemp("leshan-bootstrap"), java)
    try:
        yield peer
    finally:
        peer.stop()
