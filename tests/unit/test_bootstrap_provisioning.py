"""The provisioned configuration on disk: round trip, permissions, atomic replacement, and
recovery from files a crash or a disk error left behind."""

from __future__ import annotations

import logging
import os
import pathlib
import stat

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridged.engine.bootstrap import all_records
from bridged.engine.provisioning import FILE_NAME, ProvisioningStore
from bridged.objects.builtin import builtin_definitions
from bridged.objects.ids import SecurityMode
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree


def provisioned_tree() -> ObjectTree:
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(0, 0, [(0, "coap://bs.example"), (1, True), (2, SecurityMode.NOSEC)])
    tree.create_instance(
        0,
        4,
        [
            (0, "coaps://s.example"),
            (1, False),
            (2, SecurityMode.PSK),
            (3, b"gw-1"),
            (5, b"\x00\x01secret"),
            (10, 9),
            (16, {0: 49320, 1: 49324}),
        ],
    )
    tree.create_instance(1, 2, [(0, 9), (1, 120), (6, False), (7, "U"), (17, 3)])
    tree.create_instance(2, 0)  # an instance without values survives too
    tree.create_instance(3, 0, [(0, "ACME")])
    return tree


def snapshot(tree: ObjectTree) -> dict[str, object]:
    out: dict[str, object] = {}
    for oid in (0, 1, 2):
        if tree.has(Path((oid,))):
            for iid in tree.instance_ids(oid):
                out[f"/{oid}/{iid}"] = all_records(tree, Path((oid, iid)))
    return out


def test_round_trip_keeps_keys_bootstrap_only_resources_and_empty_instances(
    tmp_path: pathlib.Path,
) -> None:
    saved = provisioned_tree()
    store = ProvisioningStore(tmp_path / "state")
    store.save(saved)
    loaded = ObjectTree(builtin_definitions())
    loaded.create_instance(1, 0, [(0, 1), (1, 300), (6, False), (7, "U")])  # factory leftovers
    assert store.load(loaded)
    assert snapshot(loaded) == snapshot(saved)
    assert not loaded.has(Path.parse("/3")), "only /0, /1 and /2 are stored"


def test_file_is_private_and_no_temporary_file_stays(tmp_path: pathlib.Path) -> None:
    store = ProvisioningStore(tmp_path)
    store.save(provisioned_tree())
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]


def test_replacement_is_atomic(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash between writing the new file and renaming it leaves the old file whole."""
    store = ProvisioningStore(tmp_path)
    store.save(provisioned_tree())
    before = store.path.read_bytes()
    changed = provisioned_tree()
    changed.set(Path.parse("/1/2/1"), 999)

    def crash(src: object, dst: object) -> None:
        raise OSError("power lost")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power lost"):
        store.save(changed)
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME], "the temporary file is gone"
    store.save(changed)
    loaded = ObjectTree(builtin_definitions())
    assert store.load(loaded) and loaded.get(Path.parse("/1/2/1")) == 999


def test_missing_file_is_not_an_error(tmp_path: pathlib.Path) -> None:
    tree = ObjectTree(builtin_definitions())
    assert not ProvisioningStore(tmp_path).load(tree)
    assert list(tree.instances()) == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],
        lambda data: data[:1],
        lambda data: b"",
        lambda data: b"\xff" * 40,
        lambda data: cbor2.dumps({"format": 2, "instances": [], "values": b""}),
        lambda data: cbor2.dumps({"format": 1, "instances": [[3, 0]], "values": b"\x80"}),
        lambda data: cbor2.dumps({"format": 1, "instances": [[0, "a"]], "values": b"\x80"}),
        lambda data: cbor2.dumps({"format": 1, "instances": [], "values": data}),
        lambda data: cbor2.dumps([1, 2]),
    ],
    ids=[
        "truncated",
        "one-byte",
        "empty",
        "garbage",
        "future-format",
        "foreign-object",
        "bad-instance-id",
        "values-without-instances",
        "not-a-map",
    ],
)
def test_unusable_file_is_kept_aside_and_named_in_the_log(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture, damage: object
) -> None:
    store = ProvisioningStore(tmp_path)
    store.save(provisioned_tree())
    bad = damage(store.path.read_bytes())  # type: ignore[operator]
    store.path.write_bytes(bad)
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(1, 0, [(0, 1), (1, 300), (6, False), (7, "U")])
    with caplog.at_level(logging.ERROR, logger="bridged.engine.provisioning"):
        assert not store.load(tree)
    assert str(store.path) in caplog.text
    assert not store.path.exists()
    [aside] = list(tmp_path.iterdir())
    assert aside.name.startswith(f"{FILE_NAME}.bad-") and aside.read_bytes() == bad
    assert [str(p) for p in tree.instances()] == ["/1/0"], "the tree is left as it was"


def test_unreadable_file_is_reported(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / FILE_NAME).mkdir()  # reading a directory fails with an OSError
    with caplog.at_level(logging.ERROR, logger="bridged.engine.provisioning"):
        assert not ProvisioningStore(tmp_path).load(ObjectTree(builtin_definitions()))
    assert str(tmp_path / FILE_NAME) in caplog.text


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=50)
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_any_truncation_is_detected(tmp_path: pathlib.Path, cut: int) -> None:
    """Whatever length a torn write left, loading either fails cleanly or (cut at the end)
    gives back exactly what was saved."""
    directory = tmp_path / str(cut)
    store = ProvisioningStore(directory)
    saved = provisioned_tree()
    store.save(saved)
    data = store.path.read_bytes()
    store.path.write_bytes(data[: cut % (len(data) + 1)])
    tree = ObjectTree(builtin_definitions())
    if store.load(tree):
        assert snapshot(tree) == snapshot(saved)
    else:
        assert list(tree.instances()) == []
