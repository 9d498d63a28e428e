"""The event hub of ``bridgectl events``: every subscriber gets what it asked for, in order,
and no subscriber's failure reaches the part that publishes or the other subscribers."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from bridged.events import EVENT_BACKLOG, Event, EventHub, HeardEvents, NodeEvents, Subscription
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.registry import LiveNode
from bridged.transports.base import Heard
from bridged.transports.nodes import NodeId, PairedNode


async def test_a_subscriber_that_fails_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failing subscriber comes first; the one after it still gets the event, the
    publisher sees no error, and the failure is logged with its traceback."""
    hub = EventHub()
    failing = hub.subscribe()
    other = hub.subscribe(["node"])

    def broken(event: Event | None) -> None:
        raise RuntimeError("a subscriber's own defect")

    monkeypatch.setattr(failing.queue, "put_nowait", broken)
    with caplog.at_level(logging.ERROR, logger="bridged.objects.listeners"):
        hub.publish("node.paired", id="sim:0001")
    event = other.queue.get_nowait()
    assert event is not None and (event.kind, event.data) == ("node.paired", {"id": "sim:0001"})
    (failure,) = [r for r in caplog.records if "failed" in r.getMessage()]
    assert failure.exc_info is not None


async def test_each_subscriber_gets_the_kinds_it_asked_for_in_order() -> None:
    hub = EventHub()
    nodes, readings, everything = (
        hub.subscribe(["node"]),
        hub.subscribe(["readings"]),
        hub.subscribe(),
    )
    assert hub.wanted("readings") and hub.wanted("node.heard")
    hub.publish("node.paired", id="a")
    hub.publish("readings", id="a", records=[])
    hub.publish("node.unpaired", id="a")
    readings.close()
    everything.close()
    nodes.close()
    assert not hub.wanted("readings")

    async def kinds(sub: Subscription) -> list[str]:
        got = []
        while (event := await sub.get()) is not None:
            got.append(event.kind)
        return got

    assert await kinds(nodes) == ["node.paired", "node.unpaired"]
    assert await kinds(readings) == ["readings"]
    assert await kinds(everything) == ["node.paired", "readings", "node.unpaired"]


async def test_a_subscriber_that_falls_too_far_behind_is_dropped_not_buffered() -> None:
    hub = EventHub()
    stuck, reading = hub.subscribe(), hub.subscribe()
    for n in range(EVENT_BACKLOG + 10):
        hub.publish("node.heard", n=n)
        assert await reading.get() is not None
    assert stuck.overflowed and not reading.overflowed
    got = [stuck.queue.get_nowait() for _ in range(stuck.queue.qsize())]
    assert got[-1] is None  # the end of the subscription, after what it had kept
    assert [e.data["n"] for e in got[:-1] if e is not None] == list(range(EVENT_BACKLOG - 1))


async def test_reports_ask_the_hub_nothing_while_nobody_subscribes_and_are_told_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every advert and every reading asked ``wanted`` (two Python calls each, issue 17);
    with nobody subscribed the hub's ``anyone`` answers, and a subscriber still gets them."""
    hub = EventHub()
    asked: list[str] = []
    wanted = EventHub.wanted
    monkeypatch.setattr(
        EventHub, "wanted", lambda self, kind: asked.append(kind) or wanted(self, kind)
    )
    heard, news = HeardEvents(hub), NodeEvents(hub, lambda: None)
    node = NodeId("sim", "0001")
    live = LiveNode(PairedNode(node, "n", "sim"))
    record = Record(Path.parse("/3303/0/5700"), 21.5, 1_700_000_000.0)
    heard(Heard(node, 1_700_000_000.0, rssi=-60))
    news.node_readings(live, [record])
    assert asked == []
    sub = hub.subscribe(["readings", "node.heard"])
    heard(Heard(node, 1_700_000_001.0, rssi=-60))
    news.node_readings(live, [record])
    sub.close()
    got = []
    while (event := await sub.get()) is not None:
        got.append(event.kind)
    assert got == ["node.heard", "readings"]


async def test_a_source_runs_from_the_first_subscriber_to_the_last_ones_leaving() -> None:
    """``while_subscribed``: what tells the hub of every report (the registry's heard hook,
    its readings) is started by the first subscriber and stopped when the last one leaves,
    by closing or by falling too far behind, and started again by the next (issue 17: with
    nobody subscribed, every report called two listeners with nothing to do)."""
    hub = EventHub()
    running: list[str] = []

    def start() -> Callable[[], None]:
        running.append("source")
        return running.clear

    hub.while_subscribed(start)
    assert running == []
    first, second = hub.subscribe(["node"]), hub.subscribe()
    assert running == ["source"]
    first.close()
    assert running == ["source"]
    second.close()
    second.close()  # closed twice: stopped once, nothing else
    assert running == []
    stuck = hub.subscribe()
    assert running == ["source"]
    for n in range(EVENT_BACKLOG):
        hub.publish("node.heard", n=n)
    assert stuck.overflowed and running == []
    again = hub.subscribe()
    late: list[str] = []
    hub.while_subscribed(lambda: late.append("late") or (lambda: late.clear()))
    assert running == ["source"] and late == ["late"]  # added while somebody subscribes
    again.close()
    assert running == [] and late == []
