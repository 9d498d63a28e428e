"""BTHome v2: published vectors, every object ID, encryption, and properties over random input.

Vectors: the BTHome v2 examples of the reference parser's test suite (Bluetooth-Devices
bthome-ble, tests/test_parser_v2.py), the encrypted one with its published key and MAC. The
per-object table below takes the example bytes of the format's documentation (bthome.io/format)
where it gives one and otherwise chosen bytes; every expected value was worked out by hand from
the ID's type and factor in that documentation.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridged.transports.ble import bthome
from bridged.transports.ble.errors import (
    AdvertDecodeError,
    BindKeyRequired,
    DecryptionFailed,
    MalformedAdvert,
    UnknownObjectId,
)
from bridged.transports.ble.measurements import Measurement

# bthome-ble tests/test_parser_v2.py: the encrypted example (Shelly BLU H&T).
ENC_MAC = "54:48:E6:8F:80:A5"
ENC_KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
ENC_DATA = bytes.fromhex("41a47266c95f730011223378237214")


def objects(hex_data: str) -> tuple[tuple[int, bthome.ObjectValue], ...]:
    return bthome.decode(bytes.fromhex(hex_data)).objects


def test_plain_temperature_humidity() -> None:
    # bthome-ble test_parser_v2.py: 40 02 ca 09 03 bf 13 -> 25.06 °C, 50.55 %.
    frame = bthome.decode(bytes.fromhex("4002ca0903bf13"))
    assert frame.measurements == (
        Measurement("temperature", 25.06, "Cel"),
        Measurement("humidity", 50.55, "%RH"),
    )
    assert not frame.encrypted and frame.packet_id is None and frame.counter is None


def test_plain_pressure() -> None:
    # bthome-ble test_parser_v2.py: 40 04 13 8a 01 -> 1008.83 hPa.
    assert objects("4004138a01") == ((0x04, 1008.83),)


def test_encrypted_vector() -> None:
    # bthome-ble test_parser_v2.py: nonce 5448e68f80a5 d2fc 41 00112233, plaintext 02ca0903bf13.
    frame = bthome.decode(ENC_DATA, ENC_MAC, ENC_KEY)
    assert frame.encrypted
    assert frame.objects == ((0x02, 25.06), (0x03, 50.55))
    assert frame.counter == 0x33221100
    assert bthome.nonce(bthome.mac_bytes(ENC_MAC), 0x41, bytes.fromhex("00112233")) == (
        bytes.fromhex("5448e68f80a5d2fc4100112233")
    )


def test_encoder_reproduces_the_encrypted_vector() -> None:
    encoded = bthome.encode(
        [(0x02, 25.06), (0x03, 50.55)], bindkey=ENC_KEY, address=ENC_MAC, counter=0x33221100
    )
    assert encoded == ENC_DATA


def test_encrypted_without_key() -> None:
    with pytest.raises(BindKeyRequired):
        bthome.decode(ENC_DATA, ENC_MAC)


def test_wrong_key_or_address_or_tampered_frame() -> None:
    with pytest.raises(DecryptionFailed):
        bthome.decode(ENC_DATA, ENC_MAC, bytes(16))
    with pytest.raises(DecryptionFailed):
        bthome.decode(ENC_DATA, "54:48:E6:8F:80:A6", ENC_KEY)
    tampered = bytearray(ENC_DATA)
    tampered[3] ^= 1
    with pytest.raises(DecryptionFailed):
        bthome.decode(bytes(tampered), ENC_MAC, ENC_KEY)
    with pytest.raises(DecryptionFailed):
        bthome.decode(ENC_DATA, ENC_MAC, ENC_KEY[:15])


# One example per object ID: (object bytes, expected value).
DOC_EXAMPLES = [
    ("0161", 97),  # battery
    ("02ca09", 25.06),  # temperature
    ("03bf13", 50.55),  # humidity
    ("04138a14", 13460.67),  # pressure
    ("05138a14", 13460.67),  # illuminance
    ("065e1f", 80.3),  # mass kg
    ("073e1d", 74.86),  # mass lb
    ("08ca06", 17.38),  # dew point
    ("0960", 96),  # count
    ("0a138a14", 1346.067),  # energy
    ("0b021b00", 69.14),  # power
    ("0c020c", 3.074),  # voltage
    ("0d120c", 3090),  # pm2.5
    ("0e021c", 7170),  # pm10
    ("0f01", True),  # generic boolean
    ("1001", True),  # power
    ("1100", False),  # opening
    ("12e204", 1250),  # co2
    ("133301", 307),  # voc
    ("14020c", 30.74),  # moisture
    ("2e23", 35),  # humidity u8
    ("2f23", 35),  # moisture u8
    ("3a01", "press"),  # button
    ("3a04", "long_press"),
    ("3a80", "hold_press"),
    ("3c0103", -3),  # dimmer: rotate left 3 steps
    ("3c0203", 3),  # dimmer: rotate right 3 steps
    ("3d0960", 24585),  # count u16
    ("3e2a2c0960", 1611213866),  # count u32
    ("3f020c", 307.4),  # rotation
    ("400c00", 12),  # distance mm
    ("414e00", 7.8),  # distance m
    ("424e3400", 13.39),  # duration
    ("434e34", 13.39),  # current
    ("444e34", 133.9),  # speed
    ("451101", 27.3),  # temperature 0.1
    ("4632", 5.0),  # UV index
    ("478756", 2215.1),  # volume L
    ("48dc87", 34780),  # volume mL
    ("49dc87", 34.78),  # volume flow rate
    ("4a020c", 307.4),  # voltage 0.1
    ("4b138a14", 1346.067),  # gas u24
    ("4c41018a01", 25821.505),  # gas u32
    ("4d12138a14", 344593.170),  # energy u32
    ("4e87562a01", 19551.879),  # volume u32
    ("4f87562a01", 19551.879),  # water
    ("505d396164", 1684093277),  # timestamp
    ("518756", 22.151),  # acceleration
    ("528756", 22.151),  # gyroscope
    ("530c48656c6c6f20576f726c6421", "Hello World!"),  # text
    ("540c48656c6c6f20576f726c6421", b"Hello World!"),  # raw
    ("5587562a01", 19551.879),  # volume storage
    ("56dc87", 34780),  # conductivity
    ("57ea", -22),  # temperature s8
    ("58ea", -7.7),  # temperature s8 x 0.35
    ("59ea", -22),  # count s8
    ("5aeaea", -5398),  # count s16
    ("5beaeaeaea", -353703190),  # count s32
    ("5c02fbffff", -12.78),  # power s32
    ("5d02fb", -1.278),  # current s16
    ("5e5e6f", 285.1),  # direction
    ("5f5e6f", 2851.0),  # precipitation
    ("6001", 1),  # channel
    ("61e803", 1000),  # rotational speed
    ("62c0e1e4ff", -1.777216),  # speed s32 x 0.000001
    ("6340420f00", 1.0),  # acceleration s32 x 0.000001
    ("6405", 5),  # light level
    ("f00100", 1),  # device type id
    ("f100010204", "4.2.1.0"),  # firmware version u32
    ("f2000106", "6.1.0"),  # firmware version u24
]


@pytest.mark.parametrize(("hex_object", "expected"), DOC_EXAMPLES)
def test_documented_objects(hex_object: str, expected: bthome.ObjectValue) -> None:
    data = bytes.fromhex("40" + hex_object)
    ((oid, value),) = bthome.decode(data).objects
    assert oid == data[1]
    assert value == expected and type(value) is type(expected)
    assert bthome.encode([(oid, value)]) == data


def test_every_object_id_is_covered_by_an_example() -> None:
    covered = {bytes.fromhex(h)[0] for h, _ in DOC_EXAMPLES}
    binaries = set(range(0x0F, 0x12)) | set(range(0x15, 0x2E))
    assert set(bthome.OBJECTS) - {0x00} - binaries <= covered


def test_packet_id_and_flags() -> None:
    data = bytes.fromhex("4400090161")  # trigger based, packet id 9, battery 97 %
    frame = bthome.decode(data)
    assert frame.packet_id == 9 and frame.trigger_based
    assert frame.measurements == (Measurement("battery", 97, "%"),)


def test_mac_included() -> None:
    data = bytes.fromhex("42" + "a5808fe64854" + "0161")
    frame = bthome.decode(data)
    assert frame.mac == "54:48:E6:8F:80:A5"
    assert bthome.encode([(0x01, 97)], address=frame.mac, mac_included=True) == data


def test_encrypted_with_mac_included_uses_that_mac() -> None:
    data = bthome.encode(
        [(0x02, 21.5)], bindkey=ENC_KEY, address=ENC_MAC, counter=7, mac_included=True
    )
    frame = bthome.decode(data, "00:00:00:00:00:01", ENC_KEY)
    assert frame.mac == ENC_MAC and frame.counter == 7 and frame.objects == ((0x02, 21.5),)


def test_several_measurements_of_one_type() -> None:
    frame = bthome.decode(bytes.fromhex("4002ca09025c0a3a013a04"))
    assert [m.value for m in frame.measurements] == [25.06, 26.52, "press", "long_press"]


@pytest.mark.parametrize(
    ("hex_data", "error"),
    [
        ("", MalformedAdvert),
        ("20", MalformedAdvert),  # version 1
        ("6002ca09", MalformedAdvert),  # version 3
        ("4002ca", MalformedAdvert),  # temperature cut short
        ("4053", MalformedAdvert),  # text without its length
        ("40530548", MalformedAdvert),  # text shorter than its length
        ("4053024142ff", UnknownObjectId),
        ("400f02", MalformedAdvert),  # a binary sensor is 0 or 1
        ("400165", MalformedAdvert),  # battery 101 %
        ("403a07", MalformedAdvert),  # no such button event
        ("403c0301", MalformedAdvert),  # no such dimmer event
        ("40530280ff", MalformedAdvert),  # text that is not UTF-8
        ("42a5808f", MalformedAdvert),  # MAC cut short
        ("41aabbccdd", MalformedAdvert),  # encrypted, no room for counter and MIC
    ],
)
def test_malformed(hex_data: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        bthome.decode(bytes.fromhex(hex_data), ENC_MAC, ENC_KEY)


def test_unknown_object_id_is_named() -> None:
    with pytest.raises(UnknownObjectId, match="0x70") as info:
        bthome.decode(bytes.fromhex("4002ca097001"))
    assert info.value.object_id == 0x70


def test_encoder_refuses_what_the_format_cannot_carry() -> None:
    for objs in ([(0x70, 1)], [(0x01, 256)], [(0x3A, "squeeze")], [(0x02, "warm")]):
        with pytest.raises(ValueError):
            bthome.encode(objs)
    with pytest.raises(ValueError):
        bthome.encode([(0x01, 5)], bindkey=ENC_KEY)  # no address for the nonce


# -- properties -----------------------------------------------------------------------------


def _raw_value(oid: int) -> st.SearchStrategy[bytes]:
    spec = bthome.OBJECTS[oid]
    form = spec.form
    if form is bthome.Form.BINARY:
        return st.sampled_from([b"\x00", b"\x01"])
    if form is bthome.Form.BUTTON:
        return st.sampled_from([bytes((c,)) for c in bthome.BUTTON_EVENTS])
    if form is bthome.Form.DIMMER:
        return st.tuples(st.sampled_from([1, 2]), st.integers(1, 255)).map(bytes)
    if form is bthome.Form.TEXT:
        return st.text(max_size=20).map(str.encode).filter(lambda b: len(b) < 256)
    if form is bthome.Form.RAW:
        return st.binary(max_size=20)
    if spec.kind == "battery":
        return st.integers(0, 100).map(lambda n: bytes((n,)))
    return st.binary(min_size=spec.size, max_size=spec.size)


@st.composite
def object_lists(draw: st.DrawFn) -> bytes:
    oids = draw(st.lists(st.sampled_from(sorted(bthome.OBJECTS)), max_size=8))
    out = b""
    for oid in oids:
        raw = draw(_raw_value(oid))
        if bthome.OBJECTS[oid].size == 0:
            raw = bytes((len(raw),)) + raw
        out += bytes((oid,)) + raw
    return out


@given(object_lists())
def test_decode_then_encode_gives_the_same_bytes(body: bytes) -> None:
    data = b"\x40" + body
    assert bthome.encode(bthome.decode(data).objects) == data


@given(
    object_lists(),
    st.binary(min_size=16, max_size=16),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
@settings(max_examples=50)
def test_encrypted_round_trip(body: bytes, key: bytes, counter: int, mac_included: bool) -> None:
    objs = bthome.decode(b"\x40" + body).objects
    data = bthome.encode(
        objs, bindkey=key, address=ENC_MAC, counter=counter, mac_included=mac_included
    )
    frame = bthome.decode(data, ENC_MAC, key)
    assert frame.objects == objs and frame.counter == counter and frame.encrypted


@given(st.binary(max_size=40), st.sampled_from([None, ENC_KEY]))
def test_garbage_raises_only_the_typed_error(data: bytes, key: bytes | None) -> None:
    try:
        bthome.decode(data, ENC_MAC, key)
    except AdvertDecodeError:
        pass


@given(object_lists())
def test_garbage_after_a_valid_header_raises_only_the_typed_error(body: bytes) -> None:
    for cut in range(len(body)):
        try:
            bthome.decode(b"\x40" + body[:cut] + b"\xff")
        except AdvertDecodeError:
            pass
