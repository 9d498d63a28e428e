"""Message-ID pacing: never more IDs than the space holds in any lifetime, never a live ID
reused, and peers forgotten once nothing sent to them is live."""

from __future__ import annotations

import gc
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.engine.pacing import (
    BURST,
    EXCHANGE_LIFETIME,
    MESSAGE_IDS,
    NO_RTT_INTERVAL,
    RTT_REFRESH,
    MessageIdPacer,
    NotificationPace,
    PacerTable,
    Turn,
)


def test_ids_come_in_sequence_and_wrap() -> None:
    pacer = MessageIdPacer(first=MESSAGE_IDS - 2)
    assert [pacer.take(0.0, EXCHANGE_LIFETIME) for _ in range(3)] == [65534, 65535, 0]


def test_the_whole_space_is_usable_then_the_pacer_waits_for_the_oldest_id() -> None:
    pacer = MessageIdPacer(id_space=MESSAGE_IDS, first=0)
    for n in range(MESSAGE_IDS):
        assert pacer.take(n / 1000, 247.0) == n
    assert pacer.take(65.0, 247.0) is None, "all 65,536 IDs are live"
    assert pacer.ready_at(65.0) == 247.0, "ID 0 dies 247 s after it was taken"
    assert pacer.take(246.999, 247.0) is None
    assert pacer.take(247.0, 247.0) == 0


def test_the_sustained_rate_is_the_space_over_the_lifetime() -> None:
    """About 265 CON messages/s with the CoAP defaults; ~452/s for NON."""
    for lifetime, rate in ((247.0, 265), (145.0, 451)):
        pacer, now, sent = MessageIdPacer(first=0), 0.0, 0
        while now < 3 * lifetime:
            if pacer.take(now, lifetime) is not None:
                sent += 1
            else:
                now = pacer.ready_at(now)
        assert rate <= sent / now <= rate + 1


def test_a_peer_is_forgotten_when_nothing_sent_to_it_is_live() -> None:
    table: PacerTable[str] = PacerTable(id_space=4)
    for _ in range(2):  # the shared sequence half busy: the peers that ask get their own
        table.pacer("quiet", 0.0).take(0.0, 5.0)
    table.pacer("a", 0.0).take(0.0, 10.0)
    table.pacer("b", 0.0).take(0.0, 100.0)
    assert len(table) == 2
    table.pacer("b", 50.0)
    assert len(table) == 1, "a's only ID died at 10 s"
    assert not hasattr(table.pacer("b", 50.0), "__dict__"), "slotted"


def test_quiet_peers_share_one_sequence_and_hold_nothing_of_their_own() -> None:
    """Issue 17: each of 10,000 node endpoints sends a Register (one CON each): they take IDs
    from one sequence, all different, and the table holds no pacer for any of them (245 bytes
    each for a lifetime before)."""
    table: PacerTable[int] = PacerTable()
    mids = [
        table.pacer(peer, peer / 1000).take(peer / 1000, EXCHANGE_LIFETIME)
        for peer in range(10_000)
    ]
    assert len(set(mids)) == 10_000 and None not in mids
    assert len(table) == 0
    shared = table.pacer(0, 11.0)
    assert shared is table.pacer(1, 11.0)
    # and what the shared sequence remembers of them is 8 bytes each (a list and its floats
    # were 32)
    held = sys.getsizeof(shared._live) + sum(  # type: ignore[attr-defined]
        sys.getsizeof(r)
        for r in gc.get_referents(shared._live)  # type: ignore[attr-defined]
    )
    assert held < 9 * 10_000


def test_a_fast_sender_through_the_table_still_gets_the_whole_space_per_lifetime() -> None:
    """Half the space from the shared sequence, then a pacer of its own that goes on from it:
    the sustained rate stays about 265 CON messages/s."""
    table: PacerTable[str] = PacerTable()
    now, sent = 0.0, 0
    while now < 3 * EXCHANGE_LIFETIME:
        if table.pacer("fast", now).take(now, EXCHANGE_LIFETIME) is not None:
            sent += 1
        else:
            now = table.pacer("fast", now).ready_at(now)
    assert 264 <= sent / now <= 266
    assert len(table) == 1


