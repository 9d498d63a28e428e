"""The registration interface toward one LwM2M server: Register, Update, De-register.

One ``Registrar`` per server runs as a task. It registers, keeps the registration alive with
Updates before the lifetime runs out, sends an Update at once when asked (objects changed,
/1/x/8 executed), and registers again from scratch when an Update gets 4.04 or no answer. A
server that does not answer never stops the daemon: attempts back off as the Server object's
Communication Retry resources (/1/x/17-20) say, then go on at the sequence delay.

Every state change is a ``RegistrationEvent``, which the daemon reports in its status and logs,
like the RD client events of the Zephyr LwM2M client.

The registrar talks through an ``Uplink`` (plain UDP or DTLS-PSK), and its ``exchange`` is the
one way the session's own requests reach the server, so the Send operation gets the same
timeout, the same recovery of a lost DTLS session and the same "the client spoke" signal that
queue mode keys on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import aiocoap
from aiocoap.numbers.codes import Code

from bridged.aio import Flag, cancel_and_wait

from .block1 import Exchange
from .uplink import UdpUplink, Uplink
from .wheel import Wheel

T = TypeVar("T")

log = logging.getLogger(__name__)

LINK_FORMAT = 40
PRECONDITION_FAILED = Code.PRECONDITION_FAILED  # 4.12: the server refuses this LwM2M version


class RegistrationState(Enum):
    """Where a registrar stands."""

    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    UPDATING = "updating"
    RETRY_WAIT = "retry-wait"
    DEREGISTERING = "deregistering"
    DEREGISTERED = "deregistered"


class EventKind(Enum):
    """Registration events (compare the Zephyr RD client's)."""

    REGISTRATION_COMPLETE = "registration-complete"
    REGISTRATION_FAILURE = "registration-failure"
    UPDATE_COMPLETE = "update-complete"
    UPDATE_FAILURE = "update-failure"
    DEREGISTERED = "deregistered"
    DEREGISTER_FAILURE = "deregister-failure"
    VERSION_FALLBACK = "version-fallback"


@dataclass(frozen=True, slots=True)
class RegistrationEvent:
    kind: EventKind
    server: str
    state: RegistrationState
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """/1/x/17-20 with the LwM2M 1.1 defaults.

    Within a sequence, attempt ``n`` (from 1) waits ``timer * 2**(n-1)`` seconds after failing;
    after ``count`` attempts the sequence has failed and the next starts after
    ``sequence_delay``. After ``sequence_count`` sequences the registrar keeps trying at the
    sequence delay instead of giving up, because a gateway must come back on its own.
    """

    count: int = 5
    timer: float = 60.0
    sequence_delay: float = 86400.0
    sequence_count: int = 1

    def delays(self) -> list[float]:
        """The waits after each failed attempt of one sequence."""
        return [self.timer * 2 ** (n - 1) for n in range(1, max(self.count, 1) + 1)]


@dataclass(frozen=True, slots=True, weakref_slot=True)
class RegistrationParams:
    """What a Register carries and an Update may carry when it changed."""

    lifetime: int
    binding: str
    queue: bool
    links: str

    def kept(self, payload: bytes) -> RegistrationParams:
        """These parameters as a registration keeps what it sent: the object list as the
        SHA-256 (hex) of ``payload``, its encoded text (which the caller has made for the
        request), as only whether it changed matters, and the text is 0.5 MB with 10,000
        nodes in the instances mode. One object for all equal kept parameters (``_KEPT``),
        digest included: every node endpoint of one kind of node registers the same object
        list and keeps it (68 bytes each)."""
        key = (self.lifetime, self.binding, self.queue, hashlib.sha256(payload).hexdigest())
        kept = _KEPT.get(key)
        if kept is None:
            kept = _KEPT[key] = replace(self, links=key[3])
        return kept


_KEPT: weakref.WeakValueDictionary[tuple[int, str, bool, str], RegistrationParams] = (
    weakref.WeakValueDictionary()
)
"""The registrations' kept parameters (``RegistrationParams.kept``), one for all equal ones,
for as long as a registration keeps them (a weak value: the key is not the value)."""


@dataclass(frozen=True, slots=True)
class ServerTarget:
    """Where to register, and how: one for all the registrations with one server (the
    endpoints mode's 10,000 node endpoints, 72 bytes each, issue 17); as whom is the
    ``Registrar``'s own ``endpoint``.

    ``origin``, ``base_path`` and ``base_query`` are the URI's parts a registration's requests
    are made of (``Registrar.uri``): the target's, not three slots of each registrar (24
    bytes of each of 10,000 node endpoints, 32 as allocated, issue 17)."""

    uri: str
    version: str = "1.1"
    request_timeout: float = 93.0
    retry: RetryPolicy = RetryPolicy()
    origin: str = field(init=False, repr=False, compare=False)
    base_path: tuple[str, ...] = field(init=False, repr=False, compare=False)
    base_query: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        split = urlsplit(self.uri)
        object.__setattr__(self, "origin", f"{split.scheme}://{split.netloc}")
        object.__setattr__(self, "base_path", tuple(s for s in split.path.split("/") if s))
        object.__setattr__(self, "base_query", tuple(q for q in split.query.split("&") if q))

    @property
    def name(self) -> str:
        return self.uri


MIN_UPDATE_INTERVAL = 1.0
"""The shortest time between two Updates, whatever the lifetime and however often one is asked
for. A lifetime as short as the margin would otherwise make the next Update due the moment the
last one was answered: hundreds a second; so would nodes that come and go in a burst, each
changing the object list. With the floor a 1 s lifetime gets one Update a second, answered
about as it ends, and a burst of changes goes out together in the next Update."""


def update_margin(lifetime: int) -> float:
    """How long before the lifetime ends the Update goes out: 10%, between 1 s and 93 s.

    93 s is CoAP's MAX_TRANSMIT_WAIT, the longest a CON Update may take to be answered.
    """
    return min(max(lifetime * 0.1, 1.0), 93.0)


def update_interval(lifetime: int) -> float:
    """How long after a Register or Update was answered the next Update goes out: before the
    lifetime ends by ``update_margin``, never sooner than ``MIN_UPDATE_INTERVAL``."""
    return max(lifetime - update_margin(lifetime), MIN_UPDATE_INTERVAL)


_UNREACHABLE = {
    errno.ECONNREFUSED: "refused: nothing listens on its port (ICMP port unreachable)",
    errno.EHOSTUNREACH: "unreachable: no route to the host",
    errno.ENETUNREACH: "unreachable: no route to its network",
    errno.EACCES: "refused by this machine: sending to it is not permitted",
}


def failure_text(error: BaseException, server: str = "", timeout: float | None = None) -> str:
    """An exchange's failure as an event tells it, in words a user acts on: ``server``
    refused (nothing listens on its port), unreachable (no route), its name does not resolve,
    or it timed out; else the error's class and message, so that a DTLS handshake error says
    what to check (the PSK identity and key). aiocoap's NetworkError reads "Network error:
    NetworkError" whatever happened: the socket error it wraps says what did."""
    who = f"{server} " if server else ""
    cause = error.__cause__ if isinstance(error, aiocoap.error.NetworkError) else error
    code = getattr(cause, "errno", None)
    if code in _UNREACHABLE:
        return f"{who}{_UNREACHABLE[code]}"
    if isinstance(error, aiocoap.error.ResolutionError):
        return f"{who}unreachable: {error}"
    if isinstance(error, (TimeoutError, aiocoap.error.TimeoutError)):
        within = "" if timeout is None else f" within {timeout:g} s"
        return f"{who}timed out: no answer{within}"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def next_try_text(seconds: float) -> str:
    """When a failed registration is tried again: ``next try in 60 s, at 23:21:05`` (local
    time, so that a status read later still says when)."""
    at = time.strftime("%H:%M:%S", time.localtime(time.time() + seconds))
    return f"next try in {seconds:g} s, at {at}"


def register_query(endpoint: str, params: RegistrationParams, version: str) -> list[str]:
    """The Register query. 1.1+ has a separate valueless ``Q``; 1.0 says ``b=UQ``."""
    q = [f"ep={endpoint}", f"lt={params.lifetime}", f"lwm2m={version}"]
    if version == "1.0":
        q.append(f"b={params.binding}{'Q' if params.queue else ''}")
    else:
        q.append(f"b={params.binding}")
        if params.queue:
            q.append("Q")
    return q


class Registrant(Protocol):
    """Whom a registration is for (a client's ``ServerSession``): an object, not two bound
    methods, which were 128 bytes of each of the endpoints mode's 10,000 (issue 17)."""

    def params(self) -> RegistrationParams:
        """What the registration carries now."""

    def answered(self) -> None:
        """The server answered one of the registrar's requests (queue mode's "the client
        spoke")."""


class Registrar:
    """Keeps one registration alive: ``start`` it (or run ``run()`` as a task). Slotted
    (``ServerSession``)."""

    __slots__ = (
        "_clock",
        "_location",
        "_moved",
        "_on_event",
        "_register_again",
        "_registered_at",
        "_registrant",
        "_sent",
        "_stopping",
        "_task",
        "_update_due",
        "_wake",
        "_wheel_key",
        "endpoint",
        "state",
        "target",
        "uplink",
        "version",
    )

    def __init__(
        self,
        uplink: Uplink | aiocoap.Context,
        target: ServerTarget,
        registrant: Registrant,
        on_event: Callable[[RegistrationEvent], None] = lambda e: None,
        clock: Callable[[], float] = time.monotonic,
        *,
        endpoint: str,
    ) -> None:
        """``uplink`` carries the requests (a bare context is plain UDP); ``endpoint`` is the
        endpoint name to register as."""
        self.uplink = UdpUplink(uplink) if isinstance(uplink, aiocoap.Context) else uplink
        self.target = target
        self.endpoint = endpoint
        self._registrant = registrant
        self._on_event = on_event
        self._clock = clock
        self.state = RegistrationState.IDLE
        self._location: str | None = None
        """The Location-Path of the registration, its segments joined by "/" as in the URI:
        one string, not a tuple of them (about 100 bytes less of each of 10,000 node
        endpoints, issue 17)."""
        self.version = target.version
        self._sent: RegistrationParams | None = None
        """What the last Register or Update carried (``RegistrationParams.kept``)."""
        self._registered_at = 0.0
        self._wake: Flag | None = None
        """Set when an Update is asked for or the registrar is to stop; None is cleared: a
        flag is made only to be set or waited on (``_woken``), not for each quiet
        registration (48 bytes of each of 10,000 node endpoints, issue 17). One task of the
        registrar at a time waits on it, and it clears it (drops it) before it waits."""
        self._update_due = False
        """An Update was asked for that no Register or Update has read the parameters for
        yet: the server was not told of the change. ``_wake`` cannot say so: the wait out the
        floor between Updates clears it, and a Send in that second went out ahead of the
        Update (``announced``)."""
        self._moved: Flag | None = None
        """Set, and dropped, at every change of state; made only for a waiter (``announced``)."""
        self._task: asyncio.Task[None] | None = None
        self._wheel_key: int | None = None
        """The key of the deadline on the wheel (``Wheel.add``) the next Update waits for while
        quiet."""
        self._stopping = False
        self._register_again = False

    # -- public ------------------------------------------------------------------------------

    def trigger_update(self) -> None:
        """Send an Update now (objects changed, /1/x/8 executed, lt or b written).

        Ignored while waiting to retry a failed Register: the next Register reads the current
        parameters anyway, and a busy tree must not cut the back-off toward a dead server short.
        """
        if self.state is not RegistrationState.RETRY_WAIT:
            self._update_due = True
            self._wake_up()

    def register_again(self) -> None:
        """The server no longer knows this client (e.g. it answered a Send with 4.04): drop the
        registration and Register from scratch."""
        if self.registered:
            self._register_again = True
            self._set(RegistrationState.IDLE)
            self._wake_up()

    async def announced(self, timeout: float) -> None:
        """Return once the server has been told the current object list: at once when no
        Update is due, else after the Update that is (it may wait out the 1 s floor between
        Updates). A Send right after a node's instances appeared would name instances the
        server was never told of, and a server checks a Send's paths against the registration
        (Leshan answers 4.04, which reads as a lost registration). Bounded by ``timeout``:
        past it the caller goes on and the server's answer decides."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.registered and (
                    self._update_due or self.state is RegistrationState.UPDATING
                ):
                    if self._moved is None:
                        self._moved = Flag()
                    await self._moved.wait()

    def uri(self, *segments: str) -> str:
        """The URI of ``segments`` below the Server URI's path, as Register's ``rd``."""
        target = self.target
        return target.origin + "/" + "/".join((*target.base_path, *segments))

    async def exchange(self, msg: aiocoap.Message) -> aiocoap.Message:
        """Send one request to the server within the request timeout; return the response.

        A timeout drops the uplink's session, as a network error already does in the DTLS
        uplink: a server that stopped answering may have lost it, and the Register that
        follows must handshake afresh.
        """
        return await self._timed(self.uplink.request(msg))

    async def transfer(self, body: Callable[[Exchange], Awaitable[T]]) -> T:
        """Run ``body``, whose requests to the server each go as one message (a body in Block1
        blocks, ``block1.send_in_blocks``), within one request timeout, as ``exchange`` runs
        one request: to its caller it is one request, as aiocoap's block-wise one was, and its
        blocks set no timer each (an ``asyncio.timeout`` a block was 7 % of a block's
        instructions, docs/benchmarks.md)."""
        return await self._timed(body(functools.partial(self.uplink.request, blockwise=False)))

    async def _timed(self, request: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.target.request_timeout):
                result = await request
        except TimeoutError:
            self.uplink.drop_session()
            raise
        self._registrant.answered()
        return result

    @property
    def registered(self) -> bool:
        return self.state in (RegistrationState.REGISTERED, RegistrationState.UPDATING)

    @property
    def location(self) -> tuple[str, ...] | None:
        """The registration's Location-Path, by segment; None while not registered."""
        return None if self._location is None else tuple(self._location.split("/"))

    @location.setter
    def location(self, segments: tuple[str, ...] | None) -> None:
        self._location = None if segments is None else "/".join(segments)

    @property
    def location_path(self) -> str | None:
        """The registration's Location-Path as one string ("rd/c1"), None while not
        registered: what tells one registration from the next without building ``location``'s
        tuple (delivery asks per batch)."""
        return self._location

    async def run(self) -> None:
        """Register, then keep the registration alive until cancelled or ``deregister``: one
        task throughout (``start`` holds one only while there is something to do)."""
        due = await self._registering()
        while due is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(due - self._clock(), 0.0)):
                    await self._woken().wait()
            due = await self._updating()

    def start(self) -> None:
        """Do what ``run`` does, without a task while the registration is quiet: between
        Updates it is a deadline on the loop's one ``Wheel``, which ``trigger_update``,
        ``register_again`` and ``deregister`` end early. With 10,000 endpoints (the endpoints
        mode) a task waiting for each one's next Update was 1.5 KB of each, a timer of the loop
        250 bytes. End it with ``stop``."""
        self._busy(self._registering())

    async def stop(self) -> None:
        """End what ``start`` started (the De-register is ``deregister``'s)."""
        self._unwind()
        await cancel_and_wait(self._task)
        self._task = None

    def _busy(self, phase: Coroutine[Any, Any, float | None]) -> None:
        self._task = asyncio.create_task(self._then_quiet(phase), name=f"lwm2m {self.target.name}")

    async def _then_quiet(self, phase: Coroutine[Any, Any, float | None]) -> None:
        """Run ``phase``, then wait for the next Update as a timer, or go on at once when an
        Update was asked for meanwhile."""
        due = await phase
        while due is not None and self._wake is not None and self._wake.is_set():
            due = await self._updating()
        if due is not None and not self._stopping:
            wheel = Wheel.of(asyncio.get_running_loop())
            self._wheel_key = wheel.add(due - self._clock(), self)
        self._task = None

    def ring(self) -> None:
        """The next Update fell due (the ``Wheel``), or was asked for (``_wake_up``)."""
        self._wheel_key = None
        self._busy(self._updating())

    def _unwind(self) -> None:
        """Take the quiet wait off the wheel."""
        if self._wheel_key is not None:
            Wheel.of(asyncio.get_running_loop()).cancel(self._wheel_key, self)
            self._wheel_key = None

    def _woken(self) -> Flag:
        """The flag ``_wake``, made when there is none (cleared)."""
        if self._wake is None:
            self._wake = Flag()
        return self._wake

    def _wake_up(self) -> None:
        """Wake the registrar: its task when it is busy, its timer when it is quiet."""
        self._woken().set()
        if self._wheel_key is not None:
            self._unwind()
            self.ring()

    def _due(self) -> float:
        """When the next Update falls due (a ``clock`` time): by the lifetime the server was
        told last, which is the one it keeps the registration for (a new lifetime in the tree
        asks for an Update of its own). Not read from the tree again: a node endpoint's rests
        between its Updates (``ObjectTree.rest``)."""
        lifetime = self._registrant.params().lifetime if self._sent is None else self._sent.lifetime
        return self._registered_at + update_interval(lifetime)

    async def _registering(self) -> float | None:
        """Register (with the retries of ``target.retry``); when the next Update falls due,
        None once stopping."""
        await self._register_with_retries()
        return None if self._stopping else self._due()

    async def _updating(self) -> float | None:
        """The quiet wait ended (an Update fell due or was asked for): the Update, or the
        Register when the registration is gone; when the next Update falls due, None once
        stopping."""
        if self._stopping:
            return None
        await self._hold_off(self._registered_at + MIN_UPDATE_INTERVAL)
        if self._stopping:
            return None
        if self._register_again:
            self._register_again = False
            return await self._registering()
        if not await self._update():
            return await self._registering()
        return self._due()

    async def deregister(self) -> None:
        """De-register (orderly shutdown); the registrar stops."""
        self._stopping = True
        self._unwind()
        self._woken().set()
        if self._location is None or not self.registered:
            self._set(RegistrationState.DEREGISTERED)
            return
        self._set(RegistrationState.DEREGISTERING)
        msg = aiocoap.Message(code=Code.DELETE, uri=self._location_uri())
        try:
            response = await self.exchange(msg)
        except (aiocoap.error.Error, TimeoutError, OSError) as e:
            self._emit(EventKind.DEREGISTER_FAILURE, f"{type(e).__name__}: {e}")
        else:
            if response.code != Code.DELETED:
                self._emit(EventKind.DEREGISTER_FAILURE, str(response.code))
        self._location = None
        self._set(RegistrationState.DEREGISTERED)
        self._emit(EventKind.DEREGISTERED)

    # -- internals ---------------------------------------------------------------------------

    def _set(self, state: RegistrationState) -> None:
        if state is not self.state:
            log.debug("server %s: %s -> %s", self.target.name, self.state.value, state.value)
            self.state = state
            moved, self._moved = self._moved, None
            if moved is not None:
                moved.set()

    def _emit(self, kind: EventKind, detail: str = "") -> None:
        event = RegistrationEvent(kind, self.target.name, self.state, detail)
        level = logging.WARNING if kind.name.endswith("FAILURE") else logging.INFO
        log.log(
            level,
            "server %s: %s %s",
            self.target.name,
            kind.value,
            detail,
            extra={"SERVER": self.target.name, "REGISTRATION_EVENT": kind.value},
        )
        self._on_event(event)

    def _location_uri(self) -> str:
        assert self._location is not None
        return self.target.origin + "/" + self._location

    async def _register_with_retries(self) -> None:
        sequence = 0
        retry = self.target.retry
        while not self._stopping:
            delays = retry.delays()
            for attempt, delay in enumerate(delays, 1):
                # The last attempt of a sequence waits its delay, then the sequence delay.
                pause = delay + (retry.sequence_delay if attempt == len(delays) else 0.0)
                if await self._register(pause):
                    return
                if self._stopping:
                    return
                self._set(RegistrationState.RETRY_WAIT)
                await self._sleep(delay)
            sequence += 1
            pause = self.target.retry.sequence_delay
            self._emit(
                EventKind.REGISTRATION_FAILURE,
                f"sequence {sequence} failed; next attempt in {pause:g} s",
            )
            await self._sleep(pause)

    async def _hold_off(self, until: float) -> None:
        """Wait until ``until`` (a ``clock`` time) however often an Update is asked for meanwhile
        (the Update that follows carries every change); stopping ends the wait."""
        while not self._stopping and (left := until - self._clock()) > 0:
            await self._sleep(left)

    async def _sleep(self, seconds: float) -> None:
        """Wait, but wake early when stopping."""
        self._wake = None
        try:
            async with asyncio.timeout(seconds):
                await self._woken().wait()
        except TimeoutError:
            pass

    async def _register(self, retry_in: float) -> bool:
        """Register once; a failure's event says what happened and when the next try is
        (``retry_in`` seconds from now)."""
        self._wake = None
        self._update_due = False
        self._set(RegistrationState.REGISTERING)
        params = self._registrant.params()
        payload = params.links.encode()
        params = params.kept(payload)  # the text goes now, not after the exchange
        msg = aiocoap.Message(code=Code.POST, uri=self.uri("rd"), payload=payload)
        msg.opt.uri_query = (
            *self.target.base_query,
            *register_query(self.endpoint, params, self.version),
        )
        msg.opt.content_format = LINK_FORMAT
        try:
            response = await self.exchange(msg)
        except (aiocoap.error.Error, TimeoutError, OSError) as e:
            why = failure_text(e, self.target.name, self.target.request_timeout)
            self._emit(EventKind.REGISTRATION_FAILURE, f"{why}; {next_try_text(retry_in)}")
            return False
        if response.code == PRECONDITION_FAILED and self.version != "1.0":
            self._emit(EventKind.VERSION_FALLBACK, f"{response.code}: retrying as LwM2M 1.0")
            self.version = "1.0"
            return await self._register(retry_in)
        if response.code != Code.CREATED:
            self._emit(
                EventKind.REGISTRATION_FAILURE,
                f"{self.target.name} answered {response.code} {response.payload!r}; "
                + next_try_text(retry_in),
            )
            return False
        if not response.opt.location_path:
            # Updates and the De-register go to the Location-Path; without one the server
            # handed out no registration to keep, and "/" is not one.
            self._emit(
                EventKind.REGISTRATION_FAILURE,
                f"{self.target.name} answered {response.code} without Location-Path; "
                + next_try_text(retry_in),
            )
            return False
        self._location = "/".join(response.opt.location_path)
        self._sent = params
        self._registered_at = self._clock()
        self._set(RegistrationState.REGISTERED)
        self._emit(EventKind.REGISTRATION_COMPLETE, "/" + self._location)
        return True

    async def _update(self) -> bool:
        """One Update; False means the registration is gone and a Register must follow."""
        assert self._sent is not None
        self._wake = None
        self._update_due = False
        self._set(RegistrationState.UPDATING)
        params = self._registrant.params()
        query: list[str] = []
        if params.lifetime != self._sent.lifetime:
            query.append(f"lt={params.lifetime}")
        if (params.binding, params.queue) != (self._sent.binding, self._sent.queue):
            if self.version == "1.0":
                query.append(f"b={params.binding}{'Q' if params.queue else ''}")
            else:
                query.append(f"b={params.binding}")
                if params.queue:
                    query.append("Q")
        payload = params.links.encode()
        sent = params.kept(payload)
        del params  # the text goes now, not after the exchange
        links_changed = sent.links != self._sent.links
        msg = aiocoap.Message(
            code=Code.POST, uri=self._location_uri(), payload=payload if links_changed else b""
        )
        msg.opt.uri_query = tuple(query)
        if links_changed:
            msg.opt.content_format = LINK_FORMAT
        try:
            response = await self.exchange(msg)
        except (aiocoap.error.Error, TimeoutError, OSError) as e:
            self._set(RegistrationState.IDLE)
            self._emit(EventKind.UPDATE_FAILURE, f"no answer ({type(e).__name__}): re-register")
            return False
        if response.code != Code.CHANGED:
            self._set(RegistrationState.IDLE)
            self._emit(EventKind.UPDATE_FAILURE, f"{response.code}: re-register")
            return False
        self._sent = sent
        self._registered_at = self._clock()
        self._set(RegistrationState.REGISTERED)
        self._emit(EventKind.UPDATE_COMPLETE, " ".join(query) or "")
        return True
