"""LwM2M CBOR (11544): published vectors, round trips, every legal nesting, and bad input."""

from __future__ import annotations

import time

import cbor2
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
from bridged.objects.formats import ContentFormat, composite_codec_for
from bridged.objects.formats.lwm2m_cbor import CODEC
from bridged.objects.paths import ROOT, Level, Path
from bridged.objects.values import ObjLnk, Record, Value
from strategies import Read, composite_reads, prefixes, reads

T = ResourceType


def definitions(*objects: tuple[int, dict[int, tuple[ResourceType, bool]]]) -> Definitions:
    """A registry of objects given as (oid, {rid: (type, multiple)})."""
    reg = Definitions()
    for oid, resources in objects:
        reg.add(
            make_object(
                oid,
                f"Object {oid}",
                [
                    ResourceDef(rid, f"R{rid}", Operations.RW, t, m)
                    for rid, (t, m) in resources.items()
                ],
            )
        )
    return reg


def rec(text: str, value: Value) -> Record:
    return Record(Path.parse(text), value)


def test_registered_as_the_composite_codec_for_11544() -> None:
    assert composite_codec_for(11544) is CODEC
    assert CODEC.content_format is ContentFormat.LWM2M_CBOR


# -- published vectors ------------------------------------------------------------------------

# Anjay Lite, tests/anj/io/lwm2m_cbor_in.c (AVSystem; read for the bytes only): object 13,
# instance 26, Integer resources 1 and 2. Every legal nesting and compression of one payload.
ANJAY_13_26 = definitions((13, {1: (T.INTEGER, False), 2: (T.INTEGER, False)}))


@pytest.mark.parametrize(
    ("hex_", "base", "expected"),
    [
        # single_resource: {[13, 26, 1]: 42}
        ("a1830d181a01182a", "/13/26/1", [("/13/26/1", 42)]),
        # single_resource_indefinite: the same, indefinite map and array
        ("bf9f0d181a01ff182aff", "/13/26/1", [("/13/26/1", 42)]),
        # single_resource_nested: {13: {26: {1: 42}}}
        ("a10da1181aa101182a", "/13/26/1", [("/13/26/1", 42)]),
        # single_resource_nested_indefinite
        ("bf0dbf181abf01182affffff", "/13/26/1", [("/13/26/1", 42)]),
        # single_resource_nested_arrays: {[13]: {[26]: {[1]: 42}}}
        ("a1810da181181aa18101182a", "/13/26/1", [("/13/26/1", 42)]),
        # two_resources_1: {[13, 26]: {1: 42, 2: 21}}
        ("a1820d181aa201182a0215", "/13/26", [("/13/26/1", 42), ("/13/26/2", 21)]),
        # two_resources_2: {[13, 26, 1]: 42, [13, 26, 2]: 21}
        ("a2830d181a01182a830d181a0215", "/13/26", [("/13/26/1", 42), ("/13/26/2", 21)]),
        # two_resources_3: {[13, 26]: {1: 42}, [13, 26, 2]: 21}
        ("a2820d181aa101182a830d181a0215", "/13/26", [("/13/26/1", 42), ("/13/26/2", 21)]),
        # two_resources_4: {[13, 26, 1]: 42, [13, 26]: {[2]: 21}}
        ("a2830d181a01182a820d181aa1810215", "/13/26", [("/13/26/1", 42), ("/13/26/2", 21)]),
    ],
)
def test_anjay_lite_nestings(hex_: str, base: str, expected: list[tuple[str, int]]) -> None:
    records = CODEC.decode(bytes.fromhex(hex_), Path.parse(base), ANJAY_13_26)
    assert records == [rec(p, v) for p, v in expected]


def test_anjay_lite_all_types() -> None:
    # Anjay Lite lwm2m_cbor_in.c, all_types: {[13, 26]: {1: 1, 2: -1, 3: 2.5 (float16),
    # 4: "test", 5: h'11223344', 6: "12:34", 7: 1}}
    reg = definitions(
        (
            13,
            {
                1: (T.UNSIGNED, False),
                2: (T.INTEGER, False),
                3: (T.FLOAT, False),
                4: (T.STRING, False),
                5: (T.OPAQUE, False),
                6: (T.OBJLNK, False),
                7: (T.TIME, False),
            },
        )
    )
    payload = bytes.fromhex(
        "a1820d181aa70101022003f94100046474657374054411223344066531323a33340701"
    )
    assert CODEC.decode(payload, Path.parse("/13/26"), reg) == [
        rec("/13/26/1", 1),
        rec("/13/26/2", -1),
        rec("/13/26/3", 2.5),
        rec("/13/26/4", "test"),
        rec("/13/26/5", b"\x11\x22\x33\x44"),
        rec("/13/26/6", ObjLnk(12, 34)),
        rec("/13/26/7", 1),
    ]


