"""SenML JSON (Content-Format 110): the SenML model of ``senml`` in RFC 8428 JSON.

The JSON helpers here are also LwM2M JSON's: both formats want the same strict reading (UTF-8
only, no NaN or Infinity, no duplicate keys) and the same compact, exact writing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

from ..definitions import Definitions, ResourceType
from ..errors import DecodeError, NotAcceptable
from ..paths import Path
from ..values import Record
from . import ContentFormat
from .senml import (
    Dialect,
    b64decode,
    decode_pack,
    decode_path_list,
    encode_pack,
    encode_path_list,
)


def load_json(payload: bytes, what: str) -> object:
    """Parse a JSON payload strictly; DecodeError for anything that is not plain JSON.

    The stdlib parser accepts NaN and Infinity, and keeps the last of duplicate keys; both
    would let a malformed payload through with a guessed meaning, so both are refused.
    """
    try:
        return json.loads(
            payload.decode("utf-8"),
            parse_constant=_refuse_constant,
            object_pairs_hook=_unique_keys,
        )
    except (ValueError, RecursionError) as e:
        raise DecodeError(f"{what} payload is not valid JSON: {e}") from None


def dump_json(document: object, what: str) -> bytes:
    """Serialize compactly; floats as ``repr`` so they read back exactly.

    A NaN or infinite float has no JSON form, and a lone surrogate no UTF-8 form: the format
    cannot represent such a read, hence NotAcceptable (4.06).
    """
    try:
        return json.dumps(
            document, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except ValueError as e:
        raise NotAcceptable(f"{what} cannot carry this value: {e}") from None


def _refuse_constant(name: str) -> object:
    raise DecodeError(f"JSON has no {name}")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise DecodeError("a JSON object repeats a key")
    return obj


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(raw: object) -> bytes:
    return b64decode(raw, urlsafe=True)


DIALECT = Dialect(
    name="SenML JSON",
    n="n",
    t="t",
    values={
        ResourceType.STRING: "vs",
        ResourceType.CORELNK: "vs",
        ResourceType.INTEGER: "v",
        ResourceType.UNSIGNED: "v",
        ResourceType.FLOAT: "v",
        ResourceType.TIME: "v",
        ResourceType.BOOLEAN: "vb",
        ResourceType.OPAQUE: "vd",
        ResourceType.OBJLNK: "vlo",
    },
    opaque_out=_b64url_encode,
    opaque_in=_b64url_decode,
    bn="bn",
    bt="bt",
    bv="bv",
    bver="bver",
    refused=frozenset({"s", "bs"}),
)


class SenMLJsonCodec:
    """The SenML JSON codec (see ``formats.Codec`` and ``formats.CompositeCodec``)."""

    content_format = ContentFormat.SENML_JSON
    timed = True

    def encode(self, records: Sequence[Record], base: Path, definitions: Definitions) -> bytes:
        return dump_json(encode_pack(records, base, DIALECT), DIALECT.name)

    def decode(self, payload: bytes, base: Path, definitions: Definitions) -> list[Record]:
        return decode_pack(load_json(payload, DIALECT.name), base, definitions, DIALECT)

    def encode_paths(self, paths: Sequence[Path]) -> bytes:
        return dump_json(encode_path_list(paths, DIALECT), DIALECT.name)

    def decode_paths(self, payload: bytes) -> list[Path]:
        return decode_path_list(load_json(payload, DIALECT.name), DIALECT)


CODEC = SenMLJsonCodec()
