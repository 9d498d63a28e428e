"""The asyncio helpers every layer shares (bridged/aio.py): ending tasks, waiting between
retries, a wake-up flag, a deadline that rides on wake-ups."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.aio import Backoff, Deadline, Flag, cancel_and_wait


def slow_to_end(released: asyncio.Event, ended: list[str]) -> asyncio.Task[None]:
    """A task that, once cancelled, takes until ``released`` to clean up (a De-register, a
    port closing)."""

    async def run() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await released.wait()
            ended.append("cleaned up")

    return asyncio.create_task(run())


async def started(task: asyncio.Task[None]) -> None:
    """Let ``task`` reach its first await."""
    while not task.get_coro().cr_await:  # type: ignore[union-attr]
        await asyncio.sleep(0)


async def test_the_tasks_have_ended_when_it_returns() -> None:
    released, ended = asyncio.Event(), []
    task = slow_to_end(released, ended)
    await started(task)
    stopping = asyncio.create_task(cancel_and_wait(task, None))
    await started(stopping)
    assert not stopping.done()  # waiting for the task's clean-up
    released.set()
    await stopping
    assert task.cancelled() and ended == ["cleaned up"]


async def test_nothing_to_end_is_not_an_error() -> None:
    await cancel_and_wait()
    await cancel_and_wait(None)
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    await cancel_and_wait(done)  # ended normally before: nothing to raise


async def test_a_task_that_failed_raises_its_error_as_awaiting_it_would() -> None:
    async def fail() -> None:
        raise OSError("the port is gone")

    failed = asyncio.create_task(fail())
    other = asyncio.create_task(asyncio.Event().wait())
    await asyncio.wait([failed])
    with pytest.raises(OSError, match="the port is gone"):
        await cancel_and_wait(failed, other)
    assert other.cancelled()


async def test_cancelling_the_caller_propagates_once_the_tasks_have_ended() -> None:
    """The hand-written idiom (``suppress(CancelledError)`` around ``await task``) took the
    caller's cancellation for the task's and dropped it: a stop bounded by a timeout ran on."""
    released, ended = asyncio.Event(), []
    task = slow_to_end(released, ended)
    await started(task)
    stopping = asyncio.create_task(cancel_and_wait(task))
    await started(stopping)
    stopping.cancel()
    await asyncio.sleep(0)
    assert not stopping.done()  # the task's clean-up is not cut short, nor left behind
    released.set()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert stopping.cancelled() and ended == ["cleaned up"]


async def test_a_timeout_around_it_fires() -> None:
    released, ended = asyncio.Event(), []
    task = slow_to_end(released, ended)
    await started(task)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0):
            asyncio.get_running_loop().call_soon(released.set)
            await cancel_and_wait(task)
    assert ended == ["cleaned up"]


async def test_clean_up_after_the_caller_was_cancelled_still_waits_and_returns() -> None:
    """A ``finally`` that stops things after the caller's own cancellation (which leaves the
    caller's ``cancelling()`` count up) is not taken for a new cancellation."""
    released, ended = asyncio.Event(), []
    task = slow_to_end(released, ended)
    await started(task)

    async def caller() -> str:
        try:
            await asyncio.Event().wait()
        finally:
            asyncio.get_running_loop().call_soon(released.set)
            await cancel_and_wait(task)
            ended.append("stopped")
        return "unreachable"

    running = asyncio.create_task(caller())
    await started(running)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert ended == ["cleaned up", "stopped"]


def test_backoff_doubles_up_to_its_cap() -> None:
    b = Backoff(1.0, 60.0)
    assert [b.delay(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]


@given(st.integers(-5, 10**6))
def test_backoff_is_bounded(attempt: int) -> None:
    b = Backoff(0.5, 30.0, 3.0)
    assert 0.5 <= b.delay(attempt) <= 30.0


async def test_a_flag_wakes_every_waiter_and_holds_no_list_once_nobody_waits() -> None:
    flag = Flag()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert flag.is_set() and flag._waiters is None
    await asyncio.wait_for(flag.wait(), 5)  # set: at once
    flag.clear()
    assert not flag.is_set()


async def test_a_cancelled_waiter_leaves_the_flag_and_the_others_still_wake() -> None:
    flag = Flag()
    gone = asyncio.create_task(flag.wait())
    staying = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    await cancel_and_wait(gone)
    assert flag._waiters is not None and len(flag._waiters) == 1
    flag.set()
    await asyncio.wait_for(staying, 5)
    assert flag._waiters is None


class ManualClock:
    """A sans-I/O event loop for ``Deadline``: its time moves only by ``advance``, which runs
    the timers that come due and then what was called soon; ``timers`` are the ones armed."""

    class Handle:
        def __init__(self, at: float, callback: Callable[[], object]) -> None:
            self.at, self.callback, self.cancelled = at, callback, False

        def cancel(self) -> None:
            self.cancelled = True

    def __init__(self) -> None:
        self.now = 0.0
        self.handles: list[ManualClock.Handle] = []

    @property
    def timers(self) -> list[float]:
        return [h.at for h in self.handles if not h.cancelled and h.at > self.now]

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], object]) -> ManualClock.Handle:
        handle = self.Handle(self.now + delay, callback)
        self.handles.append(handle)
        return handle

    def call_soon(self, callback: Callable[[], object]) -> ManualClock.Handle:
        return self.call_later(0.0, callback)

    def advance(self, seconds: float = 0.0) -> None:
        """Move the time on by ``seconds``, then end the turn: run every callback due."""
        self.now += seconds
        while due := [h for h in self.handles if not h.cancelled and h.at <= self.now]:
            for handle in due:
                self.handles.remove(handle)
                handle.callback()


