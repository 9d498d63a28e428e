"""Typed resource values and records.

Python types stand for LwM2M types: String and Corelnk are ``str``; Integer, Unsigned Integer
and Time are ``int`` (Time in seconds since the Unix epoch); Float is ``float``; Boolean is
``bool``; Opaque is ``bytes``; Objlnk is ``ObjLnk``. A ``Record`` is one value at one path,
the unit every content format encodes and decodes.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass

from .definitions import ResourceDef, ResourceType
from .errors import BadRequest, DecodeError
from .paths import MAX_ID, Path

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
_FLOAT_MAX = 2**1023
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""A decimal number as text/plain carries it: no "nan", "inf" or "1_000"."""
_ID_TEXT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True, slots=True)
class ObjLnk:
    """An object link, ``oid:iid``. ``65535:65535`` is the null link."""

    object_id: int
    instance_id: int

    def __post_init__(self) -> None:
        for i in (self.object_id, self.instance_id):
            if type(i) is not int or not 0 <= i <= 0xFFFF:
                raise BadRequest(f"object link part {i!r} is outside 0..65535")

    @classmethod
    def parse(cls, text: str) -> ObjLnk:
        oid, sep, iid = text.partition(":")
        if not sep or not _ID_TEXT.fullmatch(oid) or not _ID_TEXT.fullmatch(iid):
            raise DecodeError(f"{text!r} is not an object link (oid:iid)")
        return cls(int(oid), int(iid))

    def __str__(self) -> str:
        return f"{self.object_id}:{self.instance_id}"


Value = str | int | float | bool | bytes | ObjLnk
"""A resource value. Executable resources have none."""


@dataclass(frozen=True, slots=True)
class Record:
    """One value at one resource or resource-instance path.

    ``time`` is the SenML time of the value (seconds; absolute since the epoch, or relative to
    now when below 2**28 as RFC 8428 says), or None for "now".
    """

    path: Path
    value: Value
    time: float | None = None

    def __init__(self, path: Path, value: Value, time: float | None = None) -> None:
        # The dataclass's own __init__, minus its name lookups: a frozen dataclass sets each
        # field through ``object.__setattr__`` by name, and every Read builds one per value.
        _set_path(self, path)
        _set_value(self, value)
        _set_time(self, time)


_set_path = Record.__dict__["path"].__set__
_set_value = Record.__dict__["value"].__set__
_set_time = Record.__dict__["time"].__set__


def _type_error(defn: ResourceDef, value: object) -> BadRequest:
    return BadRequest(f"resource {defn.id} ({defn.name}) takes {defn.type.value}, not {value!r}")


def check_type(defn: ResourceDef, value: object) -> Value:
    """Return ``value`` as the Python type of ``defn``'s LwM2M type, or raise BadRequest.

    An int is accepted for a Float (and returned as float); a float with no fraction is not
    accepted for an integer type, because silently truncating a server's value is worse than a
    4.00. Floats must be finite: NaN and infinities have no form in the JSON formats, and a
    sensor that has no reading should have no value rather than a NaN.
    """
    t = defn.type
    # Float first: a sensor's value, what nearly every reading is.
    if t is ResourceType.FLOAT:
        if type(value) is float and math.isfinite(value):
            return value
        if type(value) is int and abs(value) <= _FLOAT_MAX:
            return float(value)
    elif t is ResourceType.STRING or t is ResourceType.CORELNK:
        if isinstance(value, str):
            return value
    elif t is ResourceType.INTEGER:
        if type(value) is int and INT64_MIN <= value <= INT64_MAX:
            return value
    elif t is ResourceType.UNSIGNED:
        if type(value) is int and 0 <= value <= UINT64_MAX:
            return value
    elif t is ResourceType.TIME:
        if type(value) is int and INT64_MIN <= value <= INT64_MAX:
            return value
    elif t is ResourceType.BOOLEAN:
        if type(value) is bool:
            return value
    elif t is ResourceType.OPAQUE:
        if isinstance(value, bytes):
            return value
    elif t is ResourceType.OBJLNK and isinstance(value, ObjLnk):
        return value
    raise _type_error(defn, value)


MAX_STRING_BYTES = 2048
"""The longest String value (UTF-8 bytes) of a resource whose definition gives no range: the
definitions' own ranges are shorter (a URI is 0..255 bytes), and a time zone, a name or a
version that does not fit in this is a mistake or an attack, not a value to keep."""


def check_value(defn: ResourceDef, value: object) -> Value:
    """``check_type``, then the definition's range: a number's value, a string's length (at
    most ``MAX_STRING_BYTES`` when the definition has no range)."""
    # A sensor's value, what nearly every reading is: checked with no call more.
    if type(value) is float and defn.plain_float and math.isfinite(value):
        return value
    v = check_type(defn, value)
    rng = defn.range
    if rng is None or (rng.low is None and rng.high is None):
        if defn.type is ResourceType.STRING and isinstance(v, str):
            size = len(v.encode())
            if size > MAX_STRING_BYTES:
                raise BadRequest(
                    f"resource {defn.id} ({defn.name}) length {size} is over "
                    f"{MAX_STRING_BYTES} bytes"
                )
        return v
    if isinstance(v, (bool, ObjLnk)):
        return v
    if isinstance(v, str | bytes):
        measure: float = len(v.encode() if isinstance(v, str) else v)
        what = "length"
    else:
        measure, what = v, "value"
    if isinstance(measure, float) and math.isnan(measure):
        raise BadRequest(f"resource {defn.id} ({defn.name}) is not a number")
    if not rng.admits(measure):
        raise BadRequest(
            f"resource {defn.id} ({defn.name}) {what} {measure:g} is outside {rng.text}"
        )
    return v


def to_text(value: Value) -> str:
    """The text/plain form of a value (Opaque is base64, Boolean 0/1, Objlnk oid:iid).

    Floats use ``repr``, the shortest text that reads back as the same float.
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float):
        return repr(value)
    return str(value)


def from_text(defn: ResourceDef, text: str) -> Value:
    """Parse the text/plain form of a value of ``defn``'s type; DecodeError if it is not one."""
    t = defn.type
    try:
        if t is ResourceType.STRING or t is ResourceType.CORELNK:
            return text
        if t in (ResourceType.INTEGER, ResourceType.UNSIGNED, ResourceType.TIME):
            stripped = text.strip()
            if not stripped.lstrip("+-").isdigit() or not stripped.isascii():
                raise ValueError(text)
            return check_type(defn, int(stripped))
        if t is ResourceType.FLOAT:
            if not _FLOAT_RE.fullmatch(text.strip()):
                raise ValueError(text)
            return check_type(defn, float(text))
        if t is ResourceType.BOOLEAN:
            if text.strip() in ("0", "1"):
                return text.strip() == "1"
            raise ValueError(text)
        if t is ResourceType.OPAQUE:
            return base64.b64decode(text.strip(), validate=True)
        if t is ResourceType.OBJLNK:
            return ObjLnk.parse(text.strip())
    except (ValueError, binascii.Error, BadRequest) as e:
        raise DecodeError(f"{text[:40]!r} is not a valid {t.value}") from e
    raise DecodeError(f"resource {defn.id} ({defn.name}) has no value ({t.value})")


def check_id(i: int) -> int:
    """A path ID from a payload: DecodeError when outside 0..65534."""
    if not 0 <= i <= MAX_ID:
        raise DecodeError(f"ID {i} is outside 0..{MAX_ID}")
    return i
