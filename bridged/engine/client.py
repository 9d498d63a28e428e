"""A LwM2M client for one object tree and one server: the parts wired together.

The tree is the single source of truth. The server's /0 and /1 instances are created from the
configuration (factory bootstrap), the registration's lifetime and binding are read from /1,
and the registrar is told to send an Update whenever what it carries changes: an instance
created or deleted, /1/x/1 Lifetime or /1/x/7 Binding written, /1/x/8 executed.

With a Bootstrap-Server configured (``bootstrap``), the client bootstraps when it has no usable
LwM2M Server account, and again when registration fails for good and /1/x/16 Bootstrap on
Registration Failure allows it, or when a server executes /1/x/9 Bootstrap-Request Trigger.
With a state directory (``state_dir``), what a bootstrap provisioned is saved there and loaded
at the next start, which then registers straight away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import aiocoap

from bridged.objects.linkformat import registration_links
from bridged.objects.paths import Level, Path
from bridged.objects.tree import ObjectTree

from .bootstrap import (
    BOOTSTRAP_ON_FAILURE,
    NOSEC,
    ServerAccount,
    bootstrap_account,
    server_accounts,
)
from .bootstrap_client import BootstrapConfig, BootstrapEvent, Bootstrapper
from .dm import BOOTSTRAP_ONLY, DeviceManagement, DeviceManagementResource
from .provisioning import ProvisioningStore
from .registration import (
    EventKind,
    Registrar,
    RegistrationEvent,
    RegistrationParams,
    RegistrationState,
    RetryPolicy,
    ServerTarget,
)
from .site import ClientSite

log = logging.getLogger(__name__)

SERVER_OBJECT = 1
LIFETIME, BINDING, UPDATE_TRIGGER = 1, 7, 8
BOOTSTRAP_TRIGGER = 9
RETRY_RESOURCES = (("count", 17), ("timer", 18), ("sequence_delay", 19), ("sequence_count", 20))
"""/1/x/17-20: Communication Retry Count, Retry Timer, Sequence Delay Timer, Sequence Retry
Count; when a Bootstrap-Server provisioned them they override the configuration."""
SUPPORTED_SECURITY_MODES = frozenset({NOSEC})
"""The security modes the client can register with; Bootstrap-Finish refuses any other."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One LwM2M server as the configuration describes it (factory bootstrap)."""

    uri: str
    short_server_id: int = 1
    lifetime: int = 300
    binding: str = "U"
    queue: bool = False
    version: str = "1.1"
    request_timeout: float = 93.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class LwM2MClient:
    """Serves ``tree`` to one server as endpoint ``endpoint``; ``start``/``stop`` run it."""

    def __init__(
        self,
        tree: ObjectTree,
        endpoint: str,
        server: ServerConfig | None,
        *,
        bind: tuple[str, int] = ("::", 0),
        on_event: Callable[[RegistrationEvent], None] = lambda e: None,
        bootstrap: BootstrapConfig | None = None,
        state_dir: pathlib.Path | None = None,
        on_bootstrap_event: Callable[[BootstrapEvent], None] = lambda e: None,
    ) -> None:
        if server is None and bootstrap is None:
            raise ValueError("a client needs a LwM2M Server or a Bootstrap-Server")
        self.tree = tree
        self.endpoint = endpoint
        self.server = server
        self.bind = bind
        self.on_event = on_event
        self.bootstrap = bootstrap
        self.store = ProvisioningStore(state_dir) if state_dir is not None else None
        self.on_bootstrap_event = on_bootstrap_event
        self.context: aiocoap.Context | None = None
        self.registrar: Registrar | None = None
        self.site: ClientSite | None = None
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._server_iid = 0
        self._failed_sequences = 0
        self._bootstrap_wanted = asyncio.Event()

    @property
    def _config(self) -> ServerConfig:
        """The configured server, or defaults for one a Bootstrap-Server provisioned."""
        return self.server if self.server is not None else ServerConfig(uri="")

    def _factory_bootstrap(self) -> None:
        """Create /0 and /1 for the configured server unless the tree already has them (from
        the state directory, say), and the configured Bootstrap-Server's /0 instance
        (Bootstrap-Server = true) unless the tree has one."""
        s = self.server
        if s is not None and (not self.tree.has(Path((0,))) or not self.tree.instance_ids(0)):
            self.tree.create_instance(
                0, 0, [(0, s.uri), (1, False), (2, 3), (10, s.short_server_id)]
            )
        if s is not None and (
            not self.tree.has(Path((SERVER_OBJECT,))) or not self.tree.instance_ids(SERVER_OBJECT)
        ):
            self.tree.create_instance(
                SERVER_OBJECT,
                0,
                [(0, s.short_server_id), (LIFETIME, s.lifetime), (6, False), (BINDING, s.binding)],
            )
        b = self.bootstrap
        if b is not None and bootstrap_account(self.tree) is None:
            self.tree.create_instance(
                0,
                None,
                [(0, b.uri), (1, True), (2, NOSEC), (3, b""), (4, b""), (5, b""), (11, b.hold_off)],
            )

    def params(self) -> RegistrationParams:
        """What the registration carries now, read from the tree."""
        server = Path((SERVER_OBJECT, self._server_iid))
        lifetime = self.tree.get(server.child(LIFETIME))
        binding = self.tree.get(server.child(BINDING))
        objects = [(o, iids) for o, iids in self.tree.objects() if o.id not in BOOTSTRAP_ONLY]
        version = self.registrar.version if self.registrar is not None else self._config.version
        return RegistrationParams(
            lifetime=lifetime if isinstance(lifetime, int) else self._config.lifetime,
            binding=binding if isinstance(binding, str) else self._config.binding,
            queue=self._config.queue,
            links=registration_links(objects, version=version),
        )

    def _on_change(self, path: Path) -> None:
        registrar = self.registrar
        if registrar is None:
            return
        structural = path.level <= Level.INSTANCE
        server_param = (
            path.object_id == SERVER_OBJECT
            and path.level >= Level.RESOURCE
            and path.resource_id in (LIFETIME, BINDING)
        )
        if structural or server_param:
            registrar.trigger_update()

    async def start(self) -> None:
        if self.store is not None:
            self.store.load(self.tree)
        self._factory_bootstrap()
        dm = DeviceManagement(
            self.tree,
            version=lambda: self.registrar.version if self.registrar else self._config.version,
        )
        self.site = ClientSite(DeviceManagementResource(dm))
        self.context = await aiocoap.Context.create_server_context(
            self.site, bind=self.bind, transports=["udp6"]
        )
        self.tree.on_execute(
            SERVER_OBJECT, UPDATE_TRIGGER, lambda path, args: self._trigger_update()
        )
        self._unsubscribe = self.tree.subscribe(self._on_change)
        if self.bootstrap is None:
            registrar = self._new_registrar(self._accounts()[0])
            self._task = asyncio.create_task(registrar.run(), name=f"lwm2m-{self.endpoint}")
        else:
            self.tree.on_execute(
                SERVER_OBJECT, BOOTSTRAP_TRIGGER, lambda path, args: self._bootstrap_wanted.set()
            )
            self._task = asyncio.create_task(self._lifecycle(), name=f"lwm2m-{self.endpoint}")

    # -- bootstrap ---------------------------------------------------------------------------

    def _accounts(self) -> list[ServerAccount]:
        """The LwM2M Server accounts this client can register with."""
        return [
            a for a in server_accounts(self.tree) if a.security_mode in SUPPORTED_SECURITY_MODES
        ]

    def _new_registrar(self, account: ServerAccount) -> Registrar:
        """A registrar for ``account``, with /1/x/17-20 from the tree where they are set."""
        assert self.context is not None
        self._server_iid = account.server_iid
        server = Path((SERVER_OBJECT, account.server_iid))
        provisioned = {
            name: self.tree.get(server.child(rid))
            for name, rid in RETRY_RESOURCES
            if self.tree.has(server.child(rid))
        }
        retry = replace(
            self._config.retry, **{k: v for k, v in provisioned.items() if isinstance(v, int)}
        )
        target = ServerTarget(
            uri=account.uri,
            endpoint=self.endpoint,
            version=self._config.version,
            request_timeout=self._config.request_timeout,
            retry=retry,
        )
        self.registrar = Registrar(self.context, target, self.params, self._on_registration_event)
        return self.registrar

    def _on_registration_event(self, event: RegistrationEvent) -> None:
        """Pass the event on; count failed retry sequences for Bootstrap on Registration
        Failure. A sequence has failed when the failure comes while waiting to retry."""
        self.on_event(event)
        if event.kind is EventKind.REGISTRATION_COMPLETE:
            self._failed_sequences = 0
        elif (
            event.kind is EventKind.REGISTRATION_FAILURE
            and event.state is RegistrationState.RETRY_WAIT
            and self.registrar is not None
        ):
            self._failed_sequences += 1
            given_up = self._failed_sequences >= max(self.registrar.target.retry.sequence_count, 1)
            if given_up and self._bootstrap_on_failure():
                self._bootstrap_wanted.set()

    def _bootstrap_on_failure(self) -> bool:
        """/1/x/16 of the server that failed; true when absent, as LwM2M 1.1 says."""
        flag = Path((SERVER_OBJECT, self._server_iid, BOOTSTRAP_ON_FAILURE))
        return not self.tree.has(flag) or self.tree.get(flag) is not False

    async def _lifecycle(self) -> None:
        """Bootstrap when there is no usable account, register, and bootstrap again when the
        registration fails for good and the server's /1/x/16 allows it, or when the server
        executes /1/x/9 Bootstrap-Request Trigger."""
        assert self.context is not None and self.site is not None and self.bootstrap is not None
        fallback = False
        while True:
            if fallback or not self._accounts():
                bootstrapper = Bootstrapper(
                    self.context,
                    self.site,
                    self.tree,
                    self.endpoint,
                    self.bootstrap,
                    supported_modes=SUPPORTED_SECURITY_MODES,
                    version=self._config.version,
                    on_event=self.on_bootstrap_event,
                )
                await bootstrapper.run()
                self._save()
            registrar = self._new_registrar(self._accounts()[0])
            self._failed_sequences = 0
            self._bootstrap_wanted.clear()
            registering = asyncio.create_task(registrar.run())
            wanted = asyncio.create_task(self._bootstrap_wanted.wait())
            try:
                done, _ = await asyncio.wait(
                    {registering, wanted}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for task in (registering, wanted):
                    task.cancel()
                await asyncio.gather(registering, wanted, return_exceptions=True)
            if wanted not in done:
                return
            await registrar.deregister()
            fallback = True

    def _save(self) -> None:
        """Keep what was provisioned; a disk that refuses only costs a bootstrap at restart."""
        if self.store is None:
            return
        try:
            self.store.save(self.tree)
        except OSError as e:
            log.error("cannot save the provisioned configuration in %s: %s", self.store.path, e)

    def _trigger_update(self) -> None:
        if self.registrar is not None:
            self.registrar.trigger_update()

    async def stop(self) -> None:
        """De-register and close the socket."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.registrar is not None:
            await self.registrar.deregister()
        if self.context is not None:
            await self.context.shutdown()
            self.context = None
