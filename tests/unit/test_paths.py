"""Paths: parse, format, prefixes, and typed errors for anything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.objects import paths
from bridged.objects.errors import BadRequest, PathError
from bridged.objects.paths import PARSED, ROOT, Level, Path


@pytest.mark.parametrize(
    ("text", "ids", "prefix", "level"),
    [
        ("/", (), None, Level.ROOT),
        ("", (), None, Level.ROOT),
        ("/3", (3,), None, Level.OBJECT),
        ("/3/0", (3, 0), None, Level.INSTANCE),
        ("/3/0/1", (3, 0, 1), None, Level.RESOURCE),
        ("/3/0/7/1", (3, 0, 7, 1), None, Level.RESOURCE_INSTANCE),
        ("3/0/1", (3, 0, 1), None, Level.RESOURCE),
        ("/3/0/", (3, 0), None, Level.INSTANCE),
        ("/dev3/3303/0/5700", (3303, 0, 5700), "dev3", Level.RESOURCE),
        ("/d01", (), "d01", Level.ROOT),
        ("/65534/65534/65534/65534", (65534,) * 4, None, Level.RESOURCE_INSTANCE),
    ],
)
def test_parse(text: str, ids: tuple[int, ...], prefix: str | None, level: Level) -> None:
    p = Path.parse(text)
    assert p.ids == ids
    assert p.prefix == prefix
    assert p.level is level


@pytest.mark.parametrize(
    "text",
    [
        "/65535",  # reserved
        "/70000",
        "/3/-1",
        "/3/0/1/2/3",  # too deep
        "/3//1",
        "//3",
        "/3/x/1",  # a prefix only stands first
        "/3/01",  # no leading zeros
        "/3/0/1.5",
        "/dev 3/3",
        "/3/\u0663",  # a non-ASCII digit
    ],
)
def test_invalid_paths_raise_typed_error(text: str) -> None:
    with pytest.raises(PathError) as exc:
        Path.parse(text)
    assert isinstance(exc.value, BadRequest)
    assert exc.value.code_text == "4.00"


def test_paths_parsed_before_are_the_same_and_kept_within_bounds() -> None:
    """``Path.parse`` keeps what it parsed (a node names the same resources in every
    report): asked again, the same text is the same path, an invalid one raises again, and
    however many names come, at most ``PARSED`` are kept."""
    first = Path.parse("/3303/0/5700")
    assert Path.parse("/3303/0/5700") is first
    for _ in range(2):
        with pytest.raises(PathError):
            Path.parse("/3303/0/65535")
    names = [f"/3303/{i // 1000}/{i % 1000}" for i in range(3 * PARSED)]
    for name in names:
        path = Path.parse(name)
        assert str(path) == name
    assert paths._parsed and len(paths._parsed) <= PARSED
    assert all(str(Path.parse(name)) == name for name in names)


def test_format_and_navigation() -> None:
    p = Path.parse("/dev3/3303/0/5700")
    assert str(p) == "/dev3/3303/0/5700"
    assert p.segments() == ["dev3", "3303", "0", "5700"]
    assert p.object_id == 3303 and p.instance_id == 0 and p.resource_id == 5700
    assert p.resource_instance_id is None
    assert p.parent == Path.parse("/dev3/3303/0")
    assert p.truncate(Level.OBJECT) == Path.parse("/dev3/3303")
    assert p.without_prefix() == Path.parse("/3303/0/5700")
    assert str(ROOT) == "/"
    assert Path.parse("/3").child(0) == Path((3, 0))


def test_contains() -> None:
    assert ROOT.contains(Path.parse("/3/0"))
    assert ROOT.contains(Path.parse("/dev1/3/0")), "the bare root holds end-device paths too"
    assert Path.parse("/3").contains(Path.parse("/3/0/1"))
    assert Path.parse("/3/0").contains(Path.parse("/3/0"))
    assert not Path.parse("/3/0").contains(Path.parse("/3/1/1"))
    assert not Path.parse("/3").contains(Path.parse("/dev1/3/0"))
    assert Path.parse("/dev1").contains(Path.parse("/dev1/3/0"))
    assert not Path.parse("/dev1/3").contains(Path.parse("/dev2/3/0"))


def test_order_puts_gateway_first_then_by_ids() -> None:
    paths = [Path.parse(t) for t in ["/dev1/1/0", "/3/0/1", "/1/0", "/3/0/1/0", "/3/0/0"]]
    assert [str(p) for p in sorted(paths)] == ["/1/0", "/3/0/0", "/3/0/1", "/3/0/1/0", "/dev1/1/0"]


@given(
    st.lists(st.integers(0, 65534), max_size=4),
    st.one_of(st.none(), st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)),
)
def test_round_trip(ids: list[int], prefix: str | None) -> None:
    p = Path(tuple(ids), prefix)
    assert Path.parse(str(p)) == p
    assert Path.from_segments(p.segments()) == p


@given(st.text(max_size=30))
def test_garbage_never_escapes_as_anything_but_path_error(text: str) -> None:
    try:
        Path.parse(text)
    except PathError:
        pass


def test_equal_paths_hash_the_same_and_end_devices_paths_spread() -> None:
    """``Path.__hash__`` is the IDs' hash without a prefix: a path made by each constructor
    is the same key, its end-device twins are other keys, and the same IDs under many
    prefixes (a gateway's end devices) do not share a hash, which would make a dict of them
    a list."""
    bare = Path.parse("/3303/0/5700")
    for twin in (Path((3303, 0, 5700)), Path.derived((3303, 0, 5700)), Path.parse("3303/0/5700/")):
        assert twin == bare and hash(twin) == hash(bare) and {bare: 1}[twin] == 1
    prefixed = [Path((3303, 0, 5700), f"dev{i}") for i in range(1000)]
    assert len({hash(p) for p in prefixed}) == 1000
    keys = {p: i for i, p in enumerate([bare, *prefixed])}
    assert len(keys) == 1001 and keys[Path.parse("/dev7/3303/0/5700")] == 8
