"""Stopping peer processes the same way everywhere."""

from __future__ import annotations

import asyncio


async def wait_or_kill(process: asyncio.subprocess.Process, timeout: float = 5.0) -> None:
    """Wait for a peer that was asked to stop; kill it if it has not exited within ``timeout``,
    so a hung peer never hangs the suite."""
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
