"""A NoSec (coap://) client socket serves its LwM2M server only.

Without DTLS nothing binds the socket to its server, so the engine does it: requests are served
only from the address and port its own requests go to (Register, Update), both must match.
These tests run the real daemon and send the requests that did harm when anyone could send
them (a Reboot, a write of the server's lifetime, an observation) from another port of the
same host, and from a second address of the host (127.0.0.2 on Linux loopback), even from the
server's own port there. None is answered, the daemon keeps running, and its server is served
as before, Reboot included.

What NoSec cannot do (RFC 7252 §9 and §11: no authentication at all): a sender that spoofs the
server's exact address and port is the server to the gateway. Only DTLS tells them apart.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiocoap
import pytest
from aiocoap.numbers.codes import Code

from integration.test_daemon import ENDPOINT, config_text, running_daemon
from peers.lwm2m_server import LwM2MTestServer

EXIT_RESTART = 75
UNANSWERED = 3.0
"""How long the intruder's requests are given to be answered (they must not be)."""


async def test_requests_from_another_port_are_dropped_and_the_server_still_served(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with running_daemon(tmp_path, config_text(server.uri, tmp_path)) as daemon:
        await server.next_event("register", timeout=30)
        port = server.clients[ENDPOINT].remote.sockaddr[1]  # type: ignore[attr-defined]
        base = f"coap://127.0.0.1:{port}"
        intruder = await aiocoap.Context.create_client_context(transports=["udp6"])
        responses: list[asyncio.Future[aiocoap.Message]] = []
        try:
            lifetime = aiocoap.Message(code=Code.PUT, uri=f"{base}/1/0/1", payload=b"1")
            lifetime.opt.content_format = 0
            requests = [
                aiocoap.Message(code=Code.POST, uri=f"{base}/3/0/4"),
                lifetime,
                aiocoap.Message(code=Code.GET, uri=f"{base}/3/0/0", observe=0),
            ]
            responses += [asyncio.ensure_future(intruder.request(r).response) for r in requests]
            done, _ = await asyncio.wait(responses, timeout=UNANSWERED)
            assert done == set(), [f.result() for f in done if not f.exception()]
        finally:
            await intruder.shutdown()
            await asyncio.gather(*responses, return_exceptions=True)
        assert daemon.proc.returncode is None
        read = await server.request(ENDPOINT, Code.GET, "/1/0/1")
        assert (read.code, read.payload) == (Code.CONTENT, b"120")
        reboot = await server.request(ENDPOINT, Code.POST, "/3/0/4")
        assert reboot.code == Code.CHANGED
        assert await daemon.wait() == EXIT_RESTART
        assert "from addresses other than the server's" in daemon.log.read_text()


def intruder(address: tuple[str, int]) -> socket.socket | None:
    """A UDP socket bound to ``address``; None where the host does not have that address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        return None
    sock.setblocking(False)
    return sock


def coap_request(code: Code, path: str, mid: int, payload: bytes = b"") -> bytes:
    message = aiocoap.Message(code=code, uri_path=tuple(path.strip("/").split("/")))
    message.payload = payload
    message.mtype, message.mid, message.token = aiocoap.CON, mid, mid.to_bytes(2, "big")
    if payload:
        message.opt.content_format = 0
    return message.encode()


async def test_requests_from_a_second_address_are_dropped_even_from_the_servers_port(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """From 127.0.0.2, whatever its port (the server's own included), nothing is served: the
    gateway drops the requests (it counts and logs them) and answers none, while its server,
    which is asked afterwards on the same socket, is answered."""
    async with running_daemon(tmp_path, config_text(server.uri, tmp_path)) as daemon:
        await server.next_event("register", timeout=30)
        gateway = ("127.0.0.1", server.clients[ENDPOINT].remote.sockaddr[1])  # type: ignore[attr-defined]
        sockets = [intruder(("127.0.0.2", 0)), intruder(("127.0.0.2", server.port))]
        if None in sockets:
            pytest.skip("127.0.0.2 is not an address of this host's loopback")
        try:
            for n, sock in enumerate(s for s in sockets if s is not None):
                for request in (
                    coap_request(Code.POST, "/3/0/4", 0x100 + n),
                    coap_request(Code.PUT, "/1/0/1", 0x200 + n, b"1"),
                    coap_request(Code.GET, "/3/0/0", 0x300 + n),
                ):
                    sock.sendto(request, gateway)
            # The server's Read goes to the socket after them: once it is answered, the
            # gateway has dealt with them, and any answer of its would have arrived.
            read = await server.request(ENDPOINT, Code.GET, "/1/0/1")
            assert (read.code, read.payload) == (Code.CONTENT, b"120")
            for sock in sockets:
                assert sock is not None
                with pytest.raises(BlockingIOError):
                    data = sock.recv(2048)
                    raise AssertionError(f"the gateway answered an intruder: {data!r}")
        finally:
            for sock in sockets:
                if sock is not None:
                    sock.close()
        assert daemon.proc.returncode is None, "the intruder's Reboot was not executed"
        dropped = [
            line
            for line in daemon.log.read_text().splitlines()
            if "from addresses other than the server's" in line
        ]
        assert dropped and "127.0.0.2:" in dropped[0], dropped
