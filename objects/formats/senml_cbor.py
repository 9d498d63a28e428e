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
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import cbor2

from ..definitions import Definitions, ResourceType
from ..errors import DecodeError, NotAcceptable
from ..paths import Path
from ..values import Record
from . import ContentFormat
from .senml import (
    Dialect,
    Label,
    compact_fields,
    decode_pack,
    decode_path_list,
    encode_pack,
    encode_path_list,
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


_KEY_FLOAT64 = struct.Struct(">BBd").pack
"""A one-byte label (an integer from -24 to 23) and a finite float after it."""
_BT_AND_VALUE = struct.Struct(">BBdBBd").pack
"""Two of them: a record's ``bt`` and its value."""

_TEXT_HEADS = [_head(0x60, length) for length in range(24)]


def _text(x: str) -> bytes:
    """Text as cbor2 writes it."""
    data = x.encode()
    size = len(data)
    return (_TEXT_HEADS[size] if size < 24 else _head(0x60, size)) + data


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

    def compact_records(self, names: Sequence[str], records: Sequence[Record]) -> list[bytes]:
        """Each record of a composite pack of ``records`` named ``names`` with base names and
        times shared (a Send's, see ``senml.compact_fields``) as its CBOR map, the bytes
        cbor2 would write for it; ``pack`` joins them, or a leading run of them, which is a
        pack of its own (a base name chosen with a later record in view still resolves every
        name before it). Built here field by field, with no map per record: a leading run's
        size is then a sum, and the pack's bytes a join. Floats keep their 9 bytes: cbor2
        shortens them only in its canonical mode, which also sorts every map's keys and costs
        four times the encoding, for floats that rarely fit in fewer bytes (21.37 does
        not)."""
        bn_key, n_key, bt_key, t_key = _BN_KEY, _N_KEY, _BT_KEY, _T_KEY
        value_keys, item, text, heads = _VALUE_KEYS, _item, _text, _MAP_HEADS
        text_heads = _TEXT_HEADS
        key_float, bt_byte, number_byte = _KEY_FLOAT64, _BT_KEY[0], _NUMBER_KEY[0]
        bt_and_value = _BT_AND_VALUE
        out: list[bytes] = []
        append = out.append
        for bn, n, bt, t, label, value in compact_fields(names, records, DIALECT):
            # The common fields (a name, a float time, a float value) with no call per field.
            fields, count = b"", 1
            if bn is not None:
                fields, count = bn_key + text(bn), 2
            if n is not None:
                data = n.encode()  # short: a node's path below the base name
                size = len(data)
                head = text_heads[size] if size < 24 else _head(0x60, size)
                fields, count = fields + n_key + head + data, count + 1
            if (
                t is None
                and type(bt) is float
                and type(value) is float
                and bt - bt == 0.0
                and value - value == 0.0
            ):  # a reading with a clock's time of its own: both floats in one write
                append(
                    heads[count + 1]
                    + fields
                    + bt_and_value(bt_byte, 0xFB, bt, number_byte, 0xFB, value)
                )
                continue
            if bt is not None:
                if type(bt) is float and bt - bt == 0.0:
                    fields += key_float(bt_byte, 0xFB, bt)
                else:
                    fields += bt_key + item(bt)
                count += 1
            if t is not None:
                fields, count = fields + t_key + item(t), count + 1
            if type(value) is float and value - value == 0.0:
                append(heads[count] + fields + key_float(number_byte, 0xFB, value))
            else:
                append(heads[count] + fields + value_keys[label] + item(value))
        return out

    @staticmethod
    def pack_size(count: int, size: int) -> int:
        """The size of a pack of ``count`` records (``compact_records``) of ``size`` bytes."""
        return len(_head(0x80, count)) + size

    @staticmethod
    def pack(records: Sequence[bytes]) -> bytes:
        """A SenML CBOR pack of records encoded by ``compact_records``."""
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
assert len(_BT_KEY) == len(_NUMBER_KEY) == 1, "one-byte labels, as _KEY_FLOAT64 writes them"
_MAP_HEADS = [_head(0xA0, count) for count in range(6)]
"""A record's map of 1 to 5 fields (``compact_fields``)."""

CODEC = SenMLCborCodec()
