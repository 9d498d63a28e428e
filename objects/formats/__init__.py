"""Content formats: how records and paths travel in CoAP payloads.

Every codec has the same contract (``Codec``):

``encode(records, base, definitions) -> bytes``
    ``records`` are the values of a read of ``base`` (a path at any level, or the root for a
    composite read), in path order; each record's path is a resource (/o/i/r) or resource
    instance (/o/i/r/ri) path that ``base`` contains. A multi-instance resource's values are
    resource-instance records. A format that cannot represent this read raises NotAcceptable
    (4.06); text/plain, opaque and plain CBOR carry exactly one value at exactly ``base``.

``decode(payload, base, definitions) -> list[Record]``
    The inverse, for a write or create on ``base``. Values come back typed by their
    ``definitions``. Bad bytes raise DecodeError (4.00), a name outside ``base``
    BadRequest (4.00), an unknown object or resource NotFound (4.04), a format that cannot carry
    this target UnsupportedContentFormat (4.15). Nothing else escapes.

Composite-capable formats (SenML JSON, SenML CBOR, LwM2M CBOR) also encode and decode the
plain path lists of Read-Composite and Observe-Composite requests (``CompositeCodec``). A codec
says whether its records carry the time a value was measured (``timed``): only those can carry
a notification's time series (``bridged.engine.series``).

What a format can do is said by its codec, and nowhere else: a new format is its codec module
here and one line, its number and module, in ``ContentFormat``; the engine serves it for every
operation (Read, Write, Observe, composite ones when it is a ``CompositeCodec``) with no edit.

Codec modules are imported on first use, so a daemon that speaks only SenML CBOR never loads
the others.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from enum import IntEnum
from typing import Protocol, cast, runtime_checkable

from ..definitions import Definitions
from ..errors import NotAcceptable, UnsupportedContentFormat
from ..paths import Path
from ..values import Record


class ContentFormat(IntEnum):
    """CoAP Content-Format numbers of the LwM2M formats, each with its codec's module."""

    module: str | None
    """The module of this package whose ``CODEC`` encodes and decodes the format; None for link
    format, which carries links, not records (``bridged.objects.linkformat``)."""

    def __new__(cls, number: int, module: str | None = None) -> ContentFormat:
        member = int.__new__(cls, number)
        member._value_ = number
        member.module = module
        return member

    TEXT = 0, "text"
    LINK_FORMAT = 40, None
    OPAQUE = 42, "opaque"
    CBOR = 60, "plain_cbor"
    SENML_JSON = 110, "senml_json"
    SENML_CBOR = 112, "senml_cbor"
    TLV = 11542, "tlv"
    LWM2M_JSON = 11543, "lwm2m_json"
    LWM2M_CBOR = 11544, "lwm2m_cbor"


class Codec(Protocol):
    """Encodes and decodes records for one content format (see the module docstring)."""

    @property
    def content_format(self) -> ContentFormat: ...

    @property
    def timed(self) -> bool:
        """Whether each record carries the time its value was measured (SenML's ``t``)."""
        ...

    def encode(self, records: Sequence[Record], base: Path, definitions: Definitions) -> bytes: ...

    def decode(self, payload: bytes, base: Path, definitions: Definitions) -> list[Record]: ...


@runtime_checkable
class CompositeCodec(Codec, Protocol):
    """A codec that also carries the path lists of composite requests."""

    def encode_paths(self, paths: Sequence[Path]) -> bytes: ...

    def decode_paths(self, payload: bytes) -> list[Path]: ...


def announced_formats(lwm2m_version: str) -> tuple[ContentFormat, ...]:
    """The formats a Register's root link announces (``ct``) to a server of ``lwm2m_version``.

    ``ct`` names the optional formats the client supports (Core 1.1.1 §6.2.1: "If the LwM2M
    Client supports optional data formats, it MAY inform the LwM2M Server ... using the ct=
    link attribute"; 1.2 shows ``ct="110 112 60"``), so that a server knows what it can ask
    for. A 1.0 server knows TLV, text and opaque without being told, and LwM2M JSON (11543)
    only when the root link says ``ct=11543`` (Core 1.0); SenML, plain and LwM2M CBOR do not
    exist for it, and a server that reads in a format it was told of but cannot decode gets
    nothing. A 1.1 client must support text, opaque and link format, should support SenML CBOR
    or JSON, may support plain CBOR, and should not use the legacy TLV and LwM2M JSON (Core
    1.1.1 §7.4): it announces SenML CBOR first, the format it prefers, then SenML JSON and plain
    CBOR. The legacy formats are served when asked for, not offered, and LwM2M CBOR (11544) is
    LwM2M 1.2, unknown to a 1.1 server.
    """
    if lwm2m_version == "1.0":
        return (ContentFormat.LWM2M_JSON,)
    return (ContentFormat.SENML_CBOR, ContentFormat.SENML_JSON, ContentFormat.CBOR)


@functools.lru_cache(maxsize=32)
def codec_for(content_format: int) -> Codec:
    """The codec for a Content-Format number; UnsupportedContentFormat (4.15) if none.

    Asked for every request with a payload or an Accept, and every reply: each answer is kept
    (a miss raises, so only the few data formats are)."""
    try:
        name = ContentFormat(content_format).module
    except ValueError:
        name = None
    if name is None:
        raise UnsupportedContentFormat(f"content format {content_format} is not a data format")
    module = importlib.import_module(f"{__name__}.{name}")
    return cast(Codec, module.CODEC)


def composite_codec_for(content_format: int) -> CompositeCodec:
    """The codec for a composite request; UnsupportedContentFormat if it cannot carry one."""
    codec = codec_for(content_format)
    if not isinstance(codec, CompositeCodec):
        raise UnsupportedContentFormat(
            f"content format {content_format} cannot carry a composite operation"
        )
    return codec


@functools.lru_cache(maxsize=32)
def carries_time(content_format: int | None) -> bool:
    """Whether records in ``content_format`` carry their time: False for no format, for one
    that is not a data format, and for a codec that has no time field.

    Asked for every observation a reading may go to, so each answer is kept (it never changes).
    """
    if content_format is None:
        return False
    try:
        return codec_for(content_format).timed
    except UnsupportedContentFormat:
        return False


def acceptable_for(content_format: int) -> Codec:
    """The codec for an Accept option: like ``codec_for``, but a miss is 4.06, not 4.15."""
    try:
        return codec_for(content_format)
    except UnsupportedContentFormat as e:
        raise NotAcceptable(str(e)) from None
