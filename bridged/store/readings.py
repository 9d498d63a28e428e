"""Readings kept until every upstream consumer has them: store-and-forward.

Every reading a transport hands over is appended here before it is acknowledged, so nothing
accepted is lost across a crash or kill -9 (see database.py on durability). Each upstream
consumer (one per LwM2M server) has a cursor: it takes readings in order with ``pending``,
delivers them (Send, or notifications for a 1.0 server) and moves its cursor with ``ack``.
Rows every consumer has passed are deleted.

The store is bounded by count and by age. When a bound is hit the oldest readings go first,
and how many went is counted per reason in the ``counters`` table, so the loss is reported
(bridgectl status, the logs) rather than silent.

When the file system refuses writes (full, or turned read-only) ``append`` raises and the
caller keeps the readings (see the registry's ``flush``); ``ack`` keeps the consumer's cursor
in memory until a write succeeds again, so delivery goes on from the stored backlog instead of
sending it again.

A reading travels as a ``Row``: its node and the ``Record`` the transport reported (with its
absolute time), a plain pair made once when the registry takes it, the same objects from the
transport to the Send: no object of the store's own per reading, none rebuilt on the way.

The table is the journal, not the way readings reach delivery: what ``append`` stored is also
kept in memory, in order (the *tail*, at most ``TAIL_LIMIT`` rows, those the transport
reported, whose seqs are consecutive so none is kept per row), and ``pending`` answers from it
whenever every reading after the consumer's cursor is in it. The table is read back only when
it is not: after a restart, or when a consumer fell further behind than the tail holds (an
outage), or after the bounds deleted rows. Each reading costs its insert and its share of the
acknowledging delete; no select, and no object rebuilt from its row, on the way to a server.

A group commit is three statements: BEGIN IMMEDIATE, the readings' INSERT, COMMIT (issue 17:
at ~100 reports/s a commit takes a few readings and each statement runs cold, 30 to 100 µs).
Two things it no longer does, and why that is safe:

- It does not look for another writer's rows (``SELECT max(seq)``): the store numbers the rows
  itself (``_next_seq``) and is the table's only writer. The state directory's lock
  (``bridged.store.files.lock_directory``) keeps a second daemon out, and the daemon makes one
  store. Should another store write anyway, the insert's seq meets its row (a primary key
  conflict): ``append`` raises, learns the table's end, and the caller's next try stores.
- It does not write the last values (``last_values``). They are written when readings are
  deleted (``_remember``: delivered, or dropped by a bound), from the newest of each node
  resource among them, in the deleting transaction; until then the readings table holds them,
  and ``last_values`` reads both. A restart therefore restores every node's last values as
  committed, and at 100 reports/s one upsert statement per Send replaces one per commit.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from bridged.objects.paths import Path
from bridged.objects.values import ObjLnk, Record, Value
from bridged.transports.nodes import NodeId

from .database import transaction

_INT, _FLOAT, _STR, _BOOL, _BYTES, _OBJLNK, _BIGINT = range(7)
_INT64 = range(-(2**63), 2**63)

DROPPED_COUNT = "dropped_count"
DROPPED_AGE = "dropped_age"
DROPPED_UNSTORED = "dropped_unstored"
"""Readings the registry could not keep while the file system refused writes."""
DROPPED = (DROPPED_COUNT, DROPPED_AGE, DROPPED_UNSTORED)

PARSED_LIMIT = 4096
"""The node ids and node paths read back from the table that are kept parsed: a backlog read
back after a restart or an outage names the same few hundred of them in every row, and each
was parsed (and validated) again per row."""
_node_id = functools.lru_cache(maxsize=PARSED_LIMIT)(NodeId.parse)
_path = functools.lru_cache(maxsize=PARSED_LIMIT)(Path.parse)

TAIL_LIMIT = 4096
"""The newest readings kept in memory for delivery (module docstring): several full Sends
(``DeliveryConfig.max_records``) per server, about 1 MB; a consumer further behind reads the
table."""


Joining = Callable[[sqlite3.Connection], None]
"""A write that joins an ``append``'s transaction (``ReadingStore.joining``)."""

