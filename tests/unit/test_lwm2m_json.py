"""LwM2M JSON (11543): published vectors, round trips, and bad input.

Vectors are Leshan's LwM2M JSON encoder and decoder tests (LwM2mNodeEncoderTest,
LwM2mNodeDecoderTest in leshan-lwm2m-core), which carry the LwM2M 1.0 spec's Device example.
"""

from __future__ import annotations

import json
from collections.abc import Callable

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
from bridged.objects.formats.lwm2m_json import CODEC
from bridged.objects.paths import ROOT, Level, Path
from bridged.objects.values import ObjLnk, Record
from strategies import Read, reads, timed
from vectors import OMA_DEVICE as DEVICE_RECORDS


def p(text: str) -> Path:
    return Path.parse(text)


def fails(call: Callable[[], object], code: str) -> LwM2MError:
    with pytest.raises(LwM2MError) as info:
        call()
    assert info.value.code_text == code, str(info.value)
    return info.value


def res(rid: int, rtype: ResourceType, multiple: bool = False) -> ResourceDef:
    return ResourceDef(rid, f"Res {rid}", Operations.RW, rtype, multiple)


# Leshan's test object 1024 (its decoder tests' custom instance): String, Float, Boolean.
OBJ1024 = make_object(
    1024,
    "Obj1024",
    [
        res(0, ResourceType.STRING),
        res(1, ResourceType.FLOAT),
        res(2, ResourceType.BOOLEAN),
        res(3, ResourceType.OPAQUE),
        res(4, ResourceType.OBJLNK, True),
        res(5, ResourceType.UNSIGNED),
    ],
)


def definitions() -> Definitions:
    reg = builtin_definitions()
    reg.add(OBJ1024)
    return reg


# Leshan LwM2mNodeEncoderTest.json_encode_device_object_instance and
# LwM2mNodeDecoderTest.json_device_object_instance0.
DEVICE_JSON = (
    b'{"bn":"/3/0/","e":[{"n":"0","sv":"Open Mobile Alliance"},'
    b'{"n":"1","sv":"Lightweight M2M Client"},{"n":"2","sv":"345000123"},{"n":"3","sv":"1.0"},'
    b'{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"7/0","v":3800},{"n":"7/1","v":5000},'
    b'{"n":"8/0","v":125},{"n":"8/1","v":900},{"n":"9","v":100},{"n":"10","v":15},'
    b'{"n":"11/0","v":0},{"n":"13","v":1367491215},{"n":"14","sv":"+02:00"},{"n":"16","sv":"U"}]}'
)


def test_registered() -> None:
    assert codec_for(ContentFormat.LWM2M_JSON) is CODEC


def test_device_instance_vector() -> None:
    assert CODEC.encode(DEVICE_RECORDS, p("/3/0"), definitions()) == DEVICE_JSON
    assert CODEC.decode(DEVICE_JSON, p("/3/0"), definitions()) == DEVICE_RECORDS


def test_device_instance_base_name_variants() -> None:
    # Leshan json_device_object_instance0_with_empty_root_basename ("bn":"/") and
    # json_device_object_instance0_without_basename (full names, no bn).
    entries = json.loads(DEVICE_JSON)["e"]
    rooted = {"bn": "/", "e": [{**e, "n": "3/0/" + e["n"]} for e in entries]}
    bare = {"e": [{**e, "n": "/3/0/" + e["n"]} for e in entries]}
    for document in (rooted, bare):
        payload = json.dumps(document).encode()
        assert CODEC.decode(payload, p("/3/0"), definitions()) == DEVICE_RECORDS


def test_custom_instance_vector() -> None:
    # Leshan json_custom_object_instance: a bn without leading "/", spaces, a Boolean.
    payload = (
        b'{"bn":"1024/0/", "e":[{"n":"0","sv":"a string"},{"n":"1","v":10.5},{"n":"2","bv":true}]}'
    )
    assert CODEC.decode(payload, p("/1024/0"), definitions()) == [
        Record(p("/1024/0/0"), "a string"),
        Record(p("/1024/0/1"), 10.5),
        Record(p("/1024/0/2"), True),
    ]


