"""The firmware contract between the core and a transport: how an image reaches a node.

The core owns LwM2M /5 Firmware Update for every node (``bridged/firmware.py``): it takes the
package a server pushes or names, keeps it on disk, and drives the OMA state machine. What only
a transport knows is how to put an image on one of its nodes: an 802.15.4 LwM2M node pulls it
from the gateway's node-facing CoAP server, a BLE MCUboot node takes it over SMP. So a transport
that can update a node offers a ``FirmwareUpdater`` for it (``Transport.firmware_updater``); the
core asks, never branches on the transport.

An updater's failure is a ``FirmwareError`` carrying the /5/0/5 Update Result the server is
shown (``UpdateResult``: the codes of object 5, stated here once for the core and every
transport). ``mcuboot_header`` reads the MCUboot image header (magic, version), which Zephyr
nodes on either radio boot from; an updater uses it to check an image before sending it.
``mcuboot_hash`` reads the image's SHA-256 from its TLV trailer: the hash by which MCUmgr
names the images a node holds.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Protocol

from bridged.transports.nodes import NodeId


class State(IntEnum):
    """/5/0/3 State."""

    IDLE = 0
    DOWNLOADING = 1
    DOWNLOADED = 2
    UPDATING = 3


class UpdateResult(IntEnum):
    """/5/0/5 Update Result, as object 5 defines the codes."""

    INITIAL = 0
    SUCCESS = 1
    NOT_ENOUGH_FLASH = 2
    OUT_OF_RAM = 3
    CONNECTION_LOST = 4
    INTEGRITY_FAILURE = 5
    UNSUPPORTED_PACKAGE = 6
    INVALID_URI = 7
    UPDATE_FAILED = 8
    UNSUPPORTED_PROTOCOL = 9
    CANCELLED = 10
    DEFERRED = 11


class DownloadProtocol(IntEnum):
    """/5/0/8 Firmware Update Protocol Support values."""

    COAP = 0
    COAPS = 1
    HTTP = 2
    HTTPS = 3


class Delivery(IntEnum):
    """/5/0/9 Firmware Update Delivery Method."""

    PULL = 0
    PUSH = 1
    BOTH = 2


class FirmwareError(Exception):
    """An update (or the taking of a package) failed; ``result`` is what /5/0/5 shows."""

    def __init__(self, result: UpdateResult, message: str) -> None:
        super().__init__(message)
        self.result = result


class FirmwareExpired(FirmwareError):
    """The update's time ran out while the node could not be reached (asleep through it, or
    away): it did not happen, rather than failed on the node, so as a command it ends
    ``expired`` as a sleepy node's write does. /5/0/5 is 8 (Firmware update failed) all the
    same: object 5 has no code for it (10 is a Cancel's, 11 a user's deferral)."""

    def __init__(self, message: str) -> None:
        super().__init__(UpdateResult.UPDATE_FAILED, message)


def outcome(result: int) -> str:
    """An Update Result in words (``integrity failure``); ``unknown`` for a code object 5
    does not define."""
    try:
        return UpdateResult(result).name.lower().replace("_", " ")
    except ValueError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class FirmwareImage:
    """A package on the gateway's disk, checked: ``sha256`` (hex) of its ``size`` bytes,
    and the package ``name`` and ``version`` /5/0/6 and /5/0/7 show. ``since`` is when its
    update began (State Updating, a ``time.time()``), kept across a gateway restart: an
    updater's deadline for the update runs from it, not from a restart."""

    path: Path
    size: int
    sha256: str
    name: str
    version: str
    since: float


Progress = Callable[[int, int], None]
"""Called with (bytes the node has, bytes in all) as a transfer to a node goes on."""


class FirmwareUpdater(Protocol):
    """How one transport puts an image on one of its nodes."""

    def describe(self, path: Path) -> tuple[str, str]:
        """The package name and version the image at ``path`` carries ("" for what its format
        does not say: the core then names a pulled package by its URI), after the format
        checks this transport's nodes need; FirmwareError(UNSUPPORTED_PACKAGE) for a file they
        cannot take. Run before anything is sent to the node."""
        ...

    async def update(self, node: NodeId, image: FirmwareImage, progress: Progress) -> str:
        """Deliver ``image`` to ``node``, have it apply it, and return the firmware version
        the node runs afterwards; FirmwareError with the node's result when it fails."""
        ...


MCUBOOT_MAGIC = 0x96F3B83D
MCUBOOT_HEADER = struct.Struct("<IIHHIIBBHII")
"""struct image_header: magic, load address, header size, protected TLV size, image size,
flags, version (major, minor, revision, build number), padding: 32 bytes."""


@dataclass(frozen=True, slots=True)
class McubootHeader:
    header_size: int
    image_size: int
    version: str


def mcuboot_header(data: bytes) -> McubootHeader | None:
    """The MCUboot header at the start of ``data``, None when it has none (wrong magic, or a
    header whose sizes cannot be)."""
    if len(data) < MCUBOOT_HEADER.size:
        return None
    magic, _, hdr, _, size, _, major, minor, rev, build, _ = MCUBOOT_HEADER.unpack_from(data)
    if magic != MCUBOOT_MAGIC or hdr < MCUBOOT_HEADER.size:
        return None
    return McubootHeader(hdr, size, f"{major}.{minor}.{rev}+{build}")


MCUBOOT_TLV_INFO = struct.Struct("<HH")
"""A TLV area's info: its magic and its length, the info included."""
MCUBOOT_TLV = struct.Struct("<HH")
"""One TLV's type and length."""
MCUBOOT_TLV_MAGIC = 0x6907
MCUBOOT_TLV_SHA256 = 0x10


def mcuboot_hash(data: bytes) -> bytes | None:
    """The SHA-256 TLV of the MCUboot image ``data`` (after its header, its body and its
    protected TLVs), None when it has none. MCUmgr's image state names each slot's image by
    it, so it tells whether a node holds or runs this image."""
    header = mcuboot_header(data)
    if header is None:
        return None
    protected = MCUBOOT_HEADER.unpack_from(data)[3]
    start = header.header_size + header.image_size + protected
    if len(data) < start + MCUBOOT_TLV_INFO.size:
        return None
    magic, length = MCUBOOT_TLV_INFO.unpack_from(data, start)
    if magic != MCUBOOT_TLV_MAGIC:
        return None
    end = min(start + length, len(data))
    offset = start + MCUBOOT_TLV_INFO.size
    while offset + MCUBOOT_TLV.size <= end:
        kind, size = MCUBOOT_TLV.unpack_from(data, offset)
        offset += MCUBOOT_TLV.size
        if kind == MCUBOOT_TLV_SHA256 and size == 32 and offset + size <= end:
            return data[offset : offset + size]
        offset += size
    return None
