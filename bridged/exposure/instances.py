"""The ``instances`` exposure mode: every node's objects become instances of the gateway's.

A node's ``/3303/0`` becomes, say, the gateway's ``/3303/4``; the gateway instance ID comes
from the node store, so it is the same after a restart or a re-pairing and a server's history
stays attached to the right sensor. Where the object has resource 5750 Application Type, it
carries the node's name, so a server user can tell which node an instance belongs to from
standard resources alone; except where 5750 is the node's data (3347 Push button's event
type, or a 5750 the node reports itself): ``mirror.initial_values``, the rule of every mode.

The mapping goes both ways, in ``paths`` (bridged/exposure/mapping.py): which gateway path is a
node path, and which node and node-local path a gateway path is, for operations that must
reach the node. A node's /0, /1, /2, /21 and /23 are its own business with the gateway and
never become instances of the gateway's (``mapping.HOUSEKEEPING``).

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
from bridged.store.nodes import NodeStore
from bridged.transports.nodes import NodeId

from .mapping import PathMap, Shown, exposable
from .mirror import APPLICATION_TYPE, apply_readings, initial_values, instance_records
from .mode import ThroughGateway

log = logging.getLogger(__name__)

DEVICE, BATTERY_LEVEL = 3, 9
BATTERY_INSTANCE = (DEVICE, 0)
BATTERY = Path((*BATTERY_INSTANCE, BATTERY_LEVEL))
"""Node-local /3/0/9 Battery Level (%)."""
GENERIC_SENSOR, SENSOR_VALUE, SENSOR_UNITS = 3300, 5700, 5701
BATTERY_KEY = MAX_ID + 1
"""The node-instance key under which the node store keeps the battery's /3300 instance ID: no
node instance has it, so it never collides with a node's own /3300."""


class InstancesExposure(ThroughGateway):
    """The ``ExposureMode`` that mirrors node-local objects into the gateway's tree."""

    def __init__(self, tree: ObjectTree, store: NodeStore) -> None:
        self.tree = tree
        self.store = store
        self.paths = PathMap()
        """Where each node's instances are: ``/oid/<gateway instance>``, the battery
        ``/3300/x/5700``."""
        self._unknown: set[int] = set()
        self._locals: dict[tuple[int, int], tuple[int, int]] = {}
        """One (object, node instance) tuple per value, for every node's ``Shown.local``:
        thousands of nodes have the same few."""
        for oid in tree.object_ids():
            for iid in tree.instance_ids(oid):
                store.reserve_instance(oid, iid)

    # -- RegistryListener --------------------------------------------------------------------

    def node_added(self, node: LiveNode) -> None:
        self.node_objects(node)

    def node_removed(self, node: NodeId) -> None:
        for shown in self.paths.hide_node(node):
            self.tree.delete_instance(shown.upstream.ids[0], shown.upstream.ids[1])

    def node_objects(self, node: LiveNode) -> None:
        wanted = exposable(node.objects)
        for shown in self.paths.instances(node.id):
            if shown.resources is None and shown.local not in wanted:
                self.paths.hide(node.id, shown.local)
                self.tree.delete_instance(shown.upstream.ids[0], shown.upstream.ids[1])
        to_show = [
            (oid, iid)
            for oid, iid in sorted(wanted)
            if oid != DEVICE and self._defined(oid) and not self.paths.shown(node.id, (oid, iid))
        ]
        ids = self.store.instance_ids(node.id, to_show)
        for oid, iid in to_show:
            gw = ids[(oid, iid)]
            values, held = initial_values(self.tree.registry, node, oid, iid)
            try:
                self.tree.create_instance(oid, gw, values)
            except LwM2MError as e:
                log.warning("node %s: /%d/%d not exposed: %s", node.id, oid, iid, e)
                continue
            local = self._locals.setdefault((oid, iid), (oid, iid))
            self.paths.show(Shown(node.id, local, Path((oid, gw)), held=held))
            apply_readings(
                self.tree, self.paths, node, instance_records(node, oid, iid), claim=False
            )  # with their times
        self._battery_instance(node)

    def _battery_instance(self, node: LiveNode) -> None:
        """The node's battery as a /3300 instance, once the node has reported its level."""
        level = node.values.get(BATTERY)
        if self.paths.shown(node.id, BATTERY_INSTANCE) is not None or level is None:
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
        battery = Shown(
            node.id, BATTERY_INSTANCE, Path((GENERIC_SENSOR, gw)), {SENSOR_VALUE: BATTERY_LEVEL}
        )
        self.paths.show(battery)
        apply_readings(self.tree, self.paths, node, [level], claim=False)  # with its time

    def node_readings(self, node: LiveNode, records: Sequence[Record]) -> None:
        self._battery_instance(node)
        apply_readings(self.tree, self.paths, node, records)

    node_values = node_readings
    """Values read from a node are shown as its readings are (they are just not stored)."""

    def _defined(self, oid: int) -> bool:
        if oid in self.tree.registry:
            return True
        if oid not in self._unknown:
            self._unknown.add(oid)
            log.warning("object %d has no definition: add its DDF file to expose it", oid)
        return False
