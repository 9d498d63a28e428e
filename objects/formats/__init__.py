"""Content formats: how records and paths travel in CoAP payloads.

Every codec has the same contract (``Codec``):

``encode(records, base, registry) -> bytes``
    ``records`` are the values of a read of ``base`` (a path at any level, or the root for a
    composite read), in path order; each record's path is a resource (/o/i/r) or resource
    instance (/o/i/r/ri) path that ``base`` contains. A multi-instance resource's values are
    resource-instance records. A format that cannot represent this read raises NotAcceptable
    (4.06); text/plain, opaque and plain CBOR carry exactly one value at exactly ``base``.

``decode(payload, base, registry) -> list[Record]``
    The inverse, for a write or create on ``base``. Values come back typed by their
    definitions in ``registry``. Bad bytes raise DecodeError (4.00), a name outside ``base``
    BadRequest (4.00), an unknown object or resource NotFound (4.04), a format that cannot carry
    this target UnsupportedContentFormat (4.15). Nothing else escapes.

What a format can carry beyond values is its row in one table, ``FORMATS``: composite-capable
formats (SenML JSON, SenML CBOR, LwM2M CBOR) also encode and decode the plain path lists of
Read-Composite and Observe-Composite requests (``CompositeCodec``); timed formats (SenML JSON,
SenML CBOR, LwM2M JSON) carry the time each value was measured, so a notification in one can
carry a series of stored readings (``bridged.engine.series``). TLV, text, opaque, plain and
LwM2M CBOR have no time field: a value in them means "now".

Codec modules are imported on first use, so a daemon that speaks only SenML CBOR never loads
the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol, cast

from ..definitions import Registry
from ..errors import NotAcceptable, UnsupportedContentFormat
from ..paths import Path
from ..values import Record


class ContentFormat(IntEnum):
    """CoAP Content-Format numbers of the LwM2M formats."""

    TEXT = 0
    LINK_FORMAT = 40
    OPAQUE = 42
    CBOR = 60
    SENML_JSON = 110
    SENML_CBOR = 112
    TLV = 11542
    LWM2M_JSON = 11543
    LWM2M_CBOR = 11544


class Codec(Protocol):
    """Encodes and decodes records for one content format (see the module docstring)."""

    @property
    def content_format(self) -> ContentFormat: ...

    def encode(self, records: Sequence[Record], base: Path, registry: Registry) -> bytes: ...

    def decode(self, payload: bytes, base: Path, registry: Registry) -> list[Record]: ...


class CompositeCodec(Codec, Protocol):
    """A codec that also carries the path lists of composite requests."""

    def encode_paths(self, paths: Sequence[Path]) -> bytes: ...

    def decode_paths(self, payload: bytes) -> list[Path]: ...


@dataclass(frozen=True, slots=True)
class Capabilities:
    """One data format's row: its codec module and what it can carry beyond values."""

    module: str
    """The codec's module in this package, imported on first use."""
    composite: bool = False
    """Carries the path lists of composite requests (``CompositeCodec``)."""
    timed: bool = False
    """Carries the time each value was measured (a series of readings)."""


FORMATS: Mapping[ContentFormat, Capabilities] = {
    ContentFormat.TEXT: Capabilities("text"),
    ContentFormat.OPAQUE: Capabilities("opaque"),
    ContentFormat.CBOR: Capabilities("plain_cbor"),
    ContentFormat.TLV: Capabilities("tlv"),
    ContentFormat.LWM2M_JSON: Capabilities("lwm2m_json", timed=True),
    ContentFormat.SENML_JSON: Capabilities("senml_json", composite=True, timed=True),
    ContentFormat.SENML_CBOR: Capabilities("senml_cbor", composite=True, timed=True),
    ContentFormat.LWM2M_CBOR: Capabilities("lwm2m_cbor", composite=True),
}
"""Every data format the gateway speaks (link format is not one: it carries no values)."""


def _capabilities(content_format: int | None) -> Capabilities | None:
    if content_format is None or content_format not in FORMATS:
        return None
    return FORMATS[ContentFormat(content_format)]


def is_composite(content_format: int | None) -> bool:
    """Whether ``content_format`` can carry a composite request's path list."""
    found = _capabilities(content_format)
    return found is not None and found.composite


def carries_time(content_format: int | None) -> bool:
    """Whether ``content_format`` carries the time of each value, so a notification in it
    can carry a series of stored readings."""
    found = _capabilities(content_format)
    return found is not None and found.timed


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


def codec_for(content_format: int) -> Codec:
    """The codec for a Content-Format number; UnsupportedContentFormat (4.15) if none."""
    try:
        name = FORMATS[ContentFormat(content_format)].module
    except (ValueError, KeyError):
        raise UnsupportedContentFormat(
            f"content format {content_format} is not a data format"
        ) from None
    module = importlib.import_module(f"{__name__}.{name}")
    return cast(Codec, module.CODEC)


def composite_codec_for(content_format: int) -> CompositeCodec:
    """The codec for a composite request; UnsupportedContentFormat if it cannot carry one."""
    codec = codec_for(content_format)
    if not is_composite(content_format):
        raise UnsupportedContentFormat(
            f"content format {content_format} cannot carry a composite operation"
        )
    return cast(CompositeCodec, codec)


def acceptable_for(content_format: int) -> Codec:
    """The codec for an Accept option: like ``codec_for``, but a miss is 4.06, not 4.15."""
    try:
        return codec_for(content_format)
    except UnsupportedContentFormat as e:
        raise NotAcceptable(str(e)) from None
