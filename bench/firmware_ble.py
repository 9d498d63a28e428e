"""Firmware transfer rate to a BLE MCUboot node over SMP, and the gateway's CPU per kB.

The whole BLE update path runs as in the daemon: ``SmpUpdater`` (smpclient over the GATT
poller's bleak connection) uploads an image to the BlueZ emulation's MCUboot node
(tests/emulators: python-dbusmock on a private dbus-daemon), marks it, resets the node and
confirms it. Reported per image size: image bytes per second of the whole update, against
what the radio could carry, and this process's CPU time per transferred kB (the gateway's
share; the emulated bluetoothd runs in its own process).

The radio's rate is modelled, not emulated (the emulation has no air time): SMP is stop and
wait, one request of at most ``buf_size`` (512 here) bytes and its response per exchange, and
a request and its response need at least two connection events; at the 7.5 ms shortest
connection interval and a 247-byte ATT MTU that is at most about 30 kB/s of image, whatever
the PHY. Needs dbus-daemon (``apt-get install dbus``).

    .venv/bin/python bench/firmware_ble.py [--sizes KB ...]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from emulators.bluez import BluezEmulator, dbus_daemon_missing, private_bus
from emulators.mcuboot import BUF_SIZE, image

from bridged.transports.ble.gatt import GattPoller
from bridged.transports.ble.smp import SmpUpdater
from bridged.transports.firmware import FirmwareImage
from bridged.transports.nodes import NodeId

NODE = "C4:7C:8D:6A:00:01"
INTERVAL = 0.0075
"""The shortest BLE connection interval, seconds."""
AIR_RATE = BUF_SIZE / (2 * INTERVAL)
"""Image bytes per second the modelled radio carries at best (module docstring)."""


async def update(workdir: Path, size: int) -> tuple[float, float]:
    """One update of a ``size``-byte image: (wall seconds, this process's CPU seconds)."""
    with private_bus(workdir) as bus:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus
        bluez = BluezEmulator(bus, workdir)
        await bluez.start()
        try:
            await bluez.add_adapter("hci0", monitor=False)
            await bluez.add_smp_device(NODE, image((1, 0, 0, 0), 1_000))
            data = image((2, 0, 0, 0), size)
            path = workdir / "image.bin"
            path.write_bytes(data)
            package = FirmwareImage(
                path, len(data), hashlib.sha256(data).hexdigest(), path.name, "2.0.0+0", time.time()
            )
            async with GattPoller(lambda _a, _r: None, connect_timeout=10.0) as poller:
                updater = SmpUpdater(poller, NODE)
                wall, cpu = time.perf_counter(), time.process_time()
                await updater.update(NodeId("ble", NODE), package, lambda _d, _t: None)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            held = await bluez.smp_node(NODE)
            assert held["primary"] == hashlib.sha256(data).hexdigest()
            return wall, cpu
        finally:
            await bluez.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256], metavar="KB")
    args = parser.parse_args()
    missing = dbus_daemon_missing()
    if missing:
        sys.exit(missing)
    print(f"modelled radio: at most {AIR_RATE / 1000:.1f} kB/s of image (SMP stop and wait)")
    print(f"{'image':>8} {'seconds':>8} {'kB/s':>8} {'x radio':>8} {'CPU ms/kB':>10}")
    for kb in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bridged-bench-smp-") as tmp:
            wall, cpu = asyncio.run(update(Path(tmp), kb * 1024))
        rate = kb * 1024 / wall
        print(
            f"{kb:>6}kB {wall:>8.2f} {rate / 1000:>8.1f} {rate / AIR_RATE:>8.2f}"
            f" {1000 * cpu / kb:>10.2f}"
        )


if __name__ == "__main__":
    main()
