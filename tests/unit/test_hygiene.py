"""The suite's own guards (tests/conftest.py), run on small test files in a pytest of their own:
a test that leaves a task or a thread running fails naming it, one that cleans up passes, and a
hung test is stopped by the timeout while the session goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).parent.parent / "conftest.py"


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester directory with the suite's conftest and its asyncio configuration."""
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makeini(
        """
        [pytest]
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = function
        """
    )
    return pytester


def test_a_task_left_pending_fails_the_test_naming_it(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import asyncio

        async def forever():
            await asyncio.Event().wait()

        async def test_leaks():
            asyncio.get_running_loop().create_task(forever(), name="leaked-task")
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*LingeringTasks*leaked-task (test_a_task*.forever at *test_a_task*.py:4)*"]
    )


def test_a_fixture_that_cancels_without_awaiting_fails(suite: pytest.Pytester) -> None:
    """The task is cancelled but what it does on the way out (close a transport, say) is not
    waited for: it is still running when the loop closes."""
    suite.makepyfile(
        """
        import asyncio
        import pytest

        async def serve():
            try:
                await asyncio.Event().wait()
            finally:
                await asyncio.sleep(0.5)

        @pytest.fixture
        async def worker():
            task = asyncio.create_task(serve(), name="worker")
            yield task
            task.cancel()

        async def test_uses(worker):
            await asyncio.sleep(0)
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*LingeringTasks: 1 task(s) still pending*worker (*.serve at*"])


def test_a_task_left_by_a_module_scoped_loop_fails_at_the_module_end(
    suite: pytest.Pytester,
) -> None:
    """The loop's executor thread lives on with the loop into the next test: that is no leak."""
    suite.makepyfile(
        """
        import asyncio
        import pytest
        import pytest_asyncio

        pytestmark = pytest.mark.asyncio(loop_scope="module")

        @pytest_asyncio.fixture(scope="module", loop_scope="module")
        async def service():
            yield asyncio.create_task(asyncio.Event().wait(), name="module-service")

        async def test_one(service):
            await asyncio.to_thread(lambda: None)

        async def test_two(service):
            pass
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_two*", "*module-service*"])


def test_a_task_left_inside_asyncio_run_fails_the_test(suite: pytest.Pytester) -> None:
    """A sync test (or code it runs in-process) with its own loop is held to the same rule."""
    suite.makepyfile(
        """
        import asyncio

        async def main():
            asyncio.get_running_loop().create_task(asyncio.Event().wait(), name="left")

        def test_runs_its_own_loop():
            asyncio.run(main())
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*LingeringTasks: 1 task(s) still pending*left (*"])


def test_a_non_daemon_thread_left_running_fails_naming_it(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import threading

        stop = threading.Event()

        def test_leaks():
            threading.Thread(target=stop.wait, name="leaked-thread").start()

        def test_after():
            stop.set()
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*LingeringThreads*leaked-thread*"])


def test_what_is_awaited_and_joined_passes(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import asyncio
        import contextlib
        import threading
        import pytest

        @pytest.fixture
        async def worker():
            task = asyncio.create_task(asyncio.Event().wait())
            yield task
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        async def test_task(worker):
            await asyncio.to_thread(lambda: None)

        def test_thread():
            thread = threading.Thread(target=lambda: None)
            thread.start()
            thread.join()
        """
    )
    suite.runpytest_subprocess().assert_outcomes(passed=2)


def test_a_hung_test_is_stopped_and_the_session_goes_on(suite: pytest.Pytester) -> None:
    """The timeout interrupts the loop, not the test's coroutine: that is left pending, and the
    guard names it with the line it hung at."""
    suite.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.mark.timeout(1)
        async def test_hangs():
            await asyncio.Event().wait()

        def test_next():
            pass
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*LingeringTasks*(*.test_hangs at *.py:6)*", "*Timeout (>1.0s)*"])


def test_a_hung_teardown_is_stopped_naming_what_it_waits_for(suite: pytest.Pytester) -> None:
    """What test_154_transport.py's gateway fixture once bounded by hand: a stop() that waits
    forever on a task that swallowed its cancel. The loop's closing cancels it again."""
    suite.makepyfile(
        """
        import asyncio
        import pytest

        async def sender():
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                pass  # taken for a transmit outcome: this cancel is lost
            await asyncio.Event().wait()

        @pytest.fixture
        async def transport():
            task = asyncio.create_task(sender(), name="sender")
            yield
            task.cancel()
            await task

        @pytest.mark.timeout(1)
        async def test_uses(transport):
            pass
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*Timeout (>1.0s)*"])
    result.stdout.fnmatch_lines(["*LingeringTasks*sender (*.sender at *.py:9)*"])


def test_the_suite_has_a_default_timeout(pytestconfig: pytest.Config) -> None:
    assert float(pytestconfig.getini("timeout")) > 0
