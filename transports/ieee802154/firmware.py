"""Firmware update of an 802.15.4 node: the node is a LwM2M client with a /5 of its own.

The gateway acts as the node's LwM2M server for it (``FirmwareUpdater``, transports/firmware.py):

1. it reads the node's /5/0/9 Delivery Method (and /5/0/8 Protocol Support);
2. **pull** where the node can (method 0 or 2, with coap:// among its protocols or none said,
   CoAP being the default): the gateway offers the image at ``coap://[gateway]:port/fw/<token>``
   on its node-facing CoAP server (``NodeServer.offer``) and writes that URI to the node's
   /5/0/1; the node fetches it with Block2, block by block at its own pace, over 6LoWPAN, and
   nothing on the node side needs the internet. **Push** where the node only takes that: the
   gateway writes the image to the node's /5/0/0 (Block1). That write is one request, but
   one of many blocks, each resent by CoAP when lost: it is bounded by the update's
   ``timeout``, not by ``[transport.802154] request_timeout`` (one answer's time), and a
   transfer that ends unanswered is Update Result 4 (Connection lost), not 8;
3. it waits, reading /5/0/3 and /5/0/5, for the node to say Downloaded (or a failure's result,
   which becomes the gateway's /5/0/5), executes the node's /5/0/2, and waits for it to end:
   the node reboots into the new image and registers again; the result it reports, and the
   /3/0/3 Firmware Version it then gives, confirm success. A node that comes back with the
   /3/0/3 it ran before the update (read as the update starts), not the image's version
   (/5/0/7), rolled back (MCUboot reverted the image): Update Result 8, whatever it said.

While it waits the node may not answer (it is downloading, rebooting, or the first frames of a
restarted gateway were lost): those reads, and the reads before it (/3/0/3, /5/0/9), are tried
again every ``poll`` seconds until ``timeout`` (``[transport.802154] firmware_timeout``), counted
from the server's Execute (``FirmwareImage.since``: a gateway restart does not renew it). A
sleepy node is reached in its wake windows: whatever the gateway must ask of it waits until it
next talks (``NodeServer.awake``), so the server's Update is taken at once and carried out
when the node wakes. A ``timeout`` that ends while the gateway waits for the node to wake is
``FirmwareExpired`` (the node slept through it: the update did not happen), one that ends while
the node works on it a failure (Update failed). Only the node being
updated may fetch its image, and only while its update runs.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path as FsPath
from typing import TypeVar

from bridged.objects.errors import GatewayTimeout, LwM2MError, ServiceUnavailable
from bridged.objects.ids import SINGLE, Device, FirmwareUpdate
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.transports.firmware import (
    Delivery,
    DownloadProtocol,
    FirmwareError,
    FirmwareExpired,
    FirmwareImage,
    Progress,
    State,
    UpdateResult,
    mcuboot_header,
)
from bridged.transports.nodes import NodeId

from .node_server import NodeServer

T = TypeVar("T")
FIRMWARE_VERSION = Path((Device.OBJECT, SINGLE, Device.FIRMWARE_VERSION))
DEFAULT_POLL = 1.0
"""Seconds between two reads of the node's State while it downloads or applies an image."""
DEFAULT_TIMEOUT = 900.0
"""Seconds a node has to download and apply an image (a 256 kB image at 802.15.4's 250 kbit/s
takes minutes with 6LoWPAN fragmentation and CoAP's stop-and-wait Block2)."""


def _fw(rid: int) -> Path:
    return Path((FirmwareUpdate.OBJECT, SINGLE, rid))


def _result(value: object) -> UpdateResult:
    """The node's /5/0/5 as a result code; one object 5 does not define is a failed update."""
    try:
        return UpdateResult(value) if isinstance(value, int) else UpdateResult.UPDATE_FAILED
    except ValueError:
        return UpdateResult.UPDATE_FAILED


