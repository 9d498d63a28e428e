"""The ``endpoints`` exposure mode: every paired node registers as a LwM2M endpoint of its own.

Any LwM2M server, 1.0 or 1.1, then lists each node as a device, with no knowledge of gateways.
Each node gets a ``LwM2MClient`` of its own over a tree of its own, with its own UDP socket
(a server answers, and sends its requests, to the address a registration came from), and the
gateway's server configuration. The sockets share one CoAP engine (``bridged.engine.sockets``:
one aiocoap context, one message layer), which ``stop`` closes once every endpoint is down.

* **Endpoint name**: ``<gateway endpoint>:<node id>``, e.g. ``gw-1:ble:A4:C1:38:00:11:22``.
  Both parts are stable (the node id is the transport's normalised address), so a node keeps
  its endpoint, and the server its history, across restarts and re-pairing; the gateway's name
  in front keeps two gateways that hear the same node apart.
* **/3 Device**: the node's own /3/0 values as its transport reported them (0 Manufacturer,
  1 Model Number, 2 Serial Number, 3 Firmware Version, 9 Battery Level, ...), with the
  mandatory 11 Error Code (the node's health, ``bridged.health``: 0 without a fault), 20
  Battery Status and a /4/0 with the node's bearer and link quality (``node_health``), 16
  Supported Binding ("U"), and 17 Device Type set
  to the node's name, the text a server's device list shows next to the endpoint. The node's
  sensors carry the name in 5750 Application Type too, as in the other modes (unless
  5750 is the node's data, as 3347 Push button's event type: ``mirror.initial_values``).
* **/5 Firmware Update** for a node whose transport can update it: the node's /5/0, kept by the
  gateway (bridged/firmware.py) like in the gateway mode.
* **Pairing** registers the node's endpoint, **unpairing** de-registers it.

Many nodes must not become a thundering herd after a reboot: endpoints are brought up one at a
time every ``interval`` seconds, and at most ``concurrency`` are between opening their socket
and their first registration outcome (registered or failed) at any time, each for at most
``settle`` seconds. So a server gets at most ``1 / interval`` Registers a second, and fewer
when it answers slowly: its answers free the slots. A Register that fails (no answer after
its retransmissions, a refusal) holds up no other endpoint; its registrar retries it with the
back-off of /1/x/17-20, and since first attempts were paced, so are the retries.

An endpoint whose socket cannot open (out of file descriptors: each endpoint holds one, so
5,000 nodes need a limit well above the usual 1,024; out of ports; a bind address that does not
resolve yet) is logged with the reason and brought up again later, with the same back-off
(``start_retry``, by default the first server's /1/x/17-20), holding up no other.

``stop`` de-registers ``concurrency`` endpoints at a time but waits at most ``stop_timeout``
seconds in all: a server that stopped answering must not hold a shutdown for
``request_timeout`` per endpoint. What is not de-registered by then is closed without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Sequence
from typing import Any

import aiocoap

from bridged.aio import Flag, cancel_and_wait
from bridged.delivery import Route, Router
from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.dm import EndDevices
from bridged.engine.registration import EventKind, RegistrationEvent, RetryPolicy
from bridged.engine.sockets import SharedEngine
from bridged.engine.uplink import OpenUdp
from bridged.health import NodeHealth
from bridged.objects.definitions import Definitions
from bridged.objects.ids import SINGLE, Device
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record, Value
from bridged.registry import LiveNode
from bridged.transports.nodes import NodeId

from .mapping import NodePath, PathMap
from .mirror import NodeMirror

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 32
DEFAULT_INTERVAL = 0.005
"""Seconds between two endpoints brought up: 5,000 nodes take 25 s, far below a lifetime."""
DEFAULT_SETTLE = 30.0
DEFAULT_STOP_TIMEOUT = 30.0
"""Seconds ``stop`` waits for De-registers: a third of systemd's default stop timeout."""
SPARE_FILES = 64
"""Open files the daemon needs besides one socket per endpoint (store, transports, control)."""

MakeClient = Callable[
    ["NodeEndpoint", Sequence[ServerConfig], tuple[str, int], OpenUdp], LwM2MClient
]
"""Builds the client of one endpoint, bound to the given address, opening its NoSec uplinks
with the given ``OpenUdp`` (the shared engine's), reporting its registration events and the
end of each exchange to the endpoint (``on_event=ep, on_idle=ep``: ``NodeEndpoint.__call__``;
the default: a plain ``LwM2MClient`` over its tree)."""


