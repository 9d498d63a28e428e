"""The one node path <-> upstream path mapping (bridged/exposure/mapping.py), both ways, for
what each mode shows: a renumbered instance, a prefixed one, the battery under other IDs, and
the resources the gateway holds itself."""

from __future__ import annotations

import pytest

from bridged.exposure.mapping import NodePath, PathMap, Shown, exposable
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.store.nodes import NodeId

NODE = NodeId("sim", "0001")
OTHER = NodeId("sim", "0002")


def test_a_renumbered_instance_maps_both_ways_but_for_what_the_gateway_holds() -> None:
    paths = PathMap()
    paths.show(NODE, Shown((3303, 0), Path((3303, 4)), held=frozenset({5750})))
    assert paths.upstream(NODE, Path((3303, 0, 5700))) == Path((3303, 4, 5700))
    assert paths.local(Path((3303, 4, 5700))) == NodePath(NODE, Path((3303, 0, 5700)))
    assert paths.local(Path((3303, 4))) == NodePath(NODE, Path((3303, 0)))
    assert paths.local(Path((3303, 4, 5750))) is None, "the node's name is the gateway's"
    assert paths.local(Path((3303, 0, 5700))) is None, "the gateway's own instance"
    assert paths.upstream(OTHER, Path((3303, 0, 5700))) is None
    paths.reported(NODE, Path((3303, 0, 5750)))
    assert paths.local(Path((3303, 4, 5750))) == NodePath(NODE, Path((3303, 0, 5750)))


def test_a_prefixed_instance_keeps_its_ids() -> None:
    paths = PathMap()
    paths.show(NODE, Shown((3311, 0), Path((3311, 0), "dev3")))
    assert paths.upstream(NODE, Path((3311, 0, 5850))) == Path((3311, 0, 5850), "dev3")
    assert paths.local(Path((3311, 0, 5850), "dev3")) == NodePath(NODE, Path((3311, 0, 5850)))
    assert paths.local(Path((3311, 0, 5850))) is None
    assert paths.local(Path((3311,), "dev3")) is None, "an object mixes instances"


def test_the_battery_is_one_resource_under_other_ids() -> None:
    paths = PathMap()
    paths.show(NODE, Shown((3, 0), Path((3300, 7)), {5700: 9}))
    assert paths.upstream(NODE, Path((3, 0, 9))) == Path((3300, 7, 5700))
    assert paths.upstream(NODE, Path((3, 0, 0))) is None, "the node's other /3 values"
    assert paths.local(Path((3300, 7, 5700))) == NodePath(NODE, Path((3, 0, 9)))
    assert paths.local(Path((3300, 7))) == NodePath(NODE, Path((3, 0, 9)))
    assert paths.local(Path((3300, 7, 5701))) is None, "the unit is the gateway's"


def test_hiding_forgets_both_ways() -> None:
    paths = PathMap()
    paths.show(NODE, Shown((3303, 0), Path((3303, 4))))
    paths.show(NODE, Shown((3304, 0), Path((3304, 4))))
    assert paths.hide(NODE, (3303, 0)) is not None
    assert paths.local(Path((3303, 4, 5700))) is None
    assert [s.upstream for s in paths.hide_node(NODE)] == [Path((3304, 4))]
    assert paths.upstream(NODE, Path((3304, 0, 5700))) is None


def test_a_nodes_housekeeping_is_never_exposable() -> None:
    objects = {0: [0], 1: [0], 2: [0, 1], 3: [0], 21: [0], 23: [0], 3303: [0, 1]}
    assert exposable(objects) == {(3, 0), (3303, 0), (3303, 1)}


def test_the_objects_that_hold_nodes_instances() -> None:
    unprefixed, prefixed = PathMap(), PathMap(prefixed=True)
    assert unprefixed.holds_nodes(Path((3303,))) and unprefixed.holds_nodes(Path((3303, 4)))
    assert not unprefixed.holds_nodes(Path((1,))), "the housekeeping objects are the gateway's"
    assert not unprefixed.holds_nodes(Path(())), "the root is no object"
    assert prefixed.holds_nodes(Path((3303,), "dev0"))
    assert not prefixed.holds_nodes(Path((3303,))), "the gateway mode's own objects"


def test_an_instance_shown_where_it_is_answers_with_the_nodes_own_path() -> None:
    """A node endpoint shows ``/3303/0`` as ``/3303/0``: a reading's path upstream is the
    node's own path object, which its records and the tree's time of measurement then share
    (a new path per reading was 200 bytes of each of 10,000 endpoints, issue 17); a prefixed
    or renumbered instance still gets a path of its own."""
    paths = PathMap()
    paths.show(NODE, Shown((3303, 0), Path((3303, 0))))
    paths.show(OTHER, Shown((3303, 0), Path((3303, 0), "dev3")))
    local = Path((3303, 0, 5700))
    assert paths.upstream(NODE, local) is local
    assert paths.upstream(OTHER, local) == Path((3303, 0, 5700), "dev3")
    renumbered = PathMap()
    renumbered.show(NODE, Shown((3303, 0), Path((3303, 4))))
    assert renumbered.upstream(NODE, local) == Path((3303, 4, 5700))


