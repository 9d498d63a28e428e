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
* aiocoap ignores an RST to a non-confirmable notification (it only matches RSTs to
  confirmable messages), so that cancellation is seen only when a later notification is
  confirmable: ``Reliability`` makes one so at the latest ``liveness`` seconds after the
  server fell silent.

Queue mode: ``hold`` keeps notifications back (observations keep being evaluated, and those
that become due wait with their pending state, calling ``on_held`` so that the session can wake
up; what is sent is rendered from the tree when it goes, so it is the latest state), and
``release`` sends what is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiocoap
from aiocoap.numbers.codes import Code
from aiocoap.pipe import Pipe

from bridged.objects.errors import NotFound
from bridged.objects.formats import ContentFormat, composite_codec_for
from bridged.objects.linkformat import Attributes
from bridged.objects.paths import Level, Path

from .dm import DeviceManagement, Reply, reply_message
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

log = logging.getLogger(__name__)

SERVER_OBJECT = 1
DEFAULT_PMIN, DEFAULT_PMAX = 2, 3
"""/1/x/2 Default Minimum Period and /1/x/3 Default Maximum Period."""

OBSERVE_MODULO = 1 << 24
"""The Observe option carries a 24-bit sequence number (RFC 7641 §4.4)."""

SILENT = 26
"""No-Response value that suppresses every response class (2.xx, 4.xx, 5.xx; RFC 7967)."""


@dataclass(frozen=True, slots=True)
class ObserveRequest:
    """What an observation re-renders for each notification: the original request."""

    method: int
    segments: tuple[str, ...]
    payload: bytes = b""
    content_format: int | None = None
    accept: int | None = None

    @classmethod
    def of(cls, message: aiocoap.Message) -> ObserveRequest:
        opt = message.opt
        return cls(
            int(message.code),
            tuple(opt.uri_path),
            bytes(message.payload),
            None if opt.content_format is None else int(opt.content_format),
            None if opt.accept is None else int(opt.accept),
        )

    @property
    def composite(self) -> bool:
        return self.method == int(Code.FETCH)


