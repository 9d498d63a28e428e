"""Ruuvi RAWv2 (data format 5): RuuviTag manufacturer data under company ID 0x0499.

24 bytes, big-endian: format (5), temperature s16 x 0.005 °C, humidity u16 x 0.0025 %,
pressure u16 + 50,000 Pa, acceleration X/Y/Z s16 mG, power u16 (top 11 bits battery mV - 1600,
low 5 bits TX power (dBm + 40) / 2), movement counter u8, measurement sequence u16, MAC (6).
Each field has a "not available" value (the most negative s16, or all ones); such a field is
simply absent from the measurements. Pressure is given in hPa and acceleration in G, the units
the node's objects use (see measurements.py); the sequence number is the frame's packet ID.
"""

from __future__ import annotations

import struct
from typing import Final

from .advert_data import ManufacturerData
from .errors import MalformedAdvert
from .measurements import Frame, Measurement

COMPANY_ID = 0x0499
FORMAT = 5
LENGTH = 24

_LAYOUT = struct.Struct(">hHHhhhHBH")
"""Temperature, humidity, pressure, acceleration X/Y/Z, power, movement, sequence."""
_S16_NA = -0x8000
_U16_NA = 0xFFFF


def is_rawv2(data: bytes) -> bool:
    """True for manufacturer data that claims data format 5 (whatever its length)."""
    return len(data) > 0 and data[0] == FORMAT


def decode(data: bytes) -> Frame:
    """Decode RAWv2 manufacturer data (without the company ID, as bleak gives it)."""
    if len(data) != LENGTH or data[0] != FORMAT:
        raise MalformedAdvert(
            f"Ruuvi RAWv2 is {LENGTH} bytes starting 05, got {data[:1].hex()} and {len(data)} bytes"
        )
    (temperature, humidity, pressure, x, y, z, power, movement, sequence) = _LAYOUT.unpack_from(
        data, 1
    )
    out: list[Measurement] = []
    if temperature != _S16_NA:
        out.append(Measurement("temperature", round(temperature * 0.005, 3), "Cel"))
    if humidity != _U16_NA:
        out.append(Measurement("humidity", round(humidity * 0.0025, 4), "%RH"))
    if pressure != _U16_NA:
        out.append(Measurement("pressure", round((pressure + 50_000) / 100, 2), "hPa"))
    for kind, milli_g in (("acceleration_x", x), ("acceleration_y", y), ("acceleration_z", z)):
        if milli_g != _S16_NA:
            out.append(Measurement(kind, milli_g / 1000, "G"))
    battery, tx = power >> 5, power & 0x1F
    if battery != 0x7FF:
        out.append(Measurement("voltage", (battery + 1600) / 1000, "V"))
    if tx != 0x1F:
        out.append(Measurement("tx_power", tx * 2 - 40, "dBm"))
    if movement != 0xFF:
        out.append(Measurement("movement_count", movement))
    return Frame(
        tuple(out),
        packet_id=None if sequence == _U16_NA else sequence,
        packet_id_modulus=0x10000,
    )


class RawV2Format:
    """RAWv2 as an advert format (formats.py): manufacturer data of 0x0499 that claims data
    format 5; the RuuviTag's other data formats are not it."""

    name: Final = "ruuvi"
    where: Final = ManufacturerData(COMPANY_ID)

    def decode(self, data: bytes, address: str, bindkey: bytes | None) -> Frame | None:
        return decode(data) if is_rawv2(data) else None


RAWV2 = RawV2Format()
