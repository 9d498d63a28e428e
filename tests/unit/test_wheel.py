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
    keys = {name: wheel.add(delay, bells[name]) for name, delay in delays.items()}
    wheel.cancel(keys["gone"], bells["gone"])
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
    late_key = wheel.add(60.0, late)
    (timer,) = wheel_timers(loop)
    soon_key = wheel.add(30.0, soon)  # earlier: the one timer moves to it
    (timer,) = wheel_timers(loop)
    assert abs(timer.when() - Wheel.tick(soon_key) * RESOLUTION) < 1e-6
    wheel.cancel(soon_key, soon)
    (timer,) = wheel_timers(loop)
    assert abs(timer.when() - Wheel.tick(late_key) * RESOLUTION) < 1e-6
    wheel.cancel(late_key, late)
    assert wheel_timers(loop) == []
    assert len(wheel) == 0
    assert rung == []


class CountedBell(Bell):
    """A bell that counts each time the wheel compares or hashes it: finding it in a list or
    a set costs that."""

    looked_at = 0

    def __eq__(self, other: object) -> bool:
        CountedBell.looked_at += 1
        return self is other

    def __hash__(self) -> int:
        CountedBell.looked_at += 1
        return id(self)


async def test_cancelling_many_alarms_of_one_tick_looks_at_none_of_the_others() -> None:
    """A mass stop (10,000 endpoints, their deadlines in a few hundred ticks) cancels each one
    where it is, without a search of its tick's list: no bell is compared or hashed; none
    rings, and the wheel holds no timer after."""
    loop = asyncio.get_running_loop()
    wheel = Wheel.of(loop)
    rung: list[tuple[str, float]] = []
    bells = [CountedBell(str(i), rung) for i in range(10_000)]
    keys = [wheel.add(60.0, bell) for bell in bells]
    assert len({Wheel.tick(key) for key in keys}) <= 2  # one tick, or two at a tick's edge
    CountedBell.looked_at = 0
    for key, bell in zip(reversed(keys), reversed(bells), strict=True):
        wheel.cancel(key, bell)
    assert CountedBell.looked_at == 0
    assert len(wheel) == 0
    assert wheel_timers(loop) == []
    assert rung == []


async def test_a_key_cancels_its_own_alarm_only() -> None:
    """Cancelling an alarm twice, or with another's key, leaves the others to ring."""
    loop = asyncio.get_running_loop()
    wheel = Wheel.of(loop)
    rung: list[tuple[str, float]] = []
    a, b, c = Bell("a", rung), Bell("b", rung), Bell("c", rung)
    key_a, key_b, _ = (wheel.add(STEP, bell) for bell in (a, b, c))
    wheel.cancel(key_a, a)
    wheel.cancel(key_a, a)
    wheel.cancel(key_b, a)  # not a's key: b stays
    assert len(wheel) == 2
    async with asyncio.timeout(5):
        while len(rung) < 2:
            await asyncio.sleep(STEP)
    assert [name for name, _ in rung] == ["b", "c"]
    wheel.cancel(key_b, b)  # rang already
    assert len(wheel) == 0
