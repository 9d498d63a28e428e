"""DDF XML loading: both schema variants, OMA registry quirks, typed errors for bad files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridged.objects.builtin import builtin_definitions
from bridged.objects.ddf import DefinitionError, load_ddf_dir, load_ddf_file, parse_ddf
from bridged.objects.definitions import ObjectDef, Operations, ResourceType, ValueRange

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ddf"
GOOD = FIXTURES / "good"
BAD = FIXTURES / "bad"
REGISTRY = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "lwm2m-registry"


def _one(path: Path) -> ObjectDef:
    [obj] = load_ddf_file(path)
    return obj


def _wrap(resources: str, object_fields: str = "") -> bytes:
    """A minimal one-object document around ``resources`` (Item elements)."""
    return f"""<LWM2M><Object ObjectType="MODefinition">
        <Name>Test</Name><ObjectID>32800</ObjectID>
        <MultipleInstances>Multiple</MultipleInstances><Mandatory>Optional</Mandatory>
        {object_fields}<Resources>{resources}</Resources></Object></LWM2M>""".encode()


_OBJECT_AGAIN = b"""<Object><Name>Again</Name><ObjectID>32800</ObjectID>
    <MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory>
    <Resources/></Object></LWM2M>"""


def _item(rid: str = "0", **fields: str) -> str:
    values = {
        "Name": "Value",
        "Operations": "R",
        "MultipleInstances": "Single",
        "Mandatory": "Optional",
        "Type": "Integer",
    } | fields
    body = "".join(f"<{k}>{v}</{k}>" for k, v in values.items() if v != "<absent>")
    id_attr = f' ID="{rid}"' if rid != "<absent>" else ""
    return f"<Item{id_attr}>{body}</Item>"


def test_schema_1_0_object() -> None:
    obj = _one(GOOD / "32769.xml")
    assert (obj.id, obj.name, obj.version, obj.lwm2m_version) == (32769, "Soil Probe", "1.0", "1.0")
    assert (obj.multiple, obj.mandatory) == (True, False)
    assert obj.urn == "urn:oma:lwm2m:x:32769"
    assert obj.description == "Moisture and salinity of the soil around a probe."
    assert list(obj.resources) == [0, 1, 2, 3]


def test_resource_fields() -> None:
    res = _one(GOOD / "32769.xml").resources
    assert res[0].operations is Operations.R and res[0].type is ResourceType.FLOAT
    assert res[0].mandatory and not res[0].multiple
    assert res[0].range == ValueRange("0..100", 0, 100)
    assert res[0].units == "%"
    assert res[0].description == "Volumetric water content."
    assert res[1].multiple and res[1].type is ResourceType.INTEGER
    assert res[1].range == ValueRange("-40..85", -40, 85)
    assert res[1].units == "Cel"


def test_executable_with_empty_type() -> None:
    res = _one(GOOD / "32769.xml").resource(2)
    assert (res.operations, res.type, res.range, res.units) == (
        Operations.E,
        ResourceType.NONE,
        None,
        "",
    )


def test_lenient_spelling() -> None:
    """Lowercase keywords, spaced operations and a trailing blank in Type mean one thing."""
    res = _one(GOOD / "32769.xml").resource(3)
    assert (res.operations, res.type, res.multiple, res.mandatory) == (
        Operations.RW,
        ResourceType.STRING,
        False,
        False,
    )
    assert res.range is not None and (res.range.low, res.range.high) == (0, 32)


def test_schema_1_1_object() -> None:
    obj = _one(GOOD / "32770.xml")
    assert (obj.version, obj.lwm2m_version, obj.urn) == ("1.1", "1.1", "urn:oma:lwm2m:x:32770:1.1")
    assert (obj.multiple, obj.mandatory) == (False, True)
    assert obj.resource(5523).type is ResourceType.NONE
    assert obj.resource(7).operations is Operations.NONE
    assert obj.resource(7).range is None
    assert obj.resource(8).type is ResourceType.UNSIGNED


def test_default_urn() -> None:
    [obj] = parse_ddf(_wrap(_item()))
    assert obj.urn == "urn:oma:lwm2m:x:32800", "vendor objects use x"


def test_common_resources_are_not_an_object() -> None:
    doc = b"""<LWM2M><Object ObjectType="CommonResources"><Resources>
        <Item ID="4000"><Name>Handle</Name><Operations>R</Operations><Type>Objlnk</Type></Item>
        </Resources></Object></LWM2M>"""
    assert parse_ddf(doc) == []


def test_load_dir_is_sorted_and_complete() -> None:
    assert [obj.id for obj in load_ddf_dir(GOOD)] == [32769, 32770, 3303]


def test_dir_overrides_builtins() -> None:
    definitions = builtin_definitions()
    assert definitions.get(3303).version == "1.1"
    definitions.extend(load_ddf_dir(GOOD))
    temperature = definitions.get(3303)
    assert temperature.version == "9.0"
    assert set(temperature.resources) == {5700}
    assert temperature.resource(5700).range == ValueRange("-30..60", -30, 60)
    assert 32769 in definitions and 32770 in definitions
    assert definitions.get(3).name == "Device"
    assert builtin_definitions().get(3303).version == "1.1"


def test_dir_refuses_the_same_object_twice(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_bytes((GOOD / "3303.xml").read_bytes())
    (tmp_path / "b.xml").write_bytes((GOOD / "3303.xml").read_bytes())
    with pytest.raises(DefinitionError, match=r"b\.xml: object 3303 is also defined in .*a\.xml"):
        load_ddf_dir(tmp_path)


def test_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="not a directory"):
        load_ddf_dir(tmp_path / "missing")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read"):
        load_ddf_file(tmp_path / "missing.xml")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad_type.xml", r"bad_type\.xml: object 32769, resource 0: Type 'Flot' is not a LwM2M"),
        ("missing_id.xml", r"missing_id\.xml: object 32769, <Item>: the ID attribute is missing"),
        ("duplicate_id.xml", r"duplicate_id\.xml: object 32769: resource 1 is defined twice"),
        ("doctype_entity.xml", r"doctype_entity\.xml: DOCTYPE and ENTITY declarations are not"),
    ],
)
def test_bad_fixture(name: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        load_ddf_file(BAD / name)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"", "not well-formed XML: no element found"),
        (b"<LWM2M><Object>", "not well-formed XML"),
        (b"<LWM2M>&undefined;</LWM2M>", "undefined entity"),
        (b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><LWM2M/>', "DOCTYPE"),
        (b"<DDFList/>", "root element is <DDFList>, not <LWM2M>"),
        (b'<?xml version="1.0" encoding="shift_jis"?><LWM2M/>', "cannot decode"),
        (b'<?xml version="1.0" encoding="rot13"?><LWM2M/>', "cannot decode"),
        (b'<?xml version="1.0" encoding="utf-16"?><LWM2M/>', "not well-formed XML"),
        (_wrap("").replace(b"<ObjectID>32800</ObjectID>", b""), "<Object>: ObjectID is missing"),
        (_wrap("").replace(b"32800", b"65535"), "object 65535: ObjectID '65535' is not an ID"),
        (_wrap("").replace(b"32800", b"\xd9\xa3"), "is not an ID"),
        (_wrap("").replace(b"<Name>Test</Name>", b"<Name> </Name>"), "Name is missing or empty"),
        (_wrap("").replace(b"<Mandatory>Optional</Mandatory>", b""), "Mandatory is missing"),
        (_wrap("").replace(b">Multiple<", b">Many<"), "'Many' is neither 'Multiple' nor 'Single'"),
        (_wrap("", "<ObjectVersion>v2</ObjectVersion>"), "ObjectVersion 'v2' is not a version"),
        (_wrap("", "<LWM2MVersion>1.1.1</LWM2MVersion>"), "LWM2MVersion '1.1.1' is not a"),
        (_wrap("").replace(b"<Resources></Resources>", b""), "object 32800: Resources is missing"),
        (_wrap(_item(rid="x")), "object 32800, resource x: ID 'x' is not an ID"),
        (_wrap(_item(rid="9" * 5000)), "is not an ID"),
        (_wrap(_item(Name="<absent>")), "resource 0: Name is missing or empty"),
        (_wrap(_item(Operations="RE")), "Operations 'RE' is not one of"),
        (_wrap(_item(Operations="RR")), "Operations 'RR' is not one of"),
        (_wrap(_item(Operations="<absent>")), "Operations is missing"),
        (_wrap(_item(Type="<absent>")), "Type is missing"),
        (_wrap(_item()).replace(b"</Item>", b"<Type>Float</Type></Item>"), "Type appears twice"),
        (
            _wrap("", "<ObjectVersion/><ObjectVersion/>"),
            "object 32800: ObjectVersion appears twice",
        ),
        (_wrap(_item(Type="Double")), "Type 'Double' is not a LwM2M type"),
        (_wrap(_item(MultipleInstances="<absent>")), "MultipleInstances is missing"),
        (_wrap(_item(Mandatory="Required")), "'Required' is neither 'Mandatory' nor 'Optional'"),
        (_wrap("").replace(b"</LWM2M>", _OBJECT_AGAIN), "object 32800 is defined twice"),
    ],
)
def test_bad_document(doc: bytes, message: str) -> None:
    with pytest.raises(DefinitionError, match=re.escape(message)):
        parse_ddf(doc, "custom/32800.xml")


def test_error_names_the_source() -> None:
    with pytest.raises(DefinitionError, match=r"^custom/32800\.xml: object 32800, resource 5: "):
        parse_ddf(_wrap(_item(rid="5", Type="Flot")), "custom/32800.xml")


def test_billion_laughs_is_refused_quickly() -> None:
    """The refusal comes before any expansion, so it is a DefinitionError, not a memory blow-up."""
    with pytest.raises(DefinitionError):
        parse_ddf((BAD / "doctype_entity.xml").read_bytes().replace(b"&e;", b"&e;" * 1000))


def test_oversized_document() -> None:
    with pytest.raises(DefinitionError, match="larger than"):
        parse_ddf(b" " * (4 * 1024 * 1024 + 1))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_definition_error(data: bytes) -> None:
    try:
        parse_ddf(data)
    except DefinitionError:
        pass


_SEED = (GOOD / "32769.xml").read_bytes()
_BODY = _SEED.partition(b"?>")[2]
_DECLARATIONS = [
    b"",
    b'<?xml version="1.0" encoding="UTF-8"?>',
    b'<?xml version="1.0" encoding="latin-1"?>',
    b'<?xml version="1.0" encoding="utf-32"?>',
    b'<?xml version="1.0" encoding="bogus"?>',
]
_TOKENS = [
    b"<",
    b">",
    b"</Item>",
    b"<Item>",
    b'ID="',
    b"&",
    b"&amp;",
    b"<!DOCTYPE x>",
    b"\x00",
    b"\xff",
    b"Float",
    b"E",
    b"65535",
    b"",
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_DECLARATIONS),
    st.lists(
        st.tuples(
            st.integers(0, len(_BODY)),
            st.integers(0, 12),
            st.one_of(st.sampled_from(_TOKENS), st.binary(max_size=8)),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_mutated_fixture_raises_only_definition_error(
    declaration: bytes, edits: list[tuple[int, int, bytes]]
) -> None:
    data = _BODY
    for pos, cut, insert in edits:
        data = data[:pos] + insert + data[pos + cut :]
    try:
        objects = parse_ddf(declaration + data)
    except DefinitionError:
        return
    assert all(isinstance(obj, ObjectDef) for obj in objects)


_FIELDS = (
    "Name",
    "ObjectID",
    "Operations",
    "Type",
    "MultipleInstances",
    "Mandatory",
    "RangeEnumeration",
    "Units",
)
_FIELD_RE = re.compile(rb">([^<>]*)</(%s)>" % "|".join(_FIELDS).encode())


@settings(max_examples=300)
@given(st.data())
def test_mutated_field_values_raise_only_definition_error(data: st.DataObject) -> None:
    """Replace the text of some fields with arbitrary text: a value or a DefinitionError."""
    fields = list(_FIELD_RE.finditer(_SEED))
    chosen = data.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=4, unique_by=id))
    doc = _SEED
    for m in sorted(chosen, key=lambda m: m.start(), reverse=True):
        text = data.draw(
            st.text(
                alphabet=st.characters(exclude_characters="<&", exclude_categories=["Cs"]),
                max_size=12,
            )
        )
        doc = doc[: m.start(1)] + text.encode() + doc[m.end(1) :]
    try:
        parse_ddf(doc)
    except DefinitionError:
        pass


@pytest.mark.skipif(not REGISTRY.is_dir(), reason="no copy of the OMA LwM2M registry")
def test_the_whole_oma_registry_parses() -> None:
    """Every object file of the OMA registry (and of its version history) loads as one object."""
    count = 0
    for folder in (REGISTRY, REGISTRY / "version_history"):
        for path in sorted(folder.glob("*.xml")):
            stem = path.stem.partition("-")[0]
            if not stem.isdigit():
                continue
            [obj] = load_ddf_file(path)
            assert obj.id == int(stem)
            count += 1
    assert count > 700
    by_id = {obj.id: obj for obj in map(_one, REGISTRY.glob("[0-9]*.xml"))}
    assert by_id[3303].resource(5700).type is ResourceType.FLOAT
    assert set(by_id[25].resources) == {0, 1, 3}
    assert parse_ddf((REGISTRY / "Common.xml").read_bytes()) == []
