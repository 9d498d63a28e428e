"""Paired nodes and the IDs they are known by upstream, which never change once given.

A LwM2M server keys everything it stores (dashboards, observations, history) on paths, so a
node must keep its instance IDs (instances mode), its /25 instance and prefix (gateway mode)
across restarts and across being unpaired and paired again. Allocations are therefore rows of
their own that outlive the pairing: re-pairing a node finds its old IDs. Only when an object's
65,535 instance IDs are all taken are the IDs of nodes that are no longer paired reused, oldest
allocation first.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import MappingProxyType
from typing import Any

from bridged.objects.paths import MAX_ID
from bridged.transports.nodes import NodeId, PairedNode

from .database import transaction

_LOWEST_FREE = """
    SELECT :low WHERE :low <= :max AND NOT EXISTS (
           SELECT 1 FROM instance_ids WHERE object_id = :o AND instance_id = :low)
    UNION ALL
    SELECT a.instance_id + 1 FROM instance_ids a
     WHERE a.object_id = :o AND a.instance_id >= :low AND a.instance_id < :max AND NOT EXISTS (
           SELECT 1 FROM instance_ids b
            WHERE b.object_id = :o AND b.instance_id = a.instance_id + 1)
    ORDER BY 1 LIMIT 1
"""
"""The lowest instance ID of object ``:o`` from ``:low`` up that nobody holds: ``:low``, or
the first gap after a taken one. Searching from the lowest ID found free before (IDs are never
given back, see ``NodeStore._low``) keeps an allocation from walking every ID held so far."""


MAX_NAME = 64
"""The longest node name, in characters: it is shown in tables and sent upstream as the
node's Application Type (5750)."""


def check_name(name: str) -> str:
    """``name`` if it can be a node's name; ValueError saying why not."""
    if len(name) > MAX_NAME:
        raise ValueError(f"a node name is at most {MAX_NAME} characters, not {len(name)}")
    if not name.isprintable():
        raise ValueError("a node name is printable text (no control characters)")
    return name


