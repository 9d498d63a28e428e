"""One advert as the scanner hands it on: the raw data BlueZ reported, before any decoding."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


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
