"""A server's Read of an instance answered from what the tree keeps (``InstanceRead``): the
bytes of every format are those the codec gives the instance's values now, an unchanged
instance is encoded once, and any change (a device-side value, a server's Write, a computed
value that moved, a deleted resource) is in the next Read (issue 17)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiocoap.numbers.codes import Code
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridged.engine.device import MachineFacts, install_device_objects
from bridged.engine.dm import DeviceManagement, Request
from bridged.objects import ids
from bridged.objects.builtin import builtin_definitions
from bridged.objects.definitions import ResourceDef
from bridged.objects.errors import BadRequest
from bridged.objects.formats import ContentFormat, codec_for
from bridged.objects.paths import Path
from bridged.objects.tree import KEPT_READS, ObjectTree
from bridged.objects.values import Value, check_value
from strategies import values_of

DEVICE = Path((ids.Device.OBJECT, 0))
FORMATS = (
    ContentFormat.TLV,
    ContentFormat.SENML_CBOR,
    ContentFormat.SENML_JSON,
    ContentFormat.LWM2M_CBOR,
    ContentFormat.LWM2M_JSON,
)
DEFINITIONS = builtin_definitions()
SETTABLE = [
    r
    for r in DEFINITIONS.get(ids.Device.OBJECT).resources.values()
    if r.operations.readable and not r.operations.executable
]


class Machine:
    """A clock and a MemAvailable the test moves."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.available = 500

    def facts(self) -> MachineFacts:
        return MachineFacts(time=int(self.now), mem_total_kib=1000, mem_available_kib=500)


def device_tree(machine: Machine) -> ObjectTree:
    tree = ObjectTree(DEFINITIONS)
    install_device_objects(
        tree,
        machine.facts(),
        on_reboot=lambda: None,
        memory=lambda: machine.available,
        clock=lambda: machine.now,
    )
    return tree


def fits(rdef: ResourceDef) -> Callable[[Value], bool]:
    def check(value: Value) -> bool:
        try:
            check_value(rdef, value)
        except BadRequest:
            return False
        return True

    return check


@st.composite
def settings_of_device(draw: st.DrawFn) -> tuple[int, Value | dict[int, Value]]:
    """A device-side value of one of /3's readable resources, of any kind: a string, an
    integer, a time, an object link, a multi-instance resource's instances."""
    rdef = draw(st.sampled_from(SETTABLE))
    values = values_of(rdef.type).filter(fits(rdef))
    if rdef.multiple:
        return rdef.id, draw(st.dictionaries(st.integers(0, 3), values, max_size=3))
    return rdef.id, draw(values)


def read(dm: DeviceManagement, content_format: int) -> bytes:
    reply = dm.handle(Request(Code.GET, DEVICE.segments(), accept=content_format))
    assert reply.code == Code.CONTENT, reply
    assert reply.content_format == content_format
    return reply.payload


def uncached(tree: ObjectTree, content_format: int) -> bytes:
    """The instance encoded from a fresh read (``ObjectTree.read`` of a tree no Read keeps)."""
    return codec_for(content_format).encode(tree.read(DEVICE), DEVICE, tree.definitions)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(settings_of_device(), st.booleans(), st.booleans()), max_size=12),
)
def test_the_kept_bytes_are_the_codecs_of_the_values_now(
    steps: list[tuple[tuple[int, Value | dict[int, Value]], bool, bool]],
) -> None:
    machine = Machine()
    served, fresh = device_tree(machine), device_tree(machine)
    dm = DeviceManagement(served)
    for (rid, value), tick, read_before in steps:
        if read_before:  # kept, then changed
            for content_format in FORMATS:
                read(dm, content_format)
        for tree in (served, fresh):
            tree.set(DEVICE.child(rid), value)
        if tick:  # Current Time and Memory Free move
            machine.now += 1
            machine.available += 1
        for content_format in FORMATS:
            expected = uncached(fresh, content_format)
            assert read(dm, content_format) == expected, ContentFormat(content_format).name
            assert read(dm, content_format) == expected, "kept"


def test_an_unchanged_instance_is_encoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = Machine()
    dm = DeviceManagement(device_tree(machine))
    codec = codec_for(ContentFormat.TLV)
    encoded: list[Path] = []
    real = type(codec).encode

    def counting(self: object, records: object, base: Path, definitions: object) -> bytes:
        encoded.append(base)
        return real(self, records, base, definitions)  # type: ignore[arg-type]

    monkeypatch.setattr(type(codec), "encode", counting)
    first = read(dm, ContentFormat.TLV)
    assert read(dm, ContentFormat.TLV) == first
    assert read(dm, ContentFormat.TLV) == first
    assert encoded == [DEVICE]
    machine.now += 1  # the clock moved: encoded again, once
    assert read(dm, ContentFormat.TLV) != first
    read(dm, ContentFormat.TLV)
    assert encoded == [DEVICE, DEVICE]


def test_a_server_write_and_a_removed_value_are_in_the_next_read() -> None:
    machine = Machine()
    tree = device_tree(machine)
    dm = DeviceManagement(tree)
    tlv = codec_for(ContentFormat.TLV)

    def values() -> dict[Path, Value]:
        payload = read(dm, ContentFormat.TLV)
        return {r.path: r.value for r in tlv.decode(payload, DEVICE, DEFINITIONS)}

    timezone = DEVICE.child(ids.Device.TIMEZONE)
    before = values()
    written = dm.handle(
        Request(
            Code.PUT,
            timezone.segments(),
            payload=b"Europe/Paris",
            content_format=ContentFormat.TEXT,
        )
    )
    assert written.code == Code.CHANGED
    assert values() == {**before, timezone: "Europe/Paris"}
    tree.remove(timezone)
    assert timezone not in values()
    # A Write of the whole instance that names no resource removes the optional writable ones.
    tree.set(timezone, "Asia/Tokyo")
    assert values()[timezone] == "Asia/Tokyo"
    empty = dm.handle(
        Request(Code.PUT, DEVICE.segments(), payload=b"", content_format=ContentFormat.TLV)
    )
    assert empty.code == Code.CHANGED
    assert timezone not in values()


def test_a_tree_keeps_at_most_its_limit_of_instances() -> None:
    tree = ObjectTree(DEFINITIONS)
    for iid in range(KEPT_READS + 5):
        tree.create_instance(3303, iid, [(5700, float(iid))])
    first = tree.instance_read(Path((3303, 0)))
    for iid in range(1, KEPT_READS + 5):
        tree.instance_read(Path((3303, iid)))
    assert tree.instance_read(Path((3303, 0))) is not first, "the first kept went first"
    last = Path((3303, KEPT_READS + 4))
    assert tree.instance_read(last) is tree.instance_read(last)
