"""A node's objects kept in a tree of their own, at their node-local IDs.

The ``gateway`` and ``endpoints`` exposure modes both show a node as it is: its ``/3303/0``
stays ``/3303/0`` (under the node's prefix in gateway mode, in the node's own endpoint in
endpoints mode), so one mirror serves both. What the node reported last is what the tree
holds, each value with the time it was measured (also those a restarted gateway starts
from); instances come and go as the node's object list does. Instances the tree already had
(an endpoint's own /3/0, say) are filled with the node's values but never deleted.

**The node's name in 5750 Application Type**, the rule of every exposure mode (one place:
``initial_values``): an instance whose object has 5750 is created with the node's name there,
unless 5750 is the node's data:

* in the objects of ``NODE_DATA_5750``, whatever the node reported so far: 3347 Push button,
  whose 5750 (its only text resource) carries the button event type, "press" or
  "long_press", as the BLE decoders map it. A name there would be taken for an event, and
  the next event would erase it; so a button instance has no name, even before its first
  event, and a server tells whose button it is by the node's other instances, its /25
  instance or its endpoint;
* in any instance for which the node reported its own 5750 by then (a LwM2M node that sets
  it): the node's value wins.

Readings of 5750 are applied like any other, so a node that reports 5750 later replaces the
name for good.

What the mirror shows, and which resources of it the gateway fills itself (the name, an
endpoint's own /3/0 resources), it tells its ``PathMap`` (bridged/exposure/mapping.py), which
answers for the node's paths in both modes. A node's housekeeping objects are never shown
(``mapping.exposable``).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar, cast

from bridged.objects.definitions import Definitions
from bridged.objects.errors import LwM2MError
from bridged.objects.ids import Ipso, IpsoResource
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record, Value
from bridged.registry import LiveNode
from bridged.transports.nodes import NodeId

from .mapping import NOTHING, PathMap, Shown, exposable

log = logging.getLogger(__name__)


def instance_records(node: LiveNode, oid: int, iid: int) -> list[Record]:
    """The last reported single-instance resource values of the node's ``/oid/iid``, each
    with the time it was measured."""
    return [
        r for r in node.values.values() if r.path.ids[:2] == (oid, iid) and len(r.path.ids) == 3
    ]


def instance_values(node: LiveNode, oid: int, iid: int) -> list[tuple[int, Value]]:
    """The last reported single-instance resource values of the node's ``/oid/iid``."""
    return [(r.path.ids[2], r.value) for r in instance_records(node, oid, iid)]


NODE_DATA_5750 = frozenset({Ipso.PUSH_BUTTON})
"""Objects whose 5750 Application Type is node data, never the node's name (module doc)."""
HELD_NAME = frozenset({IpsoResource.APPLICATION_TYPE})
"""The ``Shown.held`` of an instance that shows the node's name: one set for all of them (a
set each was 6 MB of a gateway with 10,000 nodes)."""


def initial_values(
    definitions: Definitions, node: LiveNode, oid: int, iid: int
) -> tuple[list[tuple[int, Value]], frozenset[int]]:
    """What the node's ``/oid/iid`` is created with in any mode: its reported values, and the
    node's name in 5750 Application Type where the object has it and the node's own data does
    not fill it (see the module docstring); and the resources of those the gateway fills
    itself (``Shown.held``)."""
    values = instance_values(node, oid, iid)
    own = oid in NODE_DATA_5750 or any(rid == IpsoResource.APPLICATION_TYPE for rid, _ in values)
    if not own and IpsoResource.APPLICATION_TYPE in definitions.get(oid).resources:
        values.append((IpsoResource.APPLICATION_TYPE, node.paired.name))
        return values, HELD_NAME
    return values, NOTHING


K = TypeVar("K", bound=Hashable)

_SHARED: dict[frozenset[object], frozenset[object]] = {NOTHING: NOTHING}


def shared(keys: frozenset[K]) -> frozenset[K]:
    """One frozenset for all equal ones: nodes of one kind have the same instances and health
    resources, and a set each was 6 MB of a gateway with 10,000 nodes. The distinct sets are
    as many as the kinds of node, so none is ever dropped."""
    return cast(frozenset[K], _SHARED.setdefault(keys, keys))


_INSTANCE_PATHS: dict[tuple[int, int], Path] = {}


def _instance_path(key: tuple[int, int], prefix: str | None) -> Path:
    """The path of instance ``key`` in a tree with ``prefix``: one for all unprefixed trees
    (the node endpoints', each ``Shown.upstream`` of 10,000 of them), as many as the keys
    (``exposable``), so none is ever dropped."""
    if prefix is not None:
        return Path(key, prefix)
    path = _INSTANCE_PATHS.get(key)
    if path is None:
        path = _INSTANCE_PATHS[key] = Path(key)
    return path


