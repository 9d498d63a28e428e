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
Everything here is sans-I/O: the caller passes the current time.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from typing import Generic, TypeVar

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

    __slots__ = ("_dead", "_live", "_next", "id_space")

    def __init__(self, id_space: int = MESSAGE_IDS, first: int | None = None) -> None:
        if id_space < 1:
            raise ValueError("the Message ID space must hold at least one ID")
        self.id_space = id_space
        self._next = random.randrange(id_space) if first is None else first % id_space
        self._live: list[float] = []
        """Ends of life, oldest first, from ``_dead`` on: a list, not a deque, since a deque
        is 624 bytes even with one entry, and every endpoint of the endpoints mode holds a
        pacer with one or two for a lifetime after its Register."""
        self._dead = 0
        """How many entries at the front of ``_live`` are forgotten (dropped in one go once
        they are half of it, so that forgetting costs O(1) per entry)."""

    def _forget_dead(self, now: float) -> int:
        """Forget the IDs dead at ``now``; how many are live."""
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
            return self._live[self._dead]
        return now

    def idle(self, now: float) -> bool:
        """True when no ID taken is live any more: the pacer can be forgotten."""
        return not self._forget_dead(now)


class PacerTable(Generic[K]):
    """One :class:`MessageIdPacer` per peer, kept only while the peer has live IDs."""

    def __init__(self, id_space: int = MESSAGE_IDS) -> None:
        self.id_space = id_space
        self._pacers: dict[K, MessageIdPacer] = {}
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._pacers)

    def pacer(self, peer: K, now: float) -> MessageIdPacer:
        self._sweep(now)
        pacer = self._pacers.get(peer)
        if pacer is None:
            pacer = self._pacers[peer] = MessageIdPacer(self.id_space)
        return pacer

    def _sweep(self, now: float) -> None:
        """Drop idle peers, at most once a second so that a busy sender pays nothing for it."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        for peer in [p for p, pacer in self._pacers.items() if pacer.idle(now)]:
            del self._pacers[peer]
