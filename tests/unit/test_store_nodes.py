"""Paired nodes and their stable IDs (bridged.store.nodes, bridged.store.database)."""

from __future__ import annotations

import contextlib
import os
import pickle
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridged.store.database import DatabaseError, connect
from bridged.store.nodes import NodeStore
from bridged.transports.nodes import NodeId, NodeIdError, PairedNode

BLE = NodeId("ble", "A4:C1:38:00:11:22")
OTHER = NodeId("ble", "A4:C1:38:00:11:33")
RADIO = NodeId("802154", "00124b0001020304")


@pytest.fixture
def store(tmp_path: Path) -> NodeStore:
    return NodeStore(connect(tmp_path / "state.db"))


def test_node_id_round_trips_through_text() -> None:
    assert NodeId.parse("ble:A4:C1:38:00:11:22") == BLE
    assert str(RADIO) == "802154:00124b0001020304"


def test_a_node_id_keys_a_mapping_after_pickling_in_another_process() -> None:
    """A node id keeps its hash (issue 17): one pickled by a process whose strings hash
    otherwise (another PYTHONHASHSEED) still finds its node here."""
    code = (
        "import pickle, sys; from bridged.transports.nodes import NodeId; "
        "sys.stdout.buffer.write(pickle.dumps(NodeId('ble', 'A4:C1:38:00:11:22')))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)
    theirs = pickle.loads(out.stdout)
    assert {BLE: "kitchen"}[theirs] == "kitchen"
    assert theirs == BLE and hash(theirs) == hash(BLE)


@pytest.mark.parametrize("text", ["", "ble", "ble:", "BLE:x", ":x", "ble:a b", "b-le:x"])
def test_bad_node_ids_are_refused(text: str) -> None:
    with pytest.raises(NodeIdError):
        NodeId.parse(text)


def test_pair_get_list_unpair(store: NodeStore) -> None:
    paired = store.pair(PairedNode(BLE, "kitchen", "bthome", options={"interval": 60}))
    assert paired.paired_at > 0
    assert store.get(BLE) == paired
    store.pair(PairedNode(RADIO, "door", "lwm2m", sleepy=True))
    assert [n.id for n in store.nodes()] == [RADIO, BLE]
    assert store.unpair(BLE)
    assert not store.unpair(BLE)
    assert store.get(BLE) is None


def test_pairing_again_updates_but_keeps_the_pairing_time(store: NodeStore) -> None:
    first = store.pair(PairedNode(BLE, "kitchen", "bthome"))
    again = store.pair(PairedNode(BLE, "hall", "bthome", paired_at=first.paired_at + 100))
    assert again.name == "hall"
    assert again.paired_at == first.paired_at


def test_instance_ids_are_the_lowest_free_and_stable(store: NodeStore) -> None:
    store.reserve_instance(3303, 0)  # the gateway's own
    assert store.instance_id(BLE, 3303) == 1
    assert store.instance_id(OTHER, 3303) == 2
    assert store.instance_id(BLE, 3303, node_instance=1) == 3
    assert store.instance_id(BLE, 3304) == 0
    assert store.instance_id(BLE, 3303) == 1


def test_ids_survive_unpairing_and_pairing_again(store: NodeStore) -> None:
    store.pair(PairedNode(BLE, "kitchen", "bthome"))
    iid, prefix = store.instance_id(BLE, 3303), store.prefix(BLE)
    store.unpair(BLE)
    assert store.instance_id(OTHER, 3303) != iid
    assert store.prefix(OTHER) != prefix
    store.pair(PairedNode(BLE, "kitchen", "bthome"))
    assert (store.instance_id(BLE, 3303), store.prefix(BLE)) == (iid, prefix)


def test_ids_survive_a_restart(tmp_path: Path) -> None:
    first = NodeStore(connect(tmp_path / "state.db"))
    ids = [first.instance_id(NodeId("ble", f"N{i}"), 3303) for i in range(5)]
    prefixes = [first.prefix(NodeId("ble", f"N{i}")) for i in range(5)]
    again = NodeStore(connect(tmp_path / "state.db"))
    assert [again.instance_id(NodeId("ble", f"N{i}"), 3303) for i in range(5)] == ids
    assert [again.prefix(NodeId("ble", f"N{i}")) for i in range(5)] == prefixes
    assert prefixes == ["dev0", "dev1", "dev2", "dev3", "dev4"]


def test_a_full_object_reuses_the_ids_of_unpaired_nodes_oldest_first(store: NodeStore) -> None:
    conn = store._conn
    conn.executemany(
        "INSERT INTO instance_ids VALUES (?, 3303, 0, ?)",
        [(f"ble:N{i}", i) for i in range(65535)],
    )
    store.pair(PairedNode(NodeId("ble", "N0"), "kept", "bthome"))
    assert store.instance_id(BLE, 3303) == 1  # N0 is paired: N1 is the oldest unpaired one
    with pytest.raises(OverflowError):
        conn.execute("DELETE FROM instance_ids WHERE node_id != ?", ("ble:N0",))
        conn.executemany(
            "INSERT INTO instance_ids VALUES ('', 3303, ?, ?)",
            [(i, i) for i in range(1, 65535)],
        )
        store.instance_id(OTHER, 3303)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 2)), max_size=40))
