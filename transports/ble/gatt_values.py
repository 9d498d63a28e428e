"""GATT characteristic values of the standard services, decoded into node-local records.

Sans-I/O: bytes in, ``Record``s at the node's own paths out. The layouts and scalings are those
of the Bluetooth GATT Specification Supplement (GSS):

| characteristic | GSS format | node path |
|---|---|---|
| 0x2A29 Manufacturer Name | utf8s | /3/0/0 |
| 0x2A24 Model Number | utf8s | /3/0/1 |
| 0x2A25 Serial Number | utf8s | /3/0/2 |
| 0x2A26 Firmware Revision | utf8s | /3/0/3 |
| 0x2A27 Hardware Revision | utf8s | /3/0/18 |
| 0x2A28 Software Revision | utf8s | /3/0/19 |
| 0x2A19 Battery Level | uint8, % (0..100) | /3/0/9 |
| 0x2A6E Temperature | sint16, 0.01 °C; 0x8000 "value is not known" | /3303/0/5700 (°C) |
| 0x2A6F Humidity | uint16, 0.01 %; 0xFFFF "value is not known" | /3304/0/5700 (%RH) |
| 0x2A6D Pressure | uint32, 0.1 Pa | /3315/0/5700 (hPa) |

A "value is not known" reading yields no record (the resource keeps its last value rather than
showing a made-up one). Anything else that is not a valid value raises ``GattDecodeError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bridged.objects.ids import BATTERY_PATH, DEVICE_PATH, SINGLE, Device, Ipso, IpsoResource
from bridged.objects.paths import Path
from bridged.objects.values import Record

BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"


class GattDecodeError(ValueError):
    """A characteristic value that is not what the GSS allows (length, range, encoding)."""


def full_uuid(uuid: str) -> str:
    """The 128-bit form of a 16- or 32-bit SIG UUID ("2a19" → "00002a19-0000-1000-..."), and
    the lowercase form of a 128-bit one; the form BlueZ and bleak use."""
    u = uuid.lower().removeprefix("0x")
    if len(u) in (4, 8) and all(c in "0123456789abcdef" for c in u):
        return f"{u:0>8}{BASE_UUID_SUFFIX}"
    return u


MANUFACTURER_NAME = full_uuid("2a29")
MODEL_NUMBER = full_uuid("2a24")
SERIAL_NUMBER = full_uuid("2a25")
FIRMWARE_REVISION = full_uuid("2a26")
HARDWARE_REVISION = full_uuid("2a27")
SOFTWARE_REVISION = full_uuid("2a28")
BATTERY_LEVEL = full_uuid("2a19")
TEMPERATURE = full_uuid("2a6e")
HUMIDITY = full_uuid("2a6f")
PRESSURE = full_uuid("2a6d")

DEVICE_INFORMATION_SERVICE = full_uuid("180a")
BATTERY_SERVICE = full_uuid("180f")
ENVIRONMENTAL_SENSING_SERVICE = full_uuid("181a")

TEMPERATURE_UNKNOWN = -0x8000
HUMIDITY_UNKNOWN = 0xFFFF


def _int(value: bytes, size: int, signed: bool, name: str) -> int:
    if len(value) != size:
        raise GattDecodeError(f"{name} takes {size} bytes, not {len(value)}")
    return int.from_bytes(value, "little", signed=signed)


def _string(path: Path, name: str) -> Callable[[bytes], Record | None]:
    def decode(value: bytes) -> Record | None:
        # Many nodes pad their strings with NULs to a fixed length; GSS utf8s has no terminator.
        try:
            text = value.rstrip(b"\x00").decode("utf-8")
        except UnicodeDecodeError as e:
            raise GattDecodeError(f"{name} is not UTF-8: {value!r}") from e
        return Record(path, text) if text else None

    return decode


def _battery(value: bytes) -> Record | None:
    level = _int(value, 1, False, "Battery Level")
    if level > 100:
        raise GattDecodeError(f"Battery Level {level} is outside 0..100 %")
    return Record(BATTERY_PATH, level)


def _temperature(value: bytes) -> Record | None:
    raw = _int(value, 2, True, "Temperature")
    if raw == TEMPERATURE_UNKNOWN:
        return None
    if raw < -27315:
        raise GattDecodeError(f"Temperature {raw / 100} °C is below absolute zero")
    return Record(Path((Ipso.TEMPERATURE, SINGLE, IpsoResource.SENSOR_VALUE)), raw / 100)


def _humidity(value: bytes) -> Record | None:
    raw = _int(value, 2, False, "Humidity")
    if raw == HUMIDITY_UNKNOWN:
        return None
    if raw > 10000:
        raise GattDecodeError(f"Humidity {raw / 100} % is above 100 %")
    return Record(Path((Ipso.HUMIDITY, SINGLE, IpsoResource.SENSOR_VALUE)), raw / 100)


def _pressure(value: bytes) -> Record | None:
    # 0.1 Pa steps; 1 hPa = 100 Pa = 1000 steps
    return Record(
        Path((Ipso.BAROMETER, SINGLE, IpsoResource.SENSOR_VALUE)),
        _int(value, 4, False, "Pressure") / 1000,
    )


DECODERS: Mapping[str, Callable[[bytes], Record | None]] = {
    MANUFACTURER_NAME: _string(DEVICE_PATH.child(Device.MANUFACTURER), "Manufacturer Name"),
    MODEL_NUMBER: _string(DEVICE_PATH.child(Device.MODEL_NUMBER), "Model Number"),
    SERIAL_NUMBER: _string(DEVICE_PATH.child(Device.SERIAL_NUMBER), "Serial Number"),
    FIRMWARE_REVISION: _string(DEVICE_PATH.child(Device.FIRMWARE_VERSION), "Firmware Revision"),
    HARDWARE_REVISION: _string(DEVICE_PATH.child(Device.HARDWARE_VERSION), "Hardware Revision"),
    SOFTWARE_REVISION: _string(DEVICE_PATH.child(Device.SOFTWARE_VERSION), "Software Revision"),
    BATTERY_LEVEL: _battery,
    TEMPERATURE: _temperature,
    HUMIDITY: _humidity,
    PRESSURE: _pressure,
}
"""Every characteristic this module decodes, by full UUID."""


def decodable(char_uuid: str) -> bool:
    return full_uuid(char_uuid) in DECODERS


def decode(char_uuid: str, value: bytes, time: float | None = None) -> tuple[Record, ...]:
    """The records a characteristic's value gives: one, or none for "value is not known".

    ``time`` stamps the records (None: now). Raises GattDecodeError for a characteristic this
    module does not know and for a value the GSS does not allow.
    """
    decoder = DECODERS.get(full_uuid(char_uuid))
    if decoder is None:
        raise GattDecodeError(f"no decoder for characteristic {char_uuid}")
    record = decoder(bytes(value))
    if record is None:
        return ()
    return (Record(record.path, record.value, time),)