class NodeStore:
    """The ``nodes``, ``instance_ids`` and ``prefixes`` tables of the state database."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._low: dict[int, int] = {}
        """Per object, an instance ID below which every ID is held: where the search for a
        free one starts. IDs are held for good (a reclaimed one goes straight to another
        node), so it only grows, and allocating N IDs costs N short searches, not N**2."""
        self._prefix_low = 0
        """The same for prefixes: every ``dev<n>`` below it is held."""
        self._node_ids: tuple[str, dict[tuple[int, int], int]] | None = None
        """The last node asked about and its IDs (``instance_id``): the exposure asks for each
        of a node's instances in turn, which is then one query per node."""

        self._batched = False
        """Inside ``allocating``: writes join its one transaction."""
        self._scan: _NodeOrderScan | None = None
        """Inside ``allocating``: the nodes' IDs read in node order (``_ids_of``), where a
        start asked once per node for each listener that exposes it (two queries a node)."""
        self._above_low: dict[int, deque[int]] = {}
        """Inside ``allocating``: per object, the IDs held from ``_low`` up, in order, read once
        (``_lowest_free``): a start's thousands of allocations then cost no query each."""

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return nullcontext(self._conn) if self._batched else transaction(self._conn)

    @contextmanager
    def allocating(self) -> Iterator[None]:
        """Make every write inside (the IDs a start allocates for thousands of nodes) one
        transaction: one commit, not one per node; the nodes' IDs are read a pass at a time
        (``_scan``) and free IDs found in memory (``_above_low``). When it fails, nothing
        allocated inside is kept, in the database or in this store's memory of it."""
        with transaction(self._conn):
            self._batched = True
            self._scan = _NodeOrderScan(self._conn)
            try:
                yield
            except BaseException:
                self._low, self._prefix_low, self._node_ids = {}, 0, None
                raise
            finally:
                self._batched = False
                self._forget_scans()

    # -- pairing -----------------------------------------------------------------------------

    def pair(self, node: PairedNode) -> PairedNode:
        """Add or update a paired node; returns it with its pairing time."""
        stored = PairedNode(
            node.id,
            node.name,
            node.profile,
            node.sleepy,
            node.paired_at or time.time(),
            dict(node.options),
        )
        with self._transaction() as c:
            c.execute(
                "INSERT INTO nodes(id, name, profile, sleepy, paired_at, options) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET name=excluded.name, "
                "profile=excluded.profile, sleepy=excluded.sleepy, options=excluded.options",
                (
                    str(stored.id),
                    stored.name,
                    stored.profile,
                    int(stored.sleepy),
                    stored.paired_at,
                    json.dumps(stored.options, sort_keys=True),
                ),
            )
        return self.get(stored.id) or stored

    def unpair(self, node_id: NodeId) -> bool:
        """Forget that the node is paired, its last values and health; its IDs stay reserved for a
        re-pairing."""
        with self._transaction() as c:
            cur = c.execute("DELETE FROM nodes WHERE id = ?", (str(node_id),))
            c.execute("DELETE FROM last_values WHERE node_id = ?", (str(node_id),))
            c.execute("DELETE FROM node_health WHERE node_id = ?", (str(node_id),))
        return cur.rowcount > 0

    def objects(self) -> dict[NodeId, dict[int, list[int]]]:
        """Every paired node's objects and their node-local instances, as last reported
        (empty for a node not heard since it was paired). Nodes that reported the same objects
        share one mapping (``shared_objects``)."""
        out = {}
        shared: dict[str, dict[int, list[int]]] = {}
        for node, text in self._conn.execute("SELECT id, objects FROM nodes"):
            objects = shared.get(text)
            if objects is None:
                parsed = json.loads(text).items()
                objects = shared[text] = shared_objects({int(o): ii for o, ii in parsed})
            out[NodeId.parse(node)] = objects
        return out

    def set_objects(self, node_id: NodeId, objects: Mapping[int, Sequence[int]]) -> None:
        """Remember the node's objects (a paired node's; nothing happens for another)."""
        text = json.dumps({str(oid): sorted(iids) for oid, iids in sorted(objects.items())})
        with self._transaction() as c:
            c.execute("UPDATE nodes SET objects = ? WHERE id = ?", (text, str(node_id)))

    def sessions(self) -> dict[NodeId, dict[str, Any]]:
        """What each paired node's transport asked to keep of it (``set_session``)."""
        out = {}
        for node, text in self._conn.execute("SELECT id, session FROM nodes"):
            session = json.loads(text)
            if session is not None:
                out[NodeId.parse(node)] = session
        return out

    def set_session(self, node_id: NodeId, session: Mapping[str, Any] | None) -> None:
        """Keep ``session`` (JSON-able) for a paired node, None forgets it; it goes when the
        node is unpaired."""
        text = json.dumps(None if session is None else dict(session), sort_keys=True)
        with self._transaction() as c:
            c.execute("UPDATE nodes SET session = ? WHERE id = ?", (text, str(node_id)))

    def get(self, node_id: NodeId) -> PairedNode | None:
        row = self._conn.execute(
            "SELECT id, name, profile, sleepy, paired_at, options FROM nodes WHERE id = ?",
            (str(node_id),),
        ).fetchone()
        return None if row is None else _node(row)

    def nodes(self) -> list[PairedNode]:
        rows = self._conn.execute(
            "SELECT id, name, profile, sleepy, paired_at, options FROM nodes ORDER BY id"
        )
        return [_node(r) for r in rows]

    # -- stable IDs --------------------------------------------------------------------------

    def instance_id(self, node_id: NodeId, object_id: int, node_instance: int = 0) -> int:
        """The gateway instance ID of the node's ``/object_id/node_instance``, allocated on first
        use (the lowest free ID) and the same ever after."""
        key = (object_id, node_instance)
        return self.instance_ids(node_id, [key])[key]

    def instance_ids(
        self, node_id: NodeId, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], int]:
        """``instance_id`` of each of the node's (object, node instance) ``keys``: those not
        allocated yet are, in one transaction (a first start allocates thousands)."""
        node = str(node_id)
        ids = self._ids_of(node)
        missing = [key for key in keys if key not in ids]
        if not missing:
            return {key: ids[key] for key in keys}
        low = dict(self._low)  # taken on only once the transaction is committed
        allocated: dict[tuple[int, int], int] = {}
        held = {i: i for i in ids.values()}  # one int per ID value (``_ids_of``)
        reclaimed = False
        with self._transaction() as c:
            for object_id, node_instance in missing:
                lowest = self._lowest_free(c, object_id, low.get(object_id, 0))
                if lowest is None:
                    free, reclaimed = self._reclaim(c, object_id), True
                else:
                    free = held.setdefault(lowest, lowest)
                    low[object_id] = free + 1
                c.execute(
                    "INSERT INTO instance_ids(node_id, object_id, node_instance, instance_id) "
                    "VALUES (?, ?, ?, ?)",
                    (node, object_id, node_instance, free),
                )
                allocated[(object_id, node_instance)] = free
        self._low = low
        ids.update(allocated)
        found = {key: ids[key] for key in keys}
        if reclaimed:  # a reclaimed ID was another node's
            self._node_ids = None
            self._forget_scans()
            self._scan = _NodeOrderScan(self._conn)
        return found

    def _forget_scans(self) -> None:
        """Let go of what ``allocating`` read ahead (its query ended before it commits)."""
        if self._scan is not None:
            self._scan.close()
        self._scan, self._above_low = None, {}

    def _lowest_free(self, c: sqlite3.Connection, object_id: int, low: int) -> int | None:
        """The lowest ID of ``object_id`` from ``low`` up that nobody holds (None: none is
        left); inside ``allocating`` from the held IDs read once (``_above_low``), which stay
        true as IDs below ``low`` are never given back and the allocation holds the one found."""
        if not self._batched:
            row = c.execute(_LOWEST_FREE, {"o": object_id, "low": low, "max": MAX_ID}).fetchone()
            return None if row is None else int(row[0])
        held = self._above_low.get(object_id)
        if held is None:
            rows = c.execute(
                "SELECT instance_id FROM instance_ids WHERE object_id = ? AND instance_id >= ? "
                "ORDER BY instance_id",
                (object_id, low),
            )
            held = self._above_low[object_id] = deque(i for (i,) in rows)
        while held and held[0] <= low:
            if held.popleft() == low:
                low += 1
        if low > MAX_ID:
            return None
        held.appendleft(low)  # the caller holds it now
        return low

    def _ids_of(self, node: str) -> dict[tuple[int, int], int]:
        """Every instance ID held for ``node``, by (object, node instance)."""
        if self._node_ids is not None and self._node_ids[0] == node:
            return self._node_ids[1]
        if self._scan is not None:
            self._node_ids = (node, self._scan.ids(node))
        else:
            rows = self._conn.execute(
                "SELECT object_id, node_instance, instance_id FROM instance_ids WHERE node_id = ?",
                (node,),
            )
            # One int object per ID value: nodes of one kind, allocated together, have the
            # same ID in each of their objects, and every ID above 256 is an int of its own
            # that the tree and the path map keep (0.6 MB of a gateway with 10,000 nodes of
            # 4 instances, issue 17).
            held: dict[int, int] = {}
            self._node_ids = (node, {(o, n): held.setdefault(i, i) for o, n, i in rows})
        return self._node_ids[1]

    def reserve_instance(self, object_id: int, instance_id: int) -> None:
        """Keep ``instance_id`` of ``object_id`` from ever being given to a node: for the
        gateway's own instances (its /3/0, a configured /3303/0, ...)."""
        self._node_ids = None
        if self._batched:
            self._forget_scans()
            self._scan = _NodeOrderScan(self._conn)
        with self._transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO instance_ids(node_id, object_id, node_instance, "
                "instance_id) VALUES ('', ?, ?, ?)",
                (object_id, instance_id, instance_id),
            )

    def prefix(self, node_id: NodeId) -> str:
        """The node's LwM2M Gateway prefix (``dev0``, ``dev1``, ...), allocated once."""
        row = self._conn.execute(
            "SELECT prefix FROM prefixes WHERE node_id = ?", (str(node_id),)
        ).fetchone()
        if row is not None:
            return str(row[0])
        with self._transaction() as c:
            n = self._prefix_low
            while c.execute("SELECT 1 FROM prefixes WHERE prefix = ?", (f"dev{n}",)).fetchone():
                n += 1
            c.execute(
                "INSERT INTO prefixes(node_id, prefix) VALUES (?, ?)", (str(node_id), f"dev{n}")
            )
        self._prefix_low = n + 1
        return f"dev{n}"

    def _reclaim(self, c: sqlite3.Connection, object_id: int) -> int:
        """Take back the oldest ID of ``object_id`` held for a node that is no longer paired."""
        row = c.execute(
            "SELECT rowid, instance_id FROM instance_ids WHERE object_id = ? AND node_id != '' "
            "AND node_id NOT IN (SELECT id FROM nodes) ORDER BY rowid LIMIT 1",
            (object_id,),
        ).fetchone()
        if row is None:
            raise OverflowError(f"object {object_id} has no instance ID left for another node")
        c.execute("DELETE FROM instance_ids WHERE rowid = ?", (row[0],))
        return int(row[1])


