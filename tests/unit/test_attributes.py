"""The attribute tree: a path's attributes and those below it, found and dropped by path."""

from __future__ import annotations

from bridged.engine.attributes import AttributeMap
from bridged.objects.linkformat import Attributes
from bridged.objects.paths import ROOT, Path


def test_forget_drops_a_subtree_and_leaves_no_index_behind() -> None:
    attributes = AttributeMap()
    for text in ("/3303/0/5700", "/3303/0", "/3303/1/5700", "/dev0/3303/0/5700"):
        attributes[Path.parse(text)] = Attributes(pmin=1)
    assert list(attributes.children(Path.parse("/3303"))) == [Path.parse("/3303/0")]
    attributes.forget(Path.parse("/3303/0"))
    assert sorted(map(str, attributes)) == ["/3303/1/5700", "/dev0/3303/0/5700"]
    del attributes[Path.parse("/3303/1/5700")]
    attributes.forget(Path((), "dev0"))  # an end device gone
    assert len(attributes) == 0
    assert attributes.children(ROOT) == {} and attributes.children(Path.parse("/3303")) == {}
    assert attributes._below == {}, "an emptied subtree leaves no index entries"
