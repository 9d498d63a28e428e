"""The daemon's events as ``bridgectl events`` streams them, read from its control socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path


@contextlib.asynccontextmanager
async def control_events(
    socket: Path, *kinds: str
) -> AsyncIterator[asyncio.Queue[dict[str, object]]]:
    """The events of ``kinds`` on the control socket at ``socket``, as they come, each its
    data with its kind as ``event``."""
    reader, writer = await asyncio.open_unix_connection(str(socket))
    line = {"id": 1, "method": "subscribe", "params": {"events": list(kinds)}}
    writer.write(json.dumps(line).encode() + b"\n")
    async with asyncio.timeout(30):
        assert "result" in json.loads(await reader.readline())
    queue: asyncio.Queue[dict[str, object]] = asyncio.Queue()

    async def forward() -> None:
        while line := await reader.readline():
            message = json.loads(line)
            queue.put_nowait({"event": message["event"], **message["data"]})

    task = asyncio.create_task(forward())
    try:
        yield queue
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        writer.close()