@pytest.mark.parametrize(
    "hex_",
    [
        # Anjay Lite lwm2m_cbor_in.c, bytes: {[13, 26, 1]: h'00112233445566778899AABBCCDDEEFF'}
        "a1830d181a0150" + "00112233445566778899aabbccddeeff",
        # bytes_indefinite: (_ h'0011223344556677', h'8899AABBCCDDEEFF')
        "a1830d181a015f48001122334455667748" + "8899aabbccddeeff" + "ff",
    ],
)
def test_anjay_lite_opaque(hex_: str) -> None:
    reg = definitions((13, {1: (T.OPAQUE, False)}))
    assert CODEC.decode(bytes.fromhex(hex_), Path.parse("/13/26/1"), reg) == [
        rec("/13/26/1", bytes.fromhex("00112233445566778899aabbccddeeff"))
    ]


@pytest.mark.parametrize(
    "hex_",
    [
        # Anjay Lite lwm2m_cbor_in.c, composite: {13: {26: {1: 1}}, 14: {27: {2: 2}}}
        "a20da1181aa101010ea1181ba10202",
        # composite_indefinite_maps
        "bf0dbf181abf0101ffff0ebf181bbf0202ffffff",
        # composite_indefinite_maps_and_arrays: {[13]: {[26]: {[1]: 1}}, [14]: {[27]: {[2]: 2}}}
        "bf9f0dffbf9f181affbf9f01ff01ffff9f0effbf9f181bffbf9f02ff02ffffff",
    ],
)
def test_anjay_lite_composite(hex_: str) -> None:
    reg = definitions((13, {1: (T.INTEGER, False)}), (14, {2: (T.INTEGER, False)}))
    assert CODEC.decode(bytes.fromhex(hex_), ROOT, reg) == [
        rec("/13/26/1", 1),
        rec("/14/27/2", 2),
    ]


@pytest.mark.parametrize(
    "hex_",
    [
        # Anjay Lite lwm2m_cbor_in.c, path_too_long_1: {[13, 26, 3, 4, 5]: 5}
        "a1850d181a03040505",
        # path_too_long_2: {[13, 26, 1]: {2: 5, [3, 4]: 5}}
        "a1830d181a01a2020582030405",
        # path_too_long_3: {13: {26: {1: {2: {3: 4}}}}}
        "a10da1181aa101a102a10304",
        # max_possible_nesting: {[13]: {[26]: {[1]: {[2]: 4([-1, 45])}}}}. Anjay reads the
        # decimal fraction; LwM2M CBOR's value types have no tags but Time's, so we refuse it.
        "a1810da181181aa18101a18102c48220182d",
    ],
)
def test_anjay_lite_rejected(hex_: str) -> None:
    reg = definitions((13, {1: (T.FLOAT, True)}))
    with pytest.raises(LwM2MError) as exc:
        CODEC.decode(bytes.fromhex(hex_), ROOT, reg)
    assert exc.value.code_text == "4.00"


@pytest.mark.parametrize(
    ("hex_", "expected"),
    [
        # Anjay Lite tests/anj/io/lwm2m_cbor_encoder.c (indefinite maps, no arrays):
        # send_two_records_different_inst: {3: {3: {3: 25}, 1: {1: 11}}}
        ("bf03bf03bf031819ff01bf010bffffff", [("/3/1/1", 11), ("/3/3/3", 25)]),
        # send_two_records_different_res: {3: {3: {3: 25, 1: 11}}}
        ("bf03bf03bf031819010bffffff", [("/3/3/1", 11), ("/3/3/3", 25)]),
        # send_two_records_different_obj: {3: {3: {3: 25}}, 1: {1: {1: 11}}}
        ("bf03bf03bf031819ffff01bf01bf010bffffff", [("/1/1/1", 11), ("/3/3/3", 25)]),
    ],
)
def test_anjay_lite_encoder_output_reads_back(hex_: str, expected: list[tuple[str, int]]) -> None:
    reg = definitions(
        (1, {1: (T.UNSIGNED, False)}), (3, {1: (T.UNSIGNED, False), 3: (T.UNSIGNED, False)})
    )
    records = [rec(p, v) for p, v in expected]
    assert CODEC.decode(bytes.fromhex(hex_), ROOT, reg) == records
    assert CODEC.decode(CODEC.encode(records, ROOT, reg), ROOT, reg) == records


