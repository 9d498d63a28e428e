"""The ``node_health`` table: what a user and a server are shown of each paired node's health
(when it was last heard, its last RSSI, link quality and battery, its refused frames, whether it
is available), kept so that a restarted gateway shows them before the node talks again.

Every SQL statement on the table is here (``HealthStore``); what the values mean and when they
are written is ``bridged.health``'s. The rows are written inside a transaction someone else
opened (``saving``: the readings' group commit), so keeping them costs no commit of its own; a
node that is no longer paired gets no row, and unpairing it deletes its row
(``NodeStore.unpair``).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import astuple, dataclass, fields
from operator import attrgetter

from bridged.transports.nodes import NodeId

from .database import transaction


@dataclass(frozen=True, slots=True)
class SavedHealth:
    """One node's health as kept: ``last_heard`` is wall-clock seconds, ``interval`` the
    shortest one it was heard at (its learnt timeout's base)."""

    available: bool
    last_heard: float | None
    rssi: int | None
    lqi: int | None
    battery: int | None
    decrypt_failures: int
    problem: str | None
    interval: float | None


NOTHING_KNOWN = SavedHealth(True, None, None, None, None, 0, None, None)
"""The health of a node never heard and never found unavailable: what a start gives a node
that has no row. A clean stop keeps every node's health, so a row of a node that said nothing
yet is this, and is not read back: each one read became a node's own copy of the health that
such nodes share (10,000 quiet nodes held 1.5 MB more after a restart than at a first start,
issue 17)."""

_COLUMNS = tuple(f.name for f in fields(SavedHealth))
_LISTED = ", ".join(_COLUMNS)
_SAVE = f"""
    INSERT INTO node_health(node_id, {_LISTED})
    SELECT ?1, {", ".join(f"?{i}" for i in range(2, len(_COLUMNS) + 2))}
     WHERE EXISTS (SELECT 1 FROM nodes WHERE id = ?1)
    ON CONFLICT(node_id) DO UPDATE SET {", ".join(f"{c} = excluded.{c}" for c in _COLUMNS)}
"""
"""Keep a node's health (a node that is not paired, unpaired meanwhile, gets none)."""
assert _COLUMNS[0] == "available"
_AFTER_AVAILABLE = attrgetter(*_COLUMNS[1:])
"""A health's values after ``available`` in ``_COLUMNS``' order, as they are (each a number, a
text or None) for ``save``: not ``dataclasses.astuple``, which copies each value deeply and
asks each whether it is a dataclass, in every group commit (issue 17). ``available`` goes in
as an int: the ``sqlite3`` module binds only an exact int directly, a bool through its
adapters' lookup."""
_NOTHING = ", ".join("?" * len(_COLUMNS))
"""``NOTHING_KNOWN``'s values, bound in ``HealthStore.load``."""


class HealthStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def load(self) -> dict[NodeId, SavedHealth]:
        """Every paired node's health as last kept, but for those that say ``NOTHING_KNOWN``."""
        rows = self.conn.execute(
            f"SELECT node_id, {_LISTED} FROM node_health WHERE ({_LISTED}) IS NOT ({_NOTHING})",
            astuple(NOTHING_KNOWN),
        )
        return {
            NodeId.parse(node): SavedHealth(bool(available), *rest)
            for node, available, *rest in rows
        }

    def saving(
        self, health: Mapping[NodeId, SavedHealth]
    ) -> Callable[[sqlite3.Connection], None] | None:
        """The write of ``health`` for a transaction someone else opens (``ReadingStore.joining``),
        None when there is nothing to write."""
        return functools.partial(self.save, health) if health else None

    def save(self, health: Mapping[NodeId, SavedHealth], conn: sqlite3.Connection) -> None:
        """Keep ``health`` inside the transaction open on ``conn`` (it commits them)."""
        if health:
            conn.executemany(
                _SAVE,
                [(str(node), int(h.available), *_AFTER_AVAILABLE(h)) for node, h in health.items()],
            )

    def save_now(self, health: Mapping[NodeId, SavedHealth]) -> None:
        """Keep ``health`` in a transaction of its own (at a clean stop)."""
        if health:
            with transaction(self.conn) as conn:
                self.save(health, conn)
