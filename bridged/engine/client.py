"""A LwM2M client for one object tree and one or more servers: the parts wired together.

The tree is the single source of truth. Factory bootstrap puts one /0 Security and one /1
Server instance per configured server into it, matched by Short Server ID, so instances that
are already there (persisted, or written by a bootstrap server) are kept as they are. Each server
then gets a ``ServerSession`` over the shared tree:

* its own socket: plain UDP for a ``coap://`` URI (security mode 3, NoSec), a DTLS-PSK session
  for a ``coaps://`` URI in security mode 0 (identity /0/x/3, key /0/x/5), which also carries
  the server's requests to the client;
* its own registrar, whose lifetime and binding come from the server's /1 instance, and which
  sends an Update when what it carries changes: an instance created or deleted (every server),
  that server's /1/x/1 Lifetime or /1/x/7 Binding written, its /1/x/8 executed;
* its own ``DeviceManagement``, which knows the server's Short Server ID (Access Control);
* its ``Observations`` (see ``observe``), whose notifications, in queue mode, its
  ``QueueModeGate`` (see ``queue_mode``) holds while the client sleeps.

Sessions are independent tasks: a server that is down, or refuses the keys, never holds up the
others. ``LwM2MClient.send`` delivers records with the Send operation (see ``send``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import pathlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import cast
from urllib.parse import urlsplit

import aiocoap
from aiocoap import interfaces
from aiocoap.numbers.codes import Code
from aiocoap.pipe import Pipe
from aiocoap.resource import Site

from bridged.aio import Flag, cancel_and_wait
from bridged.objects.builtin import builtin_objects
from bridged.objects.errors import BadRequest, LwM2MError
from bridged.objects.formats import ContentFormat
from bridged.objects.ids import (
    BOOTSTRAP_ONLY,
    HOUSEKEEPING,
    Acl,
    CertificateUsage,
    LwM2MGateway,
    Security,
    SecurityMode,
    Server,
)
from bridged.objects.linkformat import registration_links
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record, Value, check_value

from .access import CREATOR_RIGHTS, AccessControl, Grant, Right
from .block1 import LARGEST, BrokenBlockwise, Transferred, send_in_blocks
from .bootstrap import (
    ServerAccount,
    Staged,
    bootstrap_account,
    check_binding,
    instance_values,
    replace_objects,
    server_accounts,
    stamp_last_bootstrapped,
)
from .bootstrap_client import (
    BootstrapConfig,
    BootstrapEvent,
    BootstrapEventKind,
    Bootstrapper,
    BootstrapState,
    security_mode,
)
from .bootstrap_listener import ServerInitiatedResource, open_listener
from .coap import ack_watch, notification_turns
from .credentials import RpkCredentials, X509Credentials
from .dm import (
    DeviceManagement,
    DeviceManagementResource,
    EndDevices,
)
from .dtls import DEFAULT_HANDSHAKE_TIMEOUT, DtlsPskUplink, origin
from .nodes import NodeBackend
from .observe import MAX_OBSERVATIONS, Observations
from .provisioning import ProvisioningStore
from .queue_mode import DEFAULT_WINDOW, QueueModeGate, QueueState
from .registration import (
    MIN_UPDATE_INTERVAL,
    EventKind,
    Registrar,
    RegistrationEvent,
    RegistrationParams,
    RegistrationState,
    RetryPolicy,
    ServerTarget,
    failure_text,
)
from .send import (
    SEND_PATH,
    SendNotRegistered,
    SendOutcome,
    SendStatus,
    check_allowed,
    encode_send,
    muted,
    outcome_of,
)
from .site import Answer, ClientSite, NotServing
from .uplink import OpenUdp, UdpUplink, Uplink

log = logging.getLogger(__name__)


def _nothing() -> None:
    """What a client's ``on_idle`` is when nobody asked to be told."""


@functools.lru_cache(maxsize=64)
def _one_target(uri: str, version: str, request_timeout: float, retry: RetryPolicy) -> ServerTarget:
    """One ``ServerTarget`` for all the sessions with one server (as its configuration)."""
    return ServerTarget(uri, version, request_timeout, retry)


SUPPORTED_SECURITY_MODES = frozenset(
    {SecurityMode.PSK, SecurityMode.RPK, SecurityMode.CERTIFICATE, SecurityMode.NOSEC}
)
"""The security modes the client can register with; Bootstrap-Finish refuses any other."""
RETRY_RESOURCES = (
    ("count", Server.RETRY_COUNT),
    ("timer", Server.RETRY_TIMER),
    ("sequence_delay", Server.SEQUENCE_DELAY),
    ("sequence_count", Server.SEQUENCE_COUNT),
)
"""/1/x/17-20: Communication Retry Count, Retry Timer, Sequence Delay Timer, Sequence Retry
Count; when a Bootstrap-Server provisioned them they override the configuration."""

_SERVER_DEFINITION = next(o for o in builtin_objects() if o.id == Server.OBJECT)


