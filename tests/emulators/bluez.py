"""A BlueZ emulation on a private D-Bus, for running the real bleak BlueZ backend in tests.

One ``dbus-daemon`` (Debian's ``dbus`` package) runs per test session in a temp dir; bleak talks
to the system bus, so each test points ``DBUS_SYSTEM_BUS_ADDRESS`` at it. Each test gets a fresh
bluetoothd stand-in: python-dbusmock running `emulators/bluez_template.py` (dbusmock's ``bluez5``
template extended with scanning, adverts, GATT and failure injection), so no state leaks between
tests. The ``bluez`` fixture hands back a `BluezEmulator`, the far side of the radio:

    await bluez.add_adapter("hci0", address="00:1A:7D:DA:71:13", monitor=False)
    await bluez.advertise("A4:C1:38:00:00:01", service_data={BTHOME: b"\\x40\\x02\\xc4\\x09"})
    await bluez.add_gatt_device(address, services={"180f": {"2a19": (["read"], b"\\x64")}})
    await bluez.notify(address, "2a6e", b"\\x34\\x08")
    await bluez.add_smp_device(address, mcuboot.image((1, 0, 0, 0)))  # MCUboot + SMP
    await bluez.fail_next("StartDiscovery", "org.bluez.Error.InProgress")
    async with wake_windows(bluez, address, awake=1.0, asleep=1.0):  # a sleepy node
        ...

Tests that use it skip only when dbus-daemon is missing (``make test`` installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from bleak.uuids import normalize_uuid_str
from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

TEMPLATE = Path(__file__).with_name("bluez_template.py")
MOCK_IFACE = "org.bluez.Mock"
START_TIMEOUT = 30.0
"""Generous: the mock is a Python process started on a loaded 2-core machine."""

IN_PROGRESS = "org.bluez.Error.InProgress"
NOT_READY = "org.bluez.Error.NotReady"
FAILED = "org.bluez.Error.Failed"

GattSpec = Mapping[str, Mapping[str, tuple[list[str], bytes]]]
"""{service UUID: {characteristic UUID: (BlueZ flags such as "read" or "notify", value)}}."""


class BluezError(RuntimeError):
    """A control call to the emulation failed (a test set-up mistake, not a BlueZ error)."""


class BluezEmulator:
    """The mock bluetoothd of one test, driven over its ``org.bluez.Mock`` interface."""

    def __init__(self, address: str, workdir: Path) -> None:
        self.address = address
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None
        self._bus: MessageBus | None = None

    async def start(self) -> None:
        """Start bluetoothd (again): its name appears on the bus with no adapter."""
        self._bus = await MessageBus(bus_address=self.address, bus_type=BusType.SYSTEM).connect()
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.address)
        log = self._workdir / "bluetoothd.log"
        self._process = subprocess.Popen(
            [sys.executable, "-m", "dbusmock", "--system", "-t", str(TEMPLATE), "-l", str(log)],
            env=env,
            start_new_session=True,  # Ctrl-C in the demo: stopped by the demo, not the tty
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        await self._wait_for_name()

    async def stop(self) -> None:
        """Stop bluetoothd, as when the service crashes or restarts: org.bluez leaves the bus."""
        if self._process is not None:
            self._process.terminate()
            await asyncio.to_thread(self._process.wait)
            self._process = None
        if self._bus is not None:
            self._bus.disconnect()
            await self._bus.wait_for_disconnect()
            self._bus = None

    async def restart(self) -> None:
        """bluetoothd restarts: every adapter and device is gone until added again."""
        await self.stop()
        await self.start()

    async def _wait_for_name(self) -> None:
        assert self._bus is not None
        owned = asyncio.Event()

        def on_message(msg: Message) -> None:
            if msg.member == "NameOwnerChanged" and msg.body[0] == "org.bluez" and msg.body[2]:
                owned.set()

        self._bus.add_message_handler(on_message)
        try:
            await self._dbus_call(
                "AddMatch",
                "s",
                ["type='signal',member='NameOwnerChanged',arg0='org.bluez'"],
            )
            reply = await self._dbus_call("NameHasOwner", "s", ["org.bluez"])
            if not reply.body[0]:
                async with asyncio.timeout(START_TIMEOUT):
                    await owned.wait()
        finally:
            self._bus.remove_message_handler(on_message)

    async def _dbus_call(self, member: str, signature: str, body: list[object]) -> Message:
        assert self._bus is not None
        return await self._bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member=member,
                signature=signature,
                body=body,
            )
        )

    async def _mock(self, member: str, signature: str = "", *body: object) -> list[object]:
        if self._bus is None:
            raise BluezError("bluetoothd is stopped")
        reply = await self._bus.call(
            Message(
                destination="org.bluez",
                path="/",
                interface=MOCK_IFACE,
                member=member,
                signature=signature,
                body=list(body),
            )
        )
        if reply.message_type == MessageType.ERROR:
            raise BluezError(f"{member}: {reply.error_name}: {reply.body}")
        return list(reply.body)

    async def add_adapter(
        self, name: str = "hci0", address: str = "00:1A:7D:DA:71:13", *, monitor: bool = True
    ) -> str:
        """Plug in a powered adapter; ``monitor`` says whether BlueZ offers the advertisement
        monitor (passive scanning: bluetoothd --experimental) on it. Returns its object path."""
        (path,) = await self._mock("AddAdapter", "ssb", name, address, monitor)
        return str(path)

    async def remove_adapter(self, name: str = "hci0") -> None:
        """Unplug an adapter, with every device and GATT object below it."""
        await self._mock("RemoveAdapter", "s", name)

    async def wedge(self, name: str = "hci0") -> None:
        """The adapter silently stops hearing adverts, as a wedged controller does; only a
        restart of scanning brings them back."""
        await self._mock("Wedge", "s", name)

    async def advertise(
        self,
        address: str,
        name: str | None = None,
        rssi: int = -60,
        service_data: Mapping[str, bytes] | None = None,
        manufacturer_data: Mapping[int, bytes] | None = None,
        *,
        adapter: str = "hci0",
    ) -> bool:
        """A node sends one advert; returns whether BlueZ heard it (it only hears while a scan
        or an advertisement monitor runs on ``adapter``). Service data UUIDs may be short
        ("fcd2")."""
        sd = {normalize_uuid_str(k): bytes(v) for k, v in (service_data or {}).items()}
        md = {int(k): bytes(v) for k, v in (manufacturer_data or {}).items()}
        (heard,) = await self._mock(
            "Advertise", "sssna{say}a{qay}", adapter, address, name or "", rssi, sd, md
        )
        return bool(heard)

    async def add_gatt_device(
        self,
        address: str,
        services: GattSpec,
        *,
        name: str | None = None,
        adapter: str = "hci0",
    ) -> str:
        """A connectable node BlueZ knows (it was heard before), serving ``services``. UUIDs may
        be short ("180f"). Returns the device's object path."""
        (path,) = await self._mock(
            "AddGattDevice", "sssa{sa{s(asay)}}", adapter, address, name or "", _spec(services)
        )
        return str(path)

    async def add_smp_device(
        self,
        address: str,
        running: bytes,
        services: GattSpec | None = None,
        *,
        name: str | None = None,
        adapter: str = "hci0",
    ) -> str:
        """A node running MCUboot with MCUmgr's SMP over GATT (`emulators.mcuboot`), booted on
        ``running`` (an image), serving ``services`` too; its Device Information firmware
        revision is that image's version. Returns the device's object path."""
        (path,) = await self._mock(
            "AddSmpDevice",
            "sssa{sa{s(asay)}}ay",
            adapter,
            address,
            name or "",
            _spec(services or {}),
            running,
        )
        return str(path)

    async def smp_node(self, address: str) -> dict[str, Any]:
        """What an SMP node holds: ``version`` it runs, ``confirmed``, the SHA-256 (hex) of its
        ``primary`` and ``secondary`` slots, the image bytes it ``received``, its ``boots``, the
        links ``smp_cut_at`` dropped (``cuts``), and whether it is ``holding`` (``smp_hold``)."""
        (text,) = await self._mock("SmpNode", "s", address)
        found: dict[str, Any] = json.loads(str(text))
        return found

    async def smp_cut_at(self, address: str, *received: int) -> None:
        """The link to an SMP node drops once it took each of ``received`` image bytes in all
        (once each, in order), before it answers the chunk."""
        await self._mock("SmpCutAt", "sau", address, list(received))

    async def smp_hold(self, address: str, received: int, boots: int = 0) -> None:
        """An SMP node stops answering once it took ``received`` image bytes in all and booted
        ``boots`` times (``smp_node``'s ``holding`` says it withheld an answer), until
        ``smp_release``: a node hung mid-update, so the gateway can be stopped at that point."""
        await self._mock("SmpHold", "sii", address, received, boots)

    async def smp_lose_reset(self, address: str) -> None:
        """The link to an SMP node drops as its next reset request arrives, before the node
        takes it: the client cannot tell whether it reset."""
        await self._mock("SmpLoseReset", "s", address)

    async def smp_release(self, address: str) -> None:
        await self._mock("SmpHold", "sii", address, -1, 0)

    async def sleep(
        self, address: str, asleep: bool = True, *, budget: int = 0, adapter: str = "hci0"
    ) -> None:
        """The node falls asleep (its link drops, it does not advertise, and a connection
        attempt fails as BlueZ's does with a node that does not advertise:
        org.bluez.Error.Failed le-connection-abort-by-local) or, ``asleep`` False, wakes (see
        ``wake_windows``); an SMP node then falls asleep by itself once it took ``budget``
        image bytes in this wake window (0: only when told)."""
        await self._mock("SetAsleep", "ssbu", adapter, address, asleep, budget)

    async def asleep(self, address: str, *, adapter: str = "hci0") -> bool:
        (asleep,) = await self._mock("Asleep", "ss", adapter, address)
        return bool(asleep)

    async def notify(self, address: str, char_uuid: str, value: bytes) -> bool:
        """The node notifies a new value; returns whether a client was subscribed."""
        (sent,) = await self._mock("Notify", "ssay", address, normalize_uuid_str(char_uuid), value)
        return bool(sent)

    async def writes(self, address: str, char_uuid: str) -> list[bytes]:
        """Every value the gateway wrote to a characteristic, oldest first."""
        (values,) = await self._mock("Writes", "ss", address, normalize_uuid_str(char_uuid))
        assert isinstance(values, list)
        return [bytes(v) for v in values]

    async def drop(self, address: str, *, adapter: str = "hci0") -> None:
        """The link to a connected node drops, as when it goes out of range."""
        await self._mock("DropConnection", "ss", adapter, address)

    async def max_connected(self) -> int:
        """The most devices that were connected at the same time, over the whole test."""
        (count,) = await self._mock("MaxConnected")
        assert isinstance(count, int)
        return count

    async def fail_next(self, method: str, error_name: str) -> None:
        """The next call of BlueZ method ``method`` (StartDiscovery, Connect, ReadValue, ...)
        fails with ``error_name``; queue several to fail several calls."""
        await self._mock("FailNext", "ss", method, error_name)

    async def calls(self, path: str, method: str) -> int:
        """How many times ``method`` was called on the object at ``path``."""
        assert self._bus is not None
        reply = await self._bus.call(
            Message(
                destination="org.bluez",
                path=path,
                interface="org.freedesktop.DBus.Mock",
                member="GetMethodCalls",
                signature="s",
                body=[method],
            )
        )
        if reply.message_type == MessageType.ERROR:
            raise BluezError(f"GetMethodCalls: {reply.error_name}: {reply.body}")
        return len(reply.body[0])

    async def adapter_property(self, name: str, prop: str) -> object:
        """An Adapter1 property as bluetoothd reports it (e.g. "Discovering")."""
        return await self._get(f"/org/bluez/{name}", "org.bluez.Adapter1", prop)

    async def device_property(self, address: str, prop: str, *, adapter: str = "hci0") -> object:
        """A Device1 property as bluetoothd reports it (e.g. "Connected", "Paired")."""
        path = f"/org/bluez/{adapter}/dev_{address.upper().replace(':', '_')}"
        return await self._get(path, "org.bluez.Device1", prop)

    async def _get(self, path: str, interface: str, prop: str) -> object:
        assert self._bus is not None
        reply = await self._bus.call(
            Message(
                destination="org.bluez",
                path=path,
                interface="org.freedesktop.DBus.Properties",
                member="Get",
                signature="ss",
                body=[interface, prop],
            )
        )
        if reply.message_type == MessageType.ERROR:
            raise BluezError(f"Get {prop}: {reply.error_name}: {reply.body}")
        value = reply.body[0]
        return value.value if isinstance(value, Variant) else value


