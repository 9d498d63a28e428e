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
import re
import threading
from collections.abc import Generator

import pytest

_THREADS_BEFORE = pytest.StashKey[frozenset[threading.Thread]]()

ALLOWED_TASKS = {
    "bleak.backends.bluezdbus.manager.BlueZManager._monitor_bus_disconnect": (
        "bleak keeps one BlueZ manager per event loop for the loop's whole life "
        "(get_global_bluez_manager), with this task watching its D-Bus connection, and has no "
        "call that closes it"
    ),
}
"""What a library legitimately keeps running until its loop closes: the coroutine's module and
qualified name, with the reason."""

ALLOWED_THREADS = {
    re.compile(r"asyncio_\d+"): (
        "the workers of an event loop's default executor (to_thread, getaddrinfo) live as long "
        "as the loop: closing it joins them, which for a module-scoped loop is after its last "
        "test"
    ),
}
"""What a library legitimately keeps running after a test: the thread name, with the reason."""


class LingeringTasks(Exception):
    """Tasks still pending when the event loop they run on closes."""


class LingeringThreads(Exception):
    """Threads still alive after the teardown of the test that started them."""


def coroutine_name(task: asyncio.Task[object]) -> str:
    """The task's coroutine as ``module.qualname``: who made the task, whatever its name."""
    coro = task.get_coro()
    frame = getattr(coro, "cr_frame", None)
    module = frame.f_globals.get("__name__", "?") if frame is not None else "?"
    return f"{module}.{getattr(coro, '__qualname__', repr(coro))}"


def describe_task(task: asyncio.Task[object]) -> str:
    """The task's name, its coroutine and the line it waits at: enough to find who made it."""
    frames = task.get_stack(limit=1)
    where = f" at {frames[0].f_code.co_filename}:{frames[0].f_lineno}" if frames else ""
    return f"{task.get_name()} ({coroutine_name(task)}{where})"


def lingering_tasks(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[object]]:
    return [
        task
        for task in asyncio.all_tasks(loop)
        if not task.done() and coroutine_name(task) not in ALLOWED_TASKS
    ]


_runner_close = asyncio.Runner.close


def _close_checked(runner: asyncio.Runner) -> None:
    """``asyncio.Runner.close`` that first fails on the tasks still pending, where the original
    would cancel them without a word. Every event loop of the suite is a Runner's: the ones
    pytest-asyncio gives tests and fixtures (closed after every async fixture of the loop is
    torn down: pytest-asyncio makes each teardown a finalizer of the runner) and
    ``asyncio.run``'s, in tests and in code they run in-process."""
    try:
        loop = runner.get_loop()
    except RuntimeError:  # already closed
        return _runner_close(runner)
    try:
        pending = lingering_tasks(loop)
        if pending:
            names = "; ".join(sorted(describe_task(task) for task in pending))
            raise LingeringTasks(
                f"{len(pending)} task(s) still pending as the loop closes: {names}"
            )
    finally:
        _runner_close(runner)


def pytest_configure(config: pytest.Config) -> None:
    asyncio.Runner.close = _close_checked  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    asyncio.Runner.close = _runner_close  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    item.stash[_THREADS_BEFORE] = frozenset(threading.enumerate())
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, None]:
    """Checked after the whole teardown, the test's event loop closed (and its executor joined)
    unless it serves a wider scope."""
    result = yield
    before = item.stash.get(_THREADS_BEFORE, frozenset())
    lingering = [
        thread
        for thread in threading.enumerate()
        if thread not in before
        and not thread.daemon
        and thread.is_alive()
        and not any(allowed.fullmatch(thread.name) for allowed in ALLOWED_THREADS)
    ]
    if lingering:
        names = ", ".join(sorted(thread.name for thread in lingering))
        raise LingeringThreads(f"non-daemon thread(s) still running after teardown: {names}")
    return result