@dataclass(eq=False)
class Observation:
    """One server observation: what it observes, its pipe and its notification state."""

    key: tuple[object, bytes]
    request: ObserveRequest
    paths: tuple[Path, ...]
    numeric: Path | None
    pipe: Pipe
    state: NotificationState
    last_con: float
    ended: asyncio.Future[None] = field(repr=False)
    order: int = 0
    gone: bool = False


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
    default); ``liveness`` is ``Reliability``'s (it may be changed at any time). ``close``
    ends everything.
    """

    def __init__(
        self,
        dm: DeviceManagement,
        *,
        server_instance: int | None = None,
        clock: Callable[[], float] | None = None,
        liveness: float = DEFAULT_LIVENESS,
    ) -> None:
        self.dm = dm
        self.tree = dm.tree
        self.server_instance = server_instance
        self._clock = clock
        self.liveness = liveness
        self._reliability: Reliability | None = None
        self._observations: dict[tuple[object, bytes], Observation] = {}
        self._exact: dict[Path, set[Observation]] = {}  # observed path -> observations
        self._under: dict[Path, set[Observation]] = {}  # each ancestor-or-self -> observations
        self._queue: WakeQueue[Observation] = WakeQueue()
        self._ready: set[Observation] = set()
        self._held: set[Observation] | None = None
        self._sequence = itertools.count(1)
        self._order = itertools.count()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = self.tree.subscribe(self._on_change)
        if dm.devices is not None:
            # A LwM2M Gateway's end devices: their changes concern prefixed observations.
            unsubscribe_tree, unsubscribe_devices = (
                self._unsubscribe,
                dm.devices.subscribe(self._on_change),
            )

            def unsubscribe() -> None:
                unsubscribe_tree()
                unsubscribe_devices()

            self._unsubscribe = unsubscribe
        self.on_held: Callable[[], None] | None = None
        """Called when a notification becomes due while held (queue mode wakes up for it)."""
        self.send_delay: Callable[[object], float] | None = None
        """Seconds before a message to a remote would leave at once (the message layer's
        Message-ID pacing, ``bridged.engine.coap.send_delay``). While it is positive, due
        notifications wait here rather than queue below: what finally goes is rendered then,
        so a burst of changes coalesces into the latest state instead of piling up."""

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

    def attributes_changed(self) -> None:
        """Write-Attributes changed ``dm.attributes``: recompute every observation's policy."""
        defaults = self._defaults()
        for obs in self._observations.values():
            obs.state.policy = self._policy(obs.paths, obs.numeric, defaults)
            self._ready.add(obs)
        self._wakeup.set()

    def cancel_matching(self, remote: object, request: ObserveRequest) -> None:
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
            self.cancel_matching(request.remote, ObserveRequest.of(request))
        before = dict(self.dm.attributes) if request.code in (Code.PUT, Code.DELETE) else None
        await render(pipe)
        if before is not None and before != self.dm.attributes:
            self.attributes_changed()

    async def serve(self, pipe: Pipe) -> None:
        """Answer an observe request and keep notifying until the observation ends."""
        message = pipe.request
        request = ObserveRequest.of(message)
        reply = self._render(request)
        if reply.code >> 5 != 2:
            pipe.add_response(reply_message(reply), is_last=True)
            return
        key = (message.remote, bytes(message.token))
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
        finally:
            self._forget(obs)

    async def close(self) -> None:
        """End every observation without a message, stop the scheduler, leave the tree."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for obs in list(self._observations.values()):
            self._finish(obs, None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- bookkeeping ------------------------------------------------------------------------

    def _add(self, obs: Observation) -> None:
        self._observations[obs.key] = obs
        for path in obs.paths:
            self._exact.setdefault(path, set()).add(obs)
            for level in range(len(path.ids) + 1):
                self._under.setdefault(path.truncate(Level(level)), set()).add(obs)
        self._queue.set(obs, obs.state.next_wake())

    def _forget(self, obs: Observation) -> None:
        if self._observations.get(obs.key) is not obs:
            return
        del self._observations[obs.key]
        for path in obs.paths:
            _discard(self._exact, path, obs)
            for level in range(len(path.ids) + 1):
                _discard(self._under, path.truncate(Level(level)), obs)
        self._queue.discard(obs)
        self._ready.discard(obs)
        if self._held is not None:
            self._held.discard(obs)
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
        server = path.object_id == SERVER_OBJECT and path.instance_id == self.server_instance
        if server and path.resource_id in (None, DEFAULT_PMIN, DEFAULT_PMAX) and self._observations:
            self.attributes_changed()
        affected = set(self._under.get(path, ()))
        for level in range(len(path.ids)):
            affected |= self._exact.get(path.truncate(Level(level)), set())
        if not affected:
            return
        now = self.now()
        for obs in affected:
            if not obs.request.composite and not self._has(obs.paths[0]):
                obs.gone = True
            obs.state.change(now)
        self._ready |= affected
        self._wakeup.set()

    # -- the scheduler ----------------------------------------------------------------------

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="lwm2m-notifications")

    async def _run(self) -> None:
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

    def _poll(self, obs: Observation, now: float) -> None:
        if self._held is not None and obs in self._held:
            return
        if obs.gone:
            if self._held is not None:
                self._keep(obs)
            else:
                self._finish(obs, self._render(obs.request))
            return
        if self.send_delay is not None and (delay := self.send_delay(obs.key[0])) > 0:
            self._queue.set(obs, now + delay)
            return
        value = self._value(obs.numeric)
        if obs.state.poll(now, value):
            if self._held is not None:
                self._queue.discard(obs)
                self._keep(obs)
                return
            self._notify(obs, now, value)
        if self._observations.get(obs.key) is obs:
            self._queue.set(obs, obs.state.next_wake())

    def _keep(self, obs: Observation) -> None:
        assert self._held is not None
        self._held.add(obs)
        if self.on_held is not None:
            self.on_held()

    def _notify(self, obs: Observation, now: float, value: object) -> None:
        reply = self._render(obs.request)
        if reply.code >> 5 != 2:
            self._finish(obs, reply)
            return
        reliability = self._reliability_now()
        confirmable = reliability.confirmable(now, obs.last_con)
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

    def _render(self, request: ObserveRequest) -> Reply:
        return self.dm.handle(
            request.method,
            request.segments,
            (),
            request.payload,
            request.content_format,
            request.accept,
        )

    def _targets(self, request: ObserveRequest) -> tuple[tuple[Path, ...], Path | None]:
        """The observed paths, and the one numeric path when gt/lt/st can apply."""
        if request.composite:
            assert request.content_format is not None  # the first read succeeded
            codec = composite_codec_for(request.content_format)
            return tuple(codec.decode_paths(request.payload)), None
        path = Path.from_segments(request.segments)
        return (path,), path if self.dm.numeric(path) else None

    def _defaults(self) -> Attributes:
        if self.server_instance is None:
            return Attributes()
        server = Path((SERVER_OBJECT, self.server_instance))
        periods: dict[str, int] = {}
        for name, rid in (("pmin", DEFAULT_PMIN), ("pmax", DEFAULT_PMAX)):
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


def _discard(index: dict[Path, set[Observation]], path: Path, obs: Observation) -> None:
    members = index.get(path)
    if members is not None:
        members.discard(obs)
        if not members:
            del index[path]
