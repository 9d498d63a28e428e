"""The ``commands`` table: writes and executes kept for sleepy nodes, and how each ended (and
how each firmware update ended, which the queue does not carry out).

Every SQL statement on the table is here (``CommandStore``); what a command means and when it
is applied is ``bridged.commands``'s. A command's records and arguments are one CBOR body, its
values encoded as the reading store encodes them, so a kept write survives a restart with
its types.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import cbor2

from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.transports.nodes import NodeId

from .database import transaction
from .readings import decode_value, encode_value


class CommandStatus(Enum):
    PENDING = "pending"
    APPLIED = "applied"
    FAILED = "failed"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"


class CommandKind(Enum):
    WRITE = "write"
    EXECUTE = "execute"
    FIRMWARE = "firmware"
    """A node's firmware update (Execute of its /5/0/2): carried out by ``bridged.firmware``,
    not the queue, and kept here once it ended, with the /5 values it ended with."""


@dataclass(frozen=True, slots=True)
class Command:
    """One write or execute for a node, at a node-local path, and where it stands.

    A write carries ``records`` (``replace`` for PUT, partial for POST); an execute carries
    ``arguments``. Times are seconds since the epoch; ``finished`` is set once it has ended.
    """

    id: int
    node: NodeId
    path: Path
    kind: CommandKind
    created: float
    expires: float
    status: CommandStatus
    records: tuple[Record, ...] = ()
    arguments: str = ""
    replace: bool = True
    detail: str = ""
    finished: float | None = None


def _body(records: Sequence[Record], arguments: str) -> bytes:
    return cbor2.dumps([arguments, [[str(r.path), *encode_value(r.value)] for r in records]])


def _parse_body(body: bytes) -> tuple[str, tuple[Record, ...]]:
    arguments, rows = cbor2.loads(body)
    return arguments, tuple(
        Record(Path.parse(path), decode_value(kind, raw)) for path, kind, raw in rows
    )


_COLUMNS = "id, node_id, path, kind, replace, body, created, expires, status, detail, finished"


def _command(row: tuple[object, ...]) -> Command:
    cid, node, path, kind, replace, body, created, expires, status, detail, finished = row
    assert isinstance(body, bytes)
    arguments, records = _parse_body(body)
    return Command(
        id=int(str(cid)),
        node=NodeId.parse(str(node)),
        path=Path.parse(str(path)),
        kind=CommandKind(kind),
        created=float(str(created)),
        expires=float(str(expires)),
        status=CommandStatus(status),
        records=records,
        arguments=arguments,
        replace=bool(replace),
        detail=str(detail),
        finished=None if finished is None else float(str(finished)),
    )


class CommandStore:
    """The ``commands`` table of the state database."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def waiting(self) -> set[NodeId]:
        """The nodes that have pending commands."""
        rows = self._conn.execute(
            "SELECT DISTINCT node_id FROM commands WHERE status = ?", ("pending",)
        )
        return {NodeId.parse(n) for (n,) in rows}

    def add(
        self,
        node: NodeId,
        path: Path,
        kind: CommandKind,
        records: Sequence[Record],
        arguments: str,
        *,
        replace: bool,
        now: float,
        expires: float,
    ) -> tuple[Command, list[Command]]:
        """Keep a new pending command, in one transaction with superseding the pending ones of
        the same node and path; returns it and the ones it superseded (as they were)."""
        conn = self._conn
        with transaction(conn):
            older = self._select(
                "WHERE node_id = ? AND path = ? AND status = 'pending'", node, path
            )
            conn.execute(
                "UPDATE commands SET status = 'superseded', finished = ? "
                "WHERE node_id = ? AND path = ? AND status = 'pending'",
                (now, str(node), str(path)),
            )
            cur = conn.execute(
                "INSERT INTO commands(node_id, path, kind, replace, body, created, expires, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
                (
                    str(node),
                    str(path),
                    kind.value,
                    int(replace),
                    _body(records, arguments),
                    now,
                    expires,
                ),
            )
            assert cur.lastrowid is not None
            conn.executemany(
                "UPDATE commands SET detail = ? WHERE id = ?",
                [(f"replaced by command {cur.lastrowid}", c.id) for c in older],
            )
            (command,) = self._select("WHERE id = ?", cur.lastrowid)
        return command, older

    def ended(
        self,
        node: NodeId,
        path: Path,
        kind: CommandKind,
        records: Sequence[Record],
        *,
        created: float,
        status: CommandStatus,
        detail: str,
        now: float,
    ) -> Command:
        """Keep a command that has ended already (it had no time to live here: ``expires``
        is when it ended)."""
        with transaction(self._conn):
            cur = self._conn.execute(
                "INSERT INTO commands(node_id, path, kind, replace, body, created, expires,"
                " status, detail, finished) VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?)",
                (
                    str(node),
                    str(path),
                    kind.value,
                    _body(records, ""),
                    created,
                    now,
                    status.value,
                    detail,
                    now,
                ),
            )
            (command,) = self._select("WHERE id = ?", cur.lastrowid)
        return command

    def pending(self, node: NodeId | None = None) -> list[Command]:
        """The pending commands (of ``node`` only, when given), oldest first."""
        if node is None:
            return self._select("WHERE status = 'pending' ORDER BY id")
        return self._select("WHERE status = 'pending' AND node_id = ? ORDER BY id", node)

    def history(self, limit: int) -> list[Command]:
        """The ``limit`` commands that ended most recently, newest first."""
        return self._select(
            "WHERE status != 'pending' ORDER BY finished DESC, id DESC LIMIT ?", limit
        )

    def due(self, now: float) -> list[Command]:
        """The pending commands whose time to live is over at ``now``, oldest first."""
        return self._select("WHERE status = 'pending' AND expires <= ? ORDER BY id", now)

    def next_expiry(self) -> float | None:
        """When the first pending command's time to live is over; None with none pending."""
        (expires,) = self._conn.execute(
            "SELECT min(expires) FROM commands WHERE status = 'pending'"
        ).fetchone()
        return None if expires is None else float(expires)

    def finish(self, command: Command, status: CommandStatus, detail: str, now: float) -> bool:
        """End ``command`` with ``status``; False when it had ended already."""
        cur = self._conn.execute(
            "UPDATE commands SET status = ?, detail = ?, finished = ? "
            "WHERE id = ? AND status = 'pending'",
            (status.value, detail, now, command.id),
        )
        return bool(cur.rowcount)

    def _select(self, where: str, *args: object) -> list[Command]:
        params = [str(a) if isinstance(a, (NodeId, Path)) else a for a in args]
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM commands {where}", params)
        return [_command(row) for row in rows]
