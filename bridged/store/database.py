"""Opening the gateway's SQLite database: WAL, durable commits, a versioned schema.

WAL with ``synchronous=NORMAL`` makes every committed transaction survive the process being
killed (kill -9, a crash, the OOM killer): the commit is in the WAL file the moment it returns,
and only a power cut before the next checkpoint could lose the very last transactions. That is
the durability the gateway promises for what a transport has accepted, at a fraction of the
cost of ``synchronous=FULL``.

The schema is versioned with ``PRAGMA user_version``; each step in ``MIGRATIONS`` moves it one
version up inside one transaction, so an interrupted upgrade leaves the previous version intact.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

MIGRATIONS: tuple[str, ...] = (
    # 1: paired nodes, their stable instance IDs and gateway prefixes, buffered readings.
    """
    CREATE TABLE nodes (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        profile     TEXT NOT NULL,
        sleepy      INTEGER NOT NULL,
        paired_at   REAL NOT NULL,
        options     TEXT NOT NULL
    );
    CREATE TABLE instance_ids (
        node_id       TEXT NOT NULL,
        object_id     INTEGER NOT NULL,
        node_instance INTEGER NOT NULL,
        instance_id   INTEGER NOT NULL,
        PRIMARY KEY (node_id, object_id, node_instance),
        UNIQUE (object_id, instance_id)
    );
    CREATE TABLE prefixes (
        node_id TEXT PRIMARY KEY,
        prefix  TEXT NOT NULL UNIQUE
    );
    CREATE TABLE readings (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        node_id TEXT NOT NULL,
        path    TEXT NOT NULL,
        kind    INTEGER NOT NULL,
        value   ANY,
        time    REAL NOT NULL
    ) STRICT;
    CREATE INDEX readings_time ON readings(time);
    CREATE TABLE cursors (
        consumer TEXT PRIMARY KEY,
        seq      INTEGER NOT NULL
    );
    CREATE TABLE counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    """,
    # 2: commands kept for sleepy nodes (desired state) and how each ended.
    """
    CREATE TABLE commands (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        node_id   TEXT NOT NULL,
        path      TEXT NOT NULL,
        kind      TEXT NOT NULL,
        replace   INTEGER NOT NULL,
        body      BLOB NOT NULL,
        created   REAL NOT NULL,
        expires   REAL NOT NULL,
        status    TEXT NOT NULL,
        detail    TEXT NOT NULL DEFAULT '',
        finished  REAL
    ) STRICT;
    CREATE UNIQUE INDEX commands_one_pending ON commands(node_id, path) WHERE status = 'pending';
    CREATE INDEX commands_finished ON commands(finished)
    """,
    # 3: each paired node's object list, so a restarted gateway exposes the node (and delivers
    # its stored readings) before the node is heard again.
    """
    ALTER TABLE nodes ADD COLUMN objects TEXT NOT NULL DEFAULT '{}'
    """,
    # 4: what a transport keeps of each paired node across restarts (an 802.15.4 node's
    # LwM2M registration), so a restarted gateway takes the node's Sends, Updates and
    # notifications at once instead of losing them until the node registers again.
    """
    ALTER TABLE nodes ADD COLUMN session TEXT NOT NULL DEFAULT 'null'
    """,
)


class DatabaseError(Exception):
    """The state database cannot be used; the message names the file and why."""


def connect(path: Path | str) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date.

    ``":memory:"`` gives a private in-memory database, for tests of logic only: it has no WAL.
    """
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        _migrate(conn)
    except sqlite3.DatabaseError as e:
        raise DatabaseError(f"{path}: {e}") from e
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise sqlite3.DatabaseError(
            f"schema version {version} is newer than this bridged knows ({len(MIGRATIONS)})"
        )
    for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
        log.info("state database: schema %d -> %d", target - 1, target)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={target}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
