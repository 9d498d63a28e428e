"""MCUboot images, as the emulated nodes boot them: a header with a version, a body, and the
TLV trailer whose SHA-256 an emulated node checks (MCUboot's own integrity check), as imgtool
lays them out; ``corrupt`` gives one whose trailer does not match its bytes."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import cbor2

from bridged.transports.firmware import MCUBOOT_HEADER, MCUBOOT_MAGIC

TLV_INFO_MAGIC = 0x6907
TLV_SHA256 = 0x10
HEADER_SIZE = 32


def image(
    version: tuple[int, int, int, int],
    size: int = 20_000,
    *,
    corrupt: bool = False,
    crashes: bool = False,
) -> bytes:
    """An image of ``size`` body bytes running ``version`` (major, minor, revision, build);
    ``crashes`` marks it as one that resets before it is confirmed (``CRASHES``)."""
    major, minor, revision, build = version
    body = bytes((i * 7 + major) & 0xFF for i in range(size))
    header = MCUBOOT_HEADER.pack(
        MCUBOOT_MAGIC,
        0,
        HEADER_SIZE,
        0,
        size,
        0,
        major,
        minor,
        revision,
        build,
        CRASHES if crashes else 0,
    )
    digest = hashlib.sha256(header + body).digest()
    if corrupt:
        digest = bytes(32)
    tlv = struct.pack("<HH", TLV_SHA256, 32) + digest
    return header + body + struct.pack("<HH", TLV_INFO_MAGIC, 4 + len(tlv)) + tlv


def verified(data: bytes) -> bool:
    """Whether ``data`` is an image whose trailer's SHA-256 is that of its header and body."""
    if len(data) < HEADER_SIZE:
        return False
    fields = MCUBOOT_HEADER.unpack_from(data)
    magic, hdr, size = fields[0], fields[2], fields[4]
    end = hdr + size
    if magic != MCUBOOT_MAGIC or len(data) < end + 8:
        return False
    info_magic, _ = struct.unpack_from("<HH", data, end)
    kind, length = struct.unpack_from("<HH", data, end + 4)
    if info_magic != TLV_INFO_MAGIC or kind != TLV_SHA256 or length != 32:
        return False
    return data[end + 8 : end + 40] == hashlib.sha256(data[:end]).digest()


def version_of(data: bytes) -> str:
    fields = MCUBOOT_HEADER.unpack_from(data)
    return f"{fields[6]}.{fields[7]}.{fields[8]}+{fields[9]}"


CRASHES = 0xDEAD
"""The header's padding word marking a test image that crashes before it confirms itself:
MCUboot boots it once, and it resets before anything can confirm it (the rollback case)."""


def smp_version(data: bytes) -> str:
    """The version as Zephyr's img_mgmt writes it in the image state: ``M.m.r``, then
    ``.build`` when the build number is not 0."""
    fields = MCUBOOT_HEADER.unpack_from(data)
    text = f"{fields[6]}.{fields[7]}.{fields[8]}"
    return text + (f".{fields[9]}" if fields[9] else "")


def image_hash(data: bytes) -> bytes:
    """The SHA-256 of the TLV trailer, which is what img_mgmt calls the image's hash (32 zero
    bytes for a body too short to have one)."""
    end = HEADER_SIZE + MCUBOOT_HEADER.unpack_from(data)[4] if len(data) >= HEADER_SIZE else 0
    found = data[end + 8 : end + 40]
    return found if len(found) == 32 else bytes(32)


class McubootError(Exception):
    """A request MCUmgr refuses; ``rc`` is its MGMT_ERR code."""

    def __init__(self, rc: int, message: str) -> None:
        super().__init__(message)
        self.rc = rc


EINVAL, EBADSTATE = 3, 6
"""The MGMT_ERR codes the emulation answers."""


