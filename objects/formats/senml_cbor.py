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
    Item,
    decode_pack,
    decode_path_list,
    encode_compact,
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


class SenMLCborCodec:
    """The SenML CBOR codec (see ``formats.Codec`` and ``formats.CompositeCodec``)."""

    content_format = ContentFormat.SENML_CBOR
    timed = True

    def encode(self, records: Sequence[Record], base: Path, definitions: Definitions) -> bytes:
        return _dump(encode_pack(records, base, DIALECT))

    def compact_items(self, records: Sequence[Record]) -> list[Item]:
        """The items of a composite pack of ``records`` with base names and times shared (a
        Send's, see ``senml.encode_compact``); ``dump`` encodes them, or a leading run of them,
        which is a pack of its own (a base name chosen with a later record in view still
        resolves every name before it)."""
        return encode_compact(records, DIALECT)

    def dump(self, items: Sequence[Item]) -> bytes:
        """Items as a SenML CBOR pack. Floats keep their 9 bytes: cbor2 shortens them only in
        its canonical mode, which also sorts every map's keys and costs four times the
        encoding, for floats that rarely fit in fewer bytes (21.37 does not)."""
        return _dump(list(items))

    def decode(self, payload: bytes, base: Path, definitions: Definitions) -> list[Record]:
        return decode_pack(_load(payload), base, definitions, DIALECT)

    def encode_paths(self, paths: Sequence[Path]) -> bytes:
        return _dump(encode_path_list(paths, DIALECT))

    def decode_paths(self, payload: bytes) -> list[Path]:
        return decode_path_list(_load(payload), DIALECT)


CODEC = SenMLCborCodec()
