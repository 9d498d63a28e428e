"""Store-and-forward: node readings delivered upstream from the reading store, in batches.

Every reading a transport hands over is in the reading store once the registry has taken it
(see bridged/registry.py and bridged/store/readings.py). Each LwM2M server has its own consumer
cursor there (``lwm2m:<Short Server ID>``), and one task per server moves it:

1. take the oldest readings the server has not acknowledged, in arrival order; when fewer than
   a full batch are waiting, linger a moment first, so a burst of adverts becomes one message
   (a group commit in its second half that looks like the last before it ends, ends it: the
   loop is awake for that anyway, ``aio.Deadline``);
2. find each one's path at the gateway (the exposure mode's mapping, kept from one batch to the
   next until the mapping changes); the record the transport reported, with the time it was
   measured, goes on as it is, named by that path in the Send's pack;
3. Send them (``POST /dp``, a SenML CBOR time series: one record per reading, so a resource's
   series is several records with the same name and their original times), at most
   ``max_records`` records and about ``max_bytes`` bytes per Send, cut where its Block1 blocks
   are full when its last one would carry little (``send.whole_blocks``; what is left out
   goes first in the next Send);
4. move the cursor past them only when the server has answered 2.04.

So delivery is **at least once**: nothing is lost across an outage, a restart or kill -9 (a
reading leaves the store only once every server has acknowledged it, or when the store's bounds
drop it, which is counted), and a Send whose 2.04 was lost is sent again. Readings are never
reordered: batches are consecutive runs of the store, sent one at a time, and a batch that
fails is retried whole (with back-off) before anything after it.

Each Send is one confirmable request, awaited before the next, so delivery has at most one
message in flight per server and never outruns the engine's Message-ID pacing
(bridged/engine/pacing.py), which holds the request when the peer's Message IDs run short; a
batch carries up to ``max_records`` readings per Message ID, which is what lets a gateway at its
radios' limit (about 750 readings/s) stay far below the ~265 CON/s a server allows.

A server that cannot take Send (registered as LwM2M 1.0, or with /1/x/23 Mute Send true) gets
the same batches as **notifications** of its observations instead (step 3 above becomes
``Observations.notify_series``, see bridged/engine/observe.py):

* a reading goes to every observation that includes its path in a format whose records carry
  a time (SenML JSON or CBOR, LwM2M JSON 11543), as a record with the time it was measured;
  an observation gets many records per notification (at most ``notification_bytes`` of
  payload), in order; each notification is confirmable, and the cursor moves past the batch
  only once the server has acknowledged every one of them. A notification that is not
  acknowledged (the server is gone, the observation ended) stops the batch, which is retried
  whole, so delivery stays at least once and in order, as with Send;
* observations in TLV, text/plain, opaque or LwM2M CBOR get **no** series: those formats have
  no time, so an old reading in one would read as the value now, and a server would act on a
  stale temperature as if it were current. They keep notifying the current value, which is
  the latest reading: what a user of such a server can expect is the latest, not the history;
* readings of paths the server does not observe with time cannot reach a LwM2M 1.0 server at
  all (it has no Send); the current value stays readable. They are skipped, and counted in
  ``skipped`` and ``unobserved``, but only once the server has had a fair chance to observe
  them: ``observe_grace`` seconds since it settled, i.e. since the latest of its registration,
  the last series notification that failed and the last observation lost (see
  ``Observations.lost_at``), and it has been heard from since then. So a server that is gone
  (its observations ended with errors, the client does not know more yet) keeps its backlog
  until it is back and has had time to observe again, while one that observes nothing, or not
  everything, does not hold the store back for ever;
* the server's own observations keep notifying as before (pmin, pmax, the current value);
  series notifications are history with times, beside them.

The mode is decided for each batch, so a server that un-mutes Send (or registers again as 1.1)
continues by Send from the same cursor, and one that mutes it continues by notifications.

Readings of a node that is no longer exposed (unpaired since) or that no Send or notification
may carry (a value the resource's definition refuses) are skipped and counted, so one bad
reading never blocks the others.

**Where a reading goes** is the exposure mode's to say, through a ``Router``: the client whose
session of each server carries a node's readings, and the node-local path's counterpart there.
In the instances and gateway modes every node goes through the gateway's one client, at the
gateway path of its instance (``gateway_path``). In the endpoints mode each node has a client
of its own (its endpoint, with the same servers and Short Server IDs) and its readings keep
their node-local paths there. Delivery stays the one place that decides, with one cursor per
server whatever the mode: a batch is split by session, each session gets its part in one
message (Send, or series notifications, as that session's server can take), the parts go
concurrently, and the cursor moves past the batch only when every part was acknowledged (a
part that fails, or must wait, makes the batch go again, in order per node, without the
parts that were acknowledged: a sibling's failure sends no reading twice). A batch
stops before the first reading of a node whose session is not registered (yet, e.g. an
endpoint still coming up after a restart), and delivery waits when that is the first reading.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bridged.aio import Backoff, Deadline, cancel_and_wait
from bridged.engine.client import LwM2MClient, ServerSession
from bridged.engine.observe import SERIES_MAX_BYTES
from bridged.engine.send import (
    SendMuted,
    SendNotRegistered,
    SendPack,
    SendUnsupported,
    check_path,
    whole_blocks,
)
from bridged.engine.series import leading_fit
from bridged.exposure.mapping import changes as mapping_changes
from bridged.objects.definitions import Definitions, ResourceDef
from bridged.objects.errors import LwM2MError
from bridged.objects.formats.senml_cbor import CompactEncoder
from bridged.objects.paths import Path
from bridged.objects.values import Record, check_value
from bridged.store.readings import Pending, ReadingStore
from bridged.transports.nodes import NodeId

log = logging.getLogger(__name__)

GatewayPath = Callable[[NodeId, Path], Path | None]
"""The exposure mode's mapping of a node-local path to the gateway's (``gateway_path``), None
when the node's instance is not exposed."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where readings go: the sessions of ``client`` (None: the node's client is not up yet,
    delivery waits for it), at ``path(node, local)`` (None: that instance is not exposed).
    The modes that expose every node through the gateway's client have one route for all of
    them, so a batch finds the client's session once, not once per node."""

    client: LwM2MClient | None
    path: GatewayPath


