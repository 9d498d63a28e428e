"""Readings kept until every upstream consumer has them: store-and-forward.

Every reading a transport hands over is appended here before it is acknowledged, so nothing
accepted is lost across a crash or kill -9 (see database.py on durability). Each upstream
consumer (one per LwM2M server) has a cursor: it takes readings in order with ``pending``,
delivers them (Send, or notifications for a 1.0 server) and moves its cursor with ``ack``.
Rows every consumer has passed are deleted.

The store is bounded by count and by age. When a bound is hit the oldest readings go first,
and how many went is counted per reason in the ``counters`` table, so the loss is reported
(bridgectl status, the logs) rather than silent.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bridged.objects.paths import Path
from bridged.objects.values import ObjLnk, Value

from .nodes import NodeId

_INT, _FLOAT, _STR, _BOOL, _BYTES, _OBJLNK, _BIGINT = range(7)
_INT64 = range(-(2**63), 2**63)

DROPPED_COUNT = "dropped_count"
DROPPED_AGE = "dropped_age"


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


class ReadingStore:
    """The ``readings``, ``cursors`` and ``counters`` tables of the state database."""

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
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute("DELETE FROM cursors WHERE consumer = ?", (name,))
        self._prune_delivered()
        self._conn.execute("COMMIT")

    def append(self, readings: Iterable[Reading]) -> int:
        """Store ``readings`` in one transaction (durable when this returns); returns the seq
        of the last one. Enforces the bounds, oldest first."""
        rows = [(str(r.node), str(r.path), *encode_value(r.value), r.time) for r in readings]
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(
                "INSERT INTO readings(node_id, path, kind, value, time) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            self._count += len(rows)
            self._enforce_bounds()
            (last,) = self._conn.execute("SELECT coalesce(max(seq), 0) FROM readings").fetchone()
        except BaseException:
            self._conn.execute("ROLLBACK")
            (self._count,) = self._conn.execute("SELECT count(*) FROM readings").fetchone()
            raise
        self._conn.execute("COMMIT")
        return int(last)

    def pending(self, consumer: str, limit: int = 1000) -> list[StoredReading]:
        """The oldest readings ``consumer`` has not acknowledged, in arrival order."""
        rows = self._conn.execute(
            "SELECT seq, node_id, path, kind, value, time FROM readings "
            "WHERE seq > (SELECT seq FROM cursors WHERE consumer = ?) ORDER BY seq LIMIT ?",
            (consumer, limit),
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
            "WHERE seq > coalesce((SELECT seq FROM cursors WHERE consumer = ?), 1e18)",
            (consumer,),
        ).fetchone()
        return int(count)

    def ack(self, consumer: str, seq: int) -> None:
        """``consumer`` has delivered everything up to ``seq``."""
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute(
            "UPDATE cursors SET seq = max(seq, ?) WHERE consumer = ?", (seq, consumer)
        )
        self._prune_delivered()
        self._conn.execute("COMMIT")

    def expire(self) -> int:
        """Drop readings older than the age bound (call now and then); returns how many."""
        self._conn.execute("BEGIN IMMEDIATE")
        dropped = self._drop_older_than(self._clock() - self.bounds.max_age)
        self._conn.execute("COMMIT")
        return dropped

    def dropped(self) -> dict[str, int]:
        """How many readings each bound has discarded, ever."""
        return {
            name: int(value)
            for name, value in self._conn.execute("SELECT name, value FROM counters")
            if name in (DROPPED_COUNT, DROPPED_AGE)
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
