"""A node's usual SenML CBOR pack (objects/formats/senml_cbor_usual.py): a pack that repeats the
learnt one but for its float values is decoded from the learnt records; the general decode
(``SenMLCborCodec.decode``) is the oracle, and every pack the fast path takes it gives the
same records for, on packs built of every label, with their floats changed, one byte changed,
and on garbage."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.objects.builtin import builtin_definitions
from bridged.objects.definitions import Definitions
from bridged.objects.errors import LwM2MError
from bridged.objects.formats.senml_cbor import CODEC
from bridged.objects.formats.senml_cbor_usual import (
    MAX_WAIT,
    CborShapeError,
    UsualPack,
    value_floats,
)
from bridged.objects.paths import Path
from bridged.objects.values import Record

DEFINITIONS = builtin_definitions()
BASE = Path.parse("/3303")


def notification(value: float) -> bytes:
    """The emulated node's notification of /3303: its Sensor Value and Sensor Units."""
    return cbor2.dumps([{-2: "/3303/", 0: "0/5700", 2: value}, {0: "0/5701", 3: "Cel"}])


def general(payload: bytes, base: Path = BASE) -> list[Record] | LwM2MError:
    try:
        return CODEC.decode(payload, base, DEFINITIONS)
    except LwM2MError as e:
        return e


def learnt(payload: bytes, base: Path = BASE) -> UsualPack:
    usual = UsualPack(DEFINITIONS)
    records = general(payload, base)
    assert isinstance(records, list)
    usual.learn(payload, records)
    return usual


def agrees(usual: UsualPack, payload: bytes, base: Path = BASE) -> bool:
    """The fast path declines ``payload`` or gives what the general decode gives; whether it
    took it."""
    fast = usual.decode(payload)
    if fast is None:
        return False
    assert fast == general(payload, base)
    return True


def test_a_nodes_notification_with_another_value_takes_the_fast_path() -> None:
    usual = learnt(notification(21.5))
    assert usual.decode(notification(22.25)) == [
        Record(Path.parse("/3303/0/5700"), 22.25),
        Record(Path.parse("/3303/0/5701"), "Cel"),
    ]
    assert agrees(usual, notification(-1e300))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_value_that_is_not_finite_is_left_to_the_general_decode(value: float) -> None:
    usual = learnt(notification(21.5))
    assert usual.decode(notification(value)) is None
    assert isinstance(general(notification(value)), LwM2MError)


def test_other_units_or_another_shape_are_declined() -> None:
    usual = learnt(notification(21.5))
    other = cbor2.dumps([{-2: "/3303/", 0: "0/5700", 2: 21.5}, {0: "0/5701", 3: "Far"}])
    assert usual.decode(other) is None
    assert usual.decode(cbor2.dumps([{-2: "/3303/0/5700", 2: 21.5}])) is None


def test_a_base_value_or_a_value_of_another_type_is_not_repeated() -> None:
    """A float the general decode checks (an Integer resource's, or one a base value is added
    to) is never a value the fast path takes as it is."""
    with_bv = cbor2.dumps([{-2: "/3303/0/", -5: 1.0, 0: "5700", 2: 20.5}])
    assert value_floats(with_bv) is None
    usual = learnt(with_bv)
    assert usual.decode(cbor2.dumps([{-2: "/3303/0/", -5: 1.0, 0: "5700", 2: 0.25}])) is None
    integer = cbor2.dumps([{-2: "/3/0/", 0: "9", 2: 80.0}])  # Battery Level, an Integer
    usual = learnt(integer, Path.parse("/3"))
    assert usual.decode(cbor2.dumps([{-2: "/3/0/", 0: "9", 2: 80.5}])) is None


def test_definitions_replaced_since_learnt_are_a_decline() -> None:
    definitions = Definitions(dict(DEFINITIONS.objects))
    usual = UsualPack(definitions)
    usual.learn(notification(21.5), CODEC.decode(notification(21.5), BASE, definitions))
    assert usual.decode(notification(1.0)) is not None
    definitions.add(dataclasses.replace(DEFINITIONS.get(3303)))  # a DDF's newer version
    assert usual.decode(notification(1.0)) is None


