"""A deliberate stop is not a fault: the real daemon stopped by SIGTERM, then started again.

The daemon runs both radios, the 802.15.4 one on the RCP emulator's pty and the BLE one on
the BlueZ emulation (`emulators.world`), registered with the in-repo LwM2M server. Each radio
is closed at a stop, which its transport reported as "radio down": the log said ``ERROR
bridged.faults: transport.802154: radio down: stopped (error code 8)``, and the Event Log
kept it, so after each ordinary restart a server read a "radio down" entry in /20/0/4014.
What is checked is what a server reads after the restart (the gateway's /3/0/11 and
/20/0/4014, decoded by the server's own code) and what the log of the stopped run says.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiocoap.numbers.codes import Code
from emulators.world import Daemon, World, ble_unavailable

from bridged.health import NO_ERROR
from bridged.objects.formats import ContentFormat
from peers.lwm2m_server import LwM2MTestServer, decode_senml_cbor

pytestmark = pytest.mark.skipif(ble_unavailable() is not None, reason=str(ble_unavailable()))

ENDPOINT = "gw-stop"
TIMEOUT = 30.0


@pytest.fixture(autouse=True)
def _short_paths(tmp_path: Path) -> None:
    """Unix socket paths are limited to 107 bytes."""
    assert len(str(tmp_path / "run" / "control.sock")) < 100, tmp_path


async def radios_up(daemon: Daemon) -> None:
    """Until both radios work: the dongle is up, the adapter scanning."""

    async with asyncio.timeout(TIMEOUT):
        while True:
            transports = (await daemon.ctl_json("status"))["transports"]
            if "radio up" in transports["802154"] and "scanning" in transports["ble"]:
                return
            await asyncio.sleep(0.05)


async def error_codes(server: LwM2MTestServer) -> list[object]:
    read = await server.request(ENDPOINT, Code.GET, "/3/0/11", accept=ContentFormat.SENML_CBOR)
    assert read.code == Code.CONTENT, read
    return [r.value for r in decode_senml_cbor(read.payload)]


async def event_log(server: LwM2MTestServer) -> list[str]:
    read = await server.request(ENDPOINT, Code.GET, "/20/0/4014", accept=ContentFormat.OPAQUE)
    assert read.code == Code.CONTENT, read
    return read.payload.decode().splitlines()


async def test_a_stop_is_no_fault_in_the_log_the_error_code_or_the_event_log(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    logs = []
    async with World(tmp_path, ble=True) as world:
        for run in ("first", "after a restart"):
            daemon = await world.start_daemon(server.uri, endpoint=ENDPOINT)
            await server.next_event("register", timeout=TIMEOUT)
            await radios_up(daemon)
            assert await error_codes(server) == [NO_ERROR], run
            assert await event_log(server) == [], run
            assert await daemon.stop() == 0
            assert (await server.next_event("deregister", timeout=TIMEOUT)).endpoint == ENDPOINT
            logs.append(daemon.log.read_text())
    for log in logs:
        assert "gateway fault" not in log, log
        assert "radio down" not in log, log
        assert " ERROR " not in log, log
