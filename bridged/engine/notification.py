"""When to notify an observer: the LwM2M notification attributes as a sans-I/O state machine.

Nothing here touches a socket or a clock: every method takes ``now`` (seconds on any monotonic
scale), so the rules are tested exhaustively without waiting. ``bridged.engine.observe`` is the
aiocoap side that feeds these machines with tree changes and sends what they say is due.

The rules (LwM2M 1.1 Core §5.1.2), for one observation:

* **pmin** is the least time between two notifications. Changes within it are not lost: they
  are coalesced into one notification, sent when pmin has elapsed, carrying the latest value.
* **pmax** is the most time between two notifications: one goes out then even without a change.
  A pmax of 0, or one below pmin, is ignored (the server asked for something impossible).
* **gt / lt** notify when the value crosses the threshold in either direction, i.e. when the
  latest value is on the other side of it than the last value notified. **st** notifies when
  the value moved by at least st from the last value notified. When any of them is set, a change
  notifies only if one of the set conditions holds; they apply to numeric single-value
  resources only. Without them, a numeric resource notifies when its value differs from the
  last one notified, and anything else (an instance, an object, a composite) on any change.
* **epmin / epmax** bound how often the value is evaluated: a change is looked at no sooner than
  epmin after the previous evaluation (later changes in that window are evaluated together at
  its end), and the value is evaluated at least every epmax even when no change was reported
  (for a node-backed value, that is when it is read again from the node).

A qualifying change stays pending until it is notified, even if the value moves back meanwhile:
the server is told that something happened, with the state as it is when the notification goes.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bridged.objects.linkformat import ATTRIBUTE_NAMES, Attributes
from bridged.objects.paths import Level, Path

CON_INTERVAL = 24 * 3600.0
"""RFC 7641 §4.5: a notification is sent confirmable at least this often per observation."""

DEFAULT_LIVENESS = 60.0
"""How long the server counts as alive after its last sign of life (see ``Reliability``)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """The effective notification attributes of one observation, in seconds.

    ``numeric`` says whether the observation is of one numeric value, the only case where gt,
    lt and st apply (elsewhere they are ignored).
    """

    pmin: float = 0.0
    pmax: float | None = None
    gt: float | None = None
    lt: float | None = None
    st: float | None = None
    epmin: float | None = None
    epmax: float | None = None
    numeric: bool = False

    @property
    def max_period(self) -> float | None:
        """pmax when it is usable: set, not 0, and not below pmin."""
        if self.pmax is None or self.pmax <= 0 or self.pmax < self.pmin:
            return None
        return self.pmax

    @property
    def thresholds(self) -> bool:
        return self.numeric and (self.gt, self.lt, self.st) != (None, None, None)


NO_ATTRIBUTES = Attributes()


def effective_attributes(
    attributes: Mapping[Path, Attributes], path: Path, defaults: Attributes = NO_ATTRIBUTES
) -> Attributes:
    """The attributes that apply to ``path``: its own, then those of each level above it
    (resource instance <- resource <- instance <- object), then ``defaults`` (the server's
    default pmin and pmax, /1/x/2 and /1/x/3), each attribute from the nearest level that
    sets it."""
    values: dict[str, Any] = {}
    chain = [path.truncate(Level(n)) for n in range(len(path.ids), 0, -1)]
    for source in [*(attributes.get(p) for p in chain), defaults]:
        if source is None:
            continue
        for name in ATTRIBUTE_NAMES:
            if (value := getattr(source, name)) is not None:
                values.setdefault(name, value)
    return Attributes(**values)


def policy_for(attributes: Attributes, *, numeric: bool) -> Policy:
    """The policy of an observation of one path with these effective attributes."""
    return Policy(
        pmin=float(attributes.pmin or 0),
        pmax=None if attributes.pmax is None else float(attributes.pmax),
        gt=attributes.gt,
        lt=attributes.lt,
        st=attributes.st,
        epmin=None if attributes.epmin is None else float(attributes.epmin),
        epmax=None if attributes.epmax is None else float(attributes.epmax),
        numeric=numeric,
    )


def composite_policy(policies: Iterable[Policy]) -> Policy:
    """One policy for an Observe-Composite: every path's pmin and epmin is honoured (the
    largest), every pmax and epmax too (the smallest usable one); gt, lt and st do not apply,
    so any change of any path notifies."""
    ps = list(policies)
    pmin = max((p.pmin for p in ps), default=0.0)
    pmaxes = [m for p in ps if (m := p.max_period) is not None]
    epmins = [p.epmin for p in ps if p.epmin is not None]
    epmaxes = [p.epmax for p in ps if p.epmax]
    return Policy(
        pmin=pmin,
        pmax=min(pmaxes) if pmaxes else None,
        epmin=max(epmins) if epmins else None,
        epmax=min(epmaxes) if epmaxes else None,
    )


