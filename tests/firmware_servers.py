"""Package servers for pull tests, on loopback: an http:// one (Range, and a first transfer
it can cut short) and a coap:// one (Block2 by aiocoap)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiocoap
from aiocoap import resource


class HttpPackage:
    """``data`` at ``url``; ``cut`` bytes into the first full transfer the connection is
    closed (0: never), once ``release`` is set (at once by default). ``requests`` are the Range
    headers asked, in order."""

    def __init__(self, data: bytes, cut: int = 0, *, stall: bool = False) -> None:
        self.data = data
        self.cut = cut
        self.release = threading.Event()
        if not stall:
            self.release.set()
        self.requests: list[str | None] = []
        self.url = ""


@contextlib.contextmanager
def http_package(package: HttpPackage) -> Iterator[HttpPackage]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ranged = self.headers.get("Range")
            package.requests.append(ranged)
            if self.path != "/fw.bin":
                self.send_error(404)
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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    package.url = f"http://127.0.0.1:{server.server_address[1]}/fw.bin"
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
