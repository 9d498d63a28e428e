"""GATT characteristic values → node-local records.

Vectors follow the Bluetooth GATT Specification Supplement (GSS v5, 2021-09-14) definitions of
each characteristic: its format (little-endian), its scaling (M, d, b) and its special values.
The Battery Level example is the Battery Service specification's 0x64 = 100 %.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.transports.ble.gatt_values import (
    BATTERY_LEVEL,
    DECODERS,
    HUMIDITY,
    PRESSURE,
    TEMPERATURE,
    GattDecodeError,
    decodable,
    decode,
    full_uuid,
)


def rec(path: str, value: object, time: float | None = None) -> tuple[Record, ...]:
    return (Record(Path.parse(path), value, time),)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("uuid", "raw", "expected"),
    [
        # Temperature 0x2A6E: sint16, M=1 d=-2 (0.01 °C); 0x8000 = value is not known
        ("2a6e", bytes.fromhex("3408"), rec("/3303/0/5700", 21.0)),
        ("2a6e", bytes.fromhex("5608"), rec("/3303/0/5700", 21.34)),
        ("2a6e", bytes.fromhex("18fc"), rec("/3303/0/5700", -10.0)),
        ("2a6e", bytes.fromhex("ff7f"), rec("/3303/0/5700", 327.67)),
        ("2a6e", bytes.fromhex("4d95"), rec("/3303/0/5700", -273.15)),
        ("2a6e", bytes.fromhex("0080"), ()),
        # Humidity 0x2A6F: uint16, 0.01 %; 0xFFFF = value is not known
        ("2a6f", bytes.fromhex("1a13"), rec("/3304/0/5700", 48.9)),
        ("2a6f", bytes.fromhex("1027"), rec("/3304/0/5700", 100.0)),
        ("2a6f", bytes.fromhex("ffff"), ()),
        # Pressure 0x2A6D: uint32, M=1 d=-1 (0.1 Pa), shown in hPa
        ("2a6d", (1013250).to_bytes(4, "little"), rec("/3315/0/5700", 1013.25)),
        ("2a6d", bytes.fromhex("a0860100"), rec("/3315/0/5700", 100.0)),
        # Battery Level 0x2A19: uint8 %
        ("2a19", b"\x64", rec("/3/0/9", 100)),
        ("2a19", b"\x00", rec("/3/0/9", 0)),
        # Device Information: utf8s, no terminator (NUL padding is tolerated)
        ("2a29", b"Bridged Labs", rec("/3/0/0", "Bridged Labs")),
        ("2a24", b"TH-1\x00\x00\x00\x00", rec("/3/0/1", "TH-1")),
        ("2a25", b"0042-7", rec("/3/0/2", "0042-7")),
        ("2a26", b"v1.2.3", rec("/3/0/3", "v1.2.3")),
        ("2a27", b"B", rec("/3/0/18", "B")),
        ("2a28", "Zephyr 3.7 \u00b5".encode(), rec("/3/0/19", "Zephyr 3.7 \u00b5")),
        ("2a29", b"", ()),
    ],
)
def test_vectors(uuid: str, raw: bytes, expected: tuple[Record, ...]) -> None:
    assert decode(uuid, raw) == expected
    assert decode(full_uuid(uuid), raw) == expected


def test_records_carry_the_reading_time() -> None:
    assert decode(TEMPERATURE, b"\x34\x08", time=1700000000.5) == rec(
        "/3303/0/5700", 21.0, 1700000000.5
    )


@pytest.mark.parametrize(
    ("uuid", "raw", "message"),
    [
        ("2a6e", b"\x34", "takes 2 bytes, not 1"),
        ("2a6e", b"\x34\x08\x00", "takes 2 bytes, not 3"),
        ("2a6e", (-27316).to_bytes(2, "little", signed=True), "below absolute zero"),
        ("2a6f", (10001).to_bytes(2, "little"), "above 100 %"),
        ("2a6d", b"\x00\x00", "takes 4 bytes"),
        ("2a19", b"\x65", "outside 0..100"),
        ("2a19", b"", "takes 1 bytes, not 0"),
        ("2a29", b"\xff\xfe", "not UTF-8"),
        ("2a37", b"\x00\x48", "no decoder"),
    ],
)
def test_invalid_values_are_refused(uuid: str, raw: bytes, message: str) -> None:
    with pytest.raises(GattDecodeError, match=message):
        decode(uuid, raw)


def test_uuid_forms() -> None:
    assert full_uuid("2A19") == BATTERY_LEVEL == "00002a19-0000-1000-8000-00805f9b34fb"
    assert full_uuid("0x2a6f") == HUMIDITY
    assert full_uuid("0000181A-0000-1000-8000-00805F9B34FB") == full_uuid("181a")
    assert decodable("2a6d") and decodable(PRESSURE)
    assert not decodable("2a37")


@given(uuid=st.sampled_from(sorted(DECODERS)), raw=st.binary(max_size=12))
def test_garbage_raises_only_the_typed_error(uuid: str, raw: bytes) -> None:
    try:
        records = decode(uuid, raw)
    except GattDecodeError:
        return
    assert len(records) <= 1


@given(st.integers(-27315, 32767))
def test_temperature_round_trips(raw: int) -> None:
    (record,) = decode(TEMPERATURE, raw.to_bytes(2, "little", signed=True))
    assert isinstance(record.value, float)
    assert round(record.value * 100) == raw


@given(st.integers(0, 10000))
def test_humidity_round_trips(raw: int) -> None:
    (record,) = decode(HUMIDITY, raw.to_bytes(2, "little"))
    assert round(record.value * 100) == raw  # type: ignore[operator]


@given(st.integers(0, 2**32 - 1))
def test_pressure_round_trips(raw: int) -> None:
    (record,) = decode(PRESSURE, raw.to_bytes(4, "little"))
    assert round(record.value * 1000) == raw  # type: ignore[operator]


@given(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1)
)
def test_strings_round_trip(text: str) -> None:
    assert decode("2a24", text.encode()) == rec("/3/0/1", text)
