"""The measurement -> LwM2M mapping of BLE nodes, checked against the built-in definitions."""

from __future__ import annotations

from collections import defaultdict

import pytest

from bridged.objects.builtin import builtin_definitions
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record, Value, check_value
from bridged.transports.ble import atc, bthome, ruuvi
from bridged.transports.ble.measurements import (
    BINARY_KINDS,
    TARGETS,
    UNMAPPED_KINDS,
    Measurement,
    RecordMapper,
    target,
)


def extreme_objects() -> list[list[tuple[int, bthome.ObjectValue]]]:
    """Every BTHome object ID at its lowest and highest raw value, decoded."""
    lows, highs = [], []
    for oid, spec in sorted(bthome.OBJECTS.items()):
        if oid == bthome.PACKET_ID:
            continue
        if spec.form is bthome.Form.NUMBER:
            if spec.kind == "battery":
                raws = [b"\x00", b"\x64"]
            elif spec.signed:
                raws = [b"\x00" * (spec.size - 1) + b"\x80", b"\xff" * (spec.size - 1) + b"\x7f"]
            else:
                raws = [b"\x00" * spec.size, b"\xff" * spec.size]
        elif spec.form is bthome.Form.BINARY:
            raws = [b"\x00", b"\x01"]
        elif spec.form is bthome.Form.BUTTON:
            raws = [b"\x00", b"\x80"]
        elif spec.form is bthome.Form.DIMMER:
            raws = [b"\x01\xff", b"\x02\xff"]
        elif spec.form in (bthome.Form.TEXT, bthome.Form.RAW):
            raws = [b"\x00", b"\x03abc"]
        else:
            raws = [b"\x00" * spec.size, b"\xff" * spec.size]
        for out, raw in zip((lows, highs), raws, strict=True):
            out.append(bthome.decode(bytes((0x40, oid)) + raw).objects[0])
    return [lows, highs]


def all_frames() -> list[tuple[Measurement, ...]]:
    frames = [
        tuple(Measurement(bthome.OBJECTS[o].kind, v, bthome.OBJECTS[o].unit) for o, v in objs)
        for objs in extreme_objects()
    ]
    for hex_data in (
        "0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F",
        "057FFFFFFEFFFE7FFF7FFF7FFFFFDEFEFFFECBB8334C884F",
        "058001000000008001800180010000000000CBB8334C884F",
    ):
        frames.append(ruuvi.decode(bytes.fromhex(hex_data)).measurements)
    for hex_data in ("582d341233dc00e03e490b2c2e", "dc3312342d582f09aa173d0b4b7c05"):
        found = atc.decode(bytes.fromhex(hex_data))
        assert found is not None
        frames.append(found[1].measurements)
    return frames


@pytest.mark.parametrize("measurements", all_frames())
def test_every_record_is_valid_for_its_resource(measurements: tuple[Measurement, ...]) -> None:
    """Every kind every decoder produces, at the extremes of its range, maps to records the
    built-in definitions accept, and those records make instances of a real object tree."""
    definitions = builtin_definitions()
    records = RecordMapper().records(measurements, 1.0, [5] * len(measurements))
    mapped_kinds = {m.kind for m in measurements} - UNMAPPED_KINDS
    assert mapped_kinds, "nothing mapped"
    instances: dict[tuple[int, int], list[tuple[int, Value]]] = defaultdict(list)
    paths = [r.path for r in records]
    assert len(paths) == len(set(paths)), "a path twice in one advert"
    for r in records:
        oid, iid, rid = r.path.ids
        defn = definitions.get(oid).resources[rid]
        assert not defn.multiple
        checked = check_value(defn, r.value)
        assert checked == r.value and type(checked) is type(r.value)
        assert r.time == (None if rid in (5701, 5751) else 1.0)
        instances[(oid, iid)].append((rid, r.value))
    tree = ObjectTree(definitions)
    for (oid, iid), values in sorted(instances.items()):
        tree.create_instance(oid, iid, values)
        for rid, value in values:
            assert tree.get(Path((oid, iid, rid))) == value


