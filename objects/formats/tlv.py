"""OMA TLV (Content-Format 11542), the binary format of LwM2M 1.0 that 1.1 servers still speak.

A TLV is a type byte, a 1- or 2-byte identifier, an optional 1- to 3-byte length and the value.
The type byte's top two bits say what the identifier names: an Object Instance (its value is
resource TLVs), a Resource Instance, a Multiple Resource (its value is Resource Instance TLVs)
or a Resource with a value. The payload names no object and no path, so what a TLV means
depends on the request's path (``base``):

- a read or write of an object carries one Object Instance TLV per instance;
- of an instance, its resource TLVs with no wrapper;
- of a multi-instance resource, one Multiple Resource TLV, even for one instance or none;
- of a resource instance, one Resource Instance TLV.

The root cannot be addressed at all, which is why TLV has no composite operations. Values carry
no type either: the resource's definition says how to read each one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from ..definitions import Definitions, ObjectDef, ResourceDef, ResourceType
from ..errors import (
    BadRequest,
    DecodeError,
    InternalServerError,
    NotAcceptable,
    UnsupportedContentFormat,
)
from ..paths import Path
from ..values import ObjLnk, Record, Value, check_id
from . import ContentFormat

OBJECT_INSTANCE: Final = 0b00
RESOURCE_INSTANCE: Final = 0b01
MULTIPLE_RESOURCE: Final = 0b10
RESOURCE: Final = 0b11
"""The identifier kinds of bits 7-6 of the type byte."""

_KIND_NAMES: Final = ("Object Instance", "Resource Instance", "Multiple Resource", "Resource")

_WIDE_ID: Final = 0x20
_MAX_LENGTH: Final = 0xFFFFFF

_B = struct.Struct(">B").pack
_BB = struct.Struct(">BB").pack
_BBB = struct.Struct(">BBB").pack
_BBH = struct.Struct(">BBH").pack
_BBBH = struct.Struct(">BBBH").pack
_BH = struct.Struct(">BH").pack
_BHB = struct.Struct(">BHB").pack
_BHH = struct.Struct(">BHH").pack
_BHBH = struct.Struct(">BHBH").pack
_I8 = struct.Struct(">b").pack
_I16 = struct.Struct(">h").pack
_I32 = struct.Struct(">i").pack
_I64 = struct.Struct(">q").pack
_U16 = struct.Struct(">H").pack
_U32 = struct.Struct(">I").pack
_U64 = struct.Struct(">Q").pack
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_OBJLNK = struct.Struct(">HH")

Tlv = tuple[int, int, int, int]
"""One parsed TLV: (kind, identifier, start of value, end of value) within the payload."""


# -- encoding ---------------------------------------------------------------------------------


def _header(kind: int, id_: int, length: int) -> bytes:
    """The type, identifier and length bytes of a TLV, each as short as its number allows."""
    t = kind << 6
    if id_ <= 0xFF:
        if length < 8:
            return _BB(t | length, id_)
        if length <= 0xFF:
            return _BBB(t | 0x08, id_, length)
        if length <= 0xFFFF:
            return _BBH(t | 0x10, id_, length)
        if length <= _MAX_LENGTH:
            return _BBBH(t | 0x18, id_, length >> 16, length & 0xFFFF)
    else:
        t |= _WIDE_ID
        if length < 8:
            return _BH(t | length, id_)
        if length <= 0xFF:
            return _BHB(t | 0x08, id_, length)
        if length <= 0xFFFF:
            return _BHH(t | 0x10, id_, length)
        if length <= _MAX_LENGTH:
            return _BHBH(t | 0x18, id_, length >> 16, length & 0xFFFF)
    raise NotAcceptable(f"a TLV value holds at most {_MAX_LENGTH} bytes, not {length}")


def _tlv(kind: int, id_: int, value: bytes) -> bytes:
    return _header(kind, id_, len(value)) + value


def _encode_integer(v: int) -> bytes:
    """The shortest two's complement form of 1, 2, 4 or 8 bytes."""
    if -0x80 <= v <= 0x7F:
        return _I8(v)
    if -0x8000 <= v <= 0x7FFF:
        return _I16(v)
    if -0x8000_0000 <= v <= 0x7FFF_FFFF:
        return _I32(v)
    return _I64(v)


def _encode_unsigned(v: int) -> bytes:
    """The shortest unsigned form of 1, 2, 4 or 8 bytes; only 8 bytes reach 2**63 and above."""
    if v <= 0xFF:
        return _B(v)
    if v <= 0xFFFF:
        return _U16(v)
    if v <= 0xFFFF_FFFF:
        return _U32(v)
    return _U64(v)


