"""python-dbusmock template: bluetoothd as the real bleak BlueZ backend sees it.

This file runs inside the python-dbusmock process (``python -m dbusmock --template <this file>``),
not in the test process: `emulators.bluez` starts that process and drives it through the
``org.bluez.Mock`` methods below. It loads dbusmock's own ``bluez5`` template for the agent and
profile managers, and adds what that template lacks and bleak uses:

* adapters with a chosen address, with or without AdvertisementMonitorManager1 (so both bleak
  scanning modes can be tested), whose discovery state matters: an advert is only heard while
  the adapter is discovering or has an advertisement monitor registered, as on a real radio;
* adverts as BlueZ reports them: InterfacesAdded for a new device, then PropertiesChanged of
  RSSI, ServiceData and ManufacturerData;
* Device1.Connect/Disconnect/Pair with Connected, ServicesResolved, Paired and Bonded, and the
  GATT objects (Service1, Characteristic1 with ReadValue/WriteValue/StartNotify/StopNotify,
  Value PropertiesChanged for notifications), exported on the first connection like BlueZ's
  attribute cache;
* adapter removal with every object below it, as when a USB adapter is unplugged;
* sleepy nodes (``SetAsleep``): asleep, a node takes no connection (BlueZ's
  le-connection-abort-by-local) and its link drops; the test opens its wake windows;
* one-shot failure injection by method name (``FailNext``), for the BlueZ errors that wedge
  scanners and connections in the field (InProgress, NotReady, Failed).

Every piece of state lives on mock objects, so dbusmock's ``Reset`` returns to a clean bluetoothd.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import dbus
import dbus.exceptions
import dbus.service
from dbusmock import OBJECT_MANAGER_IFACE, mockobject
from dbusmock.templates import bluez5

BUS_NAME = "org.bluez"
MAIN_OBJ = "/"
SYSTEM_BUS = True
IS_OBJECT_MANAGER = True

MOCK_IFACE = "org.bluez.Mock"
ADAPTER_IFACE = "org.bluez.Adapter1"
DEVICE_IFACE = "org.bluez.Device1"
SERVICE_IFACE = "org.bluez.GattService1"
CHAR_IFACE = "org.bluez.GattCharacteristic1"
MONITOR_MANAGER_IFACE = "org.bluez.AdvertisementMonitorManager1"

sys.path.insert(0, str(Path(__file__).parent))  # this process runs the file, not the package
import mcuboot  # noqa: E402

SMP_SERVICE = "8d53dc1d-1db7-4cd3-868b-8a527460aa84"
SMP_CHAR = "da2e7828-fbce-4e01-ae9e-261174997c48"
DIS = "0000180a-0000-1000-8000-00805f9b34fb"
FIRMWARE_REVISION = "00002a26-0000-1000-8000-00805f9b34fb"
ATT_PAYLOAD = 244
"""What one notification carries at the characteristics' MTU of 247."""


def load(mock: Any, parameters: dict[str, Any]) -> None:
    bluez5.load(mock, parameters)
    # method name -> error names still to raise, oldest first
    mock.failures = {}
    # the most devices connected at once, to check connection budgets
    mock.max_connected = 0


def _root() -> Any:
    return mockobject.objects["/"]


def _maybe_fail(method: str) -> None:
    """Raise the error queued by FailNext for this method, once."""
    queued = _root().failures.get(method)
    if queued:
        name = queued.pop(0)
        raise dbus.exceptions.DBusException(f"{method}: injected {name}", name=name)


def _emit_changed(obj: Any, interface: str, changed: dict[str, Any]) -> None:
    for name, value in changed.items():
        obj.props[interface][name] = value
    obj.EmitSignal(dbus.PROPERTIES_IFACE, "PropertiesChanged", "sa{sv}as", [interface, changed, []])