class NodeMirror:
    """Keeps one node's objects in ``tree`` (whose prefix, if any, is the node's) and says
    so to ``paths``."""

    __slots__ = ("adopted", "created", "health", "paths", "tree")

    def __init__(self, tree: ObjectTree, paths: PathMap) -> None:
        self.tree = tree
        self.paths = paths
        self.created: frozenset[tuple[int, int]] = NOTHING
        """The node's instances this mirror created in the tree (``shared``, as the others)."""
        self.adopted: frozenset[tuple[int, int]] = NOTHING
        """The node's instances the tree had already: filled, never deleted."""
        self.health: frozenset[tuple[int, int, int]] = NOTHING
        """The resources ``show_health`` fills: the node's own values there (its own /3/0/11)
        are merged into them by the health model, never set over them."""

    def sync(self, node: LiveNode) -> bool:
        """Make the tree's node instances those of ``node.objects``; True if any came or went."""
        created, adopted = set(self.created), set(self.adopted)
        try:
            return self._sync(node, created, adopted)
        finally:  # what was done so far is kept, as a failed instance does not undo the others
            self.created, self.adopted = shared(frozenset(created)), shared(frozenset(adopted))

    def _sync(
        self, node: LiveNode, created: set[tuple[int, int]], adopted: set[tuple[int, int]]
    ) -> bool:
        wanted = exposable(node.objects)
        changed = False
        for oid, iid in sorted(created - wanted):
            created.discard((oid, iid))
            self.paths.hide(node.id, (oid, iid))
            self.tree.delete_instance(oid, iid)
            if oid not in node.objects and not self.tree.instance_ids(oid):
                self.tree.remove_object(oid)
            changed = True
        for key in adopted - wanted:
            self.paths.hide(node.id, key)
        adopted &= wanted
        prefix = self.tree.prefix
        for key in sorted(wanted - created - adopted):  # keys shared by all nodes (exposable)
            oid, iid = key
            if oid not in self.tree.definitions:
                log.warning("node %s: object %d has no definition: add its DDF file", node.id, oid)
                continue
            values, held = initial_values(self.tree.definitions, node, oid, iid)
            instance = _instance_path(key, prefix)
            if self.tree.has(instance):
                # The tree's own resources there (an endpoint's /3/0) stay the gateway's.
                own = {p.ids[2] for p in self.tree.resource_paths(instance)} | held
                held = shared(frozenset(own - {rid for rid, _ in instance_values(node, oid, iid)}))
                adopted.add(key)
                self.paths.show(node.id, Shown(key, instance, held=held))
                self._set(node, [Record(Path((oid, iid, rid)), v) for rid, v in values])
                self._set(node, instance_records(node, oid, iid))  # with their times
                continue
            try:
                self.tree.create_instance(oid, iid, values)
            except LwM2MError as e:
                log.warning("node %s: /%d/%d not exposed: %s", node.id, oid, iid, e)
                continue
            created.add(key)
            self.paths.show(node.id, Shown(key, instance, held=held))
            self._set(node, instance_records(node, oid, iid))  # with their times
            changed = True
        return changed

    def show_health(self, node: NodeId, resources: Mapping[Path, Value | dict[int, Value]]) -> bool:
        """Put what the gateway states of the node's health (``NodeHealth.resources``,
        node-local /3/0 and /4/0) in the tree, creating those instances if the node has none;
        True if one was created. These resources are the gateway's (held): a server's Read
        of them is answered from the tree, also while the node cannot be reached, and an
        instance the node does not have stays the gateway's whole (nothing of it reaches the
        node)."""
        created = False
        by_instance: dict[tuple[int, int], list[tuple[int, Value | dict[int, Value]]]] = {}
        for path, value in resources.items():
            by_instance.setdefault((path.ids[0], path.ids[1]), []).append((path.ids[2], value))
        filled = frozenset((p.ids[0], p.ids[1], p.ids[2]) for p in resources)
        if not filled <= self.health:
            self.health = shared(self.health | filled)
        for key, values in by_instance.items():
            instance = Path(key, self.tree.prefix)
            if not self.tree.has(instance):
                try:
                    self.tree.create_instance(*key, values)
                except LwM2MError as e:
                    log.warning("node %s: its health is not shown in %s: %s", node, instance, e)
                    continue
                created = True
                continue
            shown = self.paths.shown(node, key)
            rids = frozenset(rid for rid, _ in values)
            if shown is not None and shown.resources is None and not rids <= shown.held:
                self.paths.show(node, replace(shown, held=shared(shown.held | rids)))
            for rid, value in values:
                path = instance.child(rid)
                if self.tree.has(path) and self.tree.get(path) == value:
                    continue  # unchanged: no notification for what a server already has
                try:
                    self.tree.set(path, value)
                except LwM2MError as e:
                    log.warning("node %s: %s not updated: %s", node, path, e)
        return created

    def apply(self, node: LiveNode, records: Sequence[Record]) -> None:
        """Put the node's readings (node-local paths) into the tree, but for the health
        resources (``self.health``)."""
        if self.health:
            records = [r for r in records if r.path.ids[:3] not in self.health]
        apply_readings(self.tree, self.paths, node, records)

    def _set(self, node: LiveNode, records: Sequence[Record]) -> None:
        apply_readings(self.tree, self.paths, node, records, claim=False)


def apply_readings(
    tree: ObjectTree,
    paths: PathMap,
    node: LiveNode,
    records: Sequence[Record],
    *,
    claim: bool = True,
) -> None:
    """Put the node's readings (node-local paths) where ``paths`` shows them in ``tree``;
    with ``claim``, a resource the gateway held there becomes the node's (``PathMap.placed``:
    the IDs of the tree's own paths, each set with one call)."""
    put = tree.put
    for ids, r in paths.placed(node.paired.id, records, claim=claim):
        try:
            put(ids, r.value, r.time)
        except LwM2MError as e:
            log.warning("node %s: %s not updated: %s", node.id, r.path, e)
