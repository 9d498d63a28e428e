"""Where a paced run's CPU goes, turn by turn of the event loop: each turn's CPU (the loop
thread's ``time.thread_time``, the kernel's part of its wake-up included) is added to what
happened in it, a label set by the gateway's own events (a report fed, a group commit, a
Delivery batch built, a Send acknowledged), so the fixed costs a low rate pays per record (a
wake-up, a commit of few rows, a Send of few records) are told apart from the work of each
report. bench/readings.py ``--turns`` uses it; instructions (``--callgrind``) cannot tell
this: valgrind runs the gateway some 50 times slower, and a cold cache after a sleep costs
time, not instructions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class Turns:
    """The CPU of each turn of ``loop``, summed by the labels ``mark`` gave it ("idle": a
    turn with none, a timer or a reply of something else); ``start`` and ``stop`` bound
    what is counted."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._labels: set[str] = set()
        self.totals: dict[str, list[float]] = {}
        self._on = False
        run_once: Callable[[], None] = loop._run_once  # type: ignore[attr-defined]

        def timed() -> None:
            if not self._on:
                run_once()
                return
            cpu = time.thread_time()
            run_once()
            cpu = time.thread_time() - cpu
            key = "+".join(sorted(self._labels)) or "idle"
            self._labels.clear()
            total = self.totals.setdefault(key, [0, 0.0])
            total[0] += 1
            total[1] += cpu

        loop._run_once = timed  # type: ignore[attr-defined]
        call_at = loop.call_at

        def timer(when: float, callback: Callable[..., object], *args: Any, **kw: Any) -> Any:
            """A timer that fires labels its turn "timer <what it calls>"."""
            name = getattr(callback, "__qualname__", type(callback).__name__)
            if args and name.endswith("_set_result_unless_cancelled"):
                name = "sleep"  # asyncio.sleep's (its future's owner is not known here)

            def fired(*a: Any) -> object:
                self._labels.add(f"timer {name}")
                return callback(*a)

            return call_at(when, fired, *args, **kw)

        loop.call_at = timer  # type: ignore[method-assign]

    def mark(self, label: str) -> None:
        self._labels.add(label)

    def wrap(self, owner: Any, name: str, label: str) -> None:
        """Label the turns in which ``owner.name`` is called."""
        method = getattr(owner, name)

        def marked(*args: Any, **kwargs: Any) -> Any:
            self._labels.add(label)
            return method(*args, **kwargs)

        setattr(owner, name, marked)

    def within(self, owner: Any, name: str, label: str) -> None:
        """Count the CPU of the calls of ``owner.name`` apart too, as "in <label>" (a part of
        the turns they ran in)."""
        method = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self._on:
                return method(*args, **kwargs)
            cpu = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                total = self.totals.setdefault(f"in {label}", [0, 0.0])
                total[0] += 1
                total[1] += time.thread_time() - cpu

        setattr(owner, name, timed)

    def start(self) -> None:
        self._labels.clear()
        self._on = True

    def stop(self) -> dict[str, list[float]]:
        self._on = False
        return self.totals
