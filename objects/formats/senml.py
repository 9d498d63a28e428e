"""SenML (RFC 8428) as LwM2M uses it: records to SenML records and back.

SenML JSON and SenML CBOR share one data model and differ only in their labels and in how an
Opaque value travels; the legacy LwM2M JSON format is a close cousin with its own labels. A
``Dialect`` names those differences, and this module does everything else, so that the three
codec modules only turn bytes into plain Python structures and back.

Names
    A record's name is ``bn + n``, plain string concatenation (RFC 8428 §4.5.1); ``bn`` is
    inherited by later records until a record changes it. The name is the record's LwM2M path,
    end-device prefix included (``/dev0/3303/0/5700``).

    Encoding uses one convention: a read of a base path puts ``bn`` = the base path and a
    trailing "/" on the first record and a relative ``n`` on each (``"bn":"/3/0/","n":"6/0"``);
    a read whose single value sits at the base path itself carries ``bn`` = that path and no
    ``n`` (``"bn":"/3/0/0"``), since a trailing "/" on a full name trips strict parsers. A
    composite read (the bare root) has no ``bn`` and the full path in every ``n``. This is what
    the OMA examples and Leshan emit. Decoding accepts every legal variant: ``bn`` only, ``n``
    only, both, ``bn`` once and inherited, ``bn`` changing midway.

Time
    ``t`` is relative to ``bt``, which is inherited like ``bn``; a record's time is ``bt + t``
    when either is present, else None ("now"). Encoding writes each record's time as ``t`` with
    no ``bt``, which carries any float exactly.

Compact packs (``base_name`` and ``relative``, what a Send carries)
    A Send is a composite pack, every record named in full; a batch of readings repeats the
    same prefixes and nearly the same times, record after record, and each Block1 block of it
    is a round trip on a cellular uplink paid by the byte. So its records share a base name
    and a base time, plain RFC 8428 any decoder resolves (§4.5.3; OMA LwM2M 1.1 Core §7.4.4
    and §7.4.5 take SenML's base fields as they are): ``bn`` is set, at a "/" boundary, to
    the prefix the record shares with the next one (a series of one resource: its whole path,
    and no ``n`` after it), and moves when a record's name leaves it or when a run of three
    records of one path begins; ``bt`` is the first record's time and ``t`` the difference
    where it is a small integer that gives the time back exactly, in binary and in decimal
    (else the record sets a new ``bt``; see ``relative``). A pack where some record has no
    time keeps absolute ``t`` and no ``bt``: an inherited ``bt`` would give it one. The
    SenML CBOR codec writes these packs (``senml_cbor.CompactEncoder``) with the rules here.

Values
    One value label per record, chosen by the resource's type; a label of the wrong type, a
    number outside the 64-bit range or with a fraction where an integer belongs is a 4.00.
    Integral numbers are accepted for integer resources ("v":1.638435E9 for a Time), as JSON
    does not tell 5 from 5.0. Numbers must be finite: JSON cannot carry anything else, and the
    CBOR form accepts the same values. ``bv`` (base value) is added to ``v`` as RFC 8428 says.

Unknown labels are ignored (RFC 8428 §4.4), except labels ending in "_" (must-understand), a
``bver`` above 10, and the sum labels (``s``, ``bs``), which would change a value's meaning:
those are refused with 4.00.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

from ..definitions import Definitions, ResourceDef, ResourceType
from ..errors import BadRequest, DecodeError, InternalServerError, PathError
from ..paths import ROOT, Level, Path
from ..values import INT64_MIN, UINT64_MAX, ObjLnk, Record, Value, check_type

Label = str | int
"""A SenML label: text in JSON, an integer (or "vlo") in CBOR."""

Item = dict[Label, object]
"""One SenML record as a JSON object or CBOR map, before or after the byte-level codec."""

SENML_VERSION = 10
"""The SenML version this module understands (RFC 8428 §4.4)."""

_INTEGER_TYPES = frozenset({ResourceType.INTEGER, ResourceType.UNSIGNED, ResourceType.TIME})
_FLOAT = ResourceType.FLOAT

_RESOURCE, _RESOURCE_INSTANCE = int(Level.RESOURCE), int(Level.RESOURCE_INSTANCE)
"""As plain ints: an enum member costs an attribute lookup on its class per use, and every
record asks both."""

_VALUE, _N, _T, _BN, _BT, _BV, _BVER = range(7)
"""The roles of a record's labels (``Dialect.roles``), the common ones first."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one representation spells the SenML model.

    ``values`` maps each resource type to the label its value travels under; the base labels
    are None in a format that has no per-record base fields (LwM2M JSON keeps them outside the
    records). ``opaque_out`` and ``opaque_in`` convert Opaque values to and from the wire form
    (base64 text in JSON, byte strings in CBOR); ``opaque_in`` raises DecodeError.
    """

    name: str
    n: Label
    t: Label
    values: Mapping[ResourceType, Label]
    opaque_out: Callable[[bytes], object]
    opaque_in: Callable[[object], bytes]
    bn: Label | None = None
    bt: Label | None = None
    bv: Label | None = None
    bver: Label | None = None
    refused: frozenset[Label] = frozenset()
    number: Label = field(init=False)
    labels: dict[ResourceType, Label] = field(init=False, repr=False, compare=False)
    """``values`` as a plain dict, never written: faster to query per record than the view,
    and copied once here rather than per pack (the copy cost a notification more than its
    lookups)."""
    value_labels: frozenset[Label] = field(init=False)
    handled: frozenset[Label] = field(init=False)
    roles: dict[Label, int] = field(init=False, repr=False, compare=False)
    """Each label this module reads, to its role (``_VALUE``, ``_N``...): a record's labels
    are looked up once each, where probing every label a record might carry took twelve
    lookups for its two or three; never written."""

    def __post_init__(self) -> None:
        # Derived once here so the per-record loops do no set building; the mapping is copied
        # into a read-only view so that a module-level dialect is not mutable state.
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))
        object.__setattr__(self, "labels", dict(self.values))
        value_labels = frozenset(self.values.values())
        handled = {self.n, self.t, *value_labels}
        handled.update(x for x in (self.bn, self.bt, self.bv, self.bver) if x is not None)
        object.__setattr__(self, "number", self.values[ResourceType.FLOAT])
        object.__setattr__(self, "value_labels", value_labels)
        object.__setattr__(self, "handled", frozenset(handled))
        roles: dict[Label, int] = dict.fromkeys(value_labels, _VALUE)
        for label, role in (
            (self.n, _N),
            (self.t, _T),
            (self.bn, _BN),
            (self.bt, _BT),
            (self.bv, _BV),
            (self.bver, _BVER),
        ):
            if label is not None:
                roles[label] = role
        object.__setattr__(self, "roles", roles)


def b64decode(raw: object, *, urlsafe: bool) -> bytes:
    """Decode base64 text, padded or not, in one alphabet only; DecodeError otherwise.

    Padding is optional because implementations disagree (Wakaama pads SenML ``vd``, RFC 8428
    says not to); the other alphabet's characters are refused, not silently mapped.
    """
    if not isinstance(raw, str):
        raise DecodeError(f"an Opaque value must be base64 text, not {_show(raw)}")
    foreign = "+/" if urlsafe else "-_"
    if not raw.isascii() or foreign[0] in raw or foreign[1] in raw:
        raise DecodeError(f"{_show(raw)} is not base64{'url' if urlsafe else ''}")
    try:
        return base64.b64decode(
            raw + "=" * (-len(raw) % 4), altchars=b"-_" if urlsafe else None, validate=True
        )
    except binascii.Error:
        raise DecodeError(f"{_show(raw)} is not base64{'url' if urlsafe else ''}") from None


def encode_entries(
    records: Sequence[Record], base: Path, dialect: Dialect
) -> tuple[str, list[Item]]:
    """The base name for a read of ``base`` and one item per record, named relative to it.

    See the module docstring for the naming convention. The items carry no base fields, so
    that LwM2M JSON can put the base name beside them and SenML into the first of them.
    """
    labels = type_labels(dialect)
    n_label, t_label = dialect.n, dialect.t
    composite = base.prefix is None and not base.ids
    if composite:
        bn, sep = "", ""
    elif records and records[0].path == base:
        bn, sep = str(base), "/"
    else:
        bn, sep = f"{base}/", ""
    depth, base_ids, prefix = len(base.ids), base.ids, base.prefix
    items: list[Item] = []
    append = items.append
    for rec in records:
        path, value = rec.path, rec.value
        if composite:
            name = str(path)
        else:
            ids = path.ids
            if ids[:depth] != base_ids or path.prefix != prefix:
                raise InternalServerError(f"record {path} is outside the read of {base}")
            name = sep + "/".join(map(str, ids[depth:])) if len(ids) > depth else ""
        label = labels.get(type(value))
        if label is None or type(value) not in _PLAIN:
            label, out = _wire_out(path, value, label, dialect)
        else:
            out = value
        item: Item = {n_label: name, label: out} if name else {label: out}
        if rec.time is not None:
            item[t_label] = rec.time
        append(item)
    return bn, items


def type_labels(dialect: Dialect) -> dict[type, Label]:
    """The value label of each Python type a record's value may have."""
    values = dialect.values
    return {
        int: values[ResourceType.INTEGER],
        float: values[ResourceType.FLOAT],
        str: values[ResourceType.STRING],
        bool: values[ResourceType.BOOLEAN],
        bytes: values[ResourceType.OPAQUE],
        ObjLnk: values[ResourceType.OBJLNK],
    }


