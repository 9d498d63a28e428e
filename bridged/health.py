"""Node health: is a paired node available, how good is its link, how full its battery.

"Is my sensor dead or just quiet?" is answered here, once, for every exposure mode, the event
stream and the log. ``HealthMonitor`` is told what the transports say of each paired node
(heard with an RSSI, its state with link quality, battery and refused frames, its readings)
and keeps a ``NodeHealth`` per node; every change of what a server or a user is shown is told
to its listeners (the exposure mode puts it upstream, the event hub streams it, the event log
keeps the faults).

**Availability.** A node is unavailable once nothing was heard of it for its timeout, which
is, in this order: the node's own (``[health.node]``), its transport's
(``[health.transport]``), or automatic: a node whose transport says when it must be heard
again (an 802.15.4 node's LwM2M registration lifetime: a node that neither talks nor updates
its registration within it is, by LwM2M's own rule, gone) gets that; any other node (BLE
adverts, GATT polls) ``intervals`` times the shortest interval it was heard at so far, and
``unknown`` until two reports show an interval. No timeout is shorter than ``minimum``. Being
asleep is not being unavailable: a sleepy node between two wake-ups is reachable by its desired
state queue, and only its silence beyond the timeout is a fault.

**Idle means asleep.** One timer, armed at the earliest deadline of the available nodes, and
none while every node is unavailable or none is paired. A node heard again moves its deadline
later without touching the timer: the timer then fires early, finds nobody due, and is armed
at the new earliest deadline; so with nodes heard every second and a one-minute timeout it
fires about once a minute, never once per report.

**Error codes** (/3/0/11 in the modes that show a node's Device object): the Core's values
that say what a server must act on. A node unreachable is 7 (IP connectivity failure): the
Core's one code for "the device lost its communication link", which is what a server should
act on (check the radio, the range, the node's power), for an 802.15.4 node (which speaks IPv6
over 6LoWPAN) and a BLE node alike; 8 (Peripheral malfunction) would say the device's
hardware is broken, which the gateway cannot know of a node it merely stopped hearing. Low
battery is 1, low received signal strength 4, and a node whose data the gateway refuses (its
key does not open its frames) is the device-specific 16. No fault is the single value 0.

**Across a restart.** What a user and a server are shown of a node (when it was last heard, its
last RSSI, link quality and battery, its refused frames, whether it is available) is kept in
the state database (``bridged.store.health``) and given back when the gateway starts with the
node, so ``bridgectl node show`` and the node's /3/0/11, /3/0/20 and /4/0 do not reset until
it talks again: a node that was unavailable stays so until heard. The Error Codes a node
reports itself are those of its last report of them (its last values, kept with the
readings). So a fault present at a stop is the same fault after it: the event log has it
raised once, and cleared when the node is found well again (or unpaired: nothing would
end it later). The changes are written
with the readings' group commit at most every ``SAVE_EVERY`` seconds (no commit or timer of
their own; idle means asleep) and all at a clean stop; a crash loses at most that much.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from bridged.objects.ids import BATTERY_PATH, SINGLE, Connectivity, Device
from bridged.objects.listeners import Listeners
from bridged.objects.paths import Path
from bridged.objects.values import Record, Value
from bridged.registry import LiveNode, NodeNews
from bridged.store.health import SavedHealth
from bridged.transports.base import SAME_REPORT, Heard, NodeState
from bridged.transports.nodes import NodeId

if TYPE_CHECKING:  # the mode, the hub and the log know NodeHealth: imported for types only
    from bridged.eventlog import EventLog
    from bridged.events import EventHub
    from bridged.exposure.mode import ExposureMode

log = logging.getLogger(__name__)

NO_ERROR = 0
LOW_BATTERY = 1
LOW_SIGNAL = 4
UNREACHABLE = 7
"""Device /3/0/11 Error Code values (Core: 1 low battery power, 4 low received signal strength,
7 IP connectivity failure); see the module docstring for why 7 says "node unreachable"."""
DATA_REFUSED = 16
"""The first device-specific Error Code (16..32): the node's frames are refused (its key does
not open them)."""

OWN_ERRORS = (Device.OBJECT, SINGLE, Device.ERROR_CODE)
CONNECTIVITY = {
    rid: Path((Connectivity.OBJECT, SINGLE, rid))
    for rid in (
        Connectivity.NETWORK_BEARER,
        Connectivity.AVAILABLE_BEARERS,
        Connectivity.RADIO_SIGNAL_STRENGTH,
        Connectivity.LINK_QUALITY,
    )
}
"""The /4/0 resources a node's health fills."""
"""Where a node reports its own Error Codes (an 802.15.4 LwM2M node's /3/0/11)."""