def endpoint_name(gateway: str, node: NodeId) -> str:
    """The endpoint name of ``node`` behind the gateway named ``gateway`` (see module doc)."""
    return f"{gateway}:{node}"


def device_values(node: LiveNode) -> list[tuple[int, Value | dict[int, Value]]]:
    """The endpoint's /3/0 before the node's own values: what LwM2M makes mandatory, and the
    node's name as its Device Type."""
    return [
        (Device.ERROR_CODE, {0: 0}),
        (Device.SUPPORTED_BINDINGS, "U"),
        (Device.DEVICE_TYPE, node.paired.name),
    ]


class NodeEndpoint(NodeMirror):
    """One node as an endpoint: its name, its tree and, once brought up, its client. It is
    the mirror of its node in its tree (``NodeMirror``: ``sync``, ``apply``, ``show_health``),
    not the holder of one (72 bytes more of each of 10,000 endpoints, issue 17).

    A quiet endpoint's tree rests (``ObjectTree.rest``: its objects held as a ``FrozenTree``,
    thawed by whatever uses them next): most of 10,000 endpoints are quiet between their
    Updates, and their trees' dicts were a fifth of the endpoints mode's memory. ``rest`` is
    the one place that decides when: after what the node told (its objects, readings,
    health), once each exchange with a server is over (its request answered, a Send) and
    after each registration exchange; never while a server observes something of the
    endpoint (its notifications read the tree)."""

    __slots__ = (
        "_report",
        "client",
        "name",
        "node",
        "settled",
    )

    def __init__(
        self,
        node: LiveNode,
        name: str,
        definitions: Definitions,
        report: Callable[[NodeEndpoint, RegistrationEvent], None] = lambda ep, e: None,
    ) -> None:
        self.node = node.id
        self.name = name
        tree = ObjectTree(definitions)
        tree.create_instance(Device.OBJECT, SINGLE, device_values(node))
        # ``paths``: the node's instances at their node-local paths; the endpoint's own /0,
        # /1 and its own /3/0 resources are not the node's.
        super().__init__(tree, PathMap(node=self.node))
        self.sync(node)
        self.client: LwM2MClient | None = None
        self.settled = Flag()
        """Set at the first registration outcome (registered or failed) since it was brought
        up; then ``REGISTERED`` or ``FAILED``, the flags of all settled endpoints (48 bytes
        each), which say the last outcome (``registered``): no slot for it (issue 17)."""
        self._report = report
        self.rest()

    def attach(self, client: LwM2MClient) -> None:
        """``client`` serves the endpoint now (made with ``on_idle=ep``: the tree rests once
        each exchange of it is over)."""
        self.client = client

    def rest(self) -> None:
        """Let the tree rest unless a server observes something (the class docstring)."""
        client = self.client
        if client is None or not client.observing():
            self.tree.rest()

    def __call__(self, e: RegistrationEvent | None = None) -> None:
        """What its client tells it (``_default_client``: ``on_event=ep, on_idle=ep``): a
        registration event (``event``), or, without one, the end of an exchange (``rest``).
        The endpoint itself, not its two bound methods: 128 bytes of each of 10,000 node
        endpoints (issue 17)."""
        if e is None:
            self.rest()
        else:
            self.event(e)

    @property
    def registered(self) -> bool:
        """Whether its last registration outcome since it was brought up was a success."""
        return self.settled is REGISTERED

    def event(self, e: RegistrationEvent) -> None:
        """A registration event of this endpoint's client."""
        if e.kind in (EventKind.REGISTRATION_COMPLETE, EventKind.REGISTRATION_FAILURE):
            self.settled.set()  # its waiters wake
            self.settled = REGISTERED if e.kind is EventKind.REGISTRATION_COMPLETE else FAILED
        self._report(self, e)
        self.rest()


REGISTERED, FAILED = Flag(), Flag()
"""The ``settled`` flag of every endpoint that has settled, registered or not: set, and never
cleared (a bring-up gives the endpoint a flag of its own again)."""
REGISTERED.set()
FAILED.set()


