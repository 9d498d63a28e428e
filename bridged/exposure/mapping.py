"""The node path <-> upstream path mapping: the one owner of "which upstream path is this node
path, and back", in every exposure mode.

Each exposure mode shows a node's instances upstream somewhere, and ``PathMap`` is where it
says so (``show``); every part that needs to know asks it and nothing else: device
management (Read, Write, Execute, Write-Composite of a node path reach the node; see
bridged/engine/nodes.py), delivery (Send and notifications of node readings), and bridgectl.
Two owners of this fact once disagreed (a Read of a node's battery found "no value" that the
tree held), so no other module moves paths between a node and upstream.

The modes differ only in what they show, never in how it is looked up:

* instances: the node's ``/3303/0`` is the gateway's ``/3303/4`` (an instance ID from the
  node store), and its battery ``/3/0/9`` is ``/3300/x/5700`` (a ``resources`` map);
* gateway: the node's ``/3303/0`` is ``/devN/3303/0``, under its end-device prefix;
* endpoints: the node's ``/3303/0`` is ``/3303/0`` of the node's own endpoint (one map per
  endpoint).

**Resources the gateway holds itself** in a node's instance (the node's name in 5750
Application Type, the ``%`` unit of the battery, an endpoint's own /3/0 resources) are not the
node's: ``local`` answers None for them, so they are served from the tree like any of the
gateway's own resources, and a Read of the whole instance answers the node's values together
with them. When the node reports a value of such a resource itself, it becomes the node's.

**A node's own LwM2M housekeeping** (``objects.ids.HOUSEKEEPING``: its Security, Server and
Access Control objects, and OSCORE and /23, which it uses to talk to the gateway; a server
writing a node's /1/0/1 would change its lifetime toward the gateway) is never shown upstream in
any mode: ``exposable`` says which of a node's instances may be.

**The objects where a mode shows nodes' instances** (``holds_nodes``) are the nodes': their
instances come with pairing and go with unpairing, so nobody creates one there (a server's
Create is 4.05, ``bridged/engine/nodes.py`` ``node_owned``). That is a node's whole tree in the
gateway mode (``/devN/...``) and in the endpoints mode (a node's endpoint), and in the
instances mode every object of the gateway's but the housekeeping ones: their instance IDs are
the node store's, so an instance created there would stand for no sensor and take the ID the
next node's instance is given (which then could not be shown). The gateway mode's own,
unprefixed objects are the gateway's.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, NamedTuple

from bridged.objects.ids import HOUSEKEEPING
from bridged.objects.paths import Level, Path
from bridged.objects.values import Record
from bridged.transports.nodes import NodeId

_KEYS: dict[tuple[int, int], tuple[int, int]] = {}


def exposable(objects: Mapping[int, Iterable[int]]) -> set[tuple[int, int]]:
    """The instances of a node's object list that an exposure may show upstream, as (object,
    node instance) keys that are one tuple per value for all nodes: thousands of nodes have
    the same few, and every ``Shown.local`` and the paths built on it keep them."""
    return {
        _KEYS.setdefault((oid, iid), (oid, iid))
        for oid, iids in objects.items()
        if oid not in HOUSEKEEPING
        for iid in iids
    }


NOTHING: frozenset[Any] = frozenset()
"""One empty set for every empty one the mapping and the mirrors hold: CPython makes a new
one, of 216 bytes, at each ``frozenset()`` (a mirror's was 2 MB of 10,000 node endpoints)."""


class NodePath(NamedTuple):
    """A node and a path in the node's own tree."""

    node: NodeId
    path: Path


@dataclass(frozen=True, slots=True)
class Shown:
    """How a node instance is shown upstream (``PathMap.show`` says whose).

    ``local`` is the instance in the node's tree, ``upstream`` the upstream instance path
    (with the end device's prefix, if any). ``resources`` maps upstream resource IDs to the
    node's, for an instance shown under other resource IDs (the battery); None means the same
    IDs. ``held`` are the upstream resource IDs the gateway fills itself (module docstring).
    It names no node, so the node endpoints of one kind of node share theirs (``_one_of_all``:
    three of 72 bytes and their tuple were 280 bytes of each of 10,000, issue 17)."""

    local: tuple[int, int]
    upstream: Path
    resources: Mapping[int, int] | None = None
    held: frozenset[int] = NOTHING

    def to_local(self, upstream: Path) -> Path | None:
        """The node-local path of ``upstream`` (this instance or deeper), None if the gateway
        holds it. The instance of a single mapped resource is that resource."""
        rest = upstream.ids[2:]
        if rest and rest[0] in self.held:
            return None
        if self.resources is None:
            return Path((*self.local, *rest))
        if not rest:
            mapped = list(self.resources.values())
            return Path((*self.local, mapped[0])) if len(mapped) == 1 else Path(self.local)
        rid = self.resources.get(rest[0])
        return None if rid is None else Path((*self.local, rid, *rest[1:]))

    def to_upstream(self, local: Path) -> Path | None:
        """The upstream path of the node-local ``local`` (this instance or deeper), None for
        a resource not shown."""
        rest = local.ids[2:]
        if self.resources is None:
            upstream = self.upstream
            if upstream.prefix is None and local.prefix is None and upstream.ids == self.local:
                # Shown where it is (a node endpoint's): the node's own path, which its
                # records hold already, keys the tree's time of measurement too.
                return local
            return Path.derived((*upstream.ids, *rest), upstream.prefix)
        if not rest:
            return None
        rid = next((up for up, mine in self.resources.items() if mine == rest[0]), None)
        return (
            None
            if rid is None
            else Path((*self.upstream.ids, rid, *rest[1:]), self.upstream.prefix)
        )


"""The instances of a node that shows none."""

_SHARED = 1024
"""How many of the most recent ``Shown`` and tuples of them are kept to be shared: the nodes of
a kind (the endpoints mode) show the same few; the modes that show each node at paths of its
own gain nothing, and keep no more than these."""


@functools.lru_cache(maxsize=_SHARED)
def _one_shown(local: tuple[int, int], upstream: Path, held: frozenset[int]) -> Shown:
    return Shown(local, upstream, held=held)


@functools.lru_cache(maxsize=_SHARED)
def _one_tuple(shown: tuple[Shown, ...]) -> tuple[Shown, ...]:
    return shown


def _one_of_all(shown: Shown) -> Shown:
    """One ``Shown`` for all equal ones (of those with no map of resources, which all are but
    the instances mode's battery)."""
    return (
        shown
        if shown.resources is not None
        else _one_shown(shown.local, shown.upstream, shown.held)
    )


class _OneNode(MutableMapping[NodeId, tuple["Shown", ...]]):
    """``PathMap._down`` of a map of one node's instances (a node endpoint's): that node's
    tuple, without a dict (224 bytes of each of the endpoints mode's 10,000, issue 17)."""

    __slots__ = ("_node", "_shown")

    def __init__(self, node: NodeId) -> None:
        self._node = node
        self._shown: tuple[Shown, ...] | None = None

    def get(self, node: NodeId, default: Any = None) -> Any:
        """As a dict's (every reading asks: no lookup through ``__getitem__``)."""
        return self._shown if self._shown is not None and node == self._node else default

    def __getitem__(self, node: NodeId) -> tuple[Shown, ...]:
        if self._shown is None or node != self._node:
            raise KeyError(node)
        return self._shown

    def __setitem__(self, node: NodeId, shown: tuple[Shown, ...]) -> None:
        if node != self._node:
            raise ValueError(f"the map of {self._node}'s instances cannot show {node}'s")
        self._shown = shown

    def __delitem__(self, node: NodeId) -> None:
        if self._shown is None or node != self._node:
            raise KeyError(node)
        self._shown = None

    def __iter__(self) -> Iterator[NodeId]:
        return iter(() if self._shown is None else (self._node,))

    def __len__(self) -> int:
        return 0 if self._shown is None else 1


def changes() -> int:
    """A count that moves whenever any ``PathMap`` shows or hides an instance: an answer of
    ``upstream`` kept since the count last moved is still the answer (delivery keeps each
    node path's upstream path from one batch to the next, bridged/delivery.py). One count for
    every map, not one each: the maps change with pairing and a node's objects, rarely, and
    a map made for a node endpoint starts with a ``show`` that moves it."""
    return PathMap.changes


class PathMap:
    """The node instances an exposure shows, looked up both ways; with ``node``, only that
    node's (a node endpoint's map: no dict of nodes). Slotted: every node endpoint has one."""

    __slots__ = ("_down", "_prefixed", "_up")

    changes: ClassVar[int] = 0
    """Shows and hides of every map so far (``changes``)."""

    def __init__(self, *, prefixed: bool = False, node: NodeId | None = None) -> None:
        self._prefixed = prefixed
        """Whether nodes are shown under end-device prefixes (the gateway mode) rather than in
        the unprefixed tree (the other modes)."""
        self._up: dict[Path, tuple[NodeId, Shown]] | None = None
        """The shown instances by upstream path, made at the first ``local`` (most of 10,000
        node endpoints' maps, one each, are never asked: it was 200 bytes of each)."""
        self._down: MutableMapping[NodeId, tuple[Shown, ...]] = (
            {} if node is None else _OneNode(node)
        )
        """Each node's shown instances, in node-local order: a tuple, as a node has a few and a
        map each was about 2 MB of a gateway with 10,000 nodes."""

    def show(self, node: NodeId, shown: Shown) -> None:
        """``node``'s instance ``shown.local`` is shown at ``shown.upstream``."""
        shown = _one_of_all(shown)
        self.hide(node, shown.local)
        PathMap.changes += 1
        if self._up is not None:
            self._up[shown.upstream] = (node, shown)
        mine = tuple(sorted((*self._down.get(node, ()), shown), key=lambda s: s.local))
        self._down[node] = _one_tuple(mine) if all(s.resources is None for s in mine) else mine

    def hide(self, node: NodeId, local: tuple[int, int]) -> Shown | None:
        """Stop showing the node's instance ``local``; returns how it was shown."""
        shown = self.shown(node, local)
        if shown is not None:
            PathMap.changes += 1
            if self._up is not None:
                del self._up[shown.upstream]
            rest = tuple(s for s in self._down[node] if s is not shown)
            if rest:
                self._down[node] = rest
            else:
                del self._down[node]
        return shown

    def hide_node(self, node: NodeId) -> list[Shown]:
        """Stop showing any of ``node``'s instances; returns how they were shown."""
        gone = list(self._down.pop(node, ()))
        if gone:
            PathMap.changes += 1
        if self._up is not None:
            for shown in gone:
                del self._up[shown.upstream]
        return gone

    def shown(self, node: NodeId, local: tuple[int, int]) -> Shown | None:
        for shown in self._down.get(node, ()):
            if shown.local == local:
                return shown
        return None

    def instances(self, node: NodeId) -> list[Shown]:
        """How ``node``'s instances are shown, in node-local order."""
        return list(self._down.get(node, ()))

    def upstream(self, node: NodeId, local: Path) -> Path | None:
        """The upstream path of ``node``'s node-local path ``local`` (an instance or deeper),
        None when it is not shown."""
        shown = self._shown_at(node, local)
        return None if shown is None else shown.to_upstream(local)

    def _shown_at(self, node: NodeId, local: Path) -> Shown | None:
        """How the instance of ``local`` (an instance path or deeper) is shown. Every reading
        asks: one lookup, nothing built for a node not shown."""
        ids = local.ids
        if len(ids) < 2:
            return None
        return self.shown(node, (ids[0], ids[1]))

    def local(self, upstream: Path) -> NodePath | None:
        """The node and node-local path behind ``upstream`` (an instance or deeper), None
        for the gateway's own paths (and the resources it holds in a node's instance)."""
        if upstream.level < Level.INSTANCE:
            return None
        if self._up is None:
            self._up = {s.upstream: (n, s) for n, shown in self._down.items() for s in shown}
        found = self._up.get(upstream.truncate(Level.INSTANCE))
        if found is None:
            return None
        node, shown = found
        path = shown.to_local(upstream)
        return None if path is None else NodePath(node, path)

    def holds_nodes(self, upstream: Path) -> bool:
        """Whether the object of ``upstream`` is one this mode shows nodes' instances in (the
        module docstring): nothing is created there but by pairing."""
        return (
            upstream.level >= Level.OBJECT
            and upstream.ids[0] not in HOUSEKEEPING
            and (upstream.prefix is not None) == self._prefixed
        )

    def placed(
        self, node: NodeId, records: Sequence[Record], *, claim: bool = True
    ) -> list[tuple[tuple[int, ...], Record]]:
        """Where ``node``'s ``records`` (readings or values, at node-local paths) are shown:
        for each shown resource, its upstream path's IDs (its prefix is that of the tree the
        instance is shown in) and the record. With ``claim`` a resource the gateway held is
        the node's from now on (``reported``), else it is placed as ``upstream`` places it.

        One call for a report's records, with the common case inline (an instance shown
        under the node's own resource IDs, the resource not held: its IDs and the instance's
        upstream IDs, or the node's own where it is shown at them): ``reported``,
        ``Shown.to_upstream`` and a ``Path`` built were three calls per reading, and the tree
        needs a path's IDs only (``ObjectTree.put``). Any other case is ``reported`` or
        ``upstream``'s."""
        mine = self._down.get(node, ())
        placed: list[tuple[tuple[int, ...], Record]] = []
        for r in records:
            ids = r.path.ids
            if len(ids) < 3:  # an instance or an object has no value to set
                continue
            instance = (ids[0], ids[1])
            for shown in mine:  # ``shown``, inline
                if shown.local == instance:
                    break
            else:
                continue
            if shown.resources is None and ids[2] not in shown.held:
                up = shown.upstream.ids
                placed.append((ids if up == instance else (*up, *ids[2:]), r))
                continue
            upstream = self.reported(node, r.path) if claim else self.upstream(node, r.path)
            if upstream is not None:
                placed.append((upstream.ids, r))
        return placed

    def reported(self, node: NodeId, local: Path) -> Path | None:
        """The node reported ``local`` (a resource or deeper): a resource the gateway held
        there is the node's now. Returns its upstream path (``upstream``), None when not
        shown."""
        ids = local.ids
        if len(ids) < 3:
            return None
        instance = (ids[0], ids[1])
        for shown in self._down.get(node, ()):  # ``shown``, inline: every reading asks
            if shown.local == instance:
                break
        else:
            return None
        if shown.resources is None and local.ids[2] in shown.held:
            shown = replace(shown, held=shown.held - {local.ids[2]})
            self.show(node, shown)
        return shown.to_upstream(local)
