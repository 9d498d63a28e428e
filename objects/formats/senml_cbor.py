"""SenML CBOR (Content-Format 112): the SenML model of ``senml`` in RFC 8428 CBOR.

Labels are the RFC 8428 §6 integers, except the LwM2M object link label, which stays the text
"vlo". Opaque values are byte strings.

Decoding is strict about CBOR items: the payload must be exactly one item, map keys integers
or text, and no CBOR tag is accepted except tag 4 (decimal fraction), which Leshan uses for
times (its Send test encodes ``bt`` as ``c4 82 00 1a...``). Every cbor2 failure on garbage
becomes a DecodeError.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import cbor2

from ..definitions import Definitions, ResourceType
from ..errors import DecodeError, NotAcceptable
from ..paths import Path
from ..values import Record, Value
from . import ContentFormat
from .senml import (
    Dialect,
    Label,
    base_name,
    compact_value,
    decode_pack,
    decode_path_list,
    encode_pack,
    encode_path_list,
    relative,
    type_labels,
)

MAX_DEPTH = 8
"""A SenML pack nests three deep (array, map, decimal fraction); deeper is an attack."""

MAX_DECIMAL_EXPONENT = 400
"""Decimal fractions beyond ±10**400 are no 64-bit value; bounding them keeps the arithmetic
cheap on a hostile exponent."""


def _decimal_fraction(value: Any, immutable: bool) -> int | float:
    """Tag 4 ``[exponent, mantissa]`` as an int when integral, else the nearest float."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError("a decimal fraction is [exponent, mantissa]")
    if type(value[0]) is not int or type(value[1]) is not int:
        raise ValueError("a decimal fraction has integer parts")
    exponent: int = value[0]
    mantissa: int = value[1]
    if not -MAX_DECIMAL_EXPONENT <= exponent <= MAX_DECIMAL_EXPONENT:
        raise ValueError("decimal fraction exponent out of range")
    scale: int = 10 ** abs(exponent)
    if exponent >= 0:
        return mantissa * scale
    whole, rest = divmod(mantissa, scale)
    # Integer true division rounds correctly, so the float is the nearest to the decimal.
    return whole if rest == 0 else mantissa / scale


def _refuse_tag(value: Any, immutable: bool) -> Any:
    raise ValueError("CBOR tags other than 4 (decimal fraction) are not accepted")


class _SemanticTags(Mapping[int, Callable[[Any, bool], Any]]):
    """cbor2's ``semantic_decoders``: tag 4 decoded, every other tag refused.

    cbor2 looks every tag up here before its built-in decoders (dates, bignums, regexes,
    shared values...), so this one mapping shuts them all off.
    """

    def __getitem__(self, tag: int) -> Callable[[Any, bool], Any]:
        return _decimal_fraction if tag == 4 else _refuse_tag

    def __iter__(self) -> Iterator[int]:
        return iter((4,))

    def __len__(self) -> int:
        return 1


_TAGS = _SemanticTags()


def _load(payload: bytes) -> object:
    """Decode exactly one CBOR item; DecodeError for anything else."""
    fp = io.BytesIO(payload)
    try:
        document = cbor2.CBORDecoder(
            fp, semantic_decoders=_TAGS, max_depth=MAX_DEPTH, allow_duplicate_keys=False
        ).decode()
    except (
        cbor2.CBORDecodeError,
        ValueError,
        OverflowError,
        RecursionError,
        MemoryError,
        EOFError,
    ) as e:
        raise DecodeError(f"SenML CBOR payload is not valid CBOR: {e}") from None
    if fp.tell() != len(payload):
        raise DecodeError("SenML CBOR payload has bytes after its data item")
    if type(document) is list:
        # As dict keys 2.0 == 2 and False == 0: only true integers and text are labels.
        label_types = {type(k) for item in document if type(item) is dict for k in item}
        if not label_types <= {int, str}:
            raise DecodeError("SenML CBOR labels are integers or text")
    return document


