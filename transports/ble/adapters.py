"""The Bluetooth adapters BlueZ offers, and choosing one by name (hci0) or by MAC.

Users pick an adapter by MAC because ``hciN`` names follow probe order and can change across
reboots. The choice is a pure function over BlueZ's ``GetManagedObjects`` answer; reading that
answer is the one I/O call here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dbus_fast import BusType, Message, MessageType, unpack_variants
from dbus_fast.aio import MessageBus

BLUEZ = "org.bluez"
ADAPTER_IFACE = "org.bluez.Adapter1"
MONITOR_MANAGER_IFACE = "org.bluez.AdvertisementMonitorManager1"
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")


class AdapterNotFound(LookupError):
    """No adapter matches the configured one (yet): unplugged, or bluetoothd not running."""


@dataclass(frozen=True, slots=True)
class AdapterInfo:
    """One adapter as BlueZ describes it. ``passive`` is whether BlueZ offers the advertisement
    monitor on it (bluetoothd --experimental, BlueZ >= 5.56, kernel >= 5.10), which passive
    scanning needs."""

    name: str
    address: str
    path: str
    powered: bool
    passive: bool


def adapters_from_objects(
    objects: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> list[AdapterInfo]:
    """The adapters in an unpacked ``GetManagedObjects`` answer, sorted by name."""
    found = []
    for path, interfaces in objects.items():
        props = interfaces.get(ADAPTER_IFACE)
        if props is None:
            continue
        found.append(
            AdapterInfo(
                name=path.rsplit("/", 1)[-1],
                address=str(props.get("Address", "")).upper(),
                path=path,
                powered=bool(props.get("Powered", False)),
                passive=MONITOR_MANAGER_IFACE in interfaces,
            )
        )
    return sorted(found, key=lambda a: a.name)


def select_adapter(adapters: Sequence[AdapterInfo], wanted: str | None) -> AdapterInfo:
    """The adapter named ``wanted`` ("hci0"), or with that MAC, or (None) the first powered one.

    Raises AdapterNotFound naming what was looked for and what there is.
    """
    if wanted is None:
        for adapter in adapters:
            if adapter.powered:
                return adapter
        raise AdapterNotFound(f"no powered Bluetooth adapter (have: {_names(adapters)})")
    if _MAC.fullmatch(wanted):
        for adapter in adapters:
            if adapter.address == wanted.upper():
                return adapter
    else:
        for adapter in adapters:
            if adapter.name == wanted:
                return adapter
    raise AdapterNotFound(f"Bluetooth adapter {wanted} not found (have: {_names(adapters)})")


def _names(adapters: Sequence[AdapterInfo]) -> str:
    return ", ".join(f"{a.name} {a.address}" for a in adapters) or "none"


async def read_adapters(bus: MessageBus | None = None) -> list[AdapterInfo]:
    """Ask BlueZ for its adapters, on ``bus`` or a system-bus connection opened for the call.

    Raises AdapterNotFound when bluetoothd is not on the bus.
    """
    own = bus is None
    if bus is None:
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    try:
        reply = await bus.call(
            Message(
                destination=BLUEZ,
                path="/",
                interface="org.freedesktop.DBus.ObjectManager",
                member="GetManagedObjects",
            )
        )
    finally:
        if own:
            bus.disconnect()
    if reply.message_type == MessageType.ERROR:
        raise AdapterNotFound(f"BlueZ is not answering: {reply.error_name}")
    return adapters_from_objects(unpack_variants(reply.body[0]))
