"""The LwM2M server the 802.15.4 nodes register with: the gateway's side of the node link.

Nodes on the air are constrained LwM2M clients (Contiki-NG, RIOT, Zephyr): they ``POST /rd``,
update, de-register and ``POST /dp`` (Send) like they would to any LwM2M server, and the gateway
reads, writes, executes and observes them. This module turns that into the transport contract
(``transports.base``, through ``node_events.NodeEvents``): a registration is an ``admit``
(only paired EUI-64s get in; others get 4.03, logged once by the node registry), its object
list becomes ``objects``, its Sends and notifications become ``readings`` or ``values`` by
the rule of :mod:`.sources` (one measured value is one reading), and every message from a
node is a sign that it is reachable (``NodeEvents.reached``).

Sleepy nodes (``b=UQ``, or ``Q`` in 1.1) are reachable only for ``awake_window`` seconds after
they last talked, as LwM2M queue mode says. An operation on a sleepy node outside that window
is refused with 5.03 ``ServiceUnavailable`` at once, not sent into the void: the core keeps it
as desired state and applies it when ``state`` reports the node reachable again, which happens
as soon as the node next talks.

The CoAP side is aiocoap over :mod:`.coap_link`; ``site`` is served on the node link and
``attach`` gives the context requests go out through.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiocoap
from aiocoap import error, resource
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption

from bridged.objects.definitions import Definitions
from bridged.objects.errors import (
    BadRequest,
    DecodeError,
    GatewayTimeout,
    LwM2MError,
    ServiceUnavailable,
    error_for_code,
)
from bridged.objects.formats import ContentFormat, codec_for
from bridged.objects.formats.senml_cbor_usual import UsualPack
from bridged.objects.ids import HOUSEKEEPING, FirmwareUpdate
from bridged.objects.linkformat import parse_links
from bridged.objects.paths import ROOT, Level, Path
from bridged.objects.values import Record
from bridged.transports.firmware import Progress
from bridged.transports.nodes import NodeId

from ..base import Heard, NodeState
from .coap_link import LowpanAddress, LowpanMessageInterface
from .coap_notification import Notification
from .lowpan import mac_from_address
from .node_events import NodeEvents
from .notifications import each_notification, notification_of, rest_of
from .sources import HOLD, NodeSources, Sorted

log = logging.getLogger(__name__)

DEFAULT_LIFETIME = 86400
DEFAULT_AWAKE_WINDOW = 93.0
"""LwM2M's default queue-mode window: CoAP's MAX_TRANSMIT_WAIT."""

NOT_OBSERVED = HOUSEKEEPING | {FirmwareUpdate.OBJECT}
"""Objects the gateway never observes on a node: its housekeeping (security, servers, access
control, OSCORE, COSE), and its /5 Firmware Update, which the gateway drives itself
(``firmware.LowpanUpdater``) and shows upstream as its own view of the node's update."""

FORMAT = ContentFormat.SENML_CBOR

DEFAULT_PAN_ID = 0xFACE
REMEMBERED = 4096
"""How many nodes a log-once list, or a table of what was learnt per node address, holds (the
air may carry any number of addresses): the oldest go first."""
K = TypeVar("K")
V = TypeVar("V")


def remember(table: OrderedDict[K, V], key: K, value: V) -> None:
    """``table[key] = value``, the most recent last, at most ``REMEMBERED`` entries."""
    table[key] = value
    table.move_to_end(key)
    if len(table) > REMEMBERED:
        table.popitem(last=False)


def node_address(mac: bytes, pan_id: int) -> str:
    """The address part of the node id of a node sending from ``mac`` on PAN ``pan_id``.

    A node is paired by its EUI-64 (``00124b0001020304``) when it sends from it. A node that
    sends from a 16-bit short address is paired by the PAN ID and that short address
    (``face:0001``): the short address is all its frames and its IPv6 address carry, and it
    is unique on the PAN for as long as the node keeps it (a node given another short address
    is another node to the gateway, to be paired again)."""
    return mac.hex() if len(mac) == 8 else f"{pan_id:04x}:{mac.hex()}"