class NotificationState:
    """One observation's timers and pending change.

    The owner calls ``change`` when the observed state changes, ``poll`` at ``next_wake`` (or
    right after a change) with the current value, sends a notification when ``poll`` says so,
    and then calls ``sent`` with the value it carried. ``value`` is the observed number for a
    numeric observation, otherwise anything (it is not looked at).
    """

    __slots__ = (
        "_latest",
        "last_evaluated",
        "last_sent",
        "last_value",
        "pending",
        "policy",
        "unevaluated",
    )

    def __init__(self, policy: Policy, now: float, value: object = None) -> None:
        self.policy = policy
        self.last_sent = now  # the response that started the observation is the first one
        self.last_value = value
        self.last_evaluated = now
        self.unevaluated = False
        self.pending = False

    def change(self, now: float) -> None:
        """The observed state changed (it is evaluated by the next ``poll``)."""
        self.unevaluated = True

    def poll(self, now: float, value: object = None) -> bool:
        """Evaluate what is due at ``now`` with the current ``value``; True if a notification
        should be sent now."""
        p = self.policy
        evaluable = p.epmin is None or now >= self.last_evaluated + p.epmin
        if (self.unevaluated and evaluable) or self.sample_due(now):
            self.last_evaluated = now
            self.unevaluated = False
            if self._qualifies(value):
                self.pending = True
        if self.pending and now >= self.last_sent + p.pmin:
            return True
        pmax = p.max_period
        return pmax is not None and now >= self.last_sent + pmax

    def sample_due(self, now: float) -> bool:
        """True when epmax says the value must be evaluated (read again) now."""
        epmax = self.policy.epmax
        return bool(epmax) and now >= self.last_evaluated + epmax  # type: ignore[operator]

    def sent(self, now: float, value: object = None) -> None:
        """A notification carrying ``value`` went out at ``now``."""
        self.last_sent = now
        self.last_value = value
        self.pending = False

    def next_wake(self) -> float | None:
        """When ``poll`` may next have something to do (None: only after a change)."""
        p = self.policy
        times: list[float] = []
        if self.pending:
            times.append(self.last_sent + p.pmin)
        if self.unevaluated:
            times.append(self.last_evaluated + (p.epmin or 0.0))
        if (pmax := p.max_period) is not None:
            times.append(self.last_sent + pmax)
        if p.epmax:
            times.append(self.last_evaluated + p.epmax)
        return min(times) if times else None

    def _qualifies(self, value: object) -> bool:
        p = self.policy
        if not p.numeric:
            return True
        new, old = _number(value), _number(self.last_value)
        if new is None or old is None:
            return value != self.last_value
        if not p.thresholds:
            return new != old
        if p.gt is not None and (new > p.gt) != (old > p.gt):
            return True
        if p.lt is not None and (new < p.lt) != (old < p.lt):
            return True
        return p.st is not None and abs(new - old) >= p.st


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class Reliability:
    """Whether the next notification is confirmable, for one server session.

    Notifications are non-confirmable by default. One is confirmable when:

    * the observation has had no confirmable notification for ``CON_INTERVAL`` (24 h, RFC 7641
      §4.5), counting from its start (the request was answered by an ACK);
    * or the server has shown no sign of life for ``liveness`` seconds since the previous
      notification, which went out as a NON. A sign of life is any request or response from the
      server, and a confirmable notification: that one is either acknowledged or, after its
      retransmissions, ends the observations, so it covers the liveness question for its own
      span. A NON is never acknowledged, so "unanswered" cannot mean "no ACK": it means the
      server stayed silent long enough to doubt it, and the CON then probes it.

    So a stream of NON notifications to a server that never speaks carries one CON about every
    ``liveness`` seconds, a rarely-notifying observation of a quiet server notifies with CONs,
    and a server that reads or updates regularly gets NONs only.
    """

    def __init__(self, now: float, liveness: float = DEFAULT_LIVENESS) -> None:
        self.liveness = liveness
        self.last_heard = now
        self.last_was_non = False

    def heard(self, now: float) -> None:
        """Something arrived from the server."""
        self.last_heard = max(self.last_heard, now)

    def confirmable(self, now: float, last_con: float) -> bool:
        """Whether a notification of an observation whose last CON was at ``last_con`` should
        be a CON now; the caller then reports it with ``sent``."""
        if now - last_con >= CON_INTERVAL:
            return True
        return self.last_was_non and now - self.last_heard >= self.liveness

    def sent(self, now: float, *, confirmable: bool) -> None:
        self.last_was_non = not confirmable
        if confirmable:
            self.heard(now)


K = TypeVar("K", bound=Hashable)


class WakeQueue(Generic[K]):
    """Wake-up times of many keys in one heap: ``set`` replaces a key's time, ``pop_due`` takes
    the keys whose time has come. Replaced entries stay in the heap and are skipped, so a
    change costs O(log n) and no task or timer exists per key."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._when: dict[K, float] = {}
        self._seq = itertools.count()

    def set(self, key: K, when: float | None) -> None:
        """Wake ``key`` at ``when`` (None: not at all)."""
        if when is None:
            self._when.pop(key, None)
            return
        if self._when.get(key) == when:
            return
        self._when[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._when):
            self._compact()

    def discard(self, key: K) -> None:
        self._when.pop(key, None)

    def pop_due(self, now: float) -> list[K]:
        """The keys due at ``now``, earliest first; they are no longer scheduled."""
        out: list[K] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, key = heapq.heappop(heap)
            if self._when.get(key) == when:
                del self._when[key]
                out.append(key)
        return out

    def next_wake(self) -> float | None:
        heap = self._heap
        while heap and self._when.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def __len__(self) -> int:
        return len(self._when)

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if self._when.get(e[2]) == e[0]]
        heapq.heapify(self._heap)
