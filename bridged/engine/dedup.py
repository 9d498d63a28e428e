"""Duplicate detection for incoming CoAP requests, in bounded memory.

CoAP (RFC 7252 section 4.5) asks a receiver to recognise a request it already got, by remote and
Message ID, and to answer a duplicate CON with the response it already sent. aiocoap 0.4.17 keeps
every request it received for EXCHANGE_LIFETIME (247 s) with the full response message (which
holds the request too) and one event-loop timer each, so its memory grows with the request rate:
at 2,400 requests/s that is 600,000 entries and more than a gigabyte. This cache keeps the same
guarantee in a window sized for what duplicates really are, with a hard cap on entries:

* A peer retransmits a CON at most MAX_TRANSMIT_SPAN (45 s with the default transmission
  parameters) after the first copy, and only while it has no ACK. ``con_window`` (60 s by
  default) covers every retransmission plus 15 s of network delay, instead of EXCHANGE_LIFETIME,
  which adds the worst-case Internet latency of MAX_LATENCY (100 s) twice.
* A NON is never retransmitted by CoAP, so its duplicates are network-level copies that arrive
  within moments; ``non_window`` (10 s) is ample, and no response is kept for a NON.
* Responses are kept as their encoded bytes, not as message objects.
* At most ``capacity`` entries exist. When full, the entry closest to its expiry goes first, so a
  flood only shortens the window (to ``capacity / rate``) rather than growing memory. The default,
  16,384, holds a full ``con_window`` of a server that paces itself as CoAP requires (at most
  65,536 Message IDs per 247 s, about 265 CON/s).

The cache is sans-I/O: the caller passes the current time and the encoded response, and gets
back whether a request is new. Expired entries are dropped as new ones come in (both windows are
fixed, so each kind's insertion order is its expiry order), without a timer per entry.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

#: A peer's last retransmission of a CON leaves at most MAX_TRANSMIT_SPAN (45 s) after the first
#: one; the 15 s on top are for the network.
DEFAULT_CON_WINDOW = 60.0
DEFAULT_NON_WINDOW = 10.0
DEFAULT_CAPACITY = 16_384


@dataclass(slots=True)
class _Entry:
    expires: float
    response: bytes | None = None


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A request seen before; ``response`` is the encoded answer to resend, if one was sent."""

    response: bytes | None


class DedupCache(Generic[K]):
    """Recently received requests by key (remote, Message ID), with their encoded responses."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        con_window: float = DEFAULT_CON_WINDOW,
        non_window: float = DEFAULT_NON_WINDOW,
    ) -> None:
        if capacity < 1:
            raise ValueError("the deduplication cache needs room for at least one entry")
        if not 0 < non_window <= con_window:
            raise ValueError("windows must be positive, the NON window no longer than the CON one")
        self.capacity = capacity
        self.con_window = con_window
        self.non_window = non_window
        self._con: OrderedDict[K, _Entry] = OrderedDict()
        self._non: OrderedDict[K, _Entry] = OrderedDict()
        self.evicted = 0
        """Entries dropped before their window ended because the cache was full."""

    def __len__(self) -> int:
        return len(self._con) + len(self._non)

    def check(self, key: K, confirmable: bool, now: float) -> Duplicate | None:
        """None if ``key`` is new (and now remembered), else the :class:`Duplicate`."""
        self._expire(now)
        entry = self._con.get(key) or self._non.get(key)
        if entry is not None:
            return Duplicate(entry.response)
        if len(self) >= self.capacity:
            self._evict_one()
        if confirmable:
            self._con[key] = _Entry(now + self.con_window)
        else:
            self._non[key] = _Entry(now + self.non_window)
        return None

    def answer(self, key: K, response: bytes) -> None:
        """Keep ``response`` for duplicates of the CON request ``key``, if it is still known."""
        entry = self._con.get(key)
        if entry is not None:
            entry.response = response

    def clear(self) -> None:
        self._con.clear()
        self._non.clear()

    def _expire(self, now: float) -> None:
        for entries in (self._con, self._non):
            while entries:
                key, entry = next(iter(entries.items()))
                if entry.expires > now:
                    break
                del entries[key]

    def _evict_one(self) -> None:
        con = next(iter(self._con.values()), None)
        non = next(iter(self._non.values()), None)
        if con is None or (non is not None and non.expires <= con.expires):
            self._non.popitem(last=False)
        else:
            self._con.popitem(last=False)
        self.evicted += 1