_PLAIN = frozenset({int, float, str, bool})
"""The value types that travel as they are."""


def _wire_out(
    path: Path | str, value: Value, label: Label | None, dialect: Dialect
) -> tuple[Label, object]:
    """The label and wire form of a value that does not travel as it is (``_PLAIN``)."""
    if label is None:
        raise InternalServerError(f"record {path} holds no LwM2M value: {_show(value)}")
    if type(value) is bytes:
        return label, dialect.opaque_out(value)
    return label, str(value)


def encode_pack(records: Sequence[Record], base: Path, dialect: Dialect) -> list[Item]:
    """A SenML pack for a read of ``base``: ``encode_entries`` with ``bn`` in the first record."""
    bn, items = encode_entries(records, base, dialect)
    if bn and items and dialect.bn is not None:
        items[0] = {dialect.bn: bn, **items[0]}
    return items


def base_name(names: Sequence[str], i: int, bn: str) -> str | None:
    """The base name record ``i`` of a compact pack (module docstring) sets, named
    ``names[i]`` after records that left ``bn`` as the base name; None when it keeps ``bn``.

    A new one when the name does not resolve under ``bn`` (it must end at a "/" for any name
    under it to follow; a base name with no "/" at its end is one record's whole name): the
    prefix the name shares with the next one, at a "/" boundary. And the name itself where a
    run of three records of that name begins (a series of one resource), so that its records
    carry no ``n``. Names are LwM2M paths, so two share at least the leading "/" and a base
    name once set is never empty."""
    name = names[i]
    last = len(names) - 1
    if not (bn and name.startswith(bn) and (name == bn or bn.endswith("/"))):
        return _shared_prefix(name, names[i + 1] if i < last else name)
    if i + 2 <= last and name != bn and name == names[i + 1] == names[i + 2]:
        return name  # a series of one resource begins
    return None


