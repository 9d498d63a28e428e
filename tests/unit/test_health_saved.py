"""A node's health kept across a restart (bridged/health.py, bridged/store/health.py): written
inside the readings' group commit, at most every SAVE_EVERY seconds, never in a commit of its
own; given back to the next run's monitor as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path as FsPath

from timers import Clock

from bridged.health import SAVE_EVERY, UNREACHABLE, HealthFeed, HealthMonitor, HealthPolicy
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.registry import LiveNode
from bridged.store.database import connect
from bridged.store.health import HealthStore, SavedHealth
from bridged.store.nodes import NodeStore
from bridged.store.readings import ReadingStore
from bridged.transports.base import NodeState
from bridged.transports.nodes import NodeId, PairedNode

NODE = NodeId("ble", "A4:C1:38:00:00:01")
GONE = NodeId("ble", "A4:C1:38:00:00:02")
TEMPERATURE = Path.parse("/3303/0/5700")


class Commits:
    """Counts the COMMITs a connection runs."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.count = 0
        conn.set_trace_callback(self.seen)

    def seen(self, statement: str) -> None:
        self.count += statement.strip().upper() == "COMMIT"


def state(rssi: int, failures: int = 0) -> NodeState:
    return NodeState(True, 1_700_000_000.0, rssi=rssi, battery=80, decrypt_failures=failures)


async def test_health_rides_on_the_readings_commit_and_the_next_run_starts_from_it(
    tmp_path: FsPath,
) -> None:
    conn = connect(tmp_path / "state.db")
    for node in (NODE, GONE):
        NodeStore(conn).pair(PairedNode(node, "n", "bthome"))
    store, readings, clock = HealthStore(conn), ReadingStore(conn), Clock()
    policy = HealthPolicy(nodes={GONE: SAVE_EVERY / 2})
    health = HealthMonitor(policy, clock=clock, monotonic=clock, saved=store.load())
    readings.joining.append(lambda: store.saving(health.unsaved()))
    health.add(NODE)
    health.add(GONE)
    commits = Commits(conn)

    health.state(NODE, state(-70, failures=2))
    readings.append([(NODE, Record(TEMPERATURE, 21.5, clock.now))])
    assert store.load() == {}, "not before SAVE_EVERY seconds"
    clock.now += SAVE_EVERY
    health.expire()  # GONE was never heard: unavailable
    health.state(NODE, state(-80, failures=3))
    readings.append([(NODE, Record(TEMPERATURE, 21.6, clock.now))])
    assert commits.count == 2, "one commit per group commit, none for the health"
    saved = store.load()
    assert saved[NODE].rssi == -80 and saved[NODE].battery == 80
    assert saved[NODE].decrypt_failures == 3 and saved[NODE].last_heard == 1_700_000_000.0
    assert saved[GONE].available is False

    # The next run: shown as it was before either node is heard.
    after = HealthMonitor(policy, clock=clock, monotonic=clock, saved=store.load())
    after.add(NODE)
    after.add(GONE)
    node, gone = after.health(NODE), after.health(GONE)
    assert node is not None and gone is not None
    assert (node.available, node.rssi, node.battery, node.last_heard) == (
        True,
        -80,
        80,
        1_700_000_000.0,
    )
    assert gone.errors == (UNREACHABLE,)
    assert after.armed is not None, "the node that is available has its deadline"
    # Its transport counts refused frames from its own start: they add to those before.
    after.state(NODE, state(-80, failures=1))
    assert after.health(NODE).decrypt_failures == 4  # type: ignore[union-attr]

    # Unpaired, it leaves no health behind.
    NodeStore(conn).unpair(NODE)
    assert set(store.load()) == {GONE}
    health.stop()
    after.stop()


def test_a_node_never_heard_starts_the_next_run_with_the_health_unheard_nodes_share(
    tmp_path: FsPath,
) -> None:
    """A clean stop keeps every node's health; a node that said nothing yet is shown after it
    as before, with the one health all unheard nodes share, not a copy each (10,000 quiet
    nodes' copies were 1.5 MB of a restart, issue 17); a node found unavailable stays so."""
    conn = connect(tmp_path / "state.db")
    quiet = [NodeId("ble", f"A4:C1:38:00:01:{i:02X}") for i in range(3)]
    for node in (*quiet, GONE):
        NodeStore(conn).pair(PairedNode(node, "n", "bthome"))
    store, clock = HealthStore(conn), Clock()
    policy = HealthPolicy(nodes={GONE: SAVE_EVERY / 2})
    first = HealthMonitor(policy, clock=clock, monotonic=clock, saved=store.load())
    for node in (*quiet, GONE):
        first.add(node)
    clock.now += SAVE_EVERY
    first.expire()  # GONE was never heard: unavailable
    shown = first.health(quiet[0])
    store.save_now(first.unsaved(everything=True))  # the clean stop
    first.stop()
    assert conn.execute("SELECT count(*) FROM node_health").fetchone() == (4,), "every node kept"

    after = HealthMonitor(policy, clock=clock, monotonic=clock, saved=store.load())
    for node in (*quiet, GONE):
        after.add(node)
    healths = [after.health(node) for node in quiet]
    assert healths == [shown] * len(quiet)
    assert all(h is healths[0] for h in healths), "one health for all unheard nodes"
    gone = after.health(GONE)
    assert gone is not None and gone.errors == (UNREACHABLE,)
    after.stop()


def test_a_node_starts_with_the_own_error_codes_of_its_last_report_of_them() -> None:
    """Its last values hold, per /3/0/11 instance, the latest value said: an instance that its
    last report no longer has (the fault it had is over) is older, and not taken."""
    health = HealthMonitor()
    errors = [Path.parse(f"/3/0/11/{i}") for i in range(2)]
    values = {
        errors[0]: Record(errors[0], 2, 1_700_000_010.0),
        errors[1]: Record(errors[1], 5, 1_700_000_000.0),
    }
    HealthFeed(health, lambda _: None).node_added(
        LiveNode(PairedNode(NODE, "n", "bthome"), values=values)
    )
    shown = health.health(NODE)
    assert shown is not None and shown.errors == (2,)


def test_a_saved_health_comes_back_as_it_was_field_by_field(tmp_path: FsPath) -> None:
    """``save`` binds each field as it is (``available`` as an int, issue 17): what ``load``
    gives back is the same health, ``available`` a bool again, a missing value None."""
    conn = connect(tmp_path / "state.db")
    for node in (NODE, GONE):
        NodeStore(conn).pair(PairedNode(node, "n", "bthome"))
    store = HealthStore(conn)
    kept = {
        NODE: SavedHealth(False, 1_700_000_000.5, -71, 200, 15, 2, "unreachable", 30.0),
        GONE: SavedHealth(True, 1_700_000_001.0, None, None, None, 0, None, 60.0),
    }
    store.save_now(kept)
    back = HealthStore(connect(tmp_path / "state.db")).load()
    assert back == kept
    assert [type(h.available) for h in back.values()] == [bool, bool]
