"""The BLE scanner on the machine's real Bluetooth adapter (BRIDGED_HARDWARE=1 to run).

BRIDGED_BLE_ADAPTER picks the adapter (name or MAC; default: the first powered one). The test
needs bluetoothd running and at least one advertising device in range, which any phone, watch or
sensor nearby provides.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from bridged.transports.ble.advert_data import RawAdvert
from bridged.transports.ble.scanner import Scanner, ScannerState, ScannerStatus

pytestmark = pytest.mark.hardware

SCAN_SECONDS = 5.0


async def test_scan_a_real_adapter_for_5_s() -> None:
    adverts: list[RawAdvert] = []
    states: list[ScannerStatus] = []
    async with Scanner(
        adverts.append, adapter=os.environ.get("BRIDGED_BLE_ADAPTER"), on_state=states.append
    ) as scanner:
        await asyncio.sleep(SCAN_SECONDS)  # the test is "scan for 5 s": the wait is the point
        status = scanner.status
    assert status.state is ScannerState.SCANNING, status
    assert adverts, f"no advert heard in {SCAN_SECONDS:g} s ({status})"
    assert all(len(a.address) == 17 for a in adverts)
    print(f"{len({a.address for a in adverts})} devices, {len(adverts)} adverts, {status}")
