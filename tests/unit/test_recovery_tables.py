"""``bridged --recover`` copies every table of the current schema.

A table added by a migration and not named in ``recovery.TABLES`` would come back empty after a
recovery, silently: an update in progress would lose its state, the fault log its entries.
"""

from __future__ import annotations

from pathlib import Path

from bridged.store import recovery
from bridged.store.database import connect


def test_every_table_of_the_schema_is_copied(tmp_path: Path) -> None:
    db = connect(tmp_path / "state.db")
    try:
        tables = {
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
    finally:
        db.close()
    assert "nodes" in tables  # the schema was made
    assert tables <= set(recovery.TABLES), tables - set(recovery.TABLES)
