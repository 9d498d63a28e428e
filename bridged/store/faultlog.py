"""The ``fault_log`` table: the gateway's record of faults, its own and its nodes', bounded.

Every SQL statement on the table is here (``FaultLogStore``); what is recorded and how a
server reads it is ``bridged.eventlog``'s. The newest ``limit`` entries are kept: appending
one deletes what falls beyond, in the same transaction, so the table never grows past it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from .database import transaction

DEFAULT_LIMIT = 200
"""Entries kept: a few weeks of a flaky node's comings and goings, a few KB upstream."""


@dataclass(frozen=True, slots=True)
class FaultEntry:
    """One fault starting (``present``) or ending: ``source`` is what had it (``node
    ble:...``, ``transport.802154``, ``store``), ``code`` its /3/0/11 Error Code, ``time``
    seconds since the epoch."""

    time: float
    source: str
    code: int
    present: bool
    why: str


class FaultLogStore:
    def __init__(self, conn: sqlite3.Connection, limit: int = DEFAULT_LIMIT) -> None:
        self.conn = conn
        self.limit = limit

    def append(self, entry: FaultEntry) -> None:
        """Keep ``entry``, and no more than ``limit`` entries; sqlite3.DatabaseError when the
        database refuses the write."""
        with transaction(self.conn) as conn:
            conn.execute(
                "INSERT INTO fault_log(time, source, code, present, why) VALUES (?, ?, ?, ?, ?)",
                (entry.time, entry.source, entry.code, int(entry.present), entry.why),
            )
            conn.execute(
                "DELETE FROM fault_log WHERE id <= (SELECT max(id) FROM fault_log) - ?",
                (self.limit,),
            )

    def still_raised(self) -> list[FaultEntry]:
        """The sources whose last entry kept is a raise (a fault present when the gateway
        stopped, or when it was killed), that entry each, oldest first."""
        return self._select(
            "WHERE present AND id IN (SELECT max(id) FROM fault_log GROUP BY source)"
        )

    def entries(self) -> list[FaultEntry]:
        """What is kept, oldest first."""
        return self._select("")

    def _select(self, where: str) -> list[FaultEntry]:
        rows = self.conn.execute(
            f"SELECT time, source, code, present, why FROM fault_log {where} ORDER BY id"
        ).fetchall()
        return [FaultEntry(t, s, c, bool(p), w) for t, s, c, p, w in rows]