def test_the_index_by_upstream_path_is_made_when_first_asked_and_kept_true() -> None:
    """Most node endpoints' maps are never asked which node a path is (200 bytes each of
    10,000, issue 17): the index is made at the first ``local``, and what is shown or hidden
    after keeps it true."""
    paths = PathMap()
    paths.show(NODE, Shown((3303, 0), Path((3303, 0))))
    paths.show(NODE, Shown((3304, 0), Path((3304, 0))))
    assert paths._up is None
    assert paths.local(Path((3303, 0, 5700))) == NodePath(NODE, Path((3303, 0, 5700)))
    paths.hide(NODE, (3304, 0))
    paths.show(OTHER, Shown((3311, 0), Path((3311, 0))))
    assert paths.local(Path((3304, 0, 5700))) is None
    assert paths.local(Path((3311, 0, 5850))) == NodePath(OTHER, Path((3311, 0, 5850)))
    paths.hide_node(OTHER)
    assert paths.local(Path((3311, 0, 5850))) is None


def test_a_map_of_one_node_answers_as_a_map_of_many_and_refuses_another_node() -> None:
    """A node endpoint's map holds its node's instances without a dict of nodes (issue 17)."""
    mine, many = PathMap(node=NODE), PathMap()
    for paths in (mine, many):
        paths.show(NODE, Shown((3303, 0), Path((3303, 0))))
        paths.show(NODE, Shown((3311, 0), Path((3311, 0))))
        paths.hide(NODE, (3311, 0))
    for paths in (mine, many):
        assert [s.local for s in paths.instances(NODE)] == [(3303, 0)]
        assert paths.upstream(NODE, Path((3303, 0, 5700))) == Path((3303, 0, 5700))
        assert paths.local(Path((3303, 0, 5700))) == NodePath(NODE, Path((3303, 0, 5700)))
        assert paths.upstream(OTHER, Path((3303, 0, 5700))) is None
        assert paths.instances(OTHER) == []
        assert [s.local for s in paths.hide_node(NODE)] == [(3303, 0)]
        assert paths.instances(NODE) == []
        assert paths.local(Path((3303, 0, 5700))) is None
    with pytest.raises(ValueError, match="cannot show"):
        mine.show(OTHER, Shown((3303, 0), Path((3303, 0))))


def test_maps_of_nodes_shown_alike_share_how_and_each_answers_with_its_own_node() -> None:
    """Node endpoints of one kind of node show the same instances at the same paths: one
    ``Shown`` each and one tuple of them for all (280 bytes of each of 10,000 endpoints, issue
    17), and each map still says its own node is behind a path."""
    mine, other = PathMap(node=NODE), PathMap(node=OTHER)
    for node, paths in ((NODE, mine), (OTHER, other)):
        paths.show(node, Shown((3311, 0), Path((3311, 0)), held=frozenset({5750})))
        paths.show(node, Shown((3303, 0), Path((3303, 0)), held=frozenset({5750})))
    assert mine.instances(NODE) == other.instances(OTHER)
    assert all(a is b for a, b in zip(mine.instances(NODE), other.instances(OTHER), strict=True))
    assert mine._down.get(NODE) is other._down.get(OTHER)
    assert mine.local(Path((3303, 0, 5700))) == NodePath(NODE, Path((3303, 0, 5700)))
    assert other.local(Path((3303, 0, 5700))) == NodePath(OTHER, Path((3303, 0, 5700)))
    assert mine.local(Path((3303, 0, 5750))) is None
    assert other.reported(OTHER, Path((3303, 0, 5750))) == Path((3303, 0, 5750))
    assert other.local(Path((3303, 0, 5750))) == NodePath(OTHER, Path((3303, 0, 5750)))
    assert mine.local(Path((3303, 0, 5750))) is None, "what one node reported is its own"


def test_placed_puts_a_reports_records_where_reported_and_upstream_put_them() -> None:
    """``placed`` (every reading's mapping, one call per report, the common case inline)
    answers the IDs of what ``reported`` (``claim``) and ``upstream`` answer for each record of
    a report: a renumbered instance, a resource the gateway held (the node's once claimed), the
    battery under other IDs, an instance shown where it is, a prefixed one; and leaves out
    what is not shown or has no value (an instance path)."""

    def maps() -> tuple[PathMap, PathMap]:
        made = []
        for _ in range(2):
            paths = PathMap()
            paths.show(NODE, Shown((3303, 0), Path((3303, 4)), held=frozenset({5750})))
            paths.show(NODE, Shown((3, 0), Path((3300, 9)), {5700: 9}))
            paths.show(NODE, Shown((3311, 0), Path((3311, 0))))
            paths.show(OTHER, Shown((3303, 0), Path((3303, 0), "dev3")))
            made.append(paths)
        return made[0], made[1]

    records = [
        Record(Path((3303, 0, 5700)), 21.5, 1.0),
        Record(Path((3303, 0, 5750)), "hall", 1.0),
        Record(Path((3, 0, 9)), 80, 1.0),
        Record(Path((3, 0, 0)), "ACME", 1.0),
        Record(Path((3311, 0, 5850)), True, 1.0),
        Record(Path((3311, 0)), 1, 1.0),
        Record(Path((3342, 0, 5500)), True, 1.0),
    ]
    for claim in (True, False):
        paths, oracle = maps()
        expected = []
        for r in records:
            at = (oracle.reported if claim else oracle.upstream)(NODE, r.path)
            if at is not None and len(r.path.ids) >= 3:
                expected.append((at.ids, r))
        assert paths.placed(NODE, records, claim=claim) == expected
        assert paths.local(Path((3303, 4, 5750))) == oracle.local(Path((3303, 4, 5750)))
    shown_where_it_is = paths.placed(NODE, [records[4]])[0][0]
    assert shown_where_it_is is records[4].path.ids, "the node's own IDs, no tuple made"
    assert paths.placed(OTHER, records[:1]) == [((3303, 0, 5700), records[0])]
