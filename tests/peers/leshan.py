"""Driver for Eclipse Leshan's demo LwM2M server (``leshan-server-demo`` 2.0.0-M4), a test peer.

Leshan is the reference LwM2M server: OMA's interop events, Zephyr's interop suite and many
products are built on it, and nobody on this project wrote it, so it catches the misreadings of
the spec that our own test servers share with the gateway. ``tests/peers/leshan/pom.xml`` pins
the version; ``make unit`` has Maven copy the jar to ``build/peers/leshan/``.

The server runs as a subprocess (:meth:`Leshan.start`) on 127.0.0.1, every port chosen by the
system (CoAP, CoAPS and the web API are all started on port 0; the ports are read from its log),
in a scratch directory (Californium writes ``Californium.properties`` where it runs). It is
driven through the REST API its web UI uses (``/api/clients``, ``/api/security``,
``/api/event``), learnt from that UI and the servlets of the jar:

* ``GET    /api/clients``                              registered clients
* ``GET    /api/clients/EP/PATH?format=F``             Read (F: TLV, TEXT, OPAQUE, JSON, SENML_JSON,
  SENML_CBOR, CBOR; Leshan picks when absent)
* ``GET    /api/clients/EP/PATH/discover``             Discover
* ``PUT    /api/clients/EP/PATH?format=F&replace=B``   Write (body: Leshan's JSON node)
* ``PUT    /api/clients/EP/PATH/attributes?pmin=..``   Write-Attributes
* ``POST   /api/clients/EP/O/I/R``                     Execute (body: the arguments)
* ``POST   /api/clients/EP/PATH/observe?format=F``     Observe
* ``DELETE /api/clients/EP/PATH/observe``              forget the observation (passive cancel:
  Leshan answers the next notification with RST)
* ``PUT    /api/security/clients``                     a client's PSK
* ``GET    /api/event?ep=EP``                          Server-Sent Events: REGISTRATION, UPDATED,
  DEREGISTRATION, NOTIFICATION, AWAKE, SLEEPING, and COAPLOG (every CoAP message to and from EP)

Every answer to an operation carries what Leshan decoded (``content``, ``objectLinks``) or its
error; that, and the event stream, is what the interop tests assert on.

What 2.0.0-M4's demo does not offer, and the tests say where it matters: composite operations
(Read-/Write-/Observe-Composite; its core has the first two but no REST route, and no
Observe-Composite at all), a SEND event (its server accepts and decodes Send, answering 2.04 or
its error; the COAPLOG event shows that answer), LwM2M CBOR (11544, a LwM2M 1.2 format), and
the LwM2M Gateway (prefixed paths): it speaks LwM2M 1.1.

Leshan decodes values with the object definitions it has. The jar carries the OMA registry of
2021; for an object (and version) the gateway serves that it lacks, such as the Gateway object
/25 v2.0, the driver writes a DDF file from the gateway's own built-in definition into the
models folder Leshan loads (``-m``), as a Leshan user would with the gateway's DDF files.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import zipfile
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape

import pytest

from bridged.objects.builtin import builtin_definitions
from bridged.objects.ddf import parse_ddf
from bridged.objects.definitions import ObjectDef, ResourceType

REPO = Path(__file__).resolve().parents[2]
POM = REPO / "tests" / "peers" / "leshan" / "pom.xml"
JAR = REPO / "build" / "peers" / "leshan" / "leshan-server-demo.jar"
INSTALL_COMMAND = (
    f"make {JAR.relative_to(REPO)}  (runs: mvn -q -B -f {POM.relative_to(REPO)} dependency:copy)"
)

JVM_OPTIONS = ("--add-opens", "java.base/java.util=ALL-UNNAMED")
"""Leshan M4's demo serialises registrations with a Gson that reflects into java.util, which
Java 17 refuses unless the module is opened (``GET /api/clients`` answers 500 without it)."""

START_TIMEOUT = 60.0
REQUEST_TIMEOUT = 20
"""Seconds Leshan waits for the client's answer to one operation (its ``timeout`` parameter;
its default, 5 s, is short for a loaded 2-core machine)."""

_STARTED = re.compile(r"LWM2M server started at coap:///[^:]+:(\d+) coaps:///[^:]+:(\d+)")
_WEB = re.compile(r"Web server started at http://[^:/]+:(\d+)")
_STATUS = re.compile(r"([A-Z_]+)\((\d)(\d\d)\)")


class LeshanMissing(RuntimeError):
    """Java or the Leshan jar is not installed; the message says how to fix it."""


class LeshanFailed(RuntimeError):
    """Leshan did not start, exited, or its API refused a request (HTTP status, body)."""


def find_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise LeshanMissing(
            "java is not installed; install it with: apt-get install default-jre-headless"
        )
    return java


def check_jar() -> Path:
    if not JAR.is_file():
        raise LeshanMissing(f"the Leshan server jar is missing ({JAR}); run: {INSTALL_COMMAND}")
    return JAR


# -- answers and events ---------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """Leshan's report of one operation: the client's CoAP answer and what Leshan decoded."""

    status: str
    """Leshan's name of the response code: CONTENT, CHANGED, NOT_FOUND, BAD_REQUEST..."""
    code: str
    """The CoAP code, "2.05"."""
    success: bool
    raw: dict[str, Any]

    @property
    def content(self) -> dict[str, Any]:
        """The decoded node: ``{"id", "value"}``, ``{"id", "values"}`` (multi-instance
        resource), ``{"id", "resources"}`` (instance) or ``{"id", "instances"}`` (object)."""
        content = self.raw.get("content")
        assert isinstance(content, dict), f"no content in {self.raw}"
        return content

    @property
    def value(self) -> Any:
        """The decoded value of a single-resource answer."""
        return self.content["value"]

    def resources(self) -> dict[int, Any]:
        """An instance answer's resources by ID: the value, or {instance: value}."""
        return {
            r["id"]: r["value"] if "value" in r else {int(k): v for k, v in r["values"].items()}
            for r in self.content["resources"]
        }

    @property
    def links(self) -> list[dict[str, Any]]:
        """A Discover answer's links: ``{"url": "/3/0/1", "attributes": {"pmin": "10"}}``."""
        return list(self.raw.get("objectLinks", []))

    @property
    def error(self) -> str:
        return str(self.raw.get("errormessage", ""))

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Answer:
        m = _STATUS.fullmatch(str(raw.get("status", "")))
        if m is None:
            raise LeshanFailed(f"unexpected answer from Leshan: {raw}")
        return cls(m.group(1), f"{m.group(2)}.{m.group(3)}", bool(raw.get("success")), raw)


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event: ``kind`` (REGISTRATION, NOTIFICATION, COAPLOG...) and its JSON."""

    kind: str
    data: dict[str, Any]

    @property
    def endpoint(self) -> str | None:
        ep = self.data.get("endpoint", self.data.get("ep"))
        if ep is None and isinstance(self.data.get("registration"), dict):
            ep = self.data["registration"].get("endpoint")
        return ep if isinstance(ep, str) else None


class EventStream:
    """Leshan's event stream, read by a thread; tests take events from it in arrival order.

    Open it before the client acts, so nothing is missed. ``endpoint`` adds the COAPLOG events
    of that endpoint (Leshan traces an endpoint's CoAP messages only for a stream asking for it).
    """

    def __init__(self, port: int, endpoint: str | None) -> None:
        query = "?" + urllib.parse.urlencode({"ep": endpoint}) if endpoint else ""
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=None)
        self._conn.request("GET", "/api/event" + query, headers={"Accept": "text/event-stream"})
        self._response = self._conn.getresponse()
        if self._response.status != 200:
            raise LeshanFailed(f"event stream: HTTP {self._response.status}")
        self._events: deque[Event] = deque()
        self._arrived = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._read, name="leshan-events", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        kind, data = "message", []
        try:
            for raw in self._response:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    event = Event(kind, json.loads("\n".join(data)))
                    with self._arrived:
                        self._events.append(event)
                        self._arrived.notify_all()
                    kind, data = "message", []
        except (OSError, ValueError, http.client.HTTPException):
            pass  # closed by close(), or the server went away
        finally:
            with self._arrived:
                self._closed = True
                self._arrived.notify_all()

    def _take(self, kind: str | None, endpoint: str | None, timeout: float, match: Any) -> Event:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for event in self._events:
                    if (
                        (kind is None or event.kind == kind)
                        and (endpoint is None or event.endpoint == endpoint)
                        and (match is None or match(event.data))
                    ):
                        self._events.remove(event)
                        return event
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    queued = [(e.kind, e.endpoint) for e in self._events]
                    raise TimeoutError(
                        f"no {kind or 'event'} of {endpoint} within {timeout} s; queued: {queued}"
                    )
                self._arrived.wait(left)

    async def next(
        self,
        kind: str | None = None,
        *,
        endpoint: str | None = None,
        timeout: float = 30.0,
        match: Any = None,
    ) -> Event:
        """Remove and return the oldest event of ``kind`` (of ``endpoint``, for which
        ``match(data)`` is true); others stay queued. TimeoutError after ``timeout``."""
        return await asyncio.to_thread(self._take, kind, endpoint, timeout, match)

    def drain(self, kind: str | None = None) -> list[Event]:
        """Remove and return every queued event (of ``kind``) without waiting."""
        with self._arrived:
            taken = [e for e in self._events if kind is None or e.kind == kind]
            for e in taken:
                self._events.remove(e)
        return taken

    def close(self) -> None:
        with contextlib.suppress(OSError):
            sock = self._conn.sock
            if sock is not None:
                sock.shutdown(2)
        self._conn.close()
        self._thread.join(5)


# -- the server -----------------------------------------------------------------------------


class Leshan:
    """A running Leshan demo server; :meth:`start` one, :meth:`stop` it."""

    def __init__(
        self, process: subprocess.Popen[bytes], workdir: Path, coap: int, coaps: int, web: int
    ) -> None:
        self.process = process
        self.workdir = workdir
        self.coap_port = coap
        self.coaps_port = coaps
        self.web_port = web

    @property
    def uri(self) -> str:
        return f"coap://127.0.0.1:{self.coap_port}"

    @property
    def secure_uri(self) -> str:
        return f"coaps://127.0.0.1:{self.coaps_port}"

    @property
    def log(self) -> Path:
        return self.workdir / "leshan.log"

    @classmethod
    def start(cls, workdir: Path, *, timeout: float = START_TIMEOUT) -> Leshan:
        """Start the server in ``workdir`` and return once its web API listens."""
        java, jar = find_java(), check_jar()
        models = workdir / "models"
        models.mkdir(parents=True, exist_ok=True)
        write_missing_models(jar, models)
        log = workdir / "leshan.log"
        ports = ("-lh", "127.0.0.1", "-lp", "0", "-slh", "127.0.0.1", "-slp", "0")
        http = ("-wh", "127.0.0.1", "-wp", "0")
        with log.open("wb") as out:
            process = subprocess.Popen(
                [java, *JVM_OPTIONS, "-jar", str(jar), *ports, *http, "-m", str(models)],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            text = log.read_text(errors="replace")
            started, web = _STARTED.search(text), _WEB.search(text)
            if "Unable to load object models" in text:
                process.kill()
                process.wait()
                raise LeshanFailed(f"Leshan refused a model the driver wrote:\n{text}")
            if started and web:
                return cls(process, workdir, int(started[1]), int(started[2]), int(web[1]))
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    process.kill()
                process.wait()
                raise LeshanFailed(f"Leshan did not start (status {process.returncode}):\n{text}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (the JVM's shutdown hooks stop the server), SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    # -- REST ---------------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, query: str = "", body: bytes | None = None
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=REQUEST_TIMEOUT + 10)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            target = "/api" + urllib.parse.quote(path) + (f"?{query}" if query else "")
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    async def api(self, method: str, path: str, query: str = "", body: Any = None) -> Any:
        """One API call; its JSON answer (None when empty). LeshanFailed unless HTTP 200."""
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        status, text = await asyncio.to_thread(self._call, method, path, query, data)
        if status != 200:
            raise LeshanFailed(f"{method} {path}?{query}: HTTP {status}: {text.decode()[:500]}")
        return json.loads(text) if text.strip() else None

    async def operation(
        self, method: str, endpoint: str, path: str, *, body: Any = None, **params: Any
    ) -> Answer:
        query = urllib.parse.urlencode(
            {"timeout": REQUEST_TIMEOUT} | {k: v for k, v in params.items() if v is not None}
        )
        return Answer.parse(await self.api(method, f"/clients/{endpoint}{path}", query, body))

    async def clients(self) -> list[dict[str, Any]]:
        """The registrations: endpoint, registrationId, lifetime, lwM2mVersion, bindingMode,
        objectLinks ([{url, attributes}]), secure, ..."""
        return list(await self.api("GET", "/clients"))

    async def client(self, endpoint: str) -> dict[str, Any] | None:
        return next((c for c in await self.clients() if c["endpoint"] == endpoint), None)

    async def read(self, endpoint: str, path: str, format: str | None = None) -> Answer:
        return await self.operation("GET", endpoint, path, format=format)

    async def discover(self, endpoint: str, path: str) -> Answer:
        return await self.operation("GET", endpoint, f"{path}/discover")

    async def write(
        self,
        endpoint: str,
        path: str,
        node: dict[str, Any],
        format: str | None = None,
        *,
        replace: bool = True,
    ) -> Answer:
        """Write ``node`` (Leshan's JSON form, see :attr:`Answer.content`): replace, or
        partial update (``replace=False``, instance level only)."""
        return await self.operation(
            "PUT", endpoint, path, body=node, format=format, replace=str(replace).lower()
        )

    async def write_value(
        self, endpoint: str, path: str, value: Any, format: str | None = None
    ) -> Answer:
        """Write one resource's value."""
        rid = int(path.rstrip("/").rsplit("/", 1)[1])
        return await self.write(endpoint, path, {"id": rid, "value": value}, format)

    async def execute(self, endpoint: str, path: str, arguments: str | None = None) -> Answer:
        return await self.operation("POST", endpoint, path, body=(arguments or "").encode() or None)

    async def observe(self, endpoint: str, path: str, format: str | None = None) -> Answer:
        return await self.operation("POST", endpoint, f"{path}/observe", format=format)

    async def cancel_observe(self, endpoint: str, path: str) -> None:
        """Forget the observations of ``path`` (Leshan sends nothing now; it answers the
        client's next notification with RST)."""
        await self.api("DELETE", f"/clients/{endpoint}{path}/observe")

    async def write_attributes(self, endpoint: str, path: str, **attributes: Any) -> Answer:
        """Write-Attributes: pmin, pmax, gt, lt, st (and epmin, epmax). The query carries only
        the attributes: Leshan parses all of it as the attribute set."""
        query = "&".join(f"{k}={v}" for k, v in attributes.items())
        raw = await self.api("PUT", f"/clients/{endpoint}{path}/attributes", query)
        return Answer.parse(raw)

    async def add_psk(self, endpoint: str, identity: str, key: bytes) -> None:
        """Let ``endpoint`` connect over DTLS with this PSK (Leshan then refuses it on coap://,
        since a client with security info must use it)."""
        body = {"endpoint": endpoint, "psk": {"identity": identity, "key": key.hex()}}
        await self.api("PUT", "/security/clients", body=body)

    async def remove_security(self, endpoint: str) -> None:
        await self.api("DELETE", f"/security/clients/{endpoint}")

    @contextlib.contextmanager
    def events(self, endpoint: str | None = None) -> Iterator[EventStream]:
        """The event stream (with ``endpoint``'s COAPLOG events when given), closed on exit."""
        stream = EventStream(self.web_port, endpoint)
        try:
            yield stream
        finally:
            stream.close()

    @contextlib.asynccontextmanager
    async def trace(self, endpoint: str, timeout: float = 30.0) -> AsyncIterator[EventStream]:
        """The COAPLOG events of registered ``endpoint``, from the moment Leshan traces them.

        Leshan attaches the trace after it has answered the stream's request, so the stream is
        known to be live only once a message shows in it: Leshan reads /1/0/1 (Lifetime, which
        every client has) until its GET appears. What came before is dropped.
        """

        def outgoing_get(data: dict[str, Any]) -> bool:
            return not data["incoming"] and data["code"] == "GET"

        with self.events(endpoint) as stream:
            async with asyncio.timeout(timeout):
                while True:
                    await self.read(endpoint, "/1/0/1", "TEXT")
                    try:
                        await stream.next("COAPLOG", timeout=1.0, match=outgoing_get)
                        break
                    except TimeoutError:
                        continue
            stream.drain()
            yield stream


# -- models ---------------------------------------------------------------------------------


def write_missing_models(jar: Path, folder: Path) -> list[int]:
    """Write a DDF file into ``folder`` for every built-in object (ID and version) the jar's
    models lack; return their IDs."""
    with zipfile.ZipFile(jar) as z:
        known = {
            (obj.id, obj.version)
            for name in z.namelist()
            if name.startswith("models/") and name.endswith(".xml")
            for obj in parse_ddf(z.read(name), name)
        }
    missing = [obj for obj in builtin_definitions() if (obj.id, obj.version) not in known]
    for obj in missing:
        (folder / f"{obj.id}-{obj.version.replace('.', '_')}.xml").write_text(ddf_xml([obj]))
    return [obj.id for obj in missing]


def ddf_xml(objects: Iterable[ObjectDef]) -> str:
    """OMA DDF XML (LWM2M-v1_1.xsd) for ``objects``."""

    def field(name: str, value: object) -> str:
        return f"<{name}>{escape(str(value))}</{name}>"

    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<LWM2M xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        ' xsi:noNamespaceSchemaLocation="http://www.openmobilealliance.org/tech/profiles/LWM2M-v1_1.xsd">',
    ]
    for obj in objects:
        parts += [
            '<Object ObjectType="MODefinition">',
            field("Name", obj.name),
            field("Description1", obj.description),
            field("ObjectID", obj.id),
            field("ObjectURN", obj.urn),
            # The 1.1 schema is the first with ObjectVersion, and Leshan checks LWM2MVersion
            # against the schema named: a 1.0 object is described as 1.1 (no resource changes).
            field("LWM2MVersion", max(obj.lwm2m_version, "1.1")),
            field("ObjectVersion", obj.version),
            field("MultipleInstances", "Multiple" if obj.multiple else "Single"),
            field("Mandatory", "Mandatory" if obj.mandatory else "Optional"),
            "<Resources>",
        ]
        for r in obj.resources.values():
            parts += [
                f'<Item ID="{r.id}">',
                field("Name", r.name),
                field("Operations", r.operations.value),
                field("MultipleInstances", "Multiple" if r.multiple else "Single"),
                field("Mandatory", "Mandatory" if r.mandatory else "Optional"),
                field("Type", "" if r.type is ResourceType.NONE else r.type.value),
                field("RangeEnumeration", r.range.text if r.range else ""),
                field("Units", r.units),
                field("Description", r.description),
                "</Item>",
            ]
        parts += ["</Resources>", "<Description2></Description2>", "</Object>"]
    parts.append("</LWM2M>\n")
    return "\n".join(parts)


def in_ci() -> bool:
    """True on CI, where a missing peer must fail the run rather than skip its tests."""
    return os.environ.get("CI", "").lower() in ("true", "1")


def leshan_events(scope: Literal["function", "module"] = "function") -> Any:
    """An ``events`` fixture of ``scope``, the Leshan server's event stream, for a module to
    bind: ``events = leshan_events("module")``. A module-scoped stream spans the module's tests
    (they share one registered daemon); a function-scoped one sees only its test's events."""

    @pytest.fixture(scope=scope, name="events")
    def events(leshan: Leshan) -> Iterator[EventStream]:
        with leshan.events() as stream:
            yield stream

    return events
