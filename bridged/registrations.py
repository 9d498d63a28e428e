"""What the servers say of the gateway's registrations, and where it goes.

The LwM2M clients (the gateway's, and each node endpoint's in the endpoints mode) and the
bootstrap client report their events here: each server's last registration event and the
bootstrap's are kept for ``bridgectl status``; a registration or an Update that failed is the
gateway's own fault "server unreachable" (/3/0/11), over once one completes; a completed
registration tells delivery the server is there (it stops backing off); each event is streamed
(``registration``, ``endpoint``, ``bootstrap``). Node endpoints' events come in bursts (after a
restart thousands register within seconds), so they change the status once per burst.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from bridged.engine.bootstrap_client import BootstrapEvent
from bridged.engine.client import ServerConfig
from bridged.engine.registration import EventKind, RegistrationEvent
from bridged.exposure.endpoints import NodeEndpoint

from .events import EventHub
from .faults import SERVER_UNREACHABLE, GatewayFaults, server_source

ENDPOINT_STATUS_DELAY = 0.5
"""Node endpoints' registration events within this many seconds make one status change (after
a restart, thousands of endpoints register within seconds)."""

FAILURES = (EventKind.REGISTRATION_FAILURE, EventKind.UPDATE_FAILURE)
COMPLETIONS = (EventKind.REGISTRATION_COMPLETE, EventKind.UPDATE_COMPLETE)


class Registrations:
    """See the module docstring. ``registered`` is told the Short Server ID of a server whose
    registration completed (None: a server not configured, one a Bootstrap-Server provisioned);
    ``changed`` that the status may have changed."""

    def __init__(
        self,
        servers: Sequence[ServerConfig],
        faults: GatewayFaults,
        events: EventHub,
        *,
        registered: Callable[[int | None], None],
        changed: Callable[[], None],
    ) -> None:
        self.servers = servers
        self.faults = faults
        self.events = events
        self.registered = registered
        self.changed = changed
        self.last: dict[str, RegistrationEvent] = {}
        """Each server's last registration event (by its URI)."""
        self.bootstrap_event: BootstrapEvent | None = None
        self._status_later: asyncio.TimerHandle | None = None

    def registration(self, event: RegistrationEvent) -> None:
        """An event of the gateway's own registration with a server. The status summary
        changed unless the server's previous event was of the same kind in the same state
        (a Register retried toward a server that is down, an Update like the one before):
        the summary shows the registration's state, and working it out again for each retry
        was an idle gateway's wake-up and most of its CPU for nothing."""
        previous = self.last.get(event.server)
        self.last[event.server] = event
        source = server_source(event.server)
        if event.kind in FAILURES:
            why = f"{event.kind.value}: {event.detail}" if event.detail else event.kind.value
            self.faults.raise_fault(source, SERVER_UNREACHABLE, why)
        elif event.kind in COMPLETIONS:
            self.faults.clear(source)
        self._completed(event)
        self.events.publish(
            "registration",
            server=event.server,
            event=event.kind.value,
            state=event.state.value,
            detail=event.detail,
        )
        if previous is None or (previous.kind, previous.state) != (event.kind, event.state):
            self.changed()

    def endpoint(self, ep: NodeEndpoint, event: RegistrationEvent) -> None:
        """A node endpoint's registration event: streamed as it comes, and counted in the
        status once the burst is over."""
        self._completed(event)
        self.events.publish(
            "endpoint",
            node=str(ep.node),
            endpoint=ep.name,
            server=event.server,
            event=event.kind.value,
            state=event.state.value,
            detail=event.detail,
        )
        if self._status_later is None:
            self._status_later = asyncio.get_running_loop().call_later(
                ENDPOINT_STATUS_DELAY, self._endpoints_changed
            )

    def bootstrap(self, event: BootstrapEvent) -> None:
        self.bootstrap_event = event
        self.events.publish(
            "bootstrap",
            server=event.server,
            event=event.kind.value,
            state=event.state.value,
            detail=event.detail,
        )
        self.changed()

    def close(self) -> None:
        """No status change after the stop."""
        if self._status_later is not None:
            self._status_later.cancel()

    def _completed(self, event: RegistrationEvent) -> None:
        """A completed registration says the server is there: delivery to it stops backing
        off (a server a Bootstrap-Server provisioned is not configured: every server)."""
        if event.kind is EventKind.REGISTRATION_COMPLETE:
            ssid = next((s.short_server_id for s in self.servers if s.uri == event.server), None)
            self.registered(ssid)

    def _endpoints_changed(self) -> None:
        self._status_later = None
        self.changed()