def test_allocated_ids_are_unique_per_object_and_stable(
    requests: list[tuple[int, int]],
) -> None:
    store = NodeStore(connect(":memory:"))
    seen: dict[tuple[int, int], int] = {}
    for node, inst in requests:
        iid = store.instance_id(NodeId("ble", f"N{node}"), 3303, inst)
        assert seen.setdefault((node, inst), iid) == iid
    assert len(set(seen.values())) == len(seen)


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(DatabaseError, match=r"state\.db.*newer"):
        connect(db)


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseError, match=r"state\.db"):
        connect(db)


def test_the_database_runs_in_wal_mode(tmp_path: Path) -> None:
    conn = connect(tmp_path / "state.db")
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def _vm_steps(store: NodeStore, allocate: Callable[[], object]) -> int:
    """How many SQLite virtual-machine instructions ``allocate`` runs (in hundreds): a measure
    of the work a query does that no machine load changes."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    store._conn.set_progress_handler(count, 100)
    try:
        allocate()
    finally:
        store._conn.set_progress_handler(None, 0)
    return steps


def test_allocating_an_id_does_not_walk_every_id_held(store: NodeStore) -> None:
    """A first start after pairing thousands of nodes allocates all their IDs: each allocation
    must cost the same whatever is held already (it was a walk over every held ID, and the
    start quadratic: 12 s for 5,000 nodes)."""
    ten = range(10)
    few = _vm_steps(store, lambda: [store.instance_id(NodeId("ble", f"A{i}"), 3303) for i in ten])
    for i in range(3000):
        store.instance_id(NodeId("ble", f"B{i}"), 3303)
        store.prefix(NodeId("ble", f"B{i}"))
    many = _vm_steps(store, lambda: [store.instance_id(NodeId("ble", f"C{i}"), 3303) for i in ten])
    assert many <= 2 * few + 10, (few, many)
    prefixes = _vm_steps(store, lambda: [store.prefix(NodeId("ble", f"C{i}")) for i in ten])
    assert prefixes <= 2 * few + 10, (few, prefixes)


def test_a_nodes_ids_are_allocated_in_one_transaction(store: NodeStore) -> None:
    """A first start allocates every instance of thousands of nodes: one commit per node, not
    one per instance; IDs already held cost no statement at all."""
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    keys = [(3303, 0), (3304, 0), (3303, 1)]
    ids = store.instance_ids(BLE, keys)
    assert ids == {(3303, 0): 0, (3304, 0): 0, (3303, 1): 1}
    assert statements.count("COMMIT") == 1
    statements.clear()
    assert store.instance_ids(BLE, keys) == ids
    assert statements == []
    store._conn.set_trace_callback(None)
    assert NodeStore(store._conn).instance_ids(BLE, keys) == ids


def test_a_nodes_equal_ids_are_one_int_allocated_or_read_back(store: NodeStore) -> None:
    """Nodes of one kind get the same instance ID in each object: the gateway keeps one int for
    them, not one per instance (issue 17), whether the IDs were just allocated or read back."""
    for i in range(300):
        store.instance_ids(NodeId("ble", f"N{i}"), [(3303, 0), (3304, 0)])
    keys = [(3303, 0), (3304, 0), (3311, 0)]
    for ids in (store.instance_ids(BLE, keys), NodeStore(store._conn).instance_ids(BLE, keys)):
        assert ids == {(3303, 0): 300, (3304, 0): 300, (3311, 0): 0}
        assert ids[(3303, 0)] is ids[(3304, 0)]


def test_ids_allocated_together_are_one_commit_and_none_survives_a_failure(
    store: NodeStore,
) -> None:
    """A start exposes every paired node inside ``allocating``: one commit for all their IDs.
    A start that fails inside keeps none of them, and the store's memory of what is held
    stays true to the database."""
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    with store.allocating():
        for i in range(5):
            store.instance_ids(NodeId("ble", f"N{i}"), [(3303, 0), (3304, 0)])
            store.prefix(NodeId("ble", f"N{i}"))
    store._conn.set_trace_callback(None)
    assert statements.count("COMMIT") == 1
    with pytest.raises(RuntimeError), store.allocating():
        store.instance_id(NodeId("ble", "late"), 3303)
        store.prefix(NodeId("ble", "late"))
        raise RuntimeError("the start failed")
    assert store.instance_id(OTHER, 3303) == 5
    assert store.prefix(OTHER) == "dev5"
    assert store.instance_id(NodeId("ble", "N2"), 3304) == 2


def test_a_start_reads_the_nodes_ids_in_one_query_a_pass(store: NodeStore) -> None:
    """A start asks for each node's IDs once per listener that exposes it (its objects, then
    its health), in node order: inside ``allocating`` that is one query a pass over the nodes,
    not one per node and listener, nor one per ID it allocates (issue 17: 5,000 nodes were
    30,000 statements)."""
    nodes = [NodeId("ble", f"N{i:02d}") for i in range(20)]  # in order, as the registry's
    with store.allocating():
        for node in nodes[:10]:
            store.instance_ids(node, [(3303, 0), (3304, 0)])
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    with store.allocating():
        for node in nodes:
            store.instance_ids(node, [(3303, 0), (3304, 0)])
        for node in nodes:
            store.instance_id(node, 3300, 70000)
    store._conn.set_trace_callback(None)
    reads = [s for s in statements if s.lstrip().startswith("SELECT")]
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len(reads) == 2 + 3, reads  # one a pass over the nodes, one an object allocated in
    assert len(inserts) == 10 * 2 + 20
    fresh = NodeStore(store._conn)
    for i, node in enumerate(nodes):
        assert fresh.instance_ids(node, [(3303, 0), (3304, 0)]) == {(3303, 0): i, (3304, 0): i}
        assert fresh.instance_id(node, 3300, 70000) == i


@settings(max_examples=40, deadline=None)
@given(
    held=st.lists(st.integers(0, 40), max_size=30),
    nodes=st.integers(1, 30),
    keys=st.lists(st.sampled_from([(3303, 0), (3303, 1), (3304, 0)]), min_size=1, unique=True),
)
def test_ids_allocated_in_a_start_are_those_allocated_one_by_one(
    tmp_path_factory: pytest.TempPathFactory,
    held: list[int],
    nodes: int,
    keys: list[tuple[int, int]],
) -> None:
    """``allocating`` finds free IDs in memory: each is the lowest free one, as the query one
    allocation at a time finds, around IDs held before (reserved, or older nodes')."""
    got = []
    for batched in (False, True):
        store = NodeStore(connect(tmp_path_factory.mktemp("ids") / "state.db"))
        for i in held:
            store.reserve_instance(3303, i)
            store.instance_id(NodeId("ble", f"old{i}"), 3304)
        with store.allocating() if batched else contextlib.nullcontext():
            got.append([store.instance_ids(NodeId("ble", f"N{n}"), keys) for n in range(nodes)])
        store._conn.close()
    assert got[0] == got[1]


def test_nodes_asked_out_of_order_in_a_start_get_their_own_ids(store: NodeStore) -> None:
    """The start's reading in node order is a shortcut only: nodes asked in any order, or
    again after other nodes, get their IDs, also those allocated since."""
    nodes = [NodeId("ble", f"N{i:02d}") for i in range(12)]
    for i, node in enumerate(nodes):
        assert store.instance_id(node, 3303) == i
    order = [*nodes[7:], *nodes[:7][::-1], nodes[3], nodes[9]]
    with store.allocating():
        for node in order:
            assert store.instance_id(node, 3303) == nodes.index(node)
            store.instance_id(node, 3304)
        got = {node: store.instance_ids(node, [(3303, 0), (3304, 0)]) for node in nodes}
    fresh = NodeStore(store._conn)
    assert got == {node: fresh.instance_ids(node, [(3303, 0), (3304, 0)]) for node in nodes}
    assert sorted(ids[(3304, 0)] for ids in got.values()) == list(range(12))
