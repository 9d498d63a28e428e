"""The instance tree: typed values, operation checks with their CoAP codes, change tracking."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.objects import tree as tree_module
from bridged.objects.definitions import (
    Definitions,
    Operations,
    ResourceDef,
    ResourceType,
    ValueRange,
    make_object,
)
from bridged.objects.errors import BadRequest, LwM2MError, MethodNotAllowed, NotFound
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import ObjLnk, Record

R, W, RW, E = Operations.R, Operations.W, Operations.RW, Operations.E


def definitions() -> Definitions:
    reg = Definitions()
    reg.add(
        make_object(
            3,
            "Device",
            [
                ResourceDef(0, "Manufacturer", R, ResourceType.STRING),
                ResourceDef(4, "Reboot", E, ResourceType.NONE, mandatory=True),
                ResourceDef(7, "Power Source Voltage", R, ResourceType.INTEGER, multiple=True),
                ResourceDef(13, "Current Time", RW, ResourceType.TIME),
                ResourceDef(14, "UTC Offset", RW, ResourceType.STRING),
            ],
            multiple=False,
            mandatory=True,
        )
    )
    reg.add(
        make_object(
            3303,
            "Temperature",
            [
                ResourceDef(5700, "Sensor Value", R, ResourceType.FLOAT, mandatory=True),
                ResourceDef(5701, "Sensor Units", R, ResourceType.STRING),
                ResourceDef(
                    5750,
                    "Application Type",
                    RW,
                    ResourceType.STRING,
                    range=ValueRange.parse("0..8"),
                ),
                ResourceDef(5605, "Reset Min and Max", E, ResourceType.NONE),
                ResourceDef(9, "Level", RW, ResourceType.INTEGER, range=ValueRange.parse("0..100")),
                ResourceDef(10, "Targets", RW, ResourceType.OBJLNK, multiple=True),
            ],
            version="1.1",
        )
    )
    return reg


@pytest.fixture
def tree() -> ObjectTree:
    t = ObjectTree(definitions())
    t.create_instance(3, 0, [(0, "ACME"), (7, {0: 3800, 1: 5000}), (13, 1700000000)])
    t.create_instance(3303, 0, [(5700, 21.5), (5750, "kitchen")])
    t.create_instance(3303, 1, [(5700, 19)])
    return t


def p(text: str) -> Path:
    return Path.parse(text)


def test_read_at_every_level(tree: ObjectTree) -> None:
    assert tree.read(p("/3303/0/5700")) == [Record(p("/3303/0/5700"), 21.5)]
    assert tree.read(p("/3303/1/5700")) == [Record(p("/3303/1/5700"), 19.0)], "int → Float"
    assert tree.read(p("/3/0/7")) == [Record(p("/3/0/7/0"), 3800), Record(p("/3/0/7/1"), 5000)]
    assert tree.read(p("/3/0/7/1")) == [Record(p("/3/0/7/1"), 5000)]
    assert [str(r.path) for r in tree.read(p("/3303"))] == [
        "/3303/0/5700",
        "/3303/0/5750",
        "/3303/1/5700",
    ]
    assert [str(r.path) for r in tree.read(p("/"))][:4] == [
        "/3/0/0",
        "/3/0/7/0",
        "/3/0/7/1",
        "/3/0/13",
    ]


def test_a_constraint_refuses_what_the_definition_admits(tree: ObjectTree) -> None:
    def positive(value: object) -> None:
        if isinstance(value, int) and value <= 0:
            raise BadRequest(f"{value} is not positive")

    tree.constrain(3303, 9, positive)
    with pytest.raises(BadRequest):
        tree.write(p("/3303/0/9"), [Record(p("/3303/0/9"), 0)], replace=False)
    with pytest.raises(BadRequest):
        tree.set(p("/3303/0/9"), -1)
    with pytest.raises(BadRequest):
        tree.create_instance(3303, 5, [(5700, 1.0), (9, 0)])
    assert not tree.has(p("/3303/0/9")) and not tree.has(p("/3303/5"))
    tree.write(p("/3303/0/9"), [Record(p("/3303/0/9"), 7)], replace=False)
    assert tree.get(p("/3303/0/9")) == 7


def test_a_computed_resource_is_its_value_when_read(tree: ObjectTree) -> None:
    values: list[int | None] = [1700000005, None, 1700000009]
    tree.compute(p("/3/0/13"), lambda: values[0])
    changed: list[Path] = []
    tree.subscribe(changed.append)
    assert tree.read(p("/3/0")) == [
        Record(p("/3/0/0"), "ACME"),
        Record(p("/3/0/7/0"), 3800),
        Record(p("/3/0/7/1"), 5000),
        Record(p("/3/0/13"), 1700000005),
    ]
    values.pop(0)
    assert tree.get(p("/3/0/13")) == 1700000005, "None: the last value stays"
    values.pop(0)
    assert tree.get(p("/3/0/13")) == 1700000009
    assert changed == [], "reads report no change"
    tree.write(p("/3/0/13"), [Record(p("/3/0/13"), 5)], replace=True)
    assert tree.read(p("/3/0/13")) == [Record(p("/3/0/13"), 1700000009)]
    with pytest.raises(NotFound):
        tree.compute(p("/3/0/14"), lambda: "+01:00")  # absent


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/3303/9", "4.04"),
        ("/3303/0/5701", "4.04"),  # defined but absent
        ("/9999", "4.04"),
        ("/3/0/7/9", "4.04"),
        ("/3/0/0/0", "4.04"),  # instance of a single-instance resource
        ("/3/0/4", "4.05"),  # executable, not readable
        ("/dev1/3/0", "4.04"),  # another tree's prefix
    ],
)
def test_read_errors(tree: ObjectTree, path: str, code: str) -> None:
    with pytest.raises(LwM2MError) as exc:
        tree.read(p(path))
    assert exc.value.code_text == code


def test_write_to_read_only_is_405_and_changes_nothing(tree: ObjectTree) -> None:
    with pytest.raises(MethodNotAllowed):
        tree.write(
            p("/3303/0"),
            [Record(p("/3303/0/5750"), "x"), Record(p("/3303/0/5700"), 1.0)],
            replace=False,
        )
    assert tree.get(p("/3303/0/5750")) == "kitchen", "a rejected write is all-or-nothing"


def test_write_checks_type_and_range(tree: ObjectTree) -> None:
    with pytest.raises(BadRequest):
        tree.write(p("/3303/0/9"), [Record(p("/3303/0/9"), 101)], replace=True)
    with pytest.raises(BadRequest):
        tree.write(p("/3303/0/9"), [Record(p("/3303/0/9"), "50")], replace=True)
    with pytest.raises(BadRequest):
        tree.write(p("/3303/0/5750"), [Record(p("/3303/0/5750"), "123456789")], replace=True)
    tree.write(p("/3303/0/9"), [Record(p("/3303/0/9"), 100)], replace=True)
    assert tree.get(p("/3303/0/9")) == 100


def test_write_outside_target_is_400(tree: ObjectTree) -> None:
    with pytest.raises(BadRequest):
        tree.write(p("/3303/0"), [Record(p("/3303/1/5750"), "x")], replace=False)


def test_write_unknown_resource_is_404(tree: ObjectTree) -> None:
    with pytest.raises(NotFound):
        tree.write(p("/3303/0"), [Record(p("/3303/0/1234"), "x")], replace=False)


def test_partial_update_merges_and_replace_replaces(tree: ObjectTree) -> None:
    tree.write(p("/3303/0/10"), [Record(p("/3303/0/10/0"), ObjLnk(3, 0))], replace=True)
    tree.write(p("/3303/0"), [Record(p("/3303/0/10/1"), ObjLnk(4, 0))], replace=False)
    assert tree.get(p("/3303/0/10")) == {0: ObjLnk(3, 0), 1: ObjLnk(4, 0)}
    tree.write(p("/3303/0/10"), [Record(p("/3303/0/10/5"), ObjLnk(5, 0))], replace=True)
    assert tree.get(p("/3303/0/10")) == {5: ObjLnk(5, 0)}
    # Replace on the instance drops optional writable resources that are not given.
    tree.write(p("/3303/0"), [Record(p("/3303/0/9"), 1)], replace=True)
    assert not tree.has(p("/3303/0/5750"))
    assert tree.get(p("/3303/0/5700")) == 21.5, "read-only resources stay"


def test_create_and_delete(tree: ObjectTree) -> None:
    tree.definitions.add(
        make_object(
            3201,
            "Digital Output",
            [
                ResourceDef(5550, "Digital Output State", RW, ResourceType.BOOLEAN, mandatory=True),
                ResourceDef(5750, "Application Type", RW, ResourceType.STRING),
            ],
        )
    )
    new = tree.create(p("/3201"), [Record(p("/3201/7/5550"), True)])
    assert new == p("/3201/7")
    auto = tree.create(p("/3201"), [Record(p("/3201/0/5550"), False)], iid=0)
    assert auto == p("/3201/0")
    with pytest.raises(BadRequest, match="already exists"):
        tree.create(p("/3201"), [Record(p("/3201/0/5550"), True)])
    with pytest.raises(BadRequest):
        tree.create(p("/3"), [])  # single-instance object already has /3/0
    tree.delete(p("/3201/7"))
    assert not tree.has(p("/3201/7"))
    with pytest.raises(NotFound):
        tree.delete(p("/3303/7"))
    with pytest.raises(MethodNotAllowed):
        tree.delete(p("/3/0"))


def test_create_without_a_mandatory_resource_is_400_naming_it(tree: ObjectTree) -> None:
    """A Sensor Value is mandatory and read-only: no Create can give it, and nothing would
    ever set it in the instance; an executable mandatory resource holds no value."""
    with pytest.raises(BadRequest, match=r"mandatory resources missing: 5700 \(Sensor Value\)"):
        tree.create(p("/3303"), [Record(p("/3303/7/5750"), "attic")])
    assert not tree.has(p("/3303/7"))
    with pytest.raises(MethodNotAllowed):
        tree.create(p("/3303"), [Record(p("/3303/7/5700"), 20.0)])


def test_execute(tree: ObjectTree) -> None:
    calls: list[tuple[str, str]] = []
    tree.on_execute(3303, 5605, lambda path, args: calls.append((str(path), args)))
    tree.execute(p("/3303/1/5605"), "0='x'")
    assert calls == [("/3303/1/5605", "0='x'")]
    with pytest.raises(MethodNotAllowed):
        tree.execute(p("/3303/1/5700"))
    with pytest.raises(NotFound):
        tree.execute(p("/3303/5/5605"))
    with pytest.raises(BadRequest):
        tree.on_execute(3303, 5700, lambda path, args: None)
    with pytest.raises(NotFound):
        tree.execute(p("/3/0/4"))  # defined, executable, but no handler: not present


def test_device_side_remove(tree: ObjectTree) -> None:
    seen: list[str] = []
    tree.subscribe(lambda path: seen.append(str(path)))
    tree.remove(p("/3/0/7/1"))
    assert tree.get(p("/3/0/7")) == {0: 3800}
    tree.remove(p("/3303/0/5750"))
    assert not tree.has(p("/3303/0/5750"))
    tree.remove(p("/3303/0/5750"))  # already gone: nothing happens
    assert seen == ["/3/0/7/1", "/3303/0/5750"]


def test_changes_are_reported(tree: ObjectTree) -> None:
    seen: list[str] = []
    unsubscribe = tree.subscribe(lambda path: seen.append(str(path)))
    before = tree.change
    tree.set(p("/3303/0/5700"), 22.0, time=1700000001.0)
    tree.write(p("/3303/0/5750"), [Record(p("/3303/0/5750"), "hall")], replace=True)
    assert tree.change.structure == before.structure
    tree.create_instance(3303)
    tree.delete_instance(3303, 2)
    assert seen == ["/3303/0/5700", "/3303/0/5750", "/3303/2", "/3303/2"]
    assert tree.change.values == before.values + 2
    assert tree.change.structure == before.structure + 2
    unsubscribe()
    tree.set(p("/3303/0/5700"), 23.0)
    assert len(seen) == 4


def test_a_value_change_is_told_only_when_a_listener_watches_its_object(tree: ObjectTree) -> None:
    """A listener that watches some objects' values (the client its registration's, an
    observation its path's) hears of every structural change and of those values; a value
    change of an object nobody watches (a reading nobody observes) tells nobody, and is still
    set, with its time; once anybody watches every object (the default), every listener hears
    of every change, as before; ``watch`` and ``unwatch`` move the interest as observations
    come and go, and ``put`` of the IDs alone tells the path it builds."""
    seen: list[str] = []
    stop = tree.subscribe(lambda path: seen.append(str(path)), (3,))
    tree.set(p("/3303/0/5700"), 22.0, time=1700000001.0)
    tree.put((3303, 1, 5700), 18.5)
    tree.set(p("/3/0/14"), "+01:00")
    tree.create_instance(3303, 2)
    assert seen == ["/3/0/14", "/3303/2"]
    assert tree.read(p("/3303/0/5700")) == [Record(p("/3303/0/5700"), 22.0, 1700000001.0)]
    assert tree.get(p("/3303/1/5700")) == 18.5
    assert tree.watched(3) and not tree.watched(3303)

    tree.watch(3303)  # an observation of /3303/0/5700 made
    tree.put((3303, 0, 5700), 23.0)
    tree.unwatch(3303)  # and ended
    tree.set(p("/3303/0/5700"), 24.0)
    assert seen[2:] == ["/3303/0/5700"]

    everything: list[str] = []
    stop_all = tree.subscribe(lambda path: everything.append(str(path)))
    tree.put((3303, 1, 5700), 17.0)
    stop_all()
    tree.put((3303, 1, 5700), 16.0)
    assert everything == ["/3303/1/5700"]
    assert seen[3:] == ["/3303/1/5700"], "told with the others while anybody watches all"

    stop()
    tree.set(p("/3/0/14"), "+02:00")
    assert seen[4:] == []
    assert not tree.watched(3) and tree._watching == ()


def test_the_watched_objects_shared_between_trees_are_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Trees whose listeners watch the same objects share one tuple of them (every node
    endpoint's client), and observations coming and going in any mix keep no more shared
    ones than ``WATCHING_SHARED``: each tree still knows its own."""
    monkeypatch.setattr(tree_module, "_WATCHING", {(): ()})  # as a process starts
    one, other = ObjectTree(definitions()), ObjectTree(definitions())
    one.subscribe(lambda path: None, (3,))
    other.subscribe(lambda path: None, (3,))
    assert one._watching is other._watching
    for n in range(tree_module.WATCHING_SHARED + 10):
        one.watch(*[3303] * n)
        assert one.watched(3303) == (n > 0)
        one.unwatch(*[3303] * n)
    assert len(tree_module._WATCHING) <= tree_module.WATCHING_SHARED
    assert one._watching == (3,)