def test_anjay_lite_resource_instances_read_back() -> None:
    # Anjay Lite lwm2m_cbor_encoder.c, send_two_resource_instances: {3: {3: {3: {0: 25, 1: 11}}}}
    reg = definitions((3, {3: (T.UNSIGNED, True)}))
    payload = bytes.fromhex("bf03bf03bf03bf001819010bffffffff")
    assert CODEC.decode(payload, ROOT, reg) == [rec("/3/3/3/0", 25), rec("/3/3/3/1", 11)]


def test_device_object_example() -> None:
    # The Device object example of OMA-TS-LightweightM2M_Core-V1_2 §7.4.6:
    # {3: {0: {0: "Open Mobile Alliance", 9: 100, 7: {0: 3800, 1: 5000}}}}. Our canonical form
    # keeps the two-level chain 3/0 nested and sorts keys, so the bytes are fixed here.
    reg = builtin_definitions()
    records = [
        rec("/3/0/0", "Open Mobile Alliance"),
        rec("/3/0/7/0", 3800),
        rec("/3/0/7/1", 5000),
        rec("/3/0/9", 100),
    ]
    payload = CODEC.encode(records, Path.parse("/3"), reg)
    assert cbor2.loads(payload) == {
        3: {0: {0: "Open Mobile Alliance", 7: {0: 3800, 1: 5000}, 9: 100}}
    }
    assert payload.hex() == (
        "a103a100a300744f70656e204d6f62696c6520416c6c69616e636507a200190ed801191388091864"
    )
    assert CODEC.decode(payload, Path.parse("/3"), reg) == records
    # The same read compressed with array keys, as the specification also shows it.
    for tree in (
        {(3, 0): {0: "Open Mobile Alliance", 9: 100, 7: {0: 3800, 1: 5000}}},
        {(3, 0): {0: "Open Mobile Alliance", 9: 100}, (3, 0, 7): {0: 3800, 1: 5000}},
    ):
        assert CODEC.decode(cbor2.dumps(tree), Path.parse("/3/0"), reg) == records


def test_gateway_prefix_example() -> None:
    # LwM2M 1.2.2 compliance checklist CBOR-11 (Gateway TS): ID = PREFIX / uint /
    # array [PREFIX] 1*uint, e.g. {["d01", 3, 0]: {0: "Company A", 9: 100}}.
    reg = builtin_definitions()
    payload = cbor2.dumps({("d01", 3, 0): {0: "Company A", 9: 100}})
    records = [rec("/d01/3/0/0", "Company A"), rec("/d01/3/0/9", 100)]
    assert CODEC.decode(payload, Path.parse("/d01/3/0"), reg) == records
    assert CODEC.decode(cbor2.dumps({"d01": {3: {0: {0: "Company A", 9: 100}}}}), ROOT, reg) == (
        records
    )
    # Our canonical form writes exactly the example: the chain d01/3/0 is three keys long.
    assert CODEC.encode(records, Path.parse("/d01/3/0"), reg) == cbor2.dumps(
        {("d01", 3, 0): {0: "Company A", 9: 100}}
    )


# -- canonical encoding -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "tree"),
    [
        # A chain of three single-child levels becomes one array key: 1 byte shorter.
        ([("/3/0/9", 100)], {(3, 0, 9): 100}),
        ([("/3/0/7/1", 5000)], {(3, 0, 7, 1): 5000}),
        # A chain of two stays nested: the array header would cost what the map header does.
        ([("/3/0/9", 100), ("/3/1/9", 50)], {3: {0: {9: 100}, 1: {9: 50}}}),
        ([("/3/0/9", 100), ("/3/0/7/0", 1)], {3: {0: {9: 100, 7: {0: 1}}}}),
        ([("/1/0/1", 60), ("/3/0/9", 100)], {(1, 0, 1): 60, (3, 0, 9): 100}),
        ([("/d01/3/0/9", 100)], {("d01", 3, 0, 9): 100}),
    ],
)
def test_canonical_form(records: list[tuple[str, int]], tree: object) -> None:
    recs = [rec(p, v) for p, v in records]
    payload = CODEC.encode(recs, ROOT, builtin_definitions())
    assert cbor2.loads(payload) == tree
    assert payload == cbor2.dumps(tree, canonical=True)


