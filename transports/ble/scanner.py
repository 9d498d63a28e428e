"""One continuous BLE scanner per adapter, kept alive through BlueZ's failures.

Field reports (BlueZ scanners that go quiet after hours with ``org.bluez.Error.InProgress``,
adapters that vanish and come back, bluetoothd restarts) all end the same way for a gateway that
stops at the first error: no data until someone restarts it. So the scanner supervises itself:

* it scans continuously (no start/stop duty cycle, which loses adverts and wears BlueZ), on the
  adapter chosen by name or MAC, looked up again at every (re)start;
* passively when BlueZ offers the advertisement monitor on that adapter (no scan requests, so
  coin cells last), actively otherwise or when passive scanning fails to start; the log and the
  reported status say which and why;
* a watchdog restarts scanning after ``silence`` seconds without any advert;
* any BlueZ or D-Bus failure (InProgress, NotReady, Failed, adapter gone, bluetoothd gone, the
  bus connection lost) is reported through ``on_state`` and retried with exponential back-off,
  sooner when BlueZ signals that an adapter appeared; nothing is raised out of the scanner.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakDBusError
from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from bridged.aio import Backoff, cancel_and_wait

from .adapters import (
    ADAPTER_IFACE,
    BLUEZ,
    AdapterInfo,
    AdapterNotFound,
    read_adapters,
    select_adapter,
)
from .advert_data import RawAdvert

log = logging.getLogger(__name__)

ScanMode = Literal["active", "passive"]

PASSIVE_PATTERNS: tuple[OrPattern, ...] = tuple(
    OrPattern(0, AdvertisementDataType.FLAGS, bytes([flags]))
    for flags in (0x02, 0x04, 0x05, 0x06, 0x1A)
)
"""BlueZ's advertisement monitor only reports adverts that match a pattern. Every advert that
carries a Flags AD starts it with one of these values (LE discoverable modes, with or without
BR/EDR), so together they let all sensor adverts through."""

IN_PROGRESS = "org.bluez.Error.InProgress"
NOT_READY = "org.bluez.Error.NotReady"
TRANSIENT_ERRORS = frozenset({IN_PROGRESS, NOT_READY, "org.bluez.Error.Busy"})
"""Errors that say "not now" rather than "not possible": they never make passive scanning fall
back to active."""

RETRY = Backoff(1.0, 60.0)
"""The default pace of restarts after failures: soon at first, then once a minute."""

NO_MONITOR = (
    "BlueZ offers no advertisement monitor on {name} (passive scanning needs bluetoothd "
    "--experimental, BlueZ >= 5.56 and Linux >= 5.10)"
)


class ScannerState(enum.Enum):
    STARTING = "starting"
    SCANNING = "scanning"
    RETRYING = "retrying"
    """Scanning stopped (silence, an error, the adapter gone); the next start is scheduled."""
    NO_ADAPTER = "no-adapter"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ScannerStatus:
    """What the scanner is doing and why, for logs, ``bridgectl status`` and tests.

    ``adapter`` is the adapter's name (hci0) once found, else the configured name or MAC;
    ``mode`` is the scanning mode in use or being started; ``retry_in`` the seconds until the
    next start when ``state`` is RETRYING or NO_ADAPTER.
    """

    state: ScannerState
    adapter: str | None
    mode: ScanMode | None
    reason: str
    retry_in: float | None = None


def choose_mode(
    adapter: AdapterInfo, configured: Literal["auto", "active", "passive"], passive_failed: bool
) -> tuple[ScanMode, str]:
    """The scanning mode for ``adapter`` and the reason to log.

    Passive scanning needs the advertisement monitor; a configured "passive" on an adapter that
    lacks it scans actively rather than not at all (some data beats none), and says so.
    """
    if configured == "active":
        return "active", "active scanning is configured"
    if passive_failed:
        return "active", f"passive scanning failed to start on {adapter.name}"
    if not adapter.passive:
        return "active", NO_MONITOR.format(name=adapter.name)
    return "passive", f"BlueZ offers the advertisement monitor on {adapter.name}"


def describe(error: BaseException) -> str:
    """A failure as the status shows it: the D-Bus error name when there is one."""
    if isinstance(error, BleakDBusError):
        return f"{error.dbus_error}: {error.dbus_error_details or ''}".rstrip(": ")
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class Scanner:
    """Continuous scanning on one adapter, delivering every advert to ``on_advert``.

    ``adapter`` is a name ("hci0"), a MAC ("00:1A:7D:DA:71:13") or None for the first powered
    adapter. ``mode`` "auto" scans passively where BlueZ can. ``clock`` stamps adverts (wall
    clock seconds). Use ``async with Scanner(...)`` or ``start``/``stop``.
    """

    def __init__(
        self,
        on_advert: Callable[[RawAdvert], None],
        *,
        adapter: str | None = None,
        mode: Literal["auto", "active", "passive"] = "auto",
        on_state: Callable[[ScannerStatus], None] | None = None,
        silence: float = 90.0,
        backoff: Backoff = RETRY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._on_advert = on_advert
        self._wanted = adapter
        self._mode: Literal["auto", "active", "passive"] = mode
        self._on_state = on_state
        self._silence = silence
        self._backoff = backoff
        self._clock = clock
        self._status = ScannerStatus(ScannerState.STOPPED, adapter, None, "not started")
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._wake_reason = ""
        self._wake_restarts = False
        self._last_advert = 0.0
        self._adapter_path: str | None = None
        self._passive_failed: set[str] = set()
        self._logged_mode: dict[str, str] = {}

    @property
    def status(self) -> ScannerStatus:
        return self._status

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"ble-scanner-{self._wanted}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._report(ScannerState.STOPPED, self._status.adapter, None, "stopped")

    async def __aenter__(self) -> Scanner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- supervision ---------------------------------------------------------------------------

    async def _supervise(self) -> None:
        attempt = 0
        bus: MessageBus | None = None
        try:
            while True:
                self._wake.clear()
                scanner: BleakScanner | None = None
                name = self._wanted
                mode: ScanMode | None = None
                try:
                    if bus is None or not bus.connected:
                        if bus is not None:
                            bus.disconnect()
                        bus = None
                        bus = await self._watch_bluez()
                    adapter = select_adapter(await read_adapters(bus), self._wanted)
                    name, self._adapter_path = adapter.name, adapter.path
                    mode, why = choose_mode(
                        adapter, self._mode, adapter.path in self._passive_failed
                    )
                    if self._logged_mode.get(adapter.path) != mode:
                        log.info("%s: %s scanning: %s", adapter.name, mode, why)
                        self._logged_mode[adapter.path] = mode
                    self._report(ScannerState.STARTING, name, mode, why)
                    scanner = self._bleak_scanner(adapter, mode)
                    await self._start_bleak(scanner, adapter, mode)
                    attempt = 0
                    self._report(ScannerState.SCANNING, name, mode, why)
                    reason = await self._until_restart()
                    log.warning("%s: restarting scanning: %s", name, reason)
                    self._report(ScannerState.RETRYING, name, mode, reason, 0.0)
                    continue
                except AdapterNotFound as e:
                    state, reason = ScannerState.NO_ADAPTER, str(e)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # every BlueZ/D-Bus failure is retried, never raised
                    state, reason = ScannerState.RETRYING, describe(e)
                finally:
                    if scanner is not None:
                        await self._stop_bleak(scanner, name)
                delay = self._backoff.delay(attempt)
                attempt += 1
                log.warning("%s: scanning stopped (%s); retrying in %.3g s", name, reason, delay)
                self._report(state, name, mode, reason, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            if bus is not None:
                bus.disconnect()

    def _bleak_scanner(self, adapter: AdapterInfo, mode: ScanMode) -> BleakScanner:
        if mode == "passive":
            args = BlueZScannerArgs(adapter=adapter.name, or_patterns=list(PASSIVE_PATTERNS))
        else:
            # DuplicateData: report every advert, not only changed data, so that sensors that
            # repeat the same reading still show RSSI and liveness (and feed the watchdog).
            args = BlueZScannerArgs(adapter=adapter.name, filters={"DuplicateData": True})
        return BleakScanner(self._detected, scanning_mode=mode, bluez=args)

    async def _start_bleak(self, scanner: BleakScanner, adapter: AdapterInfo, mode: str) -> None:
        try:
            await scanner.start()
        except BleakDBusError as e:
            if mode == "passive" and e.dbus_error not in TRANSIENT_ERRORS:
                self._passive_failed.add(adapter.path)
            raise
        except Exception:
            if mode == "passive":
                self._passive_failed.add(adapter.path)
            raise
        self._last_advert = asyncio.get_running_loop().time()

    async def _stop_bleak(self, scanner: BleakScanner, name: str | None) -> None:
        """Stop scanning, expecting BlueZ to refuse: the adapter may be gone already."""
        try:
            await scanner.stop()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.debug("%s: stopping the scan failed: %s", name, describe(e))

    async def _until_restart(self) -> str:
        """Wait while scanning works; return why it must restart."""
        loop = asyncio.get_running_loop()
        while True:
            left = self._silence - (loop.time() - self._last_advert)
            if left <= 0:
                return f"no advert for {self._silence:g} s"
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                continue
            if self._wake_restarts:
                return self._wake_reason
            self._wake.clear()  # an adapter appeared while this one works: nothing to do

    def _wake_up(self, reason: str, *, restart: bool) -> None:
        """Wake the supervisor: to retry now (``restart`` False: something appeared) or to
        restart a running scan (``restart`` True: something it depends on went away)."""
        if not self._wake.is_set() or (restart and not self._wake_restarts):
            self._wake_reason = reason
            self._wake_restarts = restart
            self._wake.set()

    async def _watch_bluez(self) -> MessageBus:
        """A system-bus connection that wakes the supervisor when adapters come and go, when
        bluetoothd leaves or returns, and when the connection itself is lost."""
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        try:
            for rule in (
                f"type='signal',sender='{BLUEZ}',interface='org.freedesktop.DBus.ObjectManager'",
                f"type='signal',member='NameOwnerChanged',arg0='{BLUEZ}'",
            ):
                reply = await bus.call(
                    Message(
                        destination="org.freedesktop.DBus",
                        path="/org/freedesktop/DBus",
                        interface="org.freedesktop.DBus",
                        member="AddMatch",
                        signature="s",
                        body=[rule],
                    )
                )
                if reply.message_type == MessageType.ERROR:
                    raise ConnectionError(f"AddMatch: {reply.error_name}")
        except BaseException:
            bus.disconnect()
            raise
        bus.add_message_handler(self._bluez_signal)
        lost = asyncio.ensure_future(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
        lost.add_done_callback(
            lambda _: self._wake_up("the D-Bus connection was lost", restart=True)
        )
        return bus

    def _bluez_signal(self, msg: Message) -> None:
        if msg.member == "InterfacesRemoved":
            path, interfaces = msg.body
            if path == self._adapter_path and ADAPTER_IFACE in interfaces:
                self._wake_up(f"adapter {path.rsplit('/', 1)[-1]} was removed", restart=True)
        elif msg.member == "InterfacesAdded":
            path, interfaces = msg.body
            if ADAPTER_IFACE in interfaces:
                self._wake_up(f"adapter {path.rsplit('/', 1)[-1]} appeared", restart=False)
        elif msg.member == "NameOwnerChanged":
            if msg.body[2]:
                self._wake_up("bluetoothd is back", restart=False)
            else:
                self._wake_up("bluetoothd left the bus", restart=True)

    # -- delivery -----------------------------------------------------------------------------

    def _detected(self, device: BLEDevice, adv: AdvertisementData) -> None:
        self._last_advert = asyncio.get_running_loop().time()
        advert = RawAdvert(
            address=device.address.upper(),
            name=adv.local_name,
            # bleak reports -127 when BlueZ gave no RSSI
            rssi=None if adv.rssi == -127 else adv.rssi,
            service_data=dict(adv.service_data),
            manufacturer_data=dict(adv.manufacturer_data),
            time=self._clock(),
        )
        try:
            self._on_advert(advert)
        except Exception:
            log.exception("the advert handler failed on an advert from %s", advert.address)

    def _report(
        self,
        state: ScannerState,
        adapter: str | None,
        mode: ScanMode | None,
        reason: str,
        retry_in: float | None = None,
    ) -> None:
        status = ScannerStatus(state, adapter, mode, reason, retry_in)
        if status == self._status:
            return
        self._status = status
        if self._on_state is not None:
            try:
                self._on_state(status)
            except Exception:
                log.exception("the scanner state handler failed")