Router = Callable[[NodeId], Route | None]
"""The exposure mode's route of a node's readings, None for a node that is not exposed (its
readings are skipped and counted)."""


def gateway_router(client: LwM2MClient, gateway_path: GatewayPath) -> Router:
    """The route of the modes that expose every node through the gateway's own ``client``."""
    route = Route(client, gateway_path)
    return lambda node: route


def consumer_name(short_server_id: int) -> str:
    """The reading store's consumer of the server with this Short Server ID."""
    return f"lwm2m:{short_server_id}"


@dataclass
class DeliveryStats:
    """What delivery has done for one server since start (``bridgectl status``)."""

    delivered: int = 0
    sends: int = 0
    failed_sends: int = 0
    skipped: int = 0
    last_error: str = ""
    notifications: int = 0
    """Series notifications the server acknowledged (a server without Send)."""
    failed_notifications: int = 0
    unobserved: int = 0
    """Of ``skipped``: readings no observation of a server without Send could carry."""


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """``max_records`` and ``max_bytes`` bound one Send; ``linger`` is how long a partial batch
    waits for more; ``retry`` is the first back-off after a failed Send (doubling up to
    ``max_retry``); ``poll`` is how often a server that is not registered is looked at
    again. For a server without Send, ``notification_bytes`` bounds one series notification
    and ``observe_grace`` is how long it has to observe before unobserved readings are
    skipped (see the module docstring)."""

    max_records: int = 256
    max_bytes: int = 16 * 1024
    linger: float = 0.5
    """Half a second: at 100 readings a second a Send carries about 50 records instead of 6
    (0.05 s), a tenth of the Sends' CPU and of the messages on the uplink (on a cellular link
    each one costs airtime), for half a second more before a reading is at the server, which
    a sensor reporting every few seconds or minutes does not notice. 0 sends at once. A commit
    of new readings in its second half that looks like the last before it ends, ends it
    (``aio.Deadline``): at a steady rate the batch goes with a commit instead of waking the
    gateway for a timer of its own."""
    retry: float = 1.0
    max_retry: float = 60.0
    poll: float = 1.0
    notification_bytes: int = SERIES_MAX_BYTES
    observe_grace: float = 30.0

    def __post_init__(self) -> None:
        if self.max_records < 1 or min(self.max_bytes, self.notification_bytes) < 64:
            raise ValueError("a message must be allowed at least one record and 64 bytes")
        if min(self.retry, self.max_retry, self.poll) <= 0 or self.linger < 0:
            raise ValueError("delivery periods must be positive")
        if self.observe_grace < 0:
            raise ValueError("observe_grace cannot be negative")


