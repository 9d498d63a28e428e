"""The ATC1441 and pvvx custom formats (service data 0x181A), told apart by length.

Sources: the ATC1441 example of the Theengs decoder's test table (tests/BLE/test_ble.cpp; the
bytes and values only) and the pvvx firmware README's "Custom format" description, with the
example worked out by hand from that layout.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.transports.ble import atc
from bridged.transports.ble.errors import AdvertDecodeError, MalformedAdvert
from bridged.transports.ble.measurements import Measurement

ATC1441 = bytes.fromhex("582d341233dc00e03e490b2c2e")
PVVX = bytes.fromhex("dc3312342d582f09aa173d0b4b7c05")


@pytest.mark.parametrize(
    ("frame", "profile", "temperature", "humidity", "battery", "volts", "packet_id"),
    [
        # MAC 58:2D:34:12:33:DC, 22.4 °C, 62 %, 73 %, 2860 mV, counter 0x2e.
        (ATC1441, "atc1441", 22.4, 62, 73, 2.86, 0x2E),
        # MAC 58:2D:34:12:33:DC (LSB first), 23.51 °C, 60.58 %, 2877 mV, 75 %, counter 0x7c.
        (PVVX, "pvvx", 23.51, 60.58, 75, 2.877, 0x7C),
    ],
)
def test_published_vectors(
    frame: bytes,
    profile: str,
    temperature: float,
    humidity: float,
    battery: int,
    volts: float,
    packet_id: int,
) -> None:
    found = atc.decode(frame)
    assert found is not None
    assert found[0] == profile
    assert found[1].measurements == (
        Measurement("temperature", temperature, "Cel"),
        Measurement("humidity", humidity, "%RH"),
        Measurement("battery", battery, "%"),
        Measurement("voltage", volts, "V"),
    )
    assert found[1].packet_id == packet_id


def test_negative_temperatures() -> None:
    atc_cold = ATC1441[:6] + (-105).to_bytes(2, "big", signed=True) + ATC1441[8:]
    pvvx_cold = PVVX[:6] + (-1050).to_bytes(2, "little", signed=True) + PVVX[8:]
    assert atc.decode_atc1441(atc_cold).measurements[0].value == -10.5
    assert atc.decode_pvvx(pvvx_cold).measurements[0].value == -10.5


@pytest.mark.parametrize("length", [0, 8, 11, 12, 14, 16, 20])
def test_other_lengths_are_not_these_formats(length: int) -> None:
    assert atc.decode(bytes(length)) is None


def test_battery_over_100_percent() -> None:
    with pytest.raises(MalformedAdvert):
        atc.decode(ATC1441[:9] + b"\x65" + ATC1441[10:])
    with pytest.raises(MalformedAdvert):
        atc.decode(PVVX[:12] + b"\x65" + PVVX[13:])


@given(st.binary(max_size=20))
def test_garbage_raises_only_the_typed_error(data: bytes) -> None:
    try:
        atc.decode(data)
    except AdvertDecodeError:
        pass
