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
from types import TracebackType

log = logging.getLogger(__name__)

_READING_COLUMNS = """
        node_id TEXT NOT NULL,
        path    TEXT NOT NULL,
        kind    INTEGER NOT NULL,
        value   ANY,
        time    REAL NOT NULL
"""
"""A reading's columns after its seq (migrations 1 and 9)."""

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
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,"""
    + _READING_COLUMNS
    + """) STRICT;
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
    # 5: each paired node's last reported value of each resource, with its time, so that a
    # restarted gateway answers a read of a sleepy node (and shows every node upstream) before
    # the node talks again: readings are deleted once delivered. Seeded with what the readings
    # table still holds.
    """
    CREATE TABLE last_values (
        node_id TEXT NOT NULL,
        path    TEXT NOT NULL,
        kind    INTEGER NOT NULL,
        value   ANY,
        time    REAL NOT NULL,
        PRIMARY KEY (node_id, path)
    ) STRICT;
    INSERT INTO last_values(node_id, path, kind, value, time)
        SELECT node_id, path, kind, value, time FROM readings
         WHERE seq IN (SELECT max(seq) FROM readings GROUP BY node_id, path)
           AND node_id IN (SELECT id FROM nodes)
    """,
    # 6: the fault log (the gateway's and its nodes' faults, starting and ending), bounded,
    # which a server reads in /20 Event Log after an outage.
    """
    CREATE TABLE fault_log (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        time    REAL NOT NULL,
        source  TEXT NOT NULL,
        code    INTEGER NOT NULL,
        present INTEGER NOT NULL,
        why     TEXT NOT NULL
    ) STRICT
    """,
    # 7: each node's /5 Firmware Update as the server sees it (state, result, package), so a
    # gateway restarted mid-update neither loses the server's view nor the package on disk.
    """
    CREATE TABLE firmware (
        node_id  TEXT PRIMARY KEY,
        state    INTEGER NOT NULL,
        result   INTEGER NOT NULL,
        uri      TEXT NOT NULL,
        name     TEXT NOT NULL,
        version  TEXT NOT NULL,
        sha256   TEXT NOT NULL,
        size     INTEGER NOT NULL,
        changed  REAL NOT NULL
    ) STRICT
    """,
    # 8: each paired node's health as last shown (last heard, RSSI, link quality, battery,
    # refused frames, availability), so that a restarted gateway shows it before the node
    # talks again (bridged/store/health.py).
    """
    CREATE TABLE node_health (
        node_id          TEXT PRIMARY KEY,
        available        INTEGER NOT NULL,
        last_heard       REAL,
        rssi             INTEGER,
        lqi              INTEGER,
        battery          INTEGER,
        decrypt_failures INTEGER NOT NULL,
        problem          TEXT,
        interval         REAL
    ) STRICT
    """,
    # 9: the readings table without AUTOINCREMENT and without its time index: each reading's
    # insert updated the ``sqlite_sequence`` row and a second b-tree, and its delete the index
    # again (issue 17). The store gives each row its seq itself (``ReadingStore``: after the
    # largest a row or a cursor holds, so none is reused while anything refers to it) and
    # keeps its oldest time in memory; the age bound's delete scans the table only when a
    # reading is due (once per ``max_age`` at most). The table is copied: SQLite cannot drop
    # AUTOINCREMENT in place; dropping the old table drops its index and its sequence row,
    # whose seq, when larger than every row's and cursor's, nothing refers to.
    """
    CREATE TABLE readings_new (
        seq     INTEGER PRIMARY KEY,"""
    + _READING_COLUMNS
    + """) STRICT;
    INSERT INTO readings_new(seq, node_id, path, kind, value, time)
        SELECT seq, node_id, path, kind, value, time FROM readings;
    DROP TABLE readings;
    ALTER TABLE readings_new RENAME TO readings
    """,
)


class DatabaseError(Exception):
    """The state database cannot be used; the message names the file and why."""