def may_skip_unobserved(now: float, settled: float, heard: float, grace: float) -> bool:
    """Whether readings a server without Send does not observe may be skipped now: it has had
    ``grace`` seconds since it ``settled`` (registered, or lost an observation or a series
    notification) to observe them, and it was heard from since, so it is there and chose not
    to. A ``grace`` of 0 skips them at once (a server known not to observe)."""
    return grace == 0 or (now - settled >= grace and heard >= settled)


class _Outcome(Enum):
    """What became of one session's part of a batch."""

    DELIVERED = "delivered"  # acknowledged (or, for a server without Send, skipped)
    WAIT = "wait"  # not registered, or some paths are not observed yet: wait for it
    FAILED = "failed"  # not acknowledged: retry after a back-off


@dataclass(frozen=True, slots=True)
class _Part:
    """What became of one session's part: its outcome, and of its readings how many went and
    how many no observation could carry (a server without Send)."""

    outcome: _Outcome
    delivered: int = 0
    unobserved: int = 0


@dataclass(frozen=True, slots=True)
class _Settled:
    """A session's ``settled`` time (module docstring), and the Location of the registration
    it is from (``Registrar.location_path``)."""

    registration: str | None
    at: float


@dataclass(frozen=True, slots=True)
class _Mapped:
    """A node path's place at its session: its ``path`` there (the exposure's mapping), that
    path's SenML ``name`` and its checked definition (``check_path``; a finite float of a
    ``plain_float`` resource is then taken as it is), kept from one batch to the next
    (``Delivery._mapped``). ``local`` is the node path object it was found for, held so that
    its ``id`` stays its own while the entry lives."""

    local: Path
    path: Path
    name: str
    rdef: ResourceDef


MAPPED_LIMIT = 1024
"""How many node paths ``Delivery._mapped`` keeps at most (about 400 bytes each): every
resource of 1,000 nodes that report one. A gateway with more nodes than that reporting in
turn finds few of them again before the cache is full; it then starts again empty (no
order to keep per entry), and maps each as it did before there was a cache."""


@dataclass(slots=True)
class _Readings:
    """One session's readings in a Send: each reading's record as the node reported it and
    stored it (``records``), and where its path is at the session (``mapped``), side by side:
    no record is made again at the session's path for a Send, whose pack takes the names
    (``SendPack``)."""

    mapped: list[_Mapped]
    records: list[Record]

    def __len__(self) -> int:
        return len(self.records)

    def names(self) -> list[str]:
        return [m.name for m in self.mapped]

    def upstream(self) -> list[Record]:
        """The records at the session's paths (what series notifications carry)."""
        return [
            Record(m.path, r.value, r.time) for m, r in zip(self.mapped, self.records, strict=True)
        ]


@dataclass
class _Batch:
    """One round of a server: each session's readings, in store order, and the seq of its
    last one; the seq the cursor moves to once all are acknowledged; how many readings of
    that run are skipped."""

    parts: dict[ServerSession, _Readings]
    lasts: dict[ServerSession, int]
    last: int
    skipped: int
    payloads: dict[ServerSession, bytes]
    """The parts' Send payloads, encoded as sizing the batch measured them (checked records)."""


@dataclass(slots=True)
class _Gathered:
    """One session's readings in a batch as it is made: their indexes in the batch (rising)
    and their readings (``_Readings``)."""

    indexes: list[int] = field(default_factory=list)
    readings: _Readings = field(default_factory=lambda: _Readings([], []))

    def before(self, cut: int) -> int:
        """How many of the readings come before index ``cut``."""
        return bisect.bisect_left(self.indexes, cut)


