"""aiocoap's resource directory (``aiocoap-rd``) as a test peer.

An RFC 9176 resource directory accepts the same Register/Update/De-register messages as a LwM2M
server (with ``--lwm2m-compat`` at ``/rd``) but knows nothing of LwM2M, and it answers with its
own choices: Location-Path ``/reg/1/`` (three segments, the last one empty), lifetimes it keeps
itself, lookups that show what it stored. It therefore checks the engine's registration
interface against a stricter generic reader and catches assumptions such as "the location is
always /rd/<id>".

It is started as a subprocess, as the installed command, on 127.0.0.1. aiocoap-rd cannot report
the port it bound, so a free port is chosen first and the start is retried on another port if the
process exits (someone took the port in between). Readiness is a GET of /.well-known/core: while
nothing listens, the request fails at once with ICMP "connection refused", and between attempts
the harness waits on the process itself (so an early exit is seen immediately), never a bare sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import aiocoap
from aiocoap.error import NetworkError

from peers.processes import wait_or_kill

HOST = "127.0.0.1"
START_ATTEMPTS = 3
PROBE_INTERVAL = 0.02

_LINK = re.compile(r'<(?P<target>[^>]*)>(?P<params>(?:;[^,;"=]+(?:=(?:"[^"]*"|[^,;]*))?)*)')
_PARAM = re.compile(r';(?P<name>[^,;"=]+)(?:=(?:"(?P<quoted>[^"]*)"|(?P<plain>[^,;]*)))?')


class RDUnavailable(RuntimeError):
    """aiocoap-rd is missing or did not start; the message says why."""


@dataclass(frozen=True)
class Link:
    """One CoRE link of a lookup answer: its target and attributes (valueless ones map to "")."""

    target: str
    attributes: dict[str, str]


def parse_links(text: str) -> list[Link]:
    """Parse the link-format lookups of aiocoap-rd (no commas or quotes inside targets)."""
    links = []
    for match in _LINK.finditer(text):
        attributes = {
            param.group("name"): param.group("quoted")
            if param.group("quoted") is not None
            else (param.group("plain") or "")
            for param in _PARAM.finditer(match.group("params"))
        }
        links.append(Link(match.group("target"), attributes))
    return links


def find_aiocoap_rd() -> str:
    """The aiocoap-rd next to this interpreter (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("aiocoap-rd")
    if beside.is_file():
        return str(beside)
    found = shutil.which("aiocoap-rd")
    if found is None:
        raise RDUnavailable(
            "aiocoap-rd is not installed; it comes with aiocoap: pip install aiocoap"
        )
    return found


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class AiocoapRD:
    """A running aiocoap-rd; use :meth:`running` to get one."""

    def __init__(
        self, process: asyncio.subprocess.Process, port: int, context: aiocoap.Context
    ) -> None:
        self._process = process
        #: The UDP port the directory listens on (on 127.0.0.1).
        self.port = port
        self._context = context

    @property
    def uri(self) -> str:
        """The server URI a LwM2M client is configured with (registrations go to /rd)."""
        return f"coap://{HOST}:{self.port}"

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, *, lwm2m_compat: bool = True, ready_timeout: float = 15.0
    ) -> AsyncIterator[AiocoapRD]:
        """Start aiocoap-rd on a free port, wait until it answers, stop it on exit."""
        executable = find_aiocoap_rd()
        context = await aiocoap.Context.create_client_context()
        try:
            rd = await cls._start(executable, lwm2m_compat, ready_timeout, context)
            try:
                yield rd
            finally:
                await rd._stop()
        finally:
            await context.shutdown()

    @classmethod
    async def _start(
        cls, executable: str, lwm2m_compat: bool, ready_timeout: float, context: aiocoap.Context
    ) -> AiocoapRD:
        failures = []
        for _ in range(START_ATTEMPTS):
            port = _free_udp_port()
            process = await asyncio.create_subprocess_exec(
                executable,
                "--bind",
                f"{HOST}:{port}",
                "--lwm2m-compat" if lwm2m_compat else "--no-lwm2m-compat",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            rd = cls(process, port, context)
            try:
                if await asyncio.wait_for(rd._until_ready(), ready_timeout):
                    return rd
            except TimeoutError:
                await rd._stop()
                raise RDUnavailable(f"aiocoap-rd did not answer within {ready_timeout} s") from None
            assert process.stderr is not None
            failures.append((await process.stderr.read()).decode(errors="replace"))
        raise RDUnavailable("aiocoap-rd exited at start:\n" + "\n".join(failures))

    async def _until_ready(self) -> bool:
        """True once /.well-known/core answers; False if the process exits first."""
        probe = f"{self.uri}/.well-known/core"
        while True:
            try:
                await self._context.request(aiocoap.Message(code=aiocoap.GET, uri=probe)).response
                return True
            except NetworkError:
                pass  # not bound yet: the ICMP error arrived at once
            try:
                await asyncio.wait_for(self._process.wait(), PROBE_INTERVAL)
                return False
            except TimeoutError:
                continue

    async def _stop(self) -> None:
        if self._process.returncode is None:
            # aiocoap's daemons shut down cleanly on SIGINT (KeyboardInterrupt), not on SIGTERM.
            self._process.send_signal(signal.SIGINT)
            await wait_or_kill(self._process)

    async def _lookup(self, path: str, query: dict[str, str]) -> list[Link]:
        request = aiocoap.Message(code=aiocoap.GET, uri=f"{self.uri}/{path}")
        request.opt.uri_query = tuple(f"{key}={value}" for key, value in query.items())
        response = await asyncio.wait_for(self._context.request(request).response, 10.0)
        if not response.code.is_successful():
            raise RDUnavailable(f"{path} answered {response.code}: {response.payload!r}")
        return parse_links(response.payload.decode())

    async def endpoints(self, **query: str) -> list[Link]:
        """Endpoint lookup: one link per registration, attributes ep, base, lwm2m, b, ...

        ``query`` filters as RFC 9176 lookups do, e.g. ``endpoints(ep="node-1")``.
        """
        return await self._lookup("endpoint-lookup/", query)

    async def resources(self, **query: str) -> list[Link]:
        """Resource lookup: the registered links, made absolute with each endpoint's base."""
        return await self._lookup("resource-lookup/", query)


#: What the ``aiocoap_rd`` fixture hands out: :meth:`AiocoapRD.running`.
RDFactory = Callable[..., AbstractAsyncContextManager[AiocoapRD]]