def test_put_in_a_prefixed_tree_tells_the_prefixed_path() -> None:
    """An end device's tree (the gateway mode) is given a reading by its IDs: its listener (the
    end devices' relay to the observations) is told the path with the device's prefix."""
    tree = ObjectTree(definitions(), "dev3")
    tree.create_instance(3303, 0, [(5700, 1.0)])
    seen: list[Path] = []
    tree.subscribe(seen.append)
    tree.put((3303, 0, 5700), 2.0, 1700000000.0)
    assert seen == [Path((3303, 0, 5700), "dev3")]
    assert tree.read(Path((3303, 0, 5700), "dev3"))[0].time == 1700000000.0


def test_a_change_listener_that_raises_does_not_stop_the_others(tree: ObjectTree) -> None:
    """The value is set, the listener after the failing one (an observation that notifies a
    server) still hears of it, and whoever set it sees no error of a listener's."""

    def broken(path: Path) -> None:
        raise RuntimeError("a listener's own defect")

    seen: list[str] = []
    tree.subscribe(broken)
    tree.subscribe(lambda path: seen.append(str(path)))
    tree.set(p("/3303/0/5700"), 22.5)
    assert tree.get(p("/3303/0/5700")) == 22.5
    assert seen == ["/3303/0/5700"]


def test_device_side_set_keeps_time(tree: ObjectTree) -> None:
    tree.set(p("/3303/0/5700"), 22.0, time=1700000001.5)
    assert tree.read(p("/3303/0/5700")) == [Record(p("/3303/0/5700"), 22.0, 1700000001.5)]
    tree.set(p("/3303/0/5700"), 23.0)
    assert tree.read(p("/3303/0/5700"))[0].time is None


