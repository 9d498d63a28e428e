"""Node secrets (BTHome bind keys, 802.15.4 link keys): one JSON file, mode 0600.

Secrets are kept out of the database so that the database can be copied into a bug report and
a backup can treat them differently. The file is 0600 and replaced atomically (files.py), so a
crash leaves the old file or the new one, never half of one. ``Secret`` never shows its value
in ``repr`` or ``str``: a secret that reaches a log line shows as ``<secret>``.
"""

from __future__ import annotations

import json
from pathlib import Path

from bridged.transports.nodes import NodeId, Secret

from .files import write_private_file


class SecretsFileError(Exception):
    """The secrets file cannot be read or written; the message names the file and why."""


def parse_secrets(text: str) -> dict[str, dict[str, str]]:
    """The secrets file's content, ``{node id: {name: key as hex}}``; ValueError saying what
    is wrong with it."""
    data = json.loads(text)
    if not isinstance(data, dict) or not all(
        isinstance(v, dict) and all(isinstance(x, str) for x in v.values()) for v in data.values()
    ):
        raise ValueError("not an object of objects of hex strings")
    for keys in data.values():
        for value in keys.values():
            bytes.fromhex(value)
    return data


class SecretStore:
    """``{node id: {name: key}}`` in ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict[str, dict[str, str]] = self._load()

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as e:
            raise SecretsFileError(f"{self.path}: cannot read: {e}") from e
        try:
            return parse_secrets(text)
        except ValueError as e:
            raise SecretsFileError(
                f"{self.path}: damaged ({e}); nothing was changed: `bridged --recover` keeps "
                "it aside and keeps the keys that still read"
            ) from None

    def get(self, node: NodeId) -> dict[str, Secret]:
        return {k: Secret(bytes.fromhex(v)) for k, v in self._data.get(str(node), {}).items()}

    def set(self, node: NodeId, name: str, secret: Secret) -> None:
        self._data.setdefault(str(node), {})[name] = secret.value.hex()
        self._save()

    def remove(self, node: NodeId) -> None:
        if self._data.pop(str(node), None) is not None:
            self._save()

    def _save(self) -> None:
        data = json.dumps(self._data, sort_keys=True, indent=1).encode("ascii")
        try:
            write_private_file(self.path, data)
        except OSError as e:
            raise SecretsFileError(f"{self.path}: cannot write: {e}") from e
