"""Node-backed resources: what device management awaits for a path that belongs to a node.

The engine serves one object tree. Some of its instances mirror a sensor node (see the exposure
modes): a Read, Write or Execute of such a path must reach the node, which takes radio time, so
``DeviceManagement`` hands those requests to a ``NodeBackend`` and awaits it, while every path of
the gateway's own stays on the synchronous path it always had.

The backend speaks node-local paths (the node's ``/3303/0/5700``, not the gateway's
``/3303/4/5700`` nor ``/dev4/3303/0/5700``); the exposure mode's ``NodePaths`` moves paths
between the two, record by record, and nothing else does (a node's battery ``/3/0/9`` may be
``/3300/7/5700`` upstream). ``NodeOperations`` (bridged/operations.py) is the backend over the
node registry; the exposure mode supplies the ``NodePaths``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bridged.objects.errors import MethodNotAllowed
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.transports.nodes import NodeId


class NodePaths(Protocol):
    """Which node path is behind an upstream path, and back: the exposure mode's ``PathMap``
    (bridged/exposure/mapping.py), the one owner of that mapping."""

    def local(self, upstream: Path) -> tuple[NodeId, Path] | None:
        """The node and node-local path behind ``upstream`` (an instance or deeper), or None
        for the gateway's own paths (and the resources the gateway holds in a node's
        instance, such as the node's name in 5750)."""
        ...

    def upstream(self, node: NodeId, local: Path) -> Path | None:
        """The upstream path of ``node``'s ``local`` path, None if it is not shown."""
        ...

    def holds_nodes(self, upstream: Path) -> bool:
        """Whether the object of ``upstream`` is one the mode shows nodes' instances in, where
        nothing is created but by pairing (``node_owned``)."""
        ...


class NodeBackend(Protocol):
    """What device management awaits for node-backed paths.

    Each operation raises the ``LwM2MError`` the server should see: the node's own error, 5.03
    for a node out of reach, 5.04 for one that did not answer in time. A write or execute the
    backend keeps as desired state (a sleepy node) returns normally: the server gets 2.04. The
    backend reports an applied write back as the node's new values (through the node registry,
    like any reading), which is when the tree changes: a server reading back sees what the node
    has, never what was only asked for.
    """

    def locate(self, path: Path) -> tuple[NodeId, Path] | None:
        """The paired node and node-local path behind an upstream path (``NodePaths.local``)."""
        ...

    def upstream(self, node: NodeId, local: Path) -> Path | None:
        """``NodePaths.upstream``: where the node's answers go in the reply."""
        ...

    def holds_nodes(self, upstream: Path) -> bool:
        """``NodePaths.holds_nodes``: a Create there is ``node_owned``."""
        ...

    def max_body(self, upstream: Path) -> int | None:
        """The largest body a Write of ``upstream`` may carry when it is larger than any
        other request's (a firmware package for a node's /5/0/0); None: the usual bound."""
        ...

    async def read(self, node: NodeId, local: Path) -> list[Record]: ...

    async def write(
        self, node: NodeId, local: Path, records: Sequence[Record], *, replace: bool
    ) -> None: ...

    async def execute(self, node: NodeId, local: Path, arguments: str) -> None: ...


def node_owned(path: Path, node: NodeId | None = None) -> MethodNotAllowed:
    """The 4.05 to a Create or Delete at ``path``, an instance of ``node`` or an object that
    holds nodes' instances (``NodePaths.holds_nodes``), from any server, the Bootstrap-Server
    and bridgectl alike. A node's instances stand for the node: pairing adds them and only
    unpairing removes them. A deleted one would leave the node's readings flowing upstream; a
    created one would stand for no node."""
    whose = "the nodes'" if node is None else f"node {node}'s"
    return MethodNotAllowed(
        f"{path} is {whose}: pairing adds its instances, unpairing removes them"
    )