def _emit_added(path: str) -> None:
    _root().EmitSignal(
        OBJECT_MANAGER_IFACE,
        "InterfacesAdded",
        "oa{sa{sv}}",
        [dbus.ObjectPath(path), mockobject.objects[path].props],
    )


def _remove_tree(path: str) -> None:
    """Remove an object and everything below it, deepest first, each with InterfacesRemoved."""
    doomed = sorted(
        (p for p in mockobject.objects if p == path or p.startswith(path + "/")), key=len
    )
    for p in reversed(doomed):
        interfaces = list(mockobject.objects[p].props)
        _root().RemoveObject(p)
        _root().EmitSignal(
            OBJECT_MANAGER_IFACE, "InterfacesRemoved", "oas", [dbus.ObjectPath(p), interfaces]
        )


def _device_path(adapter: str, address: str) -> str:
    return f"/org/bluez/{adapter}/dev_{address.upper().replace(':', '_')}"


def _byte_array(value: Any) -> dbus.Array:
    return dbus.Array([dbus.Byte(b) for b in bytes(bytearray(value))], signature="y")


# -- Adapter1 ------------------------------------------------------------------------------------


def _set_discovering(adapter: Any, on: bool) -> None:
    _emit_changed(adapter, ADAPTER_IFACE, {"Discovering": dbus.Boolean(on)})


def _start_discovery(adapter: Any) -> None:
    _maybe_fail("StartDiscovery")
    discovering = adapter.props[ADAPTER_IFACE]["Discovering"]
    if discovering and adapter.caller in adapter.discovery_clients:
        raise dbus.exceptions.DBusException(
            "Operation already in progress", name="org.bluez.Error.InProgress"
        )
    adapter.discovery_clients.add(adapter.caller)
    if not discovering:
        _set_discovering(adapter, True)


def _stop_discovery(adapter: Any) -> None:
    _maybe_fail("StopDiscovery")
    clients = adapter.discovery_clients
    if not adapter.props[ADAPTER_IFACE]["Discovering"] or adapter.caller not in clients:
        raise dbus.exceptions.DBusException("No discovery started", name="org.bluez.Error.Failed")
    clients.discard(adapter.caller)
    if not clients:
        _set_discovering(adapter, False)


def _discovery_per_client(adapter: Any) -> None:
    """Discovery sessions per D-Bus client, as bluetoothd keeps them: StartDiscovery is
    InProgress only for a client that has one already, the adapter discovers while any client
    has one, and a client that leaves the bus (a process killed) ends its session. dbusmock
    does not hand its methods the caller, so they get it through ``adapter.caller``."""
    adapter.discovery_clients = set()
    for name in ("StartDiscovery", "StopDiscovery"):
        in_sig, out_sig, code, _ = adapter.methods[ADAPTER_IFACE][name]

        def method(self: Any, sender: str | None = None, _name: str = name) -> Any:
            self.caller = sender
            return mockobject.DBusMockObject.mock_method(self, ADAPTER_IFACE, _name, "")

        wrapped = dbus.service.method(
            ADAPTER_IFACE, out_signature=out_sig, sender_keyword="sender"
        )(method)
        wrapped.__name__ = name
        wrapped._dbus_in_signature = in_sig
        wrapped._dbus_args = []
        adapter.methods[ADAPTER_IFACE][name] = (in_sig, out_sig, code, wrapped)

    def left(name: str, old: str, new: str) -> None:
        if new or name not in adapter.discovery_clients:
            return
        adapter.discovery_clients.discard(name)
        if not adapter.discovery_clients and adapter.props[ADAPTER_IFACE]["Discovering"]:
            _set_discovering(adapter, False)

    adapter.connection.add_signal_receiver(
        left, signal_name="NameOwnerChanged", dbus_interface="org.freedesktop.DBus"
    )


def _set_discovery_filter(adapter: Any, discovery_filter: Any) -> None:
    _maybe_fail("SetDiscoveryFilter")
    adapter.discovery_filter = dict(discovery_filter)