@dataclass(slots=True)
class _Target:
    """Where one node's readings of a batch go: its session's ``part``, at
    ``path(node, local)``; the session had its readings up to seq ``had`` already
    (``_Server.has``); ``mapped`` is the node's paths mapped (``Delivery._mapped``)."""

    session: ServerSession
    part: _Gathered
    path: GatewayPath
    had: int
    mapped: dict[int, _Mapped]


@dataclass
class _Server:
    short_server_id: int
    stats: DeliveryStats = field(default_factory=DeliveryStats)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    registered: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the server (re-)registered: a back-off in progress ends at once."""
    settled: weakref.WeakKeyDictionary[ServerSession, _Settled] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    has: weakref.WeakKeyDictionary[ServerSession, int] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    """The seq up to which a session acknowledged its part of a batch whose other parts must
    go again: the retry leaves those readings out (one measured value, one upstream record)."""
    lingering: Deadline | None = None
    """While a partial batch lingers, its end, which a commit (``notify``) may bring forward."""


_UNSEEN: Any = object()
"""A node not looked up yet in a batch (its target may be None: not exposed)."""


def _run_size(pack: SendPack, run: Sequence[object]) -> int:
    """The Send payload size of the leading ``run`` of ``pack``'s records."""
    return pack.size(len(run))


