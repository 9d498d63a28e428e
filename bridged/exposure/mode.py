"""What every exposure mode is: one interface, so that nothing outside the mode factory
(``bridged.build.build_exposure``) asks which mode it is.

A mode decides four things, and says each here:

* **what it registers**: as a ``RegistryListener`` it is told of nodes paired, unpaired and
  reporting, and shows them upstream (instances of the gateway's objects, end devices behind
  prefixes, or endpoints of their own); ``end_devices`` are the end devices the gateway's own
  endpoint serves at prefixes, ``start``/``stop`` bring up and take down the endpoints the mode
  registers besides the gateway's;
* **how it maps paths**: ``paths``, through the one mapping owner (``mapping.PathMap``);
* **how it routes operations**: a server's Read, Write, Execute of a node path reach the node
  through the client that shows the path. ``nodes_on_gateway`` says whether the gateway's own
  endpoint shows any (the endpoints mode's nodes are reached through their own endpoints);
* **delivery**: ``router`` says through which client, at which upstream path, a node's readings
  go;
* **health**: ``node_health`` shows a node's availability, link and battery upstream (see
  README, "Node health");
* **status**: ``status`` is what ``bridgectl status`` shows of the mode, None when it has
  nothing of its own to say.

Two modes show nodes through the gateway's own endpoint and share that behaviour
(``ThroughGateway``); a new mode implements ``ExposureMode`` and adds one branch to the factory.
"""

from __future__ import annotations

from typing import Any, Protocol

from bridged.delivery import Router, gateway_router
from bridged.engine.client import LwM2MClient
from bridged.engine.dm import EndDevices
from bridged.engine.nodes import NodePaths
from bridged.health import NodeHealth
from bridged.registry import RegistryListener
from bridged.transports.nodes import NodeId

from .mapping import PathMap


class ExposureMode(RegistryListener, Protocol):
    """One exposure mode, as the gateway wires it (see the module docstring)."""

    @property
    def paths(self) -> NodePaths:
        """The node path <-> upstream path mapping of the gateway's own endpoint."""
        ...

    @property
    def end_devices(self) -> EndDevices | None:
        """The end devices served at prefixes by the gateway's endpoint; None if there are
        none in this mode."""
        ...

    @property
    def nodes_on_gateway(self) -> bool:
        """Whether the gateway's own endpoint shows nodes' paths (its requests for them must
        reach the nodes)."""
        ...

    def router(self, client: LwM2MClient) -> Router:
        """Where each node's readings go upstream; ``client`` is the gateway's own."""
        ...

    def node_health(self, node: NodeId, health: NodeHealth) -> None:
        """Show what the gateway knows of the node's health (``bridged.health``) upstream,
        in the objects this mode can say it with."""
        ...

    async def start(self) -> None:
        """Bring up what the mode registers besides the gateway's endpoint."""
        ...

    async def stop(self) -> None:
        """Take down (de-register) what ``start`` brought up."""
        ...

    def status(self) -> dict[str, Any] | None:
        """The mode's part of ``bridgectl status``, None if it has none."""
        ...


class ThroughGateway:
    """The part of ``ExposureMode`` shared by the modes that show every node through the
    gateway's own endpoint: its client serves the node paths and carries the readings, at the
    paths the mode's ``paths`` gives, and the mode registers nothing of its own."""

    paths: PathMap
    nodes_on_gateway = True

    @property
    def end_devices(self) -> EndDevices | None:
        return None

    def router(self, client: LwM2MClient) -> Router:
        return gateway_router(client, self.paths.upstream)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def status(self) -> dict[str, Any] | None:
        return None