class _Locks:
    """The lock of each endpoint being brought up or taken down, held only while someone holds
    it or waits for it: a quiet endpoint has none (an ``asyncio.Lock`` each was 88 bytes of
    each of 10,000 endpoints, issue 17)."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: dict[NodeEndpoint, tuple[asyncio.Lock, list[None]]] = {}
        """Each lock with its users: one entry per holder or waiter."""

    def locked(self, ep: NodeEndpoint) -> bool:
        entry = self._held.get(ep)
        return entry is not None and entry[0].locked()

    @contextlib.asynccontextmanager
    async def hold(self, ep: NodeEndpoint) -> AsyncIterator[None]:
        """Hold ``ep``'s lock (waiting for it as ``asyncio.Lock`` does)."""
        entry = self._held.get(ep)
        if entry is None:
            entry = self._held[ep] = (asyncio.Lock(), [])
        lock, users = entry
        users.append(None)
        try:
            async with lock:
                yield
        finally:
            users.pop()
            if not users:
                del self._held[ep]


class EndpointPaths:
    """The endpoints mode's answer to "which upstream path is this node path": the path of the
    node's own endpoint (``NodeEndpoint.paths``). The gateway's own endpoint shows no node, so
    no path of it is a node's."""

    def __init__(self, endpoints: dict[NodeId, NodeEndpoint]) -> None:
        self._endpoints = endpoints

    def upstream(self, node: NodeId, local: Path) -> Path | None:
        ep = self._endpoints.get(node)
        return None if ep is None else ep.paths.upstream(node, local)

    def local(self, upstream: Path) -> NodePath | None:
        return None

    def holds_nodes(self, upstream: Path) -> bool:
        return False