def connect(path: Path | str) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date.

    ``":memory:"`` gives a private in-memory database, for tests of logic only: it has no WAL.
    A damaged file (``PRAGMA quick_check``) or one of a newer schema is a DatabaseError that
    says what to do; the file is not touched.
    """
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    except sqlite3.Error as e:
        raise DatabaseError(f"{path}: cannot open the state database ({e})") from None
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        # 512 KiB of page cache, not SQLite's 2 MB: the start's quick_check reads every page,
        # which filled the whole cache for good (about 1.5 MB of a daemon with 10,000 nodes);
        # what a reading's insert touches (the tables' rightmost pages and their parents) fits,
        # and the kernel caches the file as well.
        conn.execute("PRAGMA cache_size=-512")
        (verdict,) = conn.execute("PRAGMA quick_check(1)").fetchone()
        if verdict != "ok":
            found = " ".join(str(verdict).replace("*** in database main ***", "").split())
            raise sqlite3.DatabaseError(f"database disk image is malformed: {found[:200]}")
        _migrate(conn)
    except DatabaseError as e:
        conn.close()
        raise DatabaseError(f"{path}: {e}") from None
    except sqlite3.DatabaseError as e:
        conn.close()
        raise DatabaseError(
            f"{path}: the state database is damaged ({e}); nothing was changed: "
            "`bridged --recover` keeps it aside and starts a new one with what still reads"
        ) from None
    return conn


class transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on an error. SQLite has already rolled back
    after some errors (a full disk, an I/O error), so ROLLBACK only when one is still open:
    a second error from ROLLBACK would hide the first.

    A class, not a ``contextlib.contextmanager`` generator: that one's enter and exit run
    several frames of ``contextlib``'s Python, about 10 k instructions a transaction, 2 k a
    reading in a group commit of 5 (~100 reports/s, issue 17). A subclass learns of a
    rollback by ``rolled_back`` (``ReadingStore``'s memory)."""

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self.rolled_back()
                raise
        else:
            self.rolled_back()

    def rolled_back(self) -> None:
        """The transaction did not commit (the error goes on)."""
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


RUNNING = "running"
"""Counter row that is 1 while a daemon uses the database and 0 after a clean stop."""
UNCLEAN_STOPS = "unclean_stops"
"""How many times a daemon ended without a clean stop (kill -9, a crash, a power cut)."""
WATCHDOG = "watchdog"
"""Counter row the watchdog's health check writes (``prove_writable``)."""


def mark_running(conn: sqlite3.Connection) -> bool:
    """Note that a daemon uses the database now; True when the previous one ended without a
    clean stop (it is then counted in ``UNCLEAN_STOPS``): the readings nobody acknowledged of
    its last group commit window may be lost, and this is how that is known."""
    with transaction(conn):
        row = conn.execute("SELECT value FROM counters WHERE name = ?", (RUNNING,)).fetchone()
        unclean = row is not None and row[0] == 1
        if unclean:
            conn.execute(
                "INSERT INTO counters(name, value) VALUES (?, 1) "
                "ON CONFLICT(name) DO UPDATE SET value = value + 1",
                (UNCLEAN_STOPS,),
            )
        conn.execute(
            "INSERT INTO counters(name, value) VALUES (?, 1) "
            "ON CONFLICT(name) DO UPDATE SET value = 1",
            (RUNNING,),
        )
    return unclean


def mark_stopped(conn: sqlite3.Connection) -> None:
    """The daemon stops cleanly: everything it took is in the database."""
    with transaction(conn):
        conn.execute("UPDATE counters SET value = 0 WHERE name = ?", (RUNNING,))


def prove_writable(conn: sqlite3.Connection) -> None:
    """Write one row (a counter of these proofs), so that the watchdog knows the database
    takes a write; raises the ``sqlite3.Error`` of a database that does not.

    A write, not a read nor a BEGIN IMMEDIATE that is rolled back: those take the lock but
    write nothing, so a file system gone read-only or an I/O error that only a write meets
    would pass. It is cheap as it is, one statement in its own transaction: with WAL and
    ``synchronous=NORMAL`` its commit appends a page to the WAL and syncs nothing (the
    counter's durability does not matter; a checkpoint syncs it with the rest), about 0.1 ms
    of each ping every 15 s (measured with strace and time.process_time, issue 17)."""
    conn.execute(
        "INSERT INTO counters(name, value) VALUES (?, 0) "
        "ON CONFLICT(name) DO UPDATE SET value = value + 1",
        (WATCHDOG,),
    )


def unclean_stops(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM counters WHERE name = ?", (UNCLEAN_STOPS,)).fetchone()
    return 0 if row is None else int(row[0])


def _migrate(conn: sqlite3.Connection) -> None:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise DatabaseError(
            f"schema version {version} is newer than this bridged knows ({len(MIGRATIONS)}):"
            " it was written by a later version; install that one again"
        )
    for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
        log.info("state database: schema %d -> %d", target - 1, target)
        with transaction(conn):
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={target}")
