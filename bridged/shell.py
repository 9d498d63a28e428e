"""The LwM2M shell's verbs (``bridgectl ls/read/write/exec/create/delete``) on the gateway's
tree, and on its nodes as a server reaches them.

Write, Execute and Create are a server's, with a server's codes (a read-only resource is
4.05, a Create needs the object's mandatory resources), so a node's path is the node's: a
Read, Write or Execute of one goes to the node (or its desired-state queue) through the same
``NodeOperations`` a server's does, and creating or deleting a node's instance is refused as
it is for a server. Which path is a node's is the
exposure mode's ``paths`` to say; in the gateway mode, ``end_devices`` hold the end devices' trees
at their prefixes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiocoap.numbers.codes import Code

from bridged.engine.dm import (
    END_DEVICES_READ_ONLY,
    DeviceManagement,
    EndDevices,
    Request,
    read_node,
)
from bridged.engine.nodes import NodePaths, node_owned
from bridged.objects.errors import BadRequest, MethodNotAllowed, NotFound, Unauthorized
from bridged.objects.formats import ContentFormat
from bridged.objects.ids import BOOTSTRAP_ONLY, LwM2MGateway
from bridged.objects.paths import Level, Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record, from_text
from bridged.operations import NodeOperations

from .views import json_record


class Shell:
    """The shell's verbs over the gateway's ``tree``; node paths (``paths``) reach the nodes
    through ``operations``."""

    def __init__(
        self,
        tree: ObjectTree,
        operations: NodeOperations,
        paths: NodePaths,
        end_devices: EndDevices | None,
    ) -> None:
        self.tree = tree
        self.operations = operations
        self.paths = paths
        self.end_devices = end_devices
        self.server = DeviceManagement(tree, nodes=operations, end_devices=end_devices)
        """Write and exec are a server's, with a server's full rights (no access control)."""

    def _tree_for(self, path: Path) -> ObjectTree:
        """The tree that holds ``path``: the gateway's, or the one of the end device its prefix
        names (the gateway mode's ``/devN/...``)."""
        if path.prefix is None:
            return self.tree
        tree = None if self.end_devices is None else self.end_devices.end_device_tree(path.prefix)
        if tree is None:
            raise NotFound(f"{path}: no end device has the prefix {path.prefix}")
        return tree

    def ls(self, path: Path) -> list[dict[str, Any]]:
        """The objects (root), instances (object) or resources (instance or below) at
        ``path``, an end device's too (``/devN/...``)."""
        tree = self._tree_for(path)
        if path.level is Level.ROOT:
            return [
                {"path": f"/{odef.id}", "name": odef.name, "instances": iids}
                for odef, iids in tree.objects()
            ]
        if not tree.has(path):
            raise NotFound(f"{path} does not exist")
        if path.level is Level.OBJECT:
            name = tree.definitions.get(path.ids[0]).name
            return [
                {"path": f"{path}/{iid}", "name": name} for iid in tree.instance_ids(path.ids[0])
            ]
        out = []
        for p in tree.resource_paths(path):
            rdef = tree.definitions.resource(p.ids[0], p.ids[2])
            out.append({"path": str(p), "name": rdef.name, "operations": rdef.operations.name})
        return out

    async def read(self, path: Path) -> list[dict[str, Any]]:
        """The values at or under ``path``. The Security object holds keys and is never read
        here, as no LwM2M server may read it. A node's instance or resource is read from the
        node as a server's Read is (``dm.read_node``: a sleepy node's last report, with its
        time); the gateway's copy of a node is no answer."""
        if path.level is Level.ROOT:
            raise BadRequest("read needs an object path")
        if path.ids[0] in BOOTSTRAP_ONLY:
            raise Unauthorized(f"{path} holds keys and is not readable")
        tree = self._tree_for(path)
        found = self.operations.locate(path)
        if found is None:
            return [json_record(r) for r in tree.read(path)]
        return [json_record(r) for r in await read_node(self.operations, tree, path, *found)]

    async def write(self, path: Path, text: str) -> None:
        """Set the resource (instance) at ``path`` to the value written as text (the
        text/plain form: numbers, 0/1 for booleans, base64 for opaque, oid:iid for links).

        It is a server's Write (``self.server``): a read-only resource is 4.05, a sensor value
        is the node's to report, not the operator's to make up (a made-up value would go
        upstream as a reading); a node's resource goes to the node, or waits as its desired
        state while it sleeps, and the gateway's copy changes once the node has it."""
        if path.level < Level.RESOURCE:
            raise BadRequest(f"write needs a resource path, not {path}")
        rdef = self.tree.definitions.resource(path.ids[0], path.ids[2])
        if rdef.multiple and path.level is Level.RESOURCE:
            raise BadRequest(f"{path} is a multi-instance resource: write one instance of it")
        await self.server.operate(
            Request(
                Code.PUT, path.segments(), payload=text.encode(), content_format=ContentFormat.TEXT
            )
        )

    async def execute(self, path: Path, arguments: str = "") -> None:
        """Execute ``path`` as a server's Execute does: at the node, for a node's resource
        (or when it next wakes)."""
        if path.level is not Level.RESOURCE:
            raise MethodNotAllowed(f"execute on {path}: target a resource")
        await self.server.operate(Request(Code.POST, path.segments(), payload=arguments.encode()))

    def create(self, path: Path, values: Mapping[int, str] | None = None) -> str:
        """Create the instance ``/oid/iid`` (or the lowest free one under ``/oid``) with
        ``values`` ({resource ID: text form}) as a server's Create does: 4.00 without the
        object's mandatory resources, 4.05 for a read-only one, and 4.05 in an object that
        holds nodes' instances."""
        if path.level not in (Level.OBJECT, Level.INSTANCE):
            raise BadRequest(f"create needs an object or instance path, not {path}")
        if path.ids[0] in BOOTSTRAP_ONLY:
            raise Unauthorized(f"{path}: the bootstrap-only objects are not created here")
        if self.paths.holds_nodes(path):
            raise node_owned(path)
        oid = path.ids[0]
        odef = self.tree.definitions.get(oid)
        iid = path.ids[1] if path.level is Level.INSTANCE else self.tree.free_instance_id(oid)
        records = [
            Record(Path((oid, iid, rid)), from_text(odef.resource(rid), text))
            for rid, text in (values or {}).items()
        ]
        return str(self.tree.create(Path((oid,)), records, iid=iid))

    def delete(self, path: Path) -> None:
        """Delete an instance of the gateway's own; a node's instance stands for the node and
        goes only by unpairing it (4.05, as for a server), and so do /25's."""
        if path.level is Level.INSTANCE and path.ids[0] in BOOTSTRAP_ONLY:
            raise Unauthorized(f"{path}: the bootstrap-only objects are not deleted here")
        found = self.paths.local(path)
        if found is not None:
            raise node_owned(path, found[0])
        if path.object_id == LwM2MGateway.OBJECT:
            raise MethodNotAllowed(f"{path}: {END_DEVICES_READ_ONLY}")
        self.tree.delete(path)
