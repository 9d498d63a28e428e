"""The gateway's parts, built from its configuration: its object tree, its exposure mode, its
transports, its state directory, and the parts wired to what they tell (node health, the
gateway's own faults, firmware updates). Each refusal of the configuration is a ``ConfigError``
naming the table and key, so ``bridged --check`` and the daemon's start-up refuse alike.

``build_exposure`` is the one place an exposure mode is chosen: everything else asks the mode
(``bridged.exposure.mode.ExposureMode``), never which one it is.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bridged.engine.device import (
    MachineFacts,
    install_device_objects,
    read_machine_facts,
    read_memory_available,
)
from bridged.engine.registration import RegistrationEvent
from bridged.exposure.endpoints import EndpointsExposure, MakeClient, NodeEndpoint
from bridged.exposure.gateway import GatewayExposure
from bridged.exposure.instances import InstancesExposure
from bridged.exposure.mode import ExposureMode
from bridged.hosting import transport_host
from bridged.objects.builtin import builtin_definitions
from bridged.objects.definitions import Definitions
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.registry import NodeRegistry
from bridged.store.files import DirectoryLocked, lock_directory
from bridged.store.firmware import FirmwareStore
from bridged.store.health import HealthStore
from bridged.store.nodes import NodeStore
from bridged.transports.base import (
    Heard,
    NodeState,
    Transport,
    TransportConfigError,
    TransportEvents,
    UnknownTransport,
    transport_class,
)
from bridged.transports.nodes import NodeId

from .config import Config, ConfigError, TransportSection, transport_error
from .download import Credentials
from .eventlog import EventLog
from .events import EventHub
from .faults import ClockWatch, Fault, GatewayFaults, own_source
from .firmware import FirmwareUpdates, UpdateEnded
from .health import HealthFeed, HealthMonitor, HealthNews


def build_tree(
    config: Config, facts: MachineFacts | None, on_reboot: Callable[[], None]
) -> ObjectTree:
    """The gateway's own tree: built-in definitions plus the operator's DDF files, /3 and /4
    describing this machine, read when a server reads them (or the given ``facts``, fixed)."""
    definitions = builtin_definitions()
    objects_dir = config.gateway.objects_dir
    if objects_dir is not None:
        # Imported here: the XML parser is kept for good once imported, and only a gateway
        # with DDF files of its own needs it.
        from bridged.objects.ddf import DefinitionError, load_ddf_dir

        try:
            definitions.extend(load_ddf_dir(objects_dir))
        except (DefinitionError, OSError) as e:
            raise ConfigError(config.path, "gateway.objects_dir", str(e)) from None
    tree = ObjectTree(definitions)
    live = facts is None
    install_device_objects(
        tree,
        facts or read_machine_facts(),
        on_reboot=on_reboot,
        machine=read_machine_facts if live else None,
        memory=read_memory_available if live else None,
    )
    return tree


def build_exposure(
    config: Config,
    tree: ObjectTree,
    nodes: NodeStore,
    *,
    endpoint_client: MakeClient | None = None,
    on_endpoint_event: Callable[[NodeEndpoint, RegistrationEvent], None] = lambda ep, e: None,
) -> ExposureMode:
    """The exposure mode of ``[gateway] exposure``: the one place modes are chosen (everything
    else asks the mode, see ``ExposureMode``). The
    endpoints mode builds each node's client with ``endpoint_client`` and reports their
    registration events to ``on_endpoint_event``."""
    mode = config.gateway.exposure
    if mode == "instances":
        return InstancesExposure(tree, nodes)
    if mode == "gateway":
        return GatewayExposure(tree, nodes)
    if mode == "endpoints":
        return EndpointsExposure(
            tree.definitions,
            config.gateway.endpoint,
            config.servers,
            host=config.gateway.bind_address,
            concurrency=config.gateway.endpoints_concurrency,
            on_event=on_endpoint_event,
            make_client=endpoint_client,
        )
    raise ConfigError(config.path, "gateway.exposure", f"unknown exposure mode {mode!r}")


def build_health(
    config: Config,
    registry: NodeRegistry,
    transports: Mapping[str, Transport],
    exposure: ExposureMode,
    events: EventHub,
    event_log: EventLog,
    store: HealthStore,
) -> HealthMonitor:
    """Node health (``bridged.health``), fed by the registry (what is heard, each node's
    state, its reports) and told to the exposure mode, the event hub and the event log
    (``HealthNews``). ``transports`` is the gateway's own mapping, read at each new node, so a
    transport a reload restarted still names its nodes' Network Bearer. Each node's health
    starts as ``store`` kept it and is kept there with the readings' group commits (see
    ``HealthMonitor.unsaved``)."""
    monitor = HealthMonitor(config.health, saved=store.load())
    registry.readings_store.joining.append(lambda: store.saving(monitor.unsaved()))
    news = HealthNews(exposure, events, event_log)
    monitor.listen(news)
    monitor.on_removed(news.removed)
    registry.on_news(monitor.news)

    def bearer(node: NodeId) -> int | None:
        transport = transports.get(node.transport)
        return None if transport is None else transport.bearer

    registry.listen(HealthFeed(monitor, bearer), readings=False)  # they come with its news
    news.unpaired(registry.live)  # each paired node was added by then
    return monitor


def build_faults(
    tree: ObjectTree, registry: NodeRegistry, events: EventHub, event_log: EventLog
) -> GatewayFaults:
    """The gateway's own faults in its /3/0/11 (``bridged.faults``): the store refusing
    writes (told by the registry) and a clock that jumped (checked once per group commit of
    readings, whose times it would make wrong, not per advert heard); each
    fault starting and ending is a ``gateway.fault`` event and a line of the event log."""
    carried = [
        Fault(e.source, e.code, e.why)
        for e in event_log.store.still_raised()
        if own_source(e.source)
    ]
    faults = GatewayFaults(tree, carried)

    def told(fault: Fault, present: bool) -> None:
        events.publish(
            "gateway.fault", source=fault.source, code=fault.code, why=fault.why, present=present
        )
        event_log.record(fault.source, fault.code, present, fault.why)

    faults.listen(told)
    clock = ClockWatch(faults)
    registry.on_commit(clock.check)
    registry.on_store_problem(faults.store_problem)
    return faults


FIRMWARE_DIR = "firmware"
"""The state directory's folder of the packages kept for nodes' updates."""


def build_firmware(
    config: Config,
    registry: NodeRegistry,
    db: sqlite3.Connection,
    events: EventHub,
    credentials: Credentials,
    ended: UpdateEnded,
) -> FirmwareUpdates:
    """Each updatable node's /5 (``bridged.firmware``), a registry listener, its package
    files in the state directory, its progress streamed as ``firmware`` events, coaps://
    packages fetched with ``credentials``, https:// ones from servers the configured trust
    store vouches for, each executed update kept by ``ended`` as a command once it ends."""
    firmware = FirmwareUpdates(
        registry,
        FirmwareStore(db),
        config.gateway.state_dir / FIRMWARE_DIR,
        max_size=config.nodes.firmware_max_size,
        timeout=config.nodes.firmware_timeout,
        events=events,
        credentials=credentials,
        trust=config.nodes.firmware_trust_store,
        ended=ended,
    )
    registry.listen(firmware, readings=False)
    return firmware


def build_transport(
    config: Config, section: TransportSection, events: TransportEvents, definitions: Definitions
) -> Transport:
    """Import and construct the transport of ``[transport.<name>]``, lent ``definitions``, the
    gateway's CoAP message layer and its files in the state directory; its refusal of its
    table is a ConfigError naming the section."""
    try:
        cls = transport_class(section.name)
        host = transport_host(definitions, config.gateway.state_dir)
        return cls(section.options, events, host)
    except (UnknownTransport, TransportConfigError) as e:
        raise transport_error(config, section.name, e) from None


class _Unheard:
    """The ``TransportEvents`` of a transport built only to check its table: it never runs,
    so nothing ever reaches these."""

    def heard(self, heard: Heard) -> None: ...

    def readings(self, node: NodeId, records: Sequence[Record]) -> None: ...

    def values(self, node: NodeId, records: Sequence[Record]) -> None: ...

    def session(self, node: NodeId, session: Mapping[str, Any] | None) -> None: ...

    async def durable(self) -> None: ...

    def objects(self, node: NodeId, objects: Mapping[int, Sequence[int]]) -> None: ...

    def state(self, node: NodeId, state: NodeState) -> None: ...

    def admit(self, heard: Heard) -> bool:
        return False


def check_transports(config: Config) -> None:
    """Build (without starting) the transport of every ``[transport.<name>]``, so that
    ``bridged --check`` refuses a table the daemon would refuse at start-up (ConfigError)."""
    for section in config.transports:
        build_transport(config, section, _Unheard(), builtin_definitions())


def make_state_dir(path: os.PathLike[str] | str) -> None:
    """Create the state directory 0750 (systemd's StateDirectory= does it under the unit)."""
    os.makedirs(path, mode=0o750, exist_ok=True)


def open_state_dir(config: Config) -> int:
    """Create the state directory and take its lock (see ``lock_directory``); returns the
    lock's file descriptor. A directory that cannot be made, or that another daemon holds,
    is a ConfigError on ``gateway.state_dir``."""
    path = config.gateway.state_dir
    try:
        make_state_dir(path)
        return lock_directory(path)
    except DirectoryLocked as e:
        raise ConfigError(config.path, "gateway.state_dir", str(e)) from None
    except OSError as e:
        raise ConfigError(config.path, "gateway.state_dir", f"{path}: {e.strerror or e}") from None
