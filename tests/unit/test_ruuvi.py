"""Ruuvi RAWv2 (data format 5) against the vectors of its specification.

Source: ruuvi/ruuvi-sensor-protocols, dataformat_05.md, "Test vectors": valid data, maximum
values, minimum values, and the frame with every field "not available".
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.transports.ble import ruuvi
from bridged.transports.ble.errors import AdvertDecodeError, MalformedAdvert
from bridged.transports.ble.measurements import Measurement

VALID = bytes.fromhex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")
MAXIMUM = bytes.fromhex("057FFFFFFEFFFE7FFF7FFF7FFFFFDEFEFFFECBB8334C884F")
MINIMUM = bytes.fromhex("058001000000008001800180010000000000CBB8334C884F")
NOT_AVAILABLE = bytes.fromhex("058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF")


def values(data: bytes) -> dict[str, object]:
    return {m.kind: m.value for m in ruuvi.decode(data).measurements}


def test_valid_vector() -> None:
    frame = ruuvi.decode(VALID)
    assert frame.measurements == (
        Measurement("temperature", 24.3, "Cel"),
        Measurement("humidity", 53.49, "%RH"),
        Measurement("pressure", 1000.44, "hPa"),  # 100044 Pa
        Measurement("acceleration_x", 0.004, "G"),
        Measurement("acceleration_y", -0.004, "G"),
        Measurement("acceleration_z", 1.036, "G"),
        Measurement("voltage", 2.977, "V"),
        Measurement("tx_power", 4, "dBm"),
        Measurement("movement_count", 66),
    )
    assert frame.packet_id == 205 and frame.packet_id_modulus == 65536


def test_maximum_vector() -> None:
    assert values(MAXIMUM) == {
        "temperature": 163.835,
        "humidity": 163.835,
        "pressure": 1155.34,
        "acceleration_x": 32.767,
        "acceleration_y": 32.767,
        "acceleration_z": 32.767,
        "voltage": 3.646,
        "tx_power": 20,
        "movement_count": 254,
    }
    assert ruuvi.decode(MAXIMUM).packet_id == 65534


def test_minimum_vector() -> None:
    assert values(MINIMUM) == {
        "temperature": -163.835,
        "humidity": 0.0,
        "pressure": 500.0,
        "acceleration_x": -32.767,
        "acceleration_y": -32.767,
        "acceleration_z": -32.767,
        "voltage": 1.6,
        "tx_power": -40,
        "movement_count": 0,
    }
    assert ruuvi.decode(MINIMUM).packet_id == 0


def test_not_available_fields_are_absent() -> None:
    frame = ruuvi.decode(NOT_AVAILABLE)
    assert frame.measurements == () and frame.packet_id is None


def test_one_field_not_available() -> None:
    data = bytearray(VALID)
    data[1:3] = b"\x80\x00"
    assert "temperature" not in values(bytes(data))
    assert values(bytes(data))["humidity"] == 53.49


@pytest.mark.parametrize("data", [VALID[:-1], VALID + b"\x00", b"\x03" + VALID[1:], b""])
def test_malformed(data: bytes) -> None:
    with pytest.raises(MalformedAdvert):
        ruuvi.decode(data)


@given(st.binary(max_size=30))
def test_garbage_raises_only_the_typed_error(data: bytes) -> None:
    try:
        ruuvi.decode(data)
    except AdvertDecodeError:
        pass


@given(st.binary(min_size=23, max_size=23))
def test_every_24_byte_format_5_frame_decodes(rest: bytes) -> None:
    frame = ruuvi.decode(b"\x05" + rest)
    assert len(frame.measurements) <= 9