class LowpanUpdater:
    """The ``FirmwareUpdater`` of the 802.15.4 transport's nodes (module docstring)."""

    def __init__(
        self,
        server: NodeServer,
        base_uri: Callable[[], str],
        *,
        poll: float = DEFAULT_POLL,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.server = server
        self.base_uri = base_uri
        """``coap://[gateway link-local address]:port``, as the nodes reach the gateway (known
        once the radio is up)."""
        self.poll = poll
        self.timeout = timeout
        self._asleep = False
        """Whether the update waits for the node to wake (what its timeout ends)."""
        self._pushing = False
        """Whether the update pushes the image (its timeout then cuts the transfer)."""

    def describe(self, path: FsPath) -> tuple[str, str]:
        """A LwM2M node judges its own package (its /5/0/5 says so), so any file is taken;
        an MCUboot image's header gives its version (it names none)."""
        with path.open("rb") as f:
            header = mcuboot_header(f.read(64))
        return "", "" if header is None else header.version

    async def update(self, node: NodeId, image: FirmwareImage, progress: Progress) -> str:
        data = await asyncio.to_thread(image.path.read_bytes)
        self._pushing = False
        # from when the update began, not from a gateway restart (which would renew it)
        left = max(0.0, image.since + self.timeout - time.time())
        try:
            async with asyncio.timeout(left):
                return await self._update(node, data, image.version, progress)
        except TimeoutError:
            if self._asleep:
                raise FirmwareExpired(
                    f"node {node} did not wake to be updated within {self.timeout:g} s"
                ) from None
            if self._pushing:
                raise FirmwareError(
                    UpdateResult.CONNECTION_LOST,
                    f"node {node} did not take the image within {self.timeout:g} s",
                ) from None
            raise FirmwareError(
                UpdateResult.UPDATE_FAILED, f"node {node} not updated within {self.timeout:g} s"
            ) from None

    async def _update(self, node: NodeId, data: bytes, version: str, progress: Progress) -> str:
        before = await self._running(node)
        if await self._pulls(node):
            token = secrets.token_hex(8)
            with self.server.offer(node, token, data, progress):
                uri = f"{self.base_uri()}/fw/{token}"
                await self._awake(
                    node, lambda: self._write(node, _fw(FirmwareUpdate.PACKAGE_URI), uri)
                )
                await self._until(node, State.DOWNLOADED)
        else:
            await self._push(node, data)
            await self._until(node, State.DOWNLOADED)
        progress(len(data), len(data))
        registered = self.server.registration_of(node)
        await self._awake(node, lambda: self.server.execute(node, _fw(FirmwareUpdate.UPDATE), ""))
        await self._until(node, State.IDLE, done=True)
        # The node reboots into the image and registers again: what it then runs says.
        while self.server.registration_of(node) is registered:
            await asyncio.sleep(self.poll)
        after = str(await self._awake(node, lambda: self._read(node, FIRMWARE_VERSION)))
        if after == before and after != version:
            raise FirmwareError(
                UpdateResult.UPDATE_FAILED,
                f"node {node} came back running {after}, its version before the update "
                f"(not {version or 'a new one'}): it rolled back",
            )
        return after

    async def _running(self, node: NodeId) -> str | None:
        """The /3/0/3 Firmware Version the node runs; None if it does not say (then its
        version after the update confirms nothing against it)."""
        try:
            return str(await self._awake(node, lambda: self._read(node, FIRMWARE_VERSION)))
        except (LwM2MError, FirmwareError):
            return None

    async def _awake(self, node: NodeId, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` once the node is awake; again after the next wake while it says the
        node sleeps (5.03)."""
        while True:
            await self._woken(node)
            try:
                return await call()
            except ServiceUnavailable:
                await asyncio.sleep(self.poll)  # asleep again: wait for its next wake

    async def _woken(self, node: NodeId) -> None:
        """Return once the node is awake; while it sleeps, ``_asleep`` says so (left set
        when the timeout cancels the wait)."""
        self._asleep = True
        await self.server.awake(node)
        self._asleep = False

    async def _pulls(self, node: NodeId) -> bool:
        """Whether the node takes a URI (coap://) rather than the image itself."""
        method = await self._awake(
            node, lambda: self._read(node, _fw(FirmwareUpdate.DELIVERY_METHOD))
        )
        if method not in (Delivery.PULL, Delivery.BOTH):
            return False
        try:
            records = await self.server.read(
                node, Path((FirmwareUpdate.OBJECT, 0, FirmwareUpdate.PROTOCOL_SUPPORT))
            )
        except LwM2MError:
            return True  # not said: CoAP is the default
        offered = {r.value for r in records}
        return not offered or DownloadProtocol.COAP in offered

    async def _push(self, node: NodeId, data: bytes) -> None:
        """Write the image to the node's /5/0/0, bounded by the update's own timeout."""
        path = _fw(FirmwareUpdate.PACKAGE)
        self._pushing = True  # left set when the timeout cancels the push
        await self._awake(node, lambda: self._write(node, path, data, timeout=self.timeout))
        self._pushing = False

    async def _write(
        self, node: NodeId, path: Path, value: str | bytes, *, timeout: float | None = None
    ) -> None:
        """A write the node did not answer (GatewayTimeout) lost the connection to it
        (Update Result 4); one it refused failed the update (8)."""
        try:
            await self.server.write(node, path, [Record(path, value)], timeout=timeout)
        except ServiceUnavailable:
            raise
        except GatewayTimeout as e:
            raise FirmwareError(UpdateResult.CONNECTION_LOST, f"{node}: {path}: {e}") from None
        except LwM2MError as e:
            raise FirmwareError(UpdateResult.UPDATE_FAILED, f"{node}: {path}: {e}") from None

    async def _read(self, node: NodeId, path: Path) -> object:
        """The node's value at ``path``. A read it does not answer within ``request_timeout``
        (GatewayTimeout) is asked again every ``poll`` seconds, as ``_until``'s are: the node
        may be busy (pulling, rebooting) or its first frames lost (seen after a gateway
        restart, under load), and the update's ``timeout`` is what bounds the wait, not one
        request's."""
        while True:
            try:
                records = await self.server.read(node, path)
                break
            except GatewayTimeout:
                await asyncio.sleep(self.poll)
        if not records:
            raise FirmwareError(UpdateResult.UPDATE_FAILED, f"{node} has no {path}")
        return records[0].value

    async def _until(self, node: NodeId, state: State, *, done: bool = False) -> None:
        """Wait for the node's State to be ``state`` (with ``done``, and a result said);
        FirmwareError with the node's result when it reports a failure."""
        while True:
            await self._woken(node)
            try:
                records = await self.server.read(node, Path((FirmwareUpdate.OBJECT, 0)))
            except LwM2MError:
                records = []  # busy, rebooting, asleep again: asked again
            values = {r.path.ids[2]: r.value for r in records if len(r.path.ids) == 3}
            result = values.get(FirmwareUpdate.UPDATE_RESULT, UpdateResult.INITIAL)
            if result not in (UpdateResult.INITIAL, UpdateResult.SUCCESS):
                raise FirmwareError(
                    _result(result), f"node {node} reports Update Result {result!r}"
                )
            if values.get(FirmwareUpdate.STATE) == state and (
                not done or result == UpdateResult.SUCCESS
            ):
                return
            await asyncio.sleep(self.poll)
