"""Firmware update of a BLE node running MCUboot with MCUmgr's SMP over GATT.

The node's bootloader (MCUboot) keeps two slots: it runs the primary, and takes a new image in
the secondary. ``SmpUpdater`` (the ``FirmwareUpdater`` of transports/firmware.py) drives the
update the way MCUmgr clients do, through smpclient (the SMP client library; its requests and
upload loop, ``smp`` for the messages) over the connection the GATT poller makes
(``GattSmpTransport``). smpclient's own BLE transport is not used: it finds the node with a
discovery of its own, which would collide with the gateway's scanner in BlueZ, and it would
bypass the adapter's connection-slot budget and the node's turn on its one link:

1. ``describe`` refuses a file without an MCUboot image header (Unsupported package, 6) before
   anything is sent;
2. upload to the secondary slot, with progress; a link that drops midway is connected again
   and the upload resumes where the node says it is (MCUmgr answers a repeated first chunk of
   the same image with its offset); still cut after ``attempts`` connections it is Connection
   lost (4). A node that runs the image already (its hash, from the image's TLV trailer, is
   the active slot's: a gateway restarted between the node's reset and its confirm) goes
   straight to step 4;
3. mark the image for test (the node refuses one that fails its check: Integrity failure, 5),
   reset the node, and connect again until it is back (bounded by ``reboot_timeout``); one
   found still holding the image pending never took its reset (the link dropped as it went
   out, which the gateway cannot tell from a node resetting): it is reset again;
4. the node runs the new image (its hash in the active primary slot): confirm it, so MCUboot
   keeps it, and read the node again over the same link (its /3/0/3 is the new version); it
   runs the old one (MCUboot reverted an image that failed to boot or to be confirmed): Update
   failed (8).

**A sleepy node** (paired with ``--sleepy``: ``GattNode.sleepy``) is connectable only in its
wake windows, which it opens by advertising. The server's Update is taken at once (Updating)
and carried out in those windows: each step connects at the node's next advert (the poller's
``awake``), and a link the window's end cuts is connected again at the next one, as often as
it takes: the upload resumes at the node's offset, the test and reset are asked again, the
confirmation waits for the node's first wake after its reset (not ``reboot_timeout``). The
whole update is bounded by ``timeout`` (``[transport.ble] firmware_timeout``), counted from
when it began (``FirmwareImage.since``: a gateway restart does not renew it): one whose time
ends while it waits for the node to wake is ``FirmwareExpired`` (the node slept through it:
its command ends expired, /5/0/5 8), one that ends while the node works on it has failed (8).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from smp import header as smphdr
from smpclient import SMPClient
from smpclient.exceptions import SMPClientException
from smpclient.generics import SMPRequest, TEr1, TEr2, TRep, success
from smpclient.requests.image_management import ImageStatesRead, ImageStatesWrite
from smpclient.requests.os_management import ResetWrite
from smpclient.transport import (
    SMP_CHARACTERISTIC_UUID,
    SMPTransport,
    SMPTransportDisconnected,
)

from bridged.transports.firmware import (
    FirmwareError,
    FirmwareExpired,
    FirmwareImage,
    Progress,
    UpdateResult,
    mcuboot_hash,
    mcuboot_header,
)
from bridged.transports.nodes import NodeId

from .gatt import CONNECT_ERRORS, GattFailed, GattPoller, GattUnreachable
from .scanner import describe

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRMWARE_SMP = "smp"
"""The pairing option ``firmware`` naming this way of updating a node."""
SLOT = 1
"""The secondary slot, where an upload goes (smpclient's image 0 means "the default")."""
DEFAULT_ATTEMPTS = 3
"""Connections an upload may take: a cut transfer resumes this often before it is lost."""
DEFAULT_REBOOT_TIMEOUT = 120.0
"""Seconds a node has to come back after its reset (MCUboot copies the image on a swap)."""
DEFAULT_SLEEPY_TIMEOUT = 3600.0
"""Seconds a sleepy node's update may take, its wake windows included (``[transport.ble]
firmware_timeout``): past it, one still waiting for the node to wake has expired."""
REQUEST_TIMEOUT = 10.0
"""Seconds for one SMP request (a flash write or erase can take seconds on a real node)."""

LINK_ERRORS = (
    *CONNECT_ERRORS,
    SMPClientException,
    SMPTransportDisconnected,
    GattUnreachable,
    GattFailed,
)
"""What a dropped or failed link raises through smpclient and the poller."""


class GattSmpTransport(SMPTransport):
    """smpclient's transport over a connected BleakClient: requests are written without
    response in pieces the link's MTU allows; responses come as notifications of the SMP
    characteristic and are reassembled by their SMP header's length."""

    def __init__(self, client: BleakClient) -> None:
        self._client = client
        self._buffer = bytearray()
        self._arrived = asyncio.Event()
        self._dropped = False
        self._char: BleakGATTCharacteristic | None = None
        self._smp_server_transport_buffer_size: int | None = None

    def dropped(self) -> None:
        """The link dropped: a pending ``receive`` raises SMPTransportDisconnected."""
        self._dropped = True
        self._arrived.set()

    async def connect(self, address: str, timeout_s: float) -> None:
        """The link is up already: find the SMP characteristic and subscribe to it."""
        char = self._client.services.get_characteristic(SMP_CHARACTERISTIC_UUID)
        if char is None:
            raise FirmwareError(
                UpdateResult.UPDATE_FAILED,
                f"{address} has no MCUmgr SMP service: it cannot take an image over BLE",
            )
        self._char = char
        await self._client.start_notify(char, self._notified)

    async def disconnect(self) -> None:
        """Unsubscribe; the connection is the poller's (it may be a subscribed node's
        standing one, which stays)."""
        if self._char is not None and not self._dropped:
            with contextlib.suppress(*CONNECT_ERRORS):
                await self._client.stop_notify(self._char)

    def _notified(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        self._buffer += data
        self._arrived.set()

    async def send(self, data: bytes) -> None:
        assert self._char is not None, "connect first"
        for i in range(0, len(data), self.mtu):
            await self._client.write_gatt_char(self._char, data[i : i + self.mtu], response=False)

    async def receive(self) -> bytes:
        while True:
            if len(self._buffer) >= smphdr.Header.SIZE:
                length = smphdr.Header.loads(bytes(self._buffer[: smphdr.Header.SIZE])).length
                end = smphdr.Header.SIZE + length
                if len(self._buffer) >= end:
                    frame, self._buffer = bytes(self._buffer[:end]), self._buffer[end:]
                    return frame
            if self._dropped:
                raise SMPTransportDisconnected(f"{self._client.address}: the link dropped")
            self._arrived.clear()
            await self._arrived.wait()

    async def send_and_receive(self, data: bytes) -> bytes:
        await self.send(data)
        return await self.receive()

    def initialize(self, smp_server_transport_buffer_size: int) -> None:
        self._smp_server_transport_buffer_size = smp_server_transport_buffer_size

    @property
    def mtu(self) -> int:
        assert self._char is not None, "connect first"
        return self._char.max_write_without_response_size

    @property
    def max_unencoded_size(self) -> int:
        return self._smp_server_transport_buffer_size or self.mtu


@dataclass(frozen=True, slots=True)
class _Link:
    """A connection to the node: the SMP client over it, and the BLE client under it."""

    smp: SMPClient
    client: BleakClient


@dataclass(frozen=True, slots=True)
class _Uploaded:
    """What ``SmpUpdater._upload`` left on the node: the image's hash (as MCUmgr names it),
    and whether the node runs it already (nothing was uploaded)."""

    digest: bytes
    running: bool = False


class SmpUpdater:
    """The ``FirmwareUpdater`` of a BLE node paired with ``firmware = "smp"`` (module
    docstring)."""

    def __init__(
        self,
        poller: GattPoller,
        address: str,
        *,
        attempts: int = DEFAULT_ATTEMPTS,
        reboot_timeout: float = DEFAULT_REBOOT_TIMEOUT,
        timeout: float = DEFAULT_SLEEPY_TIMEOUT,
    ) -> None:
        self.poller = poller
        self.address = address
        self.attempts = attempts
        self.reboot_timeout = reboot_timeout
        self.timeout = timeout
        """Seconds a sleepy node's update may take, its wake windows included."""
        self._asleep = False
        """Whether the update waits for the node to wake (what its timeout ends)."""

    def describe(self, path: Path) -> tuple[str, str]:
        """An MCUboot image's name and version; Unsupported package for anything else."""
        with path.open("rb") as f:
            header = mcuboot_header(f.read(64))
        size = path.stat().st_size
        if header is None:
            raise FirmwareError(
                UpdateResult.UNSUPPORTED_PACKAGE,
                f"{path.name} is not an MCUboot image (no image header): the node's "
                "bootloader would not boot it",
            )
        if header.header_size + header.image_size > size:
            raise FirmwareError(
                UpdateResult.UNSUPPORTED_PACKAGE,
                f"{path.name}: its MCUboot header says {header.header_size + header.image_size}"
                f" bytes, the file has {size}",
            )
        return path.name, header.version

    async def update(self, node: NodeId, image: FirmwareImage, progress: Progress) -> str:
        data = await asyncio.to_thread(image.path.read_bytes)
        header = mcuboot_header(data)
        if header is None:
            raise FirmwareError(UpdateResult.UNSUPPORTED_PACKAGE, f"{image.name}: no image header")
        self._asleep = False
        sleepy = self.poller.sleepy(self.address)
        # from when the update began, not from a gateway restart (which would renew it)
        left = max(0.0, image.since + self.timeout - time.time())
        try:
            async with asyncio.timeout(left if sleepy else None):
                await self._apply(node, data, progress)
        except TimeoutError:
            if self._asleep:
                raise FirmwareExpired(
                    f"node {node} did not wake to be updated within {self.timeout:g} s"
                ) from None
            raise FirmwareError(
                UpdateResult.UPDATE_FAILED, f"node {node} not updated within {self.timeout:g} s"
            ) from None
        return header.version

    async def _apply(self, node: NodeId, data: bytes, progress: Progress) -> None:
        """Upload, test, reset and confirm (module docstring)."""
        uploaded = await self._upload(node, data, mcuboot_hash(data), progress)
        if uploaded.running:
            # a gateway restarted after the node booted the image, before it was confirmed
            log.info("%s: the node runs the image already", node, extra={"NODE": str(node)})
        else:
            log.info("%s: image uploaded; testing it", node, extra={"NODE": str(node)})

            async def test_and_reset(link: _Link) -> None:
                test = ImageStatesWrite(hash=uploaded.digest, confirm=False)
                # MCUmgr refuses to mark an image that fails its check
                await self._request(link.smp, test, node, UpdateResult.INTEGRITY_FAILURE)
                with contextlib.suppress(*LINK_ERRORS):  # the node may drop the link as it resets
                    await link.smp.request(ResetWrite(), timeout_s=REQUEST_TIMEOUT)

            await self._connected(node, test_and_reset, "test", attempts=1)
        await self._rebooted(node, uploaded.digest)

    async def _connected(
        self,
        node: NodeId,
        step: Callable[[_Link], Awaitable[T]],
        what: str,
        *,
        attempts: int | None,
        lost: UpdateResult = UpdateResult.UPDATE_FAILED,
    ) -> T:
        """``step`` over a connection to the node, on a new one when the link fails, for at
        most ``attempts`` connections (None: until it succeeds); FirmwareError(``lost``) when
        they are spent. A sleepy node is connected at its next advert each time, as often as
        it takes: its wake windows end its links (its update's ``timeout`` bounds them)."""
        sleepy = self.poller.sleepy(self.address)
        last: BaseException | None = None
        attempt = 0
        while sleepy or attempts is None or attempt < attempts:
            attempt += 1
            try:
                async with self._session(node, sleepy) as link:
                    return await step(link)
            except LINK_ERRORS as e:
                last = e
                log.info(
                    "%s: %s cut (connection %d of %s): %s",
                    node,
                    what,
                    attempt,
                    "its wakes" if sleepy else attempts or "any",
                    describe(e),
                    extra={"NODE": str(node)},
                )
        raise FirmwareError(
            lost, f"{node}: the {what} was cut {attempt} times: {describe(last) if last else ''}"
        )

    async def _upload(
        self, node: NodeId, data: bytes, digest: bytes | None, progress: Progress
    ) -> _Uploaded:
        """Upload to the secondary slot, resuming after a cut link; the hash the node gives
        the image it now holds. A node that runs the image already (its ``digest``, from the
        image's TLV trailer, in the active slot) takes no upload, and could take none: while
        it runs an unconfirmed image its secondary slot holds the one to revert to, which
        MCUmgr keeps."""

        async def upload(link: _Link) -> _Uploaded:
            if digest is not None:
                states = await self._request(link.smp, ImageStatesRead(), node)
                if any(s.active and s.hash == digest for s in states.images):
                    return _Uploaded(digest, running=True)
            async for offset in link.smp.upload(
                data, slot=SLOT, first_timeout_s=REQUEST_TIMEOUT * 4
            ):
                progress(offset, len(data))
            return _Uploaded(await self._secondary(link.smp, node, data))

        return await self._connected(
            node, upload, "upload", attempts=self.attempts, lost=UpdateResult.CONNECTION_LOST
        )

    async def _secondary(self, smp: SMPClient, node: NodeId, data: bytes) -> bytes:
        states = await self._request(smp, ImageStatesRead(), node)
        for state in states.images:
            if state.slot == SLOT and state.hash is not None:
                return bytes(state.hash)
        raise FirmwareError(
            UpdateResult.UPDATE_FAILED,
            f"{node} holds no image in its secondary slot after an upload of {len(data)} bytes "
            f"(sha256 {hashlib.sha256(data).hexdigest()})",
        )

    async def _rebooted(self, node: NodeId, digest: bytes) -> None:
        """Wait for the node to come back (a sleepy one: at its next wake, within the
        update's timeout); confirm the new image if it runs it, and read its Device
        Information (its new /3/0/3) while it is connected. A node that still holds the image
        pending did not take its reset (the link dropped as it went out): it is reset again."""

        async def confirm(link: _Link) -> bool:
            states = await self._request(link.smp, ImageStatesRead(), node)
            running = next((s for s in states.images if s.active), None)
            if any(s.slot == SLOT and s.pending and s.hash == digest for s in states.images):
                # not reset yet: the link dropped as its reset went out (a wake window's end
                # can cut it there), so it still waits to boot the image: no rollback
                log.info("%s: not reset yet; resetting it again", node, extra={"NODE": str(node)})
                with contextlib.suppress(*LINK_ERRORS):
                    await link.smp.request(ResetWrite(), timeout_s=REQUEST_TIMEOUT)
                return False
            if running is None or running.hash != digest:
                raise FirmwareError(
                    UpdateResult.UPDATE_FAILED,
                    f"{node} rolled back: it runs "
                    f"{running.version if running else 'no image'} again",
                )
            await self._request(link.smp, ImageStatesWrite(confirm=True), node)
            # the update is done whether or not its Device Information can be read
            with contextlib.suppress(*LINK_ERRORS):
                await self.poller.read_over(link.client, self.address)
            return True

        sleepy = self.poller.sleepy(self.address)
        try:
            async with asyncio.timeout(None if sleepy else self.reboot_timeout):
                while not await self._connected(node, confirm, "confirmation", attempts=None):
                    pass
        except TimeoutError:
            raise FirmwareError(
                UpdateResult.UPDATE_FAILED,
                f"{node} did not come back within {self.reboot_timeout:g} s of its reset",
            ) from None

    @contextlib.asynccontextmanager
    async def _session(self, node: NodeId, sleepy: bool) -> AsyncIterator[_Link]:
        """An SMP client over a fresh connection to the node; a sleepy node's at its next
        advert (while the update waits for it, ``_asleep`` says so: left set when the
        update's timeout ends the wait)."""
        transport: GattSmpTransport | None = None

        def dropped() -> None:
            if transport is not None:
                transport.dropped()

        if sleepy:
            self._asleep = True
            await self.poller.awake(self.address)
            self._asleep = False
        async with self.poller.connection(self.address, on_drop=dropped) as client:
            transport = GattSmpTransport(client)
            smp = SMPClient(transport, self.address, timeout_s=REQUEST_TIMEOUT)
            await smp.connect()
            try:
                yield _Link(smp, client)
            finally:
                await smp.disconnect()

    @staticmethod
    async def _request(
        smp: SMPClient,
        request: SMPRequest[TRep, TEr1, TEr2],
        node: NodeId,
        refused: UpdateResult = UpdateResult.UPDATE_FAILED,
    ) -> TRep:
        """The node's answer to ``request``; FirmwareError(``refused``) when it refuses."""
        response = await smp.request(request, timeout_s=REQUEST_TIMEOUT)
        if success(response):
            return response
        raise FirmwareError(refused, f"{node} refused {type(request).__name__}: {response}")
