"""The asyncio helpers every layer shares (bridged/aio.py): ending tasks, waiting between
retries."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.aio import Backoff, Flag, cancel_and_wait


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
