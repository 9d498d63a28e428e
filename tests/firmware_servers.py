"""Package servers for pull tests, on loopback: an http:// or https:// one (Range, and a first
transfer it can cut short), a coap:// one (Block2 by aiocoap), and a coaps:// one on a LwM2M
server's host that takes certificates (DTLS-X.509, Block2 by hand)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiocoap
from aiocoap import ACK, CON, NON, Code, Message, resource
from aiocoap.optiontypes import BlockOption

from peers.dtls_x509_server import X509DtlsServer


class HttpPackage:
    """``data`` at ``url``; ``cut`` bytes into the first full transfer the connection is
    closed (0: never), once ``release`` is set (at once by default). ``requests`` are the Range
    headers asked, in order. With ``tls`` (a certificate chain file and its key, as
    ``Issued.write`` makes them) it is an https:// server; ``connections`` counts the
    connections it accepted, a TLS handshake that failed included. With ``redirect`` it
    answers 302 Found to that URL instead."""

    def __init__(
        self,
        data: bytes,
        cut: int = 0,
        *,
        stall: bool = False,
        tls: tuple[Path, Path] | None = None,
        redirect: str = "",
    ) -> None:
        self.data = data
        self.cut = cut
        self.release = threading.Event()
        if not stall:
            self.release.set()
        self.tls = tls
        self.redirect = redirect
        self.requests: list[str | None] = []
        self.connections = 0
        self.url = ""


class _Server(ThreadingHTTPServer):
    """Counts each connection it accepts, then (https) takes its TLS handshake in the
    connection's own thread, so that a client refusing the certificate fails only its own."""

    def __init__(self, package: HttpPackage, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.package = package
        self.context: ssl.SSLContext | None = None
        if package.tls is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(*package.tls)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        self.package.connections += 1
        return connection, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.context is None:
            super().finish_request(request, client_address)
            return
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return  # the client refused the certificate (or left)
        with tls:
            super().finish_request(tls, client_address)


@contextlib.contextmanager
def http_package(package: HttpPackage) -> Iterator[HttpPackage]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ranged = self.headers.get("Range")
            package.requests.append(ranged)
            if self.path != "/fw.bin":
                self.send_error(404)
                return
            if package.redirect:
                self.send_response(302)
                self.send_header("Location", package.redirect)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = int(ranged.removeprefix("bytes=").rstrip("-")) if ranged else 0
            body = package.data[start:]
            self.send_response(206 if ranged else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if package.cut and not ranged:
                self.wfile.write(body[: package.cut])
                self.wfile.flush()
                package.release.wait(30)
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = _Server(package, Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "http" if package.tls is None else "https"
    package.url = f"{scheme}://127.0.0.1:{server.server_address[1]}/fw.bin"
    try:
        yield package
    finally:
        package.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


class Package(resource.Resource):
    """``data`` for each GET (in Block2 blocks by aiocoap when it is large)."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = data

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(payload=self.data)


@contextlib.asynccontextmanager
async def coap_package(data: bytes) -> AsyncIterator[str]:
    """``data`` served at the coap:// URI yielded."""
    site = resource.Site()
    site.add_resource(["fw"], Package(data))
    context = await aiocoap.Context.create_server_context(
        site, bind=("::1", 0), transports=["udp6"]
    )
    try:
        udp = context.request_interfaces[0].token_interface.message_interface
        port = udp.transport.get_extra_info("socket").getsockname()[1]
        yield f"coap://[::1]:{port}/fw"
    finally:
        await context.shutdown()


class X509PackageHost:
    """Plays a LwM2M server over DTLS with certificates (``X509DtlsServer``, OpenSSL) whose
    host also serves a package at ``/fw``: it answers Register (each kept in
    ``registrations``), Update and De-register, and the GETs of ``/fw`` block by block
    (Block2, at most ``BLOCK`` bytes), each kept in ``blocks`` with the client address whose
    session it came in (``run`` in a task while the test runs)."""

    BLOCK = 1024

    def __init__(self, server: X509DtlsServer, data: bytes) -> None:
        self.server = server
        self.data = data
        self.registrations: asyncio.Queue[Message] = asyncio.Queue()
        self.blocks: list[tuple[Any, int]] = []
        self._mids = itertools.count(1)

    async def run(self) -> None:
        while True:
            addr, request = await self.server.received.get()
            if request.mtype not in (CON, NON) or not request.code.is_request():
                continue
            response = self._answer(addr, request)
            response.token = request.token
            if request.mtype == CON:
                response.mtype, response.mid = ACK, request.mid
            else:
                response.mtype, response.mid = NON, next(self._mids)
            self.server.send(addr, response)

    def _answer(self, addr: Any, request: Message) -> Message:
        path = request.opt.uri_path
        if request.code == Code.POST and path == ("rd",):
            self.registrations.put_nowait(request)
            response = Message(code=Code.CREATED)
            response.opt.location_path = ("rd", "x509")
            return response
        if request.code in (Code.POST, Code.DELETE) and path == ("rd", "x509"):
            return Message(code=Code.CHANGED if request.code == Code.POST else Code.DELETED)
        if request.code == Code.GET and path == ("fw",):
            asked = request.opt.block2
            exponent = min(asked.size_exponent if asked else 6, 6)
            size = 2 ** (exponent + 4)
            number = asked.block_number if asked else 0
            self.blocks.append((addr, number))
            start = number * size
            response = Message(code=Code.CONTENT, payload=self.data[start : start + size])
            more = start + size < len(self.data)
            response.opt.block2 = BlockOption.BlockwiseTuple(number, more, exponent)
            return response
        return Message(code=Code.NOT_FOUND)