def registered_objects(payload: bytes) -> dict[int, list[int]]:
    """The objects and instances of a Register or Update payload (CoRE link format), without
    the root link and its alternate path; DecodeError (4.00) on anything else."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError("the object list is not UTF-8") from e
    root = "/"
    links = parse_links(text)
    for link in links:
        if ("rt", "oma.lwm2m") in link.attributes:
            root = link.target.rstrip("/") + "/" if link.target != "/" else "/"
    objects: dict[int, list[int]] = {}
    for link in links:
        target = link.target
        if ("rt", "oma.lwm2m") in link.attributes or not target.startswith(root):
            continue
        path = Path.parse("/" + target[len(root) :])
        if path.level is Level.ROOT or path.level > Level.INSTANCE:
            raise DecodeError(f"{target!r} is not an object or an object instance")
        iids = objects.setdefault(path.ids[0], [])
        if path.level is Level.INSTANCE and path.ids[1] not in iids:
            iids.append(path.ids[1])
    return {oid: sorted(iids) for oid, iids in objects.items()}


@dataclass
class NodeRegistration:
    """A registered node, as the gateway's server side knows it."""

    node: NodeId
    address: LowpanAddress
    endpoint: str
    location: str
    lifetime: int
    binding: str
    queue: bool
    version: str
    objects: dict[int, list[int]]
    last_heard: float
    sources: NodeSources = field(default_factory=NodeSources)
    hold: asyncio.TimerHandle | None = None
    """Releases the readings ``sources`` holds (see ``sources.HOLD``)."""
    observed: bool = False
    """Whether the gateway has started observing the node's objects for this registration."""
    observations: list[aiocoap.protocol.Request] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sources.may_send = self.version != "1.0"

    def session(self) -> dict[str, Any]:
        """What the gateway keeps of this registration across a restart."""
        return {
            "endpoint": self.endpoint,
            "location": self.location,
            "lifetime": self.lifetime,
            "binding": self.binding,
            "queue": self.queue,
            "version": self.version,
            "objects": {str(oid): iids for oid, iids in self.objects.items()},
            "ip": self.address.ip.hex(),
            "port": self.address.port,
            "sends": self.sources.sends,
        }

    @classmethod
    def resumed(
        cls, node: NodeId, session: Mapping[str, Any], address: LowpanAddress, now: float
    ) -> NodeRegistration:
        """The registration ``session`` kept; KeyError, TypeError or ValueError if it is
        not one. A sleepy node counts as asleep until it next talks (``last_heard``)."""
        queue = bool(session["queue"])
        return cls(
            node=node,
            address=address,
            endpoint=str(session["endpoint"]),
            location=str(session["location"]),
            lifetime=int(session["lifetime"]),
            binding=str(session["binding"]),
            queue=queue,
            version=str(session["version"]),
            objects={int(o): [int(i) for i in ii] for o, ii in session["objects"].items()},
            last_heard=-math.inf if queue else now,
            sources=NodeSources(sends=bool(session["sends"])),
        )


def _query(request: aiocoap.Message) -> dict[str, str]:
    query: dict[str, str] = {}
    for item in request.opt.uri_query:
        name, _, value = item.partition("=")
        query[name] = value
    return query