def server_resource_bounds(rid: int) -> tuple[int, int]:
    """The bounds of /1 resource ``rid`` as its definition states them: the configuration takes
    the Short Server ID and the lifetime within the same bounds as a server's Write."""
    rng = _SERVER_DEFINITION.resource(rid).range
    assert rng is not None and rng.low is not None and rng.high is not None
    return int(rng.low), int(rng.high)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One LwM2M server as the configuration describes it (factory bootstrap).

    A ``coaps://`` URI needs ``psk_identity`` and ``psk_key`` (security mode 0, DTLS-PSK),
    ``rpk`` (security mode 1, raw public keys) or ``x509`` (security mode 2, certificates); a
    ``coap://`` URI takes none (security mode 3, NoSec). ``queue_window`` is how long the
    client stays reachable after each message in queue mode; ``mute_send`` is /1/x/23;
    ``max_observations`` bounds the server's observations (``observe.MAX_OBSERVATIONS``).
    """

    uri: str
    short_server_id: int = 1
    lifetime: int = 300
    binding: str = "U"
    queue: bool = False
    queue_window: float = DEFAULT_WINDOW
    version: str = "1.1"
    request_timeout: float = 93.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    psk_identity: bytes | None = None
    psk_key: bytes | None = None
    x509: X509Credentials | None = None
    rpk: RpkCredentials | None = None
    dtls_handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    mute_send: bool = False
    max_observations: int = MAX_OBSERVATIONS

    def __post_init__(self) -> None:
        scheme = urlsplit(self.uri).scheme
        psk = self.psk_identity is not None or self.psk_key is not None
        if psk + (self.x509 is not None) + (self.rpk is not None) > 1:
            raise ValueError(
                f"server {self.uri}: one of a PSK, a raw public key or a certificate, not two"
            )
        if scheme == "coaps":
            if self.security_mode == SecurityMode.NOSEC:
                raise ValueError(
                    f"server {self.uri}: coaps:// needs psk_identity and psk_key"
                    " (security mode 0, DTLS-PSK), a raw public key (security mode 1)"
                    " or a certificate (security mode 2)"
                )
        elif scheme == "coap":
            if self.security_mode != SecurityMode.NOSEC or psk:
                raise ValueError(
                    f"server {self.uri}: a PSK, raw public key or certificate needs a coaps://"
                    " URI; coap:// is NoSec"
                )
        else:
            raise ValueError(f"server {self.uri!r}: the URI must be coap:// or coaps://")
        for rid, value in ((Server.SSID, self.short_server_id), (Server.LIFETIME, self.lifetime)):
            try:
                check_value(_SERVER_DEFINITION.resource(rid), value)
            except BadRequest as e:
                raise ValueError(f"server {self.uri}: {e}") from None

    @property
    def security_mode(self) -> int:
        """LwM2M security mode (/0/x/2) of its credentials."""
        return security_mode(self.psk_key, self.x509, self.rpk)


def _opaque_resources(tree: ObjectTree, instance: Path, mode: str) -> Callable[[int, str], bytes]:
    """Reads a key or certificate resource of /0 ``instance``: its bytes, or a ValueError that
    names ``what`` is missing for ``mode``."""

    def opaque(rid: int, what: str) -> bytes:
        path = instance.child(rid)
        value = tree.get(path) if tree.has(path) else None
        if not isinstance(value, bytes) or not value:
            raise ValueError(f"{path}: the {what} is missing ({mode})")
        return value

    return opaque


def credentials(
    tree: ObjectTree, security_iid: int, trust_store: tuple[bytes, ...] = ()
) -> X509Credentials:
    """Security mode 2's credentials from /0/``security_iid``: resources 3 (the client's
    certificate), 4 (the server's), 5 (the client's key) and 15 (Certificate Usage, 3 when
    absent); ValueError naming what is missing."""
    instance = Path((Security.OBJECT, security_iid))
    opaque = _opaque_resources(tree, instance, "security mode 2, certificate")
    usage_path = instance.child(Security.CERTIFICATE_USAGE)
    usage = tree.get(usage_path) if tree.has(usage_path) else None
    return X509Credentials(
        certificate=opaque(Security.IDENTITY, "client certificate"),
        private_key=opaque(Security.SECRET_KEY, "client private key"),
        server_certificate=opaque(Security.SERVER_PUBLIC_KEY, "server certificate"),
        usage=usage if isinstance(usage, int) else CertificateUsage.DOMAIN_ISSUED_CERTIFICATE,
        trust_store=trust_store,
    )


def rpk_credentials(tree: ObjectTree, security_iid: int) -> RpkCredentials:
    """Security mode 1's credentials from /0/``security_iid``: resources 3 (the client's public
    key), 4 (the server's) and 5 (the client's private key); ValueError naming what is missing
    or does not fit."""
    instance = Path((Security.OBJECT, security_iid))
    opaque = _opaque_resources(tree, instance, "security mode 1, raw public key")
    try:
        return RpkCredentials(
            public_key=opaque(Security.IDENTITY, "client public key"),
            private_key=opaque(Security.SECRET_KEY, "client private key"),
            server_public_key=opaque(Security.SERVER_PUBLIC_KEY, "server public key"),
        )
    except ValueError as e:
        raise ValueError(f"{instance}: {e}") from None


async def open_uplink(
    tree: ObjectTree,
    security_iid: int,
    uri: str,
    site: aiocoap.interfaces.Resource,
    *,
    bind: tuple[str, int],
    trust_store: tuple[bytes, ...] = (),
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    udp: OpenUdp = UdpUplink.create,
) -> Uplink:
    """The uplink towards the server (or Bootstrap-Server) of /0/``security_iid``, serving
    ``site``: as its Security Mode (/0/x/2) and its keys say, over ``uri``'s scheme (NoSec
    opened by ``udp``). A mode
    this client cannot do, or a mode that does not match the scheme, is a ValueError: never
    a session with less security than /0 asks."""
    instance = Path((Security.OBJECT, security_iid))

    def resource(rid: int) -> Value | None:
        value = tree.get(instance.child(rid)) if tree.has(instance.child(rid)) else None
        return None if isinstance(value, dict) else value

    mode, scheme = resource(Security.MODE), urlsplit(uri).scheme
    if mode == SecurityMode.PSK and scheme == "coaps":
        identity, key = resource(Security.IDENTITY), resource(Security.SECRET_KEY)
        if not isinstance(identity, bytes) or not isinstance(key, bytes) or not key:
            raise ValueError(f"server {uri}: {instance} has no PSK")
        return await DtlsPskUplink.create(
            uri, identity, key, site, handshake_timeout=handshake_timeout
        )
    if mode == SecurityMode.RPK and scheme == "coaps":
        # imported here: tinydtls' key checks load cryptography, which only mode 1 needs
        from .dtls_rpk import DtlsRpkUplink

        return await DtlsRpkUplink.create(
            uri,
            rpk_credentials(tree, security_iid),
            site,
            handshake_timeout=handshake_timeout,
        )
    if mode == SecurityMode.CERTIFICATE and scheme == "coaps":
        # imported here: pyOpenSSL is in the dtls extra, which a gateway may go without
        from .dtls_openssl import DtlsX509Uplink

        return await DtlsX509Uplink.create(
            uri,
            credentials(tree, security_iid, trust_store),
            site,
            handshake_timeout=handshake_timeout,
        )
    if mode == SecurityMode.NOSEC and scheme == "coap":
        return await udp(site, bind)
    raise ValueError(
        f"server {uri}: security mode {mode!r} over {scheme}:// is not supported"
        " (NoSec over coap://, PSK, raw public keys or certificates over coaps://)"
    )


def credential_values(
    psk_identity: bytes | None,
    psk_key: bytes | None,
    x509: X509Credentials | None,
    rpk: RpkCredentials | None,
) -> list[tuple[int, Value | dict[int, Value]]]:
    """The /0 resources that carry a configured PSK, raw public key or certificate."""
    if psk_identity is not None and psk_key is not None:
        return [(Security.IDENTITY, psk_identity), (Security.SECRET_KEY, psk_key)]
    if rpk is not None:
        return [
            (Security.IDENTITY, rpk.public_key),
            (Security.SERVER_PUBLIC_KEY, rpk.server_public_key),
            (Security.SECRET_KEY, rpk.private_key),
        ]
    if x509 is not None:
        return [
            (Security.IDENTITY, x509.certificate),
            (Security.SERVER_PUBLIC_KEY, x509.server_certificate),
            (Security.SECRET_KEY, x509.private_key),
            (Security.CERTIFICATE_USAGE, x509.usage),
        ]
    return []


UPDATE_OBJECTS = frozenset({LwM2MGateway.OBJECT, Server.OBJECT})
"""The objects a change of whose resources can change what an Update carries
(``ServerSession.carries``)."""


class _QueueMode:
    """A session's queue mode (``ServerSession``): its gate, the flag set when the server
    answers (the gate's timer waits for it) and that timer (``_queue_timer``). One slot of
    the session, none outside queue mode (16 bytes of each of 10,000 node endpoints as
    allocated, issue 17)."""

    __slots__ = ("awake", "gate", "task")

    def __init__(self, gate: QueueModeGate) -> None:
        self.gate = gate
        self.awake = Flag()
        self.task: asyncio.Task[None] | None = None


class ServerSession:
    """Everything the client has toward one server (see the module docstring).

    Build it with ``open``, run it with ``start``, end it with ``close``. Slotted, as the
    client and its registrar: each of the endpoints mode's 10,000 endpoints has one of each
    (an instance's dict was 64 bytes more each, issue 17).

    It is also what its socket serves (an ``interfaces.Resource``, registered as one): the
    server's requests go to its ``DeviceManagementResource``, made at the first of them
    (``_serving``) and kept from then on (its Block1 assembly and Block2 responses span
    requests). The session itself, not a site object holding it: 88 bytes of each of 10,000
    node endpoints (issue 17).
    """

    __slots__ = (
        "__weakref__",  # delivery keeps what it knows of a session weakly
        "_client",
        "_dm",
        "_heard",
        "_observations",
        "_queue",
        "_resource",
        "block_exponent",
        "config",
        "registrar",
        "security_instance",
        "server_instance",
        "tree",
        "uplink",
    )

    uplink: Uplink
    registrar: Registrar

    def __init__(
        self,
        client: LwM2MClient,
        config: ServerConfig,
        *,
        security_instance: int,
        server_instance: int,
    ) -> None:
        self._client = client
        """Its client, whose access control, node backend, end devices and ``on_idle`` the
        session's own are: read from it, not four slots of each session (32 bytes of each of
        10,000 node endpoints, issue 17)."""
        self.tree = client.tree
        self.config = config
        self.security_instance = security_instance
        self.server_instance = server_instance
        self._dm: DeviceManagement | None = None
        self._observations: Observations | None = None
        self._heard: float | None = None
        """When the server last answered, while there are no ``observations`` to tell."""
        self._queue: _QueueMode | None = None
        """Queue mode's gate and timer: none outside queue mode (a node endpoint's)."""
        if config.queue:
            self._queue = _QueueMode(
                QueueModeGate(config.queue_window, on_sleep=self._hold, on_wake=self._release)
            )
        self._resource: DeviceManagementResource | None = None
        """What serves the server's requests, once one came (``_serving``)."""
        self.block_exponent = LARGEST
        """The Block1 size exponent Sends go in: the size the last Send went through in
        (smaller after a server asked for smaller blocks, ``block1.send_in_blocks``)."""

    @classmethod
    async def open(
        cls,
        client: LwM2MClient,
        config: ServerConfig,
        *,
        security_instance: int,
        server_instance: int,
        on_event: Callable[[RegistrationEvent], None],
    ) -> ServerSession:
        """The session of ``client`` with its socket open (nothing sent yet; a NoSec one
        opened by the client's ``udp``, bound to its ``bind``)."""
        session = cls(
            client, config, security_instance=security_instance, server_instance=server_instance
        )
        session.uplink = await session._open_uplink(client.bind, client.udp)
        target = _one_target(session.uri, config.version, config.request_timeout, config.retry)
        session.registrar = Registrar(
            session.uplink, target, session, on_event, endpoint=client.endpoint
        )
        return session

    # -- serving the server, made on demand ---------------------------------------------------
    #
    # A session's device management and observations are made when first needed: the server's
    # first request, or delivery's first notification. Most of a gateway's 10,000 node
    # endpoints (the endpoints mode) are never asked anything, and these were 2 KB of each.

    @property
    def dm(self) -> DeviceManagement:
        """The server's device management (its Write-Attributes, its Access Control)."""
        if self._dm is None:
            self._dm = DeviceManagement(
                self.tree,
                version=lambda: self.registrar.version,
                server_id=self.short_server_id,
                access=self._client.access,
                nodes=self._client.nodes,
                end_devices=self._client.end_devices,
            )
        return self._dm

    @property
    def observations(self) -> Observations:
        """The server's observations. Queue mode holds their notifications (``hold``) while
        the client sleeps and releases them (``release``) once an Update has told the server
        it is awake; a notification that falls due while held calls ``wake`` so that the
        Update goes out."""
        if self._observations is None:
            observations = Observations(
                self.dm,
                server_instance=self.server_instance,
                limit=self.config.max_observations,
                heard_at=self._heard,
            )
            observations.on_held = self.wake
            observations.turns = notification_turns(self.uplink.context)
            observations.watch_ack = ack_watch(self.uplink.context)
            if self.gate is not None and self.gate.state is not QueueState.AWAKE:
                observations.hold()
            self._observations = observations
        return self._observations

    def _serving(self) -> DeviceManagementResource:
        """What serves the server's requests: made at its first request, then kept."""
        if self._resource is None:
            self._resource = DeviceManagementResource(
                self.dm, self.observations, self._client.on_idle
            )
        return self._resource

    # -- the site of its socket (``interfaces.Resource``) --------------------------------------

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        return await self._serving().render(request)

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return False  # the device management assembles (``render_to_pipe``)

    async def render_to_pipe(self, pipe: Pipe) -> None:
        await self._serving().render_to_pipe(pipe)

    def answer_now(self, request: aiocoap.Message) -> Answer | None:
        """The device management's (``bridged.engine.serving``)."""
        return self._serving().answer_now(request)

    # -- what the tree says ------------------------------------------------------------------

    def _security(self, rid: int) -> Value | None:
        path = Path((Security.OBJECT, self.security_instance, rid))
        if not self.tree.has(path):
            return None
        value = self.tree.get(path)
        return None if isinstance(value, dict) else value

    @property
    def uri(self) -> str:
        """The Server URI, /0/x/0."""
        uri = self._security(Security.URI)
        return uri if isinstance(uri, str) else self.config.uri

    @property
    def name(self) -> str:
        return self.uri

    async def _open_uplink(self, bind: tuple[str, int], udp: OpenUdp) -> Uplink:
        return await open_uplink(
            self.tree,
            self.security_instance,
            self.uri,
            cast(interfaces.Resource, self),  # registered as one (below the class)
            bind=bind,
            trust_store=self.config.x509.trust_store if self.config.x509 is not None else (),
            handshake_timeout=self.config.dtls_handshake_timeout,
            udp=udp,
        )

    def params(self) -> RegistrationParams:
        """What the registration carries now, read from the tree and this server's /1."""
        server = Path((Server.OBJECT, self.server_instance))
        lifetime = self.tree.get(server.child(Server.LIFETIME))
        binding = self.tree.get(server.child(Server.BINDING))
        objects = [(o, iids) for o, iids in self.tree.objects() if o.id not in BOOTSTRAP_ONLY]
        return RegistrationParams(
            lifetime=lifetime if isinstance(lifetime, int) else self.config.lifetime,
            binding=binding if isinstance(binding, str) else self.config.binding,
            queue=self.config.queue,
            links=registration_links(objects, version=self.registrar.version),
        )

    def carries(self, path: Path) -> bool:
        """True if a change at ``path`` changes what this server's Update carries (or, for
        /25/x/3, an end device's object list, which a server reads /25 on each Update for):
        of the resources, only those of ``UPDATE_OBJECTS``."""
        ids = path.ids  # every reading's tree update asks: its IDs are read once
        if len(ids) <= 2 or ids[::2] == (LwM2MGateway.OBJECT, LwM2MGateway.IOT_DEVICE_OBJECTS):
            return True
        return ids[:2] == (Server.OBJECT, self.server_instance) and ids[2] in (
            Server.LIFETIME,
            Server.BINDING,
        )

    # -- running -----------------------------------------------------------------------------

    @property
    def short_server_id(self) -> int:
        """Its server's (``config``): not a slot of each session (issue 17)."""
        return self.config.short_server_id

    @property
    def registered(self) -> bool:
        return self.registrar.registered

    @property
    def gate(self) -> QueueModeGate | None:
        """Queue mode's gate, None outside queue mode."""
        return None if self._queue is None else self._queue.gate

    @property
    def queue_state(self) -> QueueState | None:
        """Where queue mode stands, or None when this server is not in queue mode."""
        return self.gate.state if self.gate is not None else None

    def start(self) -> None:
        self.registrar.start()
        queue = self._queue
        if queue is not None:
            queue.task = asyncio.create_task(
                self._queue_timer(queue.gate, queue.awake),
                name=f"lwm2m-queue-{self.short_server_id}",
            )

    def trigger_update(self) -> None:
        self.registrar.trigger_update()

    def observed_paths(self) -> list[tuple[Path, ...]]:
        """The paths of each of this server's observations, oldest first (what ``bridgectl
        observe list`` shows, like the Zephyr shell's)."""
        return [] if self._observations is None else self._observations.paths()

    async def close(self, *, deregister: bool = True) -> None:
        """De-register (unless told not to: a shutdown that cannot wait for the server) and
        close the socket. The socket is closed even when the close is cancelled while the
        De-register waits for its answer, so that bounding a shutdown leaks nothing."""
        try:
            if self._queue is not None:
                await cancel_and_wait(self._queue.task)
                self._queue.task = None
            await self.registrar.stop()
            if self._observations is not None:
                await self._observations.close()
            if deregister:
                await self.registrar.deregister()
        finally:
            await self.uplink.shutdown()

    # -- queue mode --------------------------------------------------------------------------

    def wake(self) -> None:
        """Something held must go out: if the client sleeps, send the Update that wakes it.

        What is held is released once the server has answered (``on_wake``). Outside queue
        mode, or when already awake or waking, there is nothing to do.
        """
        if self.gate is not None and self.gate.wake():
            log.debug("server %s: waking from queue mode with an Update", self.name)
            self.registrar.trigger_update()

    def answered(self) -> None:
        """The server answered a message the client sent, so the client is reachable for a new
        window. The registrar calls it for every answered request (Register, Update, Send); the
        observe engine calls it when the server acknowledges a confirmable notification."""
        if self._observations is not None:
            self._observations.heard()
        else:
            self._heard = asyncio.get_running_loop().time()
        if self._queue is not None:
            self._queue.gate.answered()
            self._queue.awake.set()

    def _hold(self) -> None:
        log.debug("server %s: queue mode window over, holding notifications", self.name)
        if self._observations is not None:
            self._observations.hold()

    def _release(self) -> None:
        if self._observations is not None:
            self._observations.release()

    @staticmethod
    async def _queue_timer(gate: QueueModeGate, awake: Flag) -> None:
        """Put the gate to sleep when its window ends; the gate itself does no I/O."""
        while True:
            deadline = gate.deadline
            if deadline is None:
                awake.clear()
                await awake.wait()
                continue
            await asyncio.sleep(max(deadline - gate.clock(), 0.0))
            gate.tick()

    # -- Send --------------------------------------------------------------------------------

    async def send(self, records: Sequence[Record]) -> SendOutcome:
        """Send ``records`` (POST /dp, SenML CBOR); raises ``SendRefused`` when it cannot go.

        Bad records raise BadRequest or NotFound before anything is sent."""
        try:
            payload = encode_send(records, self.tree)
        except LwM2MError:
            self._client.on_idle()  # as after a Send: the tree is not read again for it
            raise
        return await self.send_encoded(payload, len(records))

    async def send_encoded(self, payload: bytes, count: int) -> SendOutcome:
        """Send ``payload``, ``count`` records checked (``check_records``) and encoded
        already, as delivery has them after sizing its batch; raises ``SendRefused`` when it
        cannot go."""
        try:
            registrar, name = self.registrar, self.name  # the name reads the tree: once
            await registrar.announced(self.config.request_timeout + MIN_UPDATE_INTERVAL)
            check_allowed(
                registered=registrar.registered,
                version=registrar.version,
                muted=muted(self.tree, self.server_instance),
                server=name,
            )
        finally:
            self._client.on_idle()  # the tree is not read again for this Send
        try:
            answer = await self._post_send(payload)
        except (aiocoap.error.Error, TimeoutError, OSError) as e:
            outcome = SendOutcome(SendStatus.NO_ANSWER, name, count, failure_text(e))
        except BrokenBlockwise as e:
            outcome = SendOutcome(SendStatus.REJECTED, name, count, str(e))
        else:
            response = answer.response
            code = int(response.code)
            outcome = outcome_of(code, bytes(response.payload), name, count)
            if outcome.delivered:  # not when the body, not the block, was too large
                self.block_exponent = answer.exponent
        if outcome.status is SendStatus.REGISTER_AGAIN:
            registrar.register_again()
        # A busy gateway Sends several times a second: only the failures are news.
        level = logging.DEBUG if outcome.delivered else logging.WARNING
        if log.isEnabledFor(level):
            log.log(
                level,
                "server %s: Send of %d records %s %s",
                name,
                count,
                outcome.status.value,
                outcome.detail,
                extra={"SERVER": name},
            )
        return outcome

    async def _post_send(self, payload: bytes) -> Transferred:
        """POST ``payload`` to the server's ``dp`` in Block1 blocks of the size the last Send
        went through in, smaller when the server asks (``block1.send_in_blocks``: one
        prepared message per block, not aiocoap's block-wise layer)."""
        registrar = self.registrar
        msg = aiocoap.Message(code=Code.POST, uri=registrar.uri(SEND_PATH), payload=payload)
        msg.opt.content_format = ContentFormat.SENML_CBOR
        exponent = self.block_exponent
        return await registrar.transfer(lambda exchange: send_in_blocks(exchange, msg, exponent))