def compact_value(
    name: str, value: Value, labels: Mapping[type, Label], dialect: Dialect
) -> tuple[Label, object]:
    """The label and wire form of a compact pack's ``value`` (the record named ``name``),
    ``labels`` being ``type_labels(dialect)``."""
    label = labels.get(type(value))
    if label is None or type(value) not in _PLAIN:
        return _wire_out(name, value, label, dialect)
    return label, value


def path_names(records: Sequence[Record]) -> list[str]:
    """Each record's path as a SenML name (a compact pack's), each path object's text made
    once: a series holds one path object in each of its records."""
    texts: dict[int, str] = {}
    names: list[str] = []
    for rec in records:
        name = texts.get(id(rec.path))
        if name is None:
            name = texts[id(rec.path)] = str(rec.path)
        names.append(name)
    return names


def _shared_prefix(name: str, other: str) -> str:
    """The longest prefix of ``name`` that ``other`` starts with, ending at a "/" (or the whole
    name when they are equal)."""
    if name == other:
        return name
    end = 0
    for a, b in zip(name, other, strict=False):
        if a != b:
            break
        end += 1
    return name[: name.rfind("/", 0, end) + 1]


def relative(time: float, bt: float) -> int | None:
    """``time`` after ``bt`` as a small integer (1 to 5 bytes, where a float takes 9), when
    ``bt + t`` gives ``time`` back exactly, with its type, both to a reader that adds binary
    numbers and to one that adds their shortest decimal forms, as Leshan does (its timestamps
    are decimal sums, refused when finer than a nanosecond); else None, and the record sets a
    ``bt`` of its own, which costs what an absolute ``t`` would. Times a whole number of
    seconds apart (a node's clock) share one ``bt``; ``time.time()`` readings do not."""
    d = time - bt
    if type(d) is float and not d.is_integer():
        return None  # the common case, decided first
    t = int(d)
    if not -(2**31) <= t < 2**31:
        return None
    if bt + t != time or type(bt + t) is not type(time):
        return None
    if (
        type(time) is float
        and not _whole(bt, time)
        and Decimal(repr(bt)) + t != Decimal(repr(time))
    ):
        return None
    return t