@pytest.mark.parametrize(
    ("value", "hex_"),
    [
        (1.5, "f93e00"),  # float16 holds it exactly
        (100000.0, "fa47c35000"),  # float32
        (0.1, "fb3fb999999999999a"),  # only float64
        (True, "f5"),
        (b"\x01", "4101"),
        (ObjLnk(3, 0), "63333a30"),  # Objlnk is its "oid:iid" text
        (-(2**63), "3b7fffffffffffffff"),
        (2**64 - 1, "1bffffffffffffffff"),
    ],
)
def test_values_take_their_shortest_exact_form(value: Value, hex_: str) -> None:
    payload = CODEC.encode([Record(Path((3, 0, 9)), value)], ROOT, builtin_definitions())
    assert payload == bytes.fromhex("a1830300" + "09" + hex_)


@pytest.mark.parametrize("hex_", ["f93e00", "fa3fc00000", "fb3ff8000000000000"])
def test_floats_of_every_width_decode(hex_: str) -> None:
    reg = definitions((13, {3: (T.FLOAT, False)}))
    payload = bytes.fromhex("a1830d181a03" + hex_)
    assert CODEC.decode(payload, ROOT, reg) == [rec("/13/26/3", 1.5)]


def test_time_accepts_an_epoch_tag() -> None:
    reg = definitions((13, {7: (T.TIME, False), 1: (T.INTEGER, False)}))
    tagged = bytes.fromhex("a1830d181a07c11a514b67b0")  # {[13, 26, 7]: 1(1363896240)}
    assert CODEC.decode(tagged, ROOT, reg) == [rec("/13/26/7", 1363896240)]
    with pytest.raises(LwM2MError) as exc:  # but an Integer does not
        CODEC.decode(bytes.fromhex("a1830d181a01c11a514b67b0"), ROOT, reg)
    assert exc.value.code_text == "4.00"


def test_encode_1000_instances_is_fast() -> None:
    reg = builtin_definitions()
    records = [
        Record(Path((3303, i, rid)), value)
        for i in range(1000)
        for rid, value in ((5601, -3.25), (5700, 20.5 + i), (5701, "Cel"))
    ]
    base = Path((3303,))
    payload = CODEC.encode(records, base, reg)
    timings = []
    for _ in range(10):
        start = time.perf_counter()
        CODEC.encode(records, base, reg)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.020
    assert CODEC.decode(payload, base, reg) == records


# -- round trips ------------------------------------------------------------------------------

ALL_LEVELS = (Level.OBJECT, Level.INSTANCE, Level.RESOURCE, Level.RESOURCE_INSTANCE)


def roundtrip(read: Read) -> None:
    payload = CODEC.encode(read.records, read.base, read.definitions)
    assert CODEC.decode(payload, read.base, read.definitions) == read.records
    assert CODEC.encode(read.records, read.base, read.definitions) == payload


@given(reads(levels=ALL_LEVELS))
def test_roundtrip(read: Read) -> None:
    roundtrip(read)


@given(reads(levels=ALL_LEVELS, with_prefix=True))
def test_roundtrip_with_prefix(read: Read) -> None:
    roundtrip(read)


@given(composite_reads())
def test_roundtrip_composite(read: Read) -> None:
    roundtrip(read)


@given(composite_reads(with_prefix=True))
def test_roundtrip_composite_with_prefix(read: Read) -> None:
    roundtrip(read)


@st.composite
def reshaped(draw: st.DrawFn, read: Read) -> bytes:
    """Any legal LwM2M CBOR of ``read``: each record's path split at a random point into an
    outer and an inner key, each key an ID or an array, and indefinite lengths or not."""
    tree: dict[object, dict[object, object]] = {}
    for record in read.records:
        p = record.path
        keys: tuple[object, ...] = (p.prefix, *p.ids) if p.prefix is not None else p.ids
        cut = draw(st.integers(1, len(keys) - 1))
        outer, inner = keys[:cut], keys[cut:]
        # An array key needs an ID: a prefix alone stands bare.
        bare = len(outer) == 1 and (isinstance(outer[0], str) or draw(st.booleans()))
        outer_key = outer[0] if bare else outer
        inner_key = inner[0] if len(inner) == 1 and draw(st.booleans()) else inner
        value = str(record.value) if isinstance(record.value, ObjLnk) else record.value
        tree.setdefault(outer_key, {})[inner_key] = value
    return cbor2.dumps(tree, indefinite_containers=draw(st.booleans()))


