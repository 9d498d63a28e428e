"""``bridged --recover``: a damaged state database or secrets file is kept aside and replaced
by what can still be read of it.

The daemon never does this by itself: a damaged file stops it with a message naming the file
and this command (exit 78, which systemd does not restart), because discarding it would
silently forget pairings. Recovery moves the damaged file aside (``state.db.corrupt-<time>``,
with its -wal and -shm), builds a new database of the current schema and copies into it, table
by table, every row that can still be read, pairings first; what could not be read is said,
table by table. A damaged secrets file is moved aside the same way, keeping the keys of every
node whose entry still reads; the nodes whose keys are lost are named, to be paired again with
their keys. A sound file is left as it is.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path

from .database import DatabaseError, connect, transaction
from .files import write_private_file
from .secrets import parse_secrets

TABLES = (
    "nodes",
    "instance_ids",
    "prefixes",
    "commands",
    "cursors",
    "counters",
    "readings",
    "last_values",
    "firmware",
    "fault_log",
    "node_health",
)
"""What is copied, most precious first: a table that breaks the copy half-way cannot take the
pairings with it. Every table of the schema is here (``tests/unit/test_recovery_tables.py``):
one left out would be silently emptied by a recovery (an update's state, the fault log, the
nodes' health)."""


def _aside(path: Path) -> Path:
    """Move ``path`` (and a database's -wal and -shm) to ``<name>.corrupt-<time>``."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("-wal", "-shm", ""):  # the main file last: a crash leaves it in place
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, Path(f"{aside}{suffix}"))
    return aside


def recover_database(path: Path) -> list[str]:
    """Recover the state database at ``path`` if it is damaged; returns what was done, one
    line each."""
    if not path.exists():
        return [f"{path}: none yet; a new one is made at start"]
    try:
        with contextlib.closing(connect(path)):
            return [f"{path}: sound, left as it is"]
    except DatabaseError as e:
        damage = str(e)
    aside = _aside(path)
    lines = [f"{damage}", f"{path}: the damaged database is kept as {aside}"]
    fresh = connect(path)
    try:
        old = sqlite3.connect(aside, isolation_level=None)
        try:
            for table in TABLES:
                lines.append(_copy(old, fresh, table))
        finally:
            old.close()
    finally:
        fresh.close()
    lines.append(f"{path}: a new database holds what could be read")
    return lines


def _copy(old: sqlite3.Connection, fresh: sqlite3.Connection, table: str) -> str:
    """Copy the rows of ``table`` that read, in the columns both schemas have."""
    columns = [row[1] for row in fresh.execute(f"PRAGMA table_info({table})")]
    try:
        present = {row[1] for row in old.execute(f"PRAGMA table_info({table})")}
    except sqlite3.DatabaseError as e:
        return f"  {table}: nothing could be read ({e})"
    shared = [c for c in columns if c in present]
    if not shared:
        return f"  {table}: not in the damaged database"
    names = ", ".join(shared)
    insert = f"INSERT OR IGNORE INTO {table}({names}) VALUES ({', '.join('?' * len(shared))})"
    copied, problem = 0, ""
    with transaction(fresh):
        try:
            for row in old.execute(f"SELECT {names} FROM {table}"):
                fresh.execute(insert, row)
                copied += 1
        except sqlite3.DatabaseError as e:
            problem = f"; the rest could not be read ({e})"
    return f"  {table}: {copied} rows kept{problem}"


def recover_secrets(path: Path) -> list[str]:
    """Recover the secrets file at ``path`` if it does not read; returns what was done."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return [f"{path}: none yet"]
    except (OSError, UnicodeDecodeError) as e:
        text, damage = "", str(e)
    else:
        try:
            parse_secrets(text)
        except ValueError as e:
            damage = str(e)
        else:
            return [f"{path}: sound, left as it is"]
    kept, lost = _readable_secrets(text)
    aside = _aside(path)
    write_private_file(path, json.dumps(kept, sort_keys=True, indent=1).encode("ascii"))
    lines = [
        f"{path}: damaged ({damage}); kept as {aside}",
        f"{path}: the keys of {len(kept)} nodes could be read and are kept",
    ]
    if lost:
        lines.append(f"  keys lost for: {', '.join(lost)}: pair them again with their keys")
    else:
        lines.append(
            "  nodes paired with keys whose entries are gone: pair them again with their keys"
        )
    return lines


def _readable_secrets(text: str) -> tuple[dict[str, dict[str, str]], list[str]]:
    """The entries of a damaged secrets file that are whole, and the node ids of the others."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}, []
    if not isinstance(data, dict):
        return {}, []
    kept: dict[str, dict[str, str]] = {}
    lost: list[str] = []
    for node, keys in data.items():
        try:
            if not isinstance(keys, dict):
                raise ValueError(node)
            for value in keys.values():
                bytes.fromhex(value)
        except (TypeError, ValueError):
            lost.append(str(node))
            continue
        kept[str(node)] = keys
    return kept, lost
