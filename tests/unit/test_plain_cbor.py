"""application/cbor (60): one value as one CBOR data item, or a typed error.

The byte vectors are RFC 8949 Appendix A's examples, each at a resource of the type it stands
for; the ones no LwM2M type takes (bignums, tags other than 1, null, arrays, indefinite lengths,
non-finite floats, a fractional epoch time) must be refused with 4.00. The round trip and the
4.06 of reads of several values are test_text_opaque's, shared with text/plain.
"""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.objects.builtin import builtin_definitions
from bridged.objects.definitions import Definitions
from bridged.objects.errors import LwM2MError
from bridged.objects.formats import ContentFormat, acceptable_for, codec_for
from bridged.objects.formats.plain_cbor import CODEC as CBOR
from bridged.objects.paths import Path
from bridged.objects.values import ObjLnk, Record, Value
from strategies import Read, single_values

INTEGER = "/3/0/9"  # Battery Level
UNSIGNED = "/1/0/11"  # TLS-DTLS Alert Code
TIME = "/3/0/13"  # Current Time
FLOAT = "/3303/0/5700"  # Sensor Value
BOOLEAN = "/1/0/6"  # Notification Storing When Disabled or Offline
STRING = "/3/0/14"  # UTC Offset
OPAQUE = "/5/0/0"  # Package
OBJLNK = "/1/0/10"  # APN Link
INSTANCE = "/3/0/7/1"  # Power Source Voltage, an Integer resource instance


@pytest.fixture(scope="module")
def builtin() -> Definitions:
    return builtin_definitions()


def rec(path: str, value: Value) -> Record:
    return Record(Path.parse(path), value)


def decode_error(payload: bytes, base: str, definitions: Definitions) -> str:
    with pytest.raises(LwM2MError) as exc:
        CBOR.decode(payload, Path.parse(base), definitions)
    return exc.value.code_text


def test_registered_for_content_format_60() -> None:
    assert codec_for(60) is CBOR
    assert acceptable_for(60) is CBOR
    assert CBOR.content_format == ContentFormat.CBOR == 60


# RFC 8949 Appendix A, "Examples of Encoded CBOR Data Items": diagnostic value -> hex, each
# written by the encoder exactly so (preferred serialization) and read back.
RFC8949_VALUES: list[tuple[str, Value, str]] = [
    (INTEGER, 0, "00"),
    (INTEGER, 1, "01"),
    (INTEGER, 10, "0a"),
    (INTEGER, 23, "17"),
    (INTEGER, 24, "1818"),
    (INTEGER, 25, "1819"),
    (INTEGER, 100, "1864"),
    (INTEGER, 1000, "1903e8"),
    (INTEGER, 1000000, "1a000f4240"),
    (INTEGER, 1000000000000, "1b000000e8d4a51000"),
    (UNSIGNED, 18446744073709551615, "1bffffffffffffffff"),
    (INTEGER, -1, "20"),
    (INTEGER, -10, "29"),
    (INTEGER, -100, "3863"),
    (INTEGER, -1000, "3903e7"),
    (FLOAT, 0.0, "f90000"),
    (FLOAT, -0.0, "f98000"),
    (FLOAT, 1.0, "f93c00"),
    (FLOAT, 1.1, "fb3ff199999999999a"),
    (FLOAT, 1.5, "f93e00"),
    (FLOAT, 65504.0, "f97bff"),
    (FLOAT, 100000.0, "fa47c35000"),
    (FLOAT, 3.4028234663852886e38, "fa7f7fffff"),
    (FLOAT, 1.0e300, "fb7e37e43c8800759c"),
    (FLOAT, 5.960464477539063e-8, "f90001"),
    (FLOAT, 0.00006103515625, "f90400"),
    (FLOAT, -4.0, "f9c400"),
    (FLOAT, -4.1, "fbc010666666666666"),
    (BOOLEAN, False, "f4"),
    (BOOLEAN, True, "f5"),
    (TIME, 1363896240, "c11a514b67b0"),  # 1(1363896240)
    (OPAQUE, b"", "40"),
    (OPAQUE, bytes.fromhex("01020304"), "4401020304"),
    (STRING, "", "60"),
    (STRING, "a", "6161"),
    (STRING, "IETF", "6449455446"),
    (STRING, '"\\', "62225c"),
    (STRING, "\u00fc", "62c3bc"),
    (STRING, "\u6c34", "63e6b0b4"),
    (STRING, "\U00010151", "64f0908591"),
    # Objlnk is its oid:iid text, a resource instance a value like any other.
    (OBJLNK, ObjLnk(11, 0), "6431313a30"),
    (INSTANCE, 5000, "191388"),
]