def _encode_float(v: float) -> bytes:
    """4 bytes when float32 holds the value exactly, else 8: no precision is ever lost."""
    try:
        single = _F32.pack(v)
    except OverflowError:
        return _F64.pack(v)
    return single if _F32.unpack(single)[0] == v else _F64.pack(v)


def _encode_boolean(v: bool) -> bytes:
    return b"\x01" if v else b"\x00"


def _encode_string(v: str) -> bytes:
    return v.encode()


def _encode_opaque(v: bytes) -> bytes:
    return v


def _encode_objlnk(v: ObjLnk) -> bytes:
    return _OBJLNK.pack(v.object_id, v.instance_id)


def _encode_none(v: object) -> bytes:
    raise TypeError("an executable resource has no value")


_ENCODERS: Mapping[ResourceType, Callable[[Any], bytes]] = MappingProxyType(
    {
        ResourceType.STRING: _encode_string,
        ResourceType.INTEGER: _encode_integer,
        ResourceType.UNSIGNED: _encode_unsigned,
        ResourceType.FLOAT: _encode_float,
        ResourceType.BOOLEAN: _encode_boolean,
        ResourceType.OPAQUE: _encode_opaque,
        ResourceType.TIME: _encode_integer,
        ResourceType.OBJLNK: _encode_objlnk,
        ResourceType.CORELNK: _encode_string,
        ResourceType.NONE: _encode_none,
    }
)
"""Value encoders by type. Each takes the Python type of its LwM2M type, which the tree has
checked; anything else makes it (or the TLV around it) raise one of ``_VALUE_ERRORS``."""

_VALUE_ERRORS: Final = (TypeError, ValueError, AttributeError, OverflowError, struct.error)


def _runs(records: Sequence[Record], depth: int) -> Iterator[tuple[int, Sequence[Record]]]:
    """Split path-ordered records into runs that share the ID at ``depth`` of their paths."""
    i, n = 0, len(records)
    while i < n:
        key = records[i].path.ids[depth]
        j = i + 1
        while j < n and records[j].path.ids[depth] == key:
            j += 1
        yield key, records[i:j]
        i = j


def _encode_instances(rdef: ResourceDef, records: Sequence[Record]) -> bytes:
    """Resource Instance TLVs, one per record of a multi-instance resource."""
    encode = _ENCODERS[rdef.type]
    parts = []
    for r in records:
        ids = r.path.ids
        if len(ids) != 4:
            raise InternalServerError(f"{r.path} is no instance of multi-instance {rdef.id}")
        parts.append(_tlv(RESOURCE_INSTANCE, ids[3], encode(r.value)))
    return b"".join(parts)


def _encode_resource(rdef: ResourceDef, records: Sequence[Record]) -> bytes:
    """The TLV of one resource: a Multiple Resource TLV if it has instances, else a Resource."""
    if rdef.multiple:
        return _tlv(MULTIPLE_RESOURCE, rdef.id, _encode_instances(rdef, records))
    encode = _ENCODERS[rdef.type]
    parts = []
    for r in records:
        if len(r.path.ids) != 3:
            raise InternalServerError(f"single-instance resource {rdef.id} has no {r.path}")
        parts.append(_tlv(RESOURCE, rdef.id, encode(r.value)))
    return b"".join(parts)


def _encode_object_instance(obj: ObjectDef, records: Sequence[Record]) -> bytes:
    """The resource TLVs of one instance, without a wrapper: ``_encode_resource`` of each
    resource's run of records, with a single-instance resource's one record (the most common)
    encoded in the loop itself, as an instance Read encodes one per resource."""
    parts: list[bytes] = []
    i, n = 0, len(records)
    while i < n:
        record = records[i]
        ids = record.path.ids
        rdef = obj.resource(ids[2])
        j = i + 1
        while j < n and records[j].path.ids[2] == ids[2]:
            j += 1
        if j == i + 1 and not rdef.multiple and len(ids) == 3:
            value = _ENCODERS[rdef.type](record.value)
            parts += (_header(RESOURCE, rdef.id, len(value)), value)
        else:
            parts.append(_encode_resource(rdef, records[i:j]))
        i = j
    return b"".join(parts)


# -- decoding ---------------------------------------------------------------------------------