def _register_monitor(adapter: Any, path: Any) -> None:
    _maybe_fail("RegisterMonitor")
    adapter.monitors.append(str(path))


def _unregister_monitor(adapter: Any, path: Any) -> None:
    _maybe_fail("UnregisterMonitor")
    if str(path) not in adapter.monitors:
        raise dbus.exceptions.DBusException(
            "Monitor not registered", name="org.bluez.Error.DoesNotExist"
        )
    adapter.monitors.remove(str(path))


def _remove_device(adapter: Any, path: Any) -> None:
    _maybe_fail("RemoveDevice")
    if str(path) not in mockobject.objects:
        raise dbus.exceptions.DBusException(
            "Device does not exist", name="org.bluez.Error.DoesNotExist"
        )
    _remove_tree(str(path))


def _hearing(adapter: Any) -> bool:
    """Whether an advert on the air reaches BlueZ: a discovery or a monitor is running."""
    return bool(adapter.props[ADAPTER_IFACE]["Discovering"] or adapter.monitors)


@dbus.service.method(MOCK_IFACE, in_signature="ssb", out_signature="s")
def AddAdapter(self: Any, name: str, address: str, monitor: bool) -> str:
    """Add a powered LE adapter; ``monitor`` exposes AdvertisementMonitorManager1."""
    path = f"/org/bluez/{name}"
    if path in mockobject.objects:
        raise dbus.exceptions.DBusException(f"{name} exists", name="org.bluez.Mock.Exists")
    props = {
        "Address": dbus.String(address),
        "AddressType": dbus.String("public"),
        "Name": dbus.String(f"bridged-{name}"),
        "Alias": dbus.String(f"bridged-{name}"),
        "Class": dbus.UInt32(0),
        "Powered": dbus.Boolean(True),
        "Discoverable": dbus.Boolean(False),
        "Pairable": dbus.Boolean(True),
        "Discovering": dbus.Boolean(False),
        "UUIDs": dbus.Array([], signature="s"),
        "Roles": dbus.Array(["central", "peripheral"], signature="s"),
    }
    self.AddObject(
        path,
        ADAPTER_IFACE,
        props,
        [
            ("StartDiscovery", "", "", _start_discovery),
            ("StopDiscovery", "", "", _stop_discovery),
            ("SetDiscoveryFilter", "a{sv}", "", _set_discovery_filter),
            ("RemoveDevice", "o", "", _remove_device),
        ],
    )
    adapter = mockobject.objects[path]
    adapter.monitors = []
    adapter.discovery_filter = {}
    _discovery_per_client(adapter)
    if monitor:
        adapter.AddProperties(
            MONITOR_MANAGER_IFACE,
            {
                "SupportedMonitorTypes": dbus.Array(["or_patterns"], signature="s"),
                "SupportedFeatures": dbus.Array([], signature="s"),
            },
        )
        adapter.AddMethods(
            MONITOR_MANAGER_IFACE,
            [
                ("RegisterMonitor", "o", "", _register_monitor),
                ("UnregisterMonitor", "o", "", _unregister_monitor),
            ],
        )
    _emit_added(path)
    return path


@dbus.service.method(MOCK_IFACE, in_signature="s", out_signature="")
def RemoveAdapter(self: Any, name: str) -> None:
    """Unplug an adapter: its devices and GATT objects go with it."""
    _remove_tree(f"/org/bluez/{name}")


@dbus.service.method(MOCK_IFACE, in_signature="s", out_signature="")
def Wedge(self: Any, name: str) -> None:
    """The controller stops scanning on its own (the field's "scanner goes quiet"): discovery
    ends and monitors stop matching, while clients still believe they are scanning."""
    adapter = mockobject.objects[f"/org/bluez/{name}"]
    adapter.monitors.clear()
    if adapter.props[ADAPTER_IFACE]["Discovering"]:
        _set_discovering(adapter, False)