@pytest.mark.parametrize(("path", "value", "hex_"), RFC8949_VALUES)
def test_rfc8949_vectors(builtin: Definitions, path: str, value: Value, hex_: str) -> None:
    records = [rec(path, value)]
    assert CBOR.encode(records, Path.parse(path), builtin).hex() == hex_
    assert CBOR.decode(bytes.fromhex(hex_), Path.parse(path), builtin) == records


@pytest.mark.parametrize(
    ("path", "hex_", "value"),
    [
        # Other forms of the same values that a peer may send (RFC 8949 §4.1: preferred
        # serialization is for encoders): a longer head, a wider float, an integer Float, an
        # untagged Time (what LwM2M CBOR and Zephyr send).
        (INTEGER, "1800", 0),
        (INTEGER, "1b0000000000000064", 100),
        (FLOAT, "fb3ff8000000000000", 1.5),
        (FLOAT, "fa3fc00000", 1.5),
        (FLOAT, "1864", 100.0),
        (TIME, "1a514b67b0", 1363896240),
        (TIME, "c1fb41d452d9ec000000", 1363896240),  # 1(1363896240.0)
        (TIME, "c13a0001869f", -100000),
    ],
)
def test_other_forms_decode(builtin: Definitions, path: str, hex_: str, value: Value) -> None:
    assert CBOR.decode(bytes.fromhex(hex_), Path.parse(path), builtin) == [rec(path, value)]


@pytest.mark.parametrize(
    ("path", "hex_"),
    [
        # RFC 8949 Appendix A items no LwM2M value is.
        (UNSIGNED, "c249010000000000000000"),  # 2(h'010000000000000000'), a bignum
        (INTEGER, "3bffffffffffffffff"),  # -18446744073709551616, below Integer's range
        (INTEGER, "c349010000000000000000"),  # a negative bignum
        (FLOAT, "f97c00"),  # Infinity
        (FLOAT, "f97e00"),  # NaN
        (FLOAT, "f9fc00"),  # -Infinity
        (FLOAT, "fa7f800000"),
        (FLOAT, "fb7ff8000000000000"),
        (BOOLEAN, "f6"),  # null
        (BOOLEAN, "f7"),  # undefined
        (BOOLEAN, "f0"),  # simple(16)
        (BOOLEAN, "f8ff"),  # simple(255)
        (TIME, "c074323031332d30332d32315432303a30343a30305a"),  # 0("2013-03-21T20:04:00Z")
        (TIME, "c1fb41d452d9ec200000"),  # 1(1363896240.5): not whole seconds
        (OPAQUE, "d74401020304"),  # 23(h'01020304')
        (OPAQUE, "d818456449455446"),  # 24(h'6449455446')
        (STRING, "d82076687474703a2f2f7777772e6578616d706c652e636f6d"),  # 32("http://...")
        (INTEGER, "80"),  # []
        (INTEGER, "83010203"),  # [1, 2, 3]
        (INTEGER, "a0"),  # {}
        (STRING, "a26161016162820203"),  # {"a": 1, "b": [2, 3]}
        (OPAQUE, "5f42010243030405ff"),  # (_ h'0102', h'030405')
        (STRING, "7f657374726561646d696e67ff"),  # (_ "strea", "ming")
        (INTEGER, "9fff"),  # [_ ]
        (INTEGER, "bfff"),  # {_ }
        # Each type given a value of another: never coerced.
        (INTEGER, "f93e00"),  # 1.5
        (INTEGER, "f93c00"),  # 1.0, whole but a float
        (INTEGER, "f5"),
        (INTEGER, "6131"),  # "1"
        (UNSIGNED, "20"),  # -1
        (TIME, "f93c00"),
        (TIME, "c16131"),  # 1("1")
        (FLOAT, "6131"),
        (BOOLEAN, "01"),
        (STRING, "4161"),  # h'61'
        (OPAQUE, "6161"),  # "a"
        (OBJLNK, "0b"),
        (OBJLNK, "623131"),  # "11", no instance
        (OBJLNK, "6b37303030303a3730303030"),  # "70000:70000"
        (INTEGER, "c101"),  # 1(1): an epoch time for an Integer
        # Bytes that are not one CBOR item.
        (INTEGER, ""),
        (INTEGER, "0000"),  # trailing bytes
        (INTEGER, "19"),  # truncated head
        (INTEGER, "1903"),
        (STRING, "6461"),  # truncated string
        (STRING, "62c328"),  # not UTF-8
        (INTEGER, "1c"),  # reserved additional information
        (INTEGER, "ff"),  # a lone break
        (TIME, "c1c101"),  # 1(1(1)): nested tags
    ],
)
def test_refused_with_4_00(builtin: Definitions, path: str, hex_: str) -> None:
    assert decode_error(bytes.fromhex(hex_), path, builtin) == "4.00"