_EXACT = 2.0**53
"""Below it in magnitude, every whole number is a float."""


def _whole(bt: float, time: float) -> bool:
    """Whether both are whole numbers of magnitude below 2**53 (a node's clock in seconds, as
    floats): each one's shortest decimal form is then its exact value (a shorter decimal
    within half a unit in the last place of a whole number would be that whole number), so
    the decimal sum is the binary one and ``relative`` needs no ``repr`` (each 5 k
    instructions, most of a series record's encoding)."""
    return (
        bt.is_integer() and time.is_integer() and -_EXACT < bt < _EXACT and -_EXACT < time < _EXACT
    )


def encode_path_list(paths: Sequence[Path], dialect: Dialect) -> list[Item]:
    """The records of a composite request: one name-only record per path, full path in ``n``."""
    return [{dialect.n: str(p)} for p in paths]


def decode_pack(
    items: object,
    base: Path,
    definitions: Definitions,
    dialect: Dialect,
    *,
    base_name: str = "",
    base_time: float | None = None,
) -> list[Record]:
    """The records of a SenML pack (or LwM2M JSON entries) written to ``base``.

    ``base_name`` and ``base_time`` seed the inherited base fields, for formats that carry them
    outside the records.
    """
    records: list[Record] = []
    _decode(items, dialect, base_name, base_time, base, definitions, records, None)
    return records


def decode_path_list(items: object, dialect: Dialect) -> list[Path]:
    """The paths of a composite request: name-only records, any level, no value or time."""
    paths: list[Path] = []
    _decode(items, dialect, "", None, ROOT, _NO_DEFINITIONS, [], paths)
    return paths


def _decode(
    items: object,
    dialect: Dialect,
    bn: str,
    bt: float | None,
    base: Path,
    definitions: Definitions,
    records: list[Record],
    paths: list[Path] | None,
) -> None:
    """Append to ``records`` each record of ``items``, or to ``paths`` each name of a path
    list, in one pass: a record's labels are looked up once each in ``Dialect.roles``, its
    base fields resolved, its name parsed and its value checked against its resource's
    definition as it comes, with nothing built per record but what it returns (a
    notification's records took a generator's tuple each and a dozen calls)."""
    if type(items) is not list:
        raise DecodeError(f"a {dialect.name} payload is an array of records, not {_show(items)}")
    roles, labels, number_label = dialect.roles, dialect.labels, dialect.number
    objects = definitions.objects
    # Every name is inside the bare root (a composite write, a Send): no test per record.
    everything = base.prefix is None and not base.ids
    parse, append = Path.parse, records.append
    bv: int | float | None = None
    for item in items:
        if type(item) is not dict:
            raise DecodeError(f"a {dialect.name} record is a map, not {_show(item)}")
        raw_n = raw_t = raw_bn = raw_bt = raw_bv = raw_bver = _ABSENT
        label: Label | None = None
        value: object = None
        values = 0
        unknown = False
        for key, raw in item.items():
            role = roles.get(key)
            if role == _VALUE:
                label, value = key, raw
                values += 1
            elif role == _N:
                raw_n = raw
            elif role == _T:
                raw_t = raw
            elif role is None:
                unknown = True
            elif role == _BN:
                raw_bn = raw
            elif role == _BT:
                raw_bt = raw
            elif role == _BV:
                raw_bv = raw
            else:
                raw_bver = raw
        # Checked in the order a record's fields resolve: its base fields, then its own.
        if raw_bn is not _ABSENT:
            bn = text(raw_bn, "base name")
        if raw_bt is not _ABSENT:
            bt = number(raw_bt, "base time")
        if raw_bv is not _ABSENT:
            bv = number(raw_bv, "base value")
        if raw_bver is not _ABSENT and (type(raw_bver) is not int or raw_bver > SENML_VERSION):
            raise BadRequest(f"SenML version {_show(raw_bver)} is not supported")
        if raw_n is _ABSENT:
            name = bn
        else:  # text, checked with no call but for the error
            name = bn + (raw_n if type(raw_n) is str else text(raw_n, "name"))
        time = bt
        if raw_t is not _ABSENT:
            t = number(raw_t, "time")
            time = t if bt is None else _finite(bt + t, "time")
        if values > 1:
            raise BadRequest(f"{name!r} carries more than one value")
        # A finite float with no base value (a sensor's) is taken as it is, with no call.
        if label == number_label and (
            type(value) is not float or bv is not None or value - value != 0.0
        ):
            amount = number(value, "value")
            value = amount if bv is None else _finite(bv + amount, "value")
        if unknown:
            _check_unknown(item, dialect.handled, dialect)
        try:
            path = parse(name)
        except PathError as e:
            raise BadRequest(f"SenML name {name[:80]!r} is not an LwM2M path: {e}") from None
        if paths is not None:
            if label is not None or time is not None:
                raise BadRequest(f"{name!r}: a path list carries names only, no value or time")
            paths.append(path)
            continue
        if not everything and not base.contains(path):
            raise BadRequest(f"{name!r} is outside the target {base}")
        ids = path.ids
        level = len(ids)
        if level < _RESOURCE:
            raise BadRequest(f"{name!r} is not a resource or resource instance")
        odef = objects.get(ids[0])
        rdef = odef.resources.get(ids[2]) if odef is not None else None
        if rdef is None:
            rdef = definitions.resource(ids[0], ids[2])  # NotFound, with what is unknown
        if rdef.multiple != (level == _RESOURCE_INSTANCE):
            kind = "multi-instance" if rdef.multiple else "single-instance"
            raise BadRequest(f"{name!r} does not address {kind} resource {rdef.id} as such")
        if label is None:
            raise BadRequest(f"{name!r} carries no value")
        if type(value) is float and label == number_label and rdef.type is _FLOAT:
            # A sensor's value, what nearly every record is: a finite float (checked above)
            # under the label of its type, checked with no call more.
            append(Record(path, value, time))
        else:
            append(Record(path, _value(rdef, label, value, labels, dialect), time))


