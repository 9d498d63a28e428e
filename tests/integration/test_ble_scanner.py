"""The BLE scanner with the real bleak BlueZ backend, against the BlueZ emulation.

Each test runs a fresh bluetoothd stand-in on a private dbus-daemon (see emulators/bluez.py) and
waits for the scanner's reported states rather than for time to pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from emulators.bluez import IN_PROGRESS, NOT_READY, BluezEmulator, bluez_bus, bluez_fixture  # noqa: F401 (fixtures)

from bridged.aio import Backoff
from bridged.transports.ble.advert_data import RawAdvert
from bridged.transports.ble.scanner import Scanner, ScannerState, ScannerStatus

TIMEOUT = 20.0
SENSOR = "A4:C1:38:0A:0B:0C"
BTHOME = "0000fcd2-0000-1000-8000-00805f9b34fb"
FAST = Backoff(0.05, 0.5)
"""Short retries so recovery tests stay fast; the policy itself is unit-tested."""


class Probe:
    """Collects what a scanner reports, and waits for it."""

    def __init__(self) -> None:
        self.adverts: asyncio.Queue[RawAdvert] = asyncio.Queue()
        self.states: list[ScannerStatus] = []
        self._changed = asyncio.Event()

    def on_state(self, status: ScannerStatus) -> None:
        self.states.append(status)
        self._changed.set()

    async def until(self, pred: Callable[[ScannerStatus], bool], after: int = 0) -> ScannerStatus:
        """The first reported status from index ``after`` on that satisfies ``pred``."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                for status in self.states[after:]:
                    if pred(status):
                        return status
                self._changed.clear()
                await self._changed.wait()

    async def scanning(self, after: int = 0) -> ScannerStatus:
        return await self.until(lambda s: s.state is ScannerState.SCANNING, after)

    async def advert(self) -> RawAdvert:
        return await asyncio.wait_for(self.adverts.get(), TIMEOUT)


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def scanner_factory(probe: Probe) -> Callable[..., Scanner]:
    def make(**kwargs: object) -> Scanner:
        kwargs.setdefault("backoff", FAST)
        return Scanner(probe.adverts.put_nowait, on_state=probe.on_state, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def running(scanner_factory: Callable[..., Scanner]) -> AsyncIterator[list[Scanner]]:
    """Scanners a test starts; stopped (and their tasks awaited) at the end."""
    started: list[Scanner] = []
    yield started
    for scanner in started:
        await scanner.stop()


async def test_active_scan_delivers_service_data_manufacturer_data_and_rssi(
    bluez: BluezEmulator, probe: Probe, scanner_factory, running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridged.transports.ble.scanner")
    await bluez.add_adapter("hci0", monitor=False)
    scanner = scanner_factory(adapter="hci0")
    running.append(scanner)
    await scanner.start()
    status = await probe.scanning()
    assert (status.adapter, status.mode) == ("hci0", "active")
    assert "no advertisement monitor on hci0" in status.reason
    assert any(
        "hci0: active scanning: BlueZ offers no advertisement monitor" in r.getMessage()
        for r in caplog.records
    )

    assert await bluez.advertise(
        SENSOR, name="ATC_0A0B0C", rssi=-61, service_data={"fcd2": b"\x40\x02\xc4\x09"}
    )
    first = await probe.advert()
    assert (first.address, first.name, first.rssi) == (SENSOR, "ATC_0A0B0C", -61)
    assert first.service_data == {BTHOME: b"\x40\x02\xc4\x09"}

    assert await bluez.advertise(SENSOR, rssi=-75, manufacturer_data={0x0499: b"\x05\x12\xfc"})
    second = await probe.advert()
    assert second.rssi == -75
    assert second.manufacturer_data == {0x0499: b"\x05\x12\xfc"}
    assert second.time >= first.time


async def test_passive_scan_when_bluez_offers_the_advertisement_monitor(
    bluez: BluezEmulator, probe: Probe, scanner_factory, running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridged.transports.ble.scanner")
    path = await bluez.add_adapter("hci0", monitor=True)
    scanner = scanner_factory()
    running.append(scanner)
    await scanner.start()
    status = await probe.scanning()
    assert (status.adapter, status.mode) == ("hci0", "passive")
    assert any(
        "hci0: passive scanning: BlueZ offers the advertisement monitor" in r.getMessage()
        for r in caplog.records
    )
    assert await bluez.calls(path, "RegisterMonitor") == 1
    assert await bluez.calls(path, "StartDiscovery") == 0

    assert await bluez.advertise(SENSOR, service_data={"fcd2": b"\x40\x01\x5d"})
    assert (await probe.advert()).service_data == {BTHOME: b"\x40\x01\x5d"}


async def test_passive_scan_that_fails_to_start_falls_back_to_active(
    bluez: BluezEmulator, probe: Probe, scanner_factory, running
) -> None:
    path = await bluez.add_adapter("hci0", monitor=True)
    await bluez.fail_next("RegisterMonitor", "org.bluez.Error.Failed")
    scanner = scanner_factory()
    running.append(scanner)
    await scanner.start()
    status = await probe.scanning()
    assert status.mode == "active"
    assert status.reason == "passive scanning failed to start on hci0"
    assert await bluez.calls(path, "StartDiscovery") == 1
    assert await bluez.advertise(SENSOR, service_data={"fcd2": b"\x40"})
    assert (await probe.advert()).address == SENSOR


async def test_the_adapter_is_chosen_by_mac(
    bluez: BluezEmulator, probe: Probe, scanner_factory, running
) -> None:
    await bluez.add_adapter("hci0", address="00:1A:7D:DA:71:13", monitor=False)
    await bluez.add_adapter("hci1", address="5C:F3:70:00:00:01", monitor=False)
    scanner = scanner_factory(adapter="5c:f3:70:00:00:01")
    running.append(scanner)
    await scanner.start()
    assert (await probe.scanning()).adapter == "hci1"
    assert not await bluez.advertise(SENSOR, adapter="hci0")
    assert await bluez.advertise(SENSOR, rssi=-50, adapter="hci1")
    assert (await probe.advert()).rssi == -50


async def test_the_silence_watchdog_restarts_a_wedged_scan(
    bluez: BluezEmulator, probe: Probe, scanner_factory, running
) -> None:
    path = await bluez.add_adapter("hci0", monitor=False)
    scanner = scanner_factory(silence=0.5)
    running.append(scanner)
    await scanner.start()
    await probe.scanning()
    assert await bluez.advertise(SENSOR)
    await probe.advert()

    await bluez.wedge("hci0")
    assert not await bluez.advertise(SENSOR), "a wedged adapter hears nothing"
    mark = len(probe.states)
    restart = await probe.until(lambda s: s.state is ScannerState.RETRYING, mark)
    assert restart.reason == "no advert for 0.5 s"
    await probe.scanning(mark)
    assert await bluez.adapter_property("hci0", "Discovering")
    assert await bluez.calls(path, "StartDiscovery") >= 2
    assert await bluez.advertise(SENSOR, rssi=-42)
    assert (await probe.advert()).rssi == -42


@pytest.mark.parametrize("error", [IN_PROGRESS, NOT_READY])
async def test_start_errors_are_retried(
    bluez: BluezEmulator, probe: Probe, scanner_factory, running, error: str
) -> None:
    await bluez.add_adapter("hci0", monitor=False)
    await bluez.fail_next("StartDiscovery", error)
    await bluez.fail_next("StartDiscovery", error)
    scanner = scanner_factory()
    running.append(scanner)
    await scanner.start()
    await probe.scanning()
    failures = [s for s in probe.states if s.state is ScannerState.RETRYING]
    assert [s.reason.split(":")[0] for s in failures] == [error, error]
    assert [s.retry_in for s in failures] == [FAST.delay(0), FAST.delay(1)]
    assert await bluez.advertise(SENSOR)
    await probe.advert()


async def test_scanning_resumes_when_the_adapter_returns(
    bluez: BluezEmulator, probe: Probe, scanner_factory, running
) -> None:
    await bluez.add_adapter("hci0", monitor=False)
    # a long back-off: only BlueZ's InterfacesAdded can bring scanning back within the test
    scanner = scanner_factory(adapter="hci0", backoff=Backoff(3600.0, 3600.0))
    running.append(scanner)
    await scanner.start()
    await probe.scanning()

    mark = len(probe.states)
    await bluez.remove_adapter("hci0")
    gone = await probe.until(lambda s: s.state is ScannerState.NO_ADAPTER, mark)
    assert "hci0 not found" in gone.reason

    mark = len(probe.states)
    await bluez.add_adapter("hci0", monitor=False)
    await probe.scanning(mark)
    assert await bluez.advertise(SENSOR, rssi=-66)
    assert (await probe.advert()).rssi == -66


async def test_scanning_resumes_after_bluetoothd_restarts(
    bluez: BluezEmulator, probe: Probe, scanner_factory, running
) -> None:
    await bluez.add_adapter("hci0", monitor=True)
    scanner = scanner_factory(backoff=Backoff(3600.0, 3600.0))
    running.append(scanner)
    await scanner.start()
    await probe.scanning()

    mark = len(probe.states)
    await bluez.restart()
    await probe.until(lambda s: s.state is ScannerState.NO_ADAPTER, mark)
    mark = len(probe.states)
    await bluez.add_adapter("hci0", monitor=True)
    assert (await probe.scanning(mark)).mode == "passive"
    assert await bluez.advertise(SENSOR)
    await probe.advert()


async def test_no_adapter_at_start_is_waited_for(
    bluez: BluezEmulator, probe: Probe, scanner_factory, running
) -> None:
    scanner = scanner_factory(adapter="hci0", backoff=Backoff(3600.0, 3600.0))
    running.append(scanner)
    await scanner.start()
    waiting = await probe.until(lambda s: s.state is ScannerState.NO_ADAPTER)
    assert waiting.retry_in == 3600.0
    await bluez.add_adapter("hci0", monitor=False)
    await probe.scanning()
    await scanner.stop()
    assert scanner.status.state is ScannerState.STOPPED
    assert not await bluez.adapter_property("hci0", "Discovering")
