"""Store-and-forward of readings (bridged.store.readings)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path as FsPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridged.objects.paths import Path
from bridged.objects.values import ObjLnk, Record, Value
from bridged.store.database import MIGRATIONS, connect
from bridged.store.nodes import NodeId, NodeStore, PairedNode
from bridged.store.readings import (
    DROPPED_AGE,
    DROPPED_COUNT,
    INSERT_ROWS,
    Bounds,
    ReadingStore,
    Row,
)

NODE = NodeId("ble", "A4:C1:38:00:11:22")
TEMP = Path.parse("/3303/0/5700")


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def readings(n: int, start: float = 1_700_000_000.0) -> list[Row]:
    return [(NODE, Record(TEMP, 20.0 + i / 10, start + i)) for i in range(n)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: FsPath, clock: Clock) -> ReadingStore:
    return ReadingStore(connect(tmp_path / "state.db"), clock=clock)


def test_each_consumer_gets_everything_in_order_and_acks_independently(
    store: ReadingStore,
) -> None:
    store.add_consumer("a")
    store.add_consumer("b")
    store.append(readings(5))
    got = store.pending("a", limit=3)
    assert list(got.rows) == readings(3)
    store.ack("a", got.last)
    assert list(store.pending("a").rows) == readings(5)[3:]
    assert len(store.pending("b")) == 5
    assert len(store) == 5  # b still needs them all
    store.ack("b", store.pending("b").last)
    assert len(store) == 2  # what a has not had yet


def test_a_new_consumer_starts_at_the_end_and_a_known_one_resumes(store: ReadingStore) -> None:
    store.add_consumer("a")
    store.append(readings(3))
    store.add_consumer("late")
    assert not store.pending("late")
    store.add_consumer("a")
    assert len(store.pending("a")) == 3


def test_waiting_counts_what_a_consumer_has_not_acknowledged(store: ReadingStore) -> None:
    store.add_consumer("a")
    store.append(readings(5))
    assert store.waiting("a") == 5
    store.ack("a", store.pending("a", limit=2).last)
    assert store.waiting("a") == 3
    assert store.waiting("unknown") == 0


def test_without_consumers_readings_are_kept(store: ReadingStore) -> None:
    store.append(readings(4))
    assert len(store) == 4


def test_the_count_bound_drops_the_oldest_and_counts_them(tmp_path: FsPath, clock: Clock) -> None:
    store = ReadingStore(connect(tmp_path / "s.db"), Bounds(max_count=10), clock)
    store.add_consumer("a")
    store.append(readings(7))
    store.append(readings(8, start=clock.now + 100))
    pending = store.pending("a")
    assert len(pending) == 10 == len(store)
    assert pending.rows[0] == readings(7)[5]
    assert store.dropped() == {DROPPED_COUNT: 5}


def test_the_age_bound_drops_old_readings_and_counts_them(tmp_path: FsPath, clock: Clock) -> None:
    store = ReadingStore(connect(tmp_path / "s.db"), Bounds(max_age=60), clock)
    store.add_consumer("a")
    store.append(readings(10, start=clock.now - 65))  # 5 are already too old
    assert len(store) == 5
    clock.now += 3
    assert store.expire() == 3
    assert store.dropped() == {DROPPED_AGE: 8}
    assert [r.time for _, r in store.pending("a").rows] == [clock.now - 60, clock.now - 59]


def test_counters_and_readings_survive_reopening(tmp_path: FsPath, clock: Clock) -> None:
    first = ReadingStore(connect(tmp_path / "s.db"), Bounds(max_count=3), clock)
    first.add_consumer("a")
    first.append(readings(5))
    again = ReadingStore(connect(tmp_path / "s.db"), Bounds(max_count=3), clock)
    assert len(again) == 3
    assert again.dropped() == {DROPPED_COUNT: 2}
    assert list(again.pending("a").rows) == readings(5)[2:]


def test_removing_the_last_laggard_frees_what_the_others_had(store: ReadingStore) -> None:
    store.add_consumer("a")
    store.add_consumer("gone")
    store.append(readings(3))
    store.ack("a", store.pending("a").last)
    assert len(store) == 3
    store.remove_consumer("gone")
    assert len(store) == 0


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Bounds(max_count=0)


values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.builds(ObjLnk, st.integers(0, 65535), st.integers(0, 65535)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(values, min_size=1, max_size=20))
def test_every_value_type_comes_back_as_it_went_in(vals: list[Value]) -> None:
    store = ReadingStore(connect(":memory:"), clock=Clock())
    store.add_consumer("a")
    sent = [(NODE, Record(TEMP, v, 1_700_000_000.0 + i)) for i, v in enumerate(vals)]
    store.append(sent)
    back = list(store.pending("a").rows)
    assert back == sent
    assert [type(r.value) for _, r in back] == [type(v) for v in vals]


def test_a_paired_nodes_last_value_of_each_resource_outlives_delivery(
    tmp_path: FsPath, clock: Clock
) -> None:
    """One row per node resource, the last reported, kept after its reading is delivered and
    deleted, and after reopening; none for a node not paired; gone when the node is unpaired."""
    conn = connect(tmp_path / "state.db")
    nodes = NodeStore(conn)
    nodes.pair(PairedNode(NODE, "kitchen", "bthome"))
    stranger = NodeId("ble", "A4:C1:38:00:00:01")
    humidity = Path.parse("/3304/0/5700")
    store = ReadingStore(conn, clock=clock)
    store.add_consumer("a")
    store.append([*readings(3), (NODE, Record(humidity, 55, 1_700_000_001.0))])
    store.append([*readings(2, 1_700_000_010.0), (stranger, Record(TEMP, 1.0, clock.now))])
    store.ack("a", store.pending("a").last)
    assert len(store) == 0
    last = ReadingStore(connect(tmp_path / "state.db"), clock=clock).last_values()
    assert last == {
        NODE: [
            Record(TEMP, 20.1, 1_700_000_011.0),
            Record(humidity, 55, 1_700_000_001.0),
        ]
    }
    nodes.unpair(NODE)
    assert store.last_values() == {}


def test_an_append_keeps_its_last_values_with_no_sort_or_grouping_of_its_rows(
    tmp_path: FsPath, clock: Clock
) -> None:
    """Of a node resource's readings in one append the newest is its last value, also after a
    restart; and no statement of the append builds a temporary B-tree (grouping the rows to
    find each newest cost about a third of an append's instructions, issue 17)."""
    conn = connect(tmp_path / "state.db")
    NodeStore(conn).pair(PairedNode(NODE, "kitchen", "bthome"))
    store = ReadingStore(conn, clock=clock)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    store.append([*readings(4), *readings(3, 1_699_000_000.0)])
    conn.set_trace_callback(None)
    plans = [
        detail
        for sql in statements
        if sql.lstrip().upper().startswith("INSERT")
        for *_, detail in conn.execute("EXPLAIN QUERY PLAN " + sql)
    ]
    assert plans and not [d for d in plans if "TEMP B-TREE" in d]
    conn.close()
    last = ReadingStore(connect(tmp_path / "state.db"), clock=clock).last_values()
    # The newest by arrival, not by the time the node stamped on it.
    assert last == {NODE: [Record(TEMP, 20.2, 1_699_000_002.0)]}


def test_a_large_append_goes_in_few_statements_and_comes_back_whole(
    tmp_path: FsPath, clock: Clock
) -> None:
    """An append's readings go in as few multi-row INSERTs as ``INSERT_ROWS`` make, the rest in
    one more (each statement's step costs about a row's insert, issue 17); read back after a
    restart they are every one, in order, with their values; and the last value of each node
    resource is its newest, also of one reported only at the start of the append while the
    others report on (the last values are taken from the oldest of the newest on)."""
    conn = connect(tmp_path / "state.db")
    others = [NodeId("sim", f"{i:04d}") for i in range(7)]
    for node in (NODE, *others):
        NodeStore(conn).pair(PairedNode(node, "n", "bthome"))
    store = ReadingStore(conn, clock=clock)
    store.add_consumer("a")
    humidity = Path.parse("/3304/0/5700")
    batch: list[Row] = [(NODE, Record(humidity, 41, 1_700_000_000.0))]
    batch += [
        (others[k % 7], Record(TEMP, ObjLnk(3, k) if k % 5 == 0 else k / 4, 1_700_000_001.0 + k))
        for k in range(300)
    ]
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    store.append(batch)
    conn.set_trace_callback(None)
    inserts = [s for s in statements if s.lstrip().startswith("INSERT INTO readings")]
    # 301 rows: one statement of 256, one of 32, one of the 13 left.
    assert INSERT_ROWS == (256, 32)
    assert [s.count("), (") + 1 for s in inserts] == [256, 32, 13]
    conn.close()
    again = ReadingStore(connect(tmp_path / "state.db"), clock=clock)
    assert list(again.pending("a", limit=1000).rows) == batch
    last = again.last_values()
    assert last[NODE] == [Record(humidity, 41, 1_700_000_000.0)]
    for i, node in enumerate(others):
        newest = max(k for k in range(300) if k % 7 == i)
        assert last[node] == [batch[1 + newest][1]]


def test_pending_hands_over_the_readings_appended_without_reading_them_back(
    tmp_path: FsPath, store: ReadingStore
) -> None:
    store.add_consumer("a")
    appended = readings(3)
    store.append(appended)
    # The very objects the transport reported: nothing re-parsed from the table.
    assert all(s is r for s, r in zip(store.pending("a").rows, appended, strict=True))
    # After a restart the table is read back, to the same readings, whose node ids and
    # paths are parsed once, not once per row (issue 17).
    again = ReadingStore(connect(tmp_path / "state.db"))
    back = list(again.pending("a").rows)
    assert back == appended
    assert len({id(n) for n, _ in back}) == len({id(r.path) for _, r in back}) == 1


def test_a_consumer_behind_the_memory_tail_gets_every_reading_once_in_order(
    store: ReadingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bridged.store.readings as module

    monkeypatch.setattr(module, "TAIL_LIMIT", 3)
    store.add_consumer("fast")
    store.add_consumer("slow")
    got: dict[str, list[Row]] = {"fast": [], "slow": []}
    for i in range(5):
        store.append(readings(4, start=1_700_000_000.0 + 10 * i))
        batch = store.pending("fast", limit=2)
        while batch:
            got["fast"] += list(batch.rows)
            store.ack("fast", batch.last)
            batch = store.pending("fast", limit=2)
    assert store.waiting("slow") == 20
    while batch := store.pending("slow", limit=7):
        got["slow"] += list(batch.rows)
        store.ack("slow", batch.last)
    every = [r for i in range(5) for r in readings(4, start=1_700_000_000.0 + 10 * i)]
    assert got == {"fast": every, "slow": every}
    assert len(store) == 0 and store.waiting("slow") == 0


def test_readings_another_store_wrote_are_delivered_in_order_too(
    tmp_path: FsPath, store: ReadingStore, clock: Clock
) -> None:
    """The store numbers its rows itself and does not look for another writer's in every
    commit (a statement each, issue 17): should another store write to its database anyway,
    one append meets its rows and raises, storing nothing (the registry keeps the readings
    and tries again), and the next stores after them."""
    store.add_consumer("a")
    store.append(readings(2))
    other = ReadingStore(connect(tmp_path / "state.db"), clock=clock)
    other.append(readings(2, start=1_700_000_100.0))
    with pytest.raises(sqlite3.IntegrityError):
        store.append(readings(2, start=1_700_000_200.0))
    store.append(readings(2, start=1_700_000_200.0))
    got = list(store.pending("a").rows)
    assert got == readings(2) + readings(2, start=1_700_000_100.0) + readings(
        2, start=1_700_000_200.0
    )


@pytest.mark.parametrize(
    ("bounds", "at", "kept"),
    [
        (Bounds(max_count=4), 1_700_000_000.0, 4),  # a batch larger than the count bound
        (Bounds(max_age=5.0), 1_700_000_007.0, 10),  # a batch partly older than the age bound
    ],
)
def test_what_the_bounds_drop_from_a_batch_is_never_handed_over(
    tmp_path: FsPath, bounds: Bounds, at: float, kept: int
) -> None:
    """A group commit stores many readings at once, and the bounds may drop some of that same
    batch: those are counted as dropped, so delivery must not get them (from memory) either."""
    store = ReadingStore(connect(tmp_path / "state.db"), bounds, clock=Clock(at))
    store.add_consumer("a")
    store.append(readings(12))
    assert list(store.pending("a").rows) == readings(12)[-kept:]
    assert store.waiting("a") == kept
    later = readings(1, 1_700_000_020.0)
    store.append(later)  # the next batch is handed over after them
    assert list(store.pending("a").rows)[-2:] == [readings(12)[-1], *later]


def _old_schema_database(path: FsPath, version: int) -> None:
    """A state database as a bridged of schema ``version`` left it."""
    conn = sqlite3.connect(path, isolation_level=None)
    for target, script in enumerate(MIGRATIONS[:version], start=1):
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={target}")
    conn.close()


def test_the_readings_table_has_no_autoincrement_and_no_time_index(tmp_path: FsPath) -> None:
    """Each reading's insert wrote ``sqlite_sequence`` and a second b-tree (issue 17)."""
    conn = connect(tmp_path / "state.db")
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'readings'").fetchone()
    indexes = conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'readings'")
    assert "AUTOINCREMENT" not in sql.upper()
    assert [name for (name,) in indexes] == ["readings"]


def test_a_database_of_the_old_schema_keeps_its_readings_and_their_seqs(
    tmp_path: FsPath, clock: Clock
) -> None:
    """Migration 9 copies the readings (seqs, values, times) and the next seq follows the
    largest a cursor holds, also when every reading was delivered and deleted."""
    path = tmp_path / "state.db"
    _old_schema_database(path, 8)
    old = sqlite3.connect(path, isolation_level=None)
    for node, r in readings(5):
        old.execute(
            "INSERT INTO readings(node_id, path, kind, value, time) VALUES (?, ?, 1, ?, ?)",
            (str(node), str(r.path), r.value, r.time),
        )
    old.execute("INSERT INTO cursors(consumer, seq) VALUES ('a', 2), ('b', 5)")
    old.close()
    store = ReadingStore(connect(path), clock=clock)
    got = store.pending("a")
    assert list(got.seqs) == [3, 4, 5]
    assert list(got.rows) == readings(5)[2:]
    store.ack("a", 5)
    assert len(store) == 0 and store.expires_in() is None
    later = readings(1, start=1_700_000_500.0)
    assert store.append(later) == 6
    again = ReadingStore(connect(path), clock=clock)  # a restart: nothing left but cursors
    assert again.append(later) == 7
    assert list(again.pending("b").seqs) == [6, 7]


def test_expiry_answers_from_memory_and_learns_the_oldest_when_due(
    store: ReadingStore, clock: Clock
) -> None:
    """With no index by time the oldest reading's time is kept in memory: after delivery
    deleted the oldest it may be earlier than the oldest left, which ``expire`` then learns."""
    store.add_consumer("a")
    store.append(readings(3))  # times 0, 1, 2 (after the clock's epoch)
    store.ack("a", 1)
    clock.now += store.bounds.max_age + 0.5
    assert store.expires_in() == 0
    assert store.expire() == 0  # the reading that was due was delivered
    assert store.expires_in() == 0.5
    clock.now += 2
    assert store.expire() == 2
    assert store.expires_in() is None


def test_a_node_ids_text_is_made_once_for_every_batch_it_reports_in(
    tmp_path: FsPath, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node reports once in a batch, mostly: its id's text (a Python ``__str__``) is kept
    from one append to the next, not made again for each of its readings; the readings and
    the node's last values are stored under that text as before, and the kept texts are
    bounded."""
    made: list[NodeId] = []
    text = NodeId.__str__

    def counted(node: NodeId) -> str:
        made.append(node)
        return text(node)

    monkeypatch.setattr(NodeId, "__str__", counted)
    monkeypatch.setattr("bridged.store.readings.NODE_TEXTS_LIMIT", 2)
    conn = connect(tmp_path / "state.db")
    nodes = NodeStore(conn)
    others = [NodeId("ble", f"A4:C1:38:00:11:{i:02X}") for i in range(3)]
    for node in (NODE, *others):
        nodes.pair(PairedNode(node, str(node), "bthome"))
    store = ReadingStore(conn, clock=clock)
    store.add_consumer("a")
    made.clear()
    for batch in range(3):
        store.append([(NODE, Record(TEMP, 20.0 + batch, 1_700_000_000.0 + batch))])
    assert made == [NODE]
    assert store.last_values()[NODE] == [Record(TEMP, 22.0, 1_700_000_002.0)]
    back = ReadingStore(connect(tmp_path / "state.db"), clock=clock)  # read from the table
    assert [row for row in back.pending("a").rows] == [
        (NODE, Record(TEMP, 20.0 + batch, 1_700_000_000.0 + batch)) for batch in range(3)
    ]
    for node in others:  # more nodes than the limit: forgotten, made again when they report
        store.append([(node, Record(TEMP, 1.0, 1_700_000_010.0))])
    made.clear()
    store.append([(NODE, Record(TEMP, 23.0, 1_700_000_011.0))])
    assert made == [NODE]


HUMIDITY = Path.parse("/3304/0/5700")


def paired_store(path: FsPath, clock: Clock, *nodes: NodeId, **kw: Bounds) -> ReadingStore:
    """A store over the state database at ``path`` (opened anew: a restart) with ``nodes``
    paired."""
    conn = connect(path)
    for node in nodes:
        NodeStore(conn).pair(PairedNode(node, str(node), "bthome"))
    return ReadingStore(conn, clock=clock, **kw)


def test_a_group_commit_is_its_readings_insert_alone(tmp_path: FsPath, clock: Clock) -> None:
    """A commit of a few readings is their INSERT alone, which SQLite commits as a transaction
    of its own: no BEGIN and COMMIT, no look for another writer's rows, no last values'
    upsert (each a statement run cold at ~100 reports/s, 30 to 100 µs, issue 17); another
    connection (a restart) has the readings when ``append`` returns. A commit of more than
    one statement, or that a write joins, is a transaction."""
    db = tmp_path / "state.db"
    store = paired_store(db, clock, NODE)
    store.add_consumer("a")
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    BEGIN, INSERT = "BEGIN IMMEDIATE", "INSERT INTO readings(seq,"

    def run() -> list[str]:
        words = [" ".join(statement.split()[:3]) for statement in statements]
        statements.clear()
        return words

    store.append([*readings(3), (NODE, Record(HUMIDITY, 55, clock.now))])
    assert run() == [INSERT]
    with contextlib.closing(sqlite3.connect(db)) as other:
        assert other.execute("SELECT count(*) FROM readings").fetchone() == (4,)
    store.append(readings(INSERT_ROWS[-1] + 1, clock.now + 10))
    assert run() == [BEGIN, INSERT, INSERT, "COMMIT"]
    store.joining.append(lambda: lambda conn: conn.execute("DELETE FROM counters"))
    store.append(readings(1, clock.now + 100))
    assert run() == [BEGIN, INSERT, "DELETE FROM counters", "COMMIT"]


def test_last_values_not_yet_delivered_come_back_after_a_restart(
    tmp_path: FsPath, clock: Clock
) -> None:
    """Every node resource's newest committed reading is its last value after a restart
    (no clean stop), whether it was delivered (and deleted: kept in ``last_values``), is still
    waiting in the table, or both (the waiting one is newer)."""
    other = NodeId("ble", "A4:C1:38:00:00:02")
    db = tmp_path / "state.db"
    store = paired_store(db, clock, NODE, other)
    store.add_consumer("a")
    store.append([*readings(2), (other, Record(HUMIDITY, 40, 1_700_000_001.0))])
    store.ack("a", store.pending("a").last)  # delivered and deleted
    store.append(readings(2, 1_700_000_100.0))  # waiting
    store.append([(other, Record(TEMP, 5.0, 1_700_000_101.0))])  # waiting
    assert len(store) == 3
    store._conn.close()
    assert paired_store(db, clock).last_values() == {
        NODE: [Record(TEMP, 20.1, 1_700_000_101.0)],
        other: [Record(TEMP, 5.0, 1_700_000_101.0), Record(HUMIDITY, 40, 1_700_000_001.0)],
    }


def test_the_count_bound_keeps_the_last_value_of_a_reading_it_drops(
    tmp_path: FsPath, clock: Clock
) -> None:
    """A node resource reported once, then pushed out of the full store by others' readings
    nobody delivered, keeps that reading as its last value, after a restart too."""
    db = tmp_path / "state.db"
    store = paired_store(db, clock, NODE, bounds=Bounds(max_count=3))
    store.add_consumer("a")
    store.append([(NODE, Record(HUMIDITY, 55, 1_700_000_000.0))])
    store.append(readings(3, 1_700_000_001.0))
    store.append(readings(2, 1_700_000_010.0))
    assert store.dropped() == {DROPPED_COUNT: 3}
    store._conn.close()
    assert paired_store(db, clock).last_values() == {
        NODE: [Record(TEMP, 20.1, 1_700_000_011.0), Record(HUMIDITY, 55, 1_700_000_000.0)]
    }


def test_a_delivery_whose_write_failed_leaves_the_last_values_to_the_next(
    tmp_path: FsPath, clock: Clock
) -> None:
    """An acknowledgement whose transaction fails after the last values were written rolls
    them back with the rest: the store forgets that it wrote them, and the next delivery that
    deletes those readings writes them again."""
    db = tmp_path / "state.db"
    store = paired_store(db, clock, NODE)
    store.add_consumer("a")
    store.append([*readings(2), (NODE, Record(HUMIDITY, 55, 1_700_000_000.0))])
    denied = sqlite3.SQLITE_DENY

    def no_delete(action: int, table: str | None, *_: str | None) -> int:
        return denied if action == sqlite3.SQLITE_DELETE and table == "readings" else 0

    store._conn.set_authorizer(no_delete)
    with pytest.raises(sqlite3.DatabaseError):
        store.ack("a", store.pending("a").last)
    store._conn.set_authorizer(None)
    store.append(readings(1, 1_700_000_010.0))
    store.ack("a", store.pending("a").last)
    assert len(store) == 0
    store._conn.close()
    assert paired_store(db, clock).last_values() == {
        NODE: [Record(TEMP, 20.0, 1_700_000_010.0), Record(HUMIDITY, 55, 1_700_000_000.0)]
    }


def test_past_the_limit_of_node_resources_an_append_writes_the_last_values(
    tmp_path: FsPath, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While nothing is delivered the store keeps which reading is the newest of each node
    resource (where the next delete's last values start) for at most ``NEWEST_LIMIT`` of
    them: past it an append writes the last values itself, so the memory is bounded."""
    monkeypatch.setattr("bridged.store.readings.NEWEST_LIMIT", 2)
    nodes = [NodeId("ble", f"A4:C1:38:00:22:{i:02X}") for i in range(4)]
    db = tmp_path / "state.db"
    store = paired_store(db, clock, *nodes)
    store.add_consumer("a")
    for value, node in enumerate(nodes):
        store.append([(node, Record(TEMP, float(value), 1_700_000_000.0))])
    kept = store._conn.execute("SELECT node_id, value FROM last_values ORDER BY value")
    assert kept.fetchall() == [(str(node), float(v)) for v, node in enumerate(nodes[:4])]
    assert len(store) == 4  # nothing was delivered: all still waiting
    store._conn.close()
    assert paired_store(db, clock).last_values() == {
        node: [Record(TEMP, float(value), 1_700_000_000.0)] for value, node in enumerate(nodes)
    }


def test_what_the_age_bound_left_does_not_replace_a_newer_last_value_after_a_restart(
    tmp_path: FsPath, clock: Clock
) -> None:
    """The age bound deletes by time, not in arrival order: of a node resource it may delete
    the newest reading (stamped long ago) and leave an older one. The newest stays its last
    value after a restart, and after that older one is delivered and deleted too."""
    db = tmp_path / "state.db"
    store = paired_store(db, clock, NODE, bounds=Bounds(max_age=60))
    store.add_consumer("a")
    store.append([(NODE, Record(TEMP, 1.0, clock.now))])
    store.append([(NODE, Record(TEMP, 2.0, clock.now - 100))])  # the newest, too old
    assert store.dropped() == {DROPPED_AGE: 1}
    store._conn.close()
    again = paired_store(db, clock, bounds=Bounds(max_age=60))
    assert again.last_values() == {NODE: [Record(TEMP, 2.0, clock.now - 100)]}
    again.ack("a", again.pending("a").last)
    assert len(again) == 0
    again._conn.close()
    assert paired_store(db, clock).last_values() == {NODE: [Record(TEMP, 2.0, clock.now - 100)]}