def _check_unknown(item: Mapping[object, object], handled: frozenset[Label], d: Dialect) -> None:
    """Refuse the labels a reader must not ignore; ignore the rest (RFC 8428 §4.4)."""
    for key in item:
        if key in handled:
            continue
        if key in d.refused or (isinstance(key, str) and key.endswith("_")):
            raise BadRequest(f"{d.name} label {_show(key)} is not supported")


def _value(
    rdef: ResourceDef,
    label: Label,
    raw: object,
    labels: Mapping[ResourceType, Label],
    dialect: Dialect,
) -> Value:
    """The raw value under ``label`` as a value of ``rdef``'s type, or BadRequest."""
    rtype = rdef.type
    expected = labels.get(rtype)
    if expected is None:
        raise BadRequest(f"resource {rdef.id} ({rdef.name}) takes no value")
    if label != expected:
        raise BadRequest(
            f"resource {rdef.id} ({rdef.name}) takes {rtype.value}, not a {label!r} value"
        )
    if rtype is ResourceType.OPAQUE:
        return dialect.opaque_in(raw)
    if rtype is ResourceType.OBJLNK:
        if not isinstance(raw, str) or not raw.isascii():
            raise DecodeError(f"{_show(raw)} is not an object link (oid:iid)")
        return ObjLnk.parse(raw)
    if type(raw) is float and rtype in _INTEGER_TYPES:
        if not raw.is_integer():
            raise BadRequest(f"resource {rdef.id} ({rdef.name}) takes an integer, not {raw!r}")
        raw = int(raw)
    return check_type(rdef, raw)


def text(raw: object, what: str) -> str:
    """A SenML text field, or DecodeError."""
    if type(raw) is not str:
        raise DecodeError(f"a SenML {what} is text, not {_show(raw)}")
    return raw


def number(raw: object, what: str) -> int | float:
    """A SenML number: an int in the int64/uint64 range or a finite float."""
    if type(raw) is int:
        if INT64_MIN <= raw <= UINT64_MAX:
            return raw
        raise BadRequest(f"SenML {what} {_show(raw)} is outside the 64-bit range")
    if type(raw) is float:
        return _finite(raw, what)
    raise DecodeError(f"a SenML {what} is a number, not {_show(raw)}")


def _finite(x: int | float, what: str) -> int | float:
    if type(x) is float and not math.isfinite(x):
        raise BadRequest(f"SenML {what} is not a finite number")
    return x


def _show(x: object) -> str:
    """A short description of a payload item for an error message."""
    if isinstance(x, str | bytes | int | float | bool) or x is None:
        text = repr(x)
        return text if len(text) <= 40 else text[:37] + "..."
    return f"a {type(x).__name__}"


_NO_DEFINITIONS = Definitions()
"""What a path list's names are checked against: nothing, as they name any level."""

_ABSENT = object()
"""Marks a missing label, since JSON null and CBOR null are values to refuse, not absences."""