def test_a_server_write_ends_the_time_of_measurement_in_a_prefixed_tree_too() -> None:
    """A value a server wrote is the tree's now, with no time of measurement, also in an end
    device's tree, whose Write names the records without its prefix: the times are kept by
    the paths' IDs (every path in a tree has its prefix), and the time of the value the node
    had measured was kept for the written one."""
    t = ObjectTree(definitions(), prefix="dev0")
    t.create_instance(3303, 0, [(5700, 1.0)])
    t.set(p("/dev0/3303/0/5750"), "kitchen", time=1700000001.5)
    assert t.read(p("/dev0/3303/0/5750"))[0].time == 1700000001.5
    t.write(p("/dev0/3303/0"), [Record(p("/3303/0/5750"), "hall")], replace=False)
    assert t.read(p("/dev0/3303/0/5750")) == [Record(p("/dev0/3303/0/5750"), "hall")]
    t.set(p("/dev0/3303/0/5700"), 2.0, time=1700000002.5)
    t.remove(p("/dev0/3303/0/5700"))
    t.set(p("/dev0/3303/0/5700"), 3.0)
    assert t.read(p("/dev0/3303/0/5700"))[0].time is None


def test_prefixed_tree() -> None:
    t = ObjectTree(definitions(), prefix="dev0")
    t.create_instance(3303, 0, [(5700, 1.0)])
    assert [str(r.path) for r in t.read(p("/dev0/3303"))] == ["/dev0/3303/0/5700"]
    assert list(t.instances()) == [p("/dev0/3303/0")]
    with pytest.raises(NotFound):
        t.read(p("/3303/0"))


