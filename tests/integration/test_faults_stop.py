"""A deliberate stop is not a fault, nor the end of one: the real daemon stopped by SIGTERM,
then started again.

The daemon runs both radios, the 802.15.4 one on the RCP emulator's pty and the BLE one on
the BlueZ emulation (`emulators.world`), registered with the in-repo LwM2M server. Each radio
is closed at a stop, which its transport reported as "radio down": the log said ``ERROR
bridged.faults: transport.802154: radio down: stopped (error code 8)``, and the Event Log
kept it, so after each ordinary restart a server read a "radio down" entry in /20/0/4014.
What is checked is what a server reads after the restart (the gateway's /3/0/11 and
/20/0/4014, decoded by the server's own code) and what the log of the stopped run says.

A fault still present at a stop (the dongle unplugged) was logged "cleared" by the stop, and
"raised" again by the next start, as if it had been over meanwhile. It stays raised across
the stop: the next start finds it again (the same fault, not raised twice), or finds it gone
and logs it cleared then.
"""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import pytest
from aiocoap.numbers.codes import Code
from emulators.world import Daemon, World, ble_unavailable

from bridged.faults import RADIO_DOWN
from bridged.health import NO_ERROR
from bridged.objects.formats import ContentFormat
from peers.lwm2m_server import LwM2MTestServer, decode_senml_cbor

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


async def event_log(server: LwM2MTestServer, endpoint: str = ENDPOINT) -> list[str]:
    """The gateway's /20/0/4014 Event Log LogData, one entry a line."""
    read = await server.request(endpoint, Code.GET, "/20/0/4014", accept=ContentFormat.OPAQUE)
    assert read.code == Code.CONTENT, read
    return read.payload.decode().splitlines()


@pytest.mark.skipif(ble_unavailable() is not None, reason=str(ble_unavailable()))
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


RADIO = "transport.802154"
RAISED, CLEARED = (RADIO, "raised", str(RADIO_DOWN)), (RADIO, "cleared", str(RADIO_DOWN))


LOG_LINE = re.compile(r"\S+ (?P<source>.+?) (?P<what>raised|cleared) (?P<code>\d+) .*")
"""One LogData line (``bridged.eventlog``): a source may have a space (``node sim:0001``)."""


async def faults_logged(
    server: LwM2MTestServer, endpoint: str = ENDPOINT
) -> list[tuple[str, str, str]]:
    """/20/0/4014 as (source, raised or cleared, code), one per line."""
    logged = []
    for line in await event_log(server, endpoint):
        entry = LOG_LINE.fullmatch(line)
        assert entry is not None, line
        logged.append((entry["source"], entry["what"], entry["code"]))
    return logged


async def until_logged(server: LwM2MTestServer, *expected: tuple[str, str, str]) -> None:
    """Until /20/0/4014 has ``expected``, having had a beginning of it meanwhile."""
    async with asyncio.timeout(TIMEOUT):
        while (logged := await faults_logged(server)) != list(expected):
            assert logged == list(expected[: len(logged)]), logged
            await asyncio.sleep(0.1)


async def stop(daemon: Daemon, server: LwM2MTestServer) -> None:
    """SIGTERM; what the daemon logs from then on must not say that a fault ended."""
    assert await daemon.stop() == 0
    assert (await server.next_event("deregister", timeout=TIMEOUT)).endpoint == ENDPOINT
    _, stopping = daemon.log.read_text().split(" __main__: stopping\n")
    assert "gateway fault over" not in stopping, stopping


async def start(world: World, server: LwM2MTestServer, *, radio_up: bool = True) -> Daemon:
    """The daemon, once registered (its radio up, or not: the dongle is unplugged)."""
    daemon = await world.start_daemon(server.uri, endpoint=ENDPOINT, radio_up=radio_up)
    await server.next_event("register", timeout=TIMEOUT)
    return daemon


async def test_a_fault_present_at_a_stop_stays_raised_until_a_start_finds_it_gone(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The dongle unplugged, SIGTERM, a start with it still unplugged: the Event Log has it
    raised once, /3/0/11 has 8; it is plugged back: cleared. Unplugged again, SIGTERM, plugged
    back while stopped: the next start logs it cleared."""
    async with World(tmp_path) as world:
        daemon = await start(world, server)
        world.rcp.unplug()
        await until_logged(server, RAISED)
        await stop(daemon, server)
        daemon = await start(world, server, radio_up=False)
        assert await faults_logged(server) == [RAISED], "still the same fault"
        assert await error_codes(server) == [RADIO_DOWN]
        world.rcp.replug()
        await until_logged(server, RAISED, CLEARED)
        assert await error_codes(server) == [NO_ERROR]
        world.rcp.unplug()
        await until_logged(server, RAISED, CLEARED, RAISED)
        await stop(daemon, server)
        world.rcp.replug()
        daemon = await start(world, server)
        assert await faults_logged(server) == [RAISED, CLEARED, RAISED, CLEARED], "gone at start"
        assert await error_codes(server) == [NO_ERROR]
        await stop(daemon, server)


async def reloaded(daemon: Daemon, *, count: int) -> None:
    """Until the daemon's log says it reloaded its configuration ``count`` times."""
    async with asyncio.timeout(TIMEOUT):
        while daemon.log.read_text().count("configuration reloaded from") < count:
            await asyncio.sleep(0.05)


async def test_a_reload_restarting_a_radio_ends_none_of_its_faults(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The dongle unplugged, a SIGHUP with a changed [transport.802154] restarts that transport:
    the Event Log has it raised once, /3/0/11 has 8 (the reload logged it cleared, then raised
    again). Plugged back: cleared. A reload restarting the radio while it works logs nothing."""
    async with World(tmp_path) as world:
        daemon = await start(world, server)
        world.rcp.unplug()
        await until_logged(server, RAISED)
        config = world.workdir / "bridged.toml"
        for reload, window in enumerate((3, 4), start=1):
            config.write_text(
                world.config(server.uri, endpoint=ENDPOINT, radio=f"awake_window = {window}")
            )
            daemon.proc.send_signal(signal.SIGHUP)
            await reloaded(daemon, count=reload)
            if reload == 1:
                assert await faults_logged(server) == [RAISED], "still the same fault"
                assert await error_codes(server) == [RADIO_DOWN]
                world.rcp.replug()
                await until_logged(server, RAISED, CLEARED)
        assert await faults_logged(server) == [RAISED, CLEARED], "a working radio restarted"
        assert await error_codes(server) == [NO_ERROR]
        await stop(daemon, server)