class Mcuboot:
    """The flash and boot logic of an MCUboot node with MCUmgr's image group, sans I/O.

    Two slots: the primary runs, the secondary takes uploads. Marking the secondary for test
    makes the next reset swap it in and run it unconfirmed; a confirm makes it permanent, and
    another reset before that swaps the old image back (a revert). MCUboot checks an image's
    SHA-256 before it boots it and refuses one that fails; an image marked ``CRASHES`` boots
    and resets before it can be confirmed."""

    def __init__(self, running: bytes) -> None:
        self.primary = running
        self.secondary = bytearray()
        self.upload_len = 0
        self.upload_sha = b""
        self.pending = False
        self.confirmed = True
        self.boots = 0
        self.received = 0
        """Image bytes taken by uploads, in all (a resumed upload's repeated bytes count)."""

    @property
    def version(self) -> str:
        return version_of(self.primary)

    def upload(self, off: int, data: bytes, length: int | None, sha: bytes | None) -> int:
        """An ImageUploadWrite chunk; returns the offset the node expects next. An upload at
        offset 0 whose SHA-256 is that of the unfinished one resumes it (Zephyr's rule). While
        the node runs a test image it has not confirmed, the secondary slot holds the image a
        reset reverts to, and img_mgmt refuses to overwrite it."""
        if not self.confirmed:
            raise McubootError(EBADSTATE, "the secondary slot holds the image to revert to")
        if off == 0:
            if length is None:
                raise McubootError(EINVAL, "the first chunk has no len")
            resuming = sha is not None and sha == self.upload_sha
            if resuming and len(self.secondary) < self.upload_len:
                return len(self.secondary)
            self.secondary = bytearray()
            self.upload_len = length
            self.upload_sha = sha or b""
            self.pending = False
        if off != len(self.secondary):
            return len(self.secondary)  # not where it is: the client goes on from here
        if off + len(data) > self.upload_len:
            raise McubootError(EINVAL, "past the announced length")
        self.secondary += data
        self.received += len(data)
        return len(self.secondary)

    @property
    def complete(self) -> bool:
        return bool(self.secondary) and len(self.secondary) == self.upload_len

    def states(self) -> list[dict[str, object]]:
        """The image state list (ImageStatesRead)."""
        found: list[dict[str, object]] = [
            {
                "slot": 0,
                "version": smp_version(self.primary),
                "hash": image_hash(self.primary),
                "bootable": True,
                "pending": False,
                "confirmed": self.confirmed,
                "active": True,
                "permanent": False,
            }
        ]
        if self.complete and len(self.secondary) >= HEADER_SIZE:
            data = bytes(self.secondary)
            found.append(
                {
                    "slot": 1,
                    "version": smp_version(data),
                    "hash": image_hash(data),
                    "bootable": True,
                    "pending": self.pending,
                    "confirmed": False,
                    "active": False,
                    "permanent": False,
                }
            )
        return found

    def test(self, hash_: bytes | None) -> None:
        """Mark the secondary image pending (ImageStatesWrite confirm=false): refused unless it
        is a complete image whose hash is ``hash_`` and whose check passes."""
        if not self.complete or hash_ != image_hash(bytes(self.secondary)):
            raise McubootError(EINVAL, "no such image in the secondary slot")
        if not verified(bytes(self.secondary)):
            raise McubootError(EBADSTATE, "the image fails its integrity check")
        self.pending = True

    def confirm(self, hash_: bytes | None) -> None:
        """Confirm the running image (ImageStatesWrite confirm=true)."""
        if hash_ is not None and hash_ != image_hash(self.primary):
            raise McubootError(EINVAL, "only the running image can be confirmed here")
        self.confirmed = True

    def reset(self) -> None:
        """The node reboots: MCUboot swaps in a pending image (test boot), reverts an
        unconfirmed one, else boots what it has."""
        self.boots += 1
        pending, self.pending = self.pending, False
        if pending and verified(bytes(self.secondary)):
            self._swap()
            self.confirmed = False
            if MCUBOOT_HEADER.unpack_from(self.primary)[10] == CRASHES:
                self.reset()
        elif not self.confirmed and self.secondary:
            self._swap()
            self.confirmed = True

    def _swap(self) -> None:
        self.primary, self.secondary = bytes(self.secondary), bytearray(self.primary)
        self.upload_len = len(self.secondary)
        self.upload_sha = b""


SMP_HEADER = struct.Struct(">BBHHBB")
"""The SMP header: version and op, flags, length, group, sequence, command."""
OS_GROUP, IMAGE_GROUP = 0, 1
RESET, PARAMS = 5, 6
STATE, UPLOAD = 0, 1
BUF_SIZE = 512
"""The SMP server's reassembly buffer (``buf_size``): what a request may be at most."""


class SmpServer:
    """MCUmgr's SMP server over a byte stream (the GATT characteristic's writes), for an
    ``Mcuboot``: ``feed`` takes written bytes and returns the response frames; after a reset
    request's response ``reset_due`` is set and the transport resets the node."""

    def __init__(self, boot: Mcuboot) -> None:
        self.boot = boot
        self.buffer = bytearray()
        self.reset_due = False

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        out: list[bytes] = []
        while len(self.buffer) >= SMP_HEADER.size:
            length = SMP_HEADER.unpack_from(self.buffer)[2]
            end = SMP_HEADER.size + length
            if len(self.buffer) < end:
                break
            frame, self.buffer = bytes(self.buffer[:end]), self.buffer[end:]
            out.append(self._answer(frame))
        return out

    def _answer(self, frame: bytes) -> bytes:
        first, flags, _, group, seq, cmd = SMP_HEADER.unpack_from(frame)
        op = first & 0x07
        request = cbor2.loads(frame[SMP_HEADER.size :]) if len(frame) > SMP_HEADER.size else {}
        try:
            body = self._handle(group, cmd, op, request)
        except McubootError as e:
            body = {"rc": e.rc, "rsn": str(e)}
        payload = cbor2.dumps(body)
        header = SMP_HEADER.pack((first & ~0x07) | (op + 1), flags, len(payload), group, seq, cmd)
        return header + payload

    def _handle(self, group: int, cmd: int, op: int, req: dict[str, Any]) -> dict[str, Any]:
        write = op == 2
        if group == OS_GROUP and cmd == PARAMS:
            return {"buf_size": BUF_SIZE, "buf_count": 4}
        if group == OS_GROUP and cmd == RESET and write:
            self.reset_due = True
            return {}
        if group == IMAGE_GROUP and cmd == STATE:
            if write and req.get("confirm"):
                self.boot.confirm(req.get("hash"))
            elif write:
                self.boot.test(req.get("hash"))
            return {"images": self.boot.states(), "splitStatus": 0}
        if group == IMAGE_GROUP and cmd == UPLOAD and write:
            off = self.boot.upload(req["off"], req["data"], req.get("len"), req.get("sha"))
            if off == self.boot.upload_len:
                digest = hashlib.sha256(self.boot.secondary).digest()
                return {"off": off, "match": digest == self.boot.upload_sha}
            return {"off": off}
        return {"rc": 8, "rsn": "not supported"}  # MGMT_ERR_ENOTSUP
