"""LwM2M /5 Firmware Update for each node whose transport can update it.

A node is shown a /5/0 (``/devN/5/0`` in the gateway mode, ``/5/0`` of its endpoint in the
endpoints mode) when its transport offers a ``FirmwareUpdater`` for it
(``transports/firmware.py``). The gateway is the LwM2M client of that /5: the server talks to
the gateway, and the gateway to the node in the node's own way. Server operations on the node's
/5 come here from ``NodeOperations`` instead of going to the node's transport as they are.

The OMA state machine, exactly (object 5's State and Update Result):

* **push**: a Write of /5/0/0 (Block1, assembled by the engine) is Downloading while the bytes
  go to a file in the state directory, then Downloaded once the file is checked: its size
  against ``max_size`` (Not enough flash, 2), its format by the node's updater (Unsupported
  package type, 6), its SHA-256 recorded;
* **pull**: a Write of /5/0/1 is Downloading while the package is fetched (``bridged/download``:
  coap://, coaps:// with the credentials of the LwM2M server at its host and port, http://,
  https://; 7 Invalid URI, 9 Unsupported protocol, 4 Connection lost), then Downloaded,
  checked the same way;
* **Execute /5/0/2** in Downloaded is Updating while the node's updater delivers and applies it,
  then Idle with 1 (success, /5/0/7 the version the node now runs) or the updater's result;
  in any other state it is 4.05;
* a Write of an empty /5/0/1, or of /5/0/0 with nothing (or one NUL byte), is Idle with 0 and
  the package removed.

Every change is made durable (``FirmwareStore``) before the server is shown it, as values of
the node's /5/0 through the registry, so observations of /5/0/3 and /5/0/5 notify. A gateway
restarted mid-way picks up where it was: a pull is fetched again (resumed where http allows),
a push cut short is Idle with Connection lost, an update under way is run again from the
package on disk.

**A local update** (``bridgectl node update NODE FILE``) takes the same path as a push: the
daemon never opens a path a client names (it runs as another user, and could be made to read
its own secrets), so bridgectl sends the file's bytes, in chunks (a control request is at most
64 KiB): ``begin_upload`` (its size, bounded by ``max_size`` before anything is sent, and its
SHA-256) is Downloading, ``upload_chunk`` appends at the offset said, ``finish_upload`` checks
size and SHA-256 (Integrity failure, 5), is Downloaded as a push would be, and executes Update
as a server's Execute does. An upload whose connection ends before it is finished
(``abandon_upload``: bridgectl killed) is Idle with Connection lost, nothing kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from enum import IntEnum
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from bridged.aio import cancel_and_wait
from bridged.objects.errors import (
    BadRequest,
    LwM2MError,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
)
from bridged.objects.ids import FirmwareUpdate
from bridged.objects.paths import Path as LwPath
from bridged.objects.values import Record
from bridged.registry import LiveNode, NodeRegistry
from bridged.store.commands import CommandStatus
from bridged.store.firmware import FirmwareRow, FirmwareStore
from bridged.transports.firmware import (
    Delivery,
    FirmwareError,
    FirmwareExpired,
    FirmwareImage,
    FirmwareUpdater,
    State,
    UpdateResult,
    outcome,
)
from bridged.transports.nodes import NodeId

from .download import SCHEMES, Credentials, Trust, check_uri, download, no_credentials
from .events import EventHub

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = 4 * 1024 * 1024
"""The largest package kept for a node, by default (``[nodes] firmware_max_size``)."""
DEFAULT_DOWNLOAD_TIMEOUT = 600.0
"""Seconds a pull may take (``[nodes] firmware_timeout``)."""
INSTANCE = 0

Fetch = Callable[[str, Path, int, float, Credentials, Trust], Coroutine[Any, Any, None]]
UpdateEnded = Callable[[NodeId, LwPath, float, CommandStatus, Sequence[Record], str], None]
"""Told of an executed update that ended: the node, its /5/0/2, when it began, how it ended,
the /5/0/5, /5/0/6 and /5/0/7 it ended with, and why (``CommandQueue.ended``)."""


@dataclasses.dataclass(slots=True)
class _Upload:
    """A local update's package as it comes from bridgectl."""

    token: str
    size: int
    sha256: str
    received: int = 0
    hash: Any = dataclasses.field(default_factory=hashlib.sha256)


