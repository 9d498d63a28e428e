"""The fault log (bridged/eventlog.py over store/faultlog.py): bounded, kept across restarts,
shown in /20/0."""

from __future__ import annotations

from pathlib import Path as FsPath

from bridged.eventlog import STATUS_VALID_DATA, EventLog
from bridged.objects.builtin import builtin_definitions
from bridged.objects.ids import EventLog as EventLogObject
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.store.database import connect
from bridged.store.faultlog import FaultLogStore

LOG_DATA, LOG_STATUS = EventLogObject.LOG_DATA, EventLogObject.LOG_STATUS

START = 1_796_000_000.0  # 2026-11-29T...Z


def opened(state: FsPath, limit: int = 3) -> tuple[EventLog, ObjectTree]:
    tree = ObjectTree(builtin_definitions())
    clock = iter(START + i for i in range(100))
    return EventLog(
        tree, FaultLogStore(connect(state / "state.db"), limit), clock=lambda: next(clock)
    ), tree


def test_entries_are_shown_bounded_and_kept_across_a_restart(tmp_path: FsPath) -> None:
    log, tree = opened(tmp_path)
    assert tree.get(Path((20, 0, LOG_STATUS))) == 0
    log.record("node ble:A4:C1:38:00:00:01", 7, True, "not heard for 90 s")
    log.record("store", 17, True, "the state database refuses writes")
    log.record("store", 17, False, "the state database refuses writes")
    log.record("node ble:A4:C1:38:00:00:01", 7, False, "not heard for 90 s")
    data = tree.get(Path((20, 0, LOG_DATA)))
    assert isinstance(data, bytes)
    lines = data.decode().splitlines()
    assert len(lines) == 3  # the oldest dropped
    assert lines[-1].endswith("Z node ble:A4:C1:38:00:00:01 cleared 7 not heard for 90 s")
    assert tree.get(Path((20, 0, LOG_STATUS))) == STATUS_VALID_DATA

    again, tree = opened(tmp_path)  # a restart: a server reads what happened before it
    assert tree.get(Path((20, 0, LOG_DATA))) == data
    assert len(again.entries) == 3


def test_a_deleted_log_instance_comes_back_with_the_next_entry(tmp_path: FsPath) -> None:
    log, tree = opened(tmp_path)
    tree.delete_instance(20, 0)  # a Bootstrap-Delete
    log.record("store", 17, True, "the state database refuses writes")
    data = tree.get(Path((20, 0, LOG_DATA)))
    assert isinstance(data, bytes) and b" store raised 17 " in data


def test_still_raised_are_the_sources_whose_last_entry_raises(tmp_path: FsPath) -> None:
    log, _ = opened(tmp_path, limit=10)
    log.record("transport.802154", 8, True, "radio down: read failed")
    log.record("store", 17, True, "the state database refuses writes")
    log.record("server coap://s", 7, True, "registration-failed")
    log.record("store", 17, False, "the state database refuses writes")
    assert [(e.source, e.code) for e in log.store.still_raised()] == [
        ("transport.802154", 8),
        ("server coap://s", 7),
    ]