interfaces.Resource.register(ServerSession)
"""A session is its socket's site (the class docstring)."""


class _Bootstrapping:
    """What a client with a Bootstrap-Server keeps of it (``LwM2MClient``): the configuration
    and its event callback given, and what ``start`` makes (the wish to bootstrap again, each
    server's failed registration sequences, the lifecycle task, the server-initiated
    listener). One slot of the client, none of them: a node endpoint's client has no
    Bootstrap-Server, and these were 64 bytes of each of 10,000 (issue 17)."""

    __slots__ = (
        "bootstrapper",
        "config",
        "failed_sequences",
        "listened",
        "listener",
        "on_event",
        "provisioned",
        "task",
        "wanted",
    )

    def __init__(self, config: BootstrapConfig, on_event: Callable[[BootstrapEvent], None]):
        self.config = config
        self.on_event = on_event
        self.wanted: Flag
        self.failed_sequences: dict[str, int]
        """Made by ``start``."""
        self.task: asyncio.Task[None] | None = None
        self.bootstrapper: Bootstrapper | None = None
        self.listener: aiocoap.Context | None = None
        self.listened: ServerInitiatedResource | None = None
        self.provisioned: Staged | None = None
        """What a server-initiated bootstrap finished with, until the client applies it."""


class LwM2MClient:
    """Serves ``tree`` as endpoint ``endpoint`` to each of ``servers``; ``start``/``stop`` run
    it. A single ``ServerConfig`` is one server.

    With a Bootstrap-Server (``bootstrap``), the servers are whatever LwM2M Server accounts the
    tree holds: the client bootstraps when it has none it can use, and again when a server's
    registration fails for good and its /1/x/16 Bootstrap on Registration Failure allows it, or
    when a server executes /1/x/9 Bootstrap-Request Trigger. With a state directory
    (``state_dir``), what a bootstrap provisioned is saved there and loaded at the next start,
    which then registers straight away with it (not with the configured servers it replaced).
    With ``bootstrap.server_initiated_port``, the Bootstrap-Server may also bootstrap the client
    at any time (``bootstrap_listener``): once it finishes, the client de-registers from its
    servers, takes the provisioned objects as a whole, saves them, and registers with the
    servers they name.

    With ``nodes``, each server's device management awaits node-backed paths from it (see
    ``bridged.engine.nodes``). With ``end_devices`` (the ``gateway`` exposure mode), the
    end devices' trees are served at their prefixes (see ``dm.EndDevices``). ``udp`` opens the
    sessions' NoSec uplinks (the endpoints mode's endpoints share one engine:
    ``bridged.engine.sockets``); a bootstrap session's is a context of its own, as it talks
    to the Bootstrap-Server through that context.
    """

    __slots__ = (
        "_boot",
        "_subscribed",
        "access",
        "bind",
        "end_devices",
        "endpoint",
        "nodes",
        "on_event",
        "on_idle",
        "servers",
        "sessions",
        "store",
        "tree",
        "udp",
    )

    def __init__(
        self,
        tree: ObjectTree,
        endpoint: str,
        servers: ServerConfig | Sequence[ServerConfig] | None = None,
        *,
        bind: tuple[str, int] = ("::", 0),
        udp: OpenUdp = UdpUplink.create,
        on_event: Callable[[RegistrationEvent], None] = lambda e: None,
        bootstrap: BootstrapConfig | None = None,
        state_dir: pathlib.Path | None = None,
        on_bootstrap_event: Callable[[BootstrapEvent], None] = lambda e: None,
        nodes: NodeBackend | None = None,
        end_devices: EndDevices | None = None,
        on_idle: Callable[[], None] = _nothing,
    ) -> None:
        self.tree = tree
        self.nodes = nodes
        self.end_devices = end_devices
        self.endpoint = endpoint
        if servers is None:
            servers = ()
        self.servers = (servers,) if isinstance(servers, ServerConfig) else tuple(servers)
        if not self.servers and bootstrap is None:
            raise ValueError("a LwM2M client needs a LwM2M Server or a Bootstrap-Server")
        ids = [s.short_server_id for s in self.servers]
        if len(set(ids)) != len(ids):
            raise ValueError(f"short server IDs must differ between servers: {ids}")
        plain = sum(1 for s in self.servers if s.security_mode == SecurityMode.NOSEC)
        if bind[1] != 0 and plain > 1:
            raise ValueError(f"{plain} NoSec servers cannot share the fixed port {bind[1]}")
        self.bind = bind
        self.udp = udp
        self.on_event = on_event
        self._boot = (
            _Bootstrapping(bootstrap, on_bootstrap_event) if bootstrap is not None else None
        )
        """What a client with a Bootstrap-Server has of it; a node endpoint's has none."""
        self.store = ProvisioningStore(state_dir) if state_dir is not None else None
        self.sessions: tuple[ServerSession, ...] = ()
        """A tuple, made again when a session opens or all close: a list was 40 bytes more of
        each of 10,000 node endpoints (issue 17)."""
        self.access: AccessControl | None = None
        self._subscribed = False
        """Whether the client is subscribed to its tree (``start`` to ``stop``)."""
        self.on_idle = on_idle
        """Called once an exchange with a server is over (one of its requests answered, a Send
        answered): when the tree's owner may put it to rest (``ObjectTree.rest``, a node
        endpoint's). The sessions call it themselves: no bound method of the client to pass it
        on (64 bytes of each of 10,000 node endpoints, issue 17)."""

    @property
    def _b(self) -> _Bootstrapping:
        """The bootstrap state, in the code that runs only with a Bootstrap-Server."""
        assert self._boot is not None
        return self._boot

    def observing(self) -> bool:
        """Whether a server observes anything of this client now (a node endpoint asks at
        every reading: a loop, not a generator)."""
        for s in self.sessions:
            observations = s._observations  # this module's: not made is none
            if observations is not None and len(observations):
                return True
        return False

    def session(self, short_server_id: int) -> ServerSession:
        """The running session of the server with this Short Server ID."""
        for s in self.sessions:
            if s.short_server_id == short_server_id:
                return s
        raise ValueError(f"no running session for short server ID {short_server_id}")

    # -- factory bootstrap -------------------------------------------------------------------

    def _find(self, oid: int, rid: int, value: Value) -> int | None:
        """The first instance of ``oid`` whose resource ``rid`` holds ``value``."""
        if not self.tree.has(Path((oid,))):
            return None
        for iid in self.tree.instance_ids(oid):
            path = Path((oid, iid, rid))
            if self.tree.has(path) and self.tree.get(path) == value:
                return iid
        return None

    def _factory_bootstrap(self, s: ServerConfig) -> None:
        """Create the /0 and /1 instances of server ``s`` from the configuration unless
        instances with its Short Server ID are there already."""
        if self._find(Security.OBJECT, Security.SSID, s.short_server_id) is None:
            values: list[tuple[int, Value | dict[int, Value]]] = [
                (Security.URI, s.uri),
                (Security.IS_BOOTSTRAP, False),
                (Security.MODE, s.security_mode),
                (Security.SSID, s.short_server_id),
            ]
            values += credential_values(s.psk_identity, s.psk_key, s.x509, s.rpk)
            self.tree.create_instance(Security.OBJECT, None, values)
        if self._find(Server.OBJECT, Server.SSID, s.short_server_id) is None:
            self.tree.create_instance(
                Server.OBJECT,
                None,
                [
                    (Server.SSID, s.short_server_id),
                    (Server.LIFETIME, s.lifetime),
                    (Server.NOTIFICATION_STORING, False),
                    (Server.BINDING, s.binding),
                    (Server.MUTE_SEND, s.mute_send),
                ],
            )

    def _factory_bootstrap_account(self, b: BootstrapConfig) -> None:
        """The configured Bootstrap-Server's /0 instance, unless the tree has one (a saved
        configuration names its own Bootstrap-Server, which then wins)."""
        if bootstrap_account(self.tree) is None:
            keys: dict[int, Value | dict[int, Value]] = dict.fromkeys(
                (Security.IDENTITY, Security.SERVER_PUBLIC_KEY, Security.SECRET_KEY), b""
            )
            keys.update(credential_values(b.psk_identity, b.psk_key, b.x509, b.rpk))
            self.tree.create_instance(
                Security.OBJECT,
                None,
                [
                    (Security.URI, b.uri),
                    (Security.IS_BOOTSTRAP, True),
                    (Security.MODE, b.security_mode),
                    *keys.items(),
                    (Security.HOLD_OFF, b.hold_off),
                ],
            )

    # -- running -----------------------------------------------------------------------------

    def __call__(self, path: Path, arguments: str | None = None) -> None:
        """The client is its tree's listener (``ObjectTree.subscribe(client)``) and its /1/x/8
        Registration Update Trigger's executor (``on_execute``): itself, not a bound method
        made for either, 64 bytes each of 10,000 node endpoints (issue 17). A listener is told
        a path, an executor a path and the argument text (``ExecuteHandler``).

        A change of what a registration carries asks the sessions for an Update; /1/x/8
        executed asks the server of that /1 instance for one."""
        ids = path.ids
        if arguments is not None:
            for s in self.sessions:
                if s.server_instance == ids[1]:
                    s.trigger_update()
            return
        if len(ids) > 2 and ids[0] not in UPDATE_OBJECTS:
            return  # a reading's resource, as nearly every change is: no session is asked
        for s in self.sessions:
            if s.carries(path):
                s.trigger_update()

    async def start(self) -> None:
        """Open one session per server and start registering (bootstrapping first when the
        client needs it); returns without waiting for any server to answer."""
        provisioned = self.store is not None and self.store.load(self.tree)
        # What a Bootstrap-Server provisioned replaces the configured servers, as it did when
        # it was written: a [[server]] it deleted does not come back at the next start.
        if not (provisioned and self._boot is not None):
            for s in self.servers:
                self._factory_bootstrap(s)
        self.tree.constrain(Server.OBJECT, Server.BINDING, check_binding)
        self.tree.on_execute(Server.OBJECT, Server.UPDATE_TRIGGER, self)
        self.tree.subscribe(self, UPDATE_OBJECTS)  # the values it looks at (``__call__``)
        self._subscribed = True
        boot = self._boot
        if boot is None:
            await self._open_sessions()
            return
        self._factory_bootstrap_account(boot.config)
        boot.wanted = Flag()
        boot.failed_sequences = {}
        self.tree.on_execute(
            Server.OBJECT, Server.BOOTSTRAP_TRIGGER, lambda path, args: boot.wanted.set()
        )
        await self._open_listener()
        boot.task = asyncio.create_task(self._lifecycle(), name=f"lwm2m-{self.endpoint}")

    async def stop(self, *, deregister: bool = True) -> None:
        """De-register from every server (at once, so a silent one delays no other) and close
        the sockets; with ``deregister=False`` only close them."""
        if self._subscribed:
            self.tree.unsubscribe(self, UPDATE_OBJECTS)
            self._subscribed = False
        if self._boot is not None:
            await cancel_and_wait(self._boot.task)
            self._boot.task = None
            await self._close_listener()
        await self._close_sessions(deregister=deregister)

    def _accounts(self) -> list[ServerAccount]:
        """The LwM2M Server accounts in the tree that this client can register with."""
        return [
            a for a in server_accounts(self.tree) if a.security_mode in SUPPORTED_SECURITY_MODES
        ]

    def _config_for(self, account: ServerAccount) -> ServerConfig:
        """The configuration of ``account``'s server: the configured one with its Short Server
        ID, or defaults for a server a Bootstrap-Server provisioned. Retry settings the
        Bootstrap-Server put in /1/x/17-20 win over the configured ones."""
        config = next((s for s in self.servers if s.short_server_id == account.ssid), None)
        if config is None and account.security_mode == SecurityMode.CERTIFICATE:
            config = ServerConfig(
                account.uri, account.ssid, x509=credentials(self.tree, account.security_iid)
            )
        elif config is None and account.security_mode == SecurityMode.RPK:
            config = ServerConfig(
                account.uri, account.ssid, rpk=rpk_credentials(self.tree, account.security_iid)
            )
        elif config is None:
            config = ServerConfig(
                account.uri,
                account.ssid,
                psk_identity=self._bytes(account.security_iid, Security.IDENTITY),
                psk_key=self._bytes(account.security_iid, Security.SECRET_KEY),
            )
        server = Path((Server.OBJECT, account.server_iid))
        provisioned = {
            name: value
            for name, rid in RETRY_RESOURCES
            if self.tree.has(server.child(rid))
            and isinstance(value := self.tree.get(server.child(rid)), int)
        }
        return (
            replace(config, retry=replace(config.retry, **provisioned)) if provisioned else config
        )

    def package_session(self, uri: str) -> Callable[[], Awaitable[Uplink]] | None:
        """How to open a DTLS session to the host and port of coaps:// ``uri`` (a firmware
        package's, ``bridged.download``): with the credentials of the LwM2M Server account at
        that same origin (its /0 instance: PSK or certificates), in a session of its own, not
        the registration's; None when no coaps:// server is there."""
        wanted = origin(uri)
        for account in self._accounts():
            if account.uri.startswith("coaps:") and origin(account.uri) == wanted:
                config = self._config_for(account)
                return lambda: open_uplink(
                    self.tree,
                    account.security_iid,
                    account.uri,
                    Site(),  # the package's server has nothing to ask
                    bind=("::", 0),
                    trust_store=config.x509.trust_store if config.x509 is not None else (),
                    handshake_timeout=config.dtls_handshake_timeout,
                )
        return None

    def _bytes(self, security_iid: int, rid: int) -> bytes | None:
        path = Path((Security.OBJECT, security_iid, rid))
        value = self.tree.get(path) if self.tree.has(path) else None
        return value if isinstance(value, bytes) and value else None

    async def _open_sessions(self) -> None:
        accounts = self._accounts()
        if len(accounts) > 1:
            self.access = self._access_control(accounts)
        try:
            for account in accounts:
                self.sessions += (
                    await ServerSession.open(
                        self,
                        self._config_for(account),
                        security_instance=account.security_iid,
                        server_instance=account.server_iid,
                        # Only a Bootstrap-Server's client has more to do with an event.
                        on_event=self.on_event
                        if self._boot is None
                        else self._on_registration_event,
                    ),
                )
        except BaseException:
            await asyncio.gather(*(s.uplink.shutdown() for s in self.sessions))
            self.sessions = ()
            raise
        for session in self.sessions:
            session.start()

    async def _close_sessions(self, *, deregister: bool = True) -> None:
        sessions, self.sessions = self.sessions, ()
        await asyncio.gather(*(s.close(deregister=deregister) for s in sessions))
        if self.access is not None:
            self.access.close()
            self.access = None

    def _access_control(self, accounts: Sequence[ServerAccount]) -> AccessControl:
        """With several servers, /2 decides who may do what (one server has full access).

        Instances that already have a /2 instance (provisioned by a Bootstrap-Server) keep it.
        The factory defaults for the others: the first server owns the gateway's own
        instances and the nodes' and may do everything on them, every other server may read
        and observe them, and each server owns its own /1 instance (its lifetime, its
        binding, its Update trigger).
        """
        provisioned = {
            (
                self.tree.get(Path((Acl.OBJECT, iid, Acl.OBJECT_ID))),
                self.tree.get(Path((Acl.OBJECT, iid, Acl.INSTANCE_ID))),
            )
            for iid in (
                self.tree.instance_ids(Acl.OBJECT) if self.tree.has(Path((Acl.OBJECT,))) else []
            )
        }
        primary = accounts[0].ssid
        access = AccessControl(
            self.tree,
            local=Grant(primary, {primary: int(CREATOR_RIGHTS), 0: int(Right.READ)}),
        )
        for a in accounts:
            if (Server.OBJECT, a.server_iid) not in provisioned:
                access.grant(
                    Server.OBJECT, a.server_iid, owner=a.ssid, acl={a.ssid: int(CREATOR_RIGHTS)}
                )
        return access

    # -- bootstrap ---------------------------------------------------------------------------

    def _on_registration_event(self, event: RegistrationEvent) -> None:
        """Pass the event on; with a Bootstrap-Server, count each server's failed retry
        sequences for Bootstrap on Registration Failure (a sequence has failed when the
        failure comes while waiting to retry)."""
        self.on_event(event)
        if self._boot is None:
            return
        if event.kind is EventKind.REGISTRATION_COMPLETE:
            self._b.failed_sequences.pop(event.server, None)
        elif (
            event.kind is EventKind.REGISTRATION_FAILURE
            and event.state is RegistrationState.RETRY_WAIT
        ):
            session = next((s for s in self.sessions if s.name == event.server), None)
            if session is None:
                return
            failed = self._b.failed_sequences.get(event.server, 0) + 1
            self._b.failed_sequences[event.server] = failed
            limit = max(session.registrar.target.retry.sequence_count, 1)
            if failed >= limit and self._bootstrap_on_failure(session.server_instance):
                self._b.wanted.set()

    def _bootstrap_on_failure(self, server_iid: int) -> bool:
        """/1/x/16 of the server that failed; true when absent, as LwM2M 1.1 says."""
        flag = Path((Server.OBJECT, server_iid, Server.BOOTSTRAP_ON_FAILURE))
        return not self.tree.has(flag) or self.tree.get(flag) is not False

    async def _lifecycle(self) -> None:
        """Bootstrap when there is no usable account, register, and bootstrap again when
        asked to (registration failure, /1/x/9); take what a server-initiated bootstrap
        finished with (``_server_initiated_finish``) between the two."""
        fallback = False
        while True:
            if self._b.provisioned is None:
                self._b.wanted.clear()
                if fallback or not self._accounts():
                    await self._bootstrap_once()
            if self._b.provisioned is not None:
                await self._apply_provisioned(self._b.provisioned)
            self._b.failed_sequences.clear()
            if self._b.provisioned is None:  # else one more finished while this one was applied
                self._b.wanted.clear()
            await self._open_sessions()
            await self._b.wanted.wait()
            await self._close_sessions()
            fallback = self._b.provisioned is None

    # -- server-initiated bootstrap ----------------------------------------------------------

    async def _open_listener(self) -> None:
        """Listen for the Bootstrap-Server when the configuration asks to; ValueError when its
        account's security mode cannot be listened for."""
        port = self._b.config.server_initiated_port
        account = bootstrap_account(self.tree)
        if port is None or account is None:
            return
        self._b.listened = ServerInitiatedResource(
            self.tree,
            on_finish=self._server_initiated_finish,
            busy=self._bootstrap_busy,
            silence=self._b.config.finish_timeout,
            supported_modes=SUPPORTED_SECURITY_MODES,
            preferred_format=self._b.config.preferred_format,
            nodes=self.nodes,
        )
        try:
            keys: RpkCredentials | X509Credentials | None = None
            if account.security_mode == SecurityMode.RPK:
                keys = rpk_credentials(self.tree, account.iid)
            elif account.security_mode == SecurityMode.CERTIFICATE:
                trust = self._b.config.x509.trust_store if self._b.config.x509 is not None else ()
                keys = credentials(self.tree, account.iid, trust)
            self._b.listener = await open_listener(
                self.tree, account, (self.bind[0], port), self._b.listened, keys
            )
        except OSError as e:  # the port is taken, say: name the setting
            raise OSError(e.errno, f"[bootstrap] server_initiated_port {port}: {e.strerror}") from e
        log.info(
            "listening on port %d for a bootstrap by the Bootstrap-Server %s", port, account.uri
        )

    async def _close_listener(self) -> None:
        if self._b.listened is not None:
            self._b.listened.close()
            self._b.listened = None
        if self._b.listener is not None:
            listener, self._b.listener = self._b.listener, None
            await listener.shutdown()

    def _bootstrap_busy(self) -> bool:
        """Whether a bootstrap is under way already: a Bootstrap-Server serving the client's
        own Bootstrap-Request, or a finished server-initiated one not applied yet."""
        serving = self._b.bootstrapper is not None and self._b.bootstrapper.state in (
            BootstrapState.SERVING,
            BootstrapState.FINISHED,
        )
        return serving or self._b.provisioned is not None

    def _server_initiated_finish(self, provisioned: Staged) -> None:
        """A server-initiated Bootstrap-Finish was accepted: the lifecycle takes it over."""
        self._b.provisioned = provisioned
        self._b.wanted.set()

    async def _apply_provisioned(self, provisioned: Staged) -> None:
        """Take a server-initiated bootstrap's objects as a whole, save them, and listen anew
        when the Bootstrap-Server account itself changed."""
        before, server = self._bootstrap_server_account(), bootstrap_account(self.tree)
        replace_objects(self.tree, HOUSEKEEPING, provisioned)
        self._b.provisioned = None
        stamp_last_bootstrapped(self.tree, int(time.time()))
        self._save_provisioned()
        self._b.on_event(
            BootstrapEvent(
                BootstrapEventKind.BOOTSTRAP_COMPLETE,
                server.uri if server is not None else "",
                BootstrapState.FINISHED,
                "server-initiated",
            )
        )
        if self._bootstrap_server_account() != before:
            await self._close_listener()
            try:
                await self._open_listener()
            except (ValueError, OSError, aiocoap.error.Error) as e:
                log.error("no longer listening for the Bootstrap-Server: %s", e)

    def _bootstrap_server_account(self) -> tuple[int, dict[int, Value | dict[int, Value]]] | None:
        """The Bootstrap-Server account's instance and every value of it (URI, mode, keys):
        what the listener was opened with."""
        account = bootstrap_account(self.tree)
        if account is None:
            return None
        return account.iid, instance_values(self.tree, Security.OBJECT, account.iid)

    def _save_provisioned(self) -> None:
        """Save what a bootstrap provisioned, for the next start."""
        if self.store is not None:
            try:
                self.store.save(self.tree)
            except OSError as e:
                # A disk that refuses only costs a bootstrap at the next start.
                log.error("cannot save the provisioned configuration in %s: %s", self.store.path, e)

    async def _bootstrap_once(self) -> None:
        """One bootstrap, on a socket of its own that serves only the Bootstrap-Server."""
        account = bootstrap_account(self.tree)
        assert account is not None  # the factory bootstrap made one
        site = ClientSite(NotServing())
        trust = self._b.config.x509.trust_store if self._b.config.x509 is not None else ()
        uplink = await open_uplink(
            self.tree, account.iid, account.uri, site, bind=self.bind, trust_store=trust
        )
        self._b.bootstrapper = Bootstrapper(
            uplink.context,
            site,
            self.tree,
            self.endpoint,
            self._b.config,
            supported_modes=SUPPORTED_SECURITY_MODES,
            on_event=self._b.on_event,
            nodes=self.nodes,
        )
        run = asyncio.ensure_future(self._b.bootstrapper.run())
        # A server-initiated bootstrap that finishes first ends this one.
        wanted = asyncio.ensure_future(self._b.wanted.wait())
        try:
            await asyncio.wait((run, wanted), return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(wanted)
            await cancel_and_wait(run)
            self._b.bootstrapper = None
            await uplink.shutdown()
        if self._b.provisioned is None:
            self._save_provisioned()

    async def send(self, records: Sequence[Record], server: int | None = None) -> SendOutcome:
        """Send ``records`` to the server with Short Server ID ``server`` (default: the first
        server); see ``ServerSession.send``."""
        if not self.sessions:
            raise SendNotRegistered("the client is not registered with any server")
        session = self.sessions[0] if server is None else self.session(server)
        return await session.send(records)