Row = tuple[NodeId, Record]
"""One reading: the node and its value of a node-local resource at the time the node measured
it (the record's ``time``, absolute: never None). A tuple, made without a call of Python code,
once per reading (module docstring)."""


@dataclass(frozen=True, slots=True)
class Pending:
    """Readings a consumer has not acknowledged, oldest first: ``rows`` and each one's place
    in the store, ``seqs`` (growing with arrival order; a ``range`` when they are consecutive,
    as the tail's are). One per batch, not one per reading."""

    seqs: Sequence[int]
    rows: Sequence[Row]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def last(self) -> int:
        """The seq of the newest of them (where the consumer's cursor goes once it has them)."""
        return self.seqs[-1]


NOTHING_PENDING = Pending((), ())


@dataclass(frozen=True, slots=True)
class Bounds:
    """``max_count`` readings at most, none older than ``max_age`` seconds."""

    max_count: int = 100_000
    max_age: float = 7 * 24 * 3600.0

    def __post_init__(self) -> None:
        if self.max_count < 1 or self.max_age <= 0:
            raise ValueError("store bounds must be positive")


def encode_value(value: Value) -> tuple[int, object]:
    if type(value) is float:  # a sensor's value, what nearly every reading is
        return _FLOAT, value
    # bool before int: bool is an int subclass.
    if isinstance(value, bool):
        return _BOOL, int(value)
    if isinstance(value, int):
        return (_INT, value) if value in _INT64 else (_BIGINT, str(value))
    if isinstance(value, float):
        return _FLOAT, value
    if isinstance(value, str):
        return _STR, value
    if isinstance(value, bytes):
        return _BYTES, value
    return _OBJLNK, str(value)


def decode_value(kind: int, raw: object) -> Value:
    if kind == _BOOL:
        return bool(raw)
    if kind == _BIGINT:
        return int(str(raw))
    if kind == _OBJLNK:
        return ObjLnk.parse(str(raw))
    assert isinstance(raw, (int, float, str, bytes))
    return raw


_REMEMBER = """
    INSERT INTO last_values(node_id, path, kind, value, time)
    SELECT node_id, path, kind, value, time FROM readings
     WHERE seq BETWEEN ?1 AND ?2 AND node_id IN (SELECT id FROM nodes)
     ORDER BY seq
    ON CONFLICT(node_id, path) DO UPDATE
       SET kind = excluded.kind, value = excluded.value, time = excluded.time
"""
"""Keep the newest of the readings of seqs ?1..?2 of each node resource as its node's last
value (one row per node resource; a node that is not paired, unpaired meanwhile, gets none):
one statement over the rows about to be deleted, not one per row bound from Python (each bound
row is a statement's step, about 10 k instructions, issue 17). The rows are taken in seq order,
so of a node resource's readings the newest updates its row last; grouping them first
(``max(seq) … GROUP BY``, a temporary B-tree and a second lookup of each row) cost about a
third of an append's instructions. ``_remember`` passes the range from the oldest reading that
is the newest of its node resource (``ReadingStore._newest``) on, not every row to delete: the
rows before it are each followed by a newer one of its node resource, whose update would
replace theirs, or which stays in the table."""

_NEWEST_STORED = """
    SELECT node_id, path, kind, value, time FROM readings
     WHERE seq IN (SELECT max(seq) FROM readings WHERE seq > ? GROUP BY node_id, path)
       AND node_id IN (SELECT id FROM nodes)
"""
"""Each paired node resource's newest reading the table holds after seq ? (``_remembered``):
newer than its ``last_values`` row, which is written only when readings are deleted. Read by
``last_values``, once, at a start."""