def test_timestamped_vectors() -> None:
    # Leshan json_timestamped_resources: bt after "e", entries with no name.
    payload = (
        b'{"bn":"/1024/0/1","e":[{"v":22.9,"t":-30},{"v":22.4,"t":-5},{"v":24.1,"t":-50}],'
        b'"bt":25462634}'
    )
    assert CODEC.decode(payload, p("/1024/0/1"), definitions()) == [
        Record(p("/1024/0/1"), 22.9, 25462634 - 30),
        Record(p("/1024/0/1"), 22.4, 25462634 - 5),
        Record(p("/1024/0/1"), 24.1, 25462634 - 50),
    ]
    # Leshan json_encode_timestamped_resources / json_encode_timestamped_instances.
    records = [
        Record(p("/1024/0/1"), 22.9, 500),
        Record(p("/1024/0/1"), 22.4, 510),
        Record(p("/1024/0/1"), 24.1, 520),
    ]
    assert CODEC.encode(records, p("/1024/0/1"), definitions()) == (
        b'{"bn":"/1024/0/1","e":[{"v":22.9,"t":500},{"v":22.4,"t":510},{"v":24.1,"t":520}]}'
    )
    records = [
        Record(p("/1024/0/1"), 22.9, 110),
        Record(p("/1024/0/0"), "a string", 120),
        Record(p("/1024/0/1"), 22.4, 120),
        Record(p("/1024/0/1"), 24.1, 130),
    ]
    assert CODEC.encode(records, p("/1024/0"), definitions()) == (
        b'{"bn":"/1024/0/","e":[{"n":"1","v":22.9,"t":110},{"n":"0","sv":"a string","t":120},'
        b'{"n":"1","v":22.4,"t":120},{"n":"1","v":24.1,"t":130}]}'
    )


def test_base_name_cut_inside_an_id_vector() -> None:
    # Leshan json_cut_basename_name_in_the_middle_of_an_id: "3/0/1" + "1/0" is /3/0/11/0.
    payload = b'{"bn":"3/0/1","e":[{"n":"1/0","v":0},{"n":"1/1","v":0}]}'
    assert CODEC.decode(payload, p("/3/0/11"), definitions()) == [
        Record(p("/3/0/11/0"), 0),
        Record(p("/3/0/11/1"), 0),
    ]


def test_empty_entries_vector() -> None:
    # Leshan json_empty_object / json_empty_instance: {"e":[]} is empty, {} is malformed.
    assert CODEC.decode(b'{"e":[]}', p("/2"), definitions()) == []
    assert CODEC.decode(b'{"bn":"2/0", "e":[]}', p("/2/0"), definitions()) == []
    fails(lambda: CODEC.decode(b"{}", p("/2"), definitions()), "4.00")


def test_missing_value_vector() -> None:
    # Leshan json_missing_value_for_resource.
    payload = b'{"bn":"2/0/","e":[{"n":"0"}]}'
    fails(lambda: CODEC.decode(payload, p("/2/0/0"), definitions()), "4.00")


def test_opaque_is_padded_standard_base64() -> None:
    # Leshan's LwM2M JSON encoder writes Opaque with DefaultBase64Encoder(BASE64, WITH padding);
    # "AQIDBAU=" is Leshan's text_decode_opaque_from_base64_string value.
    records = [Record(p("/1024/0/3"), b"\x01\x02\x03\x04\x05")]
    payload = b'{"bn":"/1024/0/3","e":[{"sv":"AQIDBAU="}]}'
    assert CODEC.encode(records, p("/1024/0/3"), definitions()) == payload
    assert CODEC.decode(payload, p("/1024/0/3"), definitions()) == records
    # Unpadded is accepted, the URL-safe alphabet is not.
    unpadded = b'{"bn":"/1024/0/3","e":[{"sv":"AQIDBAU"}]}'
    assert CODEC.decode(unpadded, p("/1024/0/3"), definitions()) == records
    fails(
        lambda: CODEC.decode(b'{"e":[{"n":"/1024/0/3","sv":"-_8"}]}', ROOT, definitions()), "4.00"
    )
    assert CODEC.encode([Record(p("/1024/0/3"), b"\xfb\xff")], p("/1024/0/3"), definitions()) == (
        b'{"bn":"/1024/0/3","e":[{"sv":"+/8="}]}'
    )


