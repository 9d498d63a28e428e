"""Four asyncio patterns every layer needs, written once: ending tasks, waiting between
retries, a wake-up flag that costs nothing while nobody waits, and a deadline that rides on a
wake-up that happens anyway.

**Ending a task** (``cancel_and_wait``): cancel it and wait until it has ended, so that what
it holds (a socket, a D-Bus connection, a serial port) is released before the caller goes on.
Written out by hand, as ``task.cancel()`` then ``await`` it under
``contextlib.suppress(CancelledError)``, it swallows the *caller's* cancellation too: when the
caller is cancelled while it waits (a stop bounded by a timeout, Ctrl-C during shutdown), the
``CancelledError`` meant for it is taken for the task's and dropped, and the caller runs on as if
nothing had asked it to stop. Here the wait is ``asyncio.wait``, which never raises what the
tasks end with: a ``CancelledError`` out of it is always the caller's own, and propagates.

**Waiting between retries** (``Backoff``): a failed BlueZ operation, a GATT connection, an RCP
dongle that will not open, a Send a server did not acknowledge: each retries after a delay that
doubles up to a cap, so a lasting fault costs little and a fault that clears is noticed soon.

**A wake-up flag** (``Flag``): ``asyncio.Event`` as far as ``set``, ``clear``, ``is_set`` and
``wait`` go, but holding no queue of waiters while nobody waits. Python 3.11's Event allocates
a deque of 624 bytes at construction; a LwM2M endpoint had six of them (its registrar's, its
session's, its observations', its client's, the endpoints mode's), 4.5 KB of each of 10,000
endpoints in the endpoints mode, all empty while the endpoint is quiet.

**A deadline that rides on a wake-up** (``Deadline``): the group commit's window and Delivery's
linger each bound how long work waits (to gather more of it into one transaction, one Send),
and each armed a timer of its own, which wakes the process only for that. On a virtual machine
one wake-up of an idle process costs 150 to 220 us of CPU, as much as a report's whole work,
while the process is woken anyway, and often, exactly while there is such work: the radio's
reads bring the readings. So the deadline keeps its bound (it runs at ``window`` after it was
armed at the latest, by its timer) but runs early, at the end of the turn, at a wake-up that
happens anyway (its owner says so with ``arm``, or ``awake`` while armed): at the last one
before the window ends, as far as the gap since the one before foretells (wake-ups that come
at a steady pace, a radio read every 44 ms, a commit every 90 ms, are foretold well). What it
gathered then is most of what the window would have (running at the first wake-up past half
the window instead gave Delivery 45 to 66 % more Sends), and its timer never fires while the
wake-ups come. The wake-up that arms it counts too, against the one before it, told while it
was armed before: a radio read once per 0.25 s brings some 25 readings in one turn, and their
commit goes at that turn's end, not 50 ms later by a timer of its own (the next read is a
window away, and they waited on the line already). Of an ``awake`` after the arm, the rule runs
it only once half the window has passed (the gap is at most the time since the arm).

It is a leaf: it imports nothing of the gateway, so the transports may use it as they use the
contract (``tests/unit/test_transport_imports.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel ``tasks`` (None: nothing to end) and return once each has ended.

    A task that ended with an error other than its cancellation (before it was cancelled, or
    while it cleaned up) raises that error here, the first of them, as awaiting it would; a
    task that ended normally or cancelled is not an error. When the caller is cancelled while
    it waits, the tasks still end first (nothing is left running behind its back, holding what
    it held), then the caller's ``CancelledError`` propagates.
    """
    pending = [task for task in tasks if task is not None]
    if not pending:
        return
    for task in pending:
        task.cancel()
    try:
        await asyncio.wait(pending)
    except asyncio.CancelledError:
        await asyncio.wait(pending)
        _first_error(pending)  # retrieved, not raised: the caller's cancellation goes first
        raise
    error = _first_error(pending)
    if error is not None:
        raise error


