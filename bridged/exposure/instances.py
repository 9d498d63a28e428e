"""The ``instances`` exposure mode: every node's objects become instances of the gateway's.

A node's ``/3303/0`` becomes, say, the gateway's ``/3303/4``; the gateway instance ID comes
from the node store, so it is the same after a restart or a re-pairing and a server's history
stays attached to the right sensor. Where the object has resource 5750 Application Type, it
carries the node's name, so a server user can tell which node an instance belongs to from
standard resources alone.

The mapping goes both ways: ``node_path`` turns a gateway path back into the node and its
node-local path, for operations that must reach the node.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bridged.objects.errors import LwM2MError
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.registry import LiveNode
from bridged.store.nodes import NodeId, NodeStore

log = logging.getLogger(__name__)

APPLICATION_TYPE = 5750


class InstancesExposure:
    """A ``RegistryListener`` that mirrors node-local objects into the gateway's tree."""

    def __init__(self, tree: ObjectTree, store: NodeStore) -> None:
        self.tree = tree
        self.store = store
        self._to_gateway: dict[NodeId, dict[tuple[int, int], int]] = {}
        self._to_node: dict[tuple[int, int], tuple[NodeId, int]] = {}
        self._names: dict[NodeId, str] = {}
        self._unknown: set[int] = set()
        for oid in tree.object_ids():
            for iid in tree.instance_ids(oid):
                store.reserve_instance(oid, iid)

    def gateway_path(self, node: NodeId, local: Path) -> Path | None:
        """The gateway path of a node-local path, or None if that instance is not exposed."""
        oid, iid = local.ids[0], local.ids[1]
        gw = self._to_gateway.get(node, {}).get((oid, iid))
        return None if gw is None else Path((oid, gw, *local.ids[2:]))

    def node_path(self, path: Path) -> tuple[NodeId, Path] | None:
        """The node and node-local path behind a gateway instance path (or deeper), or None
        for the gateway's own instances."""
        if len(path.ids) < 2:
            return None
        found = self._to_node.get((path.ids[0], path.ids[1]))
        if found is None:
            return None
        node, local_iid = found
        return node, Path((path.ids[0], local_iid, *path.ids[2:]))

    # -- RegistryListener --------------------------------------------------------------------

    def node_added(self, node: LiveNode) -> None:
        self._names[node.id] = node.paired.name
        self.node_objects(node)

    def node_removed(self, node: NodeId) -> None:
        for (oid, _), gw in self._to_gateway.pop(node, {}).items():
            del self._to_node[(oid, gw)]
            self.tree.delete_instance(oid, gw)
        self._names.pop(node, None)

    def node_objects(self, node: LiveNode) -> None:
        self._names[node.id] = node.paired.name
        wanted = {(oid, iid) for oid, iids in node.objects.items() for iid in iids}
        exposed = self._to_gateway.setdefault(node.id, {})
        for key in sorted(exposed.keys() - wanted):
            gw = exposed.pop(key)
            del self._to_node[(key[0], gw)]
            self.tree.delete_instance(key[0], gw)
        for oid, iid in sorted(wanted - exposed.keys()):
            if not self._defined(oid):
                continue
            gw = self.store.instance_id(node.id, oid, iid)
            values = [
                (r.path.ids[2], r.value)
                for r in node.values.values()
                if r.path.ids[:2] == (oid, iid) and len(r.path.ids) == 3
            ]
            odef = self.tree.registry.get(oid)
            if APPLICATION_TYPE in odef.resources:
                values.append((APPLICATION_TYPE, node.paired.name))
            try:
                self.tree.create_instance(oid, gw, values)
            except LwM2MError as e:
                log.warning("node %s: /%d/%d not exposed: %s", node.id, oid, iid, e)
                continue
            exposed[(oid, iid)] = gw
            self._to_node[(oid, gw)] = (node.id, iid)

    def node_readings(self, node: LiveNode, records: Sequence[Record]) -> None:
        for r in records:
            target = self.gateway_path(node.id, r.path)
            if target is None:
                continue
            try:
                self.tree.set(target, r.value, r.time)
            except LwM2MError as e:
                log.warning("node %s: %s not updated: %s", node.id, r.path, e)

    def _defined(self, oid: int) -> bool:
        if oid in self.tree.registry:
            return True
        if oid not in self._unknown:
            self._unknown.add(oid)
            log.warning("object %d has no definition: add its DDF file to expose it", oid)
        return False
