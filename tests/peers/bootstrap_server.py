"""An in-repo LwM2M Bootstrap-Server for the engine's tests, built on aiocoap.

It answers Bootstrap-Requests (``POST /bs?ep=``) with 2.04, or with a chosen code, and records
each one with the address it came from; the test then drives the Bootstrap interface of that
client from the server's own socket, as a real Bootstrap-Server does: Bootstrap-Discover,
Read, Write, Delete and Finish.

Payloads are written here by hand in SenML JSON (``security`` and ``server`` below), not with
the project's codecs, so that a codec bug cannot cancel itself out between the two ends.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from dataclasses import dataclass
from typing import Any

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code
from cryptography.x509 import Certificate

from bridged.engine.tinydtls import RawKey
from peers.dtls_rpk_server import rpk_server_context
from peers.dtls_x509_server import x509_server_context
from peers.pki import Issued

SENML_JSON = 110
LINK_FORMAT = 40


@dataclass(frozen=True)
class BootstrapRequest:
    """One Bootstrap-Request as the server saw it."""

    endpoint: str
    query: dict[str, str | None]
    remote: object


class _Root(resource.Resource):
    def __init__(self, server: BootstrapTestServer) -> None:
        super().__init__()
        self.server = server

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        if tuple(request.opt.uri_path) != ("bs",) or request.code != Code.POST:
            return aiocoap.Message(code=Code.NOT_FOUND)
        query: dict[str, str | None] = {}
        for q in request.opt.uri_query:
            name, sep, value = q.partition("=")
            query[name] = value if sep else None
        self.server.requests.put_nowait(
            BootstrapRequest(query.get("ep") or "", query, request.remote)
        )
        return aiocoap.Message(code=self.server.answer)


def security(
    iid: int,
    uri: str,
    *,
    ssid: int | None = None,
    bootstrap: bool = False,
    mode: int = 3,
    identity: bytes = b"",
    key: bytes = b"",
    server_key: bytes = b"",
) -> bytes:
    """A SenML JSON Bootstrap-Write payload for /0/``iid`` (``identity``, ``server_key`` and
    ``key``: resources 3, 4 and 5)."""
    records: list[dict[str, object]] = [
        {"bn": f"/0/{iid}/", "n": "0", "vs": uri},
        {"n": "1", "vb": bootstrap},
        {"n": "2", "v": mode},
        {"n": "3", "vd": _b64(identity)},
        {"n": "4", "vd": _b64(server_key)},
        {"n": "5", "vd": _b64(key)},
    ]
    if ssid is not None:
        records.append({"n": "10", "v": ssid})
    return json.dumps(records).encode()


def server(
    iid: int, ssid: int, *, lifetime: int = 300, binding: str = "U", **extra: int | bool
) -> bytes:
    """A SenML JSON Bootstrap-Write payload for /1/``iid``; ``extra`` maps ``r<id>`` names to
    more resource values (``r16=False``)."""
    records: list[dict[str, object]] = [
        {"bn": f"/1/{iid}/", "n": "0", "v": ssid},
        {"n": "1", "v": lifetime},
        {"n": "6", "vb": False},
        {"n": "7", "vs": binding},
    ]
    for name, value in extra.items():
        key = "vb" if isinstance(value, bool) else "v"
        records.append({"n": name.removeprefix("r"), key: value})
    return json.dumps(records).encode()


_ENABLER_RE = re.compile(rb"</>;lwm2m=([0-9]+\.[0-9]+)(?:[,;]|$)")


def enabler_version(discovered: bytes) -> str | None:
    """The client's LwM2M version from a Bootstrap-Discover answer, read as servers read it:
    the root link's ``lwm2m`` as a token (``</>;lwm2m=1.1``, as in the Core 1.1 examples).
    None when the answer does not say it that way; such a server then skips its
    Bootstrap-Read."""
    match = _ENABLER_RE.match(discovered)
    return match.group(1).decode() if match else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class BootstrapTestServer:
    """A Bootstrap-Server on 127.0.0.1 for tests; ``async with`` starts and stops it."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        answer: Code = Code.CHANGED,
        rpk: tuple[RawKey, list[bytes]] | None = None,
        x509: tuple[Issued, Certificate] | None = None,
    ):
        self.host = host
        self.rpk = rpk  # DTLS with raw public keys: its key pair, the client keys it takes
        self.x509 = x509  # DTLS with certificates: its certificate, the CA of its clients'
        self.port = port
        self.answer = answer
        self.requests: asyncio.Queue[BootstrapRequest] = asyncio.Queue()
        self.context: aiocoap.Context | None = None

    async def __aenter__(self) -> BootstrapTestServer:
        if self.rpk is not None:
            bind = (self.host, self.port)
            self.context, self.port = await rpk_server_context(_Root(self), bind, *self.rpk)
            return self
        if self.x509 is not None:
            bind = (self.host, self.port)
            self.context, self.port = await x509_server_context(_Root(self), bind, *self.x509)
            return self
        self.context = await aiocoap.Context.create_server_context(
            _Root(self), bind=(self.host, self.port), transports=["udp6"]
        )
        if self.port == 0:
            udp = self.context.request_interfaces[0].token_interface.message_interface
            self.port = int(udp.transport.get_extra_info("socket").getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.context is not None:
            await self.context.shutdown()
            self.context = None

    @property
    def uri(self) -> str:
        return f"{'coaps' if self.rpk or self.x509 else 'coap'}://{self.host}:{self.port}"

    async def next_request(self, timeout: float = 10.0) -> BootstrapRequest:
        async with asyncio.timeout(timeout):
            return await self.requests.get()

    async def send(
        self,
        client: BootstrapRequest,
        code: Code,
        path: str,
        payload: bytes = b"",
        *,
        content_format: int | None = None,
        accept: int | None = None,
        timeout: float = 10.0,
    ) -> aiocoap.Message:
        """Send one request to the client that sent ``client`` and return the response."""
        assert self.context is not None
        msg = aiocoap.Message(code=code, payload=payload)
        msg.opt.uri_path = tuple(s for s in path.split("/") if s)
        if content_format is not None:
            msg.opt.content_format = content_format
        if accept is not None:
            msg.opt.accept = accept
        msg.remote = client.remote
        async with asyncio.timeout(timeout):
            return await self.context.request(msg).response

    async def write(self, client: BootstrapRequest, path: str, payload: bytes) -> aiocoap.Message:
        """Bootstrap-Write of a SenML JSON payload."""
        return await self.send(client, Code.PUT, path, payload, content_format=SENML_JSON)

    async def discover(self, client: BootstrapRequest, path: str = "/") -> aiocoap.Message:
        return await self.send(client, Code.GET, path, accept=LINK_FORMAT)

    async def read(self, client: BootstrapRequest, path: str) -> aiocoap.Message:
        return await self.send(client, Code.GET, path, accept=SENML_JSON)

    async def delete(self, client: BootstrapRequest, path: str = "/") -> aiocoap.Message:
        return await self.send(client, Code.DELETE, path)

    async def finish(self, client: BootstrapRequest) -> aiocoap.Message:
        return await self.send(client, Code.POST, "/bs")

    async def provision(
        self, client: BootstrapRequest, server_uri: str, ssid: int = 7, **keys: Any
    ) -> None:
        """The usual sequence: Delete /, one LwM2M Server account (its security ``keys``: mode,
        identity, server_key, key), Finish; all must succeed."""
        account = security(1, server_uri, ssid=ssid, **keys)
        steps = (
            (await self.delete(client), Code.DELETED),
            (await self.write(client, "/0/1", account), Code.CHANGED),
            (await self.write(client, "/1/1", server(1, ssid)), Code.CHANGED),
            (await self.finish(client), Code.CHANGED),
        )
        for response, expected in steps:
            assert response.code == expected, (response.code, response.payload)
