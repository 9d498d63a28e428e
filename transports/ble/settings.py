"""The ``[transport.ble]`` section and the per-node GATT options, checked before anything runs.

Pure: a mapping in (as the configuration file or a paired node's ``options`` give it), frozen
values out, and ``TransportConfigError`` naming the key and why on anything else, so a typo is
refused at start-up rather than becoming a silently ignored setting.

``[transport.ble]``:

``adapter``          the adapter's name (``hci0``) or MAC; default the first powered one
``mode``             ``auto`` (passive where BlueZ offers it, else active), ``active``, ``passive``
``silence``          seconds without any advert after which scanning restarts (default 90)
``gatt_slots``       simultaneous GATT connections per adapter (default 5)
``gatt_interval``    seconds between two polls of a GATT node (default 300)
``connect_timeout``  seconds for one GATT connection attempt, at least 10 (default 20)
``firmware_timeout`` seconds a sleepy node's firmware update may take, its wake windows
                     included (default 3600); past it, one still waiting for the node to wake
                     has expired, one the node was working on has failed (``smp``)
``actuators``        a list of ``{node = "<MAC>", path = "/3311/0/5850",
                     characteristic = "<uuid>", on = "01", off = "00"}``: writing True or False
                     to ``path`` of ``node`` writes the ``on`` or ``off`` bytes (hex) to the
                     characteristic

A paired node's ``options`` (``bridgectl pair``) may hold ``interval`` (its own poll interval),
``read`` and ``notify`` (characteristic UUIDs; see ``gatt.GattNode``), ``bond`` (bool),
``actuators`` (as above, without ``node``) and ``firmware`` (``"smp"``: the node runs MCUboot
with MCUmgr's SMP over GATT, so a server can update it through /5; see ``smp``); they take
precedence over the section.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bridged.objects.errors import PathError
from bridged.objects.paths import Level, Path
from bridged.transports.base import TransportConfigError, check_keys, config_number

from .gatt import DEFAULT_SLOTS, MIN_CONNECT_TIMEOUT
from .gatt_values import full_uuid
from .pairing import FIRMWARE
from .smp import DEFAULT_SLEEPY_TIMEOUT

_MAC = re.compile(r"[0-9A-F]{2}([:-]?)[0-9A-F]{2}(?:\1[0-9A-F]{2}){4}")
_ADAPTER_NAME = re.compile(r"hci[0-9]+")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MODES = ("auto", "active", "passive")
SECTION_KEYS = frozenset(
    {
        "adapter",
        "mode",
        "silence",
        "gatt_slots",
        "gatt_interval",
        "connect_timeout",
        "firmware_timeout",
        "actuators",
    }
)
OPTION_KEYS = frozenset({"interval", "read", "notify", "bond", "actuators", "firmware"})
FIRMWARE_METHODS = FIRMWARE.choices
"""How a node's firmware can be updated (option ``firmware``), as its pairing declares it."""
ACTUATOR_KEYS = frozenset({"node", "path", "characteristic", "on", "off"})


def normalise_address(text: str) -> str:
    """A BLE MAC in the one spelling node ids use: upper case, colon-separated. Accepts
    ``aa:bb:..``, ``aa-bb-..`` and ``aabbcc..``; ValueError for anything else."""
    upper = text.strip().upper() if isinstance(text, str) and text.isascii() else ""
    if not _MAC.fullmatch(upper):
        raise ValueError(f"{text!r} is not a Bluetooth address (AA:BB:CC:DD:EE:FF)")
    digits = upper.replace(":", "").replace("-", "")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


@dataclass(frozen=True, slots=True)
class Actuator:
    """A writable on/off resource of a node backed by a GATT characteristic."""

    path: Path
    characteristic: str
    on: bytes = b"\x01"
    off: bytes = b"\x00"