@given(st.data())
def test_every_legal_shape_decodes(data: st.DataObject) -> None:
    read = data.draw(st.one_of(reads(levels=ALL_LEVELS), composite_reads(with_prefix=True)))
    payload = data.draw(reshaped(read))
    assert CODEC.decode(payload, read.base, read.definitions) == read.records


paths = st.builds(
    Path,
    st.lists(st.integers(0, 65534), min_size=1, max_size=4).map(tuple),
    st.one_of(st.none(), prefixes),
) | st.builds(Path, st.just(()), prefixes)


@given(st.lists(paths, max_size=8))
def test_path_lists_roundtrip(path_list: list[Path]) -> None:
    payload = CODEC.encode_paths(path_list)
    assert CODEC.decode_paths(payload) == sorted(set(path_list), key=Path.sort_key)


def test_path_list_example() -> None:
    # A Read-Composite request: each path ends in null. Overlapping paths cannot nest, so the
    # longer one is written whole as an array key.
    path_list = [Path.parse(p) for p in ("/3/0/9", "/1", "/1/0/1", "/dev1/3303/0")]
    tree = {1: None, (1, 0, 1): None, (3, 0, 9): None, ("dev1", 3303, 0): None}
    assert cbor2.loads(CODEC.encode_paths(path_list)) == tree
    assert CODEC.decode_paths(cbor2.dumps({3: {0: {9: None, 1: None}}, 1: None})) == [
        Path.parse("/1"),
        Path.parse("/3/0/1"),
        Path.parse("/3/0/9"),
    ]


def test_root_is_no_path() -> None:
    with pytest.raises(LwM2MError) as exc:
        CODEC.encode_paths([ROOT])
    assert exc.value.code_text == "4.06"


# -- bad input --------------------------------------------------------------------------------

BAD_REGISTRY = definitions(
    (3, {0: (T.STRING, False), 7: (T.INTEGER, True), 9: (T.INTEGER, False), 13: (T.TIME, False)}),
)


@pytest.mark.parametrize(
    ("tree_or_hex", "base", "code"),
    [
        ("", "/", "4.00"),  # empty payload
        ("a1", "/", "4.00"),  # truncated
        ("ff", "/", "4.00"),  # a lone break
        ("01", "/", "4.00"),  # not a map
        ("a18303000918640000", "/", "4.00"),  # bytes left over after the map
        ("a2830300091864830300091864", "/", "4.00"),  # duplicate keys
        ("a1830300" + "09" + "c249010000000000000000", "/", "4.00"),  # a bignum tag
        ("a1830300091bffffffffffffffff", "/", "4.00"),  # 2**64-1 for an Integer
        ("a1830300" + "09" + "c349010000000000000000", "/", "4.00"),  # huge negative bignum
        ("81" * 40 + "00", "/", "4.00"),  # nesting garbage
        ({3: 5}, "/", "4.00"),  # a value where a map is needed
        ({(3, 0): 5}, "/", "4.00"),
        ({3: {0: {9: {0: {1: 5}}}}}, "/", "4.00"),  # a map below a resource instance
        ({(3, 0, 7, 0, 1): 5}, "/", "4.00"),  # a key deeper than a resource instance
        ({65535: {0: {9: 1}}}, "/", "4.00"),  # IDs are 0..65534
        ({-1: {0: {9: 1}}}, "/", "4.00"),
        ({1.5: {0: {9: 1}}}, "/", "4.00"),
        ({True: {0: {9: 1}}}, "/", "4.00"),
        ({(): {3: {0: {9: 1}}}}, "/", "4.00"),
        ({b"3": {0: {9: 1}}}, "/", "4.00"),
        ({3: {"d01": {9: 1}}}, "/", "4.00"),  # a prefix below the root
        ({(3, "d01", 0, 9): 1}, "/", "4.00"),  # a prefix not first
        ({("d01",): {3: {0: {9: 1}}}}, "/", "4.00"),  # an array of a prefix alone
        ({"3d 01": {3: {0: {9: 1}}}}, "/", "4.00"),  # not a prefix
        ({"123": {3: {0: {9: 1}}}}, "/", "4.00"),  # all digits: not a prefix
        ({(3, 0, 9): None}, "/", "4.00"),  # null is no value
        ({(3, 0, 9): "100"}, "/", "4.00"),  # wrong CBOR type
        ({(3, 0, 0): 5}, "/", "4.00"),
        ({(3, 0, 13): 1.5}, "/", "4.00"),  # Time takes whole seconds
        ({(3, 0, 9): [1]}, "/", "4.00"),
        ({(3, 0, 7): 5}, "/", "4.00"),  # a multi-instance resource needs instances
        ({(3, 0, 9): {0: 5}}, "/", "4.00"),  # a single-instance one has none
        ({(3, 0, 9): 1, 3: {0: {9: 2}}}, "/", "4.00"),  # the same path twice
        ({(3, 1, 9): 1}, "/3/0", "4.00"),  # outside the base
        ({("d01", 3, 0, 9): 1}, "/3/0", "4.00"),
        ({(3, 0, 9): 1}, "/d01/3/0", "4.00"),
        ({(4, 0, 9): 1}, "/", "4.04"),  # unknown object
        ({(3, 0, 10): 1}, "/", "4.04"),  # unknown resource
    ],
)
def test_bad_input(tree_or_hex: object, base: str, code: str) -> None:
    payload = (
        bytes.fromhex(tree_or_hex) if isinstance(tree_or_hex, str) else cbor2.dumps(tree_or_hex)
    )
    with pytest.raises(LwM2MError) as exc:
        CODEC.decode(payload, Path.parse(base), BAD_REGISTRY)
    assert exc.value.code_text == code


