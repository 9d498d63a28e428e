"""MCUboot images, as the emulated nodes boot them: a header with a version, a body, and the
TLV trailer whose SHA-256 an emulated node checks (MCUboot's own integrity check), as imgtool
lays them out; ``corrupt`` gives one whose trailer does not match its bytes."""

from __future__ import annotations

import hashlib
import struct

from bridged.transports.firmware import MCUBOOT_HEADER, MCUBOOT_MAGIC

TLV_INFO_MAGIC = 0x6907
TLV_SHA256 = 0x10
HEADER_SIZE = 32


def image(
    version: tuple[int, int, int, int], size: int = 20_000, *, corrupt: bool = False
) -> bytes:
    """An image of ``size`` body bytes running ``version`` (major, minor, revision, build)."""
    major, minor, revision, build = version
    body = bytes((i * 7 + major) & 0xFF for i in range(size))
    header = MCUBOOT_HEADER.pack(
        MCUBOOT_MAGIC, 0, HEADER_SIZE, 0, size, 0, major, minor, revision, build, 0
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
