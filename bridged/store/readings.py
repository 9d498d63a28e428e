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
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bridged.objects.paths import Path
from bridged.objects.values import ObjLnk, Value
from bridged.transports.nodes import NodeId

from .database import transaction

_INT, _FLOAT, _STR, _BOOL, _BYTES, _OBJLNK, _BIGINT = range(7)
_INT64 = range(-(2**63), 2**63)

DROPPED_COUNT = "dropped_count"
DROPPED_AGE = "dropped_age"
DROPPED_UNSTORED = "dropped_unstored"
"""Readings the registry could not keep while the file system refused writes."""
DROPPED = (DROPPED_COUNT, DROPPED_AGE, DROPPED_UNSTORED)


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of a node-local resource at the time the node measured it."""

    node: NodeId
    path: Path
    value: Value
    time: float


@dataclass(frozen=True, slots=True)
class StoredReading:
    """A reading with its place in the store (``seq`` grows with arrival order)."""

    seq: int
    reading: Reading


@dataclass(frozen=True, slots=True)
class Bounds:
    """``max_count`` readings at most, none older than ``max_age`` seconds."""

    max_count: int = 100_000
    max_age: float = 7 * 24 * 3600.0

    def __post_init__(self) -> None:
        if self.max_count < 1 or self.max_age <= 0:
            raise ValueError("store bounds must be positive")


def encode_value(value: Value) -> tuple[int, object]:
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
    SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM nodes WHERE id = ?1)
    ON CONFLICT(node_id, path) DO UPDATE
       SET kind = excluded.kind, value = excluded.value, time = excluded.time
"""
"""Keep a reading as its node's last value of its resource (one row per node resource; a
node that is not paired, unpaired meanwhile, gets none)."""


