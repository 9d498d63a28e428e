"""The node registry: which nodes are paired, what their transports last said about them, and
the way a reading travels from a transport to the store and to the exposure.

It is the ``TransportEvents`` every transport reports to. Readings of paired nodes are kept as
the node's last known values (what a read of a sleepy node answers, with its time) and appended
to the reading store by a **group commit** before anything acts on them: the first reading
that waits for a commit arms one timer (``COMMIT_WINDOW``), the readings reported until it
fires share that transaction (a report that looks like the last before the window's end
commits them at the end of its turn instead, and the timer never fires: ``aio.Deadline``; so
does the first, when the report before it came a window or more earlier: a radio read that
brings a batch is committed in its own turn), and only
then are the listeners told (the exposure's tree, its notifications) and the commit hooks
(delivery). A transaction costs about as much as ten of
its rows (~30 us of SQLite and WAL writes), which one per report paid every time. No timer
is armed while no reading waits (idle means asleep). What a kill -9 can lose is the readings
of the window (at most ``COMMIT_WINDOW`` seconds of adverts, which nobody acknowledged and
nothing acted on; the next start counts the unclean stop), never what was acknowledged: a
node's Send is answered after ``durable``, which commits at once. The same commit keeps each
node's last reading of each resource (``ReadingStore.last_values``), which a restarted gateway
starts from: a sleepy node's Read is answered, and every node is shown with its values, before
the node talks again. Values the gateway read from a node (``values``: a read,
an observation's snapshot) are kept and shown the same way but never stored: only what a node
measured and reported is a reading, so one measured value is one upstream record. Anything
from a node that is not paired stops here: it is counted, and shown to ``bridgectl scan``
through ``heard``, but never reaches the store or a server. A paired node's object list is
stored as its transport reports it, so after a restart the node is exposed upstream at once,
with its instances, and its stored readings can be delivered before it is heard again (an
802.15.4 node only says what it has when it next registers).

Who is told (the exposure, the control socket's views, the command queue, delivery) is told
through ``Listeners`` (objects/listeners.py): a listener that raises is logged and the others
are still told, so a reading one of them could not take is still stored and still delivered.

Durability: a transport that acknowledges readings to the node (an 802.15.4 node's Send
answered 2.04) awaits ``durable`` first, which commits them (with whatever else waits) at the
end of the event loop's turn instead of at the window's end, and fails (5.03) while the store
refuses writes, so that what a node was told is received survives kill -9. Without the group
commit running (before start, while stopping) every report is committed as it is taken.

When the state database refuses writes (a full disk, a file system turned read-only) the
gateway goes on: the readings stay in memory (up to ``UNSTORED_LIMIT``, beyond which the
oldest are dropped and counted as ``dropped_unstored``), the condition is logged once and
shown by ``store_problem`` (``bridgectl status``), and the write is tried again every
``STORE_RETRY`` seconds until it succeeds, which stores them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import methodcaller
from types import MappingProxyType
from typing import Any, Protocol

from bridged.aio import Deadline
from bridged.objects.errors import ServiceUnavailable
from bridged.objects.listeners import Listeners
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.store.nodes import NodeStore, shared_objects
from bridged.store.readings import ReadingStore, Row
from bridged.store.secrets import SecretStore
from bridged.transports.base import Heard, NodeState, Transport
from bridged.transports.nodes import NodeId, PairedNode, Secret

log = logging.getLogger(__name__)

UNSTORED_LIMIT = 50_000
"""Readings kept in memory while the state database refuses writes."""
COMMIT_WINDOW = 0.05
"""Seconds a reading waits in memory for the readings after it to share its commit (the
group commit, module docstring): a commit costs about as much as 10 rows of it, so at 100
reports a second five share one, and a burst shares one per window. Nothing acts on a reading
before its commit, so this is also how much later the tree shows it, at the most: a report
that looks like the last before its end commits it early (``aio.Deadline``), since the loop is
awake for it anyway (a busy radio is read every 44 to 250 ms: while it is, this timer does not
fire; a read a window or more after the one before is committed in its own turn)."""
STORE_RETRY = 1.0
"""Seconds between two tries of a write the state database refused."""
EXPIRY_RECHECK = 3600.0
"""The longest ``run`` waits for the store's oldest reading to pass the age bound before it
looks again (a wall clock set back meanwhile would otherwise make it late)."""

HEARD_LIMIT = 4096
"""How many distinct unpaired nodes the scan table, and the log-once list of refused nodes,
remember (a busy street has hundreds)."""


class StoreUnavailable(ServiceUnavailable):
    """Readings could not be made durable: the state database refuses writes. A transport
    answers 5.03 instead of acknowledging them, and the node sends them again later."""


NO_VALUES: Mapping[Path, Record] = MappingProxyType({})
"""The values of every node with none known yet: an empty dict each was 0.8 MB of a gateway
with 10,000 nodes. A node's first value gives it a dict of its own (``NodeRegistry._known``)."""


@dataclass(slots=True)
class NodeNews:
    """What a paired node's transport said of it since its news was last told (``on_news``):
    one report (an advert heard, the node's state, its readings, told apart) is one news,
    each value the latest said (None: not said). ``heard`` is when the node was last heard
    (wall clock: the latest time said, kept inline where each event says it, three times a
    report), ``state`` its transport's latest ``NodeState`` (its refused frames and their
    problem), ``readings`` what it reported."""

    heard: float | None = None
    rssi: int | None = None
    lqi: int | None = None
    battery: int | None = None
    expect: float | None = None
    state: NodeState | None = None
    readings: list[Record] = field(default_factory=list)


@dataclass(slots=True)
class LiveNode:
    """A paired node and what is known of it now. ``objects`` is replaced, never changed in
    place: nodes that reported the same objects share one mapping (``shared_objects``)."""

    paired: PairedNode
    objects: dict[int, list[int]] = field(default_factory=dict)
    state: NodeState | None = None
    last_seen: float | None = None
    values: Mapping[Path, Record] = field(default_factory=lambda: NO_VALUES)
    news: NodeNews | None = None
    """What its transport said of it since its news was last told (``NodeRegistry.on_news``)."""
    heard: Heard | None = None
    """What was last heard of it (``HeardNodes``)."""
    paired_now: bool = True
    """False once it is unpaired: what it reported before is not shown (``NodeRegistry.flush``),
    which every report asked of the registry's table."""

    @property
    def id(self) -> NodeId:
        return self.paired.id


class HeardNodes(Mapping[NodeId, Heard]):
    """The scan table: what was last heard of each node, paired or not (``bridgectl status``
    counts it, pairing takes a node's name and profile from it). A paired node's is kept on
    its ``LiveNode``, which each of its adverts has found already (in a table of its own
    every advert cost two more lookups); the
    unpaired ones in a table of the ``HEARD_LIMIT`` most recently heard."""

    def __init__(self, live: Mapping[NodeId, LiveNode]) -> None:
        self._live = live
        self.unpaired: OrderedDict[NodeId, Heard] = OrderedDict()

    def __getitem__(self, node: NodeId) -> Heard:
        live = self._live.get(node)
        heard = live.heard if live is not None else self.unpaired.get(node)
        if heard is None:
            raise KeyError(node)
        return heard

    def __iter__(self) -> Iterator[NodeId]:
        yield from (node for node, live in self._live.items() if live.heard is not None)
        yield from self.unpaired

    def __len__(self) -> int:
        paired = sum(1 for live in self._live.values() if live.heard is not None)
        return paired + len(self.unpaired)

    def heard_unpaired(self, heard: Heard) -> None:
        """Keep ``heard`` of a node that is not paired, forgetting the least recently heard
        beyond ``HEARD_LIMIT``."""
        table = self.unpaired
        table[heard.node] = heard
        table.move_to_end(heard.node)
        while len(table) > HEARD_LIMIT:
            table.popitem(last=False)


