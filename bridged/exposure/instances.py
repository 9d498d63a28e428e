"""The ``instances`` exposure mode: every node's objects become instances of the gateway's.

A node's ``/3303/0`` becomes, say, the gateway's ``/3303/4``; the gateway instance ID comes
from the node store, so it is the same after a restart or a re-pairing and a server's history
stays attached to the right sensor. Where the object has resource 5750 Application Type, it
carries the node's name, so a server user can tell which node an instance belongs to from
standard resources alone; except where 5750 is the node's data (3347 Push button's event
type, or a 5750 the node reports itself): ``mirror.initial_values``, the rule of every mode.

The mapping goes both ways: ``node_path`` turns a gateway path back into the node and its
node-local path, for operations that must reach the node.

A node's own Device object cannot become an instance of the gateway's: /3 is single-instance
and /3/0 is the gateway. What matters of it upstream is the battery (node-local /3/0/9, which
the BLE decoders emit), so it becomes an IPSO Generic Sensor instance of its own, with a stable
ID like every other: ``/3300/x`` with 5700 Sensor Value the level, 5701 Sensor Units ``%`` and
5750 Application Type ``<node name> battery``. A server can then chart, observe and set
thresholds on it like any sensor, and tell whose battery it is. The node's other /3 values
(manufacturer, model, ...) are not shown in this mode; the gateway and endpoints modes show them
on the node's own /3.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bridged.objects.errors import LwM2MError
from bridged.objects.paths import MAX_ID, Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.registry import LiveNode
from bridged.store.nodes import NodeId, NodeStore

from .mirror import APPLICATION_TYPE, initial_values

log = logging.getLogger(__name__)

DEVICE = 3
BATTERY = Path((DEVICE, 0, 9))
"""Node-local /3/0/9 Battery Level (%)."""
GENERIC_SENSOR, SENSOR_VALUE, SENSOR_UNITS = 3300, 5700, 5701
BATTERY_KEY = MAX_ID + 1
"""The node-instance key under which the node store keeps the battery's /3300 instance ID: no
node instance has it, so it never collides with a node's own /3300."""


class InstancesExposure:
    """A ``RegistryListener`` that mirrors node-local objects into the gateway's tree."""

    def __init__(self, tree: ObjectTree, store: NodeStore) -> None:
        self.tree = tree
        self.store = store
        self._to_gateway: dict[NodeId, dict[tuple[int, int], int]] = {}
        self._to_node: dict[tuple[int, int], tuple[NodeId, int]] = {}
        self._names: dict[NodeId, str] = {}
        self._unknown: set[int] = set()
        self._battery: dict[NodeId, int] = {}
        for oid in tree.object_ids():
            for iid in tree.instance_ids(oid):
                store.reserve_instance(oid, iid)

    def gateway_path(self, node: NodeId, local: Path) -> Path | None:
        """The gateway path of a node-local path, or None if that instance is not exposed."""
        if local.ids[:3] == BATTERY.ids:
            battery = self._battery.get(node)
            return None if battery is None else Path((GENERIC_SENSOR, battery, SENSOR_VALUE))
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
            if path.ids[0] == GENERIC_SENSOR and path.ids[2:3] == (SENSOR_VALUE,):
                owner = next((n for n, gw in self._battery.items() if gw == path.ids[1]), None)
                return None if owner is None else (owner, BATTERY)
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
        battery = self._battery.pop(node, None)
        if battery is not None:
            self.tree.delete_instance(GENERIC_SENSOR, battery)

    def node_objects(self, node: LiveNode) -> None:
        self._names[node.id] = node.paired.name
        wanted = {(oid, iid) for oid, iids in node.objects.items() for iid in iids}
        exposed = self._to_gateway.setdefault(node.id, {})
        for key in sorted(exposed.keys() - wanted):
            gw = exposed.pop(key)
            del self._to_node[(key[0], gw)]
            self.tree.delete_instance(key[0], gw)
        for oid, iid in sorted(wanted - exposed.keys()):
            if oid == DEVICE or not self._defined(oid):
                continue
            gw = self.store.instance_id(node.id, oid, iid)
            values = initial_values(self.tree.registry, node, oid, iid)
            try:
                self.tree.create_instance(oid, gw, values)
            except LwM2MError as e:
                log.warning("node %s: /%d/%d not exposed: %s", node.id, oid, iid, e)
                continue
            exposed[(oid, iid)] = gw
            self._to_node[(oid, gw)] = (node.id, iid)
        self._battery_instance(node)

    def _battery_instance(self, node: LiveNode) -> None:
        """The node's battery as a /3300 instance, once the node has reported its level."""
        level = node.values.get(BATTERY)
        if node.id in self._battery or level is None:
            return
        gw = self.store.instance_id(node.id, GENERIC_SENSOR, BATTERY_KEY)
        try:
            self.tree.create_instance(
                GENERIC_SENSOR,
                gw,
                [
                    (SENSOR_VALUE, level.value),
                    (SENSOR_UNITS, "%"),
                    (APPLICATION_TYPE, f"{node.paired.name} battery"),
                ],
            )
        except LwM2MError as e:
            log.warning("node %s: battery not exposed: %s", node.id, e)
            return
        self._battery[node.id] = gw

    def node_readings(self, node: LiveNode, records: Sequence[Record]) -> None:
        if node.id not in self._battery:
            self._battery_instance(node)
        for r in records:
            target = self.gateway_path(node.id, r.path)
            if target is None:
                continue
            try:
                self.tree.set(target, r.value, r.time)
            except LwM2MError as e:
                log.warning("node %s: %s not updated: %s", node.id, r.path, e)

    node_values = node_readings
    """Values read from a node are shown as its readings are (they are just not stored)."""

    def _defined(self, oid: int) -> bool:
        if oid in self.tree.registry:
            return True
        if oid not in self._unknown:
            self._unknown.add(oid)
            log.warning("object %d has no definition: add its DDF file to expose it", oid)
        return False
