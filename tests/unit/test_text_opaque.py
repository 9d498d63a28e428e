"""text/plain and application/octet-stream: one value at exactly the path, or a typed error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.objects.builtin import builtin_definitions
from bridged.objects.definitions import Definitions, ResourceType
from bridged.objects.errors import LwM2MError
from bridged.objects.formats import Codec, ContentFormat, codec_for
from bridged.objects.formats.opaque import CODEC as OPAQUE
from bridged.objects.formats.plain_cbor import CODEC as PLAIN_CBOR
from bridged.objects.formats.text import CODEC as TEXT
from bridged.objects.paths import Path
from bridged.objects.values import ObjLnk, Record, Value
from strategies import Read, reads, single_values


def rec(path: str, value: Value) -> Record:
    return Record(Path.parse(path), value)


@pytest.fixture(scope="module")
def builtin() -> Definitions:
    return builtin_definitions()


def encode_error(codec: Codec, records: list[Record], base: str, definitions: Definitions) -> str:
    with pytest.raises(LwM2MError) as exc:
        codec.encode(records, Path.parse(base), definitions)
    return exc.value.code_text


def decode_error(codec: Codec, payload: bytes, base: str, definitions: Definitions) -> str:
    with pytest.raises(LwM2MError) as exc:
        codec.decode(payload, Path.parse(base), definitions)
    return exc.value.code_text


def test_registered_for_their_content_formats() -> None:
    assert codec_for(0) is TEXT
    assert TEXT.content_format == ContentFormat.TEXT == 0
    assert codec_for(42) is OPAQUE
    assert OPAQUE.content_format == ContentFormat.OPAQUE == 42


# -- text/plain -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "payload", "value"),
    [
        # eclipse-leshan/leshan leshan-core/src/test/java/org/eclipse/leshan/core/node/codec/
        # LwM2mNodeDecoderTest.java: text_manufacturer_resource, text_battery_resource,
        # text_decode_opaque_from_base64_string (/5/0/0 Package).
        ("/3/0/0", b"MyManufacturer", "MyManufacturer"),
        ("/3/0/9", b"100", 100),
        ("/5/0/0", b"AQIDBAU=", bytes([1, 2, 3, 4, 5])),
        # The other types: Float, Time, Boolean, Objlnk, Unsigned Integer, a resource instance.
        ("/3303/0/5700", b"21.5", 21.5),
        ("/3/0/13", b"1367491215", 1367491215),
        ("/1/0/6", b"1", True),
        ("/1/0/10", b"11:0", ObjLnk(11, 0)),
        ("/1/0/11", b"18446744073709551615", 2**64 - 1),
        ("/3/0/7/1", b"5000", 5000),
        ("/3/0/14", "+02:00 \u00e9t\u00e9".encode(), "+02:00 \u00e9t\u00e9"),
    ],
)
def test_text_values(builtin: Definitions, path: str, payload: bytes, value: Value) -> None:
    records = [rec(path, value)]
    assert TEXT.encode(records, Path.parse(path), builtin) == payload
    assert TEXT.decode(payload, Path.parse(path), builtin) == records


@pytest.mark.parametrize(
    ("records", "base"),
    [
        ([rec("/3/0/9", 100)], "/3/0"),  # an instance
        ([rec("/3/0/9", 100), rec("/3/0/10", 15)], "/3/0"),
        ([rec("/3/0/6/0", 1), rec("/3/0/6/1", 5)], "/3/0/6"),  # a multi-instance resource
        ([rec("/3/0/11/0", 0)], "/3/0/11"),  # even with one instance
        ([], "/3/0/11"),  # or none
        ([rec("/3/0/9", 100)], "/"),
        ([rec("/3/0/9", 100)], "/3/0/10"),  # a value at another path
    ],
)
def test_text_cannot_represent_more_or_less_than_one_value(
    builtin: Definitions, records: list[Record], base: str
) -> None:
    assert encode_error(TEXT, records, base, builtin) == "4.06"


@pytest.mark.parametrize(
    ("base", "payload", "code"),
    [
        # Targets another format could carry: 4.15.
        ("/", b"1", "4.15"),
        ("/3", b"1", "4.15"),
        ("/3/0", b"1", "4.15"),
        ("/3/0/6", b"1", "4.15"),
        # Resource instances of a single-instance resource do not exist in any format: 4.00.
        ("/3/0/9/0", b"1", "4.00"),
        # Unknown object or resource.
        ("/9999/0/0", b"1", "4.04"),
        ("/3/0/99", b"1", "4.04"),
        # Bad UTF-8, and text that is not a value of the type.
        ("/3/0/0", b"\xc3\x28", "4.00"),
        ("/3/0/0", b"\xed\xa0\x80", "4.00"),
        ("/3/0/9", b"full", "4.00"),
        ("/3/0/9", b"9223372036854775808", "4.00"),
        ("/1/0/11", b"-1", "4.00"),
        ("/1/0/6", b"2", "4.00"),
        ("/1/0/10", b"11", "4.00"),
        ("/3303/0/5700", b"warm", "4.00"),
        # eclipse-leshan/leshan LwM2mNodeDecoderTest.java
        # text_decode_should_throw_an_exception_for_invalid_base64.
        ("/5/0/0", b"!,-INVALID$_'", "4.00"),
        # An executable resource has no value to write.
        ("/3/0/4", b"", "4.00"),
    ],
)
def test_text_decode_errors(builtin: Definitions, base: str, payload: bytes, code: str) -> None:
    assert decode_error(TEXT, payload, base, builtin) == code


SINGLE_VALUE_OF_ANY_TYPE = [TEXT, PLAIN_CBOR]
"""The formats that carry one value of any type (plain CBOR's own tests: test_plain_cbor)."""


@pytest.mark.parametrize("codec", SINGLE_VALUE_OF_ANY_TYPE)
@given(read=single_values())
def test_single_value_round_trip(codec: Codec, read: Read) -> None:
    payload = codec.encode(read.records, read.base, read.definitions)
    assert codec.decode(payload, read.base, read.definitions) == read.records


@pytest.mark.parametrize("codec", SINGLE_VALUE_OF_ANY_TYPE)
@given(read=reads())
def test_single_value_reads_of_several_values_are_not_acceptable(codec: Codec, read: Read) -> None:
    if len(read.records) == 1 and read.records[0].path == read.base:
        return
    with pytest.raises(LwM2MError) as exc:
        codec.encode(read.records, read.base, read.definitions)
    assert exc.value.code_text == "4.06"


@given(single_values(), st.binary(max_size=40))
def test_text_arbitrary_bytes_decode_or_raise_lwm2m_errors(read: Read, payload: bytes) -> None:
    try:
        TEXT.decode(payload, read.base, read.definitions)
    except LwM2MError:
        pass


# -- application/octet-stream -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("/5/0/0", bytes(range(256))),  # Firmware Update Package
        ("/5/0/0", b""),
        ("/0/0/3", b"\x30\x82"),  # Security: Public Key or Identity
    ],
)
def test_opaque_values_travel_as_they_are(builtin: Definitions, path: str, value: bytes) -> None:
    records = [rec(path, value)]
    assert OPAQUE.encode(records, Path.parse(path), builtin) == value
    assert OPAQUE.decode(value, Path.parse(path), builtin) == records