@pytest.mark.parametrize(
    ("base", "code"),
    [
        # Targets another format could carry: 4.15.
        ("/3", "4.15"),
        ("/3/0", "4.15"),
        ("/3/0/7", "4.15"),  # all instances of a multi-instance resource
        # A resource instance of a single-instance resource is a bad path in any format.
        ("/3/0/9/0", "4.00"),
        ("/9999/0/0", "4.04"),
        ("/3/0/99", "4.04"),
    ],
)
def test_write_targets_it_cannot_carry(builtin: Definitions, base: str, code: str) -> None:
    assert decode_error(b"\x01", base, builtin) == code


@pytest.mark.parametrize(
    ("records", "base"),
    [
        ([rec("/3/0/9", 100)], "/3/0"),
        ([rec("/3/0/9", 100), rec("/3/0/10", 15)], "/3/0"),
        ([rec("/3/0/7/0", 3800), rec("/3/0/7/1", 5000)], "/3/0/7"),
        ([rec("/3/0/11/0", 0)], "/3/0/11"),
        ([], "/3/0/11"),
        ([rec("/3/0/9", 100)], "/3"),
    ],
)
def test_reads_of_more_than_one_value_are_not_acceptable(
    builtin: Definitions, records: list[Record], base: str
) -> None:
    with pytest.raises(LwM2MError) as exc:
        CBOR.encode(records, Path.parse(base), builtin)
    assert exc.value.code_text == "4.06"


@given(single_values(), st.binary(max_size=24))
def test_arbitrary_bytes_decode_or_raise_a_typed_4_00(read: Read, payload: bytes) -> None:
    """Any payload either decodes or is refused with 4.00: no other error, no crash."""
    try:
        CBOR.decode(payload, read.base, read.definitions)
    except LwM2MError as e:
        assert e.code_text == "4.00", e


cbor_items = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(single_values(), cbor_items, st.booleans())
def test_well_formed_cbor_decodes_to_what_a_reference_decoder_reads_or_4_00(
    read: Read, item: Any, canonical: bool
) -> None:
    """Well-formed CBOR of any shape (cbor2 writes it, in either serialization) is either the
    value cbor2 reads from it, typed for the resource, or refused with 4.00: never another."""
    payload = cbor2.dumps(item, canonical=canonical)
    try:
        (record,) = CBOR.decode(payload, read.base, read.definitions)
    except LwM2MError as e:
        assert e.code_text == "4.00", e
        return
    reference = cbor2.loads(payload)
    value = str(record.value) if isinstance(record.value, ObjLnk) else record.value
    assert (value == reference and type(value) is type(reference)) or (
        isinstance(value, float) and type(reference) is int and value == reference
    )