def _split(buf: bytes, pos: int, end: int) -> list[Tlv]:
    """The TLVs that exactly fill ``buf[pos:end]``; DecodeError if they overrun or fall short.

    Two siblings that name the same instance or resource are a BadRequest: which one should
    win is anyone's guess, so the write is refused rather than half applied.
    """
    out: list[Tlv] = []
    while pos < end:
        t = buf[pos]
        if t & _WIDE_ID:
            if pos + 3 > end:
                raise DecodeError(f"TLV header truncated at byte {pos}")
            id_ = check_id((buf[pos + 1] << 8) | buf[pos + 2])
            pos += 3
        else:
            if pos + 2 > end:
                raise DecodeError(f"TLV header truncated at byte {pos}")
            id_ = buf[pos + 1]
            pos += 2
        size = (t >> 3) & 0b11
        if size:
            if pos + size > end:
                raise DecodeError(f"TLV length truncated at byte {pos}")
            length = int.from_bytes(buf[pos : pos + size], "big")
            pos += size
        else:
            length = t & 0b111
        if pos + length > end:
            raise DecodeError(f"TLV value of {length} bytes at byte {pos} runs past its end")
        out.append((t >> 6, id_, pos, pos + length))
        pos += length
    if len({tlv[:2] for tlv in out}) != len(out):
        raise BadRequest("a TLV payload names the same instance or resource twice")
    return out


def _decode_integer(raw: bytes) -> Value:
    if len(raw) not in (1, 2, 4, 8):
        raise DecodeError(f"an Integer is 1, 2, 4 or 8 bytes, not {len(raw)}")
    return int.from_bytes(raw, "big", signed=True)


def _decode_unsigned(raw: bytes) -> Value:
    """Unsigned at every width, as ``_encode_unsigned`` writes it: C8 alone is 200."""
    if len(raw) not in (1, 2, 4, 8):
        raise DecodeError(f"an Unsigned Integer is 1, 2, 4 or 8 bytes, not {len(raw)}")
    return int.from_bytes(raw, "big")


def _decode_float(raw: bytes) -> Value:
    if len(raw) == 8:
        return float(_F64.unpack(raw)[0])
    if len(raw) == 4:
        return float(_F32.unpack(raw)[0])
    raise DecodeError(f"a Float is 4 or 8 bytes, not {len(raw)}")


def _decode_boolean(raw: bytes) -> Value:
    if raw == b"\x01":
        return True
    if raw == b"\x00":
        return False
    raise DecodeError(f"a Boolean is one byte 0 or 1, not {raw.hex()}")


def _decode_string(raw: bytes) -> Value:
    try:
        return raw.decode()
    except UnicodeDecodeError as e:
        raise DecodeError(f"a String is UTF-8: {e.reason} at byte {e.start}") from None


def _decode_opaque(raw: bytes) -> Value:
    return raw


def _decode_objlnk(raw: bytes) -> Value:
    if len(raw) != 4:
        raise DecodeError(f"an Objlnk is 4 bytes, not {len(raw)}")
    return ObjLnk(*_OBJLNK.unpack(raw))


def _decode_none(raw: bytes) -> Value:
    raise BadRequest("an executable resource takes no value")


_DECODERS: Mapping[ResourceType, Callable[[bytes], Value]] = MappingProxyType(
    {
        ResourceType.STRING: _decode_string,
        ResourceType.INTEGER: _decode_integer,
        ResourceType.UNSIGNED: _decode_unsigned,
        ResourceType.FLOAT: _decode_float,
        ResourceType.BOOLEAN: _decode_boolean,
        ResourceType.OPAQUE: _decode_opaque,
        ResourceType.TIME: _decode_integer,
        ResourceType.OBJLNK: _decode_objlnk,
        ResourceType.CORELNK: _decode_string,
        ResourceType.NONE: _decode_none,
    }
)


def _unexpected(tlv: Tlv, where: str) -> BadRequest:
    return BadRequest(f"a {_KIND_NAMES[tlv[0]]} TLV (ID {tlv[1]}) cannot stand {where}")