BATTERY_NORMAL = 0
BATTERY_LOW = 4
BATTERY_UNKNOWN = 6
"""Device /3/0/20 Battery Status values (Core: 0 Normal, 4 Low Battery, 6 Unknown)."""


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """``[health]``: when a node is unavailable, and what a low battery and a weak link are.

    Timeouts are seconds (see the module docstring for the order they apply in)."""

    minimum: float = 60.0
    intervals: float = 10.0
    unknown: float = 900.0
    low_battery: int = 20
    """Battery level (%) at or below which a node's battery is low."""
    low_signal: int = -90
    """RSSI (dBm) at or below which a node's link is weak."""
    transports: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    nodes: Mapping[NodeId, float] = field(default_factory=lambda: MappingProxyType({}))

    def timeout(self, node: NodeId, expect: float | None, interval: float | None) -> float:
        """Seconds of silence after which ``node`` is unavailable: ``expect`` is when its
        transport said it must be heard again, ``interval`` the shortest one it was heard at."""
        configured = self.nodes.get(node, self.transports.get(node.transport))
        if configured is not None:
            return configured
        if expect is not None:
            automatic = expect
        elif interval is not None:
            automatic = self.intervals * interval
        else:
            automatic = self.unknown
        return max(self.minimum, automatic)


@dataclass(frozen=True, slots=True)
class NodeHealth:
    """What the gateway knows of one node's health, as shown upstream and by bridgectl."""

    available: bool = True
    last_heard: float | None = None
    rssi: int | None = None
    lqi: int | None = None
    battery: int | None = None
    decrypt_failures: int = 0
    problem: str | None = None
    timeout: float = 0.0
    low_battery: bool = False
    low_signal: bool = False
    bearer: int | None = None
    """Its transport's /4/x/0 Network Bearer (``Transport.bearer``)."""
    own_errors: tuple[int, ...] = ()
    """The Error Codes the node reports in its own /3/0/11 (an 802.15.4 LwM2M node's), which
    its shown /3/0/11 carries besides the gateway's."""

    @property
    def errors(self) -> tuple[int, ...]:
        """The node's /3/0/11 Error Codes, most urgent first; ``(0,)`` without a fault."""
        codes = [
            code
            for code, on in (
                (UNREACHABLE, not self.available),
                (LOW_BATTERY, self.low_battery),
                (LOW_SIGNAL, self.low_signal),
                (DATA_REFUSED, self.problem is not None),
            )
            if on
        ]
        codes += [c for c in self.own_errors if c != NO_ERROR and c not in codes]
        return tuple(codes) or (NO_ERROR,)

    def why(self, code: int) -> str:
        """What error code ``code`` of ``errors`` means for this node, in a few words."""
        return {
            UNREACHABLE: f"not heard for {self.timeout:.0f} s",
            LOW_BATTERY: f"battery {self.battery} %",
            LOW_SIGNAL: f"RSSI {self.rssi} dBm",
            DATA_REFUSED: self.problem or "its frames are refused",
        }.get(code, "")

    @property
    def battery_status(self) -> int:
        """The node's /3/0/20 Battery Status."""
        if self.battery is None:
            return BATTERY_UNKNOWN
        return BATTERY_LOW if self.low_battery else BATTERY_NORMAL

    def resources(self) -> dict[Path, Value | dict[int, Value]]:
        """The node-local /3/0 and /4/0 resources the gateway states of the node's health (a
        multi-instance resource as ``{riid: value}``), for the modes that show a node's Device
        and Connectivity Monitoring objects. The Battery Level is the node's own reading."""
        out: dict[Path, Value | dict[int, Value]] = {
            Path((Device.OBJECT, SINGLE, Device.ERROR_CODE)): dict(enumerate(self.errors)),
            Path((Device.OBJECT, SINGLE, Device.BATTERY_STATUS)): self.battery_status,
        }
        if self.bearer is not None:
            out[CONNECTIVITY[Connectivity.NETWORK_BEARER]] = self.bearer
            out[CONNECTIVITY[Connectivity.AVAILABLE_BEARERS]] = {0: self.bearer}
        if self.rssi is not None:
            out[CONNECTIVITY[Connectivity.RADIO_SIGNAL_STRENGTH]] = self.rssi
        if self.lqi is not None:
            out[CONNECTIVITY[Connectivity.LINK_QUALITY]] = self.lqi
        return out

    def json(self) -> dict[str, object]:
        """As bridgectl shows it (``nodes``, ``health`` events)."""
        return {
            "available": self.available,
            "last_heard": self.last_heard,
            "timeout": self.timeout,
            "rssi": self.rssi,
            "lqi": self.lqi,
            "battery": self.battery,
            "decrypt_failures": self.decrypt_failures,
            "problem": self.problem,
            "errors": list(self.errors),
        }