@pytest.mark.parametrize(
    ("records", "base"),
    [
        ([rec("/3/0/9", 100)], "/3/0/9"),  # an Integer
        ([rec("/3/0/0", "Open Mobile Alliance")], "/3/0/0"),  # a String
        ([rec("/5/0/0", b"\x01")], "/5/0"),  # an instance
        ([rec("/5/0/0", b"\x01")], "/5"),
        ([], "/5/0/0"),
    ],
)
def test_opaque_encodes_only_one_opaque_value(
    builtin: Definitions, records: list[Record], base: str
) -> None:
    assert encode_error(OPAQUE, records, base, builtin) == "4.06"


@pytest.mark.parametrize(
    ("base", "code"),
    [
        ("/3/0/9", "4.15"),  # an Integer
        ("/3/0/0", "4.15"),  # a String
        ("/3/0/4", "4.15"),  # an executable resource
        ("/5/0", "4.15"),
        ("/5", "4.15"),
        ("/", "4.15"),
        ("/3/0/9/0", "4.00"),
        ("/5/0/99", "4.04"),
        ("/9999/0/0", "4.04"),
    ],
)
def test_opaque_decode_errors(builtin: Definitions, base: str, code: str) -> None:
    assert decode_error(OPAQUE, b"\x01\x02", base, builtin) == code


@given(single_values(types=(ResourceType.OPAQUE,)))
def test_opaque_round_trip(read: Read) -> None:
    payload = OPAQUE.encode(read.records, read.base, read.definitions)
    assert OPAQUE.decode(payload, read.base, read.definitions) == read.records


@given(single_values())
def test_opaque_refuses_every_other_type(read: Read) -> None:
    rtype = read.definitions.resource(read.base.ids[0], read.base.ids[2]).type
    if rtype is ResourceType.OPAQUE:
        return
    assert encode_error(OPAQUE, read.records, str(read.base), read.definitions) == "4.06"
    assert decode_error(OPAQUE, b"\x00", str(read.base), read.definitions) == "4.15"
