"""The ``firmware`` table: each node's /5 Firmware Update state, as the server was shown it.

Every SQL statement on the table is here (``FirmwareStore``); what the state means and when it
changes is ``bridged.firmware``'s. One row per node that ever had an update; the package itself
is a file in the state directory, named by the node, and the row says which bytes it must be
(``sha256``, ``size``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from bridged.transports.nodes import NodeId

from .database import transaction


@dataclass(frozen=True, slots=True)
class FirmwareRow:
    """One node's /5: ``state`` (/5/0/3), ``result`` (/5/0/5), ``uri`` (/5/0/1), the
    package's ``name``, ``version``, ``sha256`` (hex, empty without a package) and ``size``."""

    node: NodeId
    state: int
    result: int
    uri: str = ""
    name: str = ""
    version: str = ""
    sha256: str = ""
    size: int = 0
    changed: float = 0.0


class FirmwareStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def all(self) -> dict[NodeId, FirmwareRow]:
        rows = self._conn.execute(
            "SELECT node_id, state, result, uri, name, version, sha256, size, changed FROM firmware"
        )
        return {
            NodeId.parse(r[0]): FirmwareRow(NodeId.parse(r[0]), *r[1:]) for r in rows.fetchall()
        }

    def save(self, row: FirmwareRow) -> None:
        """Keep ``row`` durably before the server is shown it."""
        with transaction(self._conn) as conn:
            conn.execute(
                "INSERT INTO firmware(node_id, state, result, uri, name, version, sha256, size,"
                " changed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(node_id) DO UPDATE SET"
                " state = excluded.state, result = excluded.result, uri = excluded.uri,"
                " name = excluded.name, version = excluded.version, sha256 = excluded.sha256,"
                " size = excluded.size, changed = excluded.changed",
                (
                    str(row.node),
                    row.state,
                    row.result,
                    row.uri,
                    row.name,
                    row.version,
                    row.sha256,
                    row.size,
                    row.changed,
                ),
            )

    def forget(self, node: NodeId) -> None:
        with transaction(self._conn) as conn:
            conn.execute("DELETE FROM firmware WHERE node_id = ?", (str(node),))
