"""RFC 4944 §5.3 fragmentation: FRAG1/FRAGN headers, reassembly and fragmentation.

Sizes and offsets count the *uncompressed* IPv6 datagram (RFC 6282 §2), so the reassembler is
handed the FRAG1 content already decompressed (the 6LoWPAN decoder does that) and places every
fragment at its uncompressed offset.

Reassembly memory is bounded by a byte budget, not a buffer count: a datagram is charged its
full announced size when its first fragment arrives, and when a new datagram would not fit the
oldest incomplete ones are evicted. A flood of first fragments that never complete therefore
costs at most the budget, and every discard is counted by reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import FragmentDecodeError

FRAG1 = 0b11000
FRAGN = 0b11100
FRAG1_HEADER = 4
FRAGN_HEADER = 5
MAX_DATAGRAM = 0x7FF  # datagram_size is 11 bits

DEFAULT_BUDGET = 8 * 1280
"""Room for eight full IPv6 minimum-MTU datagrams being reassembled at once."""

DEFAULT_TIMEOUT = 5.0
"""Seconds a datagram may take to complete; RFC 4944 allows up to 60, real stacks use 0.5-3."""


@dataclass(frozen=True)
class FragmentHeader:
    """A FRAG1 (``offset`` 0) or FRAGN header; ``offset`` is in octets."""

    size: int
    tag: int
    offset: int
    first: bool

    @property
    def length(self) -> int:
        return FRAG1_HEADER if self.first else FRAGN_HEADER

    def to_bytes(self) -> bytes:
        word = (FRAG1 if self.first else FRAGN) << 11 | self.size
        out = word.to_bytes(2, "big") + self.tag.to_bytes(2, "big")
        return out if self.first else out + bytes((self.offset // 8,))


def parse_fragment_header(data: bytes) -> FragmentHeader:
    """The fragment header that starts ``data``; raises :class:`FragmentDecodeError`."""
    if len(data) < FRAG1_HEADER:
        raise FragmentDecodeError("fragment header truncated")
    kind = data[0] >> 3
    size = (data[0] & 7) << 8 | data[1]
    tag = data[2] << 8 | data[3]
    if kind == FRAG1:
        return FragmentHeader(size, tag, 0, True)
    if kind != FRAGN:
        raise FragmentDecodeError(f"dispatch 0x{data[0]:02x} is not a fragment header")
    if len(data) < FRAGN_HEADER:
        raise FragmentDecodeError("FRAGN header truncated")
    if data[4] == 0:
        raise FragmentDecodeError("FRAGN with offset 0")
    return FragmentHeader(size, tag, data[4] * 8, False)


def fragment(
    header: bytes, rest: bytes, datagram_size: int, *, tag: int, max_payload: int
) -> list[bytes]:
    """MAC payloads carrying one datagram: itself if it fits, else FRAG1 + FRAGNs.

    ``header`` is the compressed header, which stands for ``datagram_size - len(rest)``
    uncompressed octets, and ``rest`` the bytes that follow it uncompressed. The compressed
    header stays whole in FRAG1 (RFC 6282 §2); every fragment but the last ends on an 8-octet
    boundary of the uncompressed datagram, as the 8-octet offset unit requires.
    """
    if len(header) + len(rest) <= max_payload:
        return [header + rest]
    if datagram_size > MAX_DATAGRAM:
        raise ValueError(f"a datagram of {datagram_size} octets cannot be fragmented")
    uncompressed_header = datagram_size - len(rest)
    room = max_payload - FRAG1_HEADER - len(header)
    first = (uncompressed_header + room) // 8 * 8 - uncompressed_header
    per_fragment = (max_payload - FRAGN_HEADER) // 8 * 8
    if first < 0 or per_fragment <= 0:
        raise ValueError("the MAC payload is too small for the compressed header")
    frames = [FragmentHeader(datagram_size, tag, 0, True).to_bytes() + header + rest[:first]]
    pos = first
    while pos < len(rest):
        chunk = rest[pos : pos + per_fragment]
        offset = uncompressed_header + pos
        frames.append(FragmentHeader(datagram_size, tag, offset, False).to_bytes() + chunk)
        pos += len(chunk)
    return frames


@dataclass(frozen=True)
class Reassembled:
    """A complete datagram, and whether its FRAG1 said the UDP checksum was elided."""

    datagram: bytes
    checksum_elided: bool = False


@dataclass(frozen=True)
class ReassemblyCounters:
    """Why datagrams completed or were discarded, since the reassembler was made."""

    completed: int = 0
    evicted: int = 0
    timed_out: int = 0
    overlap: int = 0
    size_mismatch: int = 0
    bad: int = 0


@dataclass
class _Buffer:
    size: int
    deadline: float
    data: bytearray
    ranges: list[tuple[int, int]] = field(default_factory=list)
    received: int = 0
    checksum_elided: bool = False


_Key = tuple[bytes, int, int]


class Reassembler:
    """Reassembly buffers keyed by (link source, tag, datagram size), bounded in bytes.

    ``clock`` returns seconds (monotonic); it is injectable so tests step time instead of
    sleeping. Expired buffers are dropped on every :meth:`add` and by :meth:`expire`, which the
    owner may call from a timer so idle buffers do not outlive their timeout.
    """

    def __init__(
        self,
        *,
        budget: int = DEFAULT_BUDGET,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if budget < 1 or timeout <= 0:
            raise ValueError("the budget and the timeout must be positive")
        self.budget = budget
        self.timeout = timeout
        self._clock = clock
        self._buffers: dict[_Key, _Buffer] = {}  # insertion order = age
        self._by_tag: dict[tuple[bytes, int], _Key] = {}
        self._held = 0
        self._counts = dict.fromkeys(
            ("completed", "evicted", "timed_out", "overlap", "size_mismatch", "bad"), 0
        )

    def __len__(self) -> int:
        return len(self._buffers)

    @property
    def held_bytes(self) -> int:
        """Bytes charged to incomplete datagrams; never above the budget."""
        return self._held

    @property
    def counters(self) -> ReassemblyCounters:
        return ReassemblyCounters(**self._counts)

    def expire(self) -> None:
        """Drop the datagrams whose timeout has run out."""
        now = self._clock()
        while self._buffers:
            key, buffer = next(iter(self._buffers.items()))
            if buffer.deadline > now:
                break
            self._drop(key, "timed_out")

    def add(
        self,
        source: bytes,
        size: int,
        tag: int,
        offset: int,
        data: bytes,
        *,
        checksum_elided: bool = False,
    ) -> Reassembled | None:
        """File one fragment (``data`` uncompressed, at octet ``offset``).

        Returns the datagram once every octet of it has arrived, else None. A fragment that
        does not fit its datagram is dropped and counted ``bad``; one that overlaps an earlier
        fragment differently discards the buffer (``overlap``) and starts afresh with itself,
        as RFC 4944 §5.3 says; a tag reused with another size discards the old buffer
        (``size_mismatch``). An identical repeat of a fragment is ignored.
        """
        self.expire()
        end = offset + len(data)
        if not data or size == 0 or end > size:
            self._counts["bad"] += 1
            return None
        key = (source, tag, size)
        previous = self._by_tag.get((source, tag))
        if previous is not None and previous != key:
            self._drop(previous, "size_mismatch")
        buffer = self._buffers.get(key)
        if buffer is not None:
            for start, stop in buffer.ranges:
                if offset < stop and start < end:
                    if (start, stop) == (offset, end) and buffer.data[start:stop] == data:
                        return None
                    self._drop(key, "overlap")
                    buffer = None
                    break
        if buffer is None:
            buffer = self._open(key, size)
            if buffer is None:
                return None
        buffer.data[offset:end] = data
        buffer.ranges.append((offset, end))
        buffer.received += len(data)
        if offset == 0:
            buffer.checksum_elided = checksum_elided
        if buffer.received < size:
            return None
        self._drop(key, "completed")
        return Reassembled(bytes(buffer.data), buffer.checksum_elided)

    def _open(self, key: _Key, size: int) -> _Buffer | None:
        if size > self.budget:
            self._counts["bad"] += 1
            return None
        while self._held + size > self.budget:
            self._drop(next(iter(self._buffers)), "evicted")
        buffer = _Buffer(size, self._clock() + self.timeout, bytearray(size))
        self._buffers[key] = buffer
        self._by_tag[key[0], key[1]] = key
        self._held += size
        return buffer

    def _drop(self, key: _Key, reason: str) -> None:
        buffer = self._buffers.pop(key)
        del self._by_tag[key[0], key[1]]
        self._held -= buffer.size
        self._counts[reason] += 1
