"""LwM2M JSON (Content-Format 11543), the LwM2M 1.0 JSON format (OMA-TS LwM2M 1.0 §6.4.4).

``{"bn": "/3/0/", "bt": 25462634, "e": [{"n": "0", "sv": "Open Mobile Alliance"}, ...]}``:
SenML's model under older labels, with the base name and base time once at the top instead of
inside the records. Values travel as ``v`` (numbers), ``bv`` (Boolean), ``ov`` (Objlnk
"oid:iid") and ``sv`` (String, Corelnk, and Opaque as standard padded base64, as Leshan's
encoder writes it). Names follow the ``senml`` convention, relative to ``bn``; a time is
``bt + t``. Not a composite format: it has no path lists.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from ..definitions import Definitions, ResourceType
from ..errors import DecodeError
from ..paths import Path
from ..values import Record
from . import ContentFormat
from .senml import Dialect, Item, b64decode, decode_pack, encode_entries, number, text
from .senml_json import dump_json, load_json


def _b64_encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64_decode(raw: object) -> bytes:
    return b64decode(raw, urlsafe=False)


DIALECT = Dialect(
    name="LwM2M JSON",
    n="n",
    t="t",
    values={
        ResourceType.STRING: "sv",
        ResourceType.CORELNK: "sv",
        ResourceType.OPAQUE: "sv",
        ResourceType.INTEGER: "v",
        ResourceType.UNSIGNED: "v",
        ResourceType.FLOAT: "v",
        ResourceType.TIME: "v",
        ResourceType.BOOLEAN: "bv",
        ResourceType.OBJLNK: "ov",
    },
    opaque_out=_b64_encode,
    opaque_in=_b64_decode,
)


class LwM2MJsonCodec:
    """The LwM2M JSON codec (see ``formats.Codec``)."""

    content_format = ContentFormat.LWM2M_JSON
    timed = True

    def encode(self, records: Sequence[Record], base: Path, definitions: Definitions) -> bytes:
        bn, entries = encode_entries(records, base, DIALECT)
        document: dict[str, str | list[Item]] = {"bn": bn, "e": entries} if bn else {"e": entries}
        return dump_json(document, DIALECT.name)

    def decode(self, payload: bytes, base: Path, definitions: Definitions) -> list[Record]:
        document = load_json(payload, DIALECT.name)
        if type(document) is not dict or "e" not in document:
            raise DecodeError('an LwM2M JSON payload is an object with an "e" array')
        bn = text(document["bn"], "base name") if "bn" in document else ""
        bt = number(document["bt"], "base time") if "bt" in document else None
        return decode_pack(document["e"], base, definitions, DIALECT, base_name=bn, base_time=bt)


CODEC = LwM2MJsonCodec()
