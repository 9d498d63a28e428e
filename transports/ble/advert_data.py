"""One advert as the scanner hands it on (the raw data BlueZ reported, before any decoding), the
two places in it where an advert format's bytes are found, and what an advert format is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from .measurements import Frame


@dataclass(frozen=True)
class RawAdvert:
    """An advert heard by a scanner.

    ``service_data`` is keyed by the full 128-bit service UUID as BlueZ reports it
    ("0000fcd2-0000-1000-8000-00805f9b34fb"), ``manufacturer_data`` by the company ID; ``time`` is
    when the scanner received it (the scanner's clock, seconds). Decoders turn it into records.
    """

    address: str
    name: str | None
    rssi: int | None
    service_data: Mapping[str, bytes]
    manufacturer_data: Mapping[int, bytes]
    time: float


@dataclass(frozen=True, slots=True)
class ServiceData:
    """A format carried as service data of ``uuid`` (full 128-bit form, as BlueZ reports it)."""

    uuid: str

    def find(self, advert: RawAdvert) -> bytes | None:
        return advert.service_data.get(self.uuid)


@dataclass(frozen=True, slots=True)
class ManufacturerData:
    """A format carried as manufacturer data of ``company_id`` (without the ID, as bleak gives
    it)."""

    company_id: int

    def find(self, advert: RawAdvert) -> bytes | None:
        return advert.manufacturer_data.get(self.company_id)


Where = ServiceData | ManufacturerData
"""Where in an advert a format's bytes are: the one thing a format is matched on."""


class AdvertFormat(Protocol):
    """One advert format, as ``FORMATS`` (formats.py) lists it and ``AdvertDecoder`` uses it.

    ``where`` says which bytes of an advert are the format's; ``decode`` gets those bytes, the
    advert's address and the node's bind key (None for a node without one; a format that
    encrypts needs both, the others ignore them) and returns the frame, or None when the bytes
    are not this format after all (another version or length under the same key: the next
    format of ``FORMATS`` is tried). It is stateless and raises only ``AdvertDecodeError``
    subclasses (errors.py); replay protection, downgrade refusal, dedupe and the mapping to
    records are the decoder's, the same for every format.
    """

    @property
    def name(self) -> str:
        """The profile the node is heard with ("bthome", "ruuvi", ...)."""
        ...

    @property
    def where(self) -> Where: ...

    def decode(self, data: bytes, address: str, bindkey: bytes | None) -> Frame | None: ...
