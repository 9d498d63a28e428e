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
never become instances of the gateway's (``ids.HOUSEKEEPING``).

A node's own Device object cannot become an instance of the gateway's: /3 is single-instance and
/3/0 is the gateway (so are the node's other single-instance objects: its /5 Firmware Update is
shown in the other modes only). What matters of it upstream is the battery (node-local /3/0/9,
which the BLE decoders emit), so it becomes an IPSO Generic Sensor instance of its own, with a
stable ID like every other: ``/3300/x`` with 5700 Sensor Value the level, 5701 Sensor Units
``%`` and 5750 Application Type ``<node name> battery``. A server can then chart, observe and
set thresholds on it like any sensor, and tell whose battery it is. The node's other /3 values
(manufacturer, model, ...) are not shown in this mode; the gateway and endpoints modes show them
on the node's own /3.

**A node's health** (``bridged.health``) cannot be the node's /3/0/11 and /4/0 here either (both
single-instance, and the gateway's own), so it takes standard IPSO instances of its own, with
stable IDs like the battery's, which any server reads, observes and charts without knowing of
gateways: ``/3200/x`` Digital Input, 5500 Digital Input State true while the node is available,
5750 ``<node name> available``, 5751 ``availability``; and, once the node's RSSI is known,
``/3300/y`` Generic Sensor, 5700 its last RSSI, 5701 ``dBm``, 5750 ``<node name> signal``,
5751 ``rssi``. The gateway's own /3/0/11 says what is wrong with the gateway itself
(``bridged.faults``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bridged.health import NodeHealth
from bridged.objects.errors import LwM2MError
from bridged.objects.ids import BATTERY_PATH, SINGLE, Device, Ipso, IpsoResource
from bridged.objects.paths import MAX_ID, Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record, Value
from bridged.registry import LiveNode
from bridged.store.nodes import NodeStore
from bridged.transports.nodes import NodeId

from .mapping import PathMap, Shown, exposable
from .mirror import apply_readings, initial_values, instance_records
from .mode import ThroughGateway

log = logging.getLogger(__name__)

BATTERY_KEY = MAX_ID + 1
"""The node-instance key under which the node store keeps the battery's /3300 instance ID: no
node instance has it, so it never collides with a node's own /3300."""
AVAILABLE_KEY, SIGNAL_KEY = MAX_ID + 2, MAX_ID + 3
"""The node-instance keys of its availability (/3200) and signal (/3300) instances."""


class InstancesExposure(ThroughGateway):
    """The ``ExposureMode`` that mirrors node-local objects into the gateway's tree."""

    def __init__(self, tree: ObjectTree, store: NodeStore) -> None:
        self.tree = tree
        self.store = store
        self.paths = PathMap()
        """Where each node's instances are: ``/oid/<gateway instance>``, the battery
        ``/3300/x/5700``."""
        self._unknown: set[int] = set()
        self._names: dict[NodeId, str] = {}
        self._health: dict[tuple[int, int], dict[NodeId, int]] = {}
        """The nodes' health instances (module docstring): by (object, node-instance key), each
        node's instance ID. A map per node, or a path per instance, was about 2 MB of a gateway
        with 10,000 nodes."""
        for oid in tree.object_ids():
            for iid in tree.instance_ids(oid):
                store.reserve_instance(oid, iid)

    # -- RegistryListener --------------------------------------------------------------------

    def node_added(self, node: LiveNode) -> None:
        self._names[node.id] = node.paired.name
        self.node_objects(node)

    def node_removed(self, node: NodeId) -> None:
        for shown in self.paths.hide_node(node):
            self.tree.delete_instance(shown.upstream.ids[0], shown.upstream.ids[1])
        for (oid, _), instances in self._health.items():
            gw = instances.pop(node, None)
            if gw is not None:
                self.tree.delete_instance(oid, gw)
        self._names.pop(node, None)

    def node_health(self, node: NodeId, health: NodeHealth) -> None:
        """The node's availability and signal instances (module docstring)."""
        name = self._names.get(node)
        if name is None:
            return
        self._health_instance(
            node,
            AVAILABLE_KEY,
            Ipso.DIGITAL_INPUT,
            [(IpsoResource.DIGITAL_INPUT_STATE, health.available)],
            [
                (IpsoResource.APPLICATION_TYPE, f"{name} available"),
                (IpsoResource.SENSOR_TYPE, "availability"),
            ],
        )
        if health.rssi is not None:
            self._health_instance(
                node,
                SIGNAL_KEY,
                Ipso.GENERIC_SENSOR,
                [(IpsoResource.SENSOR_VALUE, health.rssi)],
                [
                    (IpsoResource.SENSOR_UNITS, "dBm"),
                    (IpsoResource.APPLICATION_TYPE, f"{name} signal"),
                    (IpsoResource.SENSOR_TYPE, "rssi"),
                ],
            )

    def _health_instance(
        self,
        node: NodeId,
        key: int,
        oid: int,
        values: list[tuple[int, Value]],
        fixed: list[tuple[int, Value]],
    ) -> None:
        """Set ``values`` in the node's health instance ``key`` of ``oid``, created (with
        ``fixed``) the first time; the gateway's own, served from the tree."""
        instances = self._health.setdefault((oid, key), {})
        gw = instances.get(node)
        if gw is None:
            gw = self.store.instance_id(node, oid, key)
            try:
                self.tree.create_instance(oid, gw, [*values, *fixed])
            except LwM2MError as e:
                log.warning("node %s: its health is not exposed in /%d: %s", node, oid, e)
            else:
                instances[node] = gw
            return
        for rid, value in values:
            path = Path((oid, gw, rid))
            if self.tree.get(path) != value:  # no notification of no change
                self.tree.set(path, value)

    def node_objects(self, node: LiveNode) -> None:
        wanted = exposable(node.objects)
        for shown in self.paths.instances(node.id):
            if shown.resources is None and shown.local not in wanted:
                self.paths.hide(node.id, shown.local)
                self.tree.delete_instance(shown.upstream.ids[0], shown.upstream.ids[1])
        to_show = [
            key
            for key in sorted(wanted)
            if self._defined(key[0])
            and not self._gateways(key[0])
            and not self.paths.shown(node.id, key)
        ]
        ids = self.store.instance_ids(node.id, to_show)
        for local in to_show:  # keys shared by all nodes (``exposable``)
            oid, iid = local
            gw = ids[local]
            values, held = initial_values(self.tree.definitions, node, oid, iid)
            try:
                self.tree.create_instance(oid, gw, values)
            except LwM2MError as e:
                log.warning("node %s: /%d/%d not exposed: %s", node.id, oid, iid, e)
                continue
            self.paths.show(node.id, Shown(local, Path((oid, gw)), held=held))
            apply_readings(
                self.tree, self.paths, node, instance_records(node, oid, iid), claim=False
            )  # with their times
        self._battery_instance(node)

    def _gateways(self, oid: int) -> bool:
        """Whether object ``oid`` is single-instance: its one instance is the gateway's own
        (/3 Device, /5 Firmware Update), so a node's cannot be shown there."""
        return not self.tree.definitions.get(oid).multiple

    def _battery_instance(self, node: LiveNode) -> None:
        """The node's battery as a /3300 instance, once the node has reported its level."""
        level = node.values.get(BATTERY_PATH)
        if self.paths.shown(node.id, (Device.OBJECT, SINGLE)) is not None or level is None:
            return
        gw = self.store.instance_id(node.id, Ipso.GENERIC_SENSOR, BATTERY_KEY)
        try:
            self.tree.create_instance(
                Ipso.GENERIC_SENSOR,
                gw,
                [
                    (IpsoResource.SENSOR_VALUE, level.value),
                    (IpsoResource.SENSOR_UNITS, "%"),
                    (IpsoResource.APPLICATION_TYPE, f"{node.paired.name} battery"),
                ],
            )
        except LwM2MError as e:
            log.warning("node %s: battery not exposed: %s", node.id, e)
            return
        battery = Shown(
            (Device.OBJECT, SINGLE),
            Path((Ipso.GENERIC_SENSOR, gw)),
            {IpsoResource.SENSOR_VALUE: Device.BATTERY_LEVEL},
        )
        self.paths.show(node.id, battery)
        apply_readings(self.tree, self.paths, node, [level], claim=False)  # with its time

    def node_readings(self, node: LiveNode, records: Sequence[Record]) -> None:
        battery = BATTERY_PATH.ids  # a node-local path: no prefix to compare
        for r in records:
            if r.path.ids == battery:  # its level is known from now on
                self._battery_instance(node)
                break
        apply_readings(self.tree, self.paths, node, records)

    node_values = node_readings
    """Values read from a node are shown as its readings are (they are just not stored)."""

    def _defined(self, oid: int) -> bool:
        if oid in self.tree.definitions:
            return True
        if oid not in self._unknown:
            self._unknown.add(oid)
            log.warning("object %d has no definition: add its DDF file to expose it", oid)
        return False
