"""RFC 4944 fragmentation: headers, reassembly out of order and with losses, the memory bound."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from timers import Clock

from bridged.transports.ieee802154.errors import FragmentDecodeError
from bridged.transports.ieee802154.fragment import (
    FragmentHeader,
    Reassembler,
    ReassemblyCounters,
    fragment,
    parse_fragment_header,
)

NODE = bytes.fromhex("021122fffe334455")


def test_published_fragment_headers() -> None:
    # scapy dot15d4.uts frames: FRAG1 "c3 42 00 23" (size 0x342 = 834, tag 0x23) and FRAGN
    # "e2 39 00 17 10" (size 569, tag 0x17, offset 16 units of 8 octets).
    assert parse_fragment_header(bytes.fromhex("c3420023")) == FragmentHeader(834, 0x23, 0, True)
    assert parse_fragment_header(bytes.fromhex("e239001710")) == FragmentHeader(
        569, 0x17, 128, False
    )
    assert FragmentHeader(834, 0x23, 0, True).to_bytes().hex() == "c3420023"
    assert FragmentHeader(569, 0x17, 128, False).to_bytes().hex() == "e239001710"


@pytest.mark.parametrize("data", ["c342", "e2390017", "e239001700", "d0000000", "4000000000"])
def test_bad_fragment_headers(data: str) -> None:
    with pytest.raises(FragmentDecodeError):
        parse_fragment_header(bytes.fromhex(data))


def split(datagram: bytes, header_len: int = 40, max_payload: int = 96) -> list[tuple[int, bytes]]:
    """(offset, uncompressed bytes) of each fragment, as the decoder files them."""
    header, rest = datagram[:header_len], datagram[header_len:]
    payloads = fragment(header, rest, len(datagram), tag=7, max_payload=max_payload)
    if len(payloads) == 1:
        return [(0, payloads[0])]
    out = []
    for payload in payloads:
        parsed = parse_fragment_header(payload)
        out.append((parsed.offset, payload[parsed.length :]))
    return out


def test_fragments_fit_and_align() -> None:
    datagram = bytes(random.Random(1).randbytes(1280))
    payloads = fragment(datagram[:40], datagram[40:], 1280, tag=0x1234, max_payload=100)
    assert all(len(p) <= 100 for p in payloads)
    pieces = [(parse_fragment_header(p), p) for p in payloads]
    assert pieces[0][0] == FragmentHeader(1280, 0x1234, 0, True)
    assert all(not h.first and h.offset % 8 == 0 for h, _ in pieces[1:])
    assert all((len(p) - h.length) % 8 == 0 for h, p in pieces[:-1])
    # Small enough: no fragment header at all.
    assert fragment(b"hdr", b"rest", 47, tag=1, max_payload=100) == [b"hdrrest"]


def test_1280_byte_datagram_out_of_order_with_a_lost_fragment() -> None:
    clock = Clock()
    reassembler = Reassembler(clock=clock, timeout=3.0)
    datagram = bytes(random.Random(2).randbytes(1280))
    pieces = split(datagram)
    order = list(range(len(pieces)))
    random.Random(3).shuffle(order)
    lost = order.pop(len(order) // 2)
    for index in order:
        offset, data = pieces[index]
        assert reassembler.add(NODE, 1280, 7, offset, data) is None
    assert reassembler.held_bytes == 1280
    # The sender's retransmission of the whole datagram fills the gap; repeats are ignored.
    offset, data = pieces[order[0]]
    assert reassembler.add(NODE, 1280, 7, offset, data) is None
    offset, data = pieces[lost]
    done = reassembler.add(NODE, 1280, 7, offset, data)
    assert done is not None and done.datagram == datagram
    assert reassembler.held_bytes == 0
    assert reassembler.counters == ReassemblyCounters(completed=1)


def test_an_incomplete_datagram_times_out() -> None:
    clock = Clock()
    reassembler = Reassembler(clock=clock, timeout=3.0)
    pieces = split(bytes(300))
    reassembler.add(NODE, 300, 7, *pieces[0])
    clock.now += 2.9
    reassembler.expire()
    assert len(reassembler) == 1
    clock.now += 0.2
    reassembler.expire()
    assert (len(reassembler), reassembler.held_bytes) == (0, 0)
    assert reassembler.counters.timed_out == 1
    # A late fragment starts a datagram of its own that cannot complete.
    assert reassembler.add(NODE, 300, 7, *pieces[1]) is None


def test_flood_of_first_fragments_stays_inside_the_budget() -> None:
    reassembler = Reassembler(budget=10_000, clock=Clock())
    for tag in range(2000):
        source = tag.to_bytes(2, "big")
        assert reassembler.add(source, 1280, tag, 0, bytes(96)) is None
        assert reassembler.held_bytes <= 10_000
    assert len(reassembler) == 10_000 // 1280
    assert reassembler.counters.evicted == 2000 - len(reassembler)
    # The newest datagrams survive: a FRAGN completes one of them, not an evicted one.
    last = 1999
    done = reassembler.add(last.to_bytes(2, "big"), 1280, last, 96, bytes(1280 - 96))
    assert done is not None and len(done.datagram) == 1280


def test_overlap_discards_and_restarts() -> None:
    reassembler = Reassembler(clock=Clock())
    reassembler.add(NODE, 64, 1, 0, bytes(16))
    reassembler.add(NODE, 64, 1, 8, b"x" * 16)  # overlaps [0, 16) differently
    assert reassembler.counters.overlap == 1
    assert len(reassembler) == 1  # restarted with the newest fragment
    done = reassembler.add(NODE, 64, 1, 0, bytes(8))
    assert done is None
    done = reassembler.add(NODE, 64, 1, 24, bytes(40))
    assert done is not None and done.datagram == bytes(8) + b"x" * 16 + bytes(40)


def test_size_mismatch_and_bad_fragments_are_counted() -> None:
    reassembler = Reassembler(clock=Clock(), budget=2000)
    reassembler.add(NODE, 64, 1, 0, bytes(16))
    reassembler.add(NODE, 72, 1, 16, bytes(16))  # same tag, another size
    assert reassembler.counters.size_mismatch == 1
    assert reassembler.add(NODE, 64, 2, 56, bytes(16)) is None  # runs past the end
    assert reassembler.add(NODE, 2047, 3, 0, bytes(8)) is None  # larger than the budget
    assert reassembler.add(NODE, 64, 4, 0, b"") is None
    assert reassembler.counters.bad == 3
    assert reassembler.held_bytes == 72


@given(
    st.integers(41, 2047),
    st.integers(60, 120),
    st.randoms(use_true_random=False),
    st.sampled_from([40, 48]),
)
def test_fragment_then_reassemble_in_any_order(
    size: int, max_payload: int, rng: random.Random, header_len: int
) -> None:
    if size <= header_len:
        size = header_len + 1
    datagram = rng.randbytes(size)
    pieces = split(datagram, header_len, max_payload)
    rng.shuffle(pieces)
    reassembler = Reassembler(clock=Clock(), budget=4096)
    results = [reassembler.add(NODE, size, 7, offset, data) for offset, data in pieces]
    assert [r for r in results if r is not None] == [results[-1]]
    assert results[-1] is not None and results[-1].datagram == datagram
