"""Server operations on node-backed resources: the ``NodeBackend`` over the node registry.

Device management (bridged/engine/dm.py) awaits this for every Read, Write and Execute of a
path the exposure mode maps to a node (``NodePaths.local``, bridged/exposure/mapping.py). What
happens depends on the node:

* **awake nodes** (not sleepy): the operation goes to the node through its transport, with
  ``timeout`` for the answer (5.04 past it). The node's error is the server's answer: 4.05 for
  a resource it will not write, 5.03 when it is out of reach, and so on; never a 2.04 for a
  write that did not happen. A value read, and a write applied, are reported to the registry as
  the node's readings, so the tree, the store and the observers see them like any other.
* **sleepy nodes**: a Read answers the last values the node reported, each with the time it
  was measured (SenML carries it), without waking the radio; also after a restart, before the
  node talks again (the registry starts from the last values the store kept). A Write or
  Execute becomes desired state in the ``CommandQueue`` and the server gets 2.04 at once: the
  node cannot answer now, and a battery node's server expects its commands to be taken when
  the node next reports. The tree keeps showing what the node last reported until the command
  is applied.

Nodes that are not paired are never located (their instances are not exposed at all).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from bridged.engine.nodes import NodePaths
from bridged.objects.errors import NotFound, ServiceUnavailable
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.registry import LiveNode, NodeRegistry
from bridged.transports.nodes import NodeId

from .commands import DEFAULT_TIMEOUT, CommandQueue, call_node
from .firmware import FirmwareUpdates


@dataclass(frozen=True, slots=True)
class _Backends:
    """What ``NodeOperations`` reach the nodes through: one for all the node endpoints'
    operations (``over``)."""

    registry: NodeRegistry
    commands: CommandQueue | None
    timeout: float
    firmware: FirmwareUpdates | None


class NodeOperations:
    """The ``NodeBackend`` (bridged/engine/nodes.py) over ``registry``; ``paths`` is the
    exposure mode's mapping; ``commands`` keeps sleepy nodes' writes and executes (without it, they
    are refused with 5.03); ``firmware`` takes the /5 of the nodes it updates (the gateway is the
    LwM2M client of a node's /5: bridged/firmware.py).

    Slotted, and ``over`` gives each node endpoint of the endpoints mode its own at its own
    paths, sharing the rest (``_Backends``): the daemon keeps one per endpoint (112 bytes each
    with a dict, 72 with five slots, 48 with two; issue 17)."""

    __slots__ = ("_backends", "paths")

    def __init__(
        self,
        registry: NodeRegistry,
        paths: NodePaths,
        commands: CommandQueue | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        firmware: FirmwareUpdates | None = None,
    ) -> None:
        self._backends = _Backends(registry, commands, timeout, firmware)
        self.paths = paths

    @property
    def registry(self) -> NodeRegistry:
        return self._backends.registry

    @property
    def commands(self) -> CommandQueue | None:
        return self._backends.commands

    @property
    def firmware(self) -> FirmwareUpdates | None:
        return self._backends.firmware

    @property
    def timeout(self) -> float:
        """How long a node has to answer (5.04 past it)."""
        return self._backends.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        """These operations' alone (the operations ``over`` gave keep theirs)."""
        self._backends = replace(self._backends, timeout=seconds)

    def over(self, paths: NodePaths) -> NodeOperations:
        """The same operations on the nodes at ``paths`` (a node endpoint's)."""
        operations = NodeOperations.__new__(NodeOperations)  # the backends shared, not made
        operations._backends, operations.paths = self._backends, paths
        return operations

    def locate(self, path: Path) -> tuple[NodeId, Path] | None:
        found = self.paths.local(path)
        if found is None or found[0] not in self.registry.live:
            return None
        return found

    def upstream(self, node: NodeId, local: Path) -> Path | None:
        return self.paths.upstream(node, local)

    def holds_nodes(self, upstream: Path) -> bool:
        return self.paths.holds_nodes(upstream)

    def max_body(self, upstream: Path) -> int | None:
        found = self.locate(upstream)
        if found is None or self.firmware is None:
            return None
        return self.firmware.max_body(*found)

    def sleepy(self, node: NodeId) -> bool:
        """Whether ``node`` sleeps: paired as sleepy, or its transport says so."""
        live = self._live(node)
        return live.paired.sleepy or (live.state is not None and live.state.sleepy)

    def _firmware(self, node: NodeId, local: Path) -> FirmwareUpdates | None:
        """The gateway's /5 of ``node`` when ``local`` is in it, else None (the node's own)."""
        firmware = self.firmware
        return firmware if firmware is not None and firmware.serves(node, local) else None

    async def read(self, node: NodeId, local: Path) -> list[Record]:
        live = self._live(node)
        if firmware := self._firmware(node, local):
            return firmware.read(node, local)
        if self.sleepy(node):
            self.registry.flush()  # its reports waiting for the group commit are answered too
            known = [r for p, r in sorted(live.values.items()) if local.contains(p)]
            if not known:
                raise ServiceUnavailable(f"node {node} sleeps and has not reported {local} yet")
            return known
        records = await call_node(self.registry, node, lambda t: t.read(node, local), self.timeout)
        # What was read, not a measurement reported; stamped with the time it was read.
        return self.registry.values_read(node, records) if records else []

    async def write(
        self, node: NodeId, local: Path, records: Sequence[Record], *, replace: bool
    ) -> None:
        if firmware := self._firmware(node, local):
            await firmware.write(node, local, records)
            return
        if self.sleepy(node):
            self._queue(node).submit_write(node, local, records, replace=replace)
            return
        await call_node(self.registry, node, lambda t: t.write(node, local, records), self.timeout)
        self.registry.values(node, [Record(r.path, r.value) for r in records])

    async def execute(self, node: NodeId, local: Path, arguments: str) -> None:
        if firmware := self._firmware(node, local):
            await firmware.execute(node, local, arguments)
            return
        if self.sleepy(node):
            self._queue(node).submit_execute(node, local, arguments)
            return
        await call_node(
            self.registry, node, lambda t: t.execute(node, local, arguments), self.timeout
        )

    def _live(self, node: NodeId) -> LiveNode:
        live = self.registry.live.get(node)
        if live is None:
            raise NotFound(f"node {node} is not paired")
        return live

    def _queue(self, node: NodeId) -> CommandQueue:
        if self.commands is None:
            raise ServiceUnavailable(f"node {node} sleeps and commands cannot be kept for it")
        return self.commands
