"""What bridgectl asks of the gateway's LwM2M client toward its servers: the observations each
server holds (``bridgectl observations``), a Send now (``bridgectl send``), a registration
Update now (``bridgectl update``).

A Send of a node's path carries what the node measured, at the times it measured it: the
node's last reported values at the upstream paths the mapping gives (``/3303/4/5700``,
``/dev0/3303/0``), never values the gateway made up; a Send of the gateway's own path carries
its tree's values.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from bridged.engine.client import LwM2MClient
from bridged.engine.nodes import NodePaths
from bridged.engine.send import SendOutcome
from bridged.objects.errors import BadRequest, NotFound
from bridged.objects.paths import ROOT, Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.registry import NodeRegistry

from .protocol import OperationFailed


class ServerVerbs:
    """See the module docstring: the gateway's ``client``, its ``tree``, the node values of
    ``registry`` at the upstream paths of the exposure mode's ``paths``."""

    def __init__(
        self, client: LwM2MClient, tree: ObjectTree, registry: NodeRegistry, paths: NodePaths
    ) -> None:
        self.client = client
        self.tree = tree
        self.registry = registry
        self.paths = paths

    def _sessions(self, server: int | None) -> Iterator[Any]:
        if not self.client.sessions:
            raise OperationFailed("the LwM2M client is stopped or has no server session yet")
        found = [s for s in self.client.sessions if server is None or s.short_server_id == server]
        if not found:
            raise OperationFailed(f"no server with short server ID {server}")
        return iter(found)

    def observations(self, server: int | None = None) -> list[dict[str, Any]]:
        return [
            {
                "server": s.uri,
                "short_server_id": s.short_server_id,
                "observations": [[str(p) for p in paths] for paths in s.observed_paths()],
            }
            for s in self._sessions(server)
        ]

    async def send(self, paths: Sequence[Path], server: int | None = None) -> SendOutcome:
        records: list[Record] = []
        for path in paths:
            if path == ROOT:
                raise BadRequest("send needs resource paths")
            records.extend(self._send_records(path))
        return await self.client.send(records, server)

    def _send_records(self, path: Path) -> list[Record]:
        """What a Send of ``path`` carries: for a node's path (``/3303/4/5700``,
        ``/dev0/3303/0``; the mapping says which), the node's last reported values there with
        the times it measured them; for the gateway's own, the tree's values."""
        found = self.paths.local(path)
        if found is None:
            if path.prefix is not None:
                raise NotFound(f"{path} is no node's instance or resource")
            return self.tree.read(path)
        node, local = found
        self.registry.flush()  # its reports waiting for the group commit too: shown is durable
        live = self.registry.live.get(node)
        records = []
        for p, r in sorted(live.values.items() if live else ()):
            upstream = self.paths.upstream(node, p) if local.contains(p) else None
            if upstream is not None and path.contains(upstream):
                records.append(Record(upstream, r.value, r.time))
        if not records:
            raise NotFound(f"node {node} has reported no value at {local} yet")
        return records

    def update(self, server: int | None = None) -> list[str]:
        """Send a registration Update now (to one server or all)."""
        sessions = list(self._sessions(server))
        for s in sessions:
            s.trigger_update()
        return [s.uri for s in sessions]
