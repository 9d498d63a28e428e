"""Who is told of an event: one small mechanism for every observer list of the gateway.

It lives with the object model, the package every other one builds on (the core, the
transports), so that the object tree's change listeners use it as well; it does no I/O.

An event reaches several independent parties (the exposure, the control socket's live
views, the command queue, upstream delivery). One of them failing is its own defect and must
not become everyone's: when a listener raised inside ``NodeRegistry.readings``, the listeners
after it never heard of that reading, so a server missed a value the store had. ``Listeners``
calls each listener in the order they were added, and a listener that raises is logged (with
its traceback and what it was told) and skipped; the others are still told. It is generic in
what a listener is, so it serves a Protocol with several methods (``tell`` picks the method)
and a plain callback alike, typed as precisely as the listener itself.

Every reading is told through several of these (the registry's, the tree's), most of them
with one listener or none: the list to tell is kept as a tuple, made again when a listener
comes or goes, never copied per event, and an event nobody listens for costs a truth test.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, TypeVarTuple

log = logging.getLogger(__name__)

L = TypeVar("L")
Ts = TypeVarTuple("Ts")


class Listeners(Generic[L]):
    """The listeners of one kind of event, named by ``event`` in the log (``node readings``,
    ``readings committed``). Slotted: every object tree has one (an end device's too)."""

    __slots__ = ("_listeners", "anyone", "event")

    def __init__(self, event: str) -> None:
        self.event = event
        self._listeners: tuple[L, ...] = ()
        """Replaced, never changed in place: an event being told goes on with the listeners
        it started with."""
        self.anyone = False
        """Whether anybody listens: ``bool(listeners)`` without a call, for a check that every
        reading makes (an event hub nobody subscribed to)."""

    def add(self, listener: L) -> Callable[[], None]:
        """Tell ``listener`` from the next event on; returns the function that stops it."""
        self._listeners = (*self._listeners, listener)
        self.anyone = True
        return _Unsubscribe(self, listener)

    def __iter__(self) -> Iterator[L]:
        """The listeners now, in order (whether anybody would hear an event, before making it)."""
        return iter(self._listeners)

    def __bool__(self) -> bool:
        """Whether anybody listens (an event costly to make is made only then)."""
        return bool(self._listeners)

    def discard(self, listener: L) -> None:
        """Stop telling ``listener`` (one equal to it: a bound method made again is); nothing
        if it is not told."""
        if listener in self._listeners:
            rest = list(self._listeners)
            rest.remove(listener)
            self._listeners = tuple(rest)
            self.anyone = bool(rest)

    def notify(self, tell: Callable[[L], object]) -> None:
        """``tell`` each listener, in order; one that raises is logged and the rest are still
        told. A listener added or removed while they are told counts from the next event on."""
        for listener in self._listeners:
            try:
                tell(listener)
            except Exception:
                self.failed(listener)

    def call(self: Listeners[Callable[[*Ts], object]], *args: *Ts) -> None:
        """``notify`` of listeners that are plain callbacks: each is called with ``args``, with
        no function made per event to tell it (every reading is told through several).
        Positional only: keyword arguments made a dict at each call, and called each listener
        through the slower path of both, which was more than half of what a call here cost."""
        for listener in self._listeners:
            try:
                listener(*args)
            except Exception:
                self.failed(listener)

    def failed(self, listener: object) -> None:
        """Log that ``listener`` raised (inside the ``except`` that caught it): for a caller
        that tells the listeners itself, in a loop of many events (``NodeRegistry.flush``)."""
        log.exception(
            "a listener of %s failed (the others were still told): %r", self.event, listener
        )


class _Unsubscribe(Generic[L]):
    """What ``Listeners.add`` returns: stops one listener. Slotted, not a closure (a function
    and its cell, 200 bytes): every node endpoint's tree keeps its client's (issue 17)."""

    __slots__ = ("_listener", "_listeners")

    def __init__(self, listeners: Listeners[L], listener: L) -> None:
        self._listeners = listeners
        self._listener = listener

    def __call__(self) -> None:
        self._listeners.discard(self._listener)
