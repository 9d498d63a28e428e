"""OMA TLV: published payloads byte for byte, round trips at every level, and bad input.

The published payloads come from the LwM2M Core specification (sections 6.4.3 of 1.0, 7.4.3 of
1.1, 7.4.5 of 1.2; each checked by hand: lengths add up, identifiers and values decode as the
tables say) and from the test suites of Leshan, Wakaama, Zephyr and EMQX. Each carries its
source beside it.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.objects.builtin import builtin_definitions
from bridged.objects.definitions import (
    Definitions,
    Operations,
    ResourceDef,
    ResourceType,
    make_object,
)
from bridged.objects.errors import LwM2MError
from bridged.objects.formats import ContentFormat, codec_for
from bridged.objects.formats.tlv import CODEC
from bridged.objects.paths import Level, Path
from bridged.objects.values import ObjLnk, Record, Value
from strategies import Read, reads
from vectors import OMA_DEVICE_BASE as DEVICE_RECORDS

ALL_LEVELS = (Level.OBJECT, Level.INSTANCE, Level.RESOURCE, Level.RESOURCE_INSTANCE)


def rec(path: str, value: Value) -> Record:
    return Record(Path.parse(path), value)


def error_code(payload: bytes, base: str, definitions: Definitions) -> str:
    with pytest.raises(LwM2MError) as exc:
        CODEC.decode(payload, Path.parse(base), definitions)
    return exc.value.code_text


@pytest.fixture(scope="module")
def builtin() -> Definitions:
    return builtin_definitions()


def custom(*resources: tuple[int, ResourceType, bool], oid: int = 1000) -> Definitions:
    """A registry of one object with the given (id, type, multiple) resources."""
    reg = Definitions()
    defs = [ResourceDef(rid, f"R{rid}", Operations.RW, t, m) for rid, t, m in resources]
    reg.add(make_object(oid, f"Object {oid}", defs))
    return reg


def test_registered_for_its_content_format() -> None:
    assert codec_for(11542) is CODEC
    assert CODEC.content_format == ContentFormat.TLV == 11542


# -- published payloads -----------------------------------------------------------------------

# The specification's examples below are transcribed, independently, in
#   LESHAN: eclipse-leshan/leshan leshan-core/src/test/java/org/eclipse/leshan/core/node/codec/
#           LwM2mNodeDecoderTest.java (ENCODED_DEVICE_*, ENCODED_ACL, ENCODED_SERVER,
#           ENCODED_OBJ65, ENCODED_OBJ66)
#   EMQX:   emqx/emqx apps/emqx_gateway_lwm2m/test/emqx_tlv_SUITE.erl (case01 to case09)
# and both agree byte for byte with what is written here.

# Read /3/0, Core 1.0 6.4.3.1 / 1.1 7.4.3.1 / 1.2 7.4.5.1 "Single Object Instance Request".
# The specification's hex dump spells the model number "Lightweigt M2M Client" (21 octets)
# under a length of 0x16 (22): internally inconsistent. The table's length and the intended
# text agree, and that is how LESHAN and EMQX (case04) transcribe it, as do
# eclipse-wakaama/wakaama tests/tlv_json_lwm2m_data_test.c (test_2) and eclipse-leshan/leshan
# leshan-core/src/test/java/org/eclipse/leshan/core/tlv/TlvDecoderTest.java
# (decode_device_object), which end with resource 15 instead of 16.
DEVICE_BODY = (
    b"\xc8\x00\x14" + b"Open Mobile Alliance"
    b"\xc8\x01\x16" + b"Lightweight M2M Client"
    b"\xc8\x02\x09" + b"345000123"
    b"\xc3\x03"
    + b"1.0"
    + bytes.fromhex(
        "86 06 41 00 01 41 01 05"  # /3/0/6 Available Power Sources: 1, 5
        "88 07 08 42 00 0E D8 42 01 13 88"  # /3/0/7 Power Source Voltage: 3800, 5000
        "87 08 41 00 7D 42 01 03 84"  # /3/0/8 Power Source Current: 125, 900
        "C1 09 64"  # /3/0/9 Battery Level: 100
        "C1 0A 0F"  # /3/0/10 Memory Free: 15
        "83 0B 41 00 00"  # /3/0/11 Error Code: one instance, 0
        "C4 0D 51 82 42 8F"  # /3/0/13 Current Time: 1367491215
    )
    + b"\xc6\x0e"
    + b"+02:00"
)
# The specification's last TLV: Supported Binding and Modes "U".
SPEC_DEVICE = DEVICE_BODY + b"\xc1\x10U"
SPEC_DEVICE_RECORDS = [*DEVICE_RECORDS, rec("/3/0/16", "U")]
# Leshan's and Wakaama's last TLV: Timezone "U".
LESHAN_DEVICE = DEVICE_BODY + b"\xc1\x0fU"
LESHAN_DEVICE_RECORDS = [*DEVICE_RECORDS, rec("/3/0/15", "U")]

# Read /2, Core 1.0 6.4.3.2 B) / 1.2 7.4.5.2 B) "Multiple-Instances Object having 2 instances"
# (LESHAN ENCODED_ACL, EMQX case06).
# ACL instance 310 needs the 16-bit identifier (type 0x61).
ACCESS_CONTROL = bytes.fromhex(
    "08 00 0E C1 00 01 C1 01 00 83 02 41 7F 07 C1 03 7F"
    "08 02 12 C1 00 03 C1 01 00 87 02 41 7F 07 61 01 36 01 C1 03 7F"
)
ACCESS_CONTROL_RECORDS = [
    rec("/2/0/0", 1),
    rec("/2/0/1", 0),
    rec("/2/0/2/127", 7),
    rec("/2/0/3", 127),
    rec("/2/2/0", 3),
    rec("/2/2/1", 0),
    rec("/2/2/2/127", 7),
    rec("/2/2/2/310", 1),
    rec("/2/2/3", 127),
]

# Read /1, Core 1.0 6.4.3.2 C) "Multiple-Instances Object having 1 instance only"
# (LESHAN ENCODED_SERVER, EMQX case07).
SERVER = bytes.fromhex("08 00 0F C1 00 01 C4 01 00 01 51 80 C1 06 01 C1 07 55")
SERVER_RECORDS = [rec("/1/0/0", 1), rec("/1/0/1", 86400), rec("/1/0/6", True), rec("/1/0/7", "U")]


@pytest.mark.parametrize(
    ("base", "payload", "records"),
    [
        ("/3/0", SPEC_DEVICE, SPEC_DEVICE_RECORDS),
        # 6.4.3.2 A), Read /3 (LESHAN ENCODED_DEVICE_WITH_INSTANCE, EMQX case05).
        ("/3", b"\x08\x00\x79" + SPEC_DEVICE, SPEC_DEVICE_RECORDS),
        ("/3/0", LESHAN_DEVICE, LESHAN_DEVICE_RECORDS),
        ("/2", ACCESS_CONTROL, ACCESS_CONTROL_RECORDS),
        ("/1", SERVER, SERVER_RECORDS),
        # The ACL resource alone: EMQX case03_0.
        ("/2/2/2", bytes.fromhex("87 02 41 7F 07 61 01 36 01"), ACCESS_CONTROL_RECORDS[6:8]),
        # One Multiple Resource: EMQX case02.
        ("/3/0/6", bytes.fromhex("86 06 41 00 01 41 01 05"), DEVICE_RECORDS[4:6]),
    ],
)
def test_published_payloads_on_builtin_objects(
    builtin: Definitions, base: str, payload: bytes, records: list[Record]
) -> None:
    assert CODEC.encode(records, Path.parse(base), builtin) == payload
    assert CODEC.decode(payload, Path.parse(base), builtin) == records


# Core 1.0 6.4.3.3 "Object Instance containing an Object Link Resource", objects 65 and 66 of
# the example with LESHAN's definitions of them (ENCODED_OBJ65: Read /65/0, ENCODED_OBJ66:
# Read /66; EMQX case08, case09).
@pytest.fixture(scope="module")
def links() -> Definitions:
    reg = Definitions()
    link, string, integer = ResourceType.OBJLNK, ResourceType.STRING, ResourceType.INTEGER
    reg.add(
        make_object(
            65,
            "Example 65",
            [
                ResourceDef(0, "res0", Operations.R, link, multiple=True),
                ResourceDef(1, "res1", Operations.R, string),
                ResourceDef(2, "res2", Operations.R, integer),
            ],
        )
    )
    reg.add(
        make_object(
            66,
            "Example 66",
            [
                ResourceDef(0, "res0", Operations.R, string),
                ResourceDef(1, "res1", Operations.R, string),
                ResourceDef(2, "res2", Operations.R, link),
            ],
        )
    )
    return reg


@pytest.mark.parametrize(
    ("base", "payload", "records"),
    [
        (
            "/65/0",
            bytes.fromhex("88 00 0C 44 00 00 42 00 00 44 01 00 42 00 01 C8 01 0D")
            + b"8613800755500"
            + bytes.fromhex("C4 02 12 34 56 78"),
            [
                rec("/65/0/0/0", ObjLnk(66, 0)),
                rec("/65/0/0/1", ObjLnk(66, 1)),
                rec("/65/0/1", "8613800755500"),
                rec("/65/0/2", 0x12345678),
            ],
        ),
        (
            "/66",
            b"\x08\x00\x26\xc8\x00\x0bmyService 1\xc8\x01\x0fInternet.15.234"
            + bytes.fromhex("C4 02 00 43 00 00")
            + b"\x08\x01\x26\xc8\x00\x0bmyService 2\xc8\x01\x0fInternet.15.235"
            + bytes.fromhex("C4 02 FF FF FF FF"),
            [
                rec("/66/0/0", "myService 1"),
                rec("/66/0/1", "Internet.15.234"),
                rec("/66/0/2", ObjLnk(67, 0)),
                rec("/66/1/0", "myService 2"),
                rec("/66/1/1", "Internet.15.235"),
                rec("/66/1/2", ObjLnk(0xFFFF, 0xFFFF)),
            ],
        ),
    ],
)
def test_published_object_link_payloads(
    links: Definitions, base: str, payload: bytes, records: list[Record]
) -> None:
    assert CODEC.encode(records, Path.parse(base), links) == payload
    assert CODEC.decode(payload, Path.parse(base), links) == records


Spec = tuple[tuple[int, ResourceType, bool], ...]
OPAQUE_55_66: Spec = ((55, ResourceType.OPAQUE, False), (66, ResourceType.OPAQUE, False))
OPAQUE_66_77: Spec = ((66, ResourceType.OPAQUE, False), (77, ResourceType.OPAQUE, True))
INTEGER_1: Spec = ((1, ResourceType.INTEGER, False),)


@pytest.mark.parametrize(
    ("spec", "base", "payload", "records"),
    [
        # eclipse-wakaama/wakaama tests/tlvtests.c test_tlv_parse data2: a 16-bit instance ID
        # (0x203) with an 8-bit length, around two opaque resources.
        (
            OPAQUE_55_66,
            "/1000",
            bytes([0x28, 2, 3, 17, 0xC3, 55, 1, 2, 3, 0xC8, 66, 9, *range(4, 13)]),
            [rec("/1000/515/55", bytes([1, 2, 3])), rec("/1000/515/66", bytes(range(4, 13)))],
        ),
        # tests/tlvtests.c test_tlv_parse data3: Multiple Resource 77 with instances of 3 and
        # 160 bytes inside instance 11.
        (
            OPAQUE_66_77,
            "/1000",
            bytes([0x08, 11, 171, 0x88, 77, 168, 0x43, 0, 1, 2, 3, 0x48, 1, 160, *range(4, 10)])
            + bytes(154),
            [
                rec("/1000/11/77/0", bytes([1, 2, 3])),
                rec("/1000/11/77/1", bytes(range(4, 10)) + bytes(154)),
            ],
        ),
        # tests/tlvtests.c test_tlv_serialize: resource 66 and a 170-byte instance of 77.
        (
            OPAQUE_66_77,
            "/1000",
            bytes([0x08, 3, 182, 0xC4, 66, 1, 2, 3, 4, 0x88, 77, 173, 0x48, 0, 170, 5, 6, 7, 8])
            + bytes(166),
            [
                rec("/1000/3/66", bytes([1, 2, 3, 4])),
                rec("/1000/3/77/0", bytes([5, 6, 7, 8]) + bytes(166)),
            ],
        ),
        # eclipse-wakaama/wakaama tests/tlv_json_lwm2m_data_test.c test_1: three instances.
        (
            INTEGER_1,
            "/1000",
            bytes.fromhex("03 0A C1 01 14 03 0B C1 01 15 03 0C C1 01 16"),
            [rec("/1000/10/1", 20), rec("/1000/11/1", 21), rec("/1000/12/1", 22)],
        ),
    ],
)
def test_published_wakaama_payloads(
    spec: Spec, base: str, payload: bytes, records: list[Record]
) -> None:
    definitions = custom(*spec)
    assert CODEC.encode(records, Path.parse(base), definitions) == payload
    assert CODEC.decode(payload, Path.parse(base), definitions) == records


SHORT, LONG = 0xAA, 0xAABB
"""The resource IDs of zephyrproject-rtos/zephyr tests/net/lib/lwm2m/content_oma_tlv/src/main.c
(TEST_RESOURCE_ID_SHORT/LONG): one needs the 16-bit identifier."""

INT, UINT, FLT, BOOL, STR, OPQ, LNK = (
    ResourceType.INTEGER,
    ResourceType.UNSIGNED,
    ResourceType.FLOAT,
    ResourceType.BOOLEAN,
    ResourceType.STRING,
    ResourceType.OPAQUE,
    ResourceType.OBJLNK,
)

# (type, resource ID, value, one Resource TLV): both directions.
VALUE_VECTORS = [
    # zephyr content_oma_tlv test_put_s8/s16/s32/s64.
    (INT, SHORT, 0, "C1 AA 00"),
    (INT, SHORT, 127, "C1 AA 7F"),
    (INT, LONG, -128, "E1 AA BB 80"),
    (INT, SHORT, 32767, "C2 AA 7F FF"),
    (INT, LONG, -32768, "E2 AA BB 80 00"),
    (INT, SHORT, 2**31 - 1, "C4 AA 7F FF FF FF"),
    (INT, LONG, -(2**31), "E4 AA BB 80 00 00 00"),
    (INT, SHORT, 2**63 - 1, "C8 AA 08 7F FF FF FF FF FF FF FF"),
    (INT, LONG, -(2**63), "E8 AA BB 08 80 00 00 00 00 00 00 00"),
    # eclipse-wakaama/wakaama tests/tlvtests.c test_tlv_encode_int.
    (INT, SHORT, -0x1234, "C2 AA ED CC"),
    (INT, SHORT, 0x7F34567891223344, "C8 AA 08 7F 34 56 78 91 22 33 44"),
    # zephyr test_put_float: the values float32 cannot hold exactly travel as 8 bytes.
    (FLT, SHORT, 0.123, "C8 AA 08 3F BF 7C ED 91 68 72 B0"),
    (FLT, SHORT, -0.987, "C8 AA 08 BF EF 95 81 06 24 DD 2F"),
    (FLT, SHORT, 2.333, "C8 AA 08 40 02 A9 FB E7 6C 8B 44"),
    # zephyr test_put_bool, test_put_objlnk.
    (BOOL, SHORT, True, "C1 AA 01"),
    (BOOL, LONG, False, "E1 AA BB 00"),
    (LNK, SHORT, ObjLnk(0, 0), "C4 AA 00 00 00 00"),
    (LNK, SHORT, ObjLnk(1, 2), "C4 AA 00 01 00 02"),
    (LNK, LONG, ObjLnk(0xFFFF, 0xFFFF), "E4 AA BB FF FF FF FF"),
    # zephyr test_put_string, test_put_opaque.
    (STR, SHORT, "test_string", "C8 AA 0B" + b"test_string".hex()),
    (OPQ, SHORT, b"test_opaque", "C8 AA 0B" + b"test_opaque".hex()),
    # Unsigned takes the shortest unsigned width: 200 fits one byte, 2**63 and up need 8.
    (UINT, SHORT, 200, "C1 AA C8"),
    (UINT, SHORT, 0xFFFF, "C2 AA FF FF"),
    (UINT, SHORT, 2**63, "C8 AA 08 80 00 00 00 00 00 00 00"),
    (UINT, SHORT, 2**64 - 1, "C8 AA 08 FF FF FF FF FF FF FF FF"),
    (INT, SHORT, 200, "C2 AA 00 C8"),
    # Floats that float32 holds exactly take 4 bytes.
    (FLT, SHORT, 0.5, "C4 AA 3F 00 00 00"),
    (FLT, SHORT, -123.125, "C4 AA C2 F6 40 00"),
    (FLT, SHORT, 1e300, "C8 AA 08 7E 37 E4 3C 88 00 75 9C"),
]

# (type, resource ID, value, one Resource TLV): accepted on decode, written shorter on encode.
DECODE_ONLY_VECTORS = [
    # zephyr test_get_s64 and test_get_float: 8 bytes where fewer suffice.
    (INT, SHORT, 0, "C8 AA 08 00 00 00 00 00 00 00 00"),
    (FLT, SHORT, 0.0, "C8 AA 08 00 00 00 00 00 00 00 00"),
    (FLT, SHORT, 3.0, "C8 AA 08 40 08 00 00 00 00 00 00"),
    (FLT, SHORT, -10.0, "C8 AA 08 C0 24 00 00 00 00 00 00"),
    (FLT, LONG, -123.125, "E8 AA BB 08 C0 5E C8 00 00 00 00 00"),
    # eclipse-wakaama/wakaama tests/tlvtests.c test_opaqueToInt.
    (INT, SHORT, -0x1020304, "C4 AA FE FD FC FC"),
    (INT, SHORT, -0x102030405060708, "C8 AA 08 FE FD FC FB FA F9 F8 F8"),
    # eclipse-leshan/leshan leshan-core/src/test/java/org/eclipse/leshan/core/tlv/
    # TlvDecoderTest.java decode_object_link.
    (LNK, SHORT, ObjLnk(0x1234, 0x5678), "C4 AA 12 34 56 78"),
    (LNK, SHORT, ObjLnk(0xFFFF, 0xFFFF), "C4 AA FF FF FF FF"),
]


def _one_resource(rtype: ResourceType, rid: int) -> tuple[Definitions, Path]:
    return custom((rid, rtype, False)), Path((1000, 0, rid))


@pytest.mark.parametrize(("rtype", "rid", "value", "tlv"), VALUE_VECTORS)
def test_value_vectors(rtype: ResourceType, rid: int, value: Value, tlv: str) -> None:
    definitions, path = _one_resource(rtype, rid)
    records = [Record(path, value)]
    assert CODEC.encode(records, path, definitions).hex() == bytes.fromhex(tlv).hex()
    assert CODEC.decode(bytes.fromhex(tlv), path, definitions) == records
    # At instance level the same TLV stands bare, without an Object Instance wrapper.
    assert CODEC.encode(records, path.parent, definitions) == bytes.fromhex(tlv)


@pytest.mark.parametrize(("rtype", "rid", "value", "tlv"), DECODE_ONLY_VECTORS)
def test_decode_only_vectors(rtype: ResourceType, rid: int, value: Value, tlv: str) -> None:
    definitions, path = _one_resource(rtype, rid)
    assert CODEC.decode(bytes.fromhex(tlv), path, definitions) == [Record(path, value)]


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, "C0 05"),
        (7, "C7 05"),
        (8, "C8 05 08"),
        (255, "C8 05 FF"),
        (256, "D0 05 01 00"),
        (65535, "D0 05 FF FF"),
        (65536, "D8 05 01 00 00"),
    ],
)
def test_length_field_widths(length: int, header: str) -> None:
    definitions, path = _one_resource(OPQ, 5)
    records = [Record(path, bytes(length))]
    payload = bytes.fromhex(header) + bytes(length)
    assert CODEC.encode(records, path, definitions) == payload
    assert CODEC.decode(payload, path, definitions) == records


@pytest.mark.parametrize(
    ("rid", "header"), [(255, "C1 FF"), (256, "E1 01 00"), (65534, "E1 FF FE")]
)
def test_identifier_widths(rid: int, header: str) -> None:
    definitions, path = _one_resource(BOOL, rid)
    payload = bytes.fromhex(header) + b"\x01"
    assert CODEC.encode([Record(path, True)], path, definitions) == payload
    assert CODEC.decode(payload, path, definitions) == [Record(path, True)]


def test_multi_instance_resource_is_wrapped_even_when_empty_or_single(builtin: Definitions) -> None:
    path = Path.parse("/3/0/11")
    assert CODEC.encode([], path, builtin) == bytes.fromhex("80 0B")
    assert CODEC.decode(bytes.fromhex("80 0B"), path, builtin) == []
    one = [rec("/3/0/11/0", 0)]
    assert CODEC.encode(one, path, builtin) == bytes.fromhex("83 0B 41 00 00")
    assert CODEC.encode(one, path.parent, builtin) == bytes.fromhex("83 0B 41 00 00")
    # A read of the resource instance itself is its bare Resource Instance TLV.
    assert CODEC.encode(one, path.child(0), builtin) == bytes.fromhex("41 00 00")


def test_gateway_prefix_travels_in_the_path_not_the_payload(builtin: Definitions) -> None:
    base = Path.parse("/dev3/3/0")
    records = [Record(r.path.with_prefix("dev3"), r.value) for r in SPEC_DEVICE_RECORDS]
    assert CODEC.encode(records, base, builtin) == SPEC_DEVICE
    assert CODEC.decode(SPEC_DEVICE, base, builtin) == records


# -- what a write may carry -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "payload", "records"),
    [
        # A write to an instance may wrap its resources in that instance's Object Instance TLV.
        ("/3/0", bytes.fromhex("03 00 C1 09 64"), [rec("/3/0/9", 100)]),
        # A write to a multi-instance resource may send its Resource Instances bare.
        ("/3/0/6", bytes.fromhex("41 00 01 41 01 05"), DEVICE_RECORDS[4:6]),
        ("/3/0/6/1", bytes.fromhex("41 01 05"), [rec("/3/0/6/1", 5)]),
        ("/3/0/9", bytes.fromhex("C1 09 64"), [rec("/3/0/9", 100)]),
        ("/3", b"", []),
        ("/3/0", b"", []),
    ],
)
def test_accepted_write_shapes(
    builtin: Definitions, base: str, payload: bytes, records: list[Record]
) -> None:
    assert CODEC.decode(payload, Path.parse(base), builtin) == records


@pytest.mark.parametrize(
    ("base", "payload", "code"),
    [
        # The root: TLV cannot name objects.
        ("/", ACCESS_CONTROL, "4.15"),
        # Unknown object, unknown resource.
        ("/9999", bytes.fromhex("03 00 C1 00 01"), "4.04"),
        ("/3/0", bytes.fromhex("C1 63 00"), "4.04"),
        ("/3", bytes.fromhex("03 00 C1 63 00"), "4.04"),
        # A Multiple Resource TLV for a single-instance resource, and the other way round.
        ("/3/0", bytes.fromhex("83 09 41 00 64"), "4.00"),
        ("/3/0", bytes.fromhex("C1 06 01"), "4.00"),
        ("/3/0/6", bytes.fromhex("C1 06 01"), "4.00"),
        ("/3/0/9", bytes.fromhex("83 09 41 00 64"), "4.00"),
        ("/3/0/9", bytes.fromhex("41 00 64"), "4.00"),
        # Resource TLVs bare at object level, an instance TLV inside an instance, a Resource
        # Instance TLV straight in an instance, something other than instances in a Multiple
        # Resource.
        ("/3", bytes.fromhex("C1 09 64"), "4.00"),
        ("/3", bytes.fromhex("05 00 03 00 C1 09 64"), "4.00"),
        ("/3/0", bytes.fromhex("41 09 64"), "4.00"),
        ("/3/0", bytes.fromhex("86 06 C1 00 01 41 01 05"), "4.00"),
        # Names outside the path written to.
        ("/3/0", bytes.fromhex("03 01 C1 09 64"), "4.00"),
        ("/3/0/9", bytes.fromhex("C1 0A 64"), "4.00"),
        ("/3/0/6", bytes.fromhex("86 07 41 00 01 41 01 05"), "4.00"),
        ("/3/0/6/1", bytes.fromhex("41 02 05"), "4.00"),
        ("/3/0/6/1", bytes.fromhex("86 06 41 01 05"), "4.00"),
        ("/3/0/6/1", bytes.fromhex("41 01 05 41 01 05"), "4.00"),
        ("/3/0/9/0", bytes.fromhex("41 00 64"), "4.00"),
        # A single-instance resource takes exactly one TLV.
        ("/3/0/9", b"", "4.00"),
        ("/3/0/9", bytes.fromhex("C1 09 64 C1 09 64"), "4.00"),
        # Executable resources have no value.
        ("/3/0", bytes.fromhex("C0 04"), "4.00"),
        # The same instance, resource or resource instance twice: eclipse-leshan/leshan
        # leshan-core/src/test/java/org/eclipse/leshan/core/node/codec/LwM2mNodeDecoderTest.java
        # (tlv_invalid_object_2_instances_with_the_same_id, ..._2_resources_with_the_same_id).
        ("/2", bytes.fromhex("00 01 00 01"), "4.00"),
        ("/3/0", bytes.fromhex("C0 01 C0 01"), "4.00"),
        ("/3", bytes.fromhex("06 00 C1 09 64 C1 09 64"), "4.00"),
        ("/3/0", bytes.fromhex("86 06 41 00 01 41 00 05"), "4.00"),
        ("/3/0/6", bytes.fromhex("41 00 01 41 00 05"), "4.00"),
    ],
)
def test_rejected_write_shapes(builtin: Definitions, base: str, payload: bytes, code: str) -> None:
    assert error_code(payload, base, builtin) == code


@pytest.mark.parametrize(
    ("base", "payload"),
    [
        # Wrong lengths: one byte too many or too few in a resource, an instance, an integer.
        ("/3/0", bytes.fromhex("C2 09 64")),
        ("/3/0", bytes.fromhex("C1 09 64 00")),
        ("/3", bytes.fromhex("04 00 C1 09 64")),
        ("/3", bytes.fromhex("02 00 C1 09 64")),
        ("/3/0", bytes.fromhex("C3 09 00 00 64")),
        ("/3/0", bytes.fromhex("C0 09")),
        ("/3/0", bytes.fromhex("C5 09 00 00 00 00 64")),
        ("/3/0", bytes.fromhex("C8 09 03 00 00 64")),
        ("/3/0", bytes.fromhex("D0 09 00")),
        ("/3/0", bytes.fromhex("D8 09 00 00")),
        ("/3/0", bytes.fromhex("D8 09 FF FF FF 00")),
        ("/3/0", bytes.fromhex("86 06 41 00 01 41 01")),
        # Bad Booleans: only one byte 0 or 1 (/1/0/6 is Boolean).
        ("/1/0", bytes.fromhex("C1 06 02")),
        ("/1/0", bytes.fromhex("C1 06 FF")),
        ("/1/0", bytes.fromhex("C2 06 00 01")),
        ("/1/0", bytes.fromhex("C0 06")),
        # Bad UTF-8 in a String: a bad continuation byte, a lone continuation, a surrogate.
        ("/3/0", bytes.fromhex("C2 00 C3 28")),
        ("/3/0", bytes.fromhex("C1 00 80")),
        ("/3/0", bytes.fromhex("C3 00 ED A0 80")),
        # Floats are 4 or 8 bytes, object links 4 (/3303/0/5700 Float, /1/0/10 Objlnk).
        ("/3303/0", bytes.fromhex("E2 16 44 00 00")),
        ("/1/0", bytes.fromhex("C3 0A 00 01 00")),
        # Identifier 65535 is reserved, in an instance, a resource or a resource instance.
        ("/3", bytes.fromhex("20 FF FF 00")),
        ("/3/0", bytes.fromhex("E1 FF FF 00")),
        ("/3/0/6", bytes.fromhex("84 06 61 FF FF 01")),
        # eclipse-leshan/leshan leshan-core/src/test/java/org/eclipse/leshan/core/tlv/
        # TlvDecoderTest.java decode_broken_tlv.
        ("/3", bytes.fromhex("0011223344556677889900")),
    ],
)
def test_malformed_payloads_are_decode_errors(
    builtin: Definitions, base: str, payload: bytes
) -> None:
    assert error_code(payload, base, builtin) == "4.00"


@pytest.mark.parametrize(
    ("base", "payload", "records", "accepted"),
    [
        ("/3", b"\x08\x00\x79" + SPEC_DEVICE, SPEC_DEVICE_RECORDS, 1),
        ("/3/0", SPEC_DEVICE, SPEC_DEVICE_RECORDS, 13),
        ("/2", ACCESS_CONTROL, ACCESS_CONTROL_RECORDS, 2),
        ("/1", SERVER, SERVER_RECORDS, 1),
    ],
)
def test_every_truncation_fails_or_stops_at_a_tlv_boundary(
    builtin: Definitions, base: str, payload: bytes, records: list[Record], accepted: int
) -> None:
    """A cut inside a TLV is a decode error; a cut between top-level TLVs is a shorter write."""
    path = Path.parse(base)
    boundaries = 0
    for cut in range(len(payload)):
        try:
            decoded = CODEC.decode(payload[:cut], path, builtin)
        except LwM2MError as e:
            assert e.code_text == "4.00", cut
        else:
            boundaries += 1
            assert decoded == records[: len(decoded)], cut
            assert CODEC.encode(decoded, path, builtin) == payload[:cut]
    assert boundaries == accepted


@pytest.mark.parametrize("trailer", [b"\x00", b"\xc1", b"\xc1\x09", b"\xff\xff"])
def test_trailing_garbage_is_a_decode_error(builtin: Definitions, trailer: bytes) -> None:
    assert error_code(ACCESS_CONTROL + trailer, "/2", builtin) == "4.00"


# -- encoding what TLV cannot carry -----------------------------------------------------------


def test_root_read_is_not_acceptable(builtin: Definitions) -> None:
    with pytest.raises(LwM2MError) as exc:
        CODEC.encode(SERVER_RECORDS, Path(), builtin)
    assert exc.value.code_text == "4.06"


@pytest.mark.parametrize(
    ("record", "base"),
    [
        (rec("/3/0/9", "full"), "/3/0"),  # a String for an Integer
        (rec("/3/0/9", 2**63), "/3/0"),  # past 64 bits
        (rec("/1/0/11", -1), "/1/0"),  # a negative Unsigned Integer
        (rec("/1/0/10", "1:2"), "/1/0"),  # text for an Objlnk
        (rec("/3/0/9", 1.5), "/3/0/9"),  # a float for an Integer
        (rec("/3/0/6", 1), "/3/0"),  # a multi-instance resource without an instance ID
        (rec("/3/0/9/0", 1), "/3/0"),  # an instance of a single-instance resource
    ],
)
def test_records_that_do_not_fit_their_definitions_are_internal_errors(
    builtin: Definitions, record: Record, base: str
) -> None:
    with pytest.raises(LwM2MError) as exc:
        CODEC.encode([record], Path.parse(base), builtin)
    assert exc.value.code_text == "5.00"


# -- properties -------------------------------------------------------------------------------


@given(reads(levels=ALL_LEVELS))
def test_round_trip(read: Read) -> None:
    payload = CODEC.encode(read.records, read.base, read.definitions)
    assert CODEC.decode(payload, read.base, read.definitions) == read.records


@given(reads(levels=ALL_LEVELS, with_prefix=True))
def test_round_trip_with_prefix(read: Read) -> None:
    payload = CODEC.encode(read.records, read.base, read.definitions)
    assert CODEC.decode(payload, read.base, read.definitions) == read.records


@given(reads(levels=ALL_LEVELS), st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_lwm2m_errors(read: Read, payload: bytes) -> None:
    try:
        CODEC.decode(payload, read.base, read.definitions)
    except LwM2MError:
        pass


@given(reads(levels=ALL_LEVELS), st.data())
def test_corrupted_payloads_decode_or_raise_lwm2m_errors(read: Read, data: st.DataObject) -> None:
    payload = bytearray(CODEC.encode(read.records, read.base, read.definitions))
    if payload:
        at = data.draw(st.integers(0, len(payload) - 1))
        payload[at] = data.draw(st.integers(0, 255))
    try:
        CODEC.decode(bytes(payload), read.base, read.definitions)
    except LwM2MError:
        pass