def test_instances_within_a_path() -> None:
    """``instances(within)``: what a Discover of ``within`` lists of instances, found through
    the tree's index (an object's own, an instance itself, none under a resource)."""
    t = ObjectTree(definitions(), prefix="dev0")
    for iid in (2, 0, 1):
        t.create_instance(3303, iid, [(5700, 1.0)])
    t.create_instance(3, 0)
    assert list(t.instances(p("/dev0/3303"))) == [p(f"/dev0/3303/{i}") for i in (0, 1, 2)]
    assert list(t.instances(p("/dev0/3303/1"))) == [p("/dev0/3303/1")]
    assert list(t.instances(p("/dev0/3303/1/5700"))) == []
    assert (
        list(t.instances(p("/dev0")))
        == list(t.instances())
        == [
            p("/dev0/3/0"),
            *t.instances(p("/dev0/3303")),
        ]
    )
    for absent in ("/dev0/3303/7", "/dev0/3304", "/3303"):
        with pytest.raises(NotFound):
            list(t.instances(p(absent)))


def test_resource_paths_for_discover(tree: ObjectTree) -> None:
    tree.on_execute(3, 4, lambda path, args: None)
    assert [str(x) for x in tree.resource_paths(p("/3/0"))] == [
        "/3/0/0",
        "/3/0/4",
        "/3/0/7",
        "/3/0/7/0",
        "/3/0/7/1",
        "/3/0/13",
    ]