class EndpointsExposure:
    """The ``ExposureMode`` that gives every paired node an endpoint; ``start`` brings them
    up (paced, see the module docstring), ``stop`` de-registers them all."""

    nodes_on_gateway = False
    """The gateway's own endpoint shows no node: each node's paths are its endpoint's, whose
    client reaches the node (``make_client``)."""

    def __init__(
        self,
        definitions: Definitions,
        gateway_endpoint: str,
        servers: ServerConfig | Sequence[ServerConfig],
        *,
        host: str = "::",
        concurrency: int = DEFAULT_CONCURRENCY,
        interval: float = DEFAULT_INTERVAL,
        settle: float = DEFAULT_SETTLE,
        on_event: Callable[[NodeEndpoint, RegistrationEvent], None] = lambda ep, e: None,
        make_client: MakeClient | None = None,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        start_retry: RetryPolicy | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.definitions = definitions
        self.gateway_endpoint = gateway_endpoint
        self.servers = (servers,) if isinstance(servers, ServerConfig) else tuple(servers)
        self.bind = (host, 0)
        """Where each endpoint's socket binds (a port of its own): one tuple that every
        endpoint's client keeps, as it keeps ``open_udp`` (120 bytes each, issue 17)."""
        self.concurrency = concurrency
        self.interval = interval
        self.settle = settle
        self.on_event = on_event
        self.make_client = make_client or self._default_client
        self.stop_timeout = stop_timeout
        self.start_retry = start_retry or (self.servers[0].retry if self.servers else RetryPolicy())
        self.endpoints: dict[NodeId, NodeEndpoint] = {}
        self.paths = EndpointPaths(self.endpoints)
        self.engine = SharedEngine()
        """The one CoAP engine of the endpoints' sockets (see the module docstring)."""
        self.open_udp: OpenUdp = self.engine.open
        self._pending: asyncio.Queue[NodeEndpoint] = asyncio.Queue()
        self._slots = asyncio.Semaphore(concurrency)
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks = _Locks()
        self._failed_starts: dict[NodeEndpoint, int] = {}
        """How many times in a row each endpoint whose socket did not open failed to: the
        exposure's, not a counter of each endpoint (16 bytes of each of 10,000 as allocated,
        issue 17), as few ever fail."""

    def endpoint(self, node: NodeId) -> NodeEndpoint | None:
        return self.endpoints.get(node)

    def _gone(self, ep: NodeEndpoint) -> bool:
        """Whether ``ep``'s node was unpaired (paired again, it has another endpoint): the
        exposure's endpoints say so, not a flag of each endpoint (issue 17)."""
        return self.endpoints.get(ep.node) is not ep

    # -- ExposureMode ------------------------------------------------------------------------

    @property
    def end_devices(self) -> EndDevices | None:
        return None

    def router(self, client: LwM2MClient) -> Router:
        """A node's readings go through its own endpoint's client, at their node-local paths;
        None once it is unpaired. The gateway's ``client`` carries none."""

        def route(node: NodeId) -> Route | None:
            ep = self.endpoints.get(node)
            return None if ep is None else Route(ep.client, ep.paths.upstream)

        return route

    def status(self) -> dict[str, Any]:
        """How many node endpoints are in each registration state (per server: an endpoint
        with two servers counts twice); ``waiting`` is not brought up yet."""
        states: Counter[str] = Counter()
        for ep in self.endpoints.values():
            client = ep.client
            if client is None or not client.sessions:
                states["waiting"] += 1
                continue
            for session in client.sessions:
                states[session.registrar.state.value] += 1
        return {"nodes": len(self.endpoints), "states": dict(sorted(states.items()))}

    # -- running -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start bringing the endpoints up; returns at once. After ``stop`` it brings them up
        again (``bridgectl stop`` / ``start``)."""
        if self._runner is None:
            self._check_file_limit()
            for ep in self.endpoints.values():
                if ep.client is None:
                    self._pending.put_nowait(ep)  # a second entry for one is passed over
            self._runner = asyncio.create_task(self._run(), name="lwm2m-endpoints")

    def _check_file_limit(self) -> None:
        """Say at start, not 1,000 nodes later, that the open-files limit is too low."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        needed = len(self.endpoints) + SPARE_FILES
        if soft != resource.RLIM_INFINITY and soft < needed:
            log.warning(
                "%d endpoints need %d open files or more, but the limit is %d: raise it "
                "(LimitNOFILE= in the systemd unit)",
                len(self.endpoints),
                needed,
                soft,
            )

    async def stop(self) -> None:
        """Stop bringing endpoints up, then de-register all of them, ``concurrency`` at a
        time, for at most ``stop_timeout`` seconds; close the rest without De-register."""
        await cancel_and_wait(self._runner)
        self._runner = None
        bringing_up = [t for t in self._tasks if t.get_name().startswith("endpoint-up")]
        await self._end(bringing_up, "bringing up")
        slots = asyncio.Semaphore(self.concurrency)

        async def down(ep: NodeEndpoint) -> None:
            async with slots:
                await self._take_down(ep)

        # Endpoints of unpaired nodes may still be de-registering: the same deadline.
        downs = [asyncio.create_task(down(ep)) for ep in self.endpoints.values()]
        downs += self._tasks
        if downs:
            await self._wait_down(downs)
        await self.engine.shutdown()

    async def _wait_down(self, downs: Collection[asyncio.Task[None]]) -> None:
        """Wait for ``downs`` for at most ``stop_timeout``; close the late ones' endpoints
        without De-register."""
        _, late = await asyncio.wait(downs, timeout=self.stop_timeout)
        if late:
            log.warning(
                "%d endpoints not de-registered within %g s: closing them without",
                len(late),
                self.stop_timeout,
            )
            await self._end(late, "de-registering")  # cut short, it still closes its socket
            await asyncio.gather(
                *(self._take_down(ep, deregister=False) for ep in self.endpoints.values())
            )

    @staticmethod
    async def _end(tasks: Collection[asyncio.Task[None]], doing: str) -> None:
        """End ``tasks`` (``cancel_and_wait``); an error one of them ended with is logged, not
        raised: one endpoint's defect must not keep ``stop`` from taking down the others."""
        try:
            await cancel_and_wait(*tasks)
        except Exception:
            log.exception("an endpoint failed while %s, as it was stopped", doing)

    async def _run(self) -> None:
        while True:
            ep = await self._pending.get()
            if self._gone(ep) or ep.client is not None or self._locks.locked(ep):
                continue  # gone, up, or being brought up by an earlier entry
            await self._slots.acquire()
            self._spawn(self._bring_up(ep), f"endpoint-up {ep.name}")
            await asyncio.sleep(self.interval)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bring_up(self, ep: NodeEndpoint) -> None:
        """Open the endpoint's socket and register; hold a slot until the first outcome. An
        endpoint whose lock is held is being brought up (it was queued twice: paired before
        ``start``, which queues every endpoint without a client) or taken down: nothing to
        do, and no waiting, whose queue of waiters each endpoint would then keep (624 bytes)."""
        try:
            if self._locks.locked(ep):
                return
            async with self._locks.hold(ep):
                if self._gone(ep) or ep.client is not None:
                    return
                if ep.settled.is_set():
                    ep.settled = Flag()
                try:
                    client = self.make_client(ep, self.servers, self.bind, self.open_udp)
                    await client.start()
                except ValueError as e:  # the configuration: trying again cannot help
                    log.error("endpoint %s cannot start: %s", ep.name, e)
                    return
                except (OSError, aiocoap.error.ResolutionError) as e:
                    self._start_failed(ep, e)
                    return
                self._failed_starts.pop(ep, None)
                ep.attach(client)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settle):
                    await ep.settled.wait()
        finally:
            self._slots.release()

    def _start_failed(self, ep: NodeEndpoint, error: Exception) -> None:
        """Log why ``ep`` has no socket and bring it up again after the back-off."""
        delays = self.start_retry.delays()
        failed = self._failed_starts[ep] = self._failed_starts.get(ep, 0) + 1
        delay = delays[failed - 1] if failed <= len(delays) else self.start_retry.sequence_delay
        hint = ""
        if isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE):
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            hint = f" (open-files limit {soft}, one socket per endpoint: raise LimitNOFILE=)"
        log.error(
            "endpoint %s cannot open its socket: %s%s; trying again in %g s",
            ep.name,
            error,
            hint,
            delay,
        )
        self._spawn(self._again(ep, delay), f"endpoint-up-later {ep.name}")

    async def _again(self, ep: NodeEndpoint, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._gone(ep):
            self._failed_starts.pop(ep, None)  # unpaired while its start failed
        else:
            self._pending.put_nowait(ep)

    async def _take_down(self, ep: NodeEndpoint, *, deregister: bool = True) -> None:
        """Close ``ep``'s client (after its De-register, unless ``deregister`` is False).

        The client is forgotten only once closed: a De-register cut short by ``stop``'s
        deadline leaves it for the closing without De-register that follows."""
        async with self._locks.hold(ep):
            if ep.client is not None:
                await ep.client.stop(deregister=deregister)
                ep.client = None

    @staticmethod
    def _default_client(
        ep: NodeEndpoint, servers: Sequence[ServerConfig], bind: tuple[str, int], udp: OpenUdp
    ) -> LwM2MClient:
        return LwM2MClient(ep.tree, ep.name, servers, bind=bind, udp=udp, on_event=ep, on_idle=ep)

    # -- RegistryListener --------------------------------------------------------------------

    def node_added(self, node: LiveNode) -> None:
        if node.id in self.endpoints:
            self.node_objects(node)
            return
        name = endpoint_name(self.gateway_endpoint, node.id)
        ep = NodeEndpoint(node, name, self.definitions, self.on_event)
        self.endpoints[node.id] = ep
        self._pending.put_nowait(ep)

    def node_removed(self, node: NodeId) -> None:
        ep = self.endpoints.pop(node, None)
        if ep is None:
            return
        self._failed_starts.pop(ep, None)
        if ep.client is not None or self._locks.locked(ep):
            self._spawn(self._take_down(ep), f"endpoint-down {ep.name}")

    def node_objects(self, node: LiveNode) -> None:
        ep = self.endpoints.get(node.id)
        if ep is not None:
            ep.sync(node)
            ep.rest()

    def node_readings(self, node: LiveNode, records: Sequence[Record]) -> None:
        ep = self.endpoints.get(node.id)
        if ep is not None:
            ep.apply(node, records)
            ep.rest()

    node_values = node_readings
    """Values read from a node are shown as its readings are (they are just not stored)."""

    def node_health(self, node: NodeId, health: NodeHealth) -> None:
        """The node endpoint's /3/0/11, /3/0/20 and /4/0 (``NodeHealth.resources``)."""
        ep = self.endpoints.get(node)
        if ep is not None:
            ep.show_health(node, health.resources())
            ep.rest()
