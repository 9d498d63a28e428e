"""The link-layer security settings of ``[transport.802154]`` (see the transport's docstring):
the PAN's network key, from the table or from a file that keeps it out of the configuration,
the level of the gateway's frames and the key identifier its keys are named by. Messages name
the key that is wrong and why, and never show a key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridged.transports.nodes import Secret

from ..base import TransportConfigError
from .link_security import SecuritySettings
from .pairing import KEY_SIZE
from .security import KeyIdentifier

KEY_SETTINGS = (
    "network_key",
    "network_key_file",
    "security_level",
    "key_id_mode",
    "key_index",
    "key_source",
)
"""The keys of ``[transport.802154]`` read here."""


def _integer(config: Mapping[str, Any], key: str, default: int, choices: range) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value not in choices:
        raise TransportConfigError(
            f"802154.{key} must be an integer {choices.start}-{choices.stop - 1}, not {value!r}"
        )
    return value


def _hex(text: object, key: str, size: int) -> bytes:
    """``size`` bytes given as hex; the message never repeats a key."""
    try:
        raw = bytes.fromhex(text) if isinstance(text, str) else None
    except ValueError:
        raw = None
    if raw is None or len(raw) != size:
        raise TransportConfigError(f"802154.{key} must be {2 * size} hex digits ({size} bytes)")
    return raw


def _network_key(config: Mapping[str, Any]) -> Secret | None:
    """``network_key`` (hex) or ``network_key_file`` (a file holding the hex)."""
    if "network_key" in config and "network_key_file" in config:
        raise TransportConfigError("give 802154.network_key or network_key_file, not both")
    if "network_key_file" in config:
        name = config["network_key_file"]
        if not isinstance(name, str) or not name.startswith("/"):
            raise TransportConfigError("802154.network_key_file must be an absolute path")
        try:
            with open(name, encoding="ascii") as file:
                text = file.read().strip()
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or e
            raise TransportConfigError(
                f"802154.network_key_file: cannot read {name}: {reason}"
            ) from None
        return Secret(_hex(text, "network_key_file", KEY_SIZE))
    if "network_key" in config:
        return Secret(_hex(config["network_key"], "network_key", KEY_SIZE))
    return None


def security_settings(config: Mapping[str, Any]) -> SecuritySettings:
    """The link-layer security of ``[transport.802154]`` (the module docstring's keys)."""
    mode = _integer(config, "key_id_mode", 1, range(1, 3))
    index = _integer(config, "key_index", 1, range(1, 256))
    if mode == 2:
        source = _hex(config.get("key_source", "00000000"), "key_source", 4)
    elif "key_source" in config:
        raise TransportConfigError("802154.key_source is for key_id_mode = 2 only")
    else:
        source = b""
    return SecuritySettings(
        level=_integer(config, "security_level", 5, range(5, 8)),
        key_id=KeyIdentifier(mode, source, index),
        network_key=_network_key(config),
    )
