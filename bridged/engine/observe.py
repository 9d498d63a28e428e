"""Observe and Observe-Composite toward one server: observations, their scheduler, notifications.

``Observations`` holds every observation a server has on this client, keyed by what aiocoap
keys a request by (the server's remote and the token). It listens to the tree, decides with
``bridged.engine.notification`` (sans-I/O, one ``NotificationState`` per observation) when each
observation is due, and sends the notifications into the observation's aiocoap pipe from a
single scheduler task: a change marks the observations it concerns, and the task wakes once for
all of them, so a node update touching many resources costs one pass, and a thousand
observations cost one heap of wake-up times, not a thousand tasks or timers.

How aiocoap is used (public resource interface only, so it works the same over UDP and DTLS):

* ``DeviceManagementResource.render_to_pipe`` hands a GET or FETCH with Observe=0 to
  ``serve``, which answers it (Observe option set) and keeps the pipe for notifications added
  with ``pipe.add_response(..., is_last=False)``. The render task stays alive while the
  observation does; aiocoap cancels it when the server loses interest (a new request on the
  same token, such as GET with Observe=1; an RST to a confirmable notification; a confirmable
  notification that times out), and the observation is forgotten then.
* Each notification sets its own reliability through ``transport_tuning`` (NON by default, CON
  when ``Reliability`` says so) and the next Observe number of this session, so that numbers
  keep growing even when a server renews an observation on the same token.
* An observation that ends with an error (its path was deleted: 4.04) gets that response as
  the last one. One ended from this side without a message (shutdown, cancel by path) gets a
  last response carrying No-Response for every class (RFC 7967), which aiocoap drops instead
  of sending, closing its bookkeeping for the token.
* An RST to a non-confirmable notification ends its observation too: aiocoap matches RSTs
  only to confirmable messages, so the engine's message layer matches it to the notification
  by Message ID (``bridged.engine.coap``). Either RST also drops the observation's
  notifications that the message layer has not sent yet (held for a Message ID, or queued
  behind another CON): after it, only one already on the wire can reach the server. A server
  that silently forgot an observation is found out by ``Reliability``: a notification is
  confirmable at the latest ``liveness`` seconds after the server fell silent.

Pace: a due notification asks the message layer for a turn (``turns``: one per round-trip
time toward the server, RFC 7641 §4.5.1; ``bridged.engine.coap``). One told to wait leaves the
scheduler's heap and is polled again, rendered from the tree, when its turn comes: each
observation waits at most once, so a burst of changes to thousands of resources costs one
entry per observation, and each sends its latest state, never an older one after a newer.

Queue mode: ``hold`` keeps notifications back (observations keep being evaluated, and those
that become due wait with their pending state, calling ``on_held`` so that the session can wake
up; what is sent is rendered from the tree when it goes, so it is the latest state), and
``release`` sends what is due.

Time series (``notify_series``): store-and-forward hands over readings a server that cannot take
Send has not had yet; each goes, with the time it was measured, in confirmable notifications of
the observations that include its path in a format that carries time (see
``bridged.engine.series``), one at a time, each awaited until the server acknowledges it
(``watch_ack``, ``bridged.engine.coap``). They take the observation's next Observe numbers, and
while one is in flight the observation's own notifications wait: a NON sent meanwhile would
reach the server with a greater number first, and make it drop the series as stale (RFC 7641
§3.4). The observation's own notifications otherwise go on as before (pmin, pmax, the current
value): a series is history, with times, beside them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import aiocoap
from aiocoap.numbers.codes import Code
from aiocoap.pipe import Pipe

from bridged.aio import Flag, cancel_and_wait
from bridged.objects.errors import NotFound, PathError
from bridged.objects.formats import ContentFormat, carries_time, codec_for, composite_codec_for
from bridged.objects.ids import Server
from bridged.objects.linkformat import Attributes
from bridged.objects.paths import ROOT, Level, Path
from bridged.objects.tree import EVERY
from bridged.objects.values import Record

from .dm import DeviceManagement, Reply, Request, reply_message
from .notification import (
    DEFAULT_LIVENESS,
    NotificationState,
    Policy,
    Reliability,
    WakeQueue,
    composite_policy,
    effective_attributes,
    policy_for,
)
from .pacing import Turn, Turns
from .series import SeriesOutcome, split

log = logging.getLogger(__name__)


OBSERVE_MODULO = 1 << 24
"""The Observe option carries a 24-bit sequence number (RFC 7641 §4.4)."""

SILENT = 26
"""No-Response value that suppresses every response class (2.xx, 4.xx, 5.xx; RFC 7967)."""

MAX_OBSERVATIONS = 4096
"""The default bound on one server's observations (``[[server]] max_observations``): each
costs some 9 KB, so the bound keeps a server (or anyone speaking for it) from growing the
process without end. Past it, an Observe is answered as a plain Read (RFC 7641 §4.1)."""

SERIES_MAX_BYTES = 1024
"""The default bound of one series notification's payload: one CoAP datagram without
Block2, which servers do not ask for on notifications."""

SERIES_ACK_TIMEOUT = 100.0
"""How long a series notification waits for its ACK at most: a little over MAX_TRANSMIT_WAIT
(93 s), after which the message layer has given up on it and ended the observation anyway."""


def _watched_object(path: Path) -> int:
    """The object whose value changes an observation of ``path`` needs to hear of
    (``ObjectTree.watch``): the path's, or every object's for the root (and for an end device's
    prefix alone, whose changes come through the end devices' own listener anyway)."""
    return path.ids[0] if path.ids else EVERY


def observed_request(message: aiocoap.Message) -> Request:
    """What an observation re-renders for each notification: the original request (its query
    left out: a notification is the Read's answer, and a cancellation matches without it)."""
    return replace(Request.of(message), query=())


def is_composite(request: Request) -> bool:
    return request.method == int(Code.FETCH)


@dataclass(eq=False)
class Observation:
    """One server observation: what it observes, its pipe and its notification state."""

    key: tuple[object, bytes]
    request: Request
    paths: tuple[Path, ...]
    numeric: Path | None
    pipe: Pipe
    state: NotificationState
    last_con: float
    ended: asyncio.Future[None] = field(repr=False)
    order: int = 0
    gone: bool = False
    content_format: int | None = None  # of the response that started it
    series: bool = False  # a time-series notification is in flight


def observable(message: aiocoap.Message) -> bool:
    """Whether a request starts an observation: GET (but not Discover) or FETCH, Observe=0."""
    if message.opt.observe != 0:
        return False
    if message.code == Code.GET:
        return bool(message.opt.accept != ContentFormat.LINK_FORMAT)
    return bool(message.code == Code.FETCH)


class Observations:
    """The observations of one server on this client's tree, and their scheduler.

    ``server_instance`` is the ID of the server's /1 instance, whose resources 2 and 3 give the
    default pmin and pmax. ``clock`` returns monotonic seconds (the event loop's time by
    default); ``liveness`` is ``Reliability``'s (it may be changed at any time). ``limit`` is
    how many observations the server may have at once (``MAX_OBSERVATIONS``); ``heard_at``
    when the server was last heard before these were made (``now``'s scale), if it was.
    ``close`` ends everything.
    """

    def __init__(
        self,
        dm: DeviceManagement,
        *,
        server_instance: int | None = None,
        clock: Callable[[], float] | None = None,
        liveness: float = DEFAULT_LIVENESS,
        limit: int = MAX_OBSERVATIONS,
        heard_at: float | None = None,
    ) -> None:
        self.dm = dm
        self.limit = limit
        self._at_limit = False  # logged that the limit was reached (again once below it)
        self.tree = dm.tree
        self.server_instance = server_instance
        self._clock = clock
        self.liveness = liveness
        self._reliability = None if heard_at is None else Reliability(heard_at, liveness)
        self._observations: dict[tuple[object, bytes], Observation] = {}
        self._exact: dict[Path, set[Observation]] = {}  # observed path -> observations
        self._under: dict[Path, set[Observation]] = {}  # each ancestor-or-self -> observations
        self._queue: WakeQueue[Observation] = WakeQueue()
        self._ready: set[Observation] = set()
        self._held: set[Observation] | None = None
        self._sequence = itertools.count(1)
        self._order = itertools.count()
        self._wakeup = Flag()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = self.tree.subscribe(
            self._on_change, (Server.OBJECT,)
        )  # its structure, the default attributes (``_on_change``) and what is observed (``_add``)
        if dm.end_devices is not None:
            # A LwM2M Gateway's end devices: their changes concern prefixed observations.
            unsubscribe_tree, unsubscribe_end_devices = (
                self._unsubscribe,
                dm.end_devices.subscribe(self._on_change),
            )

            def unsubscribe() -> None:
                unsubscribe_tree()
                unsubscribe_end_devices()

            self._unsubscribe = unsubscribe
        self.on_held: Callable[[], None] | None = None
        """Called when a notification becomes due while held (queue mode wakes up for it)."""
        self.turns: Turns | None = None
        """The pace of notifications toward the server (the message layer's,
        ``bridged.engine.coap.notification_turns``): a due notification asks it for a turn,
        and one told to wait is rendered when its turn comes, so a burst of changes goes out at
        the server's pace and coalesces into the latest state of each observation instead of
        piling up (RFC 7641 §4.5.1, §3.2). None: every notification goes when due."""
        self.lost_at: float | None = None
        """When an observation last ended from aiocoap's side (``now``'s scale): an RST, a new
        request on its token, or a notification that failed (no ACK, an ICMP error), which
        may mean that the server is gone; None if none has."""
        self.watch_ack: Callable[[aiocoap.Message], asyncio.Future[None]] | None = None
        """A future completed when the server acknowledges a confirmable message about to be
        sent (``bridged.engine.coap.ack_watch``); ``notify_series`` needs it."""

    # -- public interface -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._observations)

    def paths(self) -> list[tuple[Path, ...]]:
        """The paths of each observation, oldest first."""
        return [obs.paths for obs in self._observations.values()]

    def now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def heard(self) -> None:
        """The server showed a sign of life (a request, or a response to one of ours)."""
        self._reliability_now().heard(self.now())

    @property
    def heard_at(self) -> float:
        """When the server last showed a sign of life (``now``'s scale; the first observation
        or ``heard`` counts from then)."""
        return self._reliability_now().last_heard

    @property
    def held(self) -> bool:
        return self._held is not None

    def hold(self) -> None:
        """Stop sending notifications (queue mode: the server cannot be reached). Changes keep
        being evaluated; observations that become due wait, with their pending state, for
        ``release``."""
        if self._held is None:
            self._held = set()

    def release(self) -> None:
        """Send what became due while held (rendered now, so it carries the latest state), then
        carry on as usual."""
        held, self._held = self._held, None
        if held:
            self._ready |= held
            self._wakeup.set()

    def attributes_changed(self, under: Path | None = None) -> None:
        """Attributes changed at ``under`` (None: the server's default pmin and pmax, which
        apply everywhere): recompute the policy of the observations they can affect, and
        evaluate those again.

        Attributes are inherited downward only, object -> instance -> resource -> resource
        instance (LwM2M Core 1.1 §5.1.2; ``effective_attributes``), so those of ``under`` apply
        to the observations of ``under`` and of the paths below it, never to one above it or
        beside it. Only those are touched: a server that writes pmin/pmax on each of n nodes'
        resources then costs O(n) in all, not a pass over every observation per write."""
        affected = self._observations.values() if under is None else self._under.get(under, ())
        if not affected:
            return
        defaults = self._defaults()
        for obs in affected:
            obs.state.policy = self._policy(obs.paths, obs.numeric, defaults)
            self._ready.add(obs)
        self._wakeup.set()

    def cancel_matching(self, remote: object, request: Request) -> None:
        """A GET with Observe=1 on another token: cancel the remote's observations of the same
        request (servers that cancel by path rather than by token)."""
        for obs in list(self._observations.values()):
            if obs.key[0] == remote and obs.request == request:
                self._finish(obs, None)

    async def render_to_pipe(self, pipe: Pipe, render: Callable[[Pipe], Awaitable[None]]) -> None:
        """Serve one request of the server: an observe request here, anything else with
        ``render`` (the plain device-management path). Every request is a sign of life; a GET
        with Observe=1 on another token also cancels the same observation (servers that cancel
        by path); a request that changes the attributes (Write-Attributes, Delete) updates the
        observations' policies."""
        request = pipe.request
        self.heard()
        if observable(request):
            await self.serve(pipe)
            return
        if request.opt.observe == 1 and request.code == Code.GET:
            self.cancel_matching(request.remote, observed_request(request))
        scope = _attributes_scope(request)
        if scope is None:
            await render(pipe)
            return
        attributes = self.dm.attributes
        before = (len(attributes), attributes.get(scope))
        await render(pipe)
        if (len(attributes), attributes.get(scope)) != before:
            self.attributes_changed(scope)

    async def serve(self, pipe: Pipe) -> None:
        """Answer an observe request and keep notifying until the observation ends."""
        message = pipe.request
        request = observed_request(message)
        reply = self._render(request)
        if reply.code >> 5 != 2:
            pipe.add_response(reply_message(reply), is_last=True)
            return
        key = (message.remote, bytes(message.token))
        if key not in self._observations and len(self._observations) >= self.limit:
            self._decline(request)
            pipe.add_response(reply_message(reply), is_last=True)
            return
        paths, numeric = self._targets(request)
        now = self.now()
        obs = Observation(
            key=key,
            request=request,
            paths=paths,
            numeric=numeric,
            pipe=pipe,
            state=NotificationState(self._policy(paths, numeric), now, self._value(numeric)),
            last_con=now,
            ended=asyncio.get_running_loop().create_future(),
            order=next(self._order),
            content_format=reply.content_format,
        )
        if (old := self._observations.get(key)) is not None:
            self._forget(old)
        self._add(obs)
        first = reply_message(reply)
        first.opt.observe = self._next_sequence()
        pipe.add_response(first, is_last=False)
        self._ensure_task()
        try:
            await obs.ended
        except asyncio.CancelledError:
            self.lost_at = self.now()
            raise
        finally:
            self._forget(obs)

    def _decline(self, request: Request) -> None:
        """Answer without observing (RFC 7641 §4.1: the response has no Observe option, and the
        server knows it is not observing); logged once each time the limit is reached."""
        if not self._at_limit:
            self._at_limit = True
            log.warning(
                "the server has %d observations, the most allowed (max_observations);"
                " further Observe requests (first: /%s) are answered without observing",
                len(self._observations),
                "/".join(request.segments),
            )

    def observes_with_time(self, path: Path) -> bool:
        """Whether an observation includes ``path`` in a format that carries time, i.e. whether
        ``notify_series`` can deliver a record of it now."""
        return any(carries_time(obs.content_format) for obs in self._observing(path))

    async def notify_series(
        self,
        records: Sequence[Record],
        *,
        max_bytes: int = SERIES_MAX_BYTES,
        timeout: float = SERIES_ACK_TIMEOUT,
    ) -> SeriesOutcome:
        """Deliver ``records``, values with the time each was measured, oldest first, in
        notifications of the observations that include their paths in a format that carries
        time (see the module docstring).

        Each such observation gets its records in order, as many per notification as fit
        ``max_bytes``; every notification is confirmable and awaited until the server
        acknowledges it. The first one that is not (RST, no ACK within ``timeout``, the
        observation ended, queue mode holds notifications) stops the series: the caller keeps
        the records and tries again later, so a server may get a record twice, never out of
        order.
        """
        plan: dict[Observation, list[Record]] = {}
        uncovered: list[int] = []
        for index, record in enumerate(records):
            targets = [o for o in self._observing(record.path) if carries_time(o.content_format)]
            if not targets:
                uncovered.append(index)
            for obs in targets:
                plan.setdefault(obs, []).append(record)
        if not plan:
            return SeriesOutcome(True, 0, tuple(uncovered))
        if self._held is not None:
            if self.on_held is not None:
                self.on_held()
            return SeriesOutcome(False, 0, tuple(uncovered), "notifications are held (queue mode)")
        if self.watch_ack is None:
            return SeriesOutcome(
                False, 0, tuple(uncovered), "acknowledgements cannot be seen on this transport"
            )
        sent = 0
        for obs in sorted(plan, key=lambda o: o.order):
            encode = self._series_encoder(obs)
            for run in split(plan[obs], lambda run: len(encode(run)), max_bytes):  # noqa: B023
                detail = await self._notify_series(obs, encode(run), timeout)
                if detail:
                    return SeriesOutcome(False, sent, tuple(uncovered), detail)
                sent += 1
        return SeriesOutcome(True, sent, tuple(uncovered))

    async def close(self) -> None:
        """End every observation without a message, stop the scheduler, leave the tree."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for obs in list(self._observations.values()):
            self._finish(obs, None)
        await cancel_and_wait(self._task)
        self._task = None

    # -- bookkeeping ------------------------------------------------------------------------

    def _add(self, obs: Observation) -> None:
        self._observations[obs.key] = obs
        self.tree.watch(*map(_watched_object, obs.paths))
        for path in obs.paths:
            self._exact.setdefault(path, set()).add(obs)
            for level in range(len(path.ids) + 1):
                self._under.setdefault(path.truncate(Level(level)), set()).add(obs)
        self._queue.set(obs, obs.state.next_wake())
        # The scheduler may be asleep toward a later time than this one's, or toward none.
        self._wakeup.set()

    def _forget(self, obs: Observation) -> None:
        if self._observations.get(obs.key) is not obs:
            return
        del self._observations[obs.key]
        self.tree.unwatch(*map(_watched_object, obs.paths))
        for path in obs.paths:
            _discard(self._exact, path, obs)
            for level in range(len(path.ids) + 1):
                _discard(self._under, path.truncate(Level(level)), obs)
        self._queue.discard(obs)
        self._ready.discard(obs)
        if self._held is not None:
            self._held.discard(obs)
        if self.turns is not None:
            self.turns.withdraw(obs.key[0], obs)
        if len(self._observations) < self.limit:
            self._at_limit = False
        if not obs.ended.done():
            obs.ended.set_result(None)

    def _finish(self, obs: Observation, reply: Reply | None) -> None:
        """End ``obs`` with ``reply`` as its last response (None: silently)."""
        last = reply_message(reply) if reply is not None else aiocoap.Message(code=Code.NOT_FOUND)
        if reply is None:
            last.opt.no_response = SILENT
        self._forget(obs)
        self._add_response(obs, last, is_last=True)

    def _on_change(self, path: Path) -> None:
        # Every reading's tree update comes here: its IDs are read once, and nothing is built
        # while nobody observes.
        ids = path.ids
        if (
            ids[:2] == (Server.OBJECT, self.server_instance)
            and path.resource_id in (None, Server.DEFAULT_PMIN, Server.DEFAULT_PMAX)
            and self._observations
        ):
            self.attributes_changed()
        if not self._exact:
            return
        affected = set(self._under.get(path, ()))
        # Every path above this one; built directly.
        for depth in range(len(ids)):
            above = self._exact.get(Path.derived(ids[:depth], path.prefix))
            if above:
                affected |= above
        if not affected:
            return
        now = self.now()
        for obs in affected:
            if not is_composite(obs.request) and not self._has(obs.paths[0]):
                obs.gone = True
            obs.state.change(now)
        self._ready |= affected
        self._wakeup.set()

    # -- the scheduler ----------------------------------------------------------------------

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="lwm2m-notifications")

    async def _run(self) -> None:
        """Step, then sleep until the earliest wake-up time or until ``_wakeup`` is set: every
        change outside a step that can make something due sooner (a new observation, new
        attributes, a change of an observed path, a release) sets it."""
        while True:
            self._wakeup.clear()
            self.step(self.now())
            wake = self._queue.next_wake()
            timeout = None if wake is None else max(0.0, wake - self.now())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()

    def step(self, now: float) -> None:
        """Poll every observation that changed or whose time has come, oldest first; send what
        is due."""
        due = self._ready
        self._ready = set()
        due.update(self._queue.pop_due(now))
        for obs in sorted(due, key=lambda o: o.order):
            if self._observations.get(obs.key) is obs:
                self._poll(obs, now)

    def _poll(self, obs: Observation, now: float, turn: Turn | None = None) -> None:
        """Send what ``obs`` has due (``turn``: the one the pace gave it, if it waited)."""
        if self._held is not None and obs in self._held:
            return
        if obs.series:
            return  # polled again when the series notification is settled
        if obs.gone:
            if self._held is not None:
                self._keep(obs)
            else:
                self._finish(obs, self._render(obs.request))
            return
        value = self._value(obs.numeric)
        if obs.state.poll(now, value):
            if self._held is not None:
                self._queue.discard(obs)
                self._keep(obs)
                return
            if turn is None and self.turns is not None:
                turn = self.turns.turn(obs.key[0], obs, partial(self._granted, obs))
                if turn is Turn.WAIT:
                    # Polled again at its turn (a change meanwhile keeps its place).
                    self._queue.discard(obs)
                    return
            self._notify(obs, now, value, confirmable=turn is Turn.CON)
        if self._observations.get(obs.key) is obs:
            self._queue.set(obs, obs.state.next_wake())

    def _granted(self, obs: Observation, turn: Turn) -> None:
        """The pace gave ``obs`` its turn: it notifies now, rendered now."""
        if self._observations.get(obs.key) is obs:
            self._poll(obs, self.now(), turn)

    async def _notify_series(self, obs: Observation, payload: bytes, timeout: float) -> str:
        """Send one confirmable series notification on ``obs`` and await its ACK; "" once
        acknowledged, else why not."""
        if self._observations.get(obs.key) is not obs:
            return f"the observation of {obs.paths[0]} ended"
        assert self.watch_ack is not None and obs.content_format is not None
        message = aiocoap.Message(code=Code.CONTENT, payload=payload)
        message.opt.content_format = obs.content_format
        message.opt.observe = self._next_sequence()
        message.transport_tuning = aiocoap.Reliable()
        ack = self.watch_ack(message)
        obs.series = True
        try:
            now = self.now()
            self._reliability_now().sent(now, confirmable=True)
            obs.last_con = now
            self._add_response(obs, message, is_last=False)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.wait((ack, obs.ended), return_when=asyncio.FIRST_COMPLETED)
            acknowledged = ack.done() and not ack.cancelled()
        finally:
            ack.cancel()
            obs.series = False
            if self._observations.get(obs.key) is obs:
                self._ready.add(obs)
                self._wakeup.set()
        if acknowledged:
            self.heard()
            return ""
        if obs.ended.done():
            return f"the observation of {obs.paths[0]} ended before the server acknowledged"
        return f"no acknowledgement within {timeout:g} s"

    def _series_encoder(self, obs: Observation) -> Callable[[Sequence[Record]], bytes]:
        """How records go in a notification of ``obs``: its format, named as its reads are."""
        assert obs.content_format is not None
        codec = codec_for(obs.content_format)
        base = ROOT if is_composite(obs.request) else obs.paths[0]
        definitions = self.tree.definitions if base == ROOT else self.dm.tree_for(base).definitions
        return lambda records: codec.encode(records, base, definitions)

    def _observing(self, path: Path) -> list[Observation]:
        """The observations that include ``path``, oldest first."""
        found: set[Observation] = set(self._exact.get(ROOT, ()))
        for level in range(len(path.ids) + 1):
            found |= self._exact.get(path.truncate(Level(level)), set())
        return sorted(found, key=lambda o: o.order)

    def _keep(self, obs: Observation) -> None:
        assert self._held is not None
        self._held.add(obs)
        if self.on_held is not None:
            self.on_held()

    def _notify(
        self, obs: Observation, now: float, value: object, *, confirmable: bool = False
    ) -> None:
        """Send ``obs``'s notification; ``confirmable``: CON whatever ``Reliability`` says (the
        pace asks for one to measure the server's RTT)."""
        reply = self._render(obs.request)
        if reply.code >> 5 != 2:
            self._finish(obs, reply)
            return
        reliability = self._reliability_now()
        confirmable = confirmable or reliability.confirmable(now, obs.last_con)
        message = reply_message(reply)
        message.opt.observe = self._next_sequence()
        message.transport_tuning = aiocoap.Reliable() if confirmable else aiocoap.Unreliable()
        obs.state.sent(now, value)
        reliability.sent(now, confirmable=confirmable)
        if confirmable:
            obs.last_con = now
        self._add_response(obs, message, is_last=False)

    def _add_response(self, obs: Observation, message: aiocoap.Message, *, is_last: bool) -> None:
        """Hand a response to aiocoap. An exception from the pipe (aiocoap 0.4.17 raises
        ``TypeError: 'bool' object is not iterable`` when a send error ends the pipe while it is
        delivering) ends this observation, never the scheduler and the others."""
        try:
            obs.pipe.add_response(message, is_last=is_last)
        except Exception:
            log.warning("observation of %s ended while notifying", obs.paths, exc_info=True)
            self._forget(obs)

    # -- helpers ----------------------------------------------------------------------------

    def _reliability_now(self) -> Reliability:
        if self._reliability is None:
            self._reliability = Reliability(self.now(), self.liveness)
        self._reliability.liveness = self.liveness
        return self._reliability

    def _next_sequence(self) -> int:
        return next(self._sequence) % OBSERVE_MODULO

    def _render(self, request: Request) -> Reply:
        return self.dm.handle(request)

    def _targets(self, request: Request) -> tuple[tuple[Path, ...], Path | None]:
        """The observed paths, and the one numeric path when gt/lt/st can apply."""
        if is_composite(request):
            assert request.content_format is not None  # the first read succeeded
            codec = composite_codec_for(request.content_format)
            return tuple(codec.decode_paths(request.payload)), None
        path = Path.from_segments(request.segments)
        return (path,), path if self.dm.numeric(path) else None

    def _defaults(self) -> Attributes:
        if self.server_instance is None:
            return Attributes()
        server = Path((Server.OBJECT, self.server_instance))
        periods: dict[str, int] = {}
        for name, rid in (("pmin", Server.DEFAULT_PMIN), ("pmax", Server.DEFAULT_PMAX)):
            if self.tree.has(server.child(rid)):
                value = self.tree.get(server.child(rid))
                if isinstance(value, int) and not isinstance(value, bool):
                    periods[name] = value
        return Attributes(**periods)  # type: ignore[arg-type]

    def _policy(
        self, paths: Sequence[Path], numeric: Path | None, defaults: Attributes | None = None
    ) -> Policy:
        d = self._defaults() if defaults is None else defaults
        if numeric is not None:
            return policy_for(effective_attributes(self.dm.attributes, numeric, d), numeric=True)
        policies = [
            policy_for(effective_attributes(self.dm.attributes, p, d), numeric=False) for p in paths
        ]
        return policies[0] if len(paths) == 1 else composite_policy(policies)

    def _has(self, path: Path) -> bool:
        """Whether ``path`` exists, in the tree or in the end device its prefix names."""
        try:
            return self.dm.tree_for(path).has(path)
        except NotFound:
            return False

    def _value(self, numeric: Path | None) -> object:
        if numeric is None or not self._has(numeric):
            return None
        return self.dm.tree_for(numeric).get(numeric)


def _attributes_scope(message: aiocoap.Message) -> Path | None:
    """The path under which ``message`` can change attributes: a PUT (Write-Attributes) sets
    those of its path, a DELETE drops those of its path and below; None for anything else.
    (A request that finds its end device gone also drops that device's attributes; its
    observations end then, told by ``EndDevices.subscribe``.)"""
    if message.code not in (Code.PUT, Code.DELETE):
        return None
    try:
        return Path.from_segments(message.opt.uri_path)
    except PathError:
        return None  # refused by the device management without changing anything


def _discard(index: dict[Path, set[Observation]], path: Path, obs: Observation) -> None:
    members = index.get(path)
    if members is not None:
        members.discard(obs)
        if not members:
            del index[path]
