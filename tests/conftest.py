"""What every test shares: it leaves nothing running behind it, and it cannot run forever.

A task still pending when its event loop closes, or a thread still alive after the test's
teardown, is work the test or the code under test started and never stopped: a client not
closed, a fixture that cancels a task without awaiting it, a stop() that forgets a task. It
goes on into later tests (sending from their ports, holding their files), hides the defect
of a daemon that does not stop cleanly, and a non-daemon thread hangs the interpreter's
exit. pytest-asyncio's runner would cancel such tasks without a word: the guard here fails
the test instead, naming each task with where it waits, and each thread.

The per-test timeout is pytest-timeout's, set in pyproject.toml ([tool.pytest.ini_options]
timeout) and raised per test with ``@pytest.mark.timeout(seconds)``; its signal method
fails the one test and lets the session go on.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator

import pytest

_THREADS_BEFORE = pytest.StashKey[frozenset[threading.Thread]]()


class LingeringTasks(Exception):
    """Tasks still pending when the event loop they run on closes."""


class LingeringThreads(Exception):
    """Threads still alive after the teardown of the test that started them."""


def describe_task(task: asyncio.Task[object]) -> str:
    """The task's name, its coroutine and the line it waits at: enough to find who made it."""
    coro = task.get_coro()
    what = getattr(coro, "__qualname__", repr(coro))
    frames = task.get_stack(limit=1)
    where = f" at {frames[0].f_code.co_filename}:{frames[0].f_lineno}" if frames else ""
    return f"{task.get_name()} ({what}{where})"


def _no_pending_tasks(loop: asyncio.AbstractEventLoop) -> None:
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if pending:
        names = "; ".join(sorted(describe_task(task) for task in pending))
        raise LingeringTasks(f"{len(pending)} task(s) still pending as the loop closes: {names}")


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    """Every event loop pytest-asyncio runs is an ``asyncio.Runner`` fixture (of the test's
    loop scope). The check is added to that fixture's finalizers after its own teardown, so it
    runs before the runner closes the loop and after every async fixture of that loop is torn
    down (pytest-asyncio makes each one's teardown a later finalizer of the runner)."""
    value = yield
    if isinstance(value, asyncio.Runner):
        loop = value.get_loop()
        fixturedef.addfinalizer(lambda: _no_pending_tasks(loop))
    return value


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    item.stash[_THREADS_BEFORE] = frozenset(threading.enumerate())
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, None]:
    """Checked after the whole teardown, the function-scoped event loop included: closing it
    joins the workers of its default executor (``asyncio.to_thread``, ``getaddrinfo``)."""
    result = yield
    before = item.stash.get(_THREADS_BEFORE, frozenset())
    lingering = [
        thread
        for thread in threading.enumerate()
        if thread not in before and not thread.daemon and thread.is_alive()
    ]
    if lingering:
        names = ", ".join(sorted(thread.name for thread in lingering))
        raise LingeringThreads(f"non-daemon thread(s) still running after teardown: {names}")
    return result