@dataclass(frozen=True, slots=True)
class _Reader:
    """Turns the TLVs of one payload into records under ``base``, typed by the definitions."""

    buf: bytes
    obj: ObjectDef
    out: list[Record]

    def children(self, tlv: Tlv) -> list[Tlv]:
        return _split(self.buf, tlv[2], tlv[3])

    def value(self, rdef: ResourceDef, tlv: Tlv) -> Value:
        return _DECODERS[rdef.type](self.buf[tlv[2] : tlv[3]])

    def instance(self, rdef: ResourceDef, tlv: Tlv, rpath: Path) -> None:
        """A Resource Instance TLV of the multi-instance resource at ``rpath``."""
        if tlv[0] != RESOURCE_INSTANCE:
            raise _unexpected(tlv, f"in multi-instance resource {rpath}")
        self.out.append(Record(rpath.child(tlv[1]), self.value(rdef, tlv)))

    def resource(self, tlv: Tlv, ipath: Path) -> None:
        """A Resource or Multiple Resource TLV of the instance at ``ipath``."""
        kind, rid = tlv[0], tlv[1]
        if kind not in (RESOURCE, MULTIPLE_RESOURCE):
            raise _unexpected(tlv, f"in object instance {ipath}")
        rdef = self.obj.resource(rid)
        if rdef.multiple != (kind == MULTIPLE_RESOURCE):
            many = "multi" if rdef.multiple else "single"
            raise BadRequest(
                f"a {_KIND_NAMES[kind]} TLV cannot carry {many}-instance resource {rid}"
            )
        rpath = ipath.child(rid)
        if kind == RESOURCE:
            self.out.append(Record(rpath, self.value(rdef, tlv)))
        else:
            for child in self.children(tlv):
                self.instance(rdef, child, rpath)

    def object_instance(self, tlv: Tlv, ipath: Path) -> None:
        """The resource TLVs of an Object Instance TLV for the instance at ``ipath``."""
        for child in self.children(tlv):
            self.resource(child, ipath)

    def payload(self, tlvs: list[Tlv], base: Path) -> None:
        """The top-level TLVs of a write to ``base``, read by how deep ``base`` reaches."""
        ids = base.ids
        if len(ids) == 1:
            for tlv in tlvs:
                if tlv[0] != OBJECT_INSTANCE:
                    raise _unexpected(tlv, f"at the top of a write to object {base}")
                self.object_instance(tlv, base.child(tlv[1]))
        elif len(ids) == 2:
            # An instance's resources come bare, but a peer that wraps them in the Object
            # Instance TLV of this very instance says the same thing.
            for tlv in tlvs:
                if tlv[0] != OBJECT_INSTANCE:
                    self.resource(tlv, base)
                elif tlv[1] == ids[1]:
                    self.object_instance(tlv, base)
                else:
                    raise BadRequest(f"object instance {tlv[1]} is outside {base}")
        else:
            rdef = self.obj.resource(ids[2])
            if len(ids) == 3:
                self.resource_payload(tlvs, rdef, base)
            elif not rdef.multiple:
                raise BadRequest(f"single-instance resource {base.parent} has no instances")
            elif len(tlvs) != 1 or tlvs[0][1] != ids[3]:
                raise BadRequest(f"a write to {base} carries exactly its one Resource Instance TLV")
            else:
                self.instance(rdef, tlvs[0], base.parent)

    def resource_payload(self, tlvs: list[Tlv], rdef: ResourceDef, rpath: Path) -> None:
        """A write to resource ``rpath``: its own TLV, or (multi-instance) bare instances."""
        if not rdef.multiple and len(tlvs) != 1:
            raise BadRequest(f"a write to {rpath} carries one Resource TLV, not {len(tlvs)}")
        for tlv in tlvs:
            if tlv[0] == RESOURCE_INSTANCE and rdef.multiple:
                self.instance(rdef, tlv, rpath)
            elif tlv[1] != rdef.id:
                raise BadRequest(f"resource {tlv[1]} is outside {rpath}")
            else:
                self.resource(tlv, rpath.parent)


# -- the codec --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TlvCodec:
    """OMA TLV. Time is not carried: decoded records are "now".

    Encoding trusts the records to be what the tree holds: values of their definitions' types at
    paths that match their resources. Records that are not fail with 5.00, since the fault is
    this client's, not the server's request.
    """

    content_format: ContentFormat = ContentFormat.TLV
    timed = False

    def encode(self, records: Sequence[Record], base: Path, definitions: Definitions) -> bytes:
        ids = base.ids
        if not ids:
            raise NotAcceptable("TLV cannot carry a read of the root")
        obj = definitions.get(ids[0])
        try:
            if len(ids) == 1:
                return b"".join(
                    _tlv(OBJECT_INSTANCE, iid, _encode_object_instance(obj, run))
                    for iid, run in _runs(records, 1)
                )
            if len(ids) == 2:
                return _encode_object_instance(obj, records)
            rdef = obj.resource(ids[2])
            if len(ids) == 3:
                return _encode_resource(rdef, records)
            return _encode_instances(rdef, records)
        except _VALUE_ERRORS as e:
            raise InternalServerError(f"a value under {base} does not fit its type: {e}") from e

    def decode(self, payload: bytes, base: Path, definitions: Definitions) -> list[Record]:
        ids = base.ids
        if not ids:
            raise UnsupportedContentFormat("TLV cannot carry a write to the root")
        buf = bytes(payload)
        reader = _Reader(buf, definitions.get(ids[0]), [])
        reader.payload(_split(buf, 0, len(buf)), base)
        return reader.out


CODEC = TlvCodec()
