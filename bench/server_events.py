"""A benchmark's server process: the in-repo LwM2M test server's events as they come, until the
orchestrating process closes the server's stdin, which is how it says stop (no signal, so the
server ends its observations and its socket cleanly)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from peers.lwm2m_server import LwM2MTestServer, ServerEvent


async def until_stdin_closes(srv: LwM2MTestServer) -> AsyncIterator[ServerEvent]:
    """Each event of ``srv`` until stdin is closed (events still queued then are not given)."""
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    while not stdin_closed.done():
        get = asyncio.ensure_future(srv.events.get())
        await asyncio.wait([get, stdin_closed], return_when=asyncio.FIRST_COMPLETED)
        if not get.done():
            get.cancel()
            return
        yield get.result()
