"""Node-backed resources: what device management awaits for a path that belongs to a node.

The engine serves one object tree. Some of its instances mirror a sensor node (see the exposure
modes): a Read, Write or Execute of such a path must reach the node, which takes radio time, so
``DeviceManagement`` hands those requests to a ``NodeBackend`` and awaits it, while every path of
the gateway's own stays on the synchronous path it always had.

The backend speaks node-local paths (the node's ``/3303/0/5700``, not the gateway's
``/3303/4/5700``); ``gateway_records`` and ``local_records`` move records between the two, which
differ only in the prefix and the first two IDs. ``NodeOperations`` (bridged/operations.py) is
the backend over the node registry; the exposure mode supplies the ``NodeRouter``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.store.nodes import NodeId


class NodeRouter(Protocol):
    """Which node is behind a gateway path (an exposure mode's ``node_path``)."""

    def node_path(self, path: Path) -> tuple[NodeId, Path] | None:
        """The node and node-local path behind ``path`` (an instance or deeper), or None for
        the gateway's own paths."""
        ...


class NodeBackend(Protocol):
    """What device management awaits for node-backed paths.

    Each operation raises the ``LwM2MError`` the server should see: the node's own error, 5.03
    for a node out of reach, 5.04 for one that did not answer in time. A write or execute the
    backend keeps as desired state (a sleepy node) returns normally: the server gets 2.04. The
    backend reports an applied write back as the node's new values (through the registry,
    like any reading), which is when the tree changes: a server reading back sees what the node
    has, never what was only asked for.
    """

    def locate(self, path: Path) -> tuple[NodeId, Path] | None: ...

    async def read(self, node: NodeId, local: Path) -> list[Record]: ...

    async def write(
        self, node: NodeId, local: Path, records: Sequence[Record], *, replace: bool
    ) -> None: ...

    async def execute(self, node: NodeId, local: Path, arguments: str) -> None: ...


def local_records(gateway: Path, local: Path, records: Sequence[Record]) -> list[Record]:
    """``records`` under the gateway path ``gateway`` moved under the node-local ``local``."""
    head = local.ids[:2]
    return [Record(Path((*head, *r.path.ids[2:])), r.value, r.time) for r in records]


def gateway_records(gateway: Path, records: Sequence[Record]) -> list[Record]:
    """Node-local ``records`` moved under the gateway path ``gateway`` (same object and
    instance as the node-local path they came from)."""
    head = gateway.ids[:2]
    return [
        Record(Path((*head, *r.path.ids[2:]), gateway.prefix), r.value, r.time) for r in records
    ]
