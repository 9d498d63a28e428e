"""Built-in definitions: facts checked against the OMA registry, and consistency of the set."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridged.objects.builtin import builtin_definitions, builtin_objects
from bridged.objects.ddf import load_ddf_file
from bridged.objects.definitions import ObjectDef, Operations, ResourceType
from bridged.objects.errors import BadRequest, NotFound
from bridged.objects.values import check_value

CORE = {0, 1, 2, 3, 4, 5, 20, 25}
IPSO_SENSORS = {3300, 3301, 3303, 3304, 3313, 3315, 3316, 3317, 3323, 3328, 3331}
IPSO_CONTROLS = {3200, 3201, 3311, 3342, 3347}

Op = Operations
T = ResourceType


def test_the_expected_objects() -> None:
    assert {obj.id for obj in builtin_objects()} == CORE | IPSO_SENSORS | IPSO_CONTROLS


@pytest.mark.parametrize(
    ("oid", "rid", "name", "ops", "rtype", "multiple", "mandatory", "units"),
    [
        (0, 0, "LWM2M Server URI", Op.NONE, T.STRING, False, True, ""),
        (0, 2, "Security Mode", Op.NONE, T.INTEGER, False, True, ""),
        (1, 0, "Short Server ID", Op.R, T.INTEGER, False, True, ""),
        (1, 1, "Lifetime", Op.RW, T.INTEGER, False, True, "s"),
        (1, 4, "Disable", Op.E, T.NONE, False, False, ""),
        (1, 8, "Registration Update Trigger", Op.E, T.NONE, False, True, ""),
        (1, 17, "Communication Retry Count", Op.NONE, T.UNSIGNED, False, False, ""),
        (1, 18, "Communication Retry Timer", Op.NONE, T.UNSIGNED, False, False, "s"),
        (1, 23, "Mute Send", Op.RW, T.BOOLEAN, False, False, ""),
        (2, 2, "ACL", Op.RW, T.INTEGER, True, False, ""),
        (3, 0, "Manufacturer", Op.R, T.STRING, False, False, ""),
        (3, 4, "Reboot", Op.E, T.NONE, False, True, ""),
        (3, 9, "Battery Level", Op.R, T.INTEGER, False, False, "%"),
        (3, 11, "Error Code", Op.R, T.INTEGER, True, True, ""),
        (3, 13, "Current Time", Op.RW, T.TIME, False, False, ""),
        (3, 22, "ExtDevInfo", Op.R, T.OBJLNK, True, False, ""),
        (4, 2, "Radio Signal Strength", Op.R, T.INTEGER, False, True, "dBm"),
        (5, 0, "Package", Op.W, T.OPAQUE, False, True, ""),
        (25, 3, "IoT Device Objects", Op.R, T.CORELNK, False, True, ""),
        (3303, 5700, "Sensor Value", Op.R, T.FLOAT, False, True, ""),
        (3303, 5605, "Reset Min and Max Measured Values", Op.E, T.NONE, False, False, ""),
        (3311, 5850, "On/Off", Op.RW, T.BOOLEAN, False, True, ""),
        (3347, 5500, "Digital Input State", Op.R, T.BOOLEAN, False, True, ""),
    ],
)
def test_resource_facts(
    oid: int,
    rid: int,
    name: str,
    ops: Operations,
    rtype: ResourceType,
    multiple: bool,
    mandatory: bool,
    units: str,
) -> None:
    res = builtin_definitions().resource(oid, rid)
    assert (res.id, res.name, res.operations, res.type) == (rid, name, ops, rtype)
    assert (res.multiple, res.mandatory, res.units) == (multiple, mandatory, units)


@pytest.mark.parametrize(
    ("oid", "version", "lwm2m_version", "multiple", "mandatory", "rids"),
    [
        (0, "1.1", "1.1", True, True, set(range(18))),
        (1, "1.1", "1.1", True, True, set(range(24))),
        (2, "1.1", "1.0", True, False, set(range(4))),
        (3, "1.1", "1.1", False, True, set(range(23))),
        (4, "1.1", "1.0", False, False, set(range(12))),
        (5, "1.1", "1.1", False, False, set(range(14)) - {4}),
        (25, "2.0", "1.1", True, False, {0, 1, 3}),
    ],
)
def test_core_object_versions(
    oid: int, version: str, lwm2m_version: str, multiple: bool, mandatory: bool, rids: set[int]
) -> None:
    obj = builtin_definitions().get(oid)
    assert (obj.version, obj.lwm2m_version) == (version, lwm2m_version)
    assert (obj.multiple, obj.mandatory) == (multiple, mandatory)
    assert set(obj.resources) == rids


def test_gateway_has_no_resource_2() -> None:
    """Resource 2 (IoT Device Object) was removed in LwM2M Gateway 2.0."""
    with pytest.raises(NotFound):
        builtin_definitions().resource(25, 2)


def test_urns_carry_the_version() -> None:
    reg = builtin_definitions()
    assert reg.get(1).urn == "urn:oma:lwm2m:oma:1:1.1"
    assert reg.get(25).urn == "urn:oma:lwm2m:oma:25:2.0"
    assert reg.get(3311).urn == "urn:oma:lwm2m:ext:3311"
    assert reg.get(3303).urn == "urn:oma:lwm2m:ext:3303:1.1"


@pytest.mark.parametrize("obj", builtin_objects(), ids=lambda o: str(o.id))
def test_object_is_consistent(obj: ObjectDef) -> None:
    assert obj.name and obj.name == " ".join(obj.name.split())
    assert re.fullmatch(r"\d+\.\d+", obj.version)
    assert re.fullmatch(r"\d+\.\d+", obj.lwm2m_version)
    assert obj.resources
    for rid, res in obj.resources.items():
        assert rid == res.id
        assert res.name and res.name == " ".join(res.name.split())
        assert (res.operations is Operations.E) == (res.type is ResourceType.NONE)


def test_ids_are_unique_and_in_order() -> None:
    oids = [obj.id for obj in builtin_objects()]
    assert oids == sorted(set(oids))


def test_registry_is_fresh_each_call() -> None:
    first = builtin_definitions()
    first.objects.pop(3)
    assert 3 in builtin_definitions()
    assert builtin_definitions() is not builtin_definitions()


def test_shared_definitions_are_read_only() -> None:
    resources = builtin_definitions().get(3).resources
    with pytest.raises(TypeError):
        resources[99] = resources[0]  # type: ignore[index]


@pytest.mark.parametrize(
    ("oid", "rid", "value"),
    [
        (3, 9, 0),
        (3, 9, 100),
        (1, 0, 1),
        (1, 0, 65534),
        (3303, 6050, 0.5),
        (0, 0, "coaps://lwm2m.example.net:5684"),
        (5, 1, "x" * 255),
        (3, 0, "any length" * 100),
    ],
)
def test_range_admits(oid: int, rid: int, value: object) -> None:
    assert check_value(builtin_definitions().resource(oid, rid), value) == value


@pytest.mark.parametrize(
    ("oid", "rid", "value"),
    [
        (3, 9, 101),
        (3, 9, -1),
        (1, 0, 0),
        (1, 0, 65535),
        (3303, 6050, 1.5),
        (5, 1, "x" * 256),
        (0, 0, "é" * 128),
        (3, 9, "50"),
    ],
)
def test_range_refuses(oid: int, rid: int, value: object) -> None:
    with pytest.raises(BadRequest):
        check_value(builtin_definitions().resource(oid, rid), value)


REGISTRY = Path(__file__).resolve().parents[3] / "shared" / "reference" / "lwm2m-registry"


def _registry_file(oid: int, version: str) -> Path | None:
    """The OMA registry's DDF file for ``oid`` at ``version`` (current file or version history)."""
    current = REGISTRY / f"{oid}.xml"
    old = REGISTRY / "version_history" / f"{oid}-{version.replace('.', '_')}.xml"
    for candidate in (old, current):
        if candidate.exists():
            [obj] = load_ddf_file(candidate)
            if obj.version == version:
                return candidate
    return None


@pytest.mark.skipif(not REGISTRY.is_dir(), reason="no copy of the OMA LwM2M registry")
@pytest.mark.parametrize("obj", builtin_objects(), ids=lambda o: str(o.id))
def test_builtin_facts_match_the_registry(obj: ObjectDef) -> None:
    """Every built-in definition says what the OMA registry's DDF of that version says."""
    source = _registry_file(obj.id, obj.version)
    if source is None:
        pytest.skip(f"the OMA registry copy has no {obj.id} v{obj.version}")
    [ddf] = load_ddf_file(source)
    assert (obj.name, obj.multiple, obj.mandatory) == (ddf.name, ddf.multiple, ddf.mandatory)
    assert sorted(obj.resources) == sorted(ddf.resources)
    for rid, rdef in obj.resources.items():
        other = ddf.resources[rid]
        fields = ("name", "operations", "type", "multiple", "mandatory")
        assert [getattr(rdef, f) for f in fields] == [getattr(other, f) for f in fields], rid