@dataclass(frozen=True, slots=True)
class BleSettings:
    """The checked ``[transport.ble]`` section; ``actuators`` by node address."""

    adapter: str | None = None
    mode: Literal["auto", "active", "passive"] = "auto"
    silence: float = 90.0
    gatt_slots: int = DEFAULT_SLOTS
    gatt_interval: float = 300.0
    connect_timeout: float = 20.0
    firmware_timeout: float = DEFAULT_SLEEPY_TIMEOUT
    actuators: Mapping[str, tuple[Actuator, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """A paired node's checked ``options``; None where the node does not set one."""

    interval: float | None = None
    read: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()
    bond: bool = False
    actuators: tuple[Actuator, ...] = ()
    firmware: str | None = None


def _uuid(value: object, name: str) -> str:
    uuid = full_uuid(value) if isinstance(value, str) else ""
    if not _UUID.fullmatch(uuid):
        raise TransportConfigError(
            f"{name} must be a characteristic UUID (2a19 or the 128-bit form), not {value!r}"
        )
    return uuid


def _uuids(value: object, name: str) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise TransportConfigError(f"{name} must be a list of characteristic UUIDs")
    return tuple(_uuid(v, f"{name}[{i}]") for i, v in enumerate(value))


def _hex(value: object, name: str) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if not raw:
        raise TransportConfigError(f"{name} must be the bytes to write, in hex, not {value!r}")
    return raw


def _actuator(value: object, name: str, *, with_node: bool) -> tuple[str | None, Actuator]:
    if not isinstance(value, Mapping):
        raise TransportConfigError(f"{name} must be a table (path, characteristic, on, off)")
    known = ACTUATOR_KEYS if with_node else ACTUATOR_KEYS - {"node"}
    check_keys(value, known, f"{name}.")
    address = None
    if with_node:
        try:
            address = normalise_address(value.get("node", ""))
        except ValueError as e:
            raise TransportConfigError(f"{name}.node: {e}") from None
    try:
        path = Path.parse(value.get("path", ""))
    except PathError as e:
        raise TransportConfigError(f"{name}.path: {e}") from None
    if path.level != Level.RESOURCE:
        raise TransportConfigError(f"{name}.path must name a resource (/3311/0/5850), not {path}")
    return address, Actuator(
        path,
        _uuid(value.get("characteristic"), f"{name}.characteristic"),
        _hex(value.get("on", "01"), f"{name}.on"),
        _hex(value.get("off", "00"), f"{name}.off"),
    )


def _list(value: object, name: str) -> Sequence[object]:
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise TransportConfigError(f"{name} must be a list of tables")
    return value


def parse_settings(config: Mapping[str, Any]) -> BleSettings:
    """Check the ``[transport.ble]`` section; TransportConfigError names ``ble.<key>``."""
    check_keys(config, SECTION_KEYS, "ble.")
    adapter = config.get("adapter")
    if adapter is not None:
        if not isinstance(adapter, str):
            raise TransportConfigError(f"ble.adapter must be a name or a MAC, not {adapter!r}")
        if not _ADAPTER_NAME.fullmatch(adapter):
            try:
                adapter = normalise_address(adapter)
            except ValueError:
                raise TransportConfigError(
                    f"ble.adapter must be an adapter name (hci0) or MAC, not {adapter!r}"
                ) from None
    mode = config.get("mode", "auto")
    if mode not in MODES:
        raise TransportConfigError(f"ble.mode must be one of {', '.join(MODES)}, not {mode!r}")
    slots = config.get("gatt_slots", DEFAULT_SLOTS)
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
        raise TransportConfigError(f"ble.gatt_slots must be an integer >= 1, not {slots!r}")
    actuators: dict[str, list[Actuator]] = {}
    for i, entry in enumerate(_list(config.get("actuators", []), "ble.actuators")):
        address, actuator = _actuator(entry, f"ble.actuators[{i}]", with_node=True)
        assert address is not None
        actuators.setdefault(address, []).append(actuator)
    return BleSettings(
        adapter=adapter,
        mode=mode,
        silence=config_number(config.get("silence", 90.0), "ble.silence", low=0, above=True),
        gatt_slots=slots,
        gatt_interval=config_number(
            config.get("gatt_interval", 300.0), "ble.gatt_interval", low=0, above=True
        ),
        connect_timeout=config_number(
            config.get("connect_timeout", 20.0), "ble.connect_timeout", low=MIN_CONNECT_TIMEOUT
        ),
        firmware_timeout=config_number(
            config.get("firmware_timeout", DEFAULT_SLEEPY_TIMEOUT),
            "ble.firmware_timeout",
            low=0,
            above=True,
        ),
        actuators={a: tuple(acts) for a, acts in actuators.items()},
    )


def parse_options(options: Mapping[str, Any]) -> NodeOptions:
    """Check a paired node's ``options``; TransportConfigError names ``options.<key>``."""
    check_keys(options, OPTION_KEYS, "options.")
    interval = options.get("interval")
    bond = options.get("bond", False)
    if not isinstance(bond, bool):
        raise TransportConfigError(f"options.bond must be true or false, not {bond!r}")
    firmware = options.get("firmware")
    if firmware is not None and firmware not in FIRMWARE_METHODS:
        raise TransportConfigError(
            f"options.firmware must be one of {', '.join(FIRMWARE_METHODS)}, not {firmware!r}"
        )
    return NodeOptions(
        interval=None
        if interval is None
        else config_number(interval, "options.interval", low=0, above=True),
        read=_uuids(options.get("read", []), "options.read"),
        notify=_uuids(options.get("notify", []), "options.notify"),
        bond=bond,
        actuators=tuple(
            _actuator(entry, f"options.actuators[{i}]", with_node=False)[1]
            for i, entry in enumerate(_list(options.get("actuators", []), "options.actuators"))
        ),
        firmware=firmware,
    )
