"""The bounded deduplication cache: duplicates are recognised and answered within their window,
and the cache never holds more than its capacity, whatever arrives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.engine.dedup import DedupCache, Duplicate


def test_a_duplicate_con_gets_the_stored_response_within_the_window() -> None:
    cache: DedupCache[tuple[str, int]] = DedupCache(capacity=10, con_window=60, non_window=10)
    assert cache.check(("srv", 7), True, now=0.0) is None
    assert cache.check(("srv", 7), True, now=1.0) == Duplicate(None), "no response yet"
    cache.answer(("srv", 7), b"\x60\x45\x00\x07")
    assert cache.check(("srv", 7), True, now=59.9) == Duplicate(b"\x60\x45\x00\x07")


def test_an_entry_is_forgotten_after_its_window() -> None:
    cache: DedupCache[tuple[str, int]] = DedupCache(capacity=10, con_window=60, non_window=10)
    cache.check(("srv", 1), True, now=0.0)
    cache.check(("srv", 2), False, now=0.0)
    assert cache.check(("srv", 2), False, now=9.0) == Duplicate(None)
    assert cache.check(("srv", 2), False, now=10.0) is None, "NON window is 10 s"
    assert cache.check(("srv", 1), True, now=59.0) is not None
    assert cache.check(("srv", 1), True, now=60.0) is None, "CON window is 60 s"


def test_the_same_message_id_from_another_remote_is_new() -> None:
    cache: DedupCache[tuple[str, int]] = DedupCache()
    assert cache.check(("a", 1), True, now=0.0) is None
    assert cache.check(("b", 1), True, now=0.0) is None


def test_no_response_is_kept_for_a_non() -> None:
    cache: DedupCache[tuple[str, int]] = DedupCache()
    cache.check(("srv", 3), False, now=0.0)
    cache.answer(("srv", 3), b"response")
    assert cache.check(("srv", 3), False, now=1.0) == Duplicate(None)


def test_a_full_cache_drops_the_entry_closest_to_expiry() -> None:
    cache: DedupCache[tuple[str, int]] = DedupCache(capacity=3, con_window=60, non_window=10)
    cache.check(("srv", 1), True, now=0.0)  # expires at 60
    cache.check(("srv", 2), False, now=1.0)  # expires at 11: first to go
    cache.check(("srv", 3), True, now=2.0)
    cache.check(("srv", 4), True, now=3.0)
    assert len(cache) == 3 and cache.evicted == 1
    assert cache.check(("srv", 2), False, now=4.0) is None, "evicted, so new again"
    assert cache.check(("srv", 4), True, now=4.0) is not None


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        DedupCache(capacity=0)
    with pytest.raises(ValueError):
        DedupCache(con_window=5, non_window=10)


arrivals = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=5),  # time since the previous request
        st.integers(min_value=0, max_value=40),  # message ID
        st.booleans(),  # CON?
        st.booleans(),  # answered?
    ),
    max_size=300,
)


@given(arrivals, st.integers(min_value=1, max_value=16))
def test_the_cache_stays_within_capacity_and_is_never_wrong(
    requests: list[tuple[float, int, bool, bool]], capacity: int
) -> None:
    """Whatever arrives: at most ``capacity`` entries; a request within its window is recognised
    with the response it got, unless the cache had to evict since; and a request is never taken
    for a duplicate of one whose window has ended."""
    cache: DedupCache[int] = DedupCache(capacity=capacity, con_window=20, non_window=4)
    now = 0.0
    seen: dict[int, tuple[float, bytes | None, int]] = {}  # ID -> expiry, response, evictions
    for step, mid, con, answered in requests:
        now += step
        result = cache.check(mid, con, now)
        assert len(cache) <= capacity
        previous = seen.get(mid)
        live = previous is not None and now < previous[0]
        if live and previous is not None and previous[2] == cache.evicted:
            assert result == Duplicate(previous[1])
        if result is not None:
            assert live and previous is not None
            assert result.response == previous[1]
            continue
        response = f"r{mid}@{now}".encode() if con and answered else None
        if response is not None:
            cache.answer(mid, response)
        seen[mid] = (now + (20 if con else 4), response, cache.evicted)


@given(st.lists(st.floats(min_value=0, max_value=1), max_size=200), st.integers(1, 16))
def test_con_requests_within_the_window_are_remembered_while_fewer_than_capacity_followed(
    steps: list[float], capacity: int
) -> None:
    """For CON requests alone the cache is first in, first out: each is recognised while it is
    within the window and fewer than ``capacity`` requests came after it."""
    cache: DedupCache[int] = DedupCache(capacity=capacity, con_window=20, non_window=4)
    now, arrived = 0.0, []
    for n, step in enumerate(steps):
        now += step
        assert cache.check(n, True, now) is None
        arrived.append(now)
        for back in range(min(capacity, n + 1)):
            if now < arrived[n - back] + 20:
                assert cache.check(n - back, True, now) is not None
