"""One timer of the event loop for the deadlines of many registrations.

A quiet registration waits for its next Update as a deadline (``Registrar.start``). With
``loop.call_later`` each one was a ``TimerHandle``, the context it copies and the bound method
it calls, about 250 bytes of each of the endpoints mode's 10,000 node endpoints (issue 17). The
wheel keeps a deadline as one reference to what it wakes (an ``Alarm``) in the list of its tick
(``RESOLUTION`` seconds, rounded up: never early, at most a tick late, well within the second
or more an Update is sent before the lifetime ends), and arms one timer of the loop at the
earliest tick. Nothing due, no timer: idle means asleep.

``add`` returns the alarm's key, its tick and its place in the tick's list in one int, so
``cancel`` empties that place without searching the list: a stop of 10,000 endpoints, whose
deadlines share a few hundred ticks, took each one out of a list of dozens by comparing it
with those before it. A tick's count of alarms not cancelled says when it is empty.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import weakref
from typing import Protocol

log = logging.getLogger(__name__)

RESOLUTION = 0.1
"""Seconds per tick: the most a deadline is late."""

_PLACE_BITS = 32
"""A key's low bits: the alarm's place in its tick's list (more alarms than that in one
tick, 0.1 s, would need as many registrations: never)."""
_PLACE_MASK = (1 << _PLACE_BITS) - 1


class Alarm(Protocol):
    def ring(self) -> None:
        """The deadline it was added for came."""


class Wheel:
    """The deadlines of one event loop (``of``): ``add`` one, ``cancel`` it before it rings."""

    __slots__ = ("_armed", "_handle", "_live", "_order", "_ticks")

    _wheels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Wheel] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        self._ticks: dict[int, list[Alarm | None]] = {}
        """A tick's alarms in the order they were added; a cancelled one's place is None."""
        self._live: dict[int, int] = {}
        """How many alarms of a tick of ``_ticks`` are not cancelled (one int a tick)."""
        self._order: list[int] = []
        """The ticks of ``_ticks`` as a heap; a tick cancelled empty stays until it is first."""
        self._handle: asyncio.TimerHandle | None = None
        self._armed = 0
        """The tick ``_handle`` is armed at."""

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Wheel:
        """The wheel of ``loop`` (one per loop: a test's loops come and go)."""
        wheel = cls._wheels.get(loop)
        if wheel is None:
            wheel = cls._wheels[loop] = cls()
        return wheel

    def add(self, delay: float, alarm: Alarm) -> int:
        """Ring ``alarm`` in ``delay`` seconds (at most ``RESOLUTION`` later); returns its
        key, which ``cancel`` takes."""
        loop = asyncio.get_running_loop()
        tick = math.ceil((loop.time() + max(delay, 0.0)) / RESOLUTION)
        alarms = self._ticks.get(tick)
        if alarms is None:
            alarms = self._ticks[tick] = []
            self._live[tick] = 0
            heapq.heappush(self._order, tick)
            self._arm(loop)
        alarms.append(alarm)
        self._live[tick] += 1
        return tick << _PLACE_BITS | (len(alarms) - 1)

    def cancel(self, key: int, alarm: Alarm) -> None:
        """``alarm``, added with ``key``, is not to ring (it rang already: nothing to do)."""
        tick, place = self.tick(key), key & _PLACE_MASK
        alarms = self._ticks.get(tick)
        if alarms is None or place >= len(alarms) or alarms[place] is not alarm:
            return
        alarms[place] = None
        self._live[tick] -= 1
        if not self._live[tick]:
            del self._ticks[tick], self._live[tick]
            if self._handle is not None and tick == self._armed:
                self._handle.cancel()
                self._handle = None
                self._arm(None)

    @staticmethod
    def tick(key: int) -> int:
        """The tick (``RESOLUTION`` seconds of the loop's clock) the alarm of ``key`` rings at."""
        return key >> _PLACE_BITS

    def __len__(self) -> int:
        """How many alarms wait."""
        return sum(self._live.values())

    def _arm(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """One timer at the earliest tick (re-armed when an earlier one came); none when no
        alarm waits."""
        order = self._order
        while order and order[0] not in self._ticks:
            heapq.heappop(order)
        if not order:
            return
        first = order[0]
        if self._handle is not None:
            if first >= self._armed:
                return
            self._handle.cancel()
        loop = loop or asyncio.get_running_loop()
        self._armed = first
        self._handle = loop.call_at(first * RESOLUTION, self._run)

    def _run(self) -> None:
        """Ring every alarm of the ticks that came (the loop runs a timer up to its clock's
        resolution early: the armed tick has come), then arm for the next."""
        self._handle = None
        loop = asyncio.get_running_loop()
        until = max(self._armed, math.floor(loop.time() / RESOLUTION))
        order = self._order
        while order and order[0] <= until:
            tick = heapq.heappop(order)
            self._live.pop(tick, None)
            for alarm in self._ticks.pop(tick, ()):
                if alarm is None:
                    continue  # cancelled
                try:
                    alarm.ring()
                except Exception:
                    log.exception("a deadline's alarm failed")
        self._arm(loop)
