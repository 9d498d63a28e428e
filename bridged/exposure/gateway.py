"""The ``gateway`` exposure mode: the LwM2M Gateway object (/25), end devices behind prefixes.

Each paired node is an end device (LwM2M Gateway TS 1.1, object 25 version 2.0). Its /25
instance says who it is and where to find it:

* 0 Device ID: the node id (``ble:A4:C1:38:00:11:22``), which names the node whatever gateway
  hears it;
* 1 Prefix: ``devN`` from the node store, allocated once, so it is the same after a restart
  or a re-pairing (never all digits, so it cannot pass for an object ID);
* 3 IoT Device Objects: the node's object list in the Register link format, without prefix
  (``</3303/0>,</3304/0>``).

The node's objects live in a tree of their own whose prefix is the node's, at their node-local
IDs: a server reads ``/dev3/3303/0/5700``. Register and Update carry the gateway's own objects
only (with /25 and its instances), as the Gateway TS requires; a node paired or unpaired
creates or deletes its /25 instance, which is an Update, and a change of a node's object list
changes /25/x/3, which the engine also sends an Update for, so a server that reads /25 on each
Update learns of it at once.

Requests to a prefixed path reach the node's tree through ``EndDevices`` (``end_device_tree`` and
``subscribe``), which ``DeviceManagement`` and the observations take; an unknown prefix is
4.04, and the observations of a node that is unpaired end with 4.04. Read, Write, Execute and
Write-Composite of a node's path reach the node itself (``paths``, the mode's ``PathMap``,
says which node a prefixed path is).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence

from bridged.health import NodeHealth
from bridged.objects.ids import LwM2MGateway
from bridged.objects.linkformat import format_links, object_links
from bridged.objects.listeners import Listeners
from bridged.objects.paths import Path
from bridged.objects.tree import FrozenTree, Listener, ObjectTree
from bridged.objects.values import Record
from bridged.registry import LiveNode
from bridged.store.nodes import NodeStore
from bridged.transports.nodes import NodeId

from .mapping import PathMap
from .mirror import NodeMirror
from .mode import ThroughGateway

log = logging.getLogger(__name__)


class _EndDevice:
    """One node as an end device: its /25 instance, its prefix and its tree.

    The tree is kept ``frozen`` (``ObjectTree.frozen``, the mirror then has no tree) while
    nothing but the node's pairing, object list and health has filled it and no server has
    been handed it: most end devices are quiet, and their trees were most of a gateway's
    memory. ``GatewayExposure._mirror`` thaws it when it is needed; a tree handed to a server
    request (``end_device_tree``) or holding a reading's time stays thawed."""

    __slots__ = ("frozen", "handed_out", "instance", "mirror", "prefix")

    def __init__(self, instance: int, tree: ObjectTree, paths: PathMap) -> None:
        self.instance = instance
        self.prefix = tree.prefix or ""
        self.mirror = NodeMirror(tree, paths)
        self.frozen: FrozenTree | None = None
        self.handed_out = False

    def object_links(self) -> str:
        """/25/x/3: the node's objects as the Register payload lists them (the tree thawed)."""
        objects = self.mirror.tree.objects()
        return _object_list(tuple((d.id, d.version, tuple(iids)) for d, iids in objects))


SHARED_OBJECT_LISTS = 256
"""Distinct end-device object lists ``_object_list`` keeps: kinds of node a gateway serves."""


@functools.lru_cache(maxsize=SHARED_OBJECT_LISTS)
def _object_list(objects: tuple[tuple[int, str, tuple[int, ...]], ...]) -> str:
    """The /25/x/3 text of ``objects`` (ID, version, instance IDs): formatted once for every
    node of a kind, and one string for all of them, where a start formatted each node's twice
    (its objects, then its health's /3/0 and /4/0), a tenth of a 5,000-node start (issue 17)."""
    return format_links(object_links(((oid, version), iids) for oid, version, iids in objects))