@given(st.one_of(st.integers(), st.floats(), st.text(), st.binary(), st.none(), st.booleans()))
def test_any_value_is_accepted_typed_or_refused_with_400(value: object) -> None:
    t = ObjectTree(definitions())
    t.create_instance(3303, 0)
    for rid in (5700, 5750, 9):
        try:
            t.set(p(f"/3303/0/{rid}"), value)  # type: ignore[arg-type]
        except BadRequest:
            continue
        assert t.read(p(f"/3303/0/{rid}"))[0].value == t.get(p(f"/3303/0/{rid}"))


def _answers(t: ObjectTree) -> object:
    """What a server learns of ``t``: every object's Read and Discover, its instances."""
    objects = [p(f"/{o}") if t.prefix is None else p(f"/{t.prefix}/{o}") for o in t.object_ids()]
    return (
        [t.read(o) for o in objects],
        [t.resource_paths(o) for o in objects],
        list(t.instances()),
        t.change,
    )


def test_a_thawed_tree_answers_and_changes_as_the_tree_it_was_frozen_from() -> None:
    t = ObjectTree(definitions(), prefix="dev0")
    t.create_instance(3, 0, [(0, "ACME"), (7, {0: 3800, 1: 5000}), (13, 1700000000)])
    t.create_instance(3303, 0, [(5700, 21.5), (5750, "kitchen")])
    t.create_instance(3303, 1, [(5700, 19), (10, {0: ObjLnk(3, 0)})])
    frozen = t.frozen()
    assert frozen is not None
    thawed = ObjectTree.thawed(t.definitions, t.prefix, frozen)
    assert _answers(thawed) == _answers(t)
    for each in (t, thawed):  # both change alike, and neither shares a dict with the other
        target = p("/dev0/3303/1/10/1")
        each.write(target, [Record(target, ObjLnk(3303, 0))], replace=False)
        each.set(p("/dev0/3/0/7/2"), 4100)
        each.delete(p("/dev0/3303/0"))
    assert _answers(thawed) == _answers(t)
    assert t.read(p("/dev0/3303/1/10")) == [
        Record(p("/dev0/3303/1/10/0"), ObjLnk(3, 0)),
        Record(p("/dev0/3303/1/10/1"), ObjLnk(3303, 0)),
    ]
    other = ObjectTree(definitions(), prefix="dev1")
    other.create_instance(3, 0, [(0, "Other"), (7, {0: 1, 1: 2}), (13, 5)])
    other.create_instance(3303, 0, [(5700, 1.0), (5750, "hall")])
    first = ObjectTree(definitions())
    first.create_instance(3, 0, [(0, "ACME"), (7, {0: 3800, 1: 5000}), (13, 1700000000)])
    first.create_instance(3303, 0, [(5700, 21.5), (5750, "kitchen")])
    a, b = first.frozen(), other.frozen()
    assert a is not None and b is not None and a.shape is b.shape  # one shape for all alike