@pytest.mark.parametrize(
    "tree",
    [{(3, 0, 9): 1}, {3: {0: {9: False}}}, 5, {(3, 0, 9, 1, 1): None}, {3: {"d01": None}}],
)
def test_bad_path_lists(tree: object) -> None:
    # decode_paths: every leaf is null, and the keys follow the same grammar.
    with pytest.raises(LwM2MError) as exc:
        CODEC.decode_paths(cbor2.dumps(tree))
    assert exc.value.code_text == "4.00"


FUZZ_REGISTRY = definitions(
    *((oid, {rid: (t, rid >= len(T)) for rid, t in enumerate(list(T) * 2)}) for oid in (0, 1, 2))
)

cbor_keys = st.one_of(
    st.integers(-1, 20),
    st.integers(),
    st.sampled_from(["d01", "dev0", "7", ""]),
    st.lists(st.integers(-1, 20), max_size=5).map(tuple),
    st.tuples(st.just("d01"), st.integers(0, 3), st.integers(0, 3)),
)
cbor_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.sampled_from(["1:2", "65535:65535", "70000:1", "\u00b2:1"]),
)
cbor_trees = st.recursive(
    cbor_leaves,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(cbor_keys, children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_lwm2m_errors(payload: bytes) -> None:
    for call in (
        lambda: CODEC.decode(payload, ROOT, FUZZ_REGISTRY),
        lambda: CODEC.decode_paths(payload),
    ):
        try:
            call()
        except LwM2MError as e:
            assert e.code_text in ("4.00", "4.04")


@given(cbor_trees, st.booleans())
def test_arbitrary_cbor_raises_only_lwm2m_errors(tree: object, indefinite: bool) -> None:
    payload = cbor2.dumps(tree, indefinite_containers=indefinite)
    for call in (
        lambda: CODEC.decode(payload, ROOT, FUZZ_REGISTRY),
        lambda: CODEC.decode(payload, Path.parse("/1/0"), FUZZ_REGISTRY),
        lambda: CODEC.decode_paths(payload),
    ):
        try:
            call()
        except LwM2MError as e:
            assert e.code_text in ("4.00", "4.04")


@pytest.mark.parametrize(
    ("text", "code"),
    [("\u00b2:1", "4.00"), ("\u0661:2", "4.00"), ("70000:1", "4.00"), ("1:", "4.00")],
)
def test_bad_object_links(text: str, code: str) -> None:
    # Object links are ASCII "oid:iid" with each part in 0..65535 (rid 7 is an Objlnk).
    with pytest.raises(LwM2MError) as exc:
        CODEC.decode(cbor2.dumps({(1, 0, 7): text}), ROOT, FUZZ_REGISTRY)
    assert exc.value.code_text == code
    assert CODEC.decode(cbor2.dumps({(1, 0, 7): "65535:65535"}), ROOT, FUZZ_REGISTRY) == [
        rec("/1/0/7", ObjLnk(65535, 65535))
    ]