def test_every_bthome_kind_has_a_place() -> None:
    kinds = {spec.kind for oid, spec in bthome.OBJECTS.items() if oid != bthome.PACKET_ID}
    for kind in kinds - UNMAPPED_KINDS:
        assert target(kind) is not None
    assert set(BINARY_KINDS) <= kinds


def test_the_issue_table() -> None:
    assert TARGETS["temperature"].object_id == 3303
    assert TARGETS["humidity"].object_id == 3304
    assert TARGETS["pressure"].object_id == 3315
    assert TARGETS["illuminance"].object_id == 3301
    assert TARGETS["voltage"].object_id == 3316
    assert (TARGETS["battery"].object_id, TARGETS["battery"].resource_id) == (3, 9)
    assert TARGETS["button"].object_id == 3347


def paths_and_values(records: tuple[Record, ...]) -> list[tuple[str, Value]]:
    return [(str(r.path), r.value) for r in records]


def test_temperature_with_unit() -> None:
    records = RecordMapper().records([Measurement("temperature", 21.5, "Cel")], 7.0)
    assert paths_and_values(records) == [("/3303/0/5700", 21.5), ("/3303/0/5701", "Cel")]
    assert [r.time for r in records] == [7.0, None]  # the unit describes, it is no reading


def test_several_of_one_kind_get_instances_in_order() -> None:
    records = RecordMapper().records(
        [
            Measurement("temperature", 20.0, "Cel"),
            Measurement("count", 1),
            Measurement("temperature", 30.0, "Cel"),
            Measurement("count", 2),
            Measurement("rotation", 9.5, "deg"),
        ]
    )
    assert paths_and_values(records) == [
        ("/3303/0/5700", 20.0),
        ("/3303/0/5701", "Cel"),
        ("/3300/0/5700", 1.0),
        ("/3300/0/5751", "count"),
        ("/3303/1/5700", 30.0),
        ("/3303/1/5701", "Cel"),
        ("/3300/1/5700", 2.0),
        ("/3300/1/5751", "count"),
        ("/3300/2/5700", 9.5),
        ("/3300/2/5701", "deg"),
        ("/3300/2/5751", "rotation"),
    ]


def test_accelerometer_axes_share_an_instance() -> None:
    records = RecordMapper().records(
        [Measurement(f"acceleration_{a}", v, "G") for a, v in (("x", 0.1), ("y", 0.2), ("z", 1.0))]
    )
    assert paths_and_values(records) == [
        ("/3313/0/5702", 0.1),
        ("/3313/0/5701", "G"),
        ("/3313/0/5703", 0.2),
        ("/3313/0/5704", 1.0),
    ]


def test_device_object_resources() -> None:
    records = RecordMapper().records(
        [
            Measurement("battery", 80, "%"),
            Measurement("battery", 70, "%"),
            Measurement("firmware_version", "1.2.3"),
            Measurement("device_type", 5),
            Measurement("timestamp", 1684093277),
        ]
    )
    assert paths_and_values(records) == [
        ("/3/0/9", 80),
        ("/3/0/3", "1.2.3"),
        ("/3/0/17", "5"),
        ("/3/0/13", 1684093277),
    ]


def test_buttons_binaries_and_unmapped() -> None:
    records = RecordMapper().records(
        [
            Measurement("window", True),
            Measurement("button", "double_press"),
            Measurement("text", "hi"),
            Measurement("button", "none"),
            Measurement("raw", b"\x01"),
        ],
        button_counts=[3, 0],
    )
    assert paths_and_values(records) == [
        ("/3200/0/5500", True),
        ("/3200/0/5751", "window"),
        ("/3347/0/5500", True),
        ("/3347/0/5750", "double_press"),
        ("/3347/0/5501", 3),
        ("/3347/1/5500", False),
        ("/3347/1/5750", "none"),
        ("/3347/1/5501", 0),
    ]


def test_a_text_value_for_a_sensor_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        RecordMapper().records([Measurement("temperature", "warm")])