@dbus.service.method(MOCK_IFACE, in_signature="ss", out_signature="")
def FailNext(self: Any, method: str, error_name: str) -> None:
    """Make the next call of ``method`` (on any object) fail with the D-Bus error ``error_name``."""
    self.failures.setdefault(method, []).append(error_name)


# -- Device1 -------------------------------------------------------------------------------------


def _add_device(adapter_name: str, address: str, name: str, rssi: int) -> Any:
    adapter_path = f"/org/bluez/{adapter_name}"
    if adapter_path not in mockobject.objects:
        raise dbus.exceptions.DBusException(
            f"no adapter {adapter_name}", name="org.bluez.Mock.NoSuchAdapter"
        )
    path = _device_path(adapter_name, address)
    props = {
        "Address": dbus.String(address.upper()),
        "AddressType": dbus.String("public"),
        "Alias": dbus.String(name or address.upper().replace(":", "-")),
        "Adapter": dbus.ObjectPath(adapter_path),
        "Paired": dbus.Boolean(False),
        "Bonded": dbus.Boolean(False),
        "Trusted": dbus.Boolean(False),
        "Blocked": dbus.Boolean(False),
        "Connected": dbus.Boolean(False),
        "ServicesResolved": dbus.Boolean(False),
        "LegacyPairing": dbus.Boolean(False),
        "UUIDs": dbus.Array([], signature="s"),
        "RSSI": dbus.Int16(rssi),
        "ServiceData": dbus.Dictionary({}, signature="sv"),
        "ManufacturerData": dbus.Dictionary({}, signature="qv"),
    }
    if name:
        props["Name"] = dbus.String(name)
    _root().AddObject(
        path,
        DEVICE_IFACE,
        props,
        [
            ("Connect", "", "", _connect),
            ("Disconnect", "", "", _disconnect),
            ("Pair", "", "", _pair),
            ("CancelPairing", "", "", ""),
        ],
    )
    device = mockobject.objects[path]
    device.gatt = {}
    device.gatt_exported = False
    device.smp = None
    device.cut_at = []
    device.cuts = 0
    device.hold = None  # (image bytes, boots) after which SMP answers are withheld
    device.holding = False
    device.lose_reset = False  # the next reset request is lost with the link (SmpLoseReset)
    device.asleep = False
    device.budget = 0  # image bytes an SMP node takes in a wake window before it sleeps (0: any)
    device.wakes = []  # the image bytes an SMP node had taken as each wake window opened
    return device


@dbus.service.method(MOCK_IFACE, in_signature="sssna{say}a{qay}", out_signature="b")
def Advertise(
    self: Any,
    adapter_name: str,
    address: str,
    name: str,
    rssi: int,
    service_data: Any,
    manufacturer_data: Any,
) -> bool:
    """One advert on the air; returns whether BlueZ heard it (a scan or monitor is running).

    A device BlueZ has not seen yet appears with InterfacesAdded; a known one reports its RSSI and
    data with one PropertiesChanged, as BlueZ does when duplicate filtering is off.
    """
    adapter = mockobject.objects.get(f"/org/bluez/{adapter_name}")
    if adapter is None or not _hearing(adapter):
        return False
    sd = dbus.Dictionary(
        {dbus.String(str(k)): _byte_array(v) for k, v in service_data.items()}, signature="sv"
    )
    md = dbus.Dictionary(
        {dbus.UInt16(int(k)): _byte_array(v) for k, v in manufacturer_data.items()}, signature="qv"
    )
    path = _device_path(adapter_name, address)
    device = mockobject.objects.get(path)
    if device is not None and device.asleep:
        return False  # a sleeping node does not advertise
    if device is None:
        device = _add_device(adapter_name, address, name, rssi)
        device.props[DEVICE_IFACE]["ServiceData"] = sd
        device.props[DEVICE_IFACE]["ManufacturerData"] = md
        _emit_added(path)
        return True
    changed: dict[str, Any] = {"RSSI": dbus.Int16(rssi)}
    if name:
        changed["Name"] = dbus.String(name)
    if service_data:
        changed["ServiceData"] = sd
    if manufacturer_data:
        changed["ManufacturerData"] = md
    _emit_changed(device, DEVICE_IFACE, changed)
    return True


