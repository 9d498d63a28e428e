"""Message-ID pacing: never reuse a Message ID that a peer may still remember.

A CoAP endpoint must not reuse a Message ID toward the same peer while the peer may still take
the new message for a duplicate of the old one (RFC 7252 section 4.4): EXCHANGE_LIFETIME (247 s)
after a CON was first sent, NON_LIFETIME (145 s) after a NON. With 65,536 IDs that caps what one
endpoint may send to one peer at about 265 CON or 452 NON messages per second on average. aiocoap
hands out IDs from one counter without looking at time, so a fast sender wraps it and the peer
drops fresh messages as duplicates, or answers them with an old response.

:class:`MessageIdPacer` hands out one peer's IDs in sequence and refuses one while the ID next in
line is possibly still live; the caller holds the message and asks again at :meth:`ready_at`.
It remembers when each ID in use stops being live, oldest first, and only as long as needed: a
peer to which nothing was sent for a lifetime costs nothing (:class:`PacerTable` drops it).

A peer need not have a sequence of its own: IDs unique among all peers are unique toward each.
:class:`PacerTable` hands every peer IDs from one shared sequence while fewer than half the space
is live in it, and gives a peer its own pacer only when the shared one is that busy (a fast
sender), so that the thousands of node endpoints of the endpoints mode, each its own peer and
each sending a Register or an Update now and then, hold nothing for it (issue 17: a pacer was
245 bytes of each endpoint for a lifetime after its Register).

:class:`NotificationPace` is the other bound on what goes to a peer: how fast notifications
go to one server (RFC 7641 §4.5.1, one per round-trip time on average), so that a burst of
changes does not overflow the server's socket. The message layer owns both
(``bridged.engine.coap``); the observations ask it for a turn.

Everything here is sans-I/O: the caller passes the current time.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable, Hashable
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

K = TypeVar("K", bound=Hashable)

MESSAGE_IDS = 65_536
EXCHANGE_LIFETIME = 247.0
"""How long a CON's Message ID stays live (RFC 7252 section 4.8.2, default parameters)."""
NON_LIFETIME = 145.0
"""How long a NON's Message ID stays live."""


class MessageIdPacer:
    """The Message IDs toward one peer: at most ``id_space`` live at any time, never one reused
    while live.

    IDs are taken in sequence, so the ID next in line was last used exactly ``id_space`` takes
    ago. The pacer keeps the end of life of the IDs taken, oldest first, and forgets them from
    the front as they die. While fewer than ``id_space`` are remembered, the next ID's previous
    use is dead (or never happened) and it can be taken. An ID behind a longer-lived one is
    remembered until that one dies too, which errs on the safe side. Slotted: every node
    endpoint of the endpoints mode holds one for a lifetime after each request.
    """

    __slots__ = ("_dead", "_live", "_next", "_reserved", "_reserved_until", "id_space")

    def __init__(
        self,
        id_space: int = MESSAGE_IDS,
        first: int | None = None,
        reserved: int = 0,
        reserved_until: float = 0.0,
    ) -> None:
        if id_space < 1:
            raise ValueError("the Message ID space must hold at least one ID")
        self.id_space = id_space
        self._next = random.randrange(id_space) if first is None else first % id_space
        self._reserved = reserved
        """How many IDs just before ``first`` may be live until ``_reserved_until``: a pacer
        that goes on from the shared sequence (:class:`PacerTable`) counts the IDs the shared
        one remembers as if they were its own oldest, since the peer may have had any of them.
        Nothing behind them is forgotten before they are (the list's rule)."""
        self._reserved_until = reserved_until
        self._live = array("d")
        """Ends of life, oldest first, from ``_dead`` on: 8 bytes each in an array, where a
        list held a float object and its place (32 bytes), since the shared sequence of
        :class:`PacerTable` holds one for each ID it gave in the last lifetime (one a node
        endpoint after its Register, issue 17); not a deque (624 bytes even with one entry)."""
        self._dead = 0
        """How many entries at the front of ``_live`` are forgotten (dropped in one go once
        they are half of it, so that forgetting costs O(1) per entry)."""

    def _forget_dead(self, now: float) -> int:
        """Forget the IDs dead at ``now``; how many are live."""
        if self._reserved:
            if now < self._reserved_until:
                return self._reserved + len(self._live)
            self._reserved = 0
        live, dead = self._live, self._dead
        while dead < len(live) and live[dead] <= now:
            dead += 1
        if dead and dead * 2 >= len(live):
            del live[:dead]
            dead = 0
        self._dead = dead
        return len(live) - dead

    def take(self, now: float, lifetime: float) -> int | None:
        """The next Message ID, live for ``lifetime`` seconds from ``now``; None to wait."""
        if self._forget_dead(now) >= self.id_space:
            return None
        self._live.append(now + lifetime)
        mid = self._next
        self._next = (mid + 1) % self.id_space
        return mid

    def ready_at(self, now: float) -> float:
        """When :meth:`take` can next succeed (``now`` if it can already)."""
        if self._forget_dead(now) >= self.id_space:
            return self._reserved_until if self._reserved else self._live[self._dead]
        return now

    def live(self, now: float) -> int:
        """How many IDs taken are possibly still live at ``now``."""
        return self._forget_dead(now)

    def idle(self, now: float) -> bool:
        """True when no ID taken is live any more: the pacer can be forgotten."""
        return not self._forget_dead(now)


