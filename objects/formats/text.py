"""text/plain (Content-Format 0): one value as text, at exactly the request's path.

The payload names nothing, so it can only stand for the single value at the path itself: a
single-instance resource or one resource instance. The value's text form is ``to_text`` /
``from_text``: numbers in decimal, Boolean 0/1, Objlnk ``oid:iid``, Opaque in base64.

The application/octet-stream codec (``opaque``) has the same shape and shares the two checks
below that decide whether a single-value format can carry a request at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..definitions import Definitions, ResourceDef
from ..errors import BadRequest, DecodeError, NotAcceptable, UnsupportedContentFormat
from ..paths import Level, Path
from ..values import Record, from_text, to_text
from . import ContentFormat


def single_record(records: Sequence[Record], base: Path, format_name: str) -> Record:
    """The one record at exactly ``base``, which is all a single-value format can answer.

    Anything else (a read of an instance, of a multi-instance resource, of nothing) is 4.06:
    the server asked for a format that cannot represent this read.
    """
    if len(records) != 1 or records[0].path != base:
        raise NotAcceptable(
            f"{format_name} carries one value at the path itself; a read of {base} "
            f"has {len(records)} value(s)"
        )
    return records[0]


def single_target(base: Path, definitions: Definitions, format_name: str) -> ResourceDef:
    """The definition of the one value a single-value write to ``base`` sets.

    The codes tell the server what went wrong. An object, an instance or a multi-instance
    resource is a fine target that this format cannot carry (another format could), so the
    answer is 4.15. A resource-instance ID on a single-instance resource is a bad path whatever
    the format, so that is 4.00. An unknown object or resource is 4.04 from the definitions.
    """
    if base.level < Level.RESOURCE:
        raise UnsupportedContentFormat(f"{format_name} cannot carry a write to {base}")
    ids = base.ids
    rdef = definitions.resource(ids[0], ids[2])
    if base.level is Level.RESOURCE and rdef.multiple:
        raise UnsupportedContentFormat(
            f"{format_name} cannot carry all instances of multi-instance resource {base}"
        )
    if base.level is Level.RESOURCE_INSTANCE and not rdef.multiple:
        raise BadRequest(f"single-instance resource {base.parent} has no instances")
    return rdef


@dataclass(frozen=True, slots=True)
class TextCodec:
    """text/plain: the UTF-8 text form of one value."""

    content_format: ContentFormat = ContentFormat.TEXT
    timed = False

    def encode(self, records: Sequence[Record], base: Path, definitions: Definitions) -> bytes:
        return to_text(single_record(records, base, "text/plain").value).encode()

    def decode(self, payload: bytes, base: Path, definitions: Definitions) -> list[Record]:
        rdef = single_target(base, definitions, "text/plain")
        try:
            text = payload.decode()
        except UnicodeDecodeError as e:
            raise DecodeError(f"text/plain is UTF-8: {e.reason} at byte {e.start}") from None
        return [Record(base, from_text(rdef, text))]


CODEC = TextCodec()