@dbus.service.method(MOCK_IFACE, in_signature="sssa{sa{s(asay)}}", out_signature="s")
def AddGattDevice(self: Any, adapter_name: str, address: str, name: str, services: Any) -> str:
    """A connectable node BlueZ already knows, serving ``services`` {service: {char: (flags,
    value)}} once connected."""
    path = _device_path(adapter_name, address)
    device = mockobject.objects.get(path)
    if device is None:
        device = _add_device(adapter_name, address, name, -60)
        _emit_added(path)
    device.gatt = {
        str(s): {
            str(c): ([str(f) for f in flags], bytes(bytearray(value)))
            for c, (flags, value) in chars.items()
        }
        for s, chars in services.items()
    }
    return path


def _export_gatt(device: Any) -> None:
    """Export the GATT objects as BlueZ does after the first service discovery."""
    handle = 0
    for service_uuid, chars in device.gatt.items():
        handle += 1
        service_path = f"{device.path}/service{handle:04x}"
        _root().AddObject(
            service_path,
            SERVICE_IFACE,
            {
                "UUID": dbus.String(service_uuid),
                "Device": dbus.ObjectPath(device.path),
                "Primary": dbus.Boolean(True),
                "Includes": dbus.Array([], signature="o"),
            },
            [],
        )
        _emit_added(service_path)
        for char_uuid, (flags, value) in chars.items():
            handle += 2
            char_path = f"{service_path}/char{handle:04x}"
            _root().AddObject(
                char_path,
                CHAR_IFACE,
                {
                    "UUID": dbus.String(char_uuid),
                    "Service": dbus.ObjectPath(service_path),
                    "Value": _byte_array(value),
                    "Flags": dbus.Array(flags, signature="s"),
                    "Notifying": dbus.Boolean(False),
                    "MTU": dbus.UInt16(247),
                },
                [
                    ("ReadValue", "a{sv}", "ay", _read_value),
                    ("WriteValue", "aya{sv}", "", _write_value),
                    ("StartNotify", "", "", _start_notify),
                    ("StopNotify", "", "", _stop_notify),
                ],
            )
            mockobject.objects[char_path].writes = []
            _emit_added(char_path)
    device.gatt_exported = True


def _connect(device: Any) -> None:
    _maybe_fail("Connect")
    if device.props[DEVICE_IFACE]["Connected"]:
        raise dbus.exceptions.DBusException(
            "Already Connected", name="org.bluez.Error.AlreadyConnected"
        )
    if not device.gatt:
        raise dbus.exceptions.DBusException("Page Timeout", name="org.bluez.Error.Failed")
    if device.asleep:
        # what BlueZ answers when the controller gives up on a node that does not advertise
        raise dbus.exceptions.DBusException(
            "le-connection-abort-by-local", name="org.bluez.Error.Failed"
        )
    _emit_changed(device, DEVICE_IFACE, {"Connected": dbus.Boolean(True)})
    connected = sum(
        1
        for obj in mockobject.objects.values()
        if DEVICE_IFACE in obj.props and obj.props[DEVICE_IFACE]["Connected"]
    )
    _root().max_connected = max(_root().max_connected, connected)
    if not device.gatt_exported:
        _export_gatt(device)
    _emit_changed(device, DEVICE_IFACE, {"ServicesResolved": dbus.Boolean(True)})