RSSI_STEP = 3
"""dB an RSSI must move by to be shown (``HealthMonitor._update``)."""

SAVE_EVERY = 60.0
"""Seconds between two writes of the nodes' health to the state database (module docstring)."""

HealthListener = Callable[[NodeId, NodeHealth, NodeHealth | None], None]
"""Told ``(node, health, before)`` when what is shown of a node's health changes; ``before``
is None the first time (the node was just added)."""


@dataclass(slots=True)
class _Tracked:
    health: NodeHealth
    deadline: float
    """When (monotonic) the node becomes unavailable unless heard."""
    expect: float | None = None
    interval: float | None = None
    heard: float | None = None
    """When (monotonic) the report that started the latest interval was heard."""
    last_heard: float | None = None
    """When (wall clock) the node was last heard: ``NodeHealth.last_heard`` is this as of
    the node's last change, ``HealthMonitor.health`` gives it current."""
    failures_before: int = 0
    """Frames refused before the gateway started: its transport counts from its start."""
    timeout_of: tuple[float | None, float | None] | None = None
    """The (``expect``, ``interval``) that ``timeout`` was worked out from (None: not yet, or
    the policy changed since): a node heard three times a report asks the policy once."""
    timeout: float = 0.0


class HealthMonitor:
    """Every paired node's ``NodeHealth`` (see the module docstring)."""

    def __init__(
        self,
        policy: HealthPolicy = HealthPolicy(),
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        saved: Mapping[NodeId, SavedHealth] | None = None,
    ) -> None:
        self._policy = policy
        self.clock = clock
        """Wall time: when a node was heard, as shown."""
        self.monotonic = monotonic
        """What deadlines and intervals are measured on, so a wall clock that jumps (a Pi
        without RTC setting its clock from NTP after boot) makes no node unavailable."""
        self._nodes: dict[NodeId, _Tracked] = {}
        self._listeners: Listeners[HealthListener] = Listeners("node health")
        self._removed: Listeners[Callable[[NodeId, NodeHealth], None]] = Listeners("nodes removed")
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._saved = dict(saved or {})
        """Each node's health as the previous run left it, until the node is added."""
        self._unsaved: set[NodeId] = set()
        """The nodes whose health changed since it was last written (``unsaved``)."""
        self._saved_at = monotonic()
        self._unheard: dict[tuple[float, int | None], NodeHealth] = {}
        """The health of a node not heard since the start, by timeout and bearer: one for all
        such nodes (it is frozen, and a node gets its own once heard), as thousands of nodes
        start with the same."""

    @property
    def policy(self) -> HealthPolicy:
        return self._policy

    @policy.setter
    def policy(self, policy: HealthPolicy) -> None:
        """A new policy (a reload): each node's timeout is worked out again when next heard."""
        self._policy = policy
        for tracked in self._nodes.values():
            tracked.timeout_of = None

    def listen(self, listener: HealthListener) -> Callable[[], None]:
        """Tell ``listener`` of every change, and of every node's health now."""
        remove = self._listeners.add(listener)
        for node, tracked in self._nodes.items():
            listener(node, tracked.health, None)
        return remove

    def health(self, node: NodeId) -> NodeHealth | None:
        """The node's health now (with when it was last heard)."""
        tracked = self._nodes.get(node)
        if tracked is None:
            return None
        if tracked.last_heard != tracked.health.last_heard:
            tracked.health = replace(tracked.health, last_heard=tracked.last_heard)
        return tracked.health

    @property
    def unavailable(self) -> int:
        """How many nodes are unavailable now."""
        return sum(1 for t in self._nodes.values() if not t.health.available)

    @property
    def armed(self) -> float | None:
        """When the deadline timer fires (``monotonic``'s time), None while none is armed."""
        return None if self._timer is None else self._timer_at

    # -- what the gateway hears --------------------------------------------------------------

    def add(
        self,
        node: NodeId,
        bearer: int | None = None,
        battery: int | None = None,
        own_errors: tuple[int, ...] = (),
    ) -> None:
        """A node is paired (or the gateway starts with it, its last ``battery`` level and the
        ``own_errors`` it last reported known): available until its timeout passes without a
        word from it."""
        if node in self._nodes:
            return
        now = self.monotonic()
        saved = self._saved.pop(node, None)
        if saved is not None and not self._saved:
            self._saved = {}  # emptied, a dict keeps its table: 300 KB after 10,000 nodes
        interval = None if saved is None else saved.interval
        timeout = self.policy.timeout(node, None, interval)
        health = self._unheard.setdefault(
            (timeout, bearer), NodeHealth(timeout=timeout, bearer=bearer)
        )
        tracked = _Tracked(health, now + timeout, interval=interval)
        if saved is not None:
            tracked.last_heard, tracked.failures_before = saved.last_heard, saved.decrypt_failures
            health = replace(
                health,
                available=saved.available,
                last_heard=saved.last_heard,
                rssi=saved.rssi,
                low_signal=saved.rssi is not None and saved.rssi <= self.policy.low_signal,
                lqi=saved.lqi,
                decrypt_failures=saved.decrypt_failures,
                problem=saved.problem,
            )
            battery = saved.battery if battery is None else battery
        if battery is not None:
            health = replace(
                health, battery=battery, low_battery=battery <= self.policy.low_battery
            )
        if own_errors:
            health = replace(health, own_errors=own_errors)
        tracked.health = health
        self._nodes[node] = tracked
        self._listeners.notify(lambda tell: tell(node, tracked.health, None))
        if health.available:
            self._arm(tracked.deadline)

    def remove(self, node: NodeId) -> None:
        """The node was unpaired: its health ends with it, and what it had last is told to the
        ``on_removed`` hooks (its faults end: nothing would ever end them otherwise)."""
        tracked = self._nodes.pop(node, None)
        self._unsaved.discard(node)
        if not self._nodes:
            self._disarm()
        if tracked is not None:
            self._removed.call(node, tracked.health)

    def on_removed(self, hook: Callable[[NodeId, NodeHealth], None]) -> Callable[[], None]:
        """Call ``hook`` with a node and its last health when the node is unpaired."""
        return self._removed.add(hook)

    def heard(self, heard: Heard) -> None:
        """Something of ``heard.node`` was on the air (an advert, a frame)."""
        self.update(heard.node, heard.time, rssi=heard.rssi)

    def state(self, node: NodeId, state: NodeState) -> None:
        """Its transport's view: link quality, battery, refused frames; reachable says it was
        heard (unreachable is a sleepy node asleep or a radio down, not silence, and says
        nothing of its refused frames: ``_tells_problem``)."""
        tracked = self._nodes.get(node)
        if tracked is None:
            return
        if state.expect is not None:
            tracked.expect = state.expect
        self.update(
            node,
            state.time if state.reachable else None,
            rssi=state.rssi,
            lqi=state.lqi,
            battery=state.battery,
            decrypt_failures=tracked.failures_before + state.decrypt_failures,
            problem=state.problem,
            problem_known=_tells_problem(state),
        )

    def news(self, node: NodeId, news: NodeNews) -> None:
        """One report of ``node``, as the registry tells it (``NodeRegistry.on_news``): what
        ``heard``, ``state`` and its readings (their battery level, the node's own /3/0/11)
        would say one after the other, in one update. A battery level among the readings is
        the node's own measurement: it wins over its transport's."""
        tracked = self._nodes.get(node)
        if tracked is None:
            return
        if news.expect is not None:
            tracked.expect = news.expect
        state, battery, own = news.state, news.battery, None
        for r in news.readings:  # one plain loop: every report has readings to look through
            ids = r.path.ids
            if ids == BATTERY_IDS:
                battery = _level(r.value, battery)  # the latest wins
            elif ids[:3] == OWN_ERRORS and type(r.value) is int:
                own = [] if own is None else own
                if r.value not in own:  # two reports in one news: each code once
                    own.append(r.value)
        failures, problem, known = None, None, False
        if state is not None:
            failures = tracked.failures_before + state.decrypt_failures
            problem = state.problem
            known = state.reachable or problem is not None  # ``_tells_problem``, inline
        self._update(
            node,
            tracked,
            news.heard,
            news.rssi,
            news.lqi,
            battery,
            failures,
            problem,
            known,
            None if own is None else tuple(own),
        )

    def update(
        self,
        node: NodeId,
        heard_at: float | None,
        *,
        rssi: int | None = None,
        lqi: int | None = None,
        battery: int | None = None,
        decrypt_failures: int | None = None,
        problem: str | None = None,
        problem_known: bool = False,
        own_errors: tuple[int, ...] | None = None,
    ) -> None:
        """What is new of ``node``: heard at ``heard_at`` (None: not heard now), and the
        values given (None: unchanged)."""
        tracked = self._nodes.get(node)
        if tracked is not None:
            self._update(
                node,
                tracked,
                heard_at,
                rssi,
                lqi,
                battery,
                decrypt_failures,
                problem,
                problem_known,
                own_errors,
            )

    def _update(
        self,
        node: NodeId,
        tracked: _Tracked,
        heard_at: float | None,
        rssi: int | None,
        lqi: int | None,
        battery: int | None,
        decrypt_failures: int | None = None,
        problem: str | None = None,
        problem_known: bool = False,
        own_errors: tuple[int, ...] | None = None,
    ) -> None:
        """``update`` of a tracked node, its arguments by position: every report of every
        node comes here (``news``), with no keyword arguments to match and no tuple made to
        see whether the timeout depends on something new."""
        before = tracked.health
        changes: dict[str, object] = {}
        if heard_at is not None:
            now = self.monotonic()
            last = tracked.heard
            if last is None:
                tracked.heard = now
            elif now - last >= SAME_REPORT:
                gap = now - last
                interval = tracked.interval
                tracked.interval = gap if interval is None or gap < interval else interval
                tracked.heard = now
            expect, interval = tracked.expect, tracked.interval
            of = tracked.timeout_of
            if of is None or of[0] != expect or of[1] != interval:
                # worked out again only when what it depends on changed
                tracked.timeout = self._policy.timeout(node, expect, interval)
                tracked.timeout_of = (expect, interval)
            timeout = tracked.timeout
            tracked.deadline = now + timeout
            if not before.available:
                changes["available"] = True
            if timeout != before.timeout:
                changes["timeout"] = timeout
            if tracked.last_heard is None or heard_at > tracked.last_heard:
                tracked.last_heard = heard_at
                self._unsaved.add(node)
        if rssi is not None and (
            before.rssi is None
            or (rssi <= self._policy.low_signal) != before.low_signal
            or abs(rssi - before.rssi) >= RSSI_STEP
        ):  # worth showing (not a call more per report): it moved ``RSSI_STEP`` or more from
            # the RSSI shown, or crossed the low-signal line; a BLE node's RSSI wanders by a
            # few dB from advert to advert, which would otherwise be a change (and a
            # notification) with each
            changes.update(rssi=rssi, low_signal=rssi <= self._policy.low_signal)
        if lqi is not None and lqi != before.lqi:
            changes["lqi"] = lqi
        if battery is not None and battery != before.battery:
            changes.update(battery=battery, low_battery=battery <= self._policy.low_battery)
        if decrypt_failures is not None and decrypt_failures != before.decrypt_failures:
            changes["decrypt_failures"] = decrypt_failures
        if problem_known and problem != before.problem:
            changes["problem"] = problem
        if own_errors is not None and own_errors != before.own_errors:
            changes["own_errors"] = own_errors
        if changes:
            # What changes with every report (when it was heard) is no news: kept apart.
            health = replace(before, last_heard=tracked.last_heard, **changes)  # type: ignore[arg-type]
            self._set(node, tracked, health, before)
        if heard_at is not None and tracked.deadline < self._timer_at:
            self._arm(tracked.deadline)  # rarely: a node heard moves its deadline later

    # -- across a restart --------------------------------------------------------------------

    def unsaved(self, everything: bool = False) -> dict[NodeId, SavedHealth]:
        """The health to write now: of the nodes that changed since the last write, once
        ``SAVE_EVERY`` seconds have passed since it (else none); ``everything``: of every
        node, now (a clean stop)."""
        now = self.monotonic()
        if not everything and (not self._unsaved or now - self._saved_at < SAVE_EVERY):
            return {}
        nodes = self._nodes if everything else self._unsaved
        out = {node: self._saved_health(self._nodes[node]) for node in nodes}
        self._unsaved.clear()
        self._saved_at = now
        return out

    @staticmethod
    def _saved_health(tracked: _Tracked) -> SavedHealth:
        h = tracked.health
        return SavedHealth(
            h.available,
            tracked.last_heard,
            h.rssi,
            h.lqi,
            h.battery,
            h.decrypt_failures,
            h.problem,
            tracked.interval,
        )

    # -- the deadline ------------------------------------------------------------------------

    def _set(self, node: NodeId, tracked: _Tracked, health: NodeHealth, before: NodeHealth) -> None:
        tracked.health = health
        self._unsaved.add(node)
        if health.available != before.available:
            if health.available:
                log.info("node %s is available again", node, extra={"NODE": str(node)})
            else:
                log.warning(
                    "node %s is unavailable: not heard for %.0f s",
                    node,
                    health.timeout,
                    extra={"NODE": str(node)},
                )
        self._listeners.notify(lambda tell: tell(node, health, before))

    def _arm(self, deadline: float) -> None:
        """Have the timer fire at ``deadline`` at the latest."""
        if deadline >= self._timer_at:
            return
        self._disarm()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet (the gateway is being built): ``start`` arms it
        self._timer_at = deadline
        self._timer = loop.call_later(max(0.0, deadline - self.monotonic()), self.expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = math.inf

    def start(self) -> None:
        """Arm the timer for the nodes added before the event loop ran."""
        self._rearm()

    def stop(self) -> None:
        self._disarm()

    def expire(self) -> None:
        """The deadline timer: every available node past its deadline becomes unavailable;
        the timer is armed again at the earliest deadline left."""
        self._timer = None
        self._timer_at = math.inf
        now = self.monotonic()
        for node, tracked in list(self._nodes.items()):
            if tracked.health.available and tracked.deadline <= now:
                before = tracked.health
                self._set(node, tracked, replace(before, available=False), before)
        self._rearm()

    def _rearm(self) -> None:
        deadlines = [t.deadline for t in self._nodes.values() if t.health.available]
        if deadlines:
            self._arm(min(deadlines))


class HealthFeed:
    """The ``RegistryListener`` that tells a ``HealthMonitor`` of paired nodes and of the values
    the gateway read of them (the node heard; a battery level among them is its battery); what
    they report comes with the registry's news (``HealthMonitor.news``). ``bearer`` names a
    node's transport's Network Bearer."""

    def __init__(self, monitor: HealthMonitor, bearer: Callable[[NodeId], int | None]) -> None:
        self.monitor = monitor
        self.bearer = bearer

    def node_added(self, node: LiveNode) -> None:
        """A node paired, or the gateway starting with it: its last values (kept across a
        restart) say its battery level and its own Error Codes, so that a fault it reported
        before a stop is the same fault after it, neither forgotten nor raised again."""
        values = node.values.values()
        self.monitor.add(node.id, self.bearer(node.id), _battery(values), _last_errors(values))

    def node_removed(self, node: NodeId) -> None:
        self.monitor.remove(node)

    def node_objects(self, node: LiveNode) -> None:
        pass

    def node_readings(self, node: LiveNode, records: Sequence[Record]) -> None:
        """Not told (``NodeRegistry.listen(readings=False)``): they come with the node's news,
        once per report (``HealthMonitor.news``)."""

    def node_values(self, node: LiveNode, records: Sequence[Record]) -> None:
        """What the gateway read of a node (its answer) is the node heard, like its reports."""
        self.monitor.update(
            node.id,
            self.monitor.clock(),
            battery=_battery(records),
            own_errors=_own_errors(records),
        )


NODE_SOURCE = "node "
"""What the event log's sources of a node's faults start with (``node ble:...``)."""
REMOVED = "node removed"
"""Why a node's fault ended when the node was unpaired (``HealthNews.removed``)."""


class HealthNews:
    """The ``HealthMonitor`` listener that tells a node's health where it goes: upstream
    through the exposure mode (every change: availability, link, battery), and, when its
    faults (its error codes) changed, a ``node.health`` event and each fault starting or
    ending in the event log (/20/0).

    A node's health at the start is what the previous run kept; the event log has what it
    still has raised, written as it happened. They differ when the previous run was killed
    (the health is kept at most every ``SAVE_EVERY`` seconds): the node's next change is then
    logged against the log, so a fault raised there is not raised a second time, and one
    that is over is logged cleared. A node's faults end with the node: at its unpairing
    (``removed``), or at the start for one the log has raised though it is no longer paired
    (``unpaired``)."""

    def __init__(self, exposure: ExposureMode, events: EventHub, event_log: EventLog) -> None:
        self.exposure = exposure
        self.events = events
        self.event_log = event_log
        self._logged: dict[str, dict[int, str]] = {}
        """Per node's source, the codes the log still has raised (and why): until the node is
        added, then for a node whose health differs from them, until its next change."""
        for entry in event_log.store.still_raised():
            if entry.source.startswith(NODE_SOURCE):
                self._logged.setdefault(entry.source, {})[entry.code] = entry.why

    def __call__(self, node: NodeId, health: NodeHealth, before: NodeHealth | None) -> None:
        self.exposure.node_health(node, health)
        source = NODE_SOURCE + str(node)
        new = set(health.errors) - {NO_ERROR}
        if before is None:  # added: what the log has raised is what its next change is to
            logged = self._logged.pop(source, {})
            if logged.keys() != new:
                self._logged[source] = logged
            return
        old = self._logged.pop(source, None)
        if old is None:
            if before.errors == health.errors:
                return
            old = {code: before.why(code) for code in before.errors if code != NO_ERROR}
        if old.keys() == new:
            return
        self.events.publish("node.health", id=str(node), **health.json())
        for code in sorted(new - old.keys()):
            self.event_log.record(source, code, True, health.why(code))
        for code in sorted(old.keys() - new):
            self.event_log.record(source, code, False, old[code])

    def unpaired(self, paired: Iterable[NodeId]) -> None:
        """Every node ``paired`` now was added: a fault the log still has raised for another
        node (unpaired by a gateway that left it raised) ends, as at its removal."""
        sources = {NODE_SOURCE + str(node) for node in paired}
        for source in [s for s in self._logged if s not in sources]:
            for code in sorted(self._logged.pop(source)):
                self.event_log.record(source, code, False, REMOVED)

    def removed(self, node: NodeId, health: NodeHealth) -> None:
        """``node`` was unpaired: each fault the log has raised for it ends with it (nothing
        would end it later), logged cleared with the node's removal as the reason."""
        source = NODE_SOURCE + str(node)
        raised = self._logged.pop(source, None)
        codes = raised.keys() if raised is not None else set(health.errors) - {NO_ERROR}
        for code in sorted(codes):
            self.event_log.record(source, code, False, REMOVED)


def _tells_problem(state: NodeState) -> bool:
    """Whether ``state`` is evidence of whether the node's data is refused: a refusal is, and
    so is the node heard (its data got through). A node out of reach (asleep, its radio down,
    a restarted transport that has not heard it yet) says nothing of it: a refusal shown (and
    its fault, 16) ends only when the node is heard well again."""
    return state.reachable or state.problem is not None


BATTERY_IDS = BATTERY_PATH.ids
"""A node-local path's IDs (it has no prefix to compare)."""


def _level(value: object, otherwise: int | None) -> int | None:
    """A battery level reading's value as the health model keeps it, else ``otherwise``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    return otherwise


def _battery(records: Iterable[Record]) -> int | None:
    """The first battery level among ``records``."""
    return _level(next((r.value for r in records if r.path == BATTERY_PATH), None), None)


def _last_errors(values: Iterable[Record]) -> tuple[int, ...]:
    """The node's own Error Codes in its last report of them among its last ``values`` (one
    per resource instance: an instance its last report no longer has keeps an older value,
    which is not taken)."""
    own = [
        (r.time or 0.0, r.value)
        for r in values
        if r.path.ids[:3] == OWN_ERRORS and type(r.value) is int
    ]
    latest = max((t for t, _ in own), default=None)
    return tuple(code for t, code in own if t == latest and code != NO_ERROR)


def _own_errors(records: Iterable[Record]) -> tuple[int, ...] | None:
    """The node's own /3/0/11 Error Codes among ``records`` (a report of it carries all its
    codes, the instances it has now), None when they are not among them."""
    own = [r.value for r in records if r.path.ids[:3] == OWN_ERRORS and type(r.value) is int]
    return tuple(own) or None