def _first_error(tasks: list[asyncio.Future[Any]]) -> BaseException | None:
    """The first error (not a cancellation) the ended ``tasks`` ended with, each retrieved."""
    errors = [e for t in tasks if not t.cancelled() and (e := t.exception()) is not None]
    return errors[0] if errors else None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Attempt ``n`` (from 0) waits ``initial * factor**n`` seconds, capped at ``maximum``.

    The cap keeps a gateway retrying forever at a bounded pace: an adapter or a server that
    comes back after an hour is used again within ``maximum`` seconds, without a restart of the
    daemon.
    """

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        # The exponent is capped so that a long outage cannot overflow the float.
        return min(self.initial * self.factor ** min(max(attempt, 0), 64), self.maximum)


class Flag:
    """A set/clear flag to wait on, like ``asyncio.Event``, whose waiters' list exists only
    while someone waits (see the module docstring). ``set`` wakes every current waiter; a
    waiter that is cancelled leaves the list."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        """Return once the flag is set (at once if it is)."""
        if self._set:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            waiters = self._waiters
            if waiters is not None:  # cancelled before ``set`` took the list
                with contextlib.suppress(ValueError):
                    waiters.remove(waiter)
                if not waiters:
                    self._waiters = None


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What a ``Deadline`` uses of the event loop (``asyncio.AbstractEventLoop`` is one): its
    time and its callbacks; a unit test gives it a clock of its own."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> Cancellable: ...

    def call_soon(self, callback: Callable[[], object]) -> Cancellable: ...


_LOOP_TIME = asyncio.BaseEventLoop.time


def _time_of(clock: Clock) -> Callable[[], float]:
    """``clock.time``, or ``time.monotonic`` itself where that is all it is (asyncio's own
    loops' ``BaseEventLoop.time``, not replaced on the loop): a node registry tells its armed
    deadline of every reading (``awake``), and the loop's method was a Python call more each
    time. Another loop's (uvloop's, a test's clock) is its own."""
    if getattr(type(clock), "time", None) is _LOOP_TIME and "time" not in vars(clock):
        return time.monotonic
    return clock.time


class Deadline:
    """Run ``action`` once per ``arm``: ``window`` seconds after it at the latest, or at the end
    of the turn of the ``arm`` or of an ``awake`` when the next wake-up, as far off as this one
    was from the one before, would come at the window's end or after it (see the module
    docstring). Disarmed, it holds no timer; ``cancel`` disarms it (its owner ran the action
    itself)."""

    __slots__ = ("_action", "_armed_at", "_clock", "_handle", "_last", "_now", "_window", "armed")

    def __init__(
        self,
        action: Callable[[], object],
        window: float,
        *,
        clock: Callable[[], Clock] = asyncio.get_running_loop,
    ) -> None:
        self._action = action
        self._window = window
        self._clock = clock
        self._armed_at: float | None = None
        """When it was armed; None: disarmed, or running early already."""
        self._last: float | None = None
        """The last wake-up it was told of (an ``arm``, an ``awake`` while armed), also of a
        window before; None: none yet, nothing foretells the next."""
        self._handle: Cancellable | None = None
        self._now: Callable[[], float] = time.monotonic
        """The clock's time (``_time_of``), taken at each ``arm`` that starts a window, which
        ``awake`` reads without looking the clock up again."""
        self.armed = False
        """Whether its action waits to run (a timer or a callback is scheduled): an attribute,
        not a property, as a node registry asks at each event of each report."""

    def arm(self) -> None:
        """Something waits for the action: it runs within ``window`` (if armed already, within
        the window that is running), at the end of this turn if the next wake-up would come
        too late."""
        if self._handle is None:
            clock = self._clock()
            self._now = _time_of(clock)
            now = self._armed_at = self._now()
            self.armed = True
            if self._late(now, now):
                self._run_soon(clock)
            else:
                self._handle = clock.call_later(self._window, self._run)

    def awake(self) -> None:
        """The process is awake anyway (new work came): run the action at the end of this
        turn if the next wake-up, as far off as this one from the one before, would come at
        the window's end or after it."""
        armed_at = self._armed_at
        if armed_at is not None and self._handle is not None and self._late(self._now(), armed_at):
            self._handle.cancel()
            self._run_soon(self._clock())

    def _late(self, now: float, armed_at: float) -> bool:
        """Whether the wake-up after ``now`` (one that brings work) is foretold to come at the
        end of the window armed at ``armed_at`` or after it; ``now`` is the last wake-up."""
        last, self._last = self._last, now
        return last is not None and 2 * now - last >= armed_at + self._window

    def _run_soon(self, clock: Clock) -> None:
        self._armed_at = None
        self._handle = clock.call_soon(self._run)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._armed_at = None
            self.armed = False

    def _run(self) -> None:
        self._handle = None
        self._armed_at = None
        self.armed = False
        self._action()