class RegistryListener(Protocol):
    """What the exposure is told (see DESIGN: node registry -> exposure -> object tree)."""

    def node_added(self, node: LiveNode) -> None: ...

    def node_removed(self, node: NodeId) -> None: ...

    def node_objects(self, node: LiveNode) -> None: ...

    def node_readings(self, node: LiveNode, records: Sequence[Record]) -> None:
        """The node's readings (measured values, stored for delivery): show them."""
        ...

    def node_values(self, node: LiveNode, records: Sequence[Record]) -> None:
        """Values the gateway read from the node (not readings, never stored): show them."""
        ...


RELATIVE_BELOW = 2**28
"""SenML times below this are relative to now (RFC 8428 section 4.5.3)."""


def absolute_time(t: float | None, now: float) -> float:
    """A reading's time as seconds since the epoch: ``None`` is now, and a SenML relative time
    (below ``RELATIVE_BELOW``) counts from now."""
    if t is None:
        return now
    return now + t if t < RELATIVE_BELOW else t


class NodeRegistry:
    """Paired nodes, their live state, pairing and permit-join."""

    def __init__(
        self,
        nodes: NodeStore,
        secrets: SecretStore,
        readings: ReadingStore,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        commit_window: float = COMMIT_WINDOW,
    ) -> None:
        self.store = nodes
        self.secrets = secrets
        self.readings_store = readings
        self._clock = clock
        self._monotonic = monotonic
        self.transports: dict[str, Transport] = {}
        objects = nodes.objects()
        last = readings.last_values()
        self.live: dict[NodeId, LiveNode] = {
            p.id: LiveNode(
                p,
                objects.get(p.id, {}),
                values={r.path: r for r in last[p.id]} if p.id in last else NO_VALUES,
            )
            for p in nodes.nodes()
        }
        self.heard_nodes = HeardNodes(self.live)
        self._recent: tuple[NodeId | None, LiveNode | None] = (None, None)
        """The node id of the latest event and its live node (None: not paired). A transport
        tells one report as several events (heard, state, readings) with one node id, often
        not the object the tables hold (it is made from the frame's address): the report's
        later events find it by identity, with no lookup. Forgotten when a node is paired or
        unpaired."""
        self._woke: LiveNode | None = None
        self._woke_by_state = False
        """The node the awake hooks were just told of by one of its report's two events that
        say it is awake (``state`` reachable or ``readings``, in either order; which one:
        ``_woke_by_state``): the other one tells nobody again and forgets it. Also forgotten
        with each advert heard (a report's start) and ``expect_wake``: one awake call per
        report, not two."""
        self.unpaired_readings = 0
        self._listeners: Listeners[RegistryListener] = Listeners("the node registry")
        self._readers: Listeners[RegistryListener] = Listeners("node readings")
        """The listeners told of each report's readings (``listen``)."""
        self._pending: list[Row] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._committing = False
        self._due = Deadline(self.flush, commit_window)
        """The group commit's deadline: armed by the first reading of a window, run early by
        a later report (``readings``); disarmed, no timer."""
        self._untold = False
        """Whether readings were reported since the listeners were last told (``flush``): each
        node's are in its news (``NodeNews.readings``), in the order it reported them."""
        self._retry_at = 0.0
        self.unstored_dropped = 0
        """Readings dropped from memory while writes failed, not yet counted in the store."""
        self.store_problem: str | None = None
        """Why the state database refuses writes; None while it takes them."""
        self._join_until = -1.0
        self._refused: OrderedDict[NodeId, None] = OrderedDict()
        self._awake_hooks: Listeners[Callable[[NodeId], None]] = Listeners("nodes awake")
        self._commit_hooks: Listeners[Callable[[int], None]] = Listeners("readings committed")
        self._heard_hooks: Listeners[Callable[[Heard], None]] = Listeners("nodes heard")
        self._news_hooks: Listeners[Callable[[NodeId, NodeNews], None]] = Listeners("node news")
        self._newsy: list[LiveNode] = []
        """The nodes with news (``LiveNode.news``) since the last commit (``on_news``)."""
        self._store_hooks: Listeners[Callable[[str | None], None]] = Listeners("store problems")
        self._wake = asyncio.Event()
        """Set when ``run`` has a new deadline: a refused write to retry, a first reading in
        an empty store (its age bound), changed bounds."""
        self._expiring = False
        """Whether ``run`` waits for the store's oldest reading to pass the age bound (False:
        the store was empty when it looked)."""

    # -- wiring ------------------------------------------------------------------------------

    def attach(self, transport: Transport) -> None:
        """Hand ``transport`` the nodes of its kind that are paired."""
        self.transports[transport.name] = transport
        sessions = self.store.sessions()
        for node in self.live.values():
            if node.id.transport == transport.name:
                transport.pair(node.paired, self.secrets.get(node.id))
                if node.id in sessions:
                    transport.resume(node.id, sessions[node.id])

    def listen(self, listener: RegistryListener, *, readings: bool = True) -> None:
        """Tell ``listener`` of the nodes (each node paired now, at once) and of what they
        report; ``readings`` False: of their readings only what comes with the rest (a
        listener with nothing to do for each report is not called for each)."""
        self._listeners.add(listener)
        if readings:
            self._readers.add(listener)
        for node in self.live.values():
            listener.node_added(node)

    def on_awake(self, hook: Callable[[NodeId], None]) -> Callable[[], None]:
        """Call ``hook`` with a paired node each time it shows it can be reached: its transport
        reports it reachable, or a reading from it arrives (a sleepy node's moment to take the
        commands kept for it); once per report, which says it with two events (``_woke``): a
        hook that keeps something for the node's wake since says so (``expect_wake``).
        Returns what stops it: a hook needed only now and then (the command queue's, while a
        command waits) listens only then, and a report with no hook costs a truth test."""
        self._woke = None  # the next event is told: the hook heard none of this report
        return self._awake_hooks.add(hook)

    def expect_wake(self) -> None:
        """Somebody waits for a node's wake (a command kept for it, ``on_awake``): the next
        event that says a node is awake tells the awake hooks, also when it is the second of
        a report's two (``_woke``)."""
        self._woke = None

    def _awake(self, live: LiveNode, by_state: bool) -> None:
        """Tell the awake hooks that ``live`` can be reached, once per report (``_woke``)."""
        if self._woke is live and self._woke_by_state is not by_state:
            self._woke = None
        else:
            self._woke, self._woke_by_state = live, by_state
            self._awake_hooks.call(live.paired.id)

    def on_commit(self, hook: Callable[[int], None]) -> None:
        """Call ``hook`` with the number of readings after each group commit made them durable
        (what upstream delivery waits for)."""
        self._commit_hooks.add(hook)

    def on_heard(self, hook: Callable[[Heard], None]) -> Callable[[], None]:
        """Call ``hook`` with everything heard on the air, paired or not (a live scan);
        returns what stops it."""
        return self._heard_hooks.add(hook)

    def tell_readings(self, listener: RegistryListener) -> Callable[[], None]:
        """Tell ``listener`` (listening with ``readings`` False) of every report's readings
        as well, from now on; returns what stops it."""
        return self._readers.add(listener)

    def on_news(self, hook: Callable[[NodeId, NodeNews], None]) -> None:
        """Call ``hook`` with a paired node and its ``NodeNews`` (the node health model's:
        heard, link quality, battery, refused frames) once per report, with the group commit:
        a transport tells a report as several events (heard, state, readings), and the health
        model's update of each was a third of a report's cost. Without the group commit
        running (before start, while stopping) each event is told as it comes."""
        self._news_hooks.add(hook)

    def on_store_problem(self, hook: Callable[[str | None], None]) -> None:
        """Call ``hook`` with ``store_problem`` each time it changes (None: writes work again)."""
        self._store_hooks.add(hook)

    # -- pairing -----------------------------------------------------------------------------

    def pair(self, node: PairedNode, secrets: Mapping[str, Secret] | None = None) -> LiveNode:
        """Pair ``node`` (again), keeping its IDs; its secrets replace the old ones."""
        stored = self.store.pair(node)
        for name, secret in (secrets or {}).items():
            self.secrets.set(node.id, name, secret)
        self._recent = (None, None)
        live = self.live.get(node.id)
        if live is None:
            live = self.live[node.id] = LiveNode(stored)
        else:
            live.paired = stored
        live.heard = self.heard_nodes.unpaired.pop(node.id, live.heard)
        self._refused.pop(node.id, None)
        transport = self.transports.get(node.id.transport)
        if transport is not None:
            transport.pair(stored, self.secrets.get(node.id))
        log.info("node %s paired as %r", node.id, stored.name, extra={"NODE": str(node.id)})
        self._listeners.notify(lambda listener: listener.node_added(live))
        return live

    def unpair(self, node: NodeId) -> bool:
        """Unpair ``node``: it disappears upstream, its secrets are forgotten, its IDs kept."""
        self._recent = (None, None)
        gone = self.live.pop(node, None)
        if gone is None:
            return False
        gone.paired_now = False
        if gone.heard is not None:
            self.heard_nodes.heard_unpaired(gone.heard)
        self.store.unpair(node)
        self.secrets.remove(node)
        transport = self.transports.get(node.transport)
        if transport is not None:
            transport.unpair(node)
        log.info("node %s unpaired", node, extra={"NODE": str(node)})
        self._listeners.notify(lambda listener: listener.node_removed(node))
        return True

    def permit_join(self, seconds: float) -> None:
        """Let nodes that ask to join in for ``seconds`` (0 closes the window)."""
        self._join_until = self._monotonic() + seconds
        log.info("permit-join %s", f"open for {seconds:g} s" if seconds > 0 else "closed")

    @property
    def join_open(self) -> bool:
        return self._monotonic() < self._join_until

    # -- TransportEvents ---------------------------------------------------------------------

    def heard(self, heard: Heard) -> None:
        node = heard.node
        self._woke = None
        recent, live = self._recent
        if node is not recent:
            live = self.live.get(node)
            self._recent = (node, live)
        if live is not None:
            live.heard = heard
            live.last_seen = heard.time
            news = live.news or self._news_of(live)
            if news.heard is None or heard.time > news.heard:
                news.heard = heard.time
            if heard.rssi is not None:
                news.rssi = heard.rssi
            if not self._due.armed:  # else the commit that tells it is armed
                self._arm()
        if self._heard_hooks.anyone:  # a live scan or an event stream, now and then
            self._heard_hooks.call(heard)
        if live is None:
            self.heard_nodes.heard_unpaired(heard)

    def readings(self, node: NodeId, records: Sequence[Record]) -> None:
        recent, live = self._recent
        if node is not recent:
            live = self.live.get(node)
            self._recent = (node, live)
        if live is None:
            self.unpaired_readings += len(records)
            return
        node = live.paired.id  # the id every table holds: a lookup of it is found by identity
        # ``_stamped``, and each one's row, in one loop: the clock is read only for a record
        # that needs it (most carry their absolute time already). The row holds the record
        # itself from here to the Send (store/readings.py).
        stamped: list[Record] = []
        pending, now = self._pending, None
        for r in records:
            t = r.time
            if t is None or t < RELATIVE_BELOW:
                if now is None:
                    now = self._clock()
                r = Record(r.path, r.value, absolute_time(t, now))
            stamped.append(r)
            pending.append((node, r))
        # Durable before anything acts on it (module docstring): they become the node's
        # known values (what node.show and a Read of a sleepy node answer) and the listeners
        # are told after the group commit, from the node's news.
        self._untold = True
        (live.news or self._news_of(live)).readings += stamped  # heard: when taken (``flush``)
        if self._due.armed:
            self._due.awake()  # it may commit at this turn's end: the loop is awake anyway
        else:
            self._arm()
        if self._awake_hooks.anyone:  # not a call per report while nobody listens
            self._awake(live, False)

    def _readings_first(self) -> None:
        """Readings reported before a value read or written are committed and taken now, if
        they wait for the group commit: a node's values are known and shown in the order it
        reported them (an older reading taken later would undo a newer value), and a value a
        server waits for is not held back."""
        if self._untold:
            self.flush()

    def values(self, node: NodeId, records: Sequence[Record]) -> None:
        self.values_read(node, records)

    def values_read(self, node: NodeId, records: Sequence[Record]) -> list[Record]:
        """``values``, returning them stamped with the time they were read ([] for a node not
        paired): what a server's Read of an awake node answers."""
        live = self.live.get(node)
        if live is None:
            return []
        self._readings_first()
        now = self._clock()
        stamped = _stamped(records, now)
        self._known(live, stamped, now)
        self._listeners.notify(methodcaller("node_values", live, stamped))
        self._awake_hooks.call(node)
        return stamped

    def held(self, node: NodeId, records: Sequence[Record]) -> None:
        """Values the gateway keeps for ``node`` itself (its /5 Firmware Update, which the
        gateway drives): shown like ``values``, but no sign that the node talked (its last
        seen time and its wake stay as they were)."""
        live = self.live.get(node)
        if live is None:
            return
        self._readings_first()
        now = self._clock()
        stamped = _stamped(records, now)
        self._known(live, stamped, now, heard=False)
        self._listeners.notify(methodcaller("node_values", live, stamped))

    def _known(
        self, live: LiveNode, stamped: Sequence[Record], now: float, *, heard: bool = True
    ) -> None:
        """``stamped`` (records with absolute times, ``_stamped``) taken ``now`` as the node's
        last known values; a value of an instance the node never announced announces it.
        ``heard``: the node said them."""
        if heard:
            last = live.last_seen
            if last is None or now > last:  # ``max``, inline: every report comes here
                live.last_seen = now
        grew = False
        # A node with no value known shares one empty map (LiveNode): its own from its first.
        values = live.values
        if type(values) is not dict:
            values = live.values = {}
        for r in stamped:
            path = r.path
            values[path] = r
            ids = path.ids
            oid, iid = ids[0], ids[1]
            iids = live.objects.get(oid, ())  # no list made per reading
            if iid not in iids:
                live.objects = shared_objects({**live.objects, oid: [*iids, iid]})
                grew = True
        if grew:
            self._save_objects(live.id, live.objects)
            self._listeners.notify(lambda listener: listener.node_objects(live))

    def objects(self, node: NodeId, objects: Mapping[int, Sequence[int]]) -> None:
        live = self.live.get(node)
        if live is None:
            return
        reported = shared_objects(objects)
        if reported is not live.objects:
            if reported != live.objects:
                self._save_objects(node, reported)
            live.objects = reported
        self._listeners.notify(lambda listener: listener.node_objects(live))

    def state(self, node: NodeId, state: NodeState) -> None:
        recent, live = self._recent
        if node is not recent:
            live = self.live.get(node)
            self._recent = (node, live)
        if live is not None:
            live.state = state
            # Its news of what the transport said, inline (every report says its state):
            # reachable is heard (unreachable is a sleepy node asleep or a radio down, not
            # silence); each value said is the latest.
            news = live.news or self._news_of(live)
            news.state = state
            if state.reachable:
                t = state.time
                if news.heard is None or t > news.heard:
                    news.heard = t
                last = live.last_seen
                if last is None or t > last:
                    live.last_seen = t
            if state.rssi is not None:
                news.rssi = state.rssi
            if state.lqi is not None:
                news.lqi = state.lqi
            if state.battery is not None:
                news.battery = state.battery
            if state.expect is not None:
                news.expect = state.expect
            if not self._due.armed:
                self._arm()
            if state.reachable and self._awake_hooks.anyone:  # as in ``readings``
                self._awake(live, True)

    def _news_of(self, live: LiveNode) -> NodeNews:
        """The paired node's news of this commit window, made with its first event (its caller
        arms the commit; one that has its ``live.news`` already makes no call)."""
        news = live.news
        if news is None:
            news = live.news = NodeNews()
            self._newsy.append(live)
        return news

    def session(self, node: NodeId, session: Mapping[str, Any] | None) -> None:
        """Keep a node's session; a refused write leaves it in memory only (the node works
        until a restart, then registers again when told 4.04)."""
        if node not in self.live:
            return
        try:
            self.store.set_session(node, session)
        except sqlite3.DatabaseError as e:
            log.warning("node %s: its session is not saved: %s", node, e, extra={"NODE": str(node)})

    def admit(self, heard: Heard) -> bool:
        self.heard(heard)
        if heard.node in self.live:
            return True
        if self.join_open:
            self.pair(PairedNode(heard.node, heard.name or str(heard.node), heard.profile or ""))
            return True
        if heard.node not in self._refused:
            self._refused[heard.node] = None
            if len(self._refused) > HEARD_LIMIT:
                self._refused.popitem(last=False)
            log.warning(
                "node %s is not paired and permit-join is closed: refused (logged once)",
                heard.node,
                extra={"NODE": str(heard.node)},
            )
        return False

    def _save_objects(self, node: NodeId, objects: Mapping[int, Sequence[int]]) -> None:
        """Remember a node's objects; a refused write leaves them in memory only (the node is
        exposed as now until a restart), and never stops its readings."""
        try:
            self.store.set_objects(node, objects)
        except sqlite3.DatabaseError as e:
            log.warning(
                "node %s: its objects are not saved: %s", node, e, extra={"NODE": str(node)}
            )

    # -- durability --------------------------------------------------------------------------

    @property
    def unstored(self) -> int:
        """Readings reported and not in the store yet (held in memory)."""
        return len(self._pending)

    async def durable(self) -> None:
        """Return once every reading reported so far is in the store (committed at once,
        with whatever else this turn of the event loop reported). StoreUnavailable when the
        store refuses them: they stay in memory (see the module docstring) but must not be
        acknowledged as durable."""
        if self.store_problem is not None:
            raise StoreUnavailable(self.store_problem)
        if not self._pending:
            return
        if not self._committing:
            # No group commit runs (before start, while stopping): commit now.
            self.flush()
            if self.store_problem is not None:
                raise StoreUnavailable(self.store_problem)
            return
        loop = asyncio.get_running_loop()
        if not self._waiters:
            # The readings reported in this turn of the event loop are committed together
            # right after it.
            loop.call_soon(self.flush)
        waiter = loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def _arm(self) -> None:
        """A reading waits for its commit: arm the group commit's deadline for it, unless it is
        armed (it shares that commit). Without a group commit running (before start, while
        stopping) it is committed now."""
        if not self._committing:
            self.flush()
        else:
            self._due.arm()

    def flush(self) -> int:
        """Commit the readings reported so far to the store, then tell the listeners about
        them (also when the store refused them: the gateway goes on showing them), each node's
        news (``on_news``) and the commit hooks; returns how many were committed (0 when the
        store refused them: they are kept, see the module docstring)."""
        self._due.cancel()
        committed = self._commit()
        # What a listener reports meanwhile is news of the next commit (it is not committed).
        newsy, self._newsy = self._newsy, []
        told: list[tuple[LiveNode, NodeNews]] = []
        for live in newsy:
            news, live.news = live.news, None
            if news is not None:
                told.append((live, news))
        if self._untold:
            self._untold = False
            # Committed readings become the node's known values (heard ``now``, whatever time
            # it gave its measurements) and are shown, unless their node was unpaired since it
            # reported them. Once per node and commit, with all it reported since the last
            # (its news's): at the maximum a commit holds dozens of each node's reports, each
            # of which was a tell of each reader, its mapping and its known values; what the
            # tree shows after the commit is the same, as nothing reads it in between.
            # Each reader's method is looked up once per commit, not once per node and
            # reader (``Listeners.notify`` with a ``methodcaller``: a call and an object more
            # each); one that raises is logged and the others are still told.
            now, readers = self._clock(), self._readers
            tells = [reader.node_readings for reader in readers]
            for live, news in told:
                stamped = news.readings
                if stamped and live.paired_now:
                    self._known(live, stamped, now)
                    if news.heard is None or now > news.heard:
                        news.heard = now
                    for tell in tells:
                        try:
                            tell(live, stamped)
                        except Exception:
                            readers.failed(tell)
        for live, news in told:
            self._news_hooks.call(live.paired.id, news)
        if committed:
            self._commit_hooks.call(committed)
        return committed

    def _commit(self) -> int:
        if not self._pending:
            self._settle(None)
            return 0
        if self.store_problem is not None and self._monotonic() < self._retry_at:
            return 0
        batch = self._pending
        try:
            self.readings_store.append(batch, unstored=self.unstored_dropped)
        except sqlite3.DatabaseError as e:
            self._store_refused(e)
            return 0
        self._pending = []
        if not self._expiring:
            self._wake.set()  # the store held nothing: the age bound has a deadline now
        if self.store_problem is not None:
            log.warning(
                "the state database takes writes again: %d readings kept in memory are stored%s",
                len(batch),
                f", {self.unstored_dropped} were dropped" if self.unstored_dropped else "",
            )
            self.store_problem = None
            self._store_hooks.call(None)
        self.unstored_dropped = 0
        self._settle(None)
        return len(batch)

    def _store_refused(self, error: sqlite3.DatabaseError) -> None:
        """The store refused a group commit: keep its readings (the newest UNSTORED_LIMIT),
        say so once, and fail whoever awaits their durability."""
        problem = f"the state database refuses writes ({error})"
        if problem != self.store_problem:
            log.error(
                "%s: readings are kept in memory (up to %d) until it takes them again",
                problem,
                UNSTORED_LIMIT,
            )
            self.store_problem = problem
            self._store_hooks.call(problem)
        self._retry_at = self._monotonic() + STORE_RETRY
        self._wake.set()
        excess = len(self._pending) - UNSTORED_LIMIT
        if excess > 0:
            if not self.unstored_dropped:
                log.error(
                    "more than %d readings are not stored: dropping the oldest (counted)",
                    UNSTORED_LIMIT,
                )
            del self._pending[:excess]
            self.unstored_dropped += excess
        self._settle(StoreUnavailable(problem))

    def _settle(self, error: Exception | None) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def reschedule(self) -> None:
        """The store's bounds changed (a reload): ``run`` looks at the age bound again."""
        self._wake.set()

    async def run(self) -> None:
        """What the group commit does besides committing, each when it is due and nothing
        in between: readings are committed as they are reported, so this only retries what a
        refusing store left in memory (every ``STORE_RETRY`` seconds until it takes them) and
        applies the store's age bound when its oldest reading reaches it. An idle gateway
        (nothing refused, the store empty or its readings young) has no timer here."""
        self._committing = True
        try:
            while True:
                self._wake.clear()
                delay = self._next_due()
                if delay is None:
                    await self._wake.wait()
                elif delay > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._wake.wait()
                if self.store_problem is not None:
                    self.flush()
                if self._expiring:
                    with contextlib.suppress(sqlite3.DatabaseError):
                        # A refused write is reported by the group commit.
                        if self.readings_store.expires_in() == 0:
                            self.readings_store.expire()
        finally:
            self._committing = False
            self.flush()

    def _next_due(self) -> float | None:
        """Seconds until ``run`` has something to do: the retry of a refused write, the
        store's oldest reading passing the age bound; None for nothing."""
        due = []
        if self.store_problem is not None and self._pending:
            due.append(max(self._retry_at - self._monotonic(), 0.0))
        try:
            expiry = self.readings_store.expires_in()
        except sqlite3.DatabaseError:
            expiry = STORE_RETRY
        self._expiring = expiry is not None
        if expiry is not None:
            due.append(min(expiry, EXPIRY_RECHECK))
        return min(due, default=None)


def _stamped(records: Sequence[Record], now: float) -> list[Record]:
    """``records`` with absolute times: a record whose time is absolute already is taken as
    it is (most are: a BLE decoder's, a simulated node's), not built again."""
    return [
        r
        if r.time is not None and r.time >= RELATIVE_BELOW
        else Record(r.path, r.value, absolute_time(r.time, now))
        for r in records
    ]
