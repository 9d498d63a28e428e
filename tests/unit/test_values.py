"""Values: type and range checks, the text form of each type, and ranges from definitions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.objects.definitions import Operations, ResourceDef, ResourceType, ValueRange
from bridged.objects.errors import BadRequest, DecodeError
from bridged.objects.values import (
    UINT64_MAX,
    ObjLnk,
    check_type,
    check_value,
    from_text,
    to_text,
)
from strategies import VALUE_TYPES, values_of


def rdef(rtype: ResourceType, rng: str = "") -> ResourceDef:
    return ResourceDef(1, "R", Operations.RW, rtype, range=ValueRange.parse(rng))


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("0..100", 0, 100),
        ("-40..85", -40, 85),
        ("1-255", 1, 255),
        ("0..255 bytes", 0, 255),
        ("0.0..1.5", 0.0, 1.5),
        ("0-1e3", 0, 1000),
        ("red, green", None, None),
        ("10..1", None, None),  # inverted: kept as text, not enforced
    ],
)
def test_range_parse(text: str, low: float | None, high: float | None) -> None:
    rng = ValueRange.parse(text)
    assert rng is not None and rng.text == text
    assert (rng.low, rng.high) == (low, high)


def test_empty_range_is_none() -> None:
    assert ValueRange.parse("  ") is None


@pytest.mark.parametrize(
    ("rtype", "good", "bad"),
    [
        (ResourceType.INTEGER, [0, -(2**63), 2**63 - 1], [2**63, 1.0, True, "1"]),
        (ResourceType.UNSIGNED, [0, UINT64_MAX], [-1, UINT64_MAX + 1, 1.5]),
        (ResourceType.FLOAT, [1.5, 2, -0.0], ["1.5", None, False]),
        (ResourceType.BOOLEAN, [True, False], [0, 1, "true"]),
        (ResourceType.STRING, ["", "é"], [b"x", 1]),
        (ResourceType.OPAQUE, [b"", b"\x00"], ["x", bytearray(b"x")]),
        (ResourceType.OBJLNK, [ObjLnk(3, 0)], ["3:0", (3, 0)]),
        (ResourceType.TIME, [0, 1700000000], [1.5, "now"]),
        (ResourceType.NONE, [], [None, 0, ""]),
    ],
)
def test_check_type(rtype: ResourceType, good: list[object], bad: list[object]) -> None:
    for v in good:
        assert check_type(rdef(rtype), v) == v
    for v in bad:
        with pytest.raises(BadRequest):
            check_type(rdef(rtype), v)


def test_int_for_float_becomes_float() -> None:
    v = check_type(rdef(ResourceType.FLOAT), 3)
    assert v == 3.0 and type(v) is float


def test_range_applies_to_numbers_and_lengths() -> None:
    assert check_value(rdef(ResourceType.INTEGER, "0..100"), 100) == 100
    with pytest.raises(BadRequest, match=r"outside 0\.\.100"):
        check_value(rdef(ResourceType.INTEGER, "0..100"), 101)
    with pytest.raises(BadRequest):
        check_value(rdef(ResourceType.FLOAT, "-40..85"), math.nan)
    with pytest.raises(BadRequest):
        check_value(rdef(ResourceType.STRING, "0..3"), "héllo")
    with pytest.raises(BadRequest):
        check_value(rdef(ResourceType.OPAQUE, "0..2"), b"abc")
    assert check_value(rdef(ResourceType.STRING, "one of a, b"), "anything") == "anything"


@pytest.mark.parametrize(
    ("rtype", "value", "text"),
    [
        (ResourceType.BOOLEAN, True, "1"),
        (ResourceType.BOOLEAN, False, "0"),
        (ResourceType.OPAQUE, b"\x01\x02\xff", "AQL/"),
        (ResourceType.OBJLNK, ObjLnk(3, 65535), "3:65535"),
        (ResourceType.FLOAT, 21.5, "21.5"),
        (ResourceType.INTEGER, -5, "-5"),
        (ResourceType.STRING, "Open Mobile Alliance", "Open Mobile Alliance"),
    ],
)
def test_text_form(rtype: ResourceType, value: object, text: str) -> None:
    assert to_text(value) == text  # type: ignore[arg-type]
    assert from_text(rdef(rtype), text) == value


@pytest.mark.parametrize(
    ("rtype", "text"),
    [
        (ResourceType.INTEGER, "1.5"),
        (ResourceType.INTEGER, "abc"),
        (ResourceType.INTEGER, str(2**63)),
        (ResourceType.UNSIGNED, "-1"),
        (ResourceType.BOOLEAN, "true"),
        (ResourceType.FLOAT, "1,5"),
        (ResourceType.OPAQUE, "not base64!"),
        (ResourceType.OBJLNK, "3"),
        (ResourceType.OBJLNK, "3:70000"),
        (ResourceType.NONE, ""),
    ],
)
def test_bad_text_is_decode_error(rtype: ResourceType, text: str) -> None:
    with pytest.raises(DecodeError):
        from_text(rdef(rtype), text)


@given(st.data())
def test_text_round_trip(data: st.DataObject) -> None:
    rtype = data.draw(st.sampled_from(VALUE_TYPES))
    value = data.draw(values_of(rtype))
    assert from_text(rdef(rtype), to_text(value)) == value


@given(st.sampled_from(VALUE_TYPES), st.text(max_size=20))
def test_any_text_decodes_or_raises_decode_error(rtype: ResourceType, text: str) -> None:
    try:
        from_text(rdef(rtype), text)
    except DecodeError:
        pass


def test_range_with_a_list_is_text_only() -> None:
    rng = ValueRange.parse("1-3, 5")
    assert rng is not None and (rng.low, rng.high) == (None, None)


@pytest.mark.parametrize("text", ["nan", "inf", "-Infinity", "1_000", "0x10", "1e999"])
def test_float_text_is_a_finite_decimal(text: str) -> None:
    with pytest.raises(DecodeError):
        from_text(rdef(ResourceType.FLOAT), text)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 2**1100])
def test_floats_are_finite(value: float) -> None:
    with pytest.raises(BadRequest):
        check_type(rdef(ResourceType.FLOAT), value)


@pytest.mark.parametrize("text", ["\u00b2:1", "\u0661:2", "3:", ":0", "123456:0"])
def test_objlnk_text_is_ascii_ids(text: str) -> None:
    with pytest.raises(DecodeError):
        ObjLnk.parse(text)