def test_a_node_whose_shape_changes_for_good_is_learnt_again() -> None:
    """A learnt pack that finds no use makes learning wait, at most ``MAX_WAIT`` packs."""
    usual = learnt(notification(21.5))
    moved = [cbor2.dumps([{-2: f"/3303/{k}/", 0: "5700", 2: 1.0}]) for k in range(4)]
    for payload in moved * 2:  # shapes that change each time
        assert usual.decode(payload) is None
        records = general(payload)
        assert isinstance(records, list)
        usual.learn(payload, records)
    now = cbor2.dumps([{-2: "/3303/9/", 0: "5700", 2: 1.0}])
    taken = []
    for k in range(2 * MAX_WAIT + 2):
        payload = cbor2.dumps([{-2: "/3303/9/", 0: "5700", 2: float(k)}])
        if usual.decode(payload) is not None:
            taken.append(k)
        else:
            records = general(payload)
            assert isinstance(records, list)
            usual.learn(payload, records)
    assert taken and taken[0] <= MAX_WAIT + 1 and taken == list(range(taken[0], 2 * MAX_WAIT + 2))
    assert agrees(usual, now)


# -- the general decode as the oracle ---------------------------------------------------------

NAMES = ["/3303/0/5700", "/3303/0/5701", "/3303/0/5601", "/3303/1/5700", "/3/0/9", "/3/0/0"]
LABELS = [-2, -3, -5, -1, 0, 2, 3, 4, 6, 8, 5, "vlo", 7, "x_"]


def label_values(label: int | str) -> st.SearchStrategy[object]:
    floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
    if label in (-2, 0):  # bn, n: names, their pieces, or not text
        return st.sampled_from([*NAMES, "/3303/", "0/5700", "5700", ""]) | st.integers(0, 9)
    if label in (2, 6, -3, -5):  # v, t, bt, bv
        return floats | st.integers(-(2**64), 2**64)
    if label == 3:
        return st.sampled_from(["Cel", "", "x"]) | st.integers(0, 1)
    if label == 4:
        return st.booleans()
    return st.integers(-2, 12) | st.text(max_size=3) | st.binary(max_size=3)


@st.composite
def packs(draw: st.DrawFn) -> bytes:
    """SenML CBOR packs of any labels: the usual shape (a float value under 2), its kin, and
    what the general decode refuses."""
    records = []
    for _ in range(draw(st.integers(1, 4))):
        record: dict[object, object] = {}
        if draw(st.booleans()):
            record[0], record[2] = draw(st.sampled_from(NAMES)), draw(st.floats(width=64))
        for label in draw(st.lists(st.sampled_from(LABELS), max_size=4, unique=True)):
            record[label] = draw(label_values(label))
        records.append(record)
    return cbor2.dumps(records)


def with_floats(payload: bytes, values: Sequence[bytes]) -> bytes:
    """``payload`` with the 8 bytes of each of its value floats replaced by ``values``."""
    data = bytearray(payload)
    found = value_floats(payload) or []
    for (_, offset), value in zip(found, values, strict=False):
        data[offset : offset + 8] = value
    return bytes(data)


@given(packs(), st.lists(st.binary(min_size=8, max_size=8), min_size=4, max_size=4))
def test_the_fast_path_with_other_floats_is_the_general_decode(
    payload: bytes, values: list[bytes]
) -> None:
    if not isinstance(general(payload), list):
        return
    usual = learnt(payload)
    agrees(usual, payload)
    agrees(usual, with_floats(payload, values))
    agrees(usual, with_floats(payload, [struct.pack(">d", 1.5)] * 4))


@given(packs(), st.integers(0, 10_000), st.integers(0, 255))
def test_the_fast_path_with_a_byte_changed_declines_or_agrees(
    payload: bytes, at: int, byte: int
) -> None:
    if not isinstance(general(payload), list):
        return
    usual = learnt(payload)
    data = bytearray(payload)
    data[at % len(data)] = byte
    agrees(usual, bytes(data))


@given(packs(), st.binary(max_size=64))
def test_the_fast_path_on_garbage_declines_or_agrees(payload: bytes, garbage: bytes) -> None:
    if isinstance(general(payload), list):
        usual = learnt(payload)
        agrees(usual, garbage)
        agrees(usual, garbage[: len(payload)].ljust(len(payload), b"\0"))


@given(st.binary(max_size=64) | packs())
def test_the_walk_reads_cbor_or_says_it_is_not(data: bytes) -> None:
    """On any bytes the walk gives floats, None, or its typed error; the floats it gives of a
    pack are each an fb head's 8 bytes."""
    try:
        found = value_floats(data)
    except CborShapeError:
        return
    for _, offset in found or []:
        assert data[offset - 1] == 0xFB and offset + 8 <= len(data)