def _disconnect(device: Any, injectable: bool = True) -> None:
    if injectable:
        _maybe_fail("Disconnect")
    for path, obj in list(mockobject.objects.items()):
        subscribed = CHAR_IFACE in obj.props and obj.props[CHAR_IFACE]["Notifying"]
        if path.startswith(device.path + "/") and subscribed:
            _emit_changed(obj, CHAR_IFACE, {"Notifying": dbus.Boolean(False)})
    if device.props[DEVICE_IFACE]["Connected"]:
        _emit_changed(
            device,
            DEVICE_IFACE,
            {"ServicesResolved": dbus.Boolean(False), "Connected": dbus.Boolean(False)},
        )
    if device.smp is not None:
        device.smp.buffer.clear()  # a request cut midway is gone with the link


def _pair(device: Any) -> None:
    _maybe_fail("Pair")
    if device.props[DEVICE_IFACE]["Paired"]:
        raise dbus.exceptions.DBusException("Already Exists", name="org.bluez.Error.AlreadyExists")
    if not device.props[DEVICE_IFACE]["Connected"]:
        _connect(device)
    _emit_changed(
        device, DEVICE_IFACE, {"Paired": dbus.Boolean(True), "Bonded": dbus.Boolean(True)}
    )


# -- GattCharacteristic1 -------------------------------------------------------------------------


def _check_connected(char: Any) -> None:
    device = mockobject.objects[char.path.rsplit("/", 2)[0]]
    if not device.props[DEVICE_IFACE]["Connected"]:
        raise dbus.exceptions.DBusException("Not connected", name="org.bluez.Error.NotConnected")


def _require_flag(char: Any, error: str, message: str, *flags: str) -> None:
    if not set(flags) & {str(f) for f in char.props[CHAR_IFACE]["Flags"]}:
        raise dbus.exceptions.DBusException(message, name=error)


def _read_value(char: Any, _options: Any) -> dbus.Array:
    _maybe_fail("ReadValue")
    _check_connected(char)
    _require_flag(char, "org.bluez.Error.NotPermitted", "Read not permitted", "read")
    return char.props[CHAR_IFACE]["Value"]


def _write_value(char: Any, value: Any, _options: Any) -> None:
    _maybe_fail("WriteValue")
    _check_connected(char)
    _require_flag(
        char,
        "org.bluez.Error.NotPermitted",
        "Write not permitted",
        "write",
        "write-without-response",
    )
    char.writes.append(bytes(bytearray(value)))
    char.props[CHAR_IFACE]["Value"] = _byte_array(value)
    device = mockobject.objects[char.path.rsplit("/", 2)[0]]
    if char.props[CHAR_IFACE]["UUID"] == SMP_CHAR and device.smp is not None:
        _smp_write(device, char, bytes(bytearray(value)))


# -- an MCUboot node's SMP server ---------------------------------------------------------------


def _smp_write(device: Any, char: Any, data: bytes) -> None:
    """The node's MCUmgr takes the bytes; its responses are notified in ATT-sized pieces. A
    reset request is answered, then the link drops and the node boots (``mcuboot.Mcuboot``);
    an upload reaching a count of bytes ``SmpCutAt`` set, or its wake window's budget
    (``SetAsleep``), drops the link before it is answered;
    once ``SmpHold``'s condition is met the node answers nothing more (it hangs); a reset
    request ``SmpLoseReset`` marked drops the link before the node takes it (no reset)."""
    server = device.smp
    for frame in server.feed(data):
        if server.reset_due and device.lose_reset:
            server.reset_due = device.lose_reset = False
            _disconnect(device, injectable=False)
            return
        if device.hold is not None and (server.boot.received, server.boot.boots) >= device.hold:
            device.holding = True
            return
        if _window_spent(device):
            device.asleep = True
            _disconnect(device, injectable=False)
            return
        if device.cut_at and server.boot.received >= device.cut_at[0]:
            device.cut_at.pop(0)
            device.cuts += 1
            _disconnect(device, injectable=False)
            return
        if char.props[CHAR_IFACE]["Notifying"]:
            for i in range(0, len(frame), ATT_PAYLOAD):
                _emit_changed(char, CHAR_IFACE, {"Value": _byte_array(frame[i : i + ATT_PAYLOAD])})
    if server.reset_due:
        server.reset_due = False
        server.buffer.clear()
        _disconnect(device, injectable=False)
        server.boot.reset()
        _show_version(device)


