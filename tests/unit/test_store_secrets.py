"""Node secrets file (bridged.store.secrets, bridged.store.files)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from bridged.store.nodes import NodeId
from bridged.store.secrets import Secret, SecretsFileError, SecretStore

NODE = NodeId("ble", "A4:C1:38:00:11:22")
KEY = Secret(bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932"))


def test_secrets_round_trip_in_a_0600_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "secrets.json"
    SecretStore(path).set(NODE, "bindkey", KEY)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert SecretStore(path).get(NODE) == {"bindkey": KEY}
    assert [p.name for p in path.parent.iterdir()] == ["secrets.json"]  # no temp file left


def test_removing_a_node_removes_its_secrets(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets.json")
    store.set(NODE, "bindkey", KEY)
    store.remove(NODE)
    assert SecretStore(tmp_path / "secrets.json").get(NODE) == {}


def test_a_secret_never_prints(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    logging.getLogger("t").info("key %s %r %s", KEY, KEY, [KEY])
    assert "231d" not in caplog.text
    assert "<secret>" in caplog.text


@pytest.mark.parametrize(
    ("text", "message"),
    [("zz", "not hexadecimal"), ("00" * 15, "must be 16 bytes")],
)
def test_bad_keys_are_explained_without_echoing_them(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        Secret.from_hex(text, size=16)
    assert text not in str(err.value)


@pytest.mark.parametrize("content", ["{", "[]", '{"ble:x": {"k": 1}}', '{"ble:x": {"k": "zz"}}'])
def test_a_malformed_file_is_named_and_left_alone(tmp_path: Path, content: str) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(content)
    with pytest.raises(SecretsFileError, match=r"secrets\.json.*damaged.*bridged --recover"):
        SecretStore(path)
    assert path.read_text() == content


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secrets.json"
    store = SecretStore(path)
    store.set(NODE, "bindkey", KEY)
    before = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(SecretsFileError, match=r"cannot write.*No space"):
        store.set(NODE, "other", KEY)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.json"]