def test_a_tree_with_a_time_of_measurement_is_not_frozen(tree: ObjectTree) -> None:
    tree.set(p("/3303/0/5700"), 22.0, time=1700000001.5)
    assert tree.frozen() is None


def test_a_tree_at_rest_answers_and_changes_as_before_and_keeps_its_hooks_and_times() -> None:
    """``rest`` holds the objects as data; any use thaws them, with the listeners, hooks and
    times of measurement the tree had (a node endpoint's tree, held by its client)."""
    t, same = ObjectTree(definitions()), ObjectTree(definitions())
    seen: list[Path] = []
    executed: list[Path] = []
    for each in (t, same):
        each.create_instance(3, 0, [(0, "ACME"), (7, {0: 3800, 1: 5000}), (13, 1700000000)])
        each.create_instance(3303, 0, [(5700, 21.5), (5750, "kitchen")])
        each.set(p("/3303/0/5700"), 22.0, time=1700000001.5)
        each.on_execute(3, 4, lambda path, args: executed.append(path))
    t.subscribe(seen.append)
    t.rest()
    assert t.resting
    assert _answers(t) == _answers(same)
    assert not t.resting, "what a server or the node does thaws it"
    t.rest()
    t.set(p("/3303/0/5700"), 23.0, time=1700000002.5)
    same.set(p("/3303/0/5700"), 23.0, time=1700000002.5)
    assert seen == [p("/3303/0/5700")]
    t.rest()
    t.execute(p("/3/0/4"))
    assert executed == [p("/3/0/4")]
    t.rest()
    assert t.read(p("/3303/0")) == same.read(p("/3303/0"))
    assert t.read(p("/3303/0"))[0].time == 1700000002.5


def _refuse_negative(value: object) -> None:
    if isinstance(value, float) and value < 0:
        raise BadRequest("negative")


def test_trees_checked_by_one_module_level_function_share_one_map_of_hooks() -> None:
    """Every node endpoint's client constrains its tree's /1/x/7 with one function: one map
    of hooks for all of them (a dict each was 2 MB of 10,000 endpoints, issue 17); a hook
    made in a function (a closure, a bound method) keeps a map of the tree's own."""
    a, b = ObjectTree(definitions()), ObjectTree(definitions())
    for each in (a, b):
        each.constrain(3303, 5700, _refuse_negative)
        each.create_instance(3303, 0, [(5700, 1.0)])
    assert a._constraints is b._constraints
    with pytest.raises(BadRequest):
        b.set(p("/3303/0/5700"), -1.0)
    mine: list[float] = []
    a.constrain(3303, 5701, lambda value: mine.append(1.0))
    assert a._constraints is not b._constraints
    with pytest.raises(BadRequest):
        a.set(p("/3303/0/5700"), -2.0)