def _show_version(device: Any) -> None:
    """The Device Information firmware revision is what the node runs."""
    version = device.smp.boot.version
    device.gatt[DIS][FIRMWARE_REVISION] = (["read"], version.encode())
    for obj in mockobject.objects.values():
        if (
            obj.path.startswith(device.path + "/")
            and CHAR_IFACE in obj.props
            and obj.props[CHAR_IFACE]["UUID"] == FIRMWARE_REVISION
        ):
            obj.props[CHAR_IFACE]["Value"] = _byte_array(version.encode())


@dbus.service.method(MOCK_IFACE, in_signature="sssa{sa{s(asay)}}ay", out_signature="s")
def AddSmpDevice(
    self: Any, adapter_name: str, address: str, name: str, services: Any, running: Any
) -> str:
    """A node running MCUboot and MCUmgr's SMP over GATT, with ``running`` (an MCUboot image)
    in its primary slot, its version also in the Device Information firmware revision, and
    ``services`` besides."""
    spec = {
        **services,
        DIS: {FIRMWARE_REVISION: (["read"], b"")},
        SMP_SERVICE: {SMP_CHAR: (["write-without-response", "notify"], b"")},
    }
    path = str(AddGattDevice(self, adapter_name, address, name, spec))
    device = mockobject.objects[path]
    device.smp = mcuboot.SmpServer(mcuboot.Mcuboot(bytes(bytearray(running))))
    _show_version(device)
    return path


@dbus.service.method(MOCK_IFACE, in_signature="ssbu", out_signature="")
def SetAsleep(self: Any, adapter_name: str, address: str, asleep: bool, budget: int) -> None:
    """A sleepy node falls asleep (its link, if up, drops; it neither advertises nor takes a
    connection until it wakes) or wakes (a wake window opens), to fall asleep again by itself
    once it took ``budget`` image bytes in the window (0: only when told)."""
    device = mockobject.objects[_device_path(adapter_name, address)]
    if asleep and not device.asleep:
        _disconnect(device, injectable=False)
    elif not asleep and device.asleep and device.smp is not None:
        device.wakes.append(device.smp.boot.received)
    device.asleep = bool(asleep)
    device.budget = int(budget)


@dbus.service.method(MOCK_IFACE, in_signature="ss", out_signature="b")
def Asleep(self: Any, adapter_name: str, address: str) -> bool:
    return bool(mockobject.objects[_device_path(adapter_name, address)].asleep)


def _window_spent(device: Any) -> bool:
    """Whether an SMP node took its wake window's budget of image bytes (it sleeps then)."""
    return bool(
        device.budget
        and device.wakes
        and device.smp.boot.received - device.wakes[-1] >= device.budget
    )


@dbus.service.method(MOCK_IFACE, in_signature="s", out_signature="s")
def SmpNode(self: Any, address: str) -> str:
    """What an SMP node holds, as JSON: its running version, whether it is confirmed, the
    SHA-256 of each slot, the image bytes it took, its boots, the links SmpCutAt cut, and the
    image bytes it took in each wake window (the last one: up to now)."""
    device = _smp_device(address)
    boot = device.smp.boot
    marks = [*device.wakes, boot.received]
    return json.dumps(
        {
            "version": boot.version,
            "confirmed": boot.confirmed,
            "primary": hashlib.sha256(boot.primary).hexdigest(),
            "secondary": hashlib.sha256(boot.secondary).hexdigest(),
            "received": boot.received,
            "boots": boot.boots,
            "cuts": device.cuts,
            "holding": device.holding,
            "windows": [after - before for before, after in itertools.pairwise(marks)],
        }
    )


