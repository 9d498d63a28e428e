"""What happens in the gateway, as the control socket streams it (``bridgectl events``).

``EventHub`` fans each event out to its subscribers without ever blocking or failing the part
that publishes it: a subscriber that falls ``EVENT_BACKLOG`` events behind (a stuck bridgectl)
is dropped rather than make the daemon buffer without bound, and one whose queue fails is
logged and skipped (``Listeners``), the others still get the event. ``NodeEvents`` is the
registry listener that turns node changes into events, ``HeardEvents`` what the radios hear.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridged.objects.listeners import Listeners
from bridged.objects.values import Record
from bridged.registry import LiveNode
from bridged.transports.base import Heard
from bridged.transports.nodes import NodeId

from .views import heard_json, json_record

EVENT_BACKLOG = 1000
"""Events a subscriber may fall behind by before it is dropped (a stuck bridgectl must not
make the daemon buffer without bound)."""


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, as the control socket streams it."""

    kind: str
    data: Mapping[str, Any]
    time: float = field(default_factory=time.time)


class Subscription:
    """What one subscriber receives, in order; ``overflowed`` once it fell too far behind."""

    def __init__(
        self,
        subscribers: Listeners[Subscription],
        kinds: frozenset[str] | None,
        left: Callable[[], None],
    ) -> None:
        self.kinds = kinds
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(EVENT_BACKLOG)
        self.overflowed = False
        self._unsubscribe: Callable[[], None] | None = subscribers.add(self)
        self._left = left

    def _leave(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
            self._left()

    def wants(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds or kind.split(".")[0] in self.kinds

    def offer(self, event: Event) -> None:
        """Queue ``event`` if it is wanted; one too many behind ends the subscription."""
        if not self.wants(event.kind):
            return
        if self.queue.qsize() >= EVENT_BACKLOG - 1:
            self.overflowed = True
            self.close()
            return
        self.queue.put_nowait(event)

    async def get(self) -> Event | None:
        """The next event, or None once the subscription has ended (overflow or close)."""
        return await self.queue.get()

    def close(self) -> None:
        self._leave()
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


class EventHub:
    """Fan-out of events to subscribers; publishing never blocks and never fails."""

    def __init__(self) -> None:
        self.subscribers: Listeners[Subscription] = Listeners("gateway events")
        """Whoever subscribed; its ``anyone`` is what a caller told of every report looks at
        before it asks ``wanted`` (an attribute, not a call: nobody listens, most of the
        time, and every advert and reading asked)."""
        self._sources: list[Callable[[], Callable[[], None]]] = []
        self._stops: list[Callable[[], None]] = []

    def while_subscribed(self, start: Callable[[], Callable[[], None]]) -> None:
        """Run ``start`` (which begins telling this hub of something, and returns what stops
        it) while anybody subscribes, from the first subscriber to the last one's leaving:
        a source of events for every report (an advert heard, a reading) is then not even
        called while nobody listens, which is most of the time."""
        self._sources.append(start)
        if self.subscribers.anyone:
            self._stops.append(start())

    def subscribe(self, kinds: Sequence[str] | None = None) -> Subscription:
        """Receive events of ``kinds`` (``"node"`` stands for every ``node.*``), all if None."""
        first = not self.subscribers.anyone
        sub = Subscription(
            self.subscribers, None if kinds is None else frozenset(kinds), self._left
        )
        if first:
            self._stops = [start() for start in self._sources]
        return sub

    def _left(self) -> None:
        """A subscriber left: the sources stop when it was the last."""
        if not self.subscribers.anyone:
            stops, self._stops = self._stops, []
            for stop in stops:
                stop()

    def wanted(self, kind: str) -> bool:
        """Whether anybody listens for ``kind`` (so costly events are built only then)."""
        return self.subscribers.anyone and any(s.wants(kind) for s in self.subscribers)

    def publish(self, kind: str, /, **data: Any) -> None:
        event = Event(kind, data)
        self.subscribers.notify(lambda sub: sub.offer(event))


class NodeEvents:
    """The ``RegistryListener`` that turns node changes into events; of their readings
    only while anybody subscribes to the hub (``EventHub.while_subscribed``)."""

    def __init__(self, hub: EventHub, changed: Callable[[], None]) -> None:
        self.hub = hub
        self.changed = changed

    def node_added(self, node: LiveNode) -> None:
        self.hub.publish("node.paired", id=str(node.id), name=node.paired.name)
        self.changed()

    def node_removed(self, node: NodeId) -> None:
        self.hub.publish("node.unpaired", id=str(node))
        self.changed()

    def node_objects(self, node: LiveNode) -> None:
        pass

    def node_readings(self, node: LiveNode, records: Sequence[Record]) -> None:
        if self.hub.subscribers.anyone and self.hub.wanted("readings"):
            self.hub.publish("readings", id=str(node.id), records=[json_record(r) for r in records])

    def node_values(self, node: LiveNode, records: Sequence[Record]) -> None:
        pass


class HeardEvents:
    """The registry's ``on_heard`` callback while anybody subscribes to the hub
    (``EventHub.while_subscribed``): a ``node.heard`` event per node heard, built only
    while somebody wants it (a scan hears many nodes a second)."""

    def __init__(self, hub: EventHub) -> None:
        self.hub = hub

    def __call__(self, heard: Heard) -> None:
        if self.hub.subscribers.anyone and self.hub.wanted("node.heard"):
            self.hub.publish("node.heard", **heard_json(heard))