def test_trees_without_times_of_measurement_share_one_empty_map_until_their_first() -> None:
    """A quiet node endpoint's tree, like an end device's, has no time of measurement: no
    empty dict of its own for them (64 bytes of each of 10,000 endpoints, issue 17). A time
    set on one tree is its own, read back with its value, and no other tree sees it."""
    a, b = ObjectTree(definitions()), ObjectTree(definitions())
    for each in (a, b):
        each.create_instance(3303, 0, [(5700, 21.5)])
    assert a._times is b._times
    a.set(p("/3303/0/5700"), 22.0, time=1700000001.5)
    b.set(p("/3303/0/5700"), 23.0)
    assert a._times is not b._times
    assert a.read(p("/3303/0/5700"))[0].time == 1700000001.5
    assert b.read(p("/3303/0/5700"))[0].time is None
    assert ObjectTree(definitions())._times == {}


class _Watcher:
    def __init__(self) -> None:
        self.seen: list[Path] = []

    def changed(self, path: Path) -> None:
        self.seen.append(path)


def test_a_listener_is_unsubscribed_by_itself_with_no_function_kept_to_do_it() -> None:
    """Every node endpoint's client subscribes a bound method to its tree and keeps no function
    to end it (48 bytes each of 10,000 endpoints, issue 17): ``unsubscribe`` with the bound
    method made again ends it, and only it."""
    tree = ObjectTree(definitions())
    tree.create_instance(3303, 0, [(5700, 1.0)])
    gone, stays = _Watcher(), _Watcher()
    tree.subscribe(gone.changed)
    tree.subscribe(stays.changed)
    tree.set(p("/3303/0/5700"), 2.0)
    tree.unsubscribe(gone.changed)
    tree.unsubscribe(gone.changed)  # not subscribed any more: nothing
    tree.set(p("/3303/0/5700"), 3.0)
    assert gone.seen == [p("/3303/0/5700")]
    assert stays.seen == [p("/3303/0/5700")] * 2


def test_a_tree_with_one_executor_of_its_own_holds_no_dict_for_it() -> None:
    """Every node endpoint's client executes /1/x/8 through a bound method of its own: the
    tree holds it without a dict of one entry (224 bytes of each of 10,000 endpoints, issue
    17) under a key that is one for all trees (56 bytes each), executes it, lists it, and a
    second executor makes the map a dict again."""
    tree = ObjectTree(definitions())
    tree.create_instance(3303, 0, [(5700, 1.0)])
    calls: list[str] = []
    tree.on_execute(3303, 5605, lambda path, args: calls.append(str(path)))
    assert not isinstance(tree._executors, dict)
    other = ObjectTree(definitions())
    other.on_execute(3303, 5605, lambda path, args: None)
    assert next(iter(tree._executors)) is next(iter(other._executors)), "one key for all"
    tree.execute(p("/3303/0/5605"))
    assert calls == ["/3303/0/5605"]
    assert p("/3303/0/5605") in tree.resource_paths(p("/3303/0"))
    with pytest.raises(NotFound):
        tree.execute(p("/3/0/4"))
    tree.on_execute(3, 4, lambda path, args: calls.append(str(path)))
    tree.execute(p("/3303/0/5605"))
    assert calls == ["/3303/0/5605", "/3303/0/5605"]


def test_has_answers_as_a_read_finds_and_raises_nothing_for_a_missing_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``has`` is what a start asks before creating each node instance (20,000 at 5,000 nodes,
    issue 17): it says what ``read`` finds, for every depth, another tree's prefix and a
    resource instance of a single-instance resource, and builds no NotFound (its message was
    most of the cost of a missing path)."""
    tree = ObjectTree(definitions())
    tree.create_instance(3, 0, [(0, "Acme"), (7, {0: 3300, 2: 5000})])
    tree.create_instance(3303, 4, [(5700, 21.5)])
    paths = [
        "/3", "/3/0", "/3/0/0", "/3/0/7", "/3/0/7/2", "/3/0/7/1", "/3/0/0/0", "/3/1", "/3/0/13",
        "/3303", "/3303/4/5700", "/3303/4/5700/0", "/3303/5", "/3304", "/3304/0/1",
    ]  # fmt: skip

    def found(path: Path) -> bool:
        try:
            tree.read(path)
        except NotFound:
            return False
        return True

    expected = {p: found(Path.parse(p)) for p in paths}
    built: list[str] = []
    monkeypatch.setattr(NotFound, "__init__", lambda self, *a, **k: built.append(str(a)))
    assert {p: tree.has(Path.parse(p)) for p in paths} == expected
    assert not tree.has(Path((3, 0), "dev1"))
    assert sum(expected.values()) == 7 and built == []