Adverts = Callable[[int], list[tuple[str, dict[str, Any]]]]
"""The adverts of round n: (address, the keywords of ``BluezEmulator.advertise``)."""


@contextlib.asynccontextmanager
async def on_air(bluez: BluezEmulator, adverts: Adverts, every: float = 0.1) -> AsyncIterator[None]:
    """The nodes keep advertising, a round each ``every`` seconds, while the block runs, as
    nodes do (a node heard once and then silent is a node that went away)."""

    async def loop() -> None:
        n = 0
        while True:
            n += 1
            for address, advert in adverts(n):
                await bluez.advertise(address, **advert)
            await asyncio.sleep(every)

    async with _meanwhile(loop()):
        yield


@contextlib.asynccontextmanager
async def _meanwhile(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """``work`` runs while the block does (a node's side of the air), cancelled after it."""
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def wake_windows(
    bluez: BluezEmulator,
    address: str,
    *,
    awake: float,
    asleep: float,
    budget: int = 0,
    name: str | None = None,
    every: float = 0.1,
) -> AsyncIterator[None]:
    """While the block runs the node is a sleepy one, as battery nodes are: asleep for
    ``asleep`` seconds, then awake for ``awake`` seconds (connectable, and advertising every
    ``every`` seconds: how a node says it is awake), over and over. An SMP node's window also
    ends once it took ``budget`` image bytes in it (0: no such end), which makes the windows an
    upload takes independent of the machine's speed. It is left asleep."""

    async def loop() -> None:
        while True:
            await bluez.sleep(address)
            await asyncio.sleep(asleep)
            await bluez.sleep(address, False, budget=budget)
            end = asyncio.get_running_loop().time() + awake
            while asyncio.get_running_loop().time() < end and not await bluez.asleep(address):
                await bluez.advertise(address, name=name)
                await asyncio.sleep(every)

    try:
        async with _meanwhile(loop()):
            yield
    finally:
        await bluez.sleep(address)


def _spec(services: GattSpec) -> dict[str, dict[str, list[object]]]:
    """A GATT spec as the mock takes it: full UUIDs, (flags, value) as lists."""
    return {
        normalize_uuid_str(s): {
            normalize_uuid_str(c): [list(flags), bytes(value)]
            for c, (flags, value) in chars.items()
        }
        for s, chars in services.items()
    }


def dbus_daemon_missing() -> str | None:
    """Why the BlueZ emulation cannot run here, or None when it can."""
    if shutil.which("dbus-daemon") is None:
        return "dbus-daemon is not installed: apt-get install dbus"
    return None


@contextlib.contextmanager
def private_bus(directory: Path) -> Iterator[str]:
    """A private dbus-daemon listening in ``directory``, stopped on exit; yields its address
    (what ``DBUS_SYSTEM_BUS_ADDRESS`` of bleak's process must be)."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        raise BluezError("dbus-daemon is not installed")
    address = f"unix:path={directory}/system_bus_socket"
    with open(directory / "dbus-daemon.log", "wb") as log:
        proc = subprocess.Popen(
            [daemon, "--session", "--nofork", "--print-address", f"--address={address}"],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line:
            raise BluezError(f"dbus-daemon exited with {proc.wait()}")
        yield line
    finally:
        proc.terminate()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="session")
def bluez_bus() -> Iterator[str]:
    """One private dbus-daemon for the session; yields its address."""
    missing = dbus_daemon_missing()
    if missing is not None:
        pytest.skip(missing)
    with tempfile.TemporaryDirectory(prefix="bridged-dbus-") as tmp, private_bus(Path(tmp)) as bus:
        yield bus


@pytest.fixture(name="bluez")
async def bluez_fixture(
    bluez_bus: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[BluezEmulator]:
    """A fresh bluetoothd (no adapter yet) on the session's private bus, which bleak uses."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bluez_bus)
    emulator = BluezEmulator(bluez_bus, tmp_path)
    await emulator.start()
    try:
        yield emulator
    finally:
        with contextlib.suppress(Exception):
            await emulator.stop()