class Delivery:
    """Delivers ``readings`` to every server of ``client``. Each node's readings go where
    ``route`` says (see the module docstring); without it, through ``client`` at the paths
    ``gateway_path`` maps node-local paths to. ``start``/``stop`` run it; ``notify`` (hook it
    to ``NodeRegistry.on_commit``) says new readings are in the store."""

    def __init__(
        self,
        client: LwM2MClient,
        readings: ReadingStore,
        gateway_path: GatewayPath | None,
        config: DeliveryConfig | None = None,
        *,
        route: Router | None = None,
    ) -> None:
        if route is None:
            if gateway_path is None:
                raise ValueError("delivery needs a gateway_path or a route")
            route = gateway_router(client, gateway_path)
        self.client = client
        self.readings = readings
        self.route = route
        self.config = config or DeliveryConfig()
        self.servers = {s.short_server_id: _Server(s.short_server_id) for s in client.servers}
        for ssid in self.servers:
            # From now on, what arrives is kept for this server until it has it.
            readings.add_consumer(consumer_name(ssid))
        self._tasks: list[asyncio.Task[None]] = []
        self._dropped = sum(readings.dropped().values())
        self._drops = readings.drops
        self._skipping: set[tuple[NodeId, Path]] = set()
        self._mapped: dict[NodeId, dict[int, _Mapped]] = {}
        """Node paths mapped and checked (``_Mapped``): each node's, by the ``id`` of the node
        path, kept while the exposure's mapping is as it was at ``_mapping_changes`` and the
        sessions' definitions are ``_definitions``; ``_mapped_count`` of them in all. A node
        reports the same few resources, and mapping and checking one (the exposure's lookup, a
        new upstream ``Path``, its name, the checks) was about 40 % of a batch's cost per
        reading. A batch finds a node's dict once (its ``_Target``), then each reading's entry
        by its path's ``id``: no hash of a ``Path`` (a Python function), and no key tuple made
        per reading as a ``(node, id(path))`` key would. A reading holds its path object (one
        per node resource from the transport, or the store's parse cache); an equal path that
        is another object misses the entry and maps its own. Forgotten all at once
        (``_forget_mapped``): a target made before keeps its node's dict for its batch, whose
        entries were made for its own session and hold for it."""
        self._mapped_count = 0
        self._mapping_changes = mapping_changes()
        self._definitions: Definitions | None = None
        self._encoder = CompactEncoder()
        """Encodes every batch's Send packs, keeping each ``_Mapped`` name's CBOR from one
        batch to the next (the names are the same strings)."""

    def notify(self, count: int = 0) -> None:
        """New readings are in the store."""
        for server in self.servers.values():
            server.wakeup.set()
            if server.lingering is not None:
                server.lingering.awake()

    def registered(self, short_server_id: int | None = None) -> None:
        """The server (every server, for None) has registered (again): it is there, so a
        back-off after failed Sends ends now and starts from ``retry`` again; after an outage
        the backlog goes at once, not up to ``max_retry`` later."""
        for server in self.servers.values():
            if short_server_id in (None, server.short_server_id):
                server.registered.set()

    def stats(self, short_server_id: int) -> DeliveryStats:
        return self.servers[short_server_id].stats

    def backlog(self, short_server_id: int) -> int:
        """How many readings wait for this server (up to the store's bound)."""
        return self.readings.waiting(consumer_name(short_server_id))

    async def start(self) -> None:
        for server in self.servers.values():
            self._tasks.append(
                asyncio.create_task(self._serve(server), name=f"delivery-{server.short_server_id}")
            )

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()

    # -- one server --------------------------------------------------------------------------

    async def _serve(self, server: _Server) -> None:
        consumer = consumer_name(server.short_server_id)
        config = self.config
        backoff = Backoff(config.retry, config.max_retry)
        failures = 0
        while True:
            pending = self.readings.pending(consumer, config.max_records)
            if not pending:
                await self._wait(server, None)  # until ``notify``: idle means asleep
                continue
            if len(pending) < config.max_records and config.linger:
                await self._linger(server)
                pending = self.readings.pending(consumer, config.max_records)
            batch = self._batch(server, pending)
            if batch is None:
                await self._wait(server, config.poll)
                continue
            self._report_drops()
            server.registered.clear()
            parts = await self._deliver_all(server, batch)
            outcomes = {p.outcome for p in parts}
            self._count(server, parts, batch.skipped if outcomes <= {_Outcome.DELIVERED} else 0)
            if outcomes <= {_Outcome.DELIVERED}:
                self.readings.ack(consumer, batch.last)
                for session in [s for s, seq in server.has.items() if seq <= batch.last]:
                    del server.has[session]
                failures = 0
                continue
            # Some parts went, others must go again: the retry leaves out what went.
            for session, part in zip(batch.parts, parts, strict=True):
                if part.outcome is _Outcome.DELIVERED:
                    server.has[session] = batch.lasts[session]
            if _Outcome.FAILED in outcomes:
                registered = await self._back_off(server, backoff.delay(failures))
                failures = 0 if registered else failures + 1
            else:
                await self._wait(server, config.poll)

    @staticmethod
    def _count(server: _Server, parts: Sequence[_Part], skipped: int) -> None:
        """Count the delivered parts' readings (and ``skipped`` more)."""
        delivered = [p for p in parts if p.outcome is _Outcome.DELIVERED]
        unobserved = sum(p.unobserved for p in delivered)
        server.stats.delivered += sum(p.delivered for p in delivered)
        server.stats.skipped += skipped + unobserved
        server.stats.unobserved += unobserved

    async def _deliver_all(self, server: _Server, batch: _Batch) -> Sequence[_Part]:
        """Every session's part of ``batch``, concurrently (the single part of the modes with
        one client is awaited as it is, with no task)."""
        if len(batch.parts) == 1:
            ((session, readings),) = batch.parts.items()
            return [await self._deliver(server, session, readings, batch.payloads[session])]
        return await asyncio.gather(
            *(
                self._deliver(server, session, readings, batch.payloads[session])
                for session, readings in batch.parts.items()
            )
        )

    async def _deliver(
        self, server: _Server, session: ServerSession, readings: _Readings, payload: bytes
    ) -> _Part:
        """One session's part of a batch: by Send (``payload``: the readings as encoded
        already), or as notifications if it cannot take Send."""
        stats = server.stats
        try:
            outcome = await session.send_encoded(payload, len(readings))
        except (SendUnsupported, SendMuted):
            return await self._notify(server, session, readings.upstream())
        except SendNotRegistered:
            return _Part(_Outcome.WAIT)
        if outcome.delivered:
            stats.sends += 1
            return _Part(_Outcome.DELIVERED, delivered=len(readings))
        stats.failed_sends += 1
        stats.last_error = f"{outcome.status.value} {outcome.detail}".strip()
        return _Part(_Outcome.FAILED)

    async def _notify(
        self, server: _Server, session: ServerSession, records: list[Record]
    ) -> _Part:
        """Deliver ``records`` as series notifications of ``session``'s observations."""
        config, stats = self.config, server.stats
        observations = session.observations
        now = observations.now()
        settled = server.settled.get(session)
        registration = session.registrar.location_path
        if settled is None or registration != settled.registration:
            # Its answer was heard: that is when the registration began, or close after.
            settled = _Settled(registration, observations.heard_at)
            server.settled[session] = settled
        since = max(settled.at, observations.lost_at or settled.at)
        skip = may_skip_unobserved(now, since, observations.heard_at, config.observe_grace)
        if not skip and not all(observations.observes_with_time(r.path) for r in records):
            return _Part(_Outcome.WAIT)
        outcome = await observations.notify_series(records, max_bytes=config.notification_bytes)
        stats.notifications += outcome.notifications
        if not outcome.acknowledged:
            stats.failed_notifications += 1
            stats.last_error = outcome.detail
            server.settled[session] = _Settled(settled.registration, observations.now())
            log.info(
                "server %s: series notification not acknowledged: %s", session.name, outcome.detail
            )
            return _Part(_Outcome.FAILED)
        unobserved = len(outcome.uncovered)
        if unobserved:
            log.info(
                "server %s: %d readings skipped: it has no Send and observes none of their paths"
                " in a format with time (e.g. %s)",
                session.name,
                unobserved,
                records[outcome.uncovered[0]].path,
            )
        return _Part(_Outcome.DELIVERED, delivered=len(records) - unobserved, unobserved=unobserved)

    def _batch(self, server: _Server, pending: Pending) -> _Batch | None:
        """The longest leading run of ``pending`` that goes in one message per session, or None
        when the first reading's session is not registered (yet).

        The run stops before the first reading of a node whose session is not registered, and
        before the first reading that would overflow its session's message or leave its last
        Block1 block nearly empty (``send.whole_blocks``); readings that are
        skipped (not exposed, refused) ride along, so the cursor passes them too."""
        # Each node's target, by its node id (hashed in C, cheaper than an ``id()`` call).
        targets: dict[NodeId, _Target | None] = {}
        # Each route's session, its part and what it had, keyed by the route's ``id`` (the
        # value keeps the route alive while the batch is made): one lookup per route, not per
        # node.
        sessions: dict[int, tuple[Route, ServerSession, _Gathered, int]] = {}
        seqs = pending.seqs
        end = len(seqs)  # the run's end: all of them, or where a session is not registered
        parts: dict[ServerSession, _Gathered] = {}
        had: list[int] = []  # indexes of readings their session acknowledged already
        ssid = server.short_server_id
        if self._mapping_changes != mapping_changes():
            self._forget_mapped()
            self._mapping_changes = mapping_changes()
        for index, (seq, (node, r)) in enumerate(zip(seqs, pending.rows, strict=True)):
            target = targets.get(node, _UNSEEN)
            if target is _UNSEEN:  # the node's first reading in this batch
                route = self.route(node)
                if route is None:
                    target = None
                else:
                    known = sessions.get(id(route))
                    if known is None:
                        found = self._session(route, ssid)
                        if found is None:
                            end = index  # not registered: the run ends here
                            break
                        part = parts.setdefault(found, _Gathered())
                        known = (route, found, part, server.has.get(found, 0))
                        sessions[id(route)] = known
                    _, found, part, at = known
                    if found.tree.definitions is not self._definitions:
                        self._forget_mapped()
                        self._definitions = found.tree.definitions
                    mapped_here = self._mapped.get(node)
                    if mapped_here is None:
                        mapped_here = self._mapped[node] = {}
                    target = _Target(found, part, route.path, at, mapped_here)
                targets[node] = target
            try:
                if target is None:
                    raise LwM2MError(f"node {node} is not exposed")
                if seq <= target.had:
                    had.append(index)
                    continue
                mapped = target.mapped.get(id(r.path))
                if mapped is None:
                    mapped = self._map(target, node, r.path)
                rdef = mapped.rdef
                value = r.value
                if not (rdef.plain_float and type(value) is float and value - value == 0.0):
                    check_value(rdef, value)  # else a finite float: nothing more to check
            except LwM2MError as e:
                self._skip(node, r.path, e)
                continue
            part = target.part
            part.indexes.append(index)
            part.readings.mapped.append(mapped)
            part.readings.records.append(r)
        if not end:
            return None
        cut = end
        packs = {
            session: SendPack(part.readings.names(), part.readings.records, self._encoder)
            for session, part in parts.items()
        }
        for session, part in parts.items():
            # Runs are leading runs of the part: their length names them.
            size = functools.partial(_run_size, packs[session])
            records = part.readings.records
            fit = leading_fit(records, size, self.config.max_bytes)
            if fit < len(records):
                cut = min(cut, part.indexes[fit])
        for session, part in parts.items():  # then to whole Block1 blocks (send.whole_blocks)
            count = part.before(cut)
            if count:
                size = functools.partial(_run_size, packs[session])
                fit = leading_fit(
                    part.readings.records[:count], size, whole_blocks(packs[session].size(count))
                )
                if fit < count:
                    cut = min(cut, part.indexes[fit])
        kept: dict[ServerSession, _Readings] = {}
        lasts: dict[ServerSession, int] = {}
        for session, part in parts.items():
            count = part.before(cut)
            if count:
                readings = part.readings
                kept[session] = _Readings(readings.mapped[:count], readings.records[:count])
                lasts[session] = seqs[part.indexes[count - 1]]
        payloads = {s: packs[s].payload(len(readings)) for s, readings in kept.items()}
        done = sum(1 for i in had if i < cut)
        skipped = cut - done - sum(len(readings) for readings in kept.values())
        return _Batch(kept, lasts, seqs[cut - 1], skipped, payloads)

    def _map(self, target: _Target, node: NodeId, local: Path) -> _Mapped:
        """Map ``node``'s path ``local`` to its session's path and check it there, and keep it
        (``_mapped``); LwM2MError when no Send or notification may carry it."""
        path = target.path(node, local)
        if path is None:
            raise LwM2MError(f"{local} of node {node} is not exposed")
        rdef = check_path(path, target.session.tree.definitions)
        if self._mapped_count >= MAPPED_LIMIT:
            self._forget_mapped()
            target.mapped = self._mapped[node] = {}
        mapped = target.mapped[id(local)] = _Mapped(local, path, str(path), rdef)
        self._mapped_count += 1
        return mapped

    def _forget_mapped(self) -> None:
        """Forget every node path mapped (``_mapped``)."""
        self._mapped.clear()
        self._mapped_count = 0

    @staticmethod
    def _session(route: Route, short_server_id: int) -> ServerSession | None:
        """The registered session of ``route``'s client with this server, if any."""
        if route.client is None:
            return None
        for session in route.client.sessions:
            if session.short_server_id == short_server_id:
                return session if session.registered else None
        return None

    def _skip(self, node: NodeId, path: Path, why: object) -> None:
        """Log a skipped reading once per node and path: a node's /3 values in the instances
        mode, say, are skipped at every report, and a retried batch is skipped again."""
        if (node, path) not in self._skipping:
            self._skipping.add((node, path))
            log.warning(
                "readings of node %s at %s are skipped (counted, logged once): %s",
                node,
                path,
                why,
                extra={"NODE": str(node), "PATH": str(path)},
            )

    async def _linger(self, server: _Server) -> None:
        """Wait ``linger`` seconds for more readings, or less: until a commit ends it early
        (``DeliveryConfig.linger``)."""
        lingered = asyncio.get_running_loop().create_future()

        def end() -> None:
            if not lingered.done():
                lingered.set_result(None)

        linger = self.config.linger
        server.lingering = Deadline(end, linger)
        server.lingering.arm()
        try:
            await lingered
        finally:
            server.lingering.cancel()
            server.lingering = None

    @staticmethod
    async def _back_off(server: _Server, delay: float) -> bool:
        """Wait ``delay`` seconds after a failed batch; True when a registration of the server
        (since the batch began) ended the wait early."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await server.registered.wait()
        return server.registered.is_set()

    async def _wait(self, server: _Server, timeout: float | None) -> None:
        server.wakeup.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await server.wakeup.wait()

    def _report_drops(self) -> None:
        """Log what the store's bounds have discarded since last time (it is counted there),
        once the store says it dropped some (``ReadingStore.drops``)."""
        if self.readings.drops == self._drops:
            return
        self._drops = self.readings.drops
        dropped = self.readings.dropped()
        total = sum(dropped.values())
        if total > self._dropped:
            log.warning(
                "%d readings dropped by the store's bounds before delivery (totals: %s)",
                total - self._dropped,
                ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())),
            )
            self._dropped = total