def _dump(document: object) -> bytes:
    try:
        return cbor2.dumps(document)
    except (cbor2.CBOREncodeError, ValueError) as e:
        raise NotAcceptable(f"SenML CBOR cannot carry this value: {e}") from None


def _opaque_in(raw: object) -> bytes:
    if type(raw) is not bytes:
        raise DecodeError("a SenML CBOR data value is a byte string")
    return raw


def _opaque_out(data: bytes) -> bytes:
    return data


DIALECT = Dialect(
    name="SenML CBOR",
    n=0,
    t=6,
    values={
        ResourceType.STRING: 3,
        ResourceType.CORELNK: 3,
        ResourceType.INTEGER: 2,
        ResourceType.UNSIGNED: 2,
        ResourceType.FLOAT: 2,
        ResourceType.TIME: 2,
        ResourceType.BOOLEAN: 4,
        ResourceType.OPAQUE: 8,
        ResourceType.OBJLNK: "vlo",
    },
    opaque_out=_opaque_out,
    opaque_in=_opaque_in,
    bn=-2,
    bt=-3,
    bv=-5,
    bver=-1,
    refused=frozenset({5, -6}),
)


_FLOAT64 = struct.Struct(">Bd").pack
"""A finite float as cbor2 writes one outside its canonical mode: 0xfb and 8 bytes."""


def _head(major: int, length: int) -> bytes:
    """The head of a CBOR item of ``major`` type (shifted: 0x60 text, 0x80 array...) and
    ``length`` (RFC 8949 §3), in its shortest form, as cbor2 writes it."""
    if length < 24:
        return bytes((major | length,))
    if length < 0x100:
        return bytes((major | 24, length))
    if length < 0x10000:
        return bytes((major | 25,)) + length.to_bytes(2, "big")
    if length < 0x100000000:
        return bytes((major | 26,)) + length.to_bytes(4, "big")
    return bytes((major | 27,)) + length.to_bytes(8, "big")


_VALUE = struct.Struct(">Hd").pack
"""A record's value's label and 0xfb, and its value, a finite float."""
_TIME_AND_VALUE = struct.Struct(">dHd").pack
"""A record's ``bt`` after its label and 0xfb (``CompactEncoder``), then its value's label and
0xfb, and its value: two finite floats."""

_TEXT_HEADS = [_head(0x60, length) for length in range(24)]


def _text(x: str) -> bytes:
    """Text as cbor2 writes it."""
    data = x.encode()
    size = len(data)
    return (_TEXT_HEADS[size] if size < 24 else _head(0x60, size)) + data


def _int(x: int) -> bytes:
    """An integer from -2**64 to 2**64 - 1 as cbor2 writes it (RFC 8949 §3.1)."""
    return _head(0x00, x) if x >= 0 else _head(0x20, -1 - x)


def _item(x: object) -> bytes:
    """``x`` as the CBOR item cbor2 writes for it in a pack: the common float and text here,
    with no call into cbor2 per field, anything else (ints, bools, byte strings, and the
    non-finite floats cbor2 writes in half precision) by cbor2 itself."""
    if type(x) is float and x - x == 0.0:
        return _FLOAT64(0xFB, x)
    if type(x) is str:
        return _text(x)
    return _dump(x)


class SenMLCborCodec:
    """The SenML CBOR codec (see ``formats.Codec`` and ``formats.CompositeCodec``)."""

    content_format = ContentFormat.SENML_CBOR
    timed = True

    def encode(self, records: Sequence[Record], base: Path, definitions: Definitions) -> bytes:
        return _dump(encode_pack(records, base, DIALECT))

    @staticmethod
    def pack_size(count: int, size: int) -> int:
        """The size of a pack of ``count`` records (``CompactEncoder``) of ``size`` bytes."""
        return len(_head(0x80, count)) + size

    @staticmethod
    def pack(records: Sequence[bytes]) -> bytes:
        """A SenML CBOR pack of records encoded by ``CompactEncoder``."""
        return _head(0x80, len(records)) + b"".join(records)

    def decode(self, payload: bytes, base: Path, definitions: Definitions) -> list[Record]:
        return decode_pack(_load(payload), base, definitions, DIALECT)

    def encode_paths(self, paths: Sequence[Path]) -> bytes:
        return _dump(encode_path_list(paths, DIALECT))

    def decode_paths(self, payload: bytes) -> list[Path]:
        return decode_path_list(_load(payload), DIALECT)


