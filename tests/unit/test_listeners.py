"""``Listeners``: who is told of an event, kept as a tuple that is replaced when a listener
comes or goes (never copied per event), so what an event in progress tells stays the same."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from bridged.objects.listeners import Listeners


def test_an_event_nobody_listens_for_is_known_before_it_is_made() -> None:
    listeners: Listeners[Callable[[int], None]] = Listeners("numbers")
    assert not listeners and not listeners.anyone
    stop = listeners.add(lambda n: None)
    assert listeners and listeners.anyone
    stop()
    assert not listeners and not listeners.anyone


def test_listeners_are_told_in_order_and_one_that_raises_is_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    told: list[tuple[str, int]] = []
    listeners: Listeners[Callable[[int], None]] = Listeners("numbers")

    def broken(n: int) -> None:
        raise RuntimeError("its own defect")

    listeners.add(lambda n: told.append(("first", n)))
    listeners.add(broken)
    listeners.add(lambda n: told.append(("last", n)))
    with caplog.at_level(logging.ERROR, logger="bridged.objects.listeners"):
        listeners.notify(lambda listener: listener(1))
        listeners.call(2)  # plain callbacks, called with the event's arguments
    assert told == [("first", 1), ("last", 1), ("first", 2), ("last", 2)]
    assert caplog.text.count("a listener of numbers failed") == 2


def test_a_listener_added_or_removed_while_they_are_told_counts_from_the_next_event() -> None:
    told: list[tuple[str, int]] = []
    listeners: Listeners[Callable[[int], None]] = Listeners("numbers")
    stops: list[Callable[[], None]] = []

    def first(n: int) -> None:
        told.append(("first", n))
        if n == 1:
            stops.append(listeners.add(lambda m: told.append(("added", m))))
            stop_second()

    listeners.add(first)
    stop_second = listeners.add(lambda n: told.append(("second", n)))
    listeners.notify(lambda listener: listener(1))
    listeners.notify(lambda listener: listener(2))
    assert told == [("first", 1), ("second", 1), ("first", 2), ("added", 2)]
    assert len(list(listeners)) == 2
    stops[0]()
    stops[0]()  # stopping twice is harmless
    assert list(listeners) == [first]