def test_object_links() -> None:
    records = [Record(p("/1024/0/4/0"), ObjLnk(66, 0)), Record(p("/1024/0/4/1"), ObjLnk(67, 1))]
    payload = CODEC.encode(records, p("/1024/0/4"), definitions())
    assert payload == b'{"bn":"/1024/0/4/","e":[{"n":"0","ov":"66:0"},{"n":"1","ov":"67:1"}]}'
    assert CODEC.decode(payload, p("/1024/0/4"), definitions()) == records


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"[]", "4.00"),  # SenML shape, not LwM2M JSON
        (b'{"e":{}}', "4.00"),
        (b'{"e":[1]}', "4.00"),
        (b'{"bn":3,"e":[]}', "4.00"),
        (b'{"bn":null,"e":[]}', "4.00"),
        (b'{"bt":"x","e":[]}', "4.00"),
        (b'{"bt":true,"e":[]}', "4.00"),
        (b'{"bt":NaN,"e":[]}', "4.00"),
        (b'{"e":[{"n":"/1024/0/1","v":Infinity}]}', "4.00"),
        (b'{"e":[{"n":"/1024/0/0","v":1}]}', "4.00"),  # number for a String
        (b'{"e":[{"n":"/1024/0/1","sv":"1"}]}', "4.00"),  # text for a Float
        (b'{"e":[{"n":"/1024/0/2","v":1}]}', "4.00"),  # number for a Boolean
        (b'{"e":[{"n":"/1024/0/5","v":1.5}]}', "4.00"),  # fraction for an Unsigned
        (b'{"e":[{"n":"/1024/0/5","v":-1}]}', "4.00"),
        (b'{"e":[{"n":"/1024/0/3","sv":"***"}]}', "4.00"),  # bad base64
        (b'{"e":[{"n":"/1024/0/4/0","ov":"66"}]}', "4.00"),
        (b'{"e":[{"n":"/1024/0/1","v":1,"bv":true}]}', "4.00"),  # two values
        (b'{"bn":"/1024/1/","e":[{"n":"0","sv":"x"}]}', "4.00"),  # outside /1024/0
        (b'{"e":[{"n":"/1024/0/9","v":1}]}', "4.04"),
        (b'{"e":[{"n":"/1024/0/0","sv":"a"}],"e":[]}', "4.00"),  # duplicate key
        (b"\xff", "4.00"),
    ],
)
def test_bad_input(payload: bytes, code: str) -> None:
    fails(lambda: CODEC.decode(payload, p("/1024/0"), definitions()), code)


def test_unknown_object() -> None:
    fails(lambda: CODEC.decode(b'{"e":[{"n":"/9999/0/0","v":1}]}', ROOT, definitions()), "4.04")


def test_nan_is_not_acceptable() -> None:
    records = [Record(p("/1024/0/1"), float("nan"))]
    fails(lambda: CODEC.encode(records, p("/1024/0/1"), definitions()), "4.06")


# -- Round trips and robustness -----------------------------------------------------------------

ALL_LEVELS = (Level.OBJECT, Level.INSTANCE, Level.RESOURCE, Level.RESOURCE_INSTANCE)
finite = st.floats(allow_nan=False, allow_infinity=False)


def roundtrip(read: Read) -> None:
    payload = CODEC.encode(read.records, read.base, read.definitions)
    assert CODEC.decode(payload, read.base, read.definitions) == read.records


@given(read=reads(levels=ALL_LEVELS))
def test_roundtrip_reads(read: Read) -> None:
    roundtrip(read)


@given(read=reads(levels=ALL_LEVELS, with_prefix=True))
def test_roundtrip_prefixed_reads(read: Read) -> None:
    roundtrip(read)


@given(data=st.data())
def test_roundtrip_timed_reads(data: st.DataObject) -> None:
    read = data.draw(reads(levels=ALL_LEVELS, with_prefix=True))
    times = data.draw(st.lists(finite, min_size=len(read.records), max_size=len(read.records)))
    roundtrip(timed(read, times))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=20,
)
entry_values = st.one_of(
    st.sampled_from(["/1024/0/", "0", "4/1", "", "AQ==", "1:2", "/"]),
    st.integers(min_value=-(2**65), max_value=2**65),
    finite,
    st.booleans(),
    json_values,
)
entries = st.lists(
    st.dictionaries(st.sampled_from(["n", "t", "v", "bv", "sv", "ov", "x_"]), entry_values),
    max_size=4,
)
documents = st.fixed_dictionaries({"e": entries}, optional={"bn": entry_values, "bt": entry_values})


@given(document=json_values | documents)
def test_arbitrary_json_structures(document: object) -> None:
    try:
        CODEC.decode(json.dumps(document).encode(), ROOT, definitions())
    except LwM2MError:
        pass


@given(payload=st.binary())
def test_arbitrary_bytes(payload: bytes) -> None:
    try:
        CODEC.decode(payload, ROOT, definitions())
    except LwM2MError:
        pass
