"""A NoSec (coap://) client socket serves its LwM2M server only.

Without DTLS nothing binds the socket to its server, so the engine does it: requests are served
only from the address and port its own requests go to (Register, Update). These tests run the
real daemon and send, from another port of the same host, the requests that did harm when
anyone could send them: a Reboot, a write of the server's lifetime, an observation. None is
answered, the daemon keeps running, and its server is served as before, Reboot included.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiocoap
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
