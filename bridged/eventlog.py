"""The fault log, as a server reads it: LwM2M /20 Event Log (LwM2M 1.2), instance 0.

Every fault that starts or ends, the gateway's own (``bridged.faults``) and its nodes'
(``bridged.health``: unreachable, low battery, weak signal, refused frames), is one entry,
kept in the state database (``store/faultlog.py``: bounded, the newest kept) so that a server
that was cut off, or a gateway that restarted, still has the history: a server reads /20/0/4014
LogData after an outage and learns what happened meanwhile, each entry with its time.

The instance says: 4010 LogClass 3 (event), 4013 LogStatus with bit 1 set once it holds
entries (bit 0 clear: collecting, always), 4015 LogDataFormat 0 (no LwM2M format: a sequence
of bytes), and 4014 LogData the entries as UTF-8 text, one line each, oldest first::

    2026-12-07T01:40:12Z node ble:A4:C1:38:0A:0B:01 raised 7 not heard for 90 s
    2026-12-07T01:41:02Z node ble:A4:C1:38:0A:0B:01 cleared 7 not heard for 90 s

A line a person and a script both read, which no LwM2M format would carry better: the
entries are not resources. LogData changes with each entry, so a server observing it is
notified. LogStart and LogStop are not offered: the log always collects.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable

from bridged.objects import ids
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Value

from .store.faultlog import FaultEntry, FaultLogStore

log = logging.getLogger(__name__)

CLASS_EVENT = 3
STATUS_VALID_DATA = 0b10
"""LogStatus bit 1: LogData holds valid data."""
FORMAT_BYTES = 0
"""LogDataFormat 0: no specific data format (a sequence of bytes)."""


def log_line(entry: FaultEntry) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.time))
    what = "raised" if entry.present else "cleared"
    return f"{stamp} {entry.source} {what} {entry.code} {entry.why}\n"


class EventLog:
    """The gateway's /20/0 over its ``FaultLogStore`` (see the module docstring)."""

    def __init__(
        self, tree: ObjectTree, store: FaultLogStore, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.tree = tree
        self.store = store
        self._clock = clock
        self.entries: deque[FaultEntry] = deque(store.entries(), maxlen=store.limit)
        """What LogData shows: the stored entries and those the database refused meanwhile."""
        self.instance = self._create()

    def _create(self) -> Path:
        return self.tree.create_instance(
            ids.EventLog.OBJECT,
            ids.SINGLE,
            [
                (ids.EventLog.LOG_CLASS, CLASS_EVENT),
                (ids.EventLog.LOG_DATA_FORMAT, FORMAT_BYTES),
                *self._data(),
            ],
        )

    def record(self, source: str, code: int, present: bool, why: str) -> None:
        """A fault of ``source`` starts (``present``) or ends."""
        entry = FaultEntry(self._clock(), source, code, present, why)
        self.entries.append(entry)
        try:
            self.store.append(entry)
        except sqlite3.DatabaseError as e:
            # The store's own fault says why; the entry is shown until a restart.
            log.debug("fault log entry not stored: %s", e)
        if not self.tree.has(self.instance):
            # A Bootstrap-Server deleted it: the log is the gateway's, and it is back.
            self.instance = self._create()
            return
        for rid, value in self._data():
            self.tree.set(self.instance.child(rid), value)

    def _data(self) -> list[tuple[int, Value]]:
        data = "".join(log_line(e) for e in self.entries).encode()
        return [
            (ids.EventLog.LOG_STATUS, STATUS_VALID_DATA if self.entries else 0),
            (ids.EventLog.LOG_DATA, data),
        ]
