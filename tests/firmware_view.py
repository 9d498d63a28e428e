"""A LwM2M server's view of one node's /5 Firmware Update, through the in-repo server: its
reads and writes, and the State and Update Result it was notified of (``watching``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiocoap.numbers.codes import Code
from emulators.world import Daemon

from bridged.objects.formats import ContentFormat
from peers.lwm2m_server import LwM2MTestServer, decode_senml_cbor

TIMEOUT = 30.0
IDLE, DOWNLOADING, DOWNLOADED, UPDATING = 0, 1, 2, 3
SUCCESS = 1
OPAQUE = ContentFormat.OPAQUE
TEXT = ContentFormat.TEXT
FULL_WALK = [(IDLE, 0), (DOWNLOADING, 0), (DOWNLOADED, 0), (UPDATING, 0), (IDLE, SUCCESS)]
"""What a server observes of a successful update: object 5's state machine."""


@dataclass
class FirmwareView:
    server: LwM2MTestServer
    endpoint: str
    prefix: str
    """``/devN`` in the gateway mode, empty on a node's own endpoint."""
    states: list[tuple[int, int]] = field(default_factory=list)
    """(State, Update Result) pairs the server was notified of, in order."""

    @classmethod
    async def of_node(
        cls, server: LwM2MTestServer, daemon: Daemon, gateway: str, node: str, mode: str
    ) -> FirmwareView:
        """The view of ``node``'s /5 through the gateway (endpoint ``gateway``) in the
        exposure ``mode``, once the daemon shows it and its endpoint is registered."""
        state = await daemon.upstream(node, "/5/0/3")
        endpoint = gateway if mode == "gateway" else f"{gateway}:{node}"
        async with asyncio.timeout(TIMEOUT):
            while endpoint not in server.clients:
                await asyncio.sleep(0.05)
        return cls(server, endpoint, state.removesuffix("/5/0/3"))

    def path(self, rid: int | None = None) -> str:
        return f"{self.prefix}/5/0" + ("" if rid is None else f"/{rid}")

    async def read(self, rid: int) -> bytes:
        reply = await self.server.request(self.endpoint, Code.GET, self.path(rid))
        assert reply.code == Code.CONTENT, (rid, reply.code, reply.payload)
        return reply.payload

    async def write(self, rid: int, payload: bytes, content_format: int) -> Code:
        reply = await self.server.request(
            self.endpoint,
            Code.PUT,
            self.path(rid),
            payload,
            content_format=content_format,
            timeout=TIMEOUT,
        )
        return reply.code

    async def execute(self) -> Code:
        reply = await self.server.request(self.endpoint, Code.POST, self.path(2))
        return reply.code

    async def until(self, state: int, result: int, timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            while self.states[-1:] != [(state, result)]:
                await asyncio.sleep(0.02)

    async def ended(self, timeout: float = TIMEOUT) -> int:
        """The Update Result the update ends with (Idle with a result other than 0): a
        failure shows at once, not as a wait for Success that times out."""
        async with asyncio.timeout(timeout):
            while not self.states or self.states[-1][0] != IDLE or self.states[-1][1] == 0:
                await asyncio.sleep(0.02)
        return self.states[-1][1]

    def went(self, wanted: list[tuple[int, int]]) -> bool:
        """Whether ``wanted`` were observed in this order (others may come between)."""
        it = iter(self.states)
        return all(step in it for step in wanted)

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[FirmwareView]:
        """Observe /5/0 (pmin 0) while in the ``with``."""
        attrs = await self.server.request(self.endpoint, Code.PUT, self.path(), query=["pmin=0"])
        assert attrs.code == Code.CHANGED
        request = self.server.observe(self.endpoint, self.path(), accept=ContentFormat.SENML_CBOR)
        first = await asyncio.wait_for(request.response, TIMEOUT)
        self.states.append(state_of(first.payload))

        async def follow() -> None:
            async for note in request.observation:
                self.states.append(state_of(note.payload))

        follower = asyncio.create_task(follow())
        try:
            yield self
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await follower


def state_of(payload: bytes) -> tuple[int, int]:
    """/5/0/3 and /5/0/5 of a notification of /5/0 (not a /5/0/8/3 instance: names whole)."""
    values = {r.name.split("/5/0/", 1)[-1]: r.value for r in decode_senml_cbor(payload)}
    return int(values["3"]), int(values["5"])
