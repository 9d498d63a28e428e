"""Every BLE reading the gateway took reaches the server, across kill -9 and SIGTERM restarts.

The real daemon hears BTHome sensors through the BlueZ emulation (`emulators.world`) and
delivers their readings to the in-repo LwM2M server, which decodes each Send with its own
codec. Mid-stream, once the daemon has taken the last advert of a round (its ``node.show``
says so), it is killed (SIGKILL, SIGTERM, SIGKILL) and started again on the same state
directory. In the end, every temperature the sensors advertised and the daemon took must be
among what the server received: at least once (a Send the server had but whose delivery the
daemon had not recorded is sent again: duplicates are counted), and never one that was not
advertised. An advert is never acknowledged to the sensor, so the daemon's taking it is the
only receipt there is: the reading must be durable before the daemon does anything with it.
"""

from __future__ import annotations

import contextlib
import signal
from collections import Counter
from pathlib import Path

import pytest
from airs import until
from emulators.world import World, ble_unavailable

from bridged.cli import Client
from peers.lwm2m_server import LwM2MTestServer

pytestmark = pytest.mark.skipif(ble_unavailable() is not None, reason=str(ble_unavailable()))

ENDPOINT = "gw-restart"
TIMEOUT = 60.0
SENSORS = ("A4:C1:38:00:10:01", "A4:C1:38:00:10:02", "A4:C1:38:00:10:03")
PER_ROUND = 25
"""Adverts per sensor between two kills."""
KILLS = (signal.SIGKILL, signal.SIGTERM, signal.SIGKILL)
START_ATTEMPTS = 30


@pytest.fixture(autouse=True)
def _short_paths(tmp_path: Path) -> None:
    """Unix socket paths are limited to 107 bytes."""
    assert len(str(tmp_path / "run" / "control.sock")) < 100, tmp_path


def temperature(sensor: int, n: int) -> float:
    """The ``n``th temperature sensor ``sensor`` advertises: one value per advert, every value
    distinct (so the server's records say which advert they came from)."""
    return round(10.0 * sensor + 0.01 * n, 2)


async def taken(ctl: Client, sensor: int, packet: int, timeout: float = TIMEOUT) -> None:
    """Wait until the daemon has taken advert ``packet`` of sensor number ``sensor``: its
    ``node.show`` has that temperature."""
    node, value = {"node": f"ble:{SENSORS[sensor]}"}, temperature(sensor, packet)

    def shown() -> bool:
        values = ctl.call("node.show", node)["values"]
        return any(v["path"] == "/3303/0/5700" and v["value"] == value for v in values)

    await until(shown, f"advert {packet} of {SENSORS[sensor]} taken", timeout)


def received(server: LwM2MTestServer) -> Counter[float]:
    """Every temperature in the Sends the server accepted, with how often it came."""
    return Counter(
        float(r.value)  # type: ignore[arg-type]
        for e in server.history
        if e.kind == "send" and e.code.is_successful()
        for r in e.records
        if r.name.startswith("/3303/") and r.name.endswith("/5700")
    )


async def advertise(world: World, ctl: Client, sensor: int, packet: int, *, first: bool) -> float:
    """Advert ``packet`` of sensor number ``sensor``; returns its temperature. The first of a
    round is repeated (the same packet, which the daemon takes once) until the daemon has
    taken it: just after a start its scan may not be on yet."""
    address, value = SENSORS[sensor], temperature(sensor, packet)
    for _ in range(START_ATTEMPTS):
        heard = await world.advertise_bthome(address, f"t{sensor}", packet, value, 50)
        if not first:
            assert heard, "BlueZ is discovering"
            return value
        with contextlib.suppress(AssertionError):
            await taken(ctl, sensor, packet, timeout=1.0)
            return value
    raise AssertionError(f"the daemon never took {address}'s advert: is it scanning?")


async def test_no_ble_reading_is_lost_across_kill_9_and_sigterm(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    produced: list[float] = []
    async with World(tmp_path, ble=True) as world:
        daemon = await world.start_daemon(server.uri, endpoint=ENDPOINT)
        for i, address in enumerate(SENSORS):
            await daemon.ctl_json("pair", "ble", address, "--name", f"t{i}")
        packet = 0
        for kill in KILLS:
            ctl = Client(str(daemon.socket), timeout=10.0)
            try:
                for n in range(PER_ROUND):
                    packet += 1
                    for i in range(len(SENSORS)):
                        produced.append(await advertise(world, ctl, i, packet, first=n == 0))
                await taken(ctl, len(SENSORS) - 1, packet)  # and every advert before it
                daemon.proc.send_signal(kill)  # at once: its readings may not be committed yet
            finally:
                ctl.close()
            await daemon.proc.wait()
            daemon = await world.start_daemon(server.uri, endpoint=ENDPOINT)

        wanted = set(produced)
        with contextlib.suppress(AssertionError):
            await until(lambda: wanted <= set(received(server)), "every reading", timeout=30)
        got = received(server)
        lost = sorted(wanted - set(got))
        assert not lost, f"{len(lost)} of {len(wanted)} readings never reached the server: {lost}"
        assert set(got) <= wanted, "the server got only what the sensors advertised"
        duplicates = sum(got.values()) - len(got)
        print(f"{len(produced)} readings, {duplicates} delivered twice (at least once)")
        assert await daemon.stop() == 0