class ReadingStore:
    """The ``readings``, ``cursors`` and ``counters`` tables of the state database, and
    ``last_values``: each paired node's last reported value of each resource.

    Delivered readings are deleted, but a sleepy node's Read is answered from its last report
    (and every node's instance is shown upstream with its values) also after a restart, before
    the node talks again: so ``append`` keeps the last value of each node resource in the same
    transaction as the readings, one row per resource, at no extra commit."""

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
        self._acked: dict[str, int] = {}
        """Each consumer's cursor as delivery moved it, ahead of the table while writes fail."""

    def __len__(self) -> int:
        return int(self._count)

    def add_consumer(self, name: str) -> None:
        """Start a cursor for ``name`` at the current end if it has none: a new server gets
        what arrives from now on, a known one resumes where it was."""
        self._conn.execute(
            "INSERT OR IGNORE INTO cursors(consumer, seq) "
            "VALUES (?, (SELECT coalesce(max(seq), 0) FROM readings))",
            (name,),
        )

    def remove_consumer(self, name: str) -> None:
        self._acked.pop(name, None)
        with transaction(self._conn):
            self._conn.execute("DELETE FROM cursors WHERE consumer = ?", (name,))
            self._prune_delivered()

    def append(self, readings: Iterable[Reading], *, unstored: int = 0) -> int:
        """Store ``readings`` in one transaction (durable when this returns); returns the seq
        of the last one. Enforces the bounds, oldest first. ``unstored`` readings that could
        not be kept while writes failed are counted (``DROPPED_UNSTORED``) in the same
        transaction. sqlite3.Error when the database refuses the write: nothing is stored."""
        rows = [(str(r.node), str(r.path), *encode_value(r.value), r.time) for r in readings]
        try:
            with transaction(self._conn):
                self._conn.executemany(
                    "INSERT INTO readings(node_id, path, kind, value, time) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                self._count += len(rows)
                latest = {(node, path): row for node, path, *row in rows}
                self._conn.executemany(_REMEMBER, [(*key, *row) for key, row in latest.items()])
                if unstored:
                    self._bump(DROPPED_UNSTORED, unstored)
                self._enforce_bounds()
                (last,) = self._conn.execute(
                    "SELECT coalesce(max(seq), 0) FROM readings"
                ).fetchone()
        except BaseException:
            (self._count,) = self._conn.execute("SELECT count(*) FROM readings").fetchone()
            raise
        return int(last)

    def last_values(self) -> dict[NodeId, list[Reading]]:
        """Each paired node's last reported value of each resource, with its time (kept by
        ``append``, while the node is paired, however long ago it was delivered)."""
        out: dict[NodeId, list[Reading]] = {}
        rows = self._conn.execute(
            "SELECT node_id, path, kind, value, time FROM last_values ORDER BY node_id, path"
        )
        for node, path, kind, raw, t in rows:
            node_id = NodeId.parse(node)
            reading = Reading(node_id, Path.parse(path), decode_value(kind, raw), t)
            out.setdefault(node_id, []).append(reading)
        return out

    def pending(self, consumer: str, limit: int = 1000) -> list[StoredReading]:
        """The oldest readings ``consumer`` has not acknowledged, in arrival order."""
        rows = self._conn.execute(
            "SELECT seq, node_id, path, kind, value, time FROM readings "
            "WHERE seq > max((SELECT seq FROM cursors WHERE consumer = ?), ?) "
            "ORDER BY seq LIMIT ?",
            (consumer, self._acked.get(consumer, 0), limit),
        )
        return [
            StoredReading(
                seq, Reading(NodeId.parse(node), Path.parse(path), decode_value(kind, raw), t)
            )
            for seq, node, path, kind, raw, t in rows
        ]

    def waiting(self, consumer: str) -> int:
        """How many readings ``consumer`` has not acknowledged (a count, without reading them:
        the daemon's status asks often)."""
        (count,) = self._conn.execute(
            "SELECT count(*) FROM readings "
            "WHERE seq > max(coalesce((SELECT seq FROM cursors WHERE consumer = ?), 1e18), ?)",
            (consumer, self._acked.get(consumer, 0)),
        ).fetchone()
        return int(count)

    def ack(self, consumer: str, seq: int) -> bool:
        """``consumer`` has delivered everything up to ``seq``. False when the database
        refused the write: the cursor then moves in memory only (``pending`` and ``waiting``
        follow it) and is written with the next ack that succeeds; a restart before then
        delivers those readings again (at least once)."""
        self._acked[consumer] = max(self._acked.get(consumer, 0), seq)
        try:
            with transaction(self._conn):
                self._conn.execute(
                    "UPDATE cursors SET seq = max(seq, ?) WHERE consumer = ?",
                    (self._acked[consumer], consumer),
                )
                self._prune_delivered()
        except sqlite3.OperationalError:
            return False
        return True

    def expire(self) -> int:
        """Drop readings older than the age bound (call when ``expires_in`` says); returns
        how many."""
        with transaction(self._conn):
            return self._drop_older_than(self._clock() - self.bounds.max_age)

    def expires_in(self) -> float | None:
        """Seconds until the oldest reading passes the age bound (``expire`` drops it then);
        None while the store holds none, when there is nothing to expire."""
        (oldest,) = self._conn.execute("SELECT min(time) FROM readings").fetchone()
        if oldest is None:
            return None
        return max(float(oldest) + self.bounds.max_age - self._clock(), 0.0)

    def dropped(self) -> dict[str, int]:
        """How many readings each bound (and a refused write) has discarded, ever."""
        return {
            name: int(value)
            for name, value in self._conn.execute("SELECT name, value FROM counters")
            if name in DROPPED
        }

    def consumers(self) -> dict[str, int]:
        return {c: int(s) for c, s in self._conn.execute("SELECT consumer, seq FROM cursors")}

    # -- internals (inside a transaction) ----------------------------------------------------

    def _enforce_bounds(self) -> None:
        excess = self._count - self.bounds.max_count
        if excess > 0:
            self._conn.execute(
                "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings ORDER BY seq LIMIT ?)",
                (excess,),
            )
            self._count -= excess
            self._bump(DROPPED_COUNT, excess)
        self._drop_older_than(self._clock() - self.bounds.max_age)

    def _drop_older_than(self, cutoff: float) -> int:
        cur = self._conn.execute("DELETE FROM readings WHERE time < ?", (cutoff,))
        if cur.rowcount > 0:
            self._count -= cur.rowcount
            self._bump(DROPPED_AGE, cur.rowcount)
        return max(cur.rowcount, 0)

    def _prune_delivered(self) -> None:
        cur = self._conn.execute("DELETE FROM readings WHERE seq <= (SELECT min(seq) FROM cursors)")
        self._count -= max(cur.rowcount, 0)

    def _bump(self, name: str, n: int) -> None:
        self._conn.execute(
            "INSERT INTO counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )
