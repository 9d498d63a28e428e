"""The gateway as one object: the parts of a configuration wired together.

``Gateway(config)`` builds, in this order: the state directory, the SQLite stores and the
secrets file, the node registry, the desired-state queue of sleepy nodes, the gateway's object
tree (built-in definitions and the operator's DDF files, /3 and /4 from this machine), the
exposure that mirrors paired nodes into that tree (or, in the endpoints mode, gives each node an
endpoint of its own), the configured transports (each imported only because it is configured),
the LwM2M client, whose requests for node-backed paths reach the nodes through
``NodeOperations``, and the delivery of stored readings to every server by Send. ``start``
brings them up without waiting for any server (systemd's READY means "running", not
"registered"); ``stop`` stops delivery, de-registers, makes every reading durable and closes the
transports, then the database; ``reload`` applies a changed configuration where it can.

Everything the daemon reports (its status, the control socket's event stream, systemd's
STATUS line) comes from here: ``status()`` is a snapshot, ``events`` a publish/subscribe hub
of what happens, ``on_change`` is called whenever the summary may have changed and
``on_drift`` whenever one of its counts that move with every reading did (readings waiting
and dropped, nodes reachable): nothing asks for the summary to find out.

Wiring points for the other parts of the gateway (one place each):

* the parts a configuration names (tree, exposure mode, transports, state directory) and
  the parts wired to whom they tell (node health, the gateway's own faults and the event log,
  firmware updates): ``bridged.build``; the gateway asks its exposure mode
  (``bridged.exposure.mode``), never which one it is;
* the event hub: ``bridged.events``; the JSON views bridgectl shows: ``bridged.views``;
  what the servers say of the registrations: ``bridged.registrations``; bridgectl's
  observations, send and update: ``bridged.server_verbs``;
* operations on node-backed resources: ``NodeOperations`` given to every LwM2M client (the
  gateway's and each node endpoint's) and to the shell (``bridged.shell``);
* command outcomes (applied, failed, expired, superseded): ``_on_command``, which publishes the
  ``command`` events (``CommandQueue`` logs them with NODE and PATH fields).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from bridged.aio import cancel_and_wait
from bridged.commands import CommandQueue
from bridged.delivery import Delivery
from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.device import MachineFacts
from bridged.engine.uplink import OpenUdp
from bridged.exposure.endpoints import NodeEndpoint
from bridged.objects.errors import NotFound
from bridged.operations import NodeOperations
from bridged.registry import NodeNews, NodeRegistry
from bridged.store.commands import Command
from bridged.store.database import (
    connect,
    mark_running,
    mark_stopped,
    prove_writable,
    unclean_stops,
)
from bridged.store.faultlog import FaultLogStore
from bridged.store.health import HealthStore
from bridged.store.nodes import NodeStore, check_name
from bridged.store.readings import DROPPED_UNSTORED, ReadingStore
from bridged.store.secrets import SecretStore
from bridged.transports.base import (
    PairingFailed,
    Transport,
    UnknownTransport,
    normalise_node,
)
from bridged.transports.nodes import NodeId, PairedNode, Secret
from bridged.transports.pairing import pairing

from .build import (
    build_exposure,
    build_faults,
    build_firmware,
    build_health,
    build_transport,
    build_tree,
    open_state_dir,
)
from .config import Config, ConfigError
from .eventlog import EventLog
from .events import EventHub, HeardEvents, NodeEvents
from .faults import RADIO_DOWN, server_source, transport_source
from .protocol import HISTORY_LIMIT, OperationFailed
from .registrations import Registrations
from .server_verbs import ServerVerbs
from .shell import Shell
from .views import (
    bootstrap_json,
    command_json,
    firmware_command_json,
    node_detail_json,
    node_json,
    servers_json,
)

log = logging.getLogger(__name__)

DATABASE = "state.db"
SECRETS = "secrets.json"
EXPIRY_RETRY = 60.0
"""Seconds before commands are looked at again after the state database refused to expire
them (otherwise each expires when its time to live is over)."""
STORAGE_CONDITIONS = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY")
"""SQLite errors of a file system that is full or refuses writes, not of a broken daemon."""
OBSERVED = "observed"
"""The reading store's consumer earlier versions kept in the endpoints mode and moved past
every reading: removed, so that it holds no reading back."""


# -- the gateway -----------------------------------------------------------------------------


def _nothing() -> None:
    """No ``on_drift`` given: nobody shows the counts that move with every reading."""


class Gateway:
    """See the module docstring."""

    def __init__(
        self,
        config: Config,
        *,
        facts: MachineFacts | None = None,
        on_reboot: Callable[[], None] = lambda: None,
        on_change: Callable[[], None] = lambda: None,
        on_drift: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.on_change = on_change
        self.on_drift = on_drift or _nothing
        self.events = EventHub()
        self.started_at = time.time()
        self.transport_state: dict[str, str] = {}
        self._hearing_radio: dict[str, Callable[[], None]] = {}
        """Per running transport, what stops its radio faults reaching ``faults``."""
        self.running = False
        self.client_running = False
        self._join_until = 0.0
        self._registry_task: asyncio.Task[None] | None = None
        self._expiry_task: asyncio.Task[None] | None = None
        state_dir = config.gateway.state_dir
        self._lock = open_state_dir(config)
        try:
            self.db = connect(state_dir / DATABASE)
        except BaseException:
            os.close(self._lock)
            raise
        try:
            self.nodes = NodeStore(self.db)
            self.readings = ReadingStore(self.db, config.store.bounds)
            self.secrets = SecretStore(state_dir / SECRETS)
            self.registry = NodeRegistry(self.nodes, self.secrets, self.readings)
            # The summary's counts that move without an event: readings waiting and dropped
            # (the store), nodes reachable (each node's news), whether storing works.
            # Nodes reachable moves with each report's news: told only to an ``on_drift``
            # (the daemon's, under systemd), with no call between.
            self.readings.moved = self._drifted
            if on_drift is not None:
                self.registry.on_news(self._news_drifted)
            self.registry.on_store_problem(lambda problem: self._changed())
            self.commands = CommandQueue(
                self.db,
                self.registry,
                ttl=config.nodes.command_ttl,
                timeout=config.nodes.timeout,
            )
            self.commands.listen(self._on_command)
            self.tree = build_tree(config, facts, on_reboot)
            event_log = EventLog(self.tree, FaultLogStore(self.db))  # /20/0
            self.faults = build_faults(self.tree, self.registry, self.events, event_log)
            """The gateway's own faults, in its /3/0/11 (bridged/faults.py)."""
            self.registrations = Registrations(
                config.servers,
                self.faults,
                self.events,
                registered=lambda ssid: self.delivery.registered(ssid),
                changed=self._changed,
            )
            """What the servers say of the registrations (bridged/registrations.py)."""
            self.exposure = build_exposure(
                config,
                self.tree,
                self.nodes,
                endpoint_client=self._endpoint_client,
                on_endpoint_event=self.registrations.endpoint,
            )
            with self.nodes.allocating():  # a first start allocates every node's IDs
                self.registry.listen(self.exposure)
            node_events = NodeEvents(self.events, self._changed)
            self.registry.listen(node_events, readings=False)
            # What the radios hear and the nodes' readings become events only while anybody
            # subscribes (bridgectl events, scan): else every report called two listeners
            # with nothing to do.
            self.events.while_subscribed(lambda: self.registry.on_heard(HeardEvents(self.events)))
            self.events.while_subscribed(lambda: self.registry.tell_readings(node_events))
            self.firmware = build_firmware(
                config,
                self.registry,
                self.db,
                self.events,
                lambda uri: self.client.package_session(uri),  # the client is built below
                self.commands.ended,
            )
            """Each updatable node's /5 (shown once its transport is attached: ``start``)."""
            self.transports = {
                s.name: build_transport(config, s, self.registry, self.tree.definitions)
                for s in config.transports
            }
            self.health_store = HealthStore(self.db)
            with self.nodes.allocating():  # and every node's health instances (instances mode)
                self.nodes_health = build_health(
                    config,
                    self.registry,
                    self.transports,
                    self.exposure,
                    self.events,
                    event_log,
                    self.health_store,
                )
            """Every paired node's availability, link and battery (bridged/health.py)."""
            exposure = self.exposure
            self.operations = NodeOperations(
                self.registry,
                exposure.paths,
                self.commands,
                timeout=config.nodes.timeout,
                firmware=self.firmware,
            )
            """Read, Write and Execute of node paths, for servers and bridgectl alike."""
            self.shell = Shell(self.tree, self.operations, exposure.paths, exposure.end_devices)
            """The LwM2M shell's verbs (bridgectl ls, read, write, exec, create, delete)."""
            self.client = LwM2MClient(
                self.tree,
                config.gateway.endpoint,
                config.servers,
                bind=(config.gateway.bind_address, config.gateway.bind_port),
                on_event=self.registrations.registration,
                bootstrap=config.bootstrap,
                state_dir=state_dir,
                on_bootstrap_event=self.registrations.bootstrap,
                nodes=self.operations if exposure.nodes_on_gateway else None,
                end_devices=exposure.end_devices,
            )
            self.server_verbs = ServerVerbs(self.client, self.tree, self.registry, exposure.paths)
            """bridgectl observations, send, update (bridged/server_verbs.py)."""
            # Node readings go upstream from the store, by Send or as notifications, through
            # the gateway's endpoint or, in the endpoints mode, through each node's own.
            if OBSERVED in self.readings.consumers():
                self.readings.remove_consumer(OBSERVED)
            self.delivery = Delivery(
                self.client,
                self.readings,
                exposure.paths.upstream,
                config.delivery.config,
                route=exposure.router(self.client),
            )
            self.registry.on_commit(self.delivery.notify)
        except BaseException:
            self.db.close()
            os.close(self._lock)
            raise

    def _endpoint_client(
        self,
        ep: NodeEndpoint,
        servers: Sequence[ServerConfig],
        bind: tuple[str, int],
        udp: OpenUdp,
    ) -> LwM2MClient:
        """A node endpoint's client: its server requests for the node's objects reach the node
        (and its command queue) like the gateway's do."""
        return LwM2MClient(
            ep.tree,
            ep.name,
            servers,
            bind=bind,
            udp=udp,
            on_event=ep,  # the endpoint is both (``NodeEndpoint.__call__``)
            on_idle=ep,
            nodes=self.operations.over(ep.paths),
        )

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the transports, the registry's group commit and the LwM2M client; returns
        once they run, without waiting for any server to answer."""
        self._mark_running()
        for transport in self.transports.values():
            await self._start_transport(transport)
        self._settle_faults()
        self.firmware.start()
        self._registry_task = asyncio.create_task(self.registry.run(), name="registry")
        self.nodes_health.start()
        self._expiry_task = asyncio.create_task(
            self.commands.run(EXPIRY_RETRY), name="command-expiry"
        )
        try:
            await self._start_lwm2m()
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            gw = self.config.gateway
            raise ConfigError(
                self.config.path,
                "gateway.bind_port",
                f"port {gw.bind_port} on {gw.bind_address} is in use (another bridged?)",
            ) from None
        self.running = True
        log.info(
            "gateway %s up: %d transport(s), %d paired node(s), exposure %s",
            self.config.gateway.endpoint,
            len(self.transports),
            len(self.registry.live),
            self.config.gateway.exposure,
        )
        self._changed()

    async def stop(self) -> None:
        """Stop delivery, de-register (the node endpoints too), stop applying commands (what is
        not applied stays pending), make every reading durable, close the transports (then
        commit what they said while closing) and the database."""
        self.running = False
        self.faults.close()  # a stop ends no fault (bridged/faults.py)
        self.registrations.close()
        if self.client_running:
            await self._stop_lwm2m()
        await cancel_and_wait(self._expiry_task)
        self._expiry_task = None
        await self.commands.close()
        await self.firmware.close()
        await cancel_and_wait(self._registry_task)
        self._registry_task = None
        self.registry.flush()
        for name, transport in self.transports.items():
            await self._stop_transport(name, transport)
        self.registry.flush()
        self.nodes_health.stop()
        self._save_health()
        self._mark_stopped()
        self.db.close()
        os.close(self._lock)

    def _mark_running(self) -> None:
        """Count the previous run if it did not stop cleanly (see ``mark_running``)."""
        try:
            unclean = mark_running(self.db)
        except sqlite3.Error as e:
            log.warning("the state database does not take a write at start: %s", e)
            return
        if unclean:
            log.warning(
                "the previous run did not stop cleanly (kill -9, a crash, a power cut): what "
                "was still on its way from the radios to it may be lost (counted: "
                "readings.unclean_stops in bridgectl status)"
            )

    def _save_health(self) -> None:
        """Keep every node's health as it is now, for the next start to show."""
        try:
            self.health_store.save_now(self.nodes_health.unsaved(everything=True))
        except sqlite3.Error as e:
            log.warning("the state database does not take the nodes' health at stop: %s", e)

    def _mark_stopped(self) -> None:
        """A clean stop, unless readings could not be stored: they are lost with the process,
        which the next start then counts."""
        lost = self.registry.unstored
        if lost:
            log.error(
                "%d readings are lost: the state database refused them until the stop (%s)",
                lost,
                self.registry.store_problem,
            )
            return
        try:
            mark_stopped(self.db)
        except sqlite3.Error as e:
            log.warning("the state database does not take a write at stop: %s", e)

    async def reload(self, config: Config) -> list[str]:
        """Apply what can change while running: the log level, the store bounds and the
        transport sections (a changed transport is restarted). Returns the tables that changed
        but need a restart (gateway, servers, bootstrap, nodes, delivery)."""
        old = self.config
        before = {s.name: s for s in old.transports}
        after = {s.name: s for s in config.transports}
        # Built first: a transport refusing its new table leaves everything as it was.
        rebuilt = {
            name: build_transport(config, section, self.registry, self.tree.definitions)
            for name, section in after.items()
            if before.get(name) != section
        }
        # What needs a restart stays as it runs, so status() and the next reload see that.
        self.config = replace(
            config,
            gateway=old.gateway,
            servers=old.servers,
            bootstrap=old.bootstrap,
            nodes=old.nodes,
            delivery=old.delivery,
        )
        logging.getLogger().setLevel(config.log_level.upper())
        self.readings.bounds = config.store.bounds
        self.nodes_health.policy = config.health
        self.registry.reschedule()
        pending = [
            key
            for key, changed in (
                ("gateway", old.gateway != config.gateway),
                ("server", old.servers != config.servers),
                ("bootstrap", old.bootstrap != config.bootstrap),
                ("nodes", old.nodes != config.nodes),
                ("delivery", old.delivery != config.delivery),
            )
            if changed
        ]
        for name in [n for n in before if n not in after or n in rebuilt]:
            transport = self.transports.pop(name)
            await self._stop_transport(name, transport)
            self.registry.transports.pop(name, None)
            self.transport_state.pop(name, None)
        for name, transport in rebuilt.items():
            self.transports[name] = transport
            await self._start_transport(transport)
        self._settle_faults()
        for key in pending:
            log.warning("configuration: [%s] changed; it takes effect at the next restart", key)
        log.info(
            "configuration reloaded from %s (log level %s, store bounds %d readings / %g s%s)",
            config.path,
            config.log_level,
            config.store.max_readings,
            config.store.max_age,
            f", restarted transports {', '.join(rebuilt)}" if rebuilt else "",
        )
        self._changed()
        return pending

    async def _start_lwm2m(self) -> None:
        """Register the gateway's endpoint, bring up the node endpoints, start delivery."""
        await self.client.start()
        await self.exposure.start()
        await self.delivery.start()
        self.client_running = True

    async def _stop_lwm2m(self) -> None:
        """Stop delivery, then de-register the node endpoints and the gateway's."""
        self.client_running = False
        await self.delivery.stop()
        await self.exposure.stop()
        await self.client.stop()

    def _settle_faults(self) -> None:
        """Transports started (at a start, or by a reload): each radio said whether it works,
        so a fault carried across their stop that none reported is over; the servers say so
        as they answer."""
        self.faults.settle({server_source(s.uri) for s in self.config.servers})

    async def _start_transport(self, transport: Transport) -> None:
        self.registry.attach(transport)
        self._hearing_radio[transport.name] = transport.fault_listeners.add(self.faults.radio)
        try:
            await transport.start()
        except Exception as e:
            # One radio that cannot start must not stop the others, nor the gateway.
            self.transport_state[transport.name] = f"failed: {e}"
            log.error("transport %s did not start: %s", transport.name, e)
            source = transport_source(transport.name)
            self.faults.raise_fault(source, RADIO_DOWN, f"failed: {e}")
        else:
            self.transport_state[transport.name] = "up"
        self.events.publish(
            "transport", name=transport.name, state=self.transport_state[transport.name]
        )

    async def _stop_transport(self, name: str, transport: Transport) -> None:
        """Stop ``transport``, deliberately (a stop, a reload): that ends no fault of its radio
        (bridged/faults.py). Its fault is carried to the next start of its transport, which
        finds it again or gone (``_settle_faults``); what it says as it closes is not heard."""
        stop_hearing = self._hearing_radio.pop(name, None)
        if stop_hearing is not None:  # None: a start that failed before this transport's
            stop_hearing()
        self.faults.carry(transport_source(name))
        try:
            await transport.stop()
        except Exception as e:
            log.error("transport %s did not stop cleanly: %s", name, e)
        self.transport_state[name] = "down"

    # -- what happens ------------------------------------------------------------------------

    def _changed(self) -> None:
        self.on_change()

    def _drifted(self) -> None:
        self.on_drift()

    def _news_drifted(self, node: NodeId, news: NodeNews) -> None:
        """A node's news (``NodeRegistry.on_news``): its reachability may have moved."""
        self.on_drift()

    def _on_command(self, command: Command) -> None:
        """A command queued or ended (CommandQueue has logged it): stream it, and the pending
        count in the status changed."""
        self.events.publish("command", **command_json(command))
        self._changed()

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """A snapshot of the gateway (``bridgectl status``)."""
        live = list(self.registry.live.values())
        now = time.time()
        dropped = self.readings.dropped()
        registry = self.registry
        if registry.unstored_dropped:
            unstored = dropped.get(DROPPED_UNSTORED, 0) + registry.unstored_dropped
            dropped[DROPPED_UNSTORED] = unstored
        return {
            "endpoint": self.config.gateway.endpoint,
            "exposure": self.config.gateway.exposure,
            "uptime": now - self.started_at,
            "running": self.running,
            "lwm2m": "started" if self.client_running else "stopped",
            "servers": servers_json(
                self.client,
                self.config.servers,
                self.registrations.last,
                self.delivery,
                running=self.client_running,
            ),
            "bootstrap": bootstrap_json(self.registrations.bootstrap_event),
            "nodes": {
                "paired": len(live),
                "reachable": sum(1 for n in live if n.state is not None and n.state.reachable),
                "heard": len(self.registry.heard_nodes),
                "unavailable": self.nodes_health.unavailable,
            },
            "faults": [
                {"source": f.source, "code": f.code, "why": f.why}
                for f in self.faults.present.values()
            ],
            "readings": {
                "stored": len(self.readings),
                "dropped": sum(dropped.values()),
                "dropped_by_bound": dropped,
                "unpaired": registry.unpaired_readings,
                "unstored": registry.unstored,
                "unclean_stops": unclean_stops(self.db),
                "problem": registry.store_problem,
            },
            "transports": self.transports_status(),
            "permit_join": max(self._join_until - time.monotonic(), 0.0),
            "commands": {"pending": len(self.commands.pending())},
            "endpoints": self.exposure.status(),
        }

    def transports_status(self) -> dict[str, str]:
        """Each transport's state (up, down, failed: ...), with what its radio is doing when
        it is up: a transport runs even while its dongle or adapter is missing."""
        out = {}
        for name, state in self.transport_state.items():
            transport = self.transports.get(name)
            condition = None if transport is None else transport.condition
            out[name] = f"{state}, {condition}" if state == "up" and condition else state
        return out

    def health(self) -> list[str]:
        """What is wrong, for the watchdog (empty when healthy): the registry's group commit
        must be running (readings are committed as they come; its task retries and expires
        them, and sleeps while there is nothing to do) and the database must take a write."""
        problems = []
        task = self._registry_task
        if task is None or task.done():
            problems.append("the registry's group commit is not running")
        try:
            prove_writable(self.db)
        except sqlite3.Error as e:
            # A full or read-only file system is a condition the daemon lives through (its
            # readings wait in memory, see NodeRegistry); a restart would lose them.
            if getattr(e, "sqlite_errorname", "").startswith(STORAGE_CONDITIONS):
                return problems
            problems.append(f"the state database does not take a write: {e}")
        return problems

    # -- nodes -------------------------------------------------------------------------------

    def node_list(self) -> list[dict[str, Any]]:
        now = time.time()
        nodes = sorted(self.registry.live.values(), key=lambda n: n.id)
        return [node_json(n, now, self.nodes_health.health(n.id)) for n in nodes]

    def node(self, node_id: NodeId) -> dict[str, Any]:
        """One paired node in detail: what ``node_list`` says, its upstream paths and values
        (its reports waiting for the group commit are committed first: shown is durable)."""
        self.registry.flush()
        live = self.registry.live.get(node_id)
        if live is None:
            raise NotFound(f"node {node_id} is not paired")
        return node_detail_json(
            live,
            time.time(),
            self.nodes_health.health(node_id),
            secrets=self.secrets.get(node_id),
            upstream=self.exposure.paths.upstream,
            firmware=self.firmware.status(node_id),
        )

    async def pair(
        self,
        node_id: NodeId,
        *,
        name: str | None = None,
        profile: str = "",
        sleepy: bool = False,
        secrets: Mapping[str, Secret] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Pair ``node_id`` (its address in any spelling its transport takes, see
        ``normalise_node``; name and profile default to what was heard of it), once its
        transport did what pairing needs on the radio (``Transport.prepare_pair``: checking
        its keys, bonding), and its keys against its transport's declaration
        (transports/pairing.py). ValueError for an address, key or option the node cannot have;
        OperationFailed, with the radio's reason, when the transport could not do it (the node
        is then not paired)."""
        node = self._to_pair(node_id, name, profile, sleepy, options)
        pairing(node.id.transport).check(secrets or {})
        transport = self.transports.get(node.id.transport)
        if transport is not None:
            try:
                await transport.prepare_pair(node, secrets or {})
            except PairingFailed as e:
                raise OperationFailed(str(e)) from None
        live = self.registry.pair(node, secrets)
        return node_json(live, time.time())

    def _to_pair(
        self,
        node_id: NodeId,
        name: str | None,
        profile: str,
        sleepy: bool,
        options: Mapping[str, Any] | None,
    ) -> PairedNode:
        try:
            node_id = normalise_node(node_id)
        except UnknownTransport as e:
            raise ValueError(str(e)) from None
        heard = self.registry.heard_nodes.get(node_id)
        if name:
            check_name(name)
        name = name or (heard.name if heard and heard.name else str(node_id))
        profile = profile or (heard.profile if heard and heard.profile else "")
        return PairedNode(node_id, name, profile, sleepy, options=dict(options or {}))

    def unpair(self, node_id: NodeId) -> None:
        if not self.registry.unpair(node_id):
            raise NotFound(f"node {node_id} is not paired")

    def commands_pending(self, node: NodeId | None = None) -> list[dict[str, Any]]:
        """The desired-state queue (of ``node`` only, when given), oldest first, then the
        firmware updates under way (which wait for a sleepy node's wakes as well)."""
        return [command_json(c) for c in self.commands.pending(node)] + [
            firmware_command_json(n, since, self.firmware.status(n))
            for n, since in self.firmware.under_way(node)
        ]

    def commands_history(
        self, node: NodeId | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The ``limit`` commands that ended most recently (of ``node``, among the last
        HISTORY_LIMIT, when given), newest first, with their outcome."""
        ended = self.commands.history(limit if node is None else HISTORY_LIMIT)
        return [command_json(c) for c in ended if node is None or c.node == node][:limit]

    def permit_join(self, seconds: float) -> float:
        self.registry.permit_join(seconds)
        self._join_until = time.monotonic() + seconds
        self.events.publish("permit_join", seconds=seconds)
        return max(seconds, 0.0)

    # -- the LwM2M client (observe list, send, update, start/stop) ---------------------------

    async def start_client(self) -> None:
        """Register again after ``stop_client`` (``bridgectl start``), the node endpoints
        too."""
        if self.client_running:
            raise OperationFailed("the LwM2M client is already started")
        await self._start_lwm2m()
        self._changed()

    async def stop_client(self) -> None:
        """Stop delivery, de-register from every server (the node endpoints too) and stay off
        until ``start_client``."""
        if not self.client_running:
            raise OperationFailed("the LwM2M client is already stopped")
        await self._stop_lwm2m()
        self._changed()