def _path(rid: int, *more: int) -> LwPath:
    return LwPath((FirmwareUpdate.OBJECT, INSTANCE, rid, *more))


class FirmwareUpdates:
    """Every node's /5: a ``RegistryListener`` that shows it, and the backend
    ``NodeOperations`` hands the node's /5 paths to."""

    def __init__(
        self,
        registry: NodeRegistry,
        store: FirmwareStore,
        directory: Path,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        timeout: float = DEFAULT_DOWNLOAD_TIMEOUT,
        fetch: Fetch = download,
        credentials: Credentials = no_credentials,
        trust: Trust = (),
        clock: Callable[[], float] = time.time,
        events: EventHub | None = None,
        ended: UpdateEnded | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.directory = directory
        self.max_size = max_size
        self.timeout = timeout
        self._fetch = fetch
        self._credentials = credentials
        """The session a coaps:// package's host is fetched over (``download.Credentials``)."""
        self._trust = trust
        """The CAs an https:// package's server is verified against (``download.Trust``)."""
        self._clock = clock
        self.events = events
        """Where each change of a node's update (its state, result, progress) is published,
        as a ``firmware`` event (``bridgectl node update`` follows it)."""
        self._on_ended = ended
        """Where an executed update that ended is kept as a command (``CommandQueue.ended``):
        applied, failed with its result, or expired (``FirmwareExpired``)."""
        self.rows: dict[NodeId, FirmwareRow] = store.all()
        self.progress: dict[NodeId, tuple[int, int]] = {}
        """Bytes the node has of the package being delivered to it, and of all."""
        self._tasks: dict[NodeId, asyncio.Task[None]] = {}
        self._uploads: dict[NodeId, _Upload] = {}

    # -- which nodes -------------------------------------------------------------------------

    def updater(self, node: NodeId) -> FirmwareUpdater | None:
        transport = self.registry.transports.get(node.transport)
        return None if transport is None else transport.firmware_updater(node)

    def serves(self, node: NodeId, local: LwPath) -> bool:
        """Whether ``node``'s ``local`` path is its /5 that this gateway keeps."""
        return local.ids[0] == FirmwareUpdate.OBJECT and self.updater(node) is not None

    def max_body(self, node: NodeId, local: LwPath) -> int | None:
        """A package written to the node's /5/0/0 may be ``max_size`` bytes; a body over it
        is refused at its first block (4.13), before anything is kept."""
        return (
            self.max_size
            if local == _path(FirmwareUpdate.PACKAGE) and self.serves(node, local)
            else None
        )

    def row(self, node: NodeId) -> FirmwareRow:
        return self.rows.get(node) or FirmwareRow(node, int(State.IDLE), int(UpdateResult.INITIAL))

    def records(self, node: NodeId) -> list[Record]:
        """The node's /5/0 as the server reads it (not 0 Package, which is write-only)."""
        row = self.row(node)
        offered = [
            Record(_path(FirmwareUpdate.PROTOCOL_SUPPORT, i), int(p))
            for i, p in enumerate(SCHEMES.values())
        ]
        return [
            Record(_path(FirmwareUpdate.PACKAGE_URI), row.uri),
            Record(_path(FirmwareUpdate.STATE), row.state),
            Record(_path(FirmwareUpdate.UPDATE_RESULT), row.result),
            Record(_path(FirmwareUpdate.PKG_NAME), row.name),
            Record(_path(FirmwareUpdate.PKG_VERSION), row.version),
            *offered,
            Record(_path(FirmwareUpdate.DELIVERY_METHOD), int(Delivery.BOTH)),
        ]

    def package_file(self, node: NodeId) -> Path:
        """Where the node's package is kept (``directory``, made 0700 when first needed)."""
        self.directory.mkdir(mode=0o700, exist_ok=True)
        return self.directory / f"{str(node).replace(':', '_').replace('/', '_')}.fw"

    # -- RegistryListener ---------------------------------------------------------------------

    def node_added(self, node: LiveNode) -> None:
        self._show(node)

    def node_objects(self, node: LiveNode) -> None:
        self._show(node)

    def node_removed(self, node: NodeId) -> None:
        self._uploads.pop(node, None)
        task = self._tasks.pop(node, None)
        if task is not None:
            task.cancel()
        self.rows.pop(node, None)
        self.store.forget(node)
        self.package_file(node).unlink(missing_ok=True)

    def node_readings(self, node: LiveNode, records: Sequence[Record]) -> None:
        return None

    def node_values(self, node: LiveNode, records: Sequence[Record]) -> None:
        return None

    def _show(self, node: LiveNode) -> None:
        """Give an updatable node its /5/0 (the registry announces the instance), once."""
        if self.updater(node.id) is None:
            return
        if (
            INSTANCE not in node.objects.get(FirmwareUpdate.OBJECT, ())
            or _path(FirmwareUpdate.STATE) not in node.values
        ):
            self.registry.held(node.id, self.records(node.id))

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        """Show every updatable node's /5 (its transport is attached now: a node need not
        talk first) and pick up what a restart cut short (module docstring)."""
        for node in list(self.registry.live):
            if self.updater(node) is None:
                continue
            self._show_values(node)
            row = self.rows.get(node)
            if row is None:
                continue
            if row.state == State.DOWNLOADING and row.uri:
                self._spawn(node, self._pull(node, row.uri))
            elif row.state == State.DOWNLOADING:
                self._set(node, state=State.IDLE, result=UpdateResult.CONNECTION_LOST)
            elif row.state == State.UPDATING:
                self._spawn(node, self._update(node))

    async def close(self) -> None:
        """End the fetches and updates under way (a restart picks them up: ``start``). Each
        logs its own failure (``_pull``, ``_update``), so an error out of one here is a defect
        of its handling, raised as ``Gateway.stop`` raises its other tasks' errors."""
        await cancel_and_wait(*self._tasks.values())

    def _spawn(self, node: NodeId, coro: Coroutine[Any, Any, None]) -> None:
        old = self._tasks.pop(node, None)
        if old is not None:
            old.cancel()
        task = asyncio.create_task(coro, name=f"firmware {node}")
        self._tasks[node] = task
        task.add_done_callback(
            lambda t: self._tasks.pop(node, None) if self._tasks.get(node) is t else None
        )

    # -- server operations (from NodeOperations) ---------------------------------------------

    def read(self, node: NodeId, local: LwPath) -> list[Record]:
        if local.level.value >= 3 and local.ids[2] in (
            FirmwareUpdate.PACKAGE,
            FirmwareUpdate.UPDATE,
        ):
            raise MethodNotAllowed(f"{local} is not readable")
        found = [r for r in self.records(node) if local.contains(r.path)]
        if not found:
            raise NotFound(f"{local} has no value")
        return found

    async def write(self, node: NodeId, local: LwPath, records: Sequence[Record]) -> None:
        for r in records:
            rid = r.path.ids[2] if len(r.path.ids) > 2 else None
            if rid == FirmwareUpdate.PACKAGE:
                await self._push(node, r.value)
            elif rid == FirmwareUpdate.PACKAGE_URI:
                self._take_uri(node, r.value)
            else:
                raise MethodNotAllowed(f"{r.path} is not writable")

    async def execute(self, node: NodeId, local: LwPath, arguments: str) -> None:
        if local.ids[2:] != (FirmwareUpdate.UPDATE,):
            raise MethodNotAllowed(f"{local} is not executable")
        row = self.row(node)
        if row.state != State.DOWNLOADED:
            raise MethodNotAllowed(
                f"{node}: Update needs a downloaded package; the state is {State(row.state).name}"
            )
        self._set(node, state=State.UPDATING, result=UpdateResult.INITIAL)
        self._spawn(node, self._update(node))

    # -- a local update (from bridgectl, module docstring) -----------------------------------

    def begin_upload(self, node: NodeId, size: int, sha256: str) -> str:
        """Take ``size`` bytes of package for ``node`` from bridgectl: the token its chunks
        and its finish give. Refused (nothing changed) for a node this gateway cannot update,
        a package over ``max_size``, or a node whose update is under way."""
        if node not in self.registry.live:
            raise NotFound(f"node {node} is not paired")
        if self.updater(node) is None:
            raise NotFound(f"node {node}: its transport cannot update its firmware")
        if size > self.max_size:
            raise RequestEntityTooLarge(
                f"the package is {size} bytes; at most {self.max_size} are kept "
                "([nodes] firmware_max_size)"
            )
        if self.row(node).state in (State.DOWNLOADING, State.UPDATING) or node in self._uploads:
            raise MethodNotAllowed(
                f"{node} is being updated ({State(self.row(node).state).name.lower()})"
            )
        self._reset(node)
        self.package_file(node).write_bytes(b"")
        upload = _Upload(secrets.token_hex(8), size, sha256.lower())
        self._uploads[node] = upload
        self._set(node, state=State.DOWNLOADING)
        self._uploaded(node, upload)
        return upload.token

    def _upload(self, node: NodeId, token: str) -> _Upload:
        upload = self._uploads.get(node)
        if upload is None or upload.token != token:
            raise NotFound(f"no upload {token} to {node} under way")
        return upload

    async def upload_chunk(self, node: NodeId, token: str, offset: int, data: bytes) -> int:
        """Append ``data`` at ``offset`` (where the package ends so far); the bytes taken."""
        upload = self._upload(node, token)
        if offset != upload.received:
            raise BadRequest(f"the upload to {node} is at {upload.received}, not {offset}")
        if upload.received + len(data) > upload.size:
            raise RequestEntityTooLarge(f"the upload to {node} said it was {upload.size} bytes")
        upload.received += len(data)  # before the wait: a chunk sent twice is refused
        upload.hash.update(data)
        with self.package_file(node).open("ab") as f:
            await asyncio.to_thread(f.write, data)
        self._uploaded(node, upload)
        return upload.received

    async def finish_upload(self, node: NodeId, token: str) -> None:
        """The package is all here: check it, Downloaded, then Update as an Execute would."""
        upload = self._upload(node, token)
        del self._uploads[node]
        self.progress.pop(node, None)
        try:
            if upload.received != upload.size or upload.hash.hexdigest() != upload.sha256:
                raise FirmwareError(
                    UpdateResult.INTEGRITY_FAILURE,
                    f"{upload.received} bytes of SHA-256 {upload.hash.hexdigest()} taken, "
                    f"{upload.size} of {upload.sha256} said",
                )
            self._downloaded(node)
        except FirmwareError as e:
            self._failed(node, e)
            raise BadRequest(f"{node}: {e} (Update Result {int(e.result)})") from None
        await self.execute(node, _path(FirmwareUpdate.UPDATE), "")

    def abandon_upload(self, node: NodeId, token: str) -> None:
        """The upload's connection ended: unless finished, Idle with Connection lost."""
        upload = self._uploads.get(node)
        if upload is None or upload.token != token:
            return
        del self._uploads[node]
        self.progress.pop(node, None)
        self._failed(
            node,
            FirmwareError(
                UpdateResult.CONNECTION_LOST,
                f"the upload was cut after {upload.received} of {upload.size} bytes",
            ),
        )

    def _uploaded(self, node: NodeId, upload: _Upload) -> None:
        self.progress[node] = (upload.received, upload.size)
        self._changed(node)

    # -- the state machine -------------------------------------------------------------------

    def _busy(self, node: NodeId) -> None:
        if self.row(node).state in (State.UPDATING,):
            raise MethodNotAllowed(f"{node} is being updated")

    def _reset(self, node: NodeId) -> None:
        self._uploads.pop(node, None)  # a server's package supersedes a local one
        task = self._tasks.pop(node, None)
        if task is not None:
            task.cancel()
        self.package_file(node).unlink(missing_ok=True)
        self._set(node, state=State.IDLE, result=UpdateResult.INITIAL, uri="", sha256="", size=0)

    async def _push(self, node: NodeId, value: object) -> None:
        if not isinstance(value, bytes):
            raise BadRequest("/5/0/0 Package is opaque")
        self._busy(node)
        if value in (b"", b"\0"):
            self._reset(node)
            return
        self._reset(node)
        self._set(node, state=State.DOWNLOADING)
        target = self.package_file(node)
        try:
            if len(value) > self.max_size:
                raise FirmwareError(
                    UpdateResult.NOT_ENOUGH_FLASH,
                    f"the package is {len(value)} bytes; at most {self.max_size} are kept",
                )
            await asyncio.to_thread(target.write_bytes, value)
            self._downloaded(node)
        except FirmwareError as e:
            self._failed(node, e)
        except OSError as e:
            self._failed(node, FirmwareError(UpdateResult.NOT_ENOUGH_FLASH, str(e)))

    def _take_uri(self, node: NodeId, value: object) -> None:
        if not isinstance(value, str):
            raise BadRequest("/5/0/1 Package URI is a string")
        self._busy(node)
        self._reset(node)
        if not value:
            return
        self._set(node, uri=value)
        try:
            check_uri(value, self._credentials)
        except FirmwareError as e:
            self._failed(node, e)
            return
        self._set(node, state=State.DOWNLOADING)
        self._spawn(node, self._pull(node, value))

    async def _pull(self, node: NodeId, uri: str) -> None:
        try:
            await self._fetch(
                uri,
                self.package_file(node),
                self.max_size,
                self.timeout,
                self._credentials,
                self._trust,
            )
            self._downloaded(node)
        except FirmwareError as e:
            self._failed(node, e)
        except OSError as e:
            self._failed(node, FirmwareError(UpdateResult.NOT_ENOUGH_FLASH, str(e)))
        except Exception as e:  # a fetch that broke otherwise must not stay Downloading
            log.exception("node %s: fetching %s failed", node, uri, extra={"NODE": str(node)})
            self._failed(node, FirmwareError(UpdateResult.CONNECTION_LOST, str(e)))

    def _downloaded(self, node: NodeId) -> None:
        """The package is on disk: check it, record what it is, Downloaded."""
        updater = self.updater(node)
        if updater is None:
            raise FirmwareError(UpdateResult.UPDATE_FAILED, f"{node} cannot be updated now")
        target = self.package_file(node)
        data = target.read_bytes()
        if len(data) > self.max_size:
            raise FirmwareError(
                UpdateResult.NOT_ENOUGH_FLASH,
                f"the package is {len(data)} bytes; at most {self.max_size} are kept",
            )
        name, version = updater.describe(target)
        uri = self.row(node).uri
        self._set(
            node,
            state=State.DOWNLOADED,
            result=UpdateResult.INITIAL,
            name=name or PurePosixPath(urlsplit(uri).path).name,
            version=version,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        )

    def _failed(self, node: NodeId, error: FirmwareError) -> None:
        log.warning("node %s: firmware: %s", node, error, extra={"NODE": str(node)})
        self.package_file(node).unlink(missing_ok=True)
        self._set(node, state=State.IDLE, result=error.result, sha256="", size=0)

    async def _update(self, node: NodeId) -> None:
        """Carry the update out, then Idle with its result, and tell ``ended`` how it ended
        (``since``: when it began Updating, kept across a restart)."""
        row = self.row(node)
        try:
            version = await self._deliver(node, row)
        except FirmwareError as e:
            self._failed(node, e)
            expired = isinstance(e, FirmwareExpired)
            status = CommandStatus.EXPIRED if expired else CommandStatus.FAILED
            self._ended(node, row.changed, status, f"Update Result {int(e.result)}: {e}")
            return
        finally:
            self.progress.pop(node, None)
        log.info("node %s: firmware updated to %s", node, version, extra={"NODE": str(node)})
        self.package_file(node).unlink(missing_ok=True)
        self._set(
            node, state=State.IDLE, result=UpdateResult.SUCCESS, version=version or row.version
        )
        self._ended(node, row.changed, CommandStatus.APPLIED, "")

    async def _deliver(self, node: NodeId, row: FirmwareRow) -> str:
        """Have the node's updater deliver and apply the package: the version it runs; any
        failure is a FirmwareError with the Update Result to show."""
        target = self.package_file(node)
        updater = self.updater(node)
        try:
            if updater is None:
                raise FirmwareError(UpdateResult.UPDATE_FAILED, f"{node} cannot be updated now")
            data = await asyncio.to_thread(target.read_bytes)
            if hashlib.sha256(data).hexdigest() != row.sha256:
                raise FirmwareError(
                    UpdateResult.INTEGRITY_FAILURE, "the package on disk is not the one taken"
                )
            # row.changed: when it began Updating (nothing changes the row until it ends)
            image = FirmwareImage(target, row.size, row.sha256, row.name, row.version, row.changed)

            def progress(done: int, total: int) -> None:
                self.progress[node] = (done, total)
                self._changed(node)

            return await updater.update(node, image, progress)
        except FirmwareError:
            raise
        except LwM2MError as e:  # the node out of reach, asleep, refusing
            raise FirmwareError(UpdateResult.UPDATE_FAILED, f"{node}: {e}") from None
        except Exception as e:  # an updater's defect must not leave the node Updating
            log.exception("node %s: firmware update failed", node, extra={"NODE": str(node)})
            raise FirmwareError(UpdateResult.UPDATE_FAILED, str(e)) from None

    def _ended(self, node: NodeId, since: float, status: CommandStatus, detail: str) -> None:
        """An executed update ended: a command of the node's, in ``bridgectl commands
        --history`` with its result, package and version (the node's /5 as it is now)."""
        if self._on_ended is None:
            return
        row = self.row(node)
        records = (
            Record(_path(FirmwareUpdate.UPDATE_RESULT), row.result),
            Record(_path(FirmwareUpdate.PKG_NAME), row.name),
            Record(_path(FirmwareUpdate.PKG_VERSION), row.version),
        )
        self._on_ended(node, _path(FirmwareUpdate.UPDATE), since, status, records, detail)

    def _set(self, node: NodeId, **changes: Any) -> None:
        """Make the change durable, then show it."""
        plain: dict[str, Any] = {
            k: int(v) if isinstance(v, IntEnum) else v for k, v in changes.items()
        }
        row = dataclasses.replace(self.row(node), changed=self._clock(), **plain)
        self.store.save(row)
        self.rows[node] = row
        self._show_values(node)
        self._changed(node)

    def _changed(self, node: NodeId) -> None:
        status = self.status(node)
        if self.events is not None and status is not None:
            self.events.publish("firmware", node=str(node), **status)

    def under_way(self, node: NodeId | None = None) -> list[tuple[NodeId, float]]:
        """The nodes (``node`` only, when given) whose update is being carried out, each with
        when it began: a sleepy node's waits for its wake windows (``bridgectl commands``)."""
        return [
            (n, row.changed)
            for n, row in sorted(self.rows.items(), key=lambda kv: kv[1].changed)
            if row.state == State.UPDATING and (node is None or n == node)
        ]

    def status(self, node: NodeId) -> dict[str, Any] | None:
        """The node's update as bridgectl shows it (``node show``, the ``firmware`` event);
        None for a node this gateway cannot update."""
        if self.updater(node) is None:
            return None
        row = self.row(node)
        done, total = self.progress.get(node, (None, None))
        return {
            "state": State(row.state).name.lower(),
            "result": row.result,
            "outcome": outcome(row.result),
            "package": row.name,
            "version": row.version,
            "uri": row.uri,
            "size": row.size,
            "sent": done,
            "total": total,
            "percent": None if not total or done is None else round(100 * done / total),
        }

    def _show_values(self, node: NodeId) -> None:
        if node in self.registry.live:
            self.registry.held(node, self.records(node))