class _SharedPacer(MessageIdPacer):
    """The sequence every peer without a pacer of its own takes its IDs from; it knows when the
    last ID it gave stops being live, which a pacer that goes on from it must wait for."""

    __slots__ = ("latest",)

    def __init__(self, id_space: int) -> None:
        super().__init__(id_space)
        self.latest = 0.0

    def take(self, now: float, lifetime: float) -> int | None:
        mid = super().take(now, lifetime)
        if mid is not None:
            self.latest = max(self.latest, now + lifetime)
        return mid

    def successor(self, now: float) -> MessageIdPacer:
        """A pacer of one peer's own that goes on where this sequence is: the IDs this one
        remembers (any of them may have gone to that peer) come back to it last."""
        live = self.live(now)
        return MessageIdPacer(self.id_space, self._next, live, self.latest if live else 0.0)


class PacerTable(Generic[K]):
    """The Message IDs toward every peer: one sequence shared by all peers while fewer than
    half its IDs are live, and a :class:`MessageIdPacer` of its own for a peer that asks
    while it is busier, kept only while that peer has live IDs of its own.

    A peer that moves to its own pacer goes on from the shared sequence, counting the IDs live
    in it as its own (:meth:`_SharedPacer.successor`), so that no ID live at it is reused; one
    whose own pacer was forgotten has no live ID of it left, so the shared sequence is free to
    it again. A fast sender thus gets at least half the space at once and all of it once its
    own pacer's first IDs die, as it did with a pacer of its own from the start."""

    def __init__(self, id_space: int = MESSAGE_IDS) -> None:
        self.id_space = id_space
        self._shared = _SharedPacer(id_space)
        self._busy = (id_space + 1) // 2
        """From how many live IDs in the shared sequence a peer that asks gets its own."""
        self._pacers: dict[K, MessageIdPacer] = {}
        self._next_sweep = 0.0

    def __len__(self) -> int:
        """How many peers hold a pacer of their own."""
        return len(self._pacers)

    def pacer(self, peer: K, now: float) -> MessageIdPacer:
        self._sweep(now)
        pacer = self._pacers.get(peer)
        if pacer is None:
            shared = self._shared
            if shared.live(now) < self._busy:
                return shared
            pacer = self._pacers[peer] = shared.successor(now)
        return pacer

    def _sweep(self, now: float) -> None:
        """Drop idle peers, at most once a second so that a busy sender pays nothing for it."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        for peer in [p for p, pacer in self._pacers.items() if pacer.idle(now)]:
            del self._pacers[peer]


NO_RTT_INTERVAL = 3.0
"""The least time between two notifications to a server without an RTT estimate (RFC 7641
§4.5.1: "one non-confirmable notification every 3 seconds")."""

BURST = 4
"""How many notifications may go back to back, the average staying one per RTT (a turn
whose timer fired late does not lose the time it was late by, up to this many RTTs). Without
an RTT estimate there is no burst: one every ``NO_RTT_INTERVAL``."""

RTT_REFRESH = 1.0
"""During a burst, a notification is confirmable when the RTT estimate is older than this: its
ACK is a fresh sample, so the pace follows the server as its load changes, and it is sent again
if lost. A notification that goes at once (no burst) stays non-confirmable."""


class Turn(Enum):
    """What the pace says to a notification that asks to go (see :class:`NotificationPace`)."""

    WAIT = "wait"
    NON = "non-confirmable"
    CON = "confirmable"


class NotificationPace:
    """How fast notifications may go to one server: congestion control on the notifying side.

    RFC 7641 §4.5.1 puts it there, since the server of the observed resource is the one that
    sends: it "SHOULD NOT send more than one non-confirmable notification per round-trip time
    (RTT) to a client on average", and without an RTT estimate no more than "one
    non-confirmable notification every 3 seconds". Here notifications are spaced by the RTT
    measured from the confirmable exchanges with the server (its ACKs to Register, Update,
    Send and confirmable notifications, timed by the kernel's arrival stamps where the socket
    gives them; samples of retransmitted messages left out, as Karn's algorithm says), as
    RFC 6298's estimator bounds it: SRTT + 4 RTTVAR, so that a server whose handling time
    varies is not sent more than it reads at its slowest (a NON lost at its socket is never
    sent again), with a burst of at most ``BURST``. Without an estimate one goes
    every ``NO_RTT_INTERVAL`` and confirmable, so that its ACK gives one: a gateway whose first
    contact with an observer is a flood then sends at the observer's pace after one RTT, not
    one notification every 3 s for as long as the flood lasts.

    Sans-I/O: the caller passes the time, and asks :meth:`ready_at` when it may take a turn.
    """

    __slots__ = ("_next", "measured_at", "rttvar", "srtt")

    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.measured_at = 0.0
        self._next = 0.0

    def measured(self, now: float, rtt: float) -> None:
        """An RTT sample taken at ``now`` (RFC 6298 §2: alpha 1/8, beta 1/4)."""
        self.measured_at = now
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
            self._next = 0.0  # the probe's 3 s no longer apply: the RTT does
            return
        self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
        self.srtt = 0.875 * self.srtt + 0.125 * rtt

    def ready_at(self, now: float) -> float:
        """When the next notification may go (``now`` if it may already)."""
        slack = 0.0 if self.srtt is None else (BURST - 1) * self._interval()
        return max(now, self._next - slack)

    def _interval(self) -> float:
        """The time between two notifications: the RTT as RFC 6298 bounds it (SRTT plus four
        times its variation), so that the pace allows for the server's jitter."""
        if self.srtt is None:
            return NO_RTT_INTERVAL
        return self.srtt + 4 * self.rttvar

    def take(self, now: float, *, burst: bool = False, con_in_flight: bool = False) -> Turn:
        """Take the turn at ``now`` (the caller checked :meth:`ready_at`): CON to measure the
        RTT (none known; or, in a ``burst``, the estimate older than ``RTT_REFRESH``) unless a
        confirmable message to the server is already in flight (RFC 7252 §4.7, NSTART 1: it
        would wait behind it), else NON."""
        # _next is when the turns taken would all have gone at one per interval: a turn is free
        # while it is less than BURST intervals ahead of now (GCRA, a token bucket of BURST).
        self._next = max(now, self._next) + self._interval()
        stale = self.srtt is None or (burst and now - self.measured_at >= RTT_REFRESH)
        return Turn.CON if stale and not con_in_flight else Turn.NON


class Turns(Protocol):
    """What paces an observer's notifications (``bridged.engine.coap.BoundedMessageManager``):
    ``turn`` says whether one may go now, or calls ``go`` when its turn comes; ``withdraw``
    forgets a waiter."""

    def turn(self, remote: Any, waiter: Hashable, go: Callable[[Turn], None]) -> Turn: ...

    def withdraw(self, remote: Any, waiter: Hashable) -> None: ...
