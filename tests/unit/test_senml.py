"""SenML JSON (110) and SenML CBOR (112): published vectors, round trips, and bad input.

Vectors come from the OMA LwM2M 1.1 Core spec tables (as Wakaama's tests transcribe them),
RFC 8428, and Leshan's and Wakaama's codec tests; each cites its source.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.objects.builtin import builtin_definitions
from bridged.objects.definitions import (
    Definitions,
    ObjectDef,
    Operations,
    ResourceDef,
    ResourceType,
    make_object,
)
from bridged.objects.errors import BadRequest, LwM2MError
from bridged.objects.formats import CompositeCodec, ContentFormat, composite_codec_for, senml
from bridged.objects.formats.senml_cbor import CODEC as CBOR
from bridged.objects.formats.senml_json import CODEC as JSON
from bridged.objects.formats.senml_json import DIALECT as JSON_DIALECT
from bridged.objects.paths import ROOT, Level, Path
from bridged.objects.values import ObjLnk, Record
from strategies import Read, composite_reads, ids, prefixes, reads, timed
from vectors import OMA_DEVICE as DEVICE_RECORDS

R = Operations.R
RW = Operations.RW
CODECS = [JSON, CBOR]


def p(text: str) -> Path:
    return Path.parse(text)


def definitions(*objects: ObjectDef, builtin: bool = True) -> Definitions:
    reg = builtin_definitions() if builtin else Definitions()
    reg.extend(objects)
    return reg


def res(rid: int, rtype: ResourceType, multiple: bool = False) -> ResourceDef:
    return ResourceDef(rid, f"Res {rid}", RW, rtype, multiple)


def fails(call: Callable[[], object], code: str) -> LwM2MError:
    with pytest.raises(LwM2MError) as info:
        call()
    assert info.value.code_text == code, str(info.value)
    return info.value


# Objects 65, 66 and 67 of the OMA LwM2M 1.1 Core spec's object link example (Table 7.4.4-4),
# with the types Leshan's decoder tests give them (LwM2mNodeDecoderTest.loadModel).
OBJ65 = make_object(65, "Obj65", [res(0, ResourceType.OBJLNK, True), res(1, ResourceType.STRING),
                                  res(2, ResourceType.INTEGER)])  # fmt: skip
OBJ66 = make_object(66, "Obj66", [res(0, ResourceType.STRING), res(1, ResourceType.STRING),
                                  res(2, ResourceType.OBJLNK)])  # fmt: skip
OBJ67 = make_object(67, "Obj67", [res(0, ResourceType.STRING), res(1, ResourceType.STRING)])
OBJ72 = make_object(72, "Obj72", [res(2, ResourceType.FLOAT)])
# A small slice of IPSO Location (6) and Set Point (3308) that the vectors below use.
LOCATION = make_object(6, "Location", [res(0, ResourceType.FLOAT), res(1, ResourceType.FLOAT),
                                       res(5, ResourceType.TIME)])  # fmt: skip
# Leshan's tests write /4/0/0-2 as single Integers, as its test model declares them (in the OMA
# registry /4/0/1 is multi-instance).
CONNECTIVITY = make_object(4, "Connectivity", [res(i, ResourceType.INTEGER) for i in range(3)])
SET_POINT = make_object(3308, "Set Point", [res(5900, ResourceType.FLOAT)])
# Wakaama's test object 34 / 12 / 65 layouts (tests/data_senml_json_tests.c).
OBJ34 = make_object(34, "Obj34", [res(0, ResourceType.OBJLNK, True), res(1, ResourceType.STRING),
                                  res(2, ResourceType.INTEGER)])  # fmt: skip
OBJ34_OPAQUE = make_object(34, "Obj34", [res(2, ResourceType.OPAQUE)])
OBJ34_STRING = make_object(34, "Obj34", [res(2, ResourceType.STRING)])
OBJ12 = make_object(12, "Obj12", [res(1, ResourceType.INTEGER), res(2, ResourceType.FLOAT, True),
                                  res(3, ResourceType.FLOAT)])  # fmt: skip
OBJ65_543 = make_object(65, "Obj65", [res(0, ResourceType.STRING), res(1, ResourceType.INTEGER),
                                      res(2, ResourceType.BOOLEAN, True)])  # fmt: skip


# OMA LwM2M 1.1 Core Table 7.4.4-2 (Read /3/0 in SenML JSON), as Wakaama's senml_json_test_1
# and Leshan's senml_json_encode_device_object_instance carry it.
DEVICE_JSON = (
    b'[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},'
    b'{"n":"1","vs":"Lightweight M2M Client"},{"n":"2","vs":"345000123"},{"n":"3","vs":"1.0"},'
    b'{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"7/0","v":3800},{"n":"7/1","v":5000},'
    b'{"n":"8/0","v":125},{"n":"8/1","v":900},{"n":"9","v":100},{"n":"10","v":15},'
    b'{"n":"11/0","v":0},{"n":"13","v":1367491215},{"n":"14","vs":"+02:00"},{"n":"16","vs":"U"}]'
)

# The same table in SenML CBOR: Wakaama tests/data_senml_cbor_tests.c, senml_cbor_test_1.
DEVICE_CBOR = bytes.fromhex(
    "90a321652f332f302f00613003744f70656e204d6f62696c6520416c6c69616e6365a200613103764c696768"
    "74776569676874204d324d20436c69656e74a20061320369333435303030313233a20061330363312e30a200"
    "63362f300201a20063362f310205a20063372f3002190ed8a20063372f3102191388a20063382f300218"
    "7da20063382f3102190384a2006139021864a200623130020fa2006431312f300200a200623133021a51"
    "82428fa20062313403662b30323a3030a200623136036155"
)


# -- Published vectors: SenML JSON --------------------------------------------------------------


def test_device_instance_json_vector() -> None:
    reg = builtin_definitions()
    assert JSON.decode(DEVICE_JSON, p("/3/0"), reg) == DEVICE_RECORDS
    assert JSON.encode(DEVICE_RECORDS, p("/3/0"), reg) == DEVICE_JSON


def test_single_resource_json_vector() -> None:
    # OMA Core Table 7.4.4-5 (Wakaama senml_json_test_4; Leshan senml_json_encode_single_resource).
    payload = b'[{"bn":"/3/0/0","vs":"Open Mobile Alliance"}]'
    records = [Record(p("/3/0/0"), "Open Mobile Alliance")]
    assert JSON.decode(payload, p("/3/0/0"), builtin_definitions()) == records
    assert JSON.encode(records, p("/3/0/0"), builtin_definitions()) == payload


def test_multiple_resource_json_vector() -> None:
    # Leshan LwM2mNodeEncoderTest.senml_json_encode_multiple_resource.
    payload = b'[{"bn":"/3/0/7/","n":"0","v":3800},{"n":"1","v":5000}]'
    records = [Record(p("/3/0/7/0"), 3800), Record(p("/3/0/7/1"), 5000)]
    assert JSON.encode(records, p("/3/0/7"), builtin_definitions()) == payload
    assert JSON.decode(payload, p("/3/0/7"), builtin_definitions()) == records


def test_timestamped_json_vector() -> None:
    # OMA Core Table 7.4.4-3 (Wakaama senml_json_test_2): bt on the first record only.
    payload = (
        b'[{"bn":"/72/","bt":25462634,"n":"1/2","v":22.4,"t":-5},'
        b'{"n":"1/2","v":22.9,"t":-30},{"n":"1/2","v":24.1,"t":-50}]'
    )
    assert JSON.decode(payload, p("/72"), definitions(OBJ72)) == [
        Record(p("/72/1/2"), 22.4, 25462634 - 5),
        Record(p("/72/1/2"), 22.9, 25462634 - 30),
        Record(p("/72/1/2"), 24.1, 25462634 - 50),
    ]


def test_object_links_json_vector() -> None:
    # OMA Core Table 7.4.4-4 (Wakaama senml_json_test_3, /66/1/2 corrected to decimal there).
    payload = (
        b'[{"bn":"/","n":"65/0/0/0","vlo":"66:0"},{"n":"65/0/0/1","vlo":"66:1"},'
        b'{"n":"65/0/1","vs":"8613800755500"},{"n":"65/0/2","v":1},'
        b'{"n":"66/0/0","vs":"myService1"},{"n":"66/0/1","vs":"Internet.15.234"},'
        b'{"n":"66/0/2","vlo":"67:0"},{"n":"66/1/0","vs":"myService2"},'
        b'{"n":"66/1/1","vs":"Internet.15.235"},{"n":"66/1/2","vlo":"65535:65535"},'
        b'{"n":"67/0/0","vs":"85.76.76.84"},{"n":"67/0/1","vs":"85.76.255.255"}]'
    )
    records = JSON.decode(payload, ROOT, definitions(OBJ65, OBJ66, OBJ67))
    assert [str(r.path) for r in records][:3] == ["/65/0/0/0", "/65/0/0/1", "/65/0/1"]
    assert records[0].value == ObjLnk(66, 0)
    assert records[9].value == ObjLnk(65535, 65535)
    assert records[3].value == 1
    # The same pack with the base name changing midway and emptied (Wakaama senml_json_test_17,
    # its "/67/0/00" written "/67/0/0": paths here refuse leading zeros).
    variant = (
        b'[{"bn":"/65/0/","n":"0/0","vlo":"66:0"},{"n":"0/1","vlo":"66:1"},'
        b'{"n":"1","vs":"8613800755500"},{"n":"2","v":1},'
        b'{"bn":"/66/0/","n":"0","vs":"myService1"},{"n":"1","vs":"Internet.15.234"},'
        b'{"n":"2","vlo":"67:0"},{"bn":"/66/1/","n":"0","vs":"myService2"},'
        b'{"n":"1","vs":"Internet.15.235"},{"n":"2","vlo":"65535:65535"},'
        b'{"bn":"","n":"/67/0/0","vs":"85.76.76.84"},{"n":"/67/0/1","vs":"85.76.255.255"}]'
    )
    assert JSON.decode(variant, ROOT, definitions(OBJ65, OBJ66, OBJ67)) == records


def test_composite_write_json_vector() -> None:
    # OMA Core Table 7.4.4-8 (Wakaama senml_json_test_7): a Write-Composite under the root.
    payload = (
        b'[{"n":"/3311/0/5850", "vb":false},{"n":"/3311/1/5850", "vb":false},'
        b'{"n":"/3311/2/5851", "v":20},{"n":"/3308/0/5900", "v":18}]'
    )
    assert JSON.decode(payload, ROOT, definitions(SET_POINT)) == [
        Record(p("/3311/0/5850"), False),
        Record(p("/3311/1/5850"), False),
        Record(p("/3311/2/5851"), 20),
        Record(p("/3308/0/5900"), 18.0),
    ]


def test_composite_read_request_json_vector() -> None:
    # OMA Core Table 7.4.4-6 (Wakaama senml_json_test_5; Leshan senml_json_encode_path_using_name).
    payload = b'[{"n":"/3/0/0"},{"n":"/3/0/9"},{"n":"/1/0/1"}]'
    paths = [p("/3/0/0"), p("/3/0/9"), p("/1/0/1")]
    assert JSON.decode_paths(payload) == paths
    assert JSON.encode_paths(paths) == payload
    # Leshan senml_json_decode_path_using_base_name.
    assert JSON.decode_paths(b'[{"bn":"/4/0/", "n":"0"},{"n":"1"},{"n":"2"}]') == [
        p("/4/0/0"),
        p("/4/0/1"),
        p("/4/0/2"),
    ]


@pytest.mark.parametrize(
    "payload",
    [
        # Leshan senml_json_decode_invalid_path_with_value / _with_timestamp.
        b'[{"bn":"/4/0/", "n":"0"},{"n":"1", "v":200},{"n":"2"}]',
        b'[{"bn":"/4/0/", "n":"0"},{"n":"1", "t":20000000},{"n":"2"}]',
    ],
)
def test_path_list_refuses_values_and_times(payload: bytes) -> None:
    fails(lambda: JSON.decode_paths(payload), "4.00")


def test_base_name_changes_midway_json_vector() -> None:
    # Leshan LwM2mNodeDecoderTest.senml_json_decode_acl_object.
    payload = (
        b'[{"bn":"/2/3/","n":"0","v":3},{"n":"1","v":1},{"n":"3","v":123},'
        b'{"bn":"/2/2/","n":"0","v":4},{"n":"1","v":2},{"n":"3","v":124}]'
    )
    assert JSON.decode(payload, p("/2"), builtin_definitions()) == [
        Record(p("/2/3/0"), 3),
        Record(p("/2/3/1"), 1),
        Record(p("/2/3/3"), 123),
        Record(p("/2/2/0"), 4),
        Record(p("/2/2/1"), 2),
        Record(p("/2/2/3"), 124),
    ]


def test_base_name_only_per_record_json_vector() -> None:
    # Leshan senml_json_decode_mixed_resource_and_instance: bn alone, then bn + n.
    payload = (
        b'[{"bn":"/4/0/0","v":45},{"bn":"/4/0/1","v":30},{"bn":"/4/0/2","v":100},'
        b'{"bn":"/6/0/","n":"0","v":43.918998},{"n":"1","v":2.351149},{"n":"5","v":1610029880}]'
    )
    assert JSON.decode(payload, ROOT, definitions(CONNECTIVITY, LOCATION)) == [
        Record(p("/4/0/0"), 45),
        Record(p("/4/0/1"), 30),
        Record(p("/4/0/2"), 100),
        Record(p("/6/0/0"), 43.918998),
        Record(p("/6/0/1"), 2.351149),
        Record(p("/6/0/5"), 1610029880),
    ]


def test_base_time_survives_base_name_change_json_vector() -> None:
    # Leshan senml_timestamped_resources_with_several_bn: bt set once, t relative to it.
    payload = (
        b'[{"bn": "/3303/0/5700","bt": 1699877805.766,"v": -128.8},'
        b'{"bn": "/6/0/0","t": 0.101,"v": -39.0}]'
    )
    assert JSON.decode(payload, ROOT, definitions(LOCATION)) == [
        Record(p("/3303/0/5700"), -128.8, 1699877805.766),
        Record(p("/6/0/0"), -39.0, 1699877805.766 + 0.101),
    ]
    # Leshan senml_multiple_timestamped_nodes: bt inherited into a record with a new bn.
    payload = (
        b'[{"bn":"/4/0/","bt":268600000,"n":"0","v":1,"t":1},{"n":"1","v":2,"t":2},'
        b'{"n":"1","v":3,"t":3},{"bn":"/3/0/7/","n":"0","v":3800}]'
    )
    assert JSON.decode(payload, ROOT, definitions(CONNECTIVITY)) == [
        Record(p("/4/0/0"), 1, 268600001),
        Record(p("/4/0/1"), 2, 268600002),
        Record(p("/4/0/1"), 3, 268600003),
        Record(p("/3/0/7/0"), 3800, 268600000),
    ]


def test_opaque_json_vector() -> None:
    # Leshan senml_json_encode_opaque_resource / senml_json_decode_opaque_resource.
    payload = b'[{"bn":"/0/0/3","vd":"q83v"}]'
    records = [Record(p("/0/0/3"), bytes.fromhex("abcdef"))]
    assert JSON.encode(records, p("/0/0/3"), builtin_definitions()) == payload
    assert JSON.decode(payload, p("/0/0/3"), builtin_definitions()) == records


@pytest.mark.parametrize(
    ("vd", "data"),
    [
        ("AQIDBAU=", b"\x01\x02\x03\x04\x05"),  # Wakaama senml_json_test_23: padded
        ("MA==", b"0"),  # Wakaama senml_json_test_23, issue #274
        ("", b""),  # Wakaama senml_json_test_26: empty opaque
        ("-_8", b"\xfb\xff"),  # URL-safe alphabet, unpadded (RFC 8428 §5)
    ],
)
def test_opaque_json_padding_variants(vd: str, data: bytes) -> None:
    payload = json.dumps([{"bn": "/34/0/2", "vd": vd}]).encode()
    assert JSON.decode(payload, p("/34/0/2"), definitions(OBJ34_OPAQUE)) == [
        Record(p("/34/0/2"), data)
    ]


def test_integral_number_for_time_json_vector() -> None:
    # Leshan senml_json_decode_single_resource_using_exponantial_notation.
    payload = b'[{"bn":"/3/0/13","v":1.638435E9}]'
    assert JSON.decode(payload, p("/3/0/13"), builtin_definitions()) == [
        Record(p("/3/0/13"), 1638435000)
    ]


@pytest.mark.parametrize(
    ("payload", "base"),
    [
        # Wakaama senml_json_test_9: bn "/2/3" + n "/0".
        (b'[{"bn" : "/2/3", "n":"/0","v":1234}]', "/2/3"),
        # Wakaama senml_json_test_16: an empty n.
        (b'[{"bn":"/2/3/0", "n":"","v":1234}]', "/2/3/0"),
        # Leshan json_cut_basename_name_in_the_middle_of_an_id, in SenML: "/2/" + "3/0".
        (b'[{"bn":"/2/","n":"3/0","v":1234}]', "/2/3"),
    ],
)
def test_names_are_plain_concatenation(payload: bytes, base: str) -> None:
    assert JSON.decode(payload, p(base), builtin_definitions()) == [Record(p("/2/3/0"), 1234)]


def test_base_fields_anywhere_in_the_first_record() -> None:
    # Wakaama senml_json_test_10: bn and bt after n and v in the first record.
    payload = (
        b'[{"n":"1","v":1234,"bn" : "/12/0/","bt" : 1234567},{"n":"3","v":56.789},'
        b'{"n":"2/0","v":0.23},{"n":"2/1","v":-52.0006}]'
    )
    assert JSON.decode(payload, p("/12/0"), definitions(OBJ12)) == [
        Record(p("/12/0/1"), 1234, 1234567),
        Record(p("/12/0/3"), 56.789, 1234567),
        Record(p("/12/0/2/0"), 0.23, 1234567),
        Record(p("/12/0/2/1"), -52.0006, 1234567),
    ]


def test_version_and_unknown_labels() -> None:
    reg = definitions(OBJ34)
    # Wakaama senml_json_test_18 / 20: bver 10 and unknown labels are fine.
    for payload in (
        b'[{"bver":10,"n":"/34/0/2","v":1}]',
        b'[{"test":"good","n":"/34/0/2","v":1}]',
        b'[{"n":"/34/0/2","u":"Cel","ut":5,"bu":"Cel","v":1}]',
    ):
        assert JSON.decode(payload, ROOT, reg) == [Record(p("/34/0/2"), 1)]
    # Wakaama senml_json_test_19 / 21: bver 11 and a must-understand label are refused.
    fails(lambda: JSON.decode(b'[{"bver":11,"n":"/34/0/2","v":1}]', ROOT, reg), "4.00")
    fails(lambda: JSON.decode(b'[{"bn":"/","test_":"x","n":"34/0/2","v":1}]', ROOT, reg), "4.00")
    # Sums would change a value's meaning.
    fails(lambda: JSON.decode(b'[{"n":"/34/0/2","s":1}]', ROOT, reg), "4.00")


def test_base_value_is_added() -> None:
    # Wakaama senml_json_test_22: bv 1 + v 1 is 2.
    payload = b'[{ "bv":1,"n":"/34/0/2","v":1}]'
    assert JSON.decode(payload, ROOT, definitions(OBJ34)) == [Record(p("/34/0/2"), 2)]


def test_string_escapes_and_empty_strings() -> None:
    # Wakaama senml_json_test_24 (escapes) and senml_json_test_26 (empty string).
    text = "".join(map(chr, range(33))) + '"\\/\b\f\n\r\t'
    reg = definitions(OBJ34_STRING)
    payload = JSON.encode([Record(p("/34/0/2"), text)], p("/34/0/2"), reg)
    assert JSON.decode(payload, p("/34/0/2"), reg) == [Record(p("/34/0/2"), text)]
    assert JSON.decode(b'[{"bn":"/34/0/2","vs":""}]', p("/34/0/2"), reg) == [
        Record(p("/34/0/2"), "")
    ]


def test_rfc8428_names_are_not_paths() -> None:
    # RFC 8428 §5.1.1: a valid SenML pack, but its name is no LwM2M path.
    payload = b'[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]'
    err = fails(lambda: JSON.decode(payload, ROOT, builtin_definitions()), "4.00")
    assert "urn:dev:ow:10e2073a01080063" in str(err)


# -- Published vectors: SenML CBOR --------------------------------------------------------------


def test_device_instance_cbor_vector() -> None:
    reg = builtin_definitions()
    assert CBOR.decode(DEVICE_CBOR, p("/3/0"), reg) == DEVICE_RECORDS
    assert CBOR.encode(DEVICE_RECORDS, p("/3/0"), reg) == DEVICE_CBOR


def test_timestamped_cbor_vector() -> None:
    # OMA Core Table 7.4.4-3 in CBOR (Wakaama senml_cbor_test_2).
    payload = bytes.fromhex(
        "83a521642f37322f221a0184876a0063312f3202fb40366666666666660624a30063312f3202fb40"
        "36e6666666666606381da30063312f3202fb403819999999999a063831"
    )
    assert CBOR.decode(payload, p("/72"), definitions(OBJ72)) == [
        Record(p("/72/1/2"), 22.4, 25462634 - 5),
        Record(p("/72/1/2"), 22.9, 25462634 - 30),
        Record(p("/72/1/2"), 24.1, 25462634 - 50),
    ]


def test_opaque_cbor_vector() -> None:
    # Leshan senml_cbor_encode_opaque_resource: [{-2: "/0/0/3", 8: h'ABCDEF'}].
    payload = bytes.fromhex("81a221662f302f302f330843abcdef")
    records = [Record(p("/0/0/3"), bytes.fromhex("abcdef"))]
    assert CBOR.encode(records, p("/0/0/3"), builtin_definitions()) == payload
    assert CBOR.decode(payload, p("/0/0/3"), builtin_definitions()) == records


def test_decimal_fraction_times_cbor_vector() -> None:
    # Leshan senml_cbor_encode_timestamped_nodes: bt as tag 4 decimal fractions.
    payload = bytes.fromhex(
        "83a321662f302f302f3022c482001a1dcd6504036c53616d706c65537472696e67a321662f302f302f"
        "3122c482001a1dcd650504f4a321662f302f302f3222c482001a1dcd6506021901c8"
    )
    assert CBOR.decode(payload, ROOT, builtin_definitions()) == [
        Record(p("/0/0/0"), "SampleString", 500000004),
        Record(p("/0/0/1"), False, 500000005),
        Record(p("/0/0/2"), 456, 500000006),
    ]


def test_decimal_fraction_values() -> None:
    reg = definitions(OBJ72)
    # [{-2: "/72/0/2", 2: 4([-1, 225])}] is 22.5
    payload = cbor2.dumps([{-2: "/72/0/2", 2: cbor2.CBORTag(4, [-1, 225])}])
    assert CBOR.decode(payload, p("/72/0/2"), reg) == [Record(p("/72/0/2"), 22.5)]
    for bad in ([1], [0.5, 1], [10**6, 1], "x"):
        payload = cbor2.dumps([{-2: "/72/0/2", 2: cbor2.CBORTag(4, bad)}])
        fails(lambda payload=payload: CBOR.decode(payload, p("/72/0/2"), reg), "4.00")


def test_label_order_and_base_name_forms_cbor_vectors() -> None:
    # Wakaama senml_cbor_test_8: labels in any order in a map; re-encoded in the usual order.
    reg = definitions(OBJ65_543)
    payload = bytes.fromhex(
        "84a321682f36352f3534332f00613003654c574d324da2021907df006131a20063322f3004f5a204f40063322f31"
    )
    expected = bytes.fromhex(
        "84a321682f36352f3534332f00613003654c574d324da2006131021907dfa20063322f3004f5a20063322f3104f4"
    )
    records = CBOR.decode(payload, p("/65/543"), reg)
    assert records == [
        Record(p("/65/543/0"), "LWM2M"),
        Record(p("/65/543/1"), 2015),
        Record(p("/65/543/2/0"), True),
        Record(p("/65/543/2/1"), False),
    ]
    assert CBOR.encode(records, p("/65/543"), reg) == expected
    # Wakaama senml_cbor_test_9: bn "/2/3" + n "/0", re-encoded as bn "/2/3/" + n "0".
    payload = bytes.fromhex("81a321642f322f3300622f30021904d2")
    records = CBOR.decode(payload, p("/2/3"), builtin_definitions())
    assert records == [Record(p("/2/3/0"), 1234)]
    assert CBOR.encode(records, p("/2/3"), builtin_definitions()) == bytes.fromhex(
        "81a321652f322f332f006130021904d2"
    )


def test_rfc8428_cbor_example() -> None:
    # RFC 8428 §6: the CBOR form of the §5.1.3 pack (core-wg/senml-spec ex3.gen.cbor.hex).
    # It parses as SenML (base fields, float16, bver 5, units) but names no LwM2M path.
    payload = bytes.fromhex(
        "87a721781b75726e3a6465763a6f773a3130653230373361303130383030363a22fb41d303a15b0010"
        "6223614120050067766f6c7461676501615602fb405e066666666666a3006763757272656e74062402"
        "fb3ff3333333333333a3006763757272656e74062302fb3ff4cccccccccccda3006763757272656e74"
        "062202fb3ff6666666666666a3006763757272656e74062102f93e00a3006763757272656e74062002"
        "fb3ff999999999999aa3006763757272656e74060002fb3ffb333333333333"
    )
    err = fails(lambda: CBOR.decode(payload, ROOT, builtin_definitions()), "4.00")
    assert "urn:dev:ow:10e2073a0108006:voltage" in str(err)


def test_composite_read_request_cbor_vector() -> None:
    # OMA Core Table 7.4.4-6 in CBOR (Wakaama senml_cbor_test_5).
    payload = bytes.fromhex("83a100662f332f302f30a100662f332f302f39a100662f312f302f31")
    paths = [p("/3/0/0"), p("/3/0/9"), p("/1/0/1")]
    assert CBOR.decode_paths(payload) == paths
    assert CBOR.encode_paths(paths) == payload


def test_composite_codecs_are_registered() -> None:
    assert composite_codec_for(ContentFormat.SENML_JSON) is JSON
    assert composite_codec_for(ContentFormat.SENML_CBOR) is CBOR


# -- Conventions --------------------------------------------------------------------------------


def test_gateway_prefix_is_part_of_the_name() -> None:
    reg = builtin_definitions()
    records = [Record(p("/dev0/3303/0/5700"), 21.5)]
    assert JSON.encode(records, p("/dev0/3303/0"), reg) == (
        b'[{"bn":"/dev0/3303/0/","n":"5700","v":21.5}]'
    )
    assert JSON.encode(records, ROOT, reg) == b'[{"n":"/dev0/3303/0/5700","v":21.5}]'
    assert JSON.decode(b'[{"n":"/dev0/3303/0/5700","v":21.5}]', ROOT, reg) == records
    # A name without the prefix is outside a prefixed target.
    fails(lambda: JSON.decode(b'[{"n":"/3303/0/5700","v":1}]', p("/dev0/3303/0"), reg), "4.00")


def test_time_encoding() -> None:
    reg = definitions(OBJ72)
    records = [Record(p("/72/0/2"), 1.5, 1700000000.25), Record(p("/72/0/2"), 2.5, -5)]
    assert JSON.encode(records, p("/72/0/2"), reg) == (
        b'[{"bn":"/72/0/2","v":1.5,"t":1700000000.25},{"v":2.5,"t":-5}]'
    )
    # A bt alone gives every later record that time.
    assert JSON.decode(b'[{"bn":"/72/0/2","bt":7,"v":1},{"v":2}]', p("/72/0/2"), reg) == [
        Record(p("/72/0/2"), 1.0, 7),
        Record(p("/72/0/2"), 2.0, 7),
    ]


@pytest.mark.parametrize("codec", CODECS)
def test_floats_survive_exactly(codec: CompositeCodec) -> None:
    reg = definitions(OBJ72)
    for x in (0.1, 1e-310, 1.7976931348623157e308, -0.0, 2.0**53 + 2, 22.4):
        records = [Record(p("/72/0/2"), x, x)]
        assert codec.decode(codec.encode(records, p("/72/0/2"), reg), p("/72/0/2"), reg) == records


# -- Round trips --------------------------------------------------------------------------------

ALL_LEVELS = (Level.OBJECT, Level.INSTANCE, Level.RESOURCE, Level.RESOURCE_INSTANCE)
finite = st.floats(allow_nan=False, allow_infinity=False)


def roundtrip(codec: CompositeCodec, read: Read) -> None:
    payload = codec.encode(read.records, read.base, read.definitions)
    assert codec.decode(payload, read.base, read.definitions) == read.records


@pytest.mark.parametrize("codec", CODECS)
@given(read=reads(levels=ALL_LEVELS))
def test_roundtrip_reads(codec: CompositeCodec, read: Read) -> None:
    roundtrip(codec, read)


@pytest.mark.parametrize("codec", CODECS)
@given(read=reads(levels=ALL_LEVELS, with_prefix=True))
def test_roundtrip_prefixed_reads(codec: CompositeCodec, read: Read) -> None:
    roundtrip(codec, read)


@pytest.mark.parametrize("codec", CODECS)
@given(read=composite_reads(with_prefix=True))
def test_roundtrip_composite_reads(codec: CompositeCodec, read: Read) -> None:
    roundtrip(codec, read)


@pytest.mark.parametrize("codec", CODECS)
@given(data=st.data())
def test_roundtrip_timed_reads(codec: CompositeCodec, data: st.DataObject) -> None:
    read = data.draw(st.one_of(reads(levels=ALL_LEVELS, with_prefix=True), composite_reads()))
    times = data.draw(st.lists(finite, min_size=len(read.records), max_size=len(read.records)))
    roundtrip(codec, timed(read, times))


paths = st.builds(
    Path,
    st.lists(ids, max_size=4).map(tuple),
    st.one_of(st.none(), prefixes),
)


@pytest.mark.parametrize("codec", CODECS)
@given(path_list=st.lists(paths, max_size=8))
def test_roundtrip_path_lists(codec: CompositeCodec, path_list: list[Path]) -> None:
    assert codec.decode_paths(codec.encode_paths(path_list)) == path_list


# -- Bad input ----------------------------------------------------------------------------------

SMALL = make_object(
    1024,
    "Small",
    [
        res(0, ResourceType.INTEGER),
        res(1, ResourceType.FLOAT),
        res(2, ResourceType.STRING),
        res(3, ResourceType.OPAQUE),
        res(4, ResourceType.UNSIGNED, True),
        res(5, ResourceType.OBJLNK),
        res(6, ResourceType.BOOLEAN),
        ResourceDef(7, "Run", Operations.E, ResourceType.NONE),
    ],
)
SMALL_REG = definitions(SMALL, builtin=False)


def json_records(*records: dict[str, object]) -> bytes:
    return json.dumps(list(records)).encode()


@pytest.mark.parametrize(
    ("record", "code"),
    [
        ({"n": "/1024/0/0", "vs": "5"}, "4.00"),  # String for an Integer
        ({"n": "/1024/0/0", "v": 1.5}, "4.00"),  # fraction for an Integer
        ({"n": "/1024/0/0", "v": 2**63}, "4.00"),  # beyond int64
        ({"n": "/1024/0/4/0", "v": 2**64}, "4.00"),  # beyond uint64
        ({"n": "/1024/0/4/0", "v": -1}, "4.00"),  # negative Unsigned
        ({"n": "/1024/0/0", "v": True}, "4.00"),  # a JSON boolean is no number
        ({"n": "/1024/0/0", "vb": True}, "4.00"),
        ({"n": "/1024/0/1", "vs": "1.5"}, "4.00"),
        ({"n": "/1024/0/2", "v": 5}, "4.00"),
        ({"n": "/1024/0/2", "vs": None}, "4.00"),
        ({"n": "/1024/0/3", "vd": "q83v+"}, "4.00"),  # standard alphabet in base64url
        ({"n": "/1024/0/3", "vd": "a"}, "4.00"),  # impossible length
        ({"n": "/1024/0/3", "vd": "q8=3v"}, "4.00"),
        ({"n": "/1024/0/3", "vd": 12}, "4.00"),
        ({"n": "/1024/0/3", "vs": "q83v"}, "4.00"),
        ({"n": "/1024/0/5", "vlo": "1:2:3"}, "4.00"),
        ({"n": "/1024/0/5", "vlo": "70000:0"}, "4.00"),
        ({"n": "/1024/0/5", "vlo": "\u0661:0"}, "4.00"),  # non-ASCII digit
        ({"n": "/1024/0/6", "vb": 1}, "4.00"),
        ({"n": "/1024/0/7", "v": 1}, "4.00"),  # executable: no value
        ({"n": "/1024/0/0"}, "4.00"),  # no value
        ({"n": "/1024/0/0", "v": 1, "vs": "1"}, "4.00"),  # two values
        ({"n": "/1024/0/4", "v": 1}, "4.00"),  # multi-instance resource without instance
        ({"n": "/1024/0/0/1", "v": 1}, "4.00"),  # instance of a single resource
        ({"n": "/1024/0", "v": 1}, "4.00"),  # not a resource
        ({"n": "/1024/0/x", "v": 1}, "4.00"),  # not a path
        ({"n": "/1024/0/01", "v": 1}, "4.00"),
        ({"n": 1024, "v": 1}, "4.00"),
        ({"bn": ["/1024"], "n": "/0/0", "v": 1}, "4.00"),
        ({"n": "/1024/0/0", "v": 1, "t": "now"}, "4.00"),
        ({"n": "/1024/0/0", "v": 1, "bt": 1e308, "t": 1e308}, "4.00"),  # time overflows
        ({"n": "/1024/0/0", "v": math.inf}, "4.00"),
        ({"n": "/1025/0/0", "v": 1}, "4.04"),  # unknown object
        ({"n": "/1024/0/99", "v": 1}, "4.04"),  # unknown resource
    ],
)
def test_bad_records(record: dict[str, object], code: str) -> None:
    fails(lambda: JSON.decode(json_records(record), ROOT, SMALL_REG), code)
    labels = {"bn": -2, "bt": -3, "n": 0, "t": 6, "v": 2, "vs": 3, "vb": 4, "vd": 8}
    cbor_record = {labels.get(k, k): v for k, v in record.items()}
    fails(lambda: CBOR.decode(cbor2.dumps([cbor_record]), ROOT, SMALL_REG), code)


def test_names_outside_the_target() -> None:
    payload = json_records({"n": "/1024/1/0", "v": 1})
    fails(lambda: JSON.decode(payload, p("/1024/0"), SMALL_REG), "4.00")
    fails(lambda: JSON.decode(payload, p("/1024/1/1"), SMALL_REG), "4.00")
    assert JSON.decode(payload, p("/1024/1"), SMALL_REG) == [Record(p("/1024/1/0"), 1)]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{}",
        b'{"n":"/1024/0/0","v":1}',
        b"[1]",
        b"[[]]",
        b'[{"n":"/1024/0/0","v":NaN}]',
        b'[{"n":"/1024/0/0","v":Infinity}]',
        b'[{"n":"/1024/0/0","v":-Infinity}]',
        b'[{"n":"/1024/0/0","v":1e400}]',  # beyond the float range: parses as infinity
        b'[{"n":"/1024/0/0","v":1,"v":2}]',  # duplicate key
        b'[{"n":"/1024/0/0","v":1}',  # truncated
        b'[{"n":"/1024/0/0","v":1}] x',
        b"\xef\xbb\xbf[]",  # BOM
        '[{"n":"/1024/0/2","vs":"é"}]'.encode("utf-16"),
        b"[" * 100000 + b"]" * 100000,
        b"[" + b"9" * 5000 + b"]",
    ],
)
def test_bad_json(payload: bytes) -> None:
    fails(lambda: JSON.decode(payload, ROOT, SMALL_REG), "4.00")


def test_empty_pack_is_no_records() -> None:
    assert JSON.decode(b"[]", p("/1024/0"), SMALL_REG) == []
    assert CBOR.decode(b"\x80", p("/1024/0"), SMALL_REG) == []


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "a0",  # a map, not an array
        "81",  # truncated
        "81a2",
        "81a100",
        "8180",  # an array inside
        "80ff",  # stray byte after the item
        "8000",
        "81a20066",  # truncated text
        "81a20062c328",  # invalid UTF-8 in a name
        "81a2006a2f313032342f302f3002c11a5182428f",  # tag 1 (date)
        "81a2006a2f313032342f302f3002c249010000000000000000",  # tag 2 bignum
        "81a2006a2f313032342f302f3002f7",  # undefined
        "81a2006a2f313032342f302f3002f6",  # null
        "81a2006a2f313032342f302f300263313233",  # text where a number belongs
        "81a2006a2f313032342f302f3002fb7ff8000000000000",  # NaN
        "81a2006a2f313032342f302f3002f97c00",  # half-precision Infinity
        "81a2006a2f313032342f302f30f902",  # float label 2.0
        "81a2f46a2f313032342f302f300201",  # label false (== 0)
        "81a2006a2f313032342f302f30a001",  # map label
        "81a3006a2f313032342f302f3002010202",  # duplicate label
        "9f" * 500 + "ff" * 500,  # too deep
        "5b7fffffffffffffff",  # absurd length
        "81d9d9f7a0",  # self-describe tag
    ],
)
def test_bad_cbor(payload: str) -> None:
    fails(lambda: CBOR.decode(bytes.fromhex(payload), ROOT, SMALL_REG), "4.00")


def test_cbor_opaque_must_be_bytes_and_json_must_be_text() -> None:
    fails(lambda: CBOR.decode(cbor2.dumps([{0: "/1024/0/3", 8: "q83v"}]), ROOT, SMALL_REG), "4.00")
    fails(lambda: JSON.decode(b'[{"n":"/1024/0/3","vd":null}]', ROOT, SMALL_REG), "4.00")


def test_unrepresentable_values_are_not_acceptable() -> None:
    records = [Record(p("/1024/0/1"), math.nan)]
    fails(lambda: JSON.encode(records, p("/1024/0/1"), SMALL_REG), "4.06")
    lone = [Record(p("/1024/0/2"), "\ud800")]
    for codec in CODECS:
        fails(lambda codec=codec: codec.encode(lone, p("/1024/0/2"), SMALL_REG), "4.06")


# -- Robustness: arbitrary input raises only LwM2MError -----------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=20,
)
senml_keys = st.sampled_from(["bn", "bt", "n", "t", "v", "vs", "vb", "vd", "vlo", "bv", "bver"])
senml_values = st.one_of(
    st.sampled_from(["/1024/0/", "/1024/0/0", "0", "4/1", "/3/0", "", "q83v", "1:2", "/"]),
    st.integers(min_value=-(2**65), max_value=2**65),
    finite,
    st.booleans(),
    st.none(),
    json_values,
)
senml_like = st.lists(st.dictionaries(senml_keys, senml_values, max_size=5), max_size=4)
CBOR_LABELS = {"bn": -2, "bt": -3, "n": 0, "t": 6, "v": 2, "vs": 3, "vb": 4, "vd": 8, "bv": -5}


def decodes_or_refuses(codec: CompositeCodec, payload: bytes, base: Path) -> None:
    try:
        codec.decode(payload, base, SMALL_REG)
    except LwM2MError:
        pass
    try:
        codec.decode_paths(payload)
    except LwM2MError:
        pass


@pytest.mark.parametrize("codec", CODECS)
@given(payload=st.binary())
def test_arbitrary_bytes(codec: CompositeCodec, payload: bytes) -> None:
    decodes_or_refuses(codec, payload, ROOT)


@given(document=json_values | senml_like, base=st.sampled_from([ROOT, p("/1024/0")]))
def test_arbitrary_json_structures(document: object, base: Path) -> None:
    decodes_or_refuses(JSON, json.dumps(document).encode(), base)


cbor_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.just(cbor2.undefined),
    st.builds(cbor2.CBORTag, st.integers(0, 2**16), st.integers() | st.text(max_size=4)),
    st.builds(cbor2.CBORTag, st.just(4), st.lists(st.integers(-500, 500), max_size=3)),
)
cbor_values = st.recursive(
    cbor_leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.integers(-8, 8) | st.text(max_size=4) | st.booleans(), inner, max_size=4
        )
    ),
    max_leaves=20,
)
cbor_senml = st.lists(
    st.dictionaries(
        senml_keys.map(lambda k: CBOR_LABELS.get(k, k)),
        st.one_of(senml_values, cbor_leaves),
        max_size=5,
    ),
    max_size=4,
)


@given(document=cbor_values | cbor_senml, base=st.sampled_from([ROOT, p("/1024/0")]))
def test_arbitrary_cbor_structures(document: object, base: Path) -> None:
    decodes_or_refuses(CBOR, cbor2.dumps(document), base)


@given(document=cbor_senml, cut=st.integers(min_value=1, max_value=30))
def test_truncated_cbor(document: list[object], cut: int) -> None:
    payload = cbor2.dumps(document)
    decodes_or_refuses(CBOR, payload[: max(0, len(payload) - cut)], ROOT)


def resolved_by_rfc8428(items: list[dict[str, object]]) -> list[Record]:
    """RFC 8428 §4.5's resolution as the spec states it, label by label, each record's own
    base fields applying to it, each resolved record then decoded alone, with its full name,
    time and value and no base field: the oracle for ``senml.decode_pack``, which reads a
    record's labels in one pass over them and checks the record as it goes."""
    bn = ""
    bt: int | float | None = None
    bv: int | float | None = None
    out: list[Record] = []
    for item in items:
        if "bn" in item:
            bn = senml.text(item["bn"], "base name")
        if "bt" in item:
            bt = senml.number(item["bt"], "base time")
        if "bv" in item:
            bv = senml.number(item["bv"], "base value")
        if "bver" in item and (type(item["bver"]) is not int or item["bver"] > 10):
            raise BadRequest(f"SenML version {senml._show(item['bver'])} is not supported")
        name = bn + senml.text(item["n"], "name") if "n" in item else bn
        time = bt
        if "t" in item:
            t = senml.number(item["t"], "time")
            time = t if bt is None else bt + t
            if not math.isfinite(time):
                raise BadRequest("SenML time is not a finite number")
        present = [label for label in ("v", "vs", "vb", "vd", "vlo") if label in item]
        if len(present) > 1:
            raise BadRequest(f"{name!r} carries more than one value")
        label = present[0] if present else None
        value = item[label] if label else None
        if label == "v":
            amount = senml.number(value, "value")
            value = amount if bv is None else bv + amount
            if not math.isfinite(value):
                raise BadRequest("SenML value is not a finite number")
        for key in item:
            if key in ("s", "bs") or key.endswith("_"):
                raise BadRequest(f"SenML JSON label {senml._show(key)} is not supported")
        alone: dict[str, object] = {"n": name}
        if time is not None:
            alone["t"] = time
        if label is not None:
            alone[label] = value
        out.extend(senml.decode_pack([alone], ROOT, SMALL_REG, JSON_DIALECT))
    return out


@given(
    items=st.lists(
        st.dictionaries(
            senml_keys | st.sampled_from(["s", "x_", "unknown"]),
            senml_values.filter(lambda v: not isinstance(v, dict | list)),
            max_size=6,
        ),
        max_size=4,
    )
)
def test_base_fields_resolve_as_rfc8428_states(items: list[dict[str, object]]) -> None:
    """Every record, or the first error, as RFC 8428 resolves its base fields label by label,
    in every order and combination of labels."""
    try:
        expected: object = resolved_by_rfc8428(items)
    except LwM2MError as e:
        expected = (type(e), str(e))
    try:
        got: object = senml.decode_pack(items, ROOT, SMALL_REG, JSON_DIALECT)
    except LwM2MError as e:
        got = (type(e), str(e))
    assert got == expected
