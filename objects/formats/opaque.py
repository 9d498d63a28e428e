"""application/octet-stream (Content-Format 42): the raw bytes of one Opaque value.

Like text/plain it carries one value at exactly the request's path, and only an Opaque one:
the bytes are the value, so there is no way to say what a number or a string would be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..definitions import Definitions, ResourceType
from ..errors import NotAcceptable, UnsupportedContentFormat
from ..paths import Path
from ..values import Record
from . import ContentFormat
from .text import single_record, single_target

_NAME = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class OpaqueCodec:
    """application/octet-stream: one Opaque value, as is."""

    content_format: ContentFormat = ContentFormat.OPAQUE
    timed = False

    def encode(self, records: Sequence[Record], base: Path, definitions: Definitions) -> bytes:
        value = single_record(records, base, _NAME).value
        # Opaque is the only type whose values are bytes.
        if not isinstance(value, bytes):
            raise NotAcceptable(f"{_NAME} carries only Opaque values, and {base} is not one")
        return value

    def decode(self, payload: bytes, base: Path, definitions: Definitions) -> list[Record]:
        rdef = single_target(base, definitions, _NAME)
        if rdef.type is not ResourceType.OPAQUE:
            raise UnsupportedContentFormat(
                f"{_NAME} carries only Opaque values, and {base} is {rdef.type.value}"
            )
        return [Record(base, bytes(payload))]


CODEC = OpaqueCodec()