class _NodeOrderScan:
    """The nodes' instance IDs read in node order by one query (inside
    ``NodeStore.allocating``): a start asks for every paired node's in the registry's order,
    which is theirs, once per listener that exposes them (their objects, their health), and a
    pass is then one query, not one per node. A node asked before the last one starts a new
    query from it: out of order, each costs what a query of its own did. One row is held
    ahead, not every node's IDs (3.5 MB of a start with 10,000 nodes, kept by the allocator
    once freed)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._cursor: sqlite3.Cursor | None = None
        self._ahead: tuple[str, int, int, int] | None = None
        self._last: str | None = None

    def ids(self, node: str) -> dict[tuple[int, int], int]:
        """The IDs held for ``node``, by (object, node instance), one int per ID value
        (``NodeStore._ids_of``)."""
        if self._cursor is None or self._last is None or node <= self._last:
            self.close()
            self._cursor = self._conn.execute(
                "SELECT node_id, object_id, node_instance, instance_id FROM instance_ids "
                "WHERE node_id >= ? ORDER BY node_id",
                (node,),
            )
            self._ahead = self._cursor.fetchone()
        self._last = node
        cursor = self._cursor
        while self._ahead is not None and self._ahead[0] < node:
            self._ahead = cursor.fetchone()
        held: dict[int, int] = {}
        out: dict[tuple[int, int], int] = {}
        while self._ahead is not None and self._ahead[0] == node:
            _, o, n, i = self._ahead
            out[(o, n)] = held.setdefault(i, i)
            self._ahead = cursor.fetchone()
        return out

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
        self._cursor, self._ahead = None, None


_NO_OPTIONS: Mapping[str, Any] = MappingProxyType({})
"""The options of every node paired without any (most): one read-only mapping for all."""


SHARED_OBJECT_MAPS = 256
"""Distinct object maps ``shared_objects`` keeps: kinds of node a gateway serves, with room."""


def shared_objects(objects: Mapping[int, Iterable[int]]) -> dict[int, list[int]]:
    """``objects`` (object IDs, each with its node-local instance IDs; both sorted here) as
    the one mapping every node that reported the same holds: thousands of nodes of one kind,
    each a few hundred bytes less (issue 17). It is never changed in place (``NodeRegistry``
    replaces a node's); one no longer kept here is still right, only not shared."""
    key = sorted((int(oid), tuple(sorted(map(int, ii)))) for oid, ii in objects.items())
    return _object_map(tuple(key))


@functools.lru_cache(maxsize=SHARED_OBJECT_MAPS)
def _object_map(key: tuple[tuple[int, tuple[int, ...]], ...]) -> dict[int, list[int]]:
    return {oid: list(iids) for oid, iids in key}


def _node(row: tuple[Any, ...]) -> PairedNode:
    """The paired node of a row; its profile is one string for all nodes of that profile
    (``sys.intern``): thousands of nodes have the same few."""
    options = _NO_OPTIONS if row[5] == "{}" else json.loads(row[5])
    profile = sys.intern(row[2])
    return PairedNode(NodeId.parse(row[0]), row[1], profile, bool(row[3]), float(row[4]), options)