_BN_KEY, _N_KEY, _BT_KEY, _T_KEY = map(_dump, (DIALECT.bn, DIALECT.n, DIALECT.bt, DIALECT.t))
_VALUE_KEYS: dict[Label, bytes] = {label: _dump(label) for label in DIALECT.value_labels}
_NUMBER_KEY = _VALUE_KEYS[DIALECT.number]
assert len(_BT_KEY) == len(_NUMBER_KEY) == 1, "one-byte labels, as _TIME_AND_VALUE writes them"
_BT_FLOAT = _BT_KEY + b"\xfb"
_NUMBER_FLOAT = _NUMBER_KEY[0] << 8 | 0xFB
_MAP_HEADS = [_head(0xA0, count) for count in range(6)]
"""A record's map of 1 to 5 fields (``CompactEncoder``)."""
_TYPE_LABELS = type_labels(DIALECT)

NAMES_LIMIT = 2048
"""How many names ``CompactEncoder`` keeps encoded at most (about 150 bytes each, the name
itself shared with its caller): a resource of 2,000 nodes under one base name. Past it, it
starts again empty, as ``bridged.delivery.MAPPED_LIMIT`` does."""


class CompactEncoder:
    """Writes compact SenML packs (``senml``'s module docstring: base names and times shared,
    what a Send carries) record by record in SenML CBOR, keeping what a record's name encodes
    to from one pack to the next.

    ``records`` gives each record's map as its own bytes, exactly those cbor2 writes for it;
    ``CODEC.pack`` joins them, or a leading run of them, which is a pack of its own (a base
    name chosen with a later record in view still resolves every name before it): a leading
    run's size is a sum, its payload a join, and Delivery measures a batch at a length or two
    before it settles on one.

    Why it is shaped as it is: a Send's batch is mostly readings of a few hundred paths, each
    with a ``time.time()`` of its own, so nearly every record is ``{n, bt, v}`` with its name
    under the base name the previous record left, a float time and a float value. Each name's
    ``n`` field is encoded once per base name and kept (``_entry``: by the name's text, whose
    hash Python keeps with the string, and Delivery hands the same strings batch after batch),
    and such a record is one lookup, the series rule's test, and one ``struct`` write of its
    time and value after that kept prefix, with no call per field and no map built. A node
    clock's record, whole seconds after the base time (``{n, t, v}``, a buffered series), is
    that prefix less its ``bt`` too, its ``t`` and one write of its value. Every other record
    takes the general path (``_record``). A name found under the current base name
    resolves under it (it did when it was kept there), so only the series rule is left to
    test for it before ``senml.base_name`` decides. Floats keep their 9 bytes: cbor2 shortens
    them only in its canonical mode, for floats that rarely fit in fewer bytes (21.37 does
    not), and the bytes are cbor2's."""

    def __init__(self) -> None:
        self._known: dict[str, dict[str, bytes]] = {}
        """Each base name's names encoded under it."""
        self._size = 0

    def records(self, names: Sequence[str], records: Sequence[Record]) -> list[bytes]:
        """Each record of the compact pack of ``records`` (checked already) named ``names`` as
        its CBOR map's bytes."""
        out = self._records(names, records, timed=True)
        if out is None:  # some record has no time: absolute times and no ``bt``
            out = self._records(names, records, timed=False)
            assert out is not None, "only a timed pack stops at a record with no time"
        return out

    def _records(
        self, names: Sequence[str], records: Sequence[Record], *, timed: bool
    ) -> list[bytes] | None:
        """``records``'s maps, None when ``timed`` and a record has no time."""
        bn = ""
        known: dict[str, bytes] = {}  # the names under bn: none under no base name
        bt: float = math.nan  # no time is a whole number of seconds after it: the first sets it
        series = len(names) - 2  # a run of three may begin before this index
        write, write_value, number, float_ = _TIME_AND_VALUE, _VALUE, _NUMBER_FLOAT, float
        out: list[bytes] = []
        append = out.append
        for i, name in enumerate(names):
            try:
                entry: bytes | None = known[name]
            except KeyError:  # a name not (yet) kept under bn
                entry = None
            new_bn: str | None = None
            if entry is None or (
                i < series and name == names[i + 1] and name == names[i + 2] and name != bn
            ):
                new_bn = base_name(names, i, bn)
                if new_bn is not None:
                    bn, known = new_bn, self._under(new_bn)
                entry = known.get(name) or self._entry(known, bn, name)
            rec = records[i]
            time, value = rec.time, rec.value
            new_bt: float | None = None
            t: float | None = None
            if not timed:
                t = time
            elif time is None:
                return None
            elif (time - bt) % 1.0:  # not a whole number of seconds apart (or not finite)
                bt = new_bt = time
                if (
                    new_bn is None
                    and type(time) is type(value) is float_
                    and (time - time) + (value - value) == 0.0  # both finite
                ):  # the common record: {n, bt, v} with two floats, in one write
                    append(entry + write(time, number, value))
                    continue
            else:
                rel = relative(time, bt)
                if rel is None:
                    bt = new_bt = time
                elif rel:
                    t = rel
                    if new_bn is None and type(value) is float_ and value - value == 0.0:
                        # a node clock's: {n, t, v}, t a small integer (``relative``)
                        append(entry[:-2] + _T_KEY + _int(rel) + write_value(number, value))
                        continue
            n = entry[1:-2]  # the entry's n field, between its map head and bt's heads
            append(_record(new_bn, n, new_bt, t, name, value))
        return out

    def _under(self, bn: str) -> dict[str, bytes]:
        """The names kept encoded under ``bn``."""
        known = self._known.get(bn)
        if known is None:
            known = self._known[bn] = {}
        return known

    def _entry(self, known: dict[str, bytes], bn: str, name: str) -> bytes:
        """Encode ``name`` under ``bn`` (which it resolves under) and keep it in ``known``,
        the names under ``bn`` (past ``NAMES_LIMIT``, after letting go of all kept so far):
        what the common record (``_records``) starts with, its map's head (2 fields, or 3
        with an ``n``), its ``n`` field, and its ``bt``'s label and float head (0xfb)."""
        if self._size >= NAMES_LIMIT:
            known.clear()
            self._known = {bn: known}
            self._size = 0
        n = _N_KEY + _text(name[len(bn) :]) if name != bn else b""
        entry = known[name] = _MAP_HEADS[3 if n else 2] + n + _BT_FLOAT
        self._size += 1
        return entry


def _record(
    bn: str | None, n: bytes, bt: float | None, t: float | None, name: str, value: Value
) -> bytes:
    """A compact pack's record as its map's bytes, any of its fields absent (None, or an
    empty ``n``, the name's ``n`` field as encoded already)."""
    fields, count = b"", 1
    if bn is not None:
        fields, count = _BN_KEY + _text(bn), 2
    if n:
        fields, count = fields + n, count + 1
    if bt is not None:
        fields, count = fields + _BT_KEY + _item(bt), count + 1
    if t is not None:
        fields, count = fields + _T_KEY + _item(t), count + 1
    label, out = compact_value(name, value, _TYPE_LABELS, DIALECT)
    return _MAP_HEADS[count] + fields + _VALUE_KEYS[label] + _item(out)


CODEC = SenMLCborCodec()