@given(
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=3), st.booleans(), st.integers(0, 3)),
        max_size=400,
    ),
    st.integers(min_value=1, max_value=12),
)
def test_no_live_id_is_ever_reused_toward_any_peer_of_the_table(
    sends: list[tuple[float, bool, int]], space: int
) -> None:
    """Peers moving between the shared sequence and pacers of their own (small numbers, so
    that the space wraps and peers move often): toward each peer no ID is given while it is
    live there, and a message waits (as the engine holds it) until the table gives it one."""
    con_life, non_life = 20.0, 12.0
    table: PacerTable[int] = PacerTable(id_space=space)
    now = 0.0
    dies: dict[tuple[int, int], float] = {}  # (peer, ID) -> end of its last use
    for step, con, peer in sends:
        now += step
        lifetime = con_life if con else non_life
        mid = table.pacer(peer, now).take(now, lifetime)
        while mid is None:
            ready = table.pacer(peer, now).ready_at(now)
            assert ready > now
            now = ready
            mid = table.pacer(peer, now).take(now, lifetime)
        assert 0 <= mid < space
        assert dies.get((peer, mid), 0.0) <= now, f"ID {mid} reused toward {peer} while live"
        dies[(peer, mid)] = now + lifetime


def test_an_empty_space_is_refused() -> None:
    with pytest.raises(ValueError):
        MessageIdPacer(id_space=0)


@given(
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=3), st.booleans()),  # step, CON?
        max_size=400,
    ),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=0, max_value=11),
)
def test_no_live_id_is_ever_reused_and_never_more_live_than_the_space(
    sends: list[tuple[float, bool]], space: int, first: int
) -> None:
    """Any sequence of CON and NON sends, with small numbers so that the space wraps often: a
    message waits (as the engine holds it) until the pacer gives it an ID. At any time at most
    ``space`` IDs are live, i.e. a CON-only sender gets at most ``space`` IDs per lifetime."""
    con_life, non_life = 20.0, 12.0
    pacer = MessageIdPacer(id_space=space, first=first)
    now = 0.0
    dies: dict[int, float] = {}  # ID -> end of its last use
    live_until: list[float] = []
    for step, con in sends:
        now += step
        lifetime = con_life if con else non_life
        mid = pacer.take(now, lifetime)
        while mid is None:
            ready = pacer.ready_at(now)
            assert ready > now
            now = ready
            mid = pacer.take(now, lifetime)
        assert 0 <= mid < space
        assert dies.get(mid, 0.0) <= now, f"ID {mid} reused while live"
        dies[mid] = now + lifetime
        live_until.append(now + lifetime)
        assert sum(1 for end in live_until if end > now) <= space


def test_without_an_rtt_estimate_one_confirmable_notification_every_3_seconds() -> None:
    """RFC 7641 §4.5.1; each is confirmable so that its ACK gives an estimate."""
    pace = NotificationPace()
    assert pace.ready_at(10.0) == 10.0 and pace.take(10.0) is Turn.CON
    assert pace.ready_at(10.0) == 10.0 + NO_RTT_INTERVAL
    assert pace.take(13.0, con_in_flight=True) is Turn.NON, "one CON at a time (NSTART 1)"


def test_with_an_rtt_estimate_one_notification_per_rtt_on_average() -> None:
    """Spaced by the RTT's bound, SRTT + 4 RTTVAR (RFC 6298): 2 ms + 4 x 1 ms after a first
    sample of 2 ms."""
    pace = NotificationPace()
    pace.take(0.0)
    pace.measured(0.002, 0.002)
    assert pace.ready_at(0.002) == 0.002, "the 3 s of the probe no longer apply"
    taken = []
    now = 0.002
    while now < 0.6:
        now = pace.ready_at(now)
        taken.append(pace.take(now))
    assert abs(len(taken) - (100 + BURST - 1)) <= 1, "a burst, then one per 6 ms"
    assert set(taken) == {Turn.NON}
    late = pace.ready_at(0.6) + 0.0121  # a timer two intervals late: three turns at once
    turns = 0
    while pace.ready_at(late) <= late:
        pace.take(late)
        turns += 1
    assert turns == 3
    pace.measured(1.0, 0.010)  # RFC 6298: srtt + (rtt - srtt) / 8
    assert pace.srtt == pytest.approx(0.003)


def test_a_long_burst_refreshes_the_estimate_with_a_confirmable_notification() -> None:
    pace = NotificationPace()
    pace.measured(0.0, 0.01)
    assert pace.take(0.5, burst=True) is Turn.NON
    assert pace.take(RTT_REFRESH, burst=False) is Turn.NON, "a lone notification stays NON"
    assert pace.take(RTT_REFRESH, burst=True) is Turn.CON
    assert pace.take(RTT_REFRESH + 0.01, burst=True, con_in_flight=True) is Turn.NON
