"""A LwM2M client for one object tree and one server: the parts wired together.

The tree is the single source of truth. The server's /0 and /1 instances are created from the
configuration (factory bootstrap), the registration's lifetime and binding are read from /1,
and the registrar is told to send an Update whenever what it carries changes: an instance
created or deleted, /1/x/1 Lifetime or /1/x/7 Binding written, /1/x/8 executed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import aiocoap

from bridged.objects.linkformat import registration_links
from bridged.objects.paths import Level, Path
from bridged.objects.tree import ObjectTree

from .coap import create_context
from .dm import BOOTSTRAP_ONLY, DeviceManagement, DeviceManagementResource
from .registration import (
    Registrar,
    RegistrationEvent,
    RegistrationParams,
    RetryPolicy,
    ServerTarget,
)

log = logging.getLogger(__name__)

SERVER_OBJECT = 1
LIFETIME, BINDING, UPDATE_TRIGGER = 1, 7, 8


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
        server: ServerConfig,
        *,
        bind: tuple[str, int] = ("::", 0),
        on_event: Callable[[RegistrationEvent], None] = lambda e: None,
    ) -> None:
        self.tree = tree
        self.endpoint = endpoint
        self.server = server
        self.bind = bind
        self.on_event = on_event
        self.context: aiocoap.Context | None = None
        self.registrar: Registrar | None = None
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._server_iid = 0

    def _factory_bootstrap(self) -> None:
        """Create /0 and /1 for the configured server unless the tree already has them."""
        s = self.server
        if not self.tree.has(Path((0,))) or not self.tree.instance_ids(0):
            self.tree.create_instance(
                0, 0, [(0, s.uri), (1, False), (2, 3), (10, s.short_server_id)]
            )
        if not self.tree.has(Path((SERVER_OBJECT,))) or not self.tree.instance_ids(SERVER_OBJECT):
            self.tree.create_instance(
                SERVER_OBJECT,
                0,
                [(0, s.short_server_id), (LIFETIME, s.lifetime), (6, False), (BINDING, s.binding)],
            )
        self._server_iid = self.tree.instance_ids(SERVER_OBJECT)[0]

    def params(self) -> RegistrationParams:
        """What the registration carries now, read from the tree."""
        server = Path((SERVER_OBJECT, self._server_iid))
        lifetime = self.tree.get(server.child(LIFETIME))
        binding = self.tree.get(server.child(BINDING))
        objects = [(o, iids) for o, iids in self.tree.objects() if o.id not in BOOTSTRAP_ONLY]
        version = self.registrar.version if self.registrar is not None else self.server.version
        return RegistrationParams(
            lifetime=lifetime if isinstance(lifetime, int) else self.server.lifetime,
            binding=binding if isinstance(binding, str) else self.server.binding,
            queue=self.server.queue,
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
        self._factory_bootstrap()
        dm = DeviceManagement(
            self.tree,
            version=lambda: self.registrar.version if self.registrar else self.server.version,
        )
        self.context = await create_context(DeviceManagementResource(dm), self.bind)
        target = ServerTarget(
            uri=self.server.uri,
            endpoint=self.endpoint,
            version=self.server.version,
            request_timeout=self.server.request_timeout,
            retry=self.server.retry,
        )
        self.registrar = Registrar(self.context, target, self.params, self.on_event)
        self.tree.on_execute(
            SERVER_OBJECT, UPDATE_TRIGGER, lambda path, args: self._trigger_update()
        )
        self._unsubscribe = self.tree.subscribe(self._on_change)
        self._task = asyncio.create_task(self.registrar.run(), name=f"lwm2m-{self.endpoint}")

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