class GatewayExposure(ThroughGateway):
    """The ``ExposureMode`` that shows every node as a LwM2M Gateway end device, and the
    ``EndDevices`` the engine serves prefixed paths from."""

    def __init__(self, tree: ObjectTree, store: NodeStore) -> None:
        self.tree = tree
        self.store = store
        self.paths = PathMap(prefixed=True)
        """Where each node's instances are: ``/devN/...``, the node-local path prefixed."""
        self._end_devices: dict[NodeId, _EndDevice] = {}
        self._by_prefix: dict[str, _EndDevice] = {}
        self._listeners: Listeners[Listener] = Listeners("end device tree changes")
        self._tell: Listener = self._changed
        """What every end device's tree calls on a change: one bound method for all of them."""
        tree.add_object(LwM2MGateway.OBJECT)
        for iid in tree.instance_ids(LwM2MGateway.OBJECT):
            store.reserve_instance(LwM2MGateway.OBJECT, iid)

    # -- EndDevices --------------------------------------------------------------------------

    @property
    def end_devices(self) -> GatewayExposure:
        """The gateway's endpoint serves the end devices at their prefixes: this mode is
        their ``EndDevices``."""
        return self

    def end_device_tree(self, prefix: str) -> ObjectTree | None:
        """The tree of the end device with ``prefix``, or None when no paired node has it."""
        device = self._by_prefix.get(prefix)
        if device is None:
            return None
        device.handed_out = True  # the caller may keep it: it is never frozen again
        return self._mirror(device).tree

    def _mirror(self, device: _EndDevice) -> NodeMirror:
        """The device's mirror, its tree thawed if it was frozen."""
        if device.frozen is not None:
            tree = ObjectTree.thawed(self.tree.definitions, device.prefix, device.frozen)
            tree.subscribe(self._changed)
            device.mirror.tree = tree
            device.frozen = None
        return device.mirror

    def _rest(self, device: _EndDevice) -> None:
        """Freeze the device's tree when nobody holds it and it can be (``_EndDevice``)."""
        if device.frozen is None and not device.handed_out:
            device.frozen = device.mirror.tree.frozen()
            if device.frozen is not None:
                del device.mirror.tree

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every change in any end device's tree (prefixed paths), and
        with the bare prefix path (``/dev3``) when that end device goes away."""
        return self._listeners.add(listener)

    def _changed(self, path: Path) -> None:
        """An end device's tree changed (each of its readings: no function made to tell it)."""
        self._listeners.call(path)

    def prefix(self, node: NodeId) -> str | None:
        device = self._end_devices.get(node)
        return None if device is None else device.prefix

    # -- RegistryListener --------------------------------------------------------------------

    def node_added(self, node: LiveNode) -> None:
        device = self._end_devices.get(node.id)
        if device is None:
            prefix = self.store.prefix(node.id)
            instance = self.store.instance_id(node.id, LwM2MGateway.OBJECT)
            tree = ObjectTree(self.tree.definitions, prefix)
            device = _EndDevice(instance, tree, self.paths)
            tree.subscribe(self._changed)
            device.mirror.sync(node)
            self._end_devices[node.id] = device
            self._by_prefix[device.prefix] = device
            self.tree.create_instance(
                LwM2MGateway.OBJECT,
                instance,
                [
                    (LwM2MGateway.DEVICE_ID, str(node.id)),
                    (LwM2MGateway.PREFIX, device.prefix),
                    (LwM2MGateway.IOT_DEVICE_OBJECTS, device.object_links()),
                ],
            )
            self._rest(device)
            # Debug: it is said for every node at every start (bridgectl shows the prefix).
            log.debug("node %s is end device %s", node.id, device.prefix)
        else:
            self.node_objects(node)

    def node_removed(self, node: NodeId) -> None:
        device = self._end_devices.pop(node, None)
        if device is None:
            return
        del self._by_prefix[device.prefix]
        self.paths.hide_node(node)
        self.tree.delete_instance(LwM2MGateway.OBJECT, device.instance)
        self._changed(Path((), device.prefix))

    def node_objects(self, node: LiveNode) -> None:
        device = self._end_devices.get(node.id)
        if device is None:
            return
        if self._mirror(device).sync(node):
            self.tree.set(
                Path((LwM2MGateway.OBJECT, device.instance, LwM2MGateway.IOT_DEVICE_OBJECTS)),
                device.object_links(),
            )
        self._rest(device)

    def node_readings(self, node: LiveNode, records: Sequence[Record]) -> None:
        device = self._end_devices.get(node.id)
        if device is not None:  # a reading's tree stays thawed: readings come again
            self._mirror(device).apply(node, records)

    node_values = node_readings
    """Values read from a node are shown as its readings are (they are just not stored)."""

    def node_health(self, node: NodeId, health: NodeHealth) -> None:
        """The node's /devN/3/0/11, /3/0/20 and /4/0 (``NodeHealth.resources``); a /3/0 or
        /4/0 created for them is in /25/x/3 like the node's own objects."""
        device = self._end_devices.get(node)
        if device is None:
            return
        if self._mirror(device).show_health(node, health.resources()):
            self.tree.set(
                Path((LwM2MGateway.OBJECT, device.instance, LwM2MGateway.IOT_DEVICE_OBJECTS)),
                device.object_links(),
            )
        self._rest(device)