@dbus.service.method(MOCK_IFACE, in_signature="sau", out_signature="")
def SmpCutAt(self: Any, address: str, received: Any) -> None:
    """The link drops once the node took each of ``received`` image bytes (once each)."""
    _smp_device(address).cut_at = [int(r) for r in received]


@dbus.service.method(MOCK_IFACE, in_signature="sii", out_signature="")
def SmpHold(self: Any, address: str, received: int, boots: int) -> None:
    """The node stops answering SMP requests once it took ``received`` image bytes in all and
    booted ``boots`` times (its answer to the request that met both is the first withheld);
    a negative ``received`` lets it answer again."""
    device = _smp_device(address)
    device.hold = None if received < 0 else (int(received), int(boots))
    device.holding = False


@dbus.service.method(MOCK_IFACE, in_signature="s", out_signature="")
def SmpLoseReset(self: Any, address: str) -> None:
    """The link drops as the next reset request arrives, before the node takes it."""
    _smp_device(address).lose_reset = True


def _smp_device(address: str) -> Any:
    for obj in mockobject.objects.values():
        if getattr(obj, "smp", None) is not None and obj.path.endswith(
            "/dev_" + address.upper().replace(":", "_")
        ):
            return obj
    raise dbus.exceptions.DBusException(
        f"{address} is no SMP node", name="org.bluez.Mock.NoSuchDevice"
    )


def _start_notify(char: Any) -> None:
    _maybe_fail("StartNotify")
    _check_connected(char)
    _require_flag(
        char, "org.bluez.Error.NotSupported", "Operation is not supported", "notify", "indicate"
    )
    _emit_changed(char, CHAR_IFACE, {"Notifying": dbus.Boolean(True)})


def _stop_notify(char: Any) -> None:
    _maybe_fail("StopNotify")
    _emit_changed(char, CHAR_IFACE, {"Notifying": dbus.Boolean(False)})


def _find_char(address: str, char_uuid: str) -> Any:
    suffix = "/dev_" + address.upper().replace(":", "_") + "/"
    for path, obj in mockobject.objects.items():
        if (
            suffix in path
            and CHAR_IFACE in obj.props
            and obj.props[CHAR_IFACE]["UUID"] == char_uuid
        ):
            return obj
    raise dbus.exceptions.DBusException(
        f"{address} has no {char_uuid}", name="org.bluez.Mock.NoSuchCharacteristic"
    )


@dbus.service.method(MOCK_IFACE, in_signature="ssay", out_signature="b")
def Notify(self: Any, address: str, char_uuid: str, value: Any) -> bool:
    """The node sends a notification; returns whether a client had subscribed to it."""
    char = _find_char(address, char_uuid)
    if not char.props[CHAR_IFACE]["Notifying"]:
        return False
    _emit_changed(char, CHAR_IFACE, {"Value": _byte_array(value)})
    return True


@dbus.service.method(MOCK_IFACE, in_signature="ss", out_signature="")
def DropConnection(self: Any, adapter_name: str, address: str) -> None:
    """The link to a node drops (out of range, battery pulled): BlueZ reports it disconnected."""
    _disconnect(mockobject.objects[_device_path(adapter_name, address)], injectable=False)


@dbus.service.method(MOCK_IFACE, in_signature="", out_signature="u")
def MaxConnected(self: Any) -> int:
    """The most devices that were connected at the same time."""
    return self.max_connected


@dbus.service.method(MOCK_IFACE, in_signature="ss", out_signature="aay")
def Writes(self: Any, address: str, char_uuid: str) -> list[bytes]:
    """Every value written to a characteristic, oldest first."""
    return [_byte_array(w) for w in _find_char(address, char_uuid).writes]
