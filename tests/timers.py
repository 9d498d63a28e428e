"""What an event loop has armed: the timers of an idle gateway, for the tests that check that
idle means asleep (DESIGN, invariants). No time passes in these checks: they look at the
loop's timer heap once every task waits, so they hold on a loaded machine too."""

from __future__ import annotations

import asyncio


def armed() -> list[asyncio.TimerHandle]:
    """The running loop's timers that will fire (not cancelled), soonest first."""
    loop = asyncio.get_running_loop()
    scheduled: list[asyncio.TimerHandle] = getattr(loop, "_scheduled")  # noqa: B009 (private)
    return sorted((h for h in scheduled if not h.cancelled()), key=lambda h: h.when())


def due_within(seconds: float) -> list[asyncio.TimerHandle]:
    """The armed timers that fire within ``seconds``: at an idle moment, a timer that is due
    this soon is a loop that wakes periodically."""
    now = asyncio.get_running_loop().time()
    return [h for h in armed() if h.when() - now < seconds]


async def settled(turns: int = 20) -> None:
    """Let every ready task run until it waits (the loop's turns, no time)."""
    for _ in range(turns):
        await asyncio.sleep(0)


class Clock:
    """A clock the test moves by hand (``now``), for the code under test that takes a clock."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
