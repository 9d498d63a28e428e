"""application/cbor (Content-Format 60, LwM2M 1.1 Core §7.4): one value as one CBOR data item.

Like text/plain, the payload names nothing, so it carries exactly the value at the request's
path: a single-instance resource or one resource instance. A read of anything else is 4.06, a
write to an object, an instance or a whole multi-instance resource 4.15 (``single_record``,
``single_target``).

Each LwM2M type has one CBOR form (RFC 8949):

=================  ===================================  ==================================
LwM2M type         written                              also read
=================  ===================================  ==================================
Integer, Unsigned  integer (major type 0 or 1)
Float              shortest float that holds the value  any width (16, 32, 64), an integer
Boolean            false / true
String, Corelnk    text string
Opaque             byte string
Objlnk             text string ``"oid:iid"``
Time               tag 1 (epoch seconds) on an integer  an untagged integer
=================  ===================================  ==================================

Time is tagged because Leshan, the reference server, decodes a Time only from tag 1 (or 0, a
date string, which no LwM2M type is and this decoder refuses); an untagged integer, what LwM2M
CBOR writes for a Time, is read as one too.

Decoding is deliberately strict: anything that is not one of these forms, filling the payload
exactly, is a DecodeError (4.00). That covers arrays and maps, null, undefined and other
simple values, tags other than 1 (bignums, date strings, ...), indefinite lengths (a single
value has a known length, and no LwM2M peer splits one into chunks), trailing bytes and
truncated items. A well-formed value of the wrong type for the resource (a float for an
Integer, a negative number for an Unsigned, a non-whole epoch time) is BadRequest (4.00) from
``check_type``, never a value coerced into another.

The reader is this module's own, not cbor2's decoder: cbor2 accepts all of the above
transparently, and a single data item is a few lines to read exactly. The writer is cbor2's
canonical encoder (shortest integers and floats).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import cbor2

from ..definitions import Definitions, ResourceType
from ..errors import BadRequest, DecodeError
from ..paths import Path
from ..values import ObjLnk, Record, check_type
from . import ContentFormat
from .text import single_record, single_target

_NAME = "application/cbor"

_UNSIGNED, _NEGATIVE, _BYTES, _TEXT, _ARRAY, _MAP, _TAG, _SIMPLE = range(8)
_FALSE, _TRUE = 20, 21
_FLOATS: Final = {25: ">e", 26: ">f", 27: ">d"}
"""Additional information of a float (major type 7) -> its struct format: half, single, double."""
_SIMPLE_NAMES: Final = {22: "null", 23: "undefined"}
_EPOCH_TAG: Final = 1
_INDEFINITE: Final = 31


@dataclass(frozen=True, slots=True)
class _Epoch:
    """A tag-1 epoch time, which only a Time resource takes."""

    seconds: int


def _head(data: bytes, pos: int) -> tuple[int, int, int, int]:
    """The item head at ``pos``: (major type, additional information, argument, next position).

    For a float the argument is its raw bits.
    """
    if pos >= len(data):
        raise DecodeError("the CBOR item ends early" if pos else "an empty payload is no value")
    major, info = data[pos] >> 5, data[pos] & 0x1F
    pos += 1
    if info < 24:
        return major, info, info, pos
    if info == _INDEFINITE:
        raise DecodeError(
            f"byte {data[pos - 1]:#04x}: {_NAME} values have definite lengths, no break"
        )
    if info > 27:
        raise DecodeError(f"byte {data[pos - 1]:#04x} is not a valid CBOR item head")
    size = 1 << (info - 24)
    if pos + size > len(data):
        raise DecodeError("the CBOR item ends early")
    return major, info, int.from_bytes(data[pos : pos + size], "big"), pos + size


def _item(data: bytes, pos: int, *, in_tag: bool = False) -> tuple[object, int]:
    """The one scalar item at ``pos`` and the position after it; DecodeError if it is not one
    of the forms in the module docstring."""
    major, info, arg, pos = _head(data, pos)
    if major == _UNSIGNED:
        return arg, pos
    if major == _NEGATIVE:
        return -1 - arg, pos
    if major in (_BYTES, _TEXT):
        if pos + arg > len(data):
            raise DecodeError(f"a string of {arg} bytes does not fit in the payload")
        raw = data[pos : pos + arg]
        if major == _BYTES:
            return bytes(raw), pos + arg
        try:
            return raw.decode("utf-8"), pos + arg
        except UnicodeDecodeError as e:
            raise DecodeError(f"text string is not UTF-8: {e.reason}") from None
    if major == _TAG:
        if in_tag:
            raise DecodeError("an epoch time (tag 1) holds a number, not another tag")
        if arg != _EPOCH_TAG:
            raise DecodeError(f"{_NAME} takes no CBOR tag {arg} (only 1, an epoch time)")
        inner, pos = _item(data, pos, in_tag=True)
        return _epoch(inner), pos
    if major == _SIMPLE:
        if info in _FLOATS:
            size = struct.calcsize(_FLOATS[info])
            return struct.unpack(_FLOATS[info], arg.to_bytes(size, "big"))[0], pos
        if info in (_FALSE, _TRUE):
            return info == _TRUE, pos
        name = _SIMPLE_NAMES.get(arg, f"simple value {arg}")
        raise DecodeError(f"{name} is not an LwM2M value")
    raise DecodeError(f"a CBOR {'array' if major == _ARRAY else 'map'} is not a single value")


def _epoch(inner: object) -> _Epoch:
    """Tag 1's content: whole seconds (RFC 8949 §3.4.2 allows a float; LwM2M time has none)."""
    if type(inner) is int:
        return _Epoch(inner)
    if type(inner) is float and math.isfinite(inner) and inner.is_integer():
        return _Epoch(int(inner))
    raise BadRequest(f"an epoch time (tag 1) of {inner!r} is not whole seconds")


def _load(payload: bytes) -> object:
    """The one CBOR item that fills ``payload`` exactly."""
    data = bytes(payload)
    item, end = _item(data, 0)
    if end != len(data):
        raise DecodeError(f"{len(data) - end} bytes left over after the CBOR value")
    return item


@dataclass(frozen=True, slots=True)
class PlainCborCodec:
    """application/cbor: one value as one CBOR data item."""

    content_format: ContentFormat = ContentFormat.CBOR
    timed = False

    def encode(self, records: Sequence[Record], base: Path, definitions: Definitions) -> bytes:
        value = single_record(records, base, _NAME).value
        rtype = definitions.resource(base.ids[0], base.ids[2]).type
        item: object = value
        if rtype is ResourceType.TIME:
            item = cbor2.CBORTag(_EPOCH_TAG, value)
        elif rtype is ResourceType.FLOAT and isinstance(value, int | float):
            item = float(value)  # a float even when whole: Leshan reads a Float only from one
        elif isinstance(value, ObjLnk):
            item = str(value)
        return cbor2.dumps(item, canonical=True)

    def decode(self, payload: bytes, base: Path, definitions: Definitions) -> list[Record]:
        rdef = single_target(base, definitions, _NAME)
        raw = _load(payload)
        if isinstance(raw, _Epoch):
            if rdef.type is not ResourceType.TIME:
                raise BadRequest(f"{base}: an epoch time (tag 1) for a {rdef.type.value}")
            raw = raw.seconds
        elif rdef.type is ResourceType.OBJLNK and isinstance(raw, str):
            raw = ObjLnk.parse(raw)
        return [Record(base, check_type(rdef, raw))]


CODEC = PlainCborCodec()