class NodeServer:
    """Registrations of the nodes on one link, and operations on them (module docstring)."""

    def __init__(
        self,
        transport: str,
        events: NodeEvents,
        definitions: Definitions,
        *,
        awake_window: float = DEFAULT_AWAKE_WINDOW,
        request_timeout: float = 10.0,
        pan_id: int = DEFAULT_PAN_ID,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.transport = transport
        self.pan_id = pan_id
        self.events = events
        self.definitions = definitions
        self.awake_window = awake_window
        self.request_timeout = request_timeout
        self._clock = clock
        self.context: aiocoap.Context | None = None
        self.registrations: dict[NodeId, NodeRegistration] = {}
        self._by_location: dict[str, NodeId] = {}
        self._locations = itertools.count(1)
        self._resumed: dict[NodeId, Mapping[str, Any]] = {}
        self._nodes: OrderedDict[bytes, NodeId] = OrderedDict()
        """``node_of``'s answers, by EUI-64 or IPv6 address."""
        self._unknown: OrderedDict[NodeId, None] = OrderedDict()
        """Nodes told (and logged once) that the gateway has no registration of theirs."""
        self._sleep_timers: dict[NodeId, asyncio.TimerHandle] = {}
        self._link_quality: dict[NodeId, tuple[int, int]] = {}
        self._packages: dict[str, tuple[NodeId, bytes, Progress]] = {}
        self._wakers: dict[NodeId, list[asyncio.Future[None]]] = {}
        """Who waits for a node to talk (``awake``)."""
        """Firmware images offered to nodes by token (``offer``)."""
        self.site = _NodeSite(self)

    def resume(self, node: NodeId, session: Mapping[str, Any]) -> None:
        """A registration the gateway kept across its restart; it is taken up on ``attach``."""
        self._resumed[node] = session

    def attach(self, context: aiocoap.Context, interface: LowpanMessageInterface) -> None:
        """The context requests to nodes go out through (the one serving ``site``) and its
        interface on the node link. The registrations kept across a restart are taken up:
        the nodes' Sends, Updates and notifications are accepted as before, and the gateway
        observes an always-on node again at once (a sleepy one when it next talks)."""
        self.context = context
        resumed, self._resumed = self._resumed, {}
        for node, session in resumed.items():
            eui64 = self._eui64(node)
            try:
                address = LowpanAddress(
                    interface, bytes.fromhex(session["ip"]), int(session["port"]), eui64
                )
                registration = NodeRegistration.resumed(node, session, address, self._clock())
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                log.warning(
                    "node %s: its kept registration is unreadable (%s): it must register again",
                    node,
                    e,
                    extra={"NODE": str(node)},
                )
                continue
            self.registrations[node] = registration
            self._by_location[registration.location] = node
            if registration.queue:
                # What the transport knows wins over the pairing, from the start: a node in
                # queue mode is sleepy (read from what it reported, written when it wakes).
                self.events.state(node, NodeState(reachable=False, time=self._clock(), sleepy=True))
            else:
                self._start_observing(registration)
        if resumed:
            log.info("%d node registration(s) resumed", len(self.registrations))

    @staticmethod
    def _eui64(node: NodeId) -> bytes | None:
        """The EUI-64 of a node paired by it (None: by its PAN ID and short address)."""
        return bytes.fromhex(node.address) if len(node.address) == 16 else None

    def _new_location(self) -> str:
        """A registration location no current registration has."""
        while (location := str(next(self._locations))) in self._by_location:
            pass
        return location

    def _keep(self, registration: NodeRegistration) -> None:
        """Keep the registration across restarts (durable before the node is answered)."""
        self.events.session(registration.node, registration.session())

    def _start_observing(self, registration: NodeRegistration) -> None:
        registration.observed = True
        registration.tasks.append(asyncio.create_task(self._observe(registration)))

    def node_of(self, address: LowpanAddress) -> NodeId:
        """The node at ``address`` (``node_at``)."""
        return self.node_at(address.ip, address.eui64)

    def node_at(self, ip: bytes, eui64: bytes | None = None) -> NodeId:
        """The node at IPv6 address ``ip``, by the MAC address the link knew or the address
        carries (``node_address``). Each datagram asks, so the answer is kept by address."""
        key = eui64 or ip
        node = self._nodes.get(key)
        if node is None:
            mac = eui64 or mac_from_address(ip)
            node = NodeId(self.transport, node_address(mac, self.pan_id))
            remember(self._nodes, key, node)
        return node

    def link_quality(self, node: NodeId, rssi: int, lqi: int) -> None:
        """The radio's RSSI and LQI of the last frame from ``node``, reported with the node's
        state."""
        self._link_quality[node] = (rssi, lqi)

    def forget(self, node: NodeId) -> None:
        """The node was unpaired: drop its registration (it must register, and be let in,
        again)."""
        registration = self.registrations.pop(node, None)
        if registration is not None:
            self._drop(registration)

    async def awake(self, node: NodeId) -> None:
        """Return once ``node`` can be reached: at once if it is, else when it next talks (a
        sleepy node's wake window, or a node registering again)."""
        registration = self.registrations.get(node)
        if registration is not None and self._reachable(registration):
            return
        waiter = asyncio.get_running_loop().create_future()
        self._wakers.setdefault(node, []).append(waiter)
        try:
            await waiter
        finally:
            waiters = self._wakers.get(node, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._wakers.pop(node, None)

    def registration_of(self, node: NodeId) -> NodeRegistration | None:
        """The node's current registration (a new one once it registers again)."""
        return self.registrations.get(node)

    @contextlib.contextmanager
    def offer(
        self, node: NodeId, token: str, data: bytes, progress: Progress = lambda done, all: None
    ) -> Iterator[None]:
        """Serve ``data`` to ``node`` alone at ``/fw/{token}`` while in the ``with``: the
        firmware image it pulls (Block2, by aiocoap's resource layer); ``progress`` is told
        where each block the node asks for starts."""
        self._packages[token] = (node, data, progress)
        try:
            yield
        finally:
            self._packages.pop(token, None)

    def package(self, token: str, request: aiocoap.Message) -> aiocoap.Message:
        """A node's GET of ``/fw/{token}``: the block of its image it asks for (Block2; the
        first, at the link's block size, when it names none), cut from the offered bytes at
        each request, and ``progress`` told where it starts. No state is kept between blocks
        (RFC 7959 §2.4), so any block may be asked at any time: aiocoap's block cache, which
        keeps a representation only as long as its blocks keep coming (MAX_TRANSMIT_WAIT),
        answers a block it does not hold 4.08 Request Entity Incomplete, the code RFC 7959
        §2.9.2 gives a request body missing blocks. An image not (or no longer) offered is
        4.04: what a restarted gateway answers the rest of a pull the old one began, which
        ends that pull on the node before the update, run again, gives it a new URI."""
        offered = self._packages.get(token)
        remote = request.remote
        if offered is None or not isinstance(remote, LowpanAddress):
            return aiocoap.Message(code=Code.NOT_FOUND)
        node, data, progress = offered
        if self.node_of(remote) != node:
            return aiocoap.Message(code=Code.FORBIDDEN, payload=b"not your image")
        asked = request.opt.block2
        if asked is None and len(data) <= 2 ** (remote.maximum_block_size_exp + 4):
            progress(0, len(data))
            return aiocoap.Message(code=Code.CONTENT, payload=data)
        block = (
            asked or BlockOption.BlockwiseTuple(0, False, remote.maximum_block_size_exp)
        ).reduced_to(remote.maximum_block_size_exp)
        if block.start >= max(len(data), 1):
            raise BadRequest(f"no block at byte {block.start} of a {len(data)}-byte image")
        progress(block.start, len(data))
        end = block.start + block.size
        return aiocoap.Message(
            code=Code.CONTENT,
            payload=data[block.start : end],
            block2=BlockOption.BlockwiseTuple(
                block.block_number, end < len(data), block.size_exponent
            ),
        )

    # -- the nodes' requests -----------------------------------------------------------------

    def register(self, request: aiocoap.Message) -> aiocoap.Message:
        query = _query(request)
        endpoint = query.get("ep")
        if not endpoint:
            raise BadRequest("Register without an endpoint name (ep=)")
        remote = request.remote
        assert isinstance(remote, LowpanAddress)
        node = self.node_of(remote)
        objects = registered_objects(request.payload)
        lifetime = self._lifetime(query.get("lt"))
        now = self._clock()
        heard = Heard(node, now, name=endpoint, profile="lwm2m")
        if not self.events.admit(heard):
            return aiocoap.Message(code=Code.FORBIDDEN, payload=b"node not paired")
        binding = query.get("b", "U")
        old = self.registrations.pop(node, None)
        if old is not None:
            self._drop(old)
        registration = NodeRegistration(
            node=node,
            address=remote,
            endpoint=endpoint,
            location=self._new_location(),
            lifetime=lifetime,
            binding=binding,
            queue="Q" in binding or "Q" in query,
            version=query.get("lwm2m", "1.0"),
            objects=objects,
            last_heard=now,
            sources=NodeSources(sends=old is not None and old.sources.sends),
        )
        self.registrations[node] = registration
        self._by_location[registration.location] = node
        self._unknown.pop(node, None)
        self._keep(registration)
        log.info(
            "node %s registered as %r (%s)",
            node,
            endpoint,
            "sleepy" if registration.queue else "always on",
            extra={"NODE": str(node)},
        )
        self.events.objects(node, objects)
        self._heard(registration)
        self._start_observing(registration)
        return aiocoap.Message(code=Code.CREATED, location_path=("rd", registration.location))

    def update(self, registration: NodeRegistration, request: aiocoap.Message) -> aiocoap.Message:
        kept = registration.session()
        query = _query(request)
        if "lt" in query:
            registration.lifetime = self._lifetime(query["lt"])
        if "b" in query:
            registration.binding = query["b"]
            registration.queue = "Q" in query["b"]
        if "Q" in query:
            registration.queue = True
        if request.payload:
            objects = registered_objects(request.payload)
            if objects != registration.objects:
                registration.objects = objects
                self.events.objects(registration.node, objects)
                for task in registration.tasks:
                    task.cancel()
                self._cancel_observations(registration)
                self._start_observing(registration)
        registration.address = _same_peer(registration.address, request.remote)
        if not registration.observed:
            self._start_observing(registration)
        if registration.session() != kept:
            self._keep(registration)
        self._heard(registration)
        return aiocoap.Message(code=Code.CHANGED)

    def deregister(self, registration: NodeRegistration) -> aiocoap.Message:
        self.registrations.pop(registration.node, None)
        self._drop(registration)
        self.events.session(registration.node, None)
        log.info("node %s de-registered", registration.node, extra={"NODE": str(registration.node)})
        self.events.state(registration.node, NodeState(reachable=False, time=self._clock()))
        return aiocoap.Message(code=Code.DELETED)

    async def send(self, request: aiocoap.Message) -> aiocoap.Message:
        """A node's LwM2M Send (``POST /dp``): its records are readings, durable before the
        node is answered 2.04 (it may forget them then); a 5.03 when the store refuses them (the
        node sends them again)."""
        remote = request.remote
        assert isinstance(remote, LowpanAddress)
        node = self.node_of(remote)
        registration = self.registrations.get(node)
        if registration is None:
            return self.unknown(node, "Send")
        records = self._decode(request.payload, request.opt.content_format, ROOT)
        sends = registration.sources.sends
        if registration.hold is not None:
            registration.hold.cancel()
            registration.hold = None
        self._report(registration, registration.sources.sent(records))
        if not sends:
            self._keep(registration)  # it reports by Send: remembered across restarts
        if not registration.observed:
            self._start_observing(registration)
        self._heard(registration)
        await self.events.durable()
        return aiocoap.Message(code=Code.CHANGED)

    def unknown(self, node: NodeId, what: str) -> aiocoap.Message:
        """4.04 for a message of a registration the gateway does not have (as Leshan answers
        a Send from a client it does not know): a node registers again at once, rather than
        when its next Update fails. Logged once per node until it registers."""
        if node not in self._unknown:
            remember(self._unknown, node, None)
            log.warning(
                "%s from %s: no registration of it: answered 4.04 so that it registers again "
                "(logged once)",
                what,
                node,
                extra={"NODE": str(node)},
            )
        return aiocoap.Message(code=Code.NOT_FOUND, payload=b"not registered")

    def by_location(self, location: str, remote: object) -> NodeRegistration | None:
        """The registration at ``/rd/{location}`` if it is the one of the node at ``remote``.

        A location freed (a node de-registered, or was unpaired) may be given to another node
        while the first still holds it: that is 4.04 for the first (it registers again), never
        an Update of the other node's registration."""
        node = self._by_location.get(location)
        if node is None or not isinstance(remote, LowpanAddress) or self.node_of(remote) != node:
            return None
        return self.registrations.get(node)

    # -- operations on nodes -----------------------------------------------------------------

    async def read(self, node: NodeId, path: Path) -> list[Record]:
        response = await self._request(node, Code.GET, path, accept=FORMAT)
        return self._decode(response.payload, response.opt.content_format, path)

    async def write(
        self,
        node: NodeId,
        path: Path,
        records: Sequence[Record],
        *,
        timeout: float | None = None,
    ) -> None:
        """Write ``records`` under ``path``: a resource is replaced (PUT), an instance gets a
        partial update (POST), as LwM2M maps writes onto CoAP. ``timeout`` replaces
        ``request_timeout`` for a write that carries far more than one answer's worth (a
        firmware image, Block1)."""
        payload = codec_for(FORMAT).encode(records, path, self.definitions)
        method = Code.PUT if path.level >= Level.RESOURCE else Code.POST
        await self._request(
            node, method, path, payload=payload, content_format=FORMAT, timeout=timeout
        )

    async def execute(self, node: NodeId, path: Path, arguments: str) -> None:
        await self._request(
            node, Code.POST, path, payload=arguments.encode(), content_format=ContentFormat.TEXT
        )

    async def close(self) -> None:
        for registration in list(self.registrations.values()):
            self._drop(registration)
        self.registrations.clear()
        for timer in self._sleep_timers.values():
            timer.cancel()
        self._sleep_timers.clear()

    # -- internals ---------------------------------------------------------------------------

    def _lifetime(self, text: str | None) -> int:
        if text is None:
            return DEFAULT_LIFETIME
        if not text.isdigit() or int(text) == 0:
            raise BadRequest(f"lifetime {text!r} is not a positive number of seconds")
        return int(text)

    def _reachable(self, registration: NodeRegistration) -> bool:
        if not registration.queue:
            return True
        return self._clock() - registration.last_heard < self.awake_window

    def _heard(self, registration: NodeRegistration) -> None:
        """The node talked: it is reachable now, and a sleepy one for the awake window."""
        now = self._clock()
        registration.last_heard = now
        node = registration.node
        rssi, lqi = self._link_quality.get(node, (None, None))
        self.events.reached(node, now, rssi, lqi, registration.queue, registration.lifetime)
        for waiter in self._wakers.pop(node, ()) if self._wakers else ():
            if not waiter.done():
                waiter.set_result(None)
        if registration.queue:
            timer = self._sleep_timers.pop(node, None)
            if timer is not None:
                timer.cancel()
            self._sleep_timers[node] = asyncio.get_running_loop().call_later(
                self.awake_window, self._asleep, node
            )

    def _asleep(self, node: NodeId) -> None:
        self._sleep_timers.pop(node, None)
        if node in self.registrations:
            self.events.state(node, NodeState(reachable=False, time=self._clock(), sleepy=True))

    async def _request(
        self,
        node: NodeId,
        code: Code,
        path: Path,
        *,
        payload: bytes = b"",
        content_format: int | None = None,
        accept: int | None = None,
        timeout: float | None = None,
    ) -> aiocoap.Message:
        """Send one request to a node. GatewayTimeout after ``timeout`` (``request_timeout``
        unless given) says the node did
        not answer in time, not that it never will: CoAP goes on retransmitting a confirmable
        request for up to MAX_TRANSMIT_SPAN, so a node back in range may still apply it, and
        its next report shows that."""
        registration = self.registrations.get(node)
        if registration is None or self.context is None:
            raise ServiceUnavailable(f"node {node} is not registered")
        if not self._reachable(registration):
            raise ServiceUnavailable(f"node {node} is asleep")
        message = aiocoap.Message(
            code=code,
            uri_path=tuple(path.segments()),
            payload=payload,
            content_format=content_format,
            accept=accept,
        )
        message.remote = registration.address
        try:
            async with asyncio.timeout(timeout or self.request_timeout):
                response = await self.context.request(message).response
        except TimeoutError:
            raise GatewayTimeout(f"node {node} did not answer {path}") from None
        except error.Error as e:
            raise GatewayTimeout(f"node {node} did not answer {path}: {e}") from None
        if not response.code.is_successful():
            detail = response.payload.decode("utf-8", "replace")[:200] or str(response.code)
            raise error_for_code(int(response.code), f"node {node}: {detail}")
        self._heard(registration)
        return response

    def _decode(self, payload: bytes, content_format: int | None, base: Path) -> list[Record]:
        if content_format is None:
            raise BadRequest("a payload without a Content-Format")
        return codec_for(content_format).decode(payload, base, self.definitions)

    async def _observe(self, registration: NodeRegistration) -> None:
        """Observe each data object of a node, turning its notifications into readings."""
        assert self.context is not None
        for oid in registration.objects:
            if oid in NOT_OBSERVED or oid not in self.definitions:
                continue
            path = Path((oid,))
            message = aiocoap.Message(code=Code.GET, uri_path=(str(oid),), observe=0, accept=FORMAT)
            message.remote = registration.address
            # Not aiocoap's block-wise wrapper: it takes the notifications of the request it
            # wraps through the lossy iterator (notifications.py); a notification in blocks
            # is completed here instead (_whole).
            request = self.context.request(message, handle_blockwise=False)
            registration.observations.append(request)
            registration.tasks.append(
                asyncio.create_task(self._notifications(registration, request, path))
            )

    async def _notifications(
        self, registration: NodeRegistration, request: aiocoap.protocol.Request, path: Path
    ) -> None:
        node = registration.node
        completing: set[asyncio.Task[None]] = set()
        usual = UsualPack(self.definitions)

        async def whole(message: aiocoap.Message) -> None:
            try:
                complete = await self._whole(registration, message, path)
            except error.Error as e:
                # the node stopped answering for the rest of its blocks: the reading is lost
                # on the air, not here; say so rather than drop it unseen
                log.warning(
                    "node %s: a notification of %s in blocks could not be completed: %s",
                    node,
                    path,
                    e,
                    extra={"NODE": str(node)},
                )
                return
            self._notified(registration, notification_of(complete), path, usual, first=False)

        def notified(message: aiocoap.Message | Notification) -> None:
            if isinstance(message, aiocoap.Message):
                block2 = message.opt.block2
                if block2 is not None and block2.more:
                    task = asyncio.create_task(whole(message))
                    completing.add(task)
                    task.add_done_callback(completing.discard)
                    return
                message = notification_of(message)
            self._notified(registration, message, path, usual, first=False)

        try:
            answer = await request.response
            first = await self._whole(registration, answer, path)
            self._notified(registration, notification_of(first), path, usual, first=True)
            if request.observation is None:
                return
            await each_notification(request, answer, notified)
        except (error.Error, asyncio.CancelledError) as e:
            if not isinstance(e, asyncio.CancelledError):
                log.info("node %s: observation of %s ended: %s", node, path, e)
        finally:
            for task in completing:
                task.cancel()

    async def _whole(
        self, registration: NodeRegistration, message: aiocoap.Message, path: Path
    ) -> aiocoap.Message:
        """``message``, or, if it is the first of several Block2 blocks, the whole
        representation: its other blocks asked for (``rest_of``), or, if the node's
        representation changed meanwhile, the current one read by a block-wise GET of
        ``path``."""
        block2 = message.opt.block2
        if block2 is None or not block2.more:
            return message
        assert self.context is not None
        get = aiocoap.Message(code=Code.GET, uri_path=tuple(path.segments()), accept=FORMAT)
        get.remote = registration.address
        whole = await rest_of(self.context, get, message)
        return whole if whole is not None else await self.context.request(get).response

    def _notified(
        self,
        registration: NodeRegistration,
        message: Notification,
        path: Path,
        usual: UsualPack,
        *,
        first: bool,
    ) -> None:
        if not message.code.is_successful():
            log.info(
                "node %s refused to be observed at %s: %s", registration.node, path, message.code
            )
            return
        try:
            records = self._notified_records(message, path, usual)
        except LwM2MError as e:
            log.warning("node %s sent %s that cannot be decoded: %s", registration.node, path, e)
            return
        self._heard(registration)
        sources = registration.sources
        said = sources.snapshot(records) if first else sources.notified(records, self._clock())
        self._report(registration, said)
        if sources.held and registration.hold is None:
            registration.hold = asyncio.get_running_loop().call_later(
                HOLD, self._release, registration
            )

    def _notified_records(
        self, message: Notification, path: Path, usual: UsualPack
    ) -> list[Record]:
        """The records of a notification of ``path``: as the observation's last SenML CBOR
        pack's when it repeats that pack but for its float values (what a node's notifications
        nearly all do: senml_cbor_usual.py), else by the general decode, which decides every
        refusal and whose SenML CBOR records are learnt for the next one."""
        if message.content_format != FORMAT:
            return self._decode(message.payload, message.content_format, path)
        payload = message.payload
        records = usual.decode(payload)
        if records is None:
            records = self._decode(payload, FORMAT, path)
            usual.learn(payload, records)
        return records

    def _release(self, registration: NodeRegistration) -> None:
        """No Send came for what the node notified: its held readings are readings now."""
        registration.hold = None
        self._report(registration, registration.sources.release())

    def _report(self, registration: NodeRegistration, said: Sorted) -> None:
        """Hand the core what a node said: readings and values (see ``sources``)."""
        if said.readings:
            self.events.readings(registration.node, said.readings)
        if said.values:
            self.events.values(registration.node, said.values)

    def _cancel_observations(self, registration: NodeRegistration) -> None:
        for request in registration.observations:
            if request.observation is not None:
                request.observation.cancel()
        registration.observations.clear()

    def _drop(self, registration: NodeRegistration) -> None:
        if registration.hold is not None:
            registration.hold.cancel()
            self._release(registration)
        self._by_location.pop(registration.location, None)
        self._cancel_observations(registration)
        for task in registration.tasks:
            task.cancel()
        registration.tasks.clear()
        timer = self._sleep_timers.pop(registration.node, None)
        if timer is not None:
            timer.cancel()


def _same_peer(old: LowpanAddress, new: object) -> LowpanAddress:
    return new if isinstance(new, LowpanAddress) else old


class _NodeSite(resource.Resource):
    """``/rd``, ``/rd/{location}``, ``/dp`` and the images offered at ``/fw/{token}`` on the
    node link; anything else is 4.04."""

    def __init__(self, server: NodeServer) -> None:
        super().__init__()
        self.server = server

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        path = tuple(request.opt.uri_path)
        server = self.server
        try:
            if path == ("rd",) and request.code == Code.POST:
                return server.register(request)
            if path == ("dp",) and request.code == Code.POST:
                return await server.send(request)
            if len(path) == 2 and path[0] == "fw" and request.code == Code.GET:
                return server.package(path[1], request)
            if len(path) == 2 and path[0] == "rd":
                registration = server.by_location(path[1], request.remote)
                if registration is None:
                    remote = request.remote
                    assert isinstance(remote, LowpanAddress)
                    what = "De-register" if request.code == Code.DELETE else "Update"
                    return server.unknown(server.node_of(remote), what)
                if request.code == Code.POST:
                    return server.update(registration, request)
                if request.code == Code.DELETE:
                    return server.deregister(registration)
                return aiocoap.Message(code=Code.METHOD_NOT_ALLOWED)
        except LwM2MError as e:
            log.info("request from %s refused: %s", request.remote, e)
            return aiocoap.Message(code=e.code, payload=str(e).encode()[:200])
        return aiocoap.Message(code=Code.NOT_FOUND)

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        """Registrations and Sends are assembled from their Block1 blocks by aiocoap; an
        offered image's Block2 blocks are cut by ``NodeServer.package`` itself."""
        path = request.opt.uri_path
        return not (request.code == Code.GET and len(path) == 2 and path[0] == "fw")
