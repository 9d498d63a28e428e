"""The timer wheel of the registrations' quiet waits (``bridged.engine.wheel``): each alarm
rings once its deadline has come, never before, in the order of the deadlines; a cancelled one
never rings; and with nothing waiting the loop holds no timer of the wheel's (idle means
asleep)."""

from __future__ import annotations

import asyncio

from timers import armed

from bridged.engine.wheel import RESOLUTION, Wheel

STEP = 2 * RESOLUTION
"""Apart by more than a tick: alarms of one tick ring in the order they were added."""


class Bell:
    def __init__(self, name: str, rung: list[tuple[str, float]]) -> None:
        self.name = name
        self.rung = rung

    def ring(self) -> None:
        self.rung.append((self.name, asyncio.get_running_loop().time()))


def wheel_timers(loop: asyncio.AbstractEventLoop) -> list[asyncio.TimerHandle]:
    """The loop's live timers that run the wheel."""
    wheel = Wheel.of(loop)
    return [h for h in armed() if getattr(h._callback, "__self__", None) is wheel]  # type: ignore[attr-defined]


async def test_alarms_ring_in_deadline_order_never_early_and_cancelled_ones_never() -> None:
    loop = asyncio.get_running_loop()
    wheel = Wheel.of(loop)
    rung: list[tuple[str, float]] = []
    start = loop.time()
    delays = {"c": 3 * STEP, "a": STEP, "b": 2 * STEP, "gone": STEP}
    bells = {name: Bell(name, rung) for name in delays}
    ticks = {name: wheel.add(delay, bells[name]) for name, delay in delays.items()}
    wheel.cancel(ticks["gone"], bells["gone"])
    async with asyncio.timeout(5):
        while len(rung) < 3:
            await asyncio.sleep(STEP)
    assert [name for name, _ in rung] == ["a", "b", "c"]
    for name, at in rung:
        assert at >= start + delays[name] - loop._clock_resolution  # type: ignore[attr-defined]
    assert len(wheel) == 0
    assert wheel_timers(loop) == []


async def test_one_timer_at_the_earliest_deadline_and_none_once_all_are_cancelled() -> None:
    loop = asyncio.get_running_loop()
    wheel = Wheel.of(loop)
    rung: list[tuple[str, float]] = []
    late, soon = Bell("late", rung), Bell("soon", rung)
    late_tick = wheel.add(60.0, late)
    (timer,) = wheel_timers(loop)
    soon_tick = wheel.add(30.0, soon)  # earlier: the one timer moves to it
    (timer,) = wheel_timers(loop)
    assert abs(timer.when() - soon_tick * RESOLUTION) < 1e-6
    wheel.cancel(soon_tick, soon)
    (timer,) = wheel_timers(loop)
    assert abs(timer.when() - late_tick * RESOLUTION) < 1e-6
    wheel.cancel(late_tick, late)
    assert wheel_timers(loop) == []
    assert len(wheel) == 0
    assert rung == []