def deadline(window: float = 1.0) -> tuple[Deadline, ManualClock, list[float]]:
    clock, ran = ManualClock(), []
    return Deadline(lambda: ran.append(clock.now), window, clock=lambda: clock), clock, ran


def test_a_deadline_nobody_wakes_early_runs_at_its_window_end_once() -> None:
    due, clock, ran = deadline()
    due.arm()
    clock.advance(0.3)
    due.arm()  # armed already: the window that runs holds
    clock.advance(0.69)
    assert ran == [] and due.armed
    clock.advance(0.01)
    assert ran == [1.0] and not due.armed and clock.timers == []


def test_a_late_wake_up_runs_it_at_the_end_of_that_turn_and_drops_its_timer() -> None:
    due, clock, ran = deadline()
    due.arm()
    clock.advance(0.6)
    due.awake()
    due.awake()  # once
    assert ran == [] and clock.timers == []  # not in the middle of the turn; no timer left
    clock.advance()
    assert ran == [0.6] and not due.armed
    clock.advance(5.0)
    assert ran == [0.6]


def test_of_wake_ups_at_a_steady_pace_the_last_one_before_the_end_runs_it() -> None:
    due, clock, ran = deadline()
    due.arm()
    for _ in range(6):  # 0.125 to 0.75: the next one is due before the window ends
        clock.advance(0.125)
        due.awake()
    clock.advance()
    assert ran == [] and clock.timers == [1.0]
    clock.advance(0.125)
    due.awake()  # 0.875: the next one would come at the end
    clock.advance()
    assert ran == [0.875] and clock.timers == []


def test_a_wake_up_before_half_the_window_changes_nothing() -> None:
    due, clock, ran = deadline()
    due.arm()
    clock.advance(0.49)
    due.awake()
    clock.advance()
    assert ran == [] and clock.timers == [1.0]
    clock.advance(0.51)
    assert ran == [1.0]


def test_idle_a_deadline_holds_no_timer_and_a_wake_up_arms_nothing() -> None:
    due, clock, ran = deadline()
    due.awake()
    clock.advance(10.0)
    assert ran == [] and clock.handles == [] and not due.armed
    due.arm()
    due.cancel()
    clock.advance(10.0)
    assert ran == [] and clock.timers == [] and not due.armed


def test_the_action_may_arm_it_again_for_a_window_of_its_own() -> None:
    clock, ran = ManualClock(), []

    def action() -> None:
        ran.append(clock.now)
        if len(ran) == 1:
            due.arm()  # what came meanwhile waits for the next one

    due = Deadline(action, 1.0, clock=lambda: clock)
    due.arm()
    clock.advance(0.7)
    due.awake()
    clock.advance()
    assert ran == [0.7] and clock.timers == [1.7]
    clock.advance(1.0)
    assert ran == [0.7, 1.7]


def report(due: Deadline) -> None:
    """What the group commit does with a report: arm the deadline, or tell it, armed, that the
    process is awake."""
    if due.armed:
        due.awake()
    else:
        due.arm()


def test_a_batch_that_comes_a_window_after_the_wake_up_before_runs_it_at_the_end_of_its_turn() -> (
    None
):
    """A radio read once per 2.5 windows brings a batch in one turn (issue 17): the next read
    is foretold after the window's end, so the arm runs it at the end of that turn, with no
    timer; nothing foretells the first batch's next wake-up, which keeps the window."""
    due, clock, ran = deadline()
    for _ in range(25):
        report(due)
    clock.advance()
    assert ran == [] and clock.timers == [1.0]
    clock.advance(1.0)
    assert ran == [1.0]
    for read in (2.5, 5.0):
        clock.advance(read - clock.now)
        for _ in range(25):
            report(due)
        assert ran[-1] < read and clock.timers == []  # at the end of the turn, no timer
        clock.advance()
        assert ran[-1] == read and not due.armed
    assert ran == [1.0, 2.5, 5.0]


def test_of_one_report_per_turn_at_a_steady_pace_an_arm_keeps_the_window() -> None:
    """Reports an eighth of the window apart, one per turn (the in-process feeder at 100 a
    second): each window gathers its eight, run by the last of them, never one per report."""
    due, clock, ran = deadline()
    for _ in range(32):
        report(due)
        clock.advance()
        clock.advance(0.125)
    assert ran == [0.875, 1.875, 2.875, 3.875] and clock.timers == []


async def test_a_deadline_on_asyncios_loop_reads_the_loops_clock_also_when_it_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On asyncio's own loop a deadline reads ``time.monotonic`` itself (the loop's ``time``
    is only that, and a Python call more per reading); a loop whose clock is replaced (a
    test's) is still followed: a wake-up a whole window after the last one runs it early."""
    loop = asyncio.get_running_loop()
    now = [loop.time()]
    monkeypatch.setattr(loop, "time", lambda: now[0])
    ran: list[float] = []
    due = Deadline(lambda: ran.append(now[0]), 10.0)
    due.arm()
    now[0] += 6.0  # the next wake-up, as far off again, comes after the window's end
    due.awake()
    await asyncio.sleep(0)
    assert ran == [now[0]] and not due.armed