REMEMBERED_THROUGH = "last_values_through"
"""Counter: ``ReadingStore._remembered`` as of the last time the age bound deleted readings,
for the next start. Only that delete takes rows out of seq order (by their time): a row it
leaves may be older than one it deleted of the same node resource, which ``last_values``
holds; a restart must neither take the older for the newest nor write it over it. Deliveries
and the count bound delete the oldest seqs, so every row they leave is newer than every row
they deleted: without an age bound's delete a start can take every row for unremembered."""

_WIDTH = 6
"""A reading's columns in the table: seq, node id, path, kind, value, time."""

INSERT_ROWS = (256, 32)
"""How many readings one ``INSERT`` statement takes, largest first (``_insert``): an append's
readings go in as few statements as these make, and the rest (fewer than the smallest) in one
statement of their number of rows. A statement's step through the ``sqlite3`` module costs
about as much as inserting a row in it (binding, the GIL released and taken, the table's
cursor opened and closed), so a row and its share of the commit cost about 6.5 k instructions
in a statement of 256 rows against 9.6 k through ``executemany`` (issue 17); beyond 256 rows a
statement gains no more. Up to the smallest size an append is one statement, which needs no
BEGIN and COMMIT (``append``): 32 covers the group commits at ~100 reports/s, a few readings
in-process and some 19 through the 802.15.4 port's poll (16 did not). Each size is one
statement text (33 in all), which the connection's statement cache (128) keeps prepared."""
_INSERTS = {
    rows: "INSERT INTO readings(seq, node_id, path, kind, value, time) VALUES "
    + ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)
    for rows in (*INSERT_ROWS, *range(1, INSERT_ROWS[-1]))
}


