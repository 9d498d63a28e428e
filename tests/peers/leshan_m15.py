"""Eclipse Leshan 2.0.0-M15's LwM2M server as a test peer, and what the M15 launchers share.

Why a second Leshan server: the suite's main one, the demo ``leshan-server-demo`` 2.0.0-M4
(tests/peers/leshan.py; the only Leshan demo Maven Central serves), runs Californium 2.6, whose
DTLS has no extended_master_secret (RFC 7627); bridged's DTLS (tinydtls in DTLSSocket) aborts
the handshake without it. Leshan 2.0.0-M15's Californium 3.12 negotiates it, so the DTLS-PSK
cases run against this one, and so do the composite operations and the active cancel of an
observation, which M4's demo API cannot send: Leshan's own ``LeshanServer``
(tests/peers/leshan-m15/LeshanServerPeer.java, wiring only) on CoAP and CoAPS, with an in-memory
security store that the tests give a PSK, a raw public key or a certificate per endpoint (its
own certificate and key pair come from a test CA made at run time, tests/peers/pki.py). Its
small HTTP API reports what Leshan decoded: each registration (endpoint, the identity of its
DTLS session, lifetime, links), updates and de-registrations, the answers to a Read, an Observe,
a Write-Attributes, a cancel or a composite operation (Read-, Write-, Observe-Composite and its
cancel) it sent, and the notifications it received.

Both M15 launchers (this one and Leshan's bootstrap server, tests/peers/leshan_bootstrap.py) are
one Maven project, built by ``make unit`` into build/peers/leshan-m15/; :class:`Launcher` starts
either on ports the system picks (each prints them once it listens) and calls its API. Each is
started once per test run by a session fixture; tests use endpoint names of their own. A missing
java or jar skips outside CI and fails in CI (``CI=true``).
"""

from __future__ import annotations

import asyncio
import json
import select
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest

from peers.leshan import LeshanFailed, LeshanMissing, find_java, in_ci, write_missing_models
from peers.pki import Issued, Pki

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "peers" / "leshan-m15"
JAR = BUILD / "leshan-m15.jar"
LESHAN_CORE = BUILD / "lib" / "leshan-core-2.0.0-M15.jar"
"""Leshan's own object models (the OMA core objects) are in this jar."""
INSTALL_COMMAND = "make unit (or mvn -q -B package -f tests/peers/leshan-m15/pom.xml)"
START_TIMEOUT = 60.0
"""A JVM and Californium start in seconds, but the machine is shared by parallel runs."""


class LauncherError(RuntimeError):
    """A launcher refused an API call (e.g. Leshan refused a config or a PSK): status, body."""


class Launcher:
    """A running M15 launcher: its CoAP/CoAPS URIs and its HTTP API."""

    MAIN = ""
    """The launcher's Java class."""

    def __init__(self, process: subprocess.Popen[bytes], ports: dict[str, int], log: Path) -> None:
        self.process = process
        self.log = log
        self.uri = f"coap://{HOST}:{ports['coap']}"
        self.secure_uri = f"coaps://{HOST}:{ports['coaps']}"
        self._api = f"http://{HOST}:{ports['http']}"

    @classmethod
    def start(
        cls, workdir: Path, java: str, *args: str, properties: dict[str, str] | None = None
    ) -> Self:
        """Start the launcher in ``workdir`` (Californium writes its properties file there) and
        wait until it reports its ports. ``properties`` are the JVM's system properties (the
        launcher's options, e.g. ``peer.preferredBlockSize``)."""
        log = workdir / f"{cls.MAIN}.log"
        options = [f"-D{name}={value}" for name, value in (properties or {}).items()]
        with log.open("wb") as stderr:
            process = subprocess.Popen(
                [
                    *(java, "-Dorg.slf4j.simpleLogger.defaultLogLevel=info", *options),
                    *("-cp", str(JAR)),
                    *(cls.MAIN, "0", "0", "0", *args),
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

    def _call(self, method: str, path: str, body: object = None, timeout: float = 10) -> Any:
        """One API call: its JSON answer, None when empty or 404; LauncherError otherwise."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self._api + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                text = answer.read()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise LauncherError(f"{method} {path}: {e.code} {e.read().decode()}") from None
        return json.loads(text) if text else None

    @classmethod
    def fixture(
        cls,
        tmp_path_factory: pytest.TempPathFactory,
        *args: str,
        properties: dict[str, str] | None = None,
    ) -> Iterator[Self]:
        """The body of a session fixture: the launcher, started once, stopped at the end."""
        try:
            java = find_java()
            if not JAR.is_file():
                raise LeshanMissing(f"{JAR} is not built: {INSTALL_COMMAND}")
        except LeshanMissing as missing:
            if in_ci():  # an error, which no expected failure absorbs (they name theirs)
                raise LeshanMissing(f"CI must run the Leshan cases: {missing}") from None
            pytest.skip(str(missing))
        peer = cls.start(tmp_path_factory.mktemp(cls.MAIN), java, *args, properties=properties)
        try:
            yield peer
        finally:
            peer.stop()


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
            raise LeshanFailed(f"Leshan exited ({process.returncode}):\n{_tail(log)}")
    raise LeshanFailed(f"no READY within {START_TIMEOUT} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-20:])


# -- the LwM2M server -------------------------------------------------------------------------


class LeshanM15(Launcher):
    """Leshan 2.0.0-M15's LwM2M server (LeshanServerPeer). ``pki`` is the test CA its
    certificate (``certificate``, for 127.0.0.1) comes from and whose client certificates it
    trusts; ``certificate`` is also its raw public key."""

    MAIN = "LeshanServerPeer"
    pki: Pki
    certificate: Issued

    def add_x509(self, endpoint: str) -> None:
        """Let ``endpoint`` connect with a certificate of the test CA whose CN is its name."""
        self._call("PUT", f"/security/{endpoint}", {"x509": True})

    def add_rpk(self, endpoint: str, public_key: bytes) -> None:
        """Let ``endpoint`` connect with this raw public key (SubjectPublicKeyInfo DER)."""
        self._call("PUT", f"/security/{endpoint}", {"rpk": public_key.hex()})

    def add_psk(self, endpoint: str, identity: str, key: bytes) -> None:
        """Let ``endpoint`` connect over DTLS with this PSK (Leshan's authorizer then refuses
        it on coap://: a client with security info must use it)."""
        self._call("PUT", f"/security/{endpoint}", {"identity": identity, "key": key.hex()})

    def remove_security(self, endpoint: str) -> None:
        self._call("DELETE", f"/security/{endpoint}")

    def clients(self) -> list[dict[str, Any]]:
        """The registrations Leshan holds: id, endpoint, identity (``psk:ID`` or ``unsecure``),
        secure, lifetime, version, binding, queue, links ([{url, attribute: value}])."""
        return list(self._call("GET", "/clients"))

    def events(self, endpoint: str) -> list[dict[str, Any]]:
        """What Leshan's listeners reported of ``endpoint``, oldest first: ``registered``,
        ``updated``, ``deregistered`` (with the registration), ``notification`` (path, or
        paths for a composite observation; code, values), ``observe-error``."""
        return list(self._call("GET", "/events?" + urllib.parse.urlencode({"endpoint": endpoint})))

    async def event(
        self,
        endpoint: str,
        kind: str,
        *,
        after: int = 0,
        timeout: float = 60.0,
        match: Callable[[dict[str, Any]], bool] = lambda event: True,
        give_up: Callable[[], str | None] = lambda: None,
    ) -> tuple[int, dict[str, Any]]:
        """The first ``kind`` event of ``endpoint`` that ``match`` takes, at index ``after`` or
        later, with its index. ``give_up`` returns a reason to fail at once (the client can no
        longer produce it)."""
        deadline = time.monotonic() + timeout
        while True:
            found = await asyncio.to_thread(self.events, endpoint)
            for index, event in enumerate(found[after:], after):
                if event["event"] == kind and match(event):
                    return index, event
            reason = give_up()
            if reason is None and time.monotonic() > deadline:
                reported = [e["event"] for e in found]
                reason = f"none within {timeout} s; Leshan reported {reported}"
            if reason is not None:
                pytest.fail(f"no {kind} of {endpoint} from Leshan: {reason}")
            await asyncio.sleep(0.05)

    async def _operation(
        self, endpoint: str, op: str, path: str | None, body: object = None, **params: Any
    ) -> dict[str, Any]:
        """One request Leshan sends to ``endpoint``; ``body`` is a composite operation's paths
        or values (and ``path`` then None)."""
        query = urllib.parse.urlencode(({} if path is None else {"path": path}) | params)
        # Leshan waits up to 20 s for the client's answer (LeshanServerPeer.REQUEST_TIMEOUT_MS).
        found = await asyncio.to_thread(
            self._call, "POST", f"/clients/{endpoint}/{op}?{query}", body, 30
        )
        if found is None:
            raise LauncherError(f"{op} {path or body}: {endpoint} is not registered with Leshan")
        return dict(found)

    async def read(self, endpoint: str, path: str, format: int) -> dict[str, Any]:
        """Leshan's Read of ``path`` asking for Content-Format ``format``: {code, error, values}
        (what Leshan decoded: {"/3/0/0": value}) or {failure}."""
        return await self._operation(endpoint, "read", path, format=format)

    async def observe(self, endpoint: str, path: str, format: int) -> dict[str, Any]:
        """Leshan's Observe of ``path``; the answer as :meth:`read`, notifications as events."""
        return await self._operation(endpoint, "observe", path, format=format)

    async def write_attributes(self, endpoint: str, path: str, **attributes: Any) -> dict[str, Any]:
        """Leshan's Write-Attributes (pmin, pmax, gt, lt, st) on ``path``: {code, error}."""
        return await self._operation(endpoint, "attributes", path, **attributes)

    async def cancel(self, endpoint: str, path: str) -> dict[str, Any]:
        """Leshan's active cancel (Observe=1, the observation's token) of its observation of
        ``path``: {code, values}; Leshan then forgets the observation."""
        return await self._operation(endpoint, "cancel", path)

    async def read_composite(self, endpoint: str, paths: list[str], format: int) -> dict[str, Any]:
        """Leshan's Read-Composite (FETCH) of ``paths`` in Content-Format ``format`` (SenML JSON
        or CBOR, for the paths asked and the answer): as :meth:`read`, every path's values."""
        return await self._operation(endpoint, "read-composite", None, paths, format=format)

    async def observe_composite(
        self, endpoint: str, paths: list[str], format: int
    ) -> dict[str, Any]:
        """Leshan's Observe-Composite of ``paths``: the answer as :meth:`read_composite`, each
        notification an event with these ``paths``."""
        return await self._operation(endpoint, "observe-composite", None, paths, format=format)

    async def cancel_composite(self, endpoint: str, paths: list[str]) -> dict[str, Any]:
        """Leshan's active cancel of its composite observation of ``paths``, as :meth:`cancel`."""
        return await self._operation(endpoint, "cancel-composite", None, paths)

    async def write_composite(
        self, endpoint: str, values: dict[str, Any], format: int
    ) -> dict[str, Any]:
        """Leshan's Write-Composite (iPATCH) of ``values`` ({path: value}; Leshan types each
        value by its JSON type) in ``format``: {code, error}."""
        return await self._operation(endpoint, "write-composite", None, values, format=format)


@pytest.fixture(name="leshan_m15", scope="session")
def leshan_m15_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeshanM15]:
    """Leshan 2.0.0-M15's LwM2M server, started once per test run. Objects the gateway serves
    that Leshan's own models lack are given to it as DDF files written from the gateway's own
    definitions, as a Leshan user would."""
    models = tmp_path_factory.mktemp("leshan-m15-models")
    if LESHAN_CORE.is_file():
        write_missing_models(LESHAN_CORE, models)
    pki = Pki()
    certificate = pki.issue("leshan-m15", server_host=HOST)
    credentials = pki.leshan_credentials(certificate, tmp_path_factory.mktemp("leshan-m15-dtls"))
    for peer in LeshanM15.fixture(tmp_path_factory, str(models), str(credentials)):
        peer.pki, peer.certificate = pki, certificate
        yield peer
