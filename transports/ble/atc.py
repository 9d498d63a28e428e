"""The two custom formats of thermometer firmware (LYWSD03MMC and kin): ATC1441 and pvvx.

Both are service data for the 16-bit UUID 0x181A (Environmental Sensing) and are told apart by
length:

* ATC1441, 13 bytes, big-endian: MAC (6, as printed), temperature s16 x 0.1 °C, humidity u8 %,
  battery u8 %, battery u16 mV, frame counter u8.
* pvvx "custom", 15 bytes, little-endian: MAC (6, least significant first), temperature
  s16 x 0.01 °C, humidity u16 x 0.01 %, battery u16 mV, battery u8 %, counter u8, flags u8
  (the firmware's trigger and reed-switch bits, not mapped).

Other lengths on 0x181A (pvvx's encrypted variants, other firmware) are not these formats:
``decode`` returns None for them. The frame counter is the packet ID for dedupe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .advert_data import ServiceData, Where
from .errors import MalformedAdvert
from .measurements import Frame, Measurement

UUID = "0000181a-0000-1000-8000-00805f9b34fb"
WHERE = ServiceData(UUID)
ATC1441_LENGTH = 13
PVVX_LENGTH = 15


def _battery(percent: int) -> Measurement:
    if percent > 100:
        raise MalformedAdvert(f"battery {percent} % is outside 0..100")
    return Measurement("battery", percent, "%")


def decode_atc1441(data: bytes) -> Frame:
    if len(data) != ATC1441_LENGTH:
        raise MalformedAdvert(f"ATC1441 is {ATC1441_LENGTH} bytes, got {len(data)}")
    temperature = int.from_bytes(data[6:8], "big", signed=True)
    return Frame(
        (
            Measurement("temperature", round(temperature * 0.1, 1), "Cel"),
            Measurement("humidity", data[8], "%RH"),
            _battery(data[9]),
            Measurement("voltage", int.from_bytes(data[10:12], "big") / 1000, "V"),
        ),
        packet_id=data[12],
    )


def decode_pvvx(data: bytes) -> Frame:
    if len(data) != PVVX_LENGTH:
        raise MalformedAdvert(f"pvvx custom is {PVVX_LENGTH} bytes, got {len(data)}")
    temperature = int.from_bytes(data[6:8], "little", signed=True)
    humidity = int.from_bytes(data[8:10], "little")
    return Frame(
        (
            Measurement("temperature", round(temperature * 0.01, 2), "Cel"),
            Measurement("humidity", round(humidity * 0.01, 2), "%RH"),
            _battery(data[12]),
            Measurement("voltage", int.from_bytes(data[10:12], "little") / 1000, "V"),
        ),
        packet_id=data[13],
    )


@dataclass(frozen=True, slots=True)
class CustomFormat:
    """ATC1441 or pvvx as an advert format (formats.py): service data of 0x181A of its length."""

    name: str
    length: int
    read: Callable[[bytes], Frame]
    where: Where = WHERE

    def decode(self, data: bytes, address: str, bindkey: bytes | None) -> Frame | None:
        return self.read(data) if len(data) == self.length else None


ATC1441 = CustomFormat("atc1441", ATC1441_LENGTH, decode_atc1441)
PVVX = CustomFormat("pvvx", PVVX_LENGTH, decode_pvvx)


def decode(data: bytes) -> tuple[str, Frame] | None:
    """The profile ("atc1441" or "pvvx") and frame of 0x181A service data, or None for a
    length that is neither format."""
    for custom in (ATC1441, PVVX):
        if len(data) == custom.length:
            return custom.name, custom.read(data)
    return None