def _insert(conn: sqlite3.Connection, columns: list[object]) -> None:
    """Insert the readings of ``columns`` (``_WIDTH`` values each, one after the other) with
    the fewest statements (``INSERT_ROWS``)."""
    start, end = 0, len(columns)
    for rows in INSERT_ROWS:
        width = rows * _WIDTH
        while end - start >= width:
            conn.execute(_INSERTS[rows], columns[start : start + width])
            start += width
    if start < end:
        conn.execute(_INSERTS[(end - start) // _WIDTH], columns[start:])


NODE_TEXTS_LIMIT = 16_384
"""The node ids whose text ``append`` keeps (``_columns``), about 170 bytes each: all are
forgotten when that many are kept, which bounds the memory whatever comes."""


def _columns(
    rows: Sequence[Row], first: int, node_texts: dict[int, tuple[NodeId, str]]
) -> list[object]:
    """Each row's columns, one row after the other (``_WIDTH`` each): seq (from ``first`` on),
    node id, path, kind, value, time. Rows name the same node ids and paths (the same objects)
    again and again: each one's text is made once. A node reports once in a batch, mostly, so
    its id's text is kept across batches in ``node_texts``, by the registry's node id object's
    identity, with the object (so that no other object can have that identity while it is
    kept); a path's only in the batch (a transport may parse the paths of each report anew)."""
    if len(node_texts) > NODE_TEXTS_LIMIT:
        node_texts.clear()
    paths: dict[int, str] = {}
    out: list[object] = []
    for seq, (node, record) in enumerate(rows, first):
        known = node_texts.get(id(node))
        if known is None:
            known = node_texts[id(node)] = (node, str(node))
        path = record.path
        path_text = paths.get(id(path))
        if path_text is None:
            path_text = paths[id(path)] = str(path)
        value = record.value
        if type(value) is float:  # a sensor's value, what nearly every reading is
            out += (seq, known[1], path_text, _FLOAT, value, record.time)
        else:
            out += (seq, known[1], path_text, *encode_value(value), record.time)
    return out


NEWEST_LIMIT = 16_384
"""How many node resources ``ReadingStore._newest`` keeps at most (a tuple of two texts and a
seq each, some 150 bytes): past it (an outage long enough that no Send deletes rows, with more
node resources than this) an append writes the last values of everything stored at once
(``_remember``), which bounds the memory whatever comes."""


class _Transaction(transaction):
    """A transaction of the store: what ``_remember`` changed in memory is put back when it
    does not commit, as ``last_values`` holds what it held before."""

    __slots__ = ("newest", "remembered", "store")

    def __init__(self, store: ReadingStore) -> None:
        super().__init__(store._conn)
        self.store = store
        self.remembered, self.newest = store._remembered, store._newest

    def rolled_back(self) -> None:
        self.store._remembered, self.store._newest = self.remembered, self.newest
        super().rolled_back()


class ReadingStore:
    """The ``readings``, ``cursors`` and ``counters`` tables of the state database, and
    ``last_values``: each paired node's last reported value of each resource.

    Delivered readings are deleted, but a sleepy node's Read is answered from its last report
    (and every node's instance is shown upstream with its values) also after a restart, before
    the node talks again: so whatever deletes readings first keeps the newest of each node
    resource among them as its last value (``_remember``), in the same transaction, one row
    per resource (module docstring)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        bounds: Bounds | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._conn = conn
        self.bounds = bounds or Bounds()
        self._clock = clock
        (self._count,) = conn.execute("SELECT count(*) FROM readings").fetchone()
        self._cursors: dict[str, int] = self.consumers()
        """Each consumer's cursor as delivery moved it, ahead of the table while writes fail."""
        self._next_seq = self._stored_end() + 1
        """The seq the next reading gets, which ``append`` gives it: after every seq a row or a
        cursor holds, so none is reused while anything refers to it (what AUTOINCREMENT
        promised, without its write per row; the schema's migration 9)."""
        (oldest,) = conn.execute("SELECT min(time) FROM readings").fetchone()
        self._oldest: float = float("inf") if oldest is None else float(oldest)
        """No stored reading is older than this (it may be older than the oldest left): the
        age bound's delete runs only when it can find something."""
        self._tail: list[Row] = []
        """The newest stored readings, of consecutive seqs up to the last one (module
        docstring); ``_tail_first`` is the seq of the first."""
        self._tail_first = self._next_seq
        self.joining: list[Callable[[], Joining | None]] = []
        """Asked by each ``append`` for a write to join its transaction, so that it costs no
        commit of its own (each node's health: ``HealthStore.saving``); None when there is none
        now, as mostly (an append that is one INSERT then needs no BEGIN and COMMIT)."""
        self._bounded = False
        """Whether the bounds dropped readings since ``append`` began (its batch may be
        among them)."""
        self.moved: Callable[[], None] = lambda: None
        """Called after the readings waiting or dropped changed (stored, delivered, dropped by
        a bound): the daemon's status line shows them, and learns so instead of asking."""
        self._node_texts: dict[int, tuple[NodeId, str]] = {}
        """The text of each node id ``append`` stored (``_columns``)."""
        row = conn.execute(
            "SELECT value FROM counters WHERE name = ?", (REMEMBERED_THROUGH,)
        ).fetchone()
        self._remembered = 0 if row is None else int(row[0])
        """Every reading up to this seq is in ``last_values``, or followed by a newer one of its
        node resource that is, or that the table holds after this seq (``_remember``)."""
        self._own_from = self._next_seq
        """The first seq this store appended: of the rows before it (stored by an earlier run)
        it does not know which are the newest of their node resource."""
        self._newest: dict[tuple[str, str], int] = {}
        """The seq of the newest reading this store appended of each node resource (by its node
        id's and path's texts) that is after ``_remembered``: where ``_remember`` starts. Made
        from the columns' slices, a later seq of a key replacing an earlier one, with no Python
        step per reading; replaced, never changed in place, inside a transaction
        (``_Transaction``)."""
        self.drops = 0
        """How many times this store counted dropped readings (``DROPPED``), in memory: who
        reports what was dropped reads the counters (``dropped``) only once this moved, not
        once per Send (a statement whatever the Send's size)."""

    def __len__(self) -> int:
        return int(self._count)

    def add_consumer(self, name: str) -> None:
        """Start a cursor for ``name`` at the current end if it has none: a new server gets
        what arrives from now on, a known one resumes where it was."""
        self._conn.execute(
            "INSERT OR IGNORE INTO cursors(consumer, seq) VALUES (?, ?)",
            (name, self._next_seq - 1),
        )
        (seq,) = self._conn.execute(
            "SELECT seq FROM cursors WHERE consumer = ?", (name,)
        ).fetchone()
        self._cursors[name] = max(int(seq), self._cursors.get(name, 0))

    def remove_consumer(self, name: str) -> None:
        self._cursors.pop(name, None)
        with _Transaction(self):
            self._conn.execute("DELETE FROM cursors WHERE consumer = ?", (name,))
            self._prune_delivered()

    def append(self, rows: Sequence[Row], *, unstored: int = 0) -> int:
        """Store ``rows`` in one transaction (durable when this returns); returns the seq of
        the last one. The tail keeps the rows themselves (module docstring). Enforces the
        bounds, oldest first. ``unstored`` readings that could not be kept while writes failed
        are counted (``DROPPED_UNSTORED``) in the same transaction. sqlite3.Error when the
        database refuses the write: nothing is stored."""
        first = self._next_seq
        columns = _columns(rows, first, self._node_texts)
        last = first + len(rows) - 1
        times = cast("list[float]", columns[_WIDTH - 1 :: _WIDTH])
        oldest = min(self._oldest, min(times, default=self._oldest))
        writes = [write for ask in self.joining if (write := ask()) is not None]
        try:
            self._bounded = False
            if (
                0 < len(rows) <= INSERT_ROWS[-1]
                and not writes
                and not unstored
                and len(self._newest) <= NEWEST_LIMIT
                and self._count + len(rows) <= self.bounds.max_count
                and oldest >= self._clock() - self.bounds.max_age
            ):
                # One statement, which SQLite runs as a transaction of its own (autocommit),
                # as durable when it returns as a COMMIT's: BEGIN and COMMIT would be two more
                # statements, 70 to 100 µs each at ~100 reports/s (issue 17).
                _insert(self._conn, columns)
                self._count += len(rows)
                self._oldest = oldest
            else:
                with _Transaction(self):
                    _insert(self._conn, columns)
                    self._count += len(rows)
                    if len(self._newest) > NEWEST_LIMIT:
                        self._remember(last, fresh=first)
                    for write in writes:
                        write(self._conn)
                    if unstored:
                        self._bump(DROPPED_UNSTORED, unstored)
                    self._oldest = oldest
                    self._enforce_bounds(last, fresh=first)
        except BaseException:
            (self._count,) = self._conn.execute("SELECT count(*) FROM readings").fetchone()
            self._tail.clear()  # what the table holds now is not known: read it back
            (oldest,) = self._conn.execute("SELECT min(time) FROM readings").fetchone()
            self._oldest = float("inf") if oldest is None else float(oldest)
            # Another store's rows (a primary key conflict, module docstring): the next seqs
            # come after them and after every cursor.
            self._next_seq = max(self._next_seq, self._stored_end() + 1)
            raise
        self._next_seq = last + 1
        if last > self._remembered:
            nodes, paths = (
                cast("list[str]", columns[1::_WIDTH]),
                cast("list[str]", columns[2::_WIDTH]),
            )
            keys = zip(nodes, paths, strict=True)
            self._newest.update(zip(keys, cast("list[int]", columns[::_WIDTH]), strict=True))
        if rows or unstored:
            self.moved()
        if not rows:
            return last
        tail = self._tail
        if self._bounded:
            # The bounds dropped rows in this transaction, maybe of this batch: the tail
            # starts again with the next batch, and the table says what is left.
            return self._next_seq - 1
        if not tail:
            self._tail_first = first
        tail.extend(rows)
        excess = len(tail) - TAIL_LIMIT
        if excess > 0:
            del tail[:excess]
            self._tail_first += excess
        return self._next_seq - 1

    def last_values(self) -> dict[NodeId, list[Record]]:
        """Each paired node's last reported value of each resource, with its time, while the
        node is paired, however long ago it was delivered: its ``last_values`` row, or the
        table's newest reading of it when that is newer (module docstring)."""
        latest: dict[tuple[str, str], tuple[int, object, float]] = {}
        for query, through in (
            ("SELECT node_id, path, kind, value, time FROM last_values", ()),
            (_NEWEST_STORED, (self._remembered,)),
        ):
            for node, path, kind, raw, t in self._conn.execute(query, through):
                latest[node, path] = (kind, raw, t)
        out: dict[NodeId, list[Record]] = {}
        for (node, path), (kind, raw, t) in sorted(latest.items()):
            record = Record(_path(path), decode_value(kind, raw), t)
            out.setdefault(_node_id(node), []).append(record)
        return out

    def pending(self, consumer: str, limit: int = 1000) -> Pending:
        """The oldest readings ``consumer`` has not acknowledged, in arrival order: from the
        tail when it holds all of them (module docstring), else from the table."""
        after = self._cursors.get(consumer)
        if after is None:
            return NOTHING_PENDING
        start = self._in_tail(after)
        if start is not None:
            rows = self._tail[start : start + limit]
            first = self._tail_first + start
            return Pending(range(first, first + len(rows)), rows)
        seqs: list[int] = []
        back: list[Row] = []
        for seq, node, path, kind, raw, t in self._conn.execute(
            "SELECT seq, node_id, path, kind, value, time FROM readings "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ):
            seqs.append(seq)
            back.append((_node_id(node), Record(_path(path), decode_value(kind, raw), t)))
        return Pending(seqs, back)

    def waiting(self, consumer: str) -> int:
        """How many readings ``consumer`` has not acknowledged (a count, without reading them:
        the daemon's status asks often)."""
        after = self._cursors.get(consumer)
        if after is None:
            return 0
        start = self._in_tail(after)
        if start is not None:
            return len(self._tail) - start
        (count,) = self._conn.execute(
            "SELECT count(*) FROM readings WHERE seq > ?", (after,)
        ).fetchone()
        return int(count)

    def _in_tail(self, after: int) -> int | None:
        """The tail's index of the first reading after seq ``after``, when the tail holds every
        stored reading after it; None when the table must be read."""
        first = self._tail_first if self._tail else self._next_seq
        if after + 1 < first:
            return None
        return min(after + 1 - first, len(self._tail))

    def ack(self, consumer: str, seq: int) -> bool:
        """``consumer`` has delivered everything up to ``seq``. False when the database
        refused the write: the cursor then moves in memory only (``pending`` and ``waiting``
        follow it) and is written with the next ack that succeeds; a restart before then
        delivers those readings again (at least once)."""
        self._cursors[consumer] = max(self._cursors.get(consumer, 0), seq)
        self.moved()
        passed = min(self._cursors.values())
        delivered = passed + 1 - self._tail_first
        if delivered > 0:
            del self._tail[:delivered]
            self._tail_first += delivered
        try:
            with _Transaction(self):
                self._conn.execute(
                    "UPDATE cursors SET seq = max(seq, ?) WHERE consumer = ?",
                    (self._cursors[consumer], consumer),
                )
                self._prune_delivered()
        except sqlite3.OperationalError:
            return False
        return True

    def expire(self) -> int:
        """Drop readings older than the age bound (call when ``expires_in`` says); returns
        how many."""
        with _Transaction(self):
            dropped = self._drop_older_than(self._clock() - self.bounds.max_age, self._next_seq - 1)
        if dropped:
            self.moved()
        return dropped

    def expires_in(self) -> float | None:
        """Seconds until the oldest reading passes the age bound (``expire`` drops it then);
        None while the store holds none, when there is nothing to expire. From the oldest
        time known in memory, which may be older than the oldest left (delivered readings are
        deleted without a look at their times): then ``expire`` finds none, learns the
        oldest, and the next answer is exact. The table has no index by time (an index
        updated by every insert and delete, for this question)."""
        if not self._count:
            return None
        return max(self._oldest + self.bounds.max_age - self._clock(), 0.0)

    def dropped(self) -> dict[str, int]:
        """How many readings each bound (and a refused write) has discarded, ever."""
        return {
            name: int(value)
            for name, value in self._conn.execute("SELECT name, value FROM counters")
            if name in DROPPED
        }

    def consumers(self) -> dict[str, int]:
        return {c: int(s) for c, s in self._conn.execute("SELECT consumer, seq FROM cursors")}

    # -- internals ---------------------------------------------------------------------------

    def _stored_end(self) -> int:
        """The largest seq a row or a cursor holds (0: none)."""
        (end,) = self._conn.execute(
            "SELECT max(coalesce((SELECT max(seq) FROM readings), 0),"
            " coalesce((SELECT max(seq) FROM cursors), 0))"
        ).fetchone()
        return int(end)

    # -- internals inside a transaction ------------------------------------------------------

    def _remember(self, upto: int, fresh: int | None = None) -> None:
        """Before readings up to seq ``upto`` are deleted: keep in ``last_values`` the newest
        reading of each node resource among them that has no newer one stored (``_REMEMBER``
        from the oldest of those on). ``fresh``: the first seq of rows this transaction
        inserted, which ``_newest`` does not have yet (all of them are taken)."""
        if upto <= self._remembered:
            return
        if self._remembered < self._own_from - 1:
            low: int | None = self._remembered + 1  # an earlier run's: which are newest is unknown
        else:
            low = min((seq for seq in self._newest.values() if seq <= upto), default=None)
        if fresh is not None and fresh <= upto:
            low = fresh if low is None else min(low, fresh)
        if low is not None:
            self._conn.execute(_REMEMBER, (low, upto))
            self._newest = {key: seq for key, seq in self._newest.items() if seq > upto}
        self._remembered = upto

    def _enforce_bounds(self, last: int, fresh: int) -> None:
        """Drop the oldest readings past the bounds; ``last``: the newest stored, ``fresh``:
        the first of this append (``_remember``)."""
        excess = self._count - self.bounds.max_count
        if excess > 0:
            self._remember(last, fresh)
            self._conn.execute(
                "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings ORDER BY seq LIMIT ?)",
                (excess,),
            )
            self._count -= excess
            self._bump(DROPPED_COUNT, excess)
            self._tail.clear()
            self._bounded = True
        self._drop_older_than(self._clock() - self.bounds.max_age, last, fresh)

    def _drop_older_than(self, cutoff: float, last: int, fresh: int | None = None) -> int:
        if self._oldest >= cutoff:
            return 0  # nothing to find
        self._remember(last, fresh)  # which rows are old is the delete's to find
        cur = self._conn.execute("DELETE FROM readings WHERE time < ?", (cutoff,))
        (oldest,) = self._conn.execute("SELECT min(time) FROM readings").fetchone()
        self._oldest = float("inf") if oldest is None else float(oldest)
        if cur.rowcount > 0:
            self._conn.execute(
                "INSERT INTO counters(name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (REMEMBERED_THROUGH, self._remembered),
            )
            self._count -= cur.rowcount
            self._bump(DROPPED_AGE, cur.rowcount)
            self._tail.clear()
            self._bounded = True
        return max(cur.rowcount, 0)

    def _prune_delivered(self) -> None:
        self._remember(min(self._cursors.values(), default=0))
        cur = self._conn.execute("DELETE FROM readings WHERE seq <= (SELECT min(seq) FROM cursors)")
        self._count -= max(cur.rowcount, 0)
        if not self._count:
            self._oldest = float("inf")

    def _bump(self, name: str, n: int) -> None:
        self.drops += 1  # a hint to look (the transaction may yet roll back)
        self._conn.execute(
            "INSERT INTO counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )
