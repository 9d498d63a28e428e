"""Firmware update of a BLE node running MCUboot with MCUmgr SMP over GATT, end to end: the
real daemon (a subprocess) with the BlueZ emulation, whose node runs an emulated MCUboot
(`emulators.mcuboot`) behind the SMP GATT service; the in-repo LwM2M server updates the node
through the gateway's /5 of it, in the gateway and endpoints modes, pushing the package
(Block1) or naming an http:// URI. What the node holds and runs is read from the emulated
node, what the server observed from the server."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiocoap.numbers.codes import Code
from emulators.bluez import on_air, wake_windows
from emulators.mcuboot import image, version_of
from emulators.world import Daemon, World, ble_unavailable
from firmware_servers import HttpPackage, http_package
from firmware_view import DOWNLOADED, FULL_WALK, IDLE, OPAQUE, TEXT, UPDATING, FirmwareView

from peers.lwm2m_server import LwM2MTestServer

pytestmark = pytest.mark.skipif(ble_unavailable() is not None, reason=str(ble_unavailable()))

ENDPOINT = "gw-fwble"
ADDRESS = "C4:7C:8D:6A:00:09"
NODE = f"ble:{ADDRESS}"
RUNNING = image((1, 0, 0, 0), 2_000)
UPDATE_TIMEOUT = 120.0
RESTART_PACKAGE = image((3, 0, 0, 0), 9_000)


@dataclass
class Updatable:
    world: World
    daemon: Daemon
    fw: FirmwareView

    async def node(self) -> dict[str, Any]:
        """What the emulated node holds and runs."""
        assert self.world.bluez is not None
        return await self.world.bluez.smp_node(ADDRESS)


@contextlib.asynccontextmanager
async def updatable(
    tmp_path: Path, server: LwM2MTestServer, mode: str, *, sleepy: bool = False, ble: str = ""
) -> AsyncIterator[Updatable]:
    """The node paired with ``--firmware smp`` (and ``--sleepy``: read at its first advert,
    then asleep until the test opens its wake windows), its /5 observed by ``server``."""
    async with World(tmp_path, ble=True) as world:
        assert world.bluez is not None
        await world.bluez.add_smp_device(ADDRESS, RUNNING, name="fw-node")
        daemon = await world.start_daemon(
            server.uri, endpoint=ENDPOINT, gateway=f'exposure = "{mode}"', ble=ble
        )
        flags = ("--sleepy",) if sleepy else ()
        await daemon.ctl_json("pair", "ble", ADDRESS, "--firmware", "smp", "--name", "pump", *flags)
        async with on_air(world.bluez, lambda _n: [(ADDRESS, {"name": "fw-node"})]):
            await daemon.upstream(NODE, "/3/0/3")  # the node was read
        if sleepy:
            await world.bluez.sleep(ADDRESS)
        view = await FirmwareView.of_node(server, daemon, ENDPOINT, NODE, mode)
        async with view.watching() as fw:
            yield Updatable(world, daemon, fw)


async def firmware_version(fw: FirmwareView) -> str:
    reply = await fw.server.request(fw.endpoint, Code.GET, f"{fw.prefix}/3/0/3")
    assert reply.code == Code.CONTENT, reply
    return str(reply.payload.decode())


@pytest.mark.parametrize("mode", ["gateway", "endpoints"])
async def test_a_server_updates_an_smp_node(
    tmp_path: Path, server: LwM2MTestServer, mode: str
) -> None:
    """Push (Block1 to /5/0/0) in the gateway mode, pull (an http:// URI in /5/0/1) in the
    endpoints mode; the node receives exactly the image, boots it and keeps it."""
    package = image((2, 1, 0, 3), 8_000)
    with http_package(HttpPackage(package)) as http:
        async with updatable(tmp_path, server, mode) as up:
            assert await firmware_version(up.fw) == version_of(RUNNING)
            if mode == "gateway":
                assert await up.fw.write(0, package, OPAQUE) == Code.CHANGED
            else:
                assert await up.fw.write(1, http.url.encode(), TEXT) == Code.CHANGED
            await up.fw.until(DOWNLOADED, 0)
            assert (await up.node())["received"] == 0  # nothing goes before Update
            assert await up.fw.execute() == Code.CHANGED
            await up.fw.until(IDLE, 1, timeout=UPDATE_TIMEOUT)
            held = await up.node()
            assert held["primary"] == hashlib.sha256(package).hexdigest()
            assert held["version"] == version_of(package) and held["confirmed"]
            assert held["received"] == len(package) and held["boots"] == 1
            assert up.fw.went(FULL_WALK if mode == "gateway" else FULL_WALK[1:])
            assert (await up.fw.read(7)).decode() == version_of(package)
            assert await firmware_version(up.fw) == version_of(package)


async def test_a_package_that_is_no_mcuboot_image_is_refused_before_the_node_gets_it(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.fw.write(0, b"PK\x03\x04" + bytes(3_000), OPAQUE) == Code.CHANGED
        await up.fw.until(IDLE, 6)
        held = await up.node()
        assert held["received"] == 0 and held["boots"] == 0
        assert held["version"] == version_of(RUNNING)


@pytest.mark.parametrize(
    ("package", "cuts", "result"),
    [
        # boots once, resets before it is confirmed: MCUboot reverts it
        (image((2, 0, 0, 0), 3_000, crashes=True), (), 8),
        # the link drops mid-upload once: the upload resumes from the node's offset
        (image((2, 0, 0, 0), 9_000), (4_000,), 1),
        # it drops on every connection the updater makes: Connection lost
        (image((2, 0, 0, 0), 9_000), (2_000, 4_000, 6_000), 4),
    ],
    ids=["rolls-back", "cut-once-resumes", "cut-every-time"],
)
async def test_an_update_that_meets_trouble_ends_with_the_result_it_had(
    tmp_path: Path,
    server: LwM2MTestServer,
    package: bytes,
    cuts: tuple[int, ...],
    result: int,
) -> None:
    async with updatable(tmp_path, server, "endpoints") as up:
        if cuts:
            assert up.world.bluez is not None
            await up.world.bluez.smp_cut_at(ADDRESS, *cuts)
        assert await up.fw.write(0, package, OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        assert await up.fw.execute() == Code.CHANGED
        await up.fw.until(IDLE, result, timeout=UPDATE_TIMEOUT)
        held = await up.node()
        assert held["cuts"] == len(cuts)
        if result == 1:
            assert held["primary"] == hashlib.sha256(package).hexdigest()
            assert held["received"] == len(package)  # resumed: no byte sent twice
        else:
            assert held["version"] == version_of(RUNNING) and held["confirmed"]
            assert await firmware_version(up.fw) == version_of(RUNNING)


async def test_the_firmware_option_is_kept_with_the_pairing(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """Restarted, the gateway still offers the node's /5 and updates it."""
    package = image((5, 0, 0, 0), 3_000)
    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.daemon.stop() == 0
        daemon = await up.world.start_daemon(
            server.uri, endpoint=ENDPOINT, gateway='exposure = "gateway"'
        )
        after = await FirmwareView.of_node(server, daemon, ENDPOINT, NODE, "gateway")
        async with after.watching():
            assert await after.write(0, package, OPAQUE) == Code.CHANGED
            await after.until(DOWNLOADED, 0)
            assert await after.execute() == Code.CHANGED
            await after.until(IDLE, 1, timeout=UPDATE_TIMEOUT)
        assert (await up.node())["version"] == version_of(package)


@pytest.mark.parametrize(
    ("received", "boots"),
    [(4_000, 0), (len(RESTART_PACKAGE), 1)],
    ids=["mid-upload", "booted-not-confirmed"],
)
async def test_a_gateway_restart_midway_resumes_the_update(
    tmp_path: Path, server: LwM2MTestServer, received: int, boots: int
) -> None:
    """The daemon stops while the node is being updated (SIGTERM, as systemd restarts it):
    mid-upload, or once the node booted the image but before the gateway confirmed it. The
    node is never left without a bootable, confirmed image; the restarted gateway shows the
    server the update under way, resumes it (the upload from the node's offset; a node
    running the image on test is only confirmed: MCUmgr would refuse an upload over the image
    it reverts to), and the server sees it end Idle with Success."""
    package = RESTART_PACKAGE
    async with updatable(tmp_path, server, "gateway") as up:
        assert up.world.bluez is not None
        await up.world.bluez.smp_hold(ADDRESS, received, boots)
        assert await up.fw.write(0, package, OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        assert await up.fw.execute() == Code.CHANGED
        await up.fw.until(UPDATING, 0)
        async with asyncio.timeout(UPDATE_TIMEOUT):
            while not (await up.node())["holding"]:
                await asyncio.sleep(0.05)
        assert await up.daemon.stop() == 0
        held = await up.node()
        assert held["boots"] == boots and held["received"] >= received  # a chunk's worth
        # bootable either way: the old image confirmed, or the new one on test (reverted at
        # the next reset unless confirmed)
        assert held["version"] == version_of(RUNNING if boots == 0 else package)
        await up.world.bluez.smp_release(ADDRESS)
        daemon = await up.world.start_daemon(
            server.uri, endpoint=ENDPOINT, gateway='exposure = "gateway"'
        )
        after = await FirmwareView.of_node(server, daemon, ENDPOINT, NODE, "gateway")
        async with after.watching():
            assert after.states[0] in ((UPDATING, 0), (IDLE, 1))
            await after.until(IDLE, 1, timeout=UPDATE_TIMEOUT)
        held = await up.node()
        assert held["primary"] == hashlib.sha256(package).hexdigest() and held["confirmed"]
        assert held["received"] == len(package)  # resumed: no byte sent twice
        assert held["boots"] == 1
        assert await firmware_version(after) == version_of(package)


async def test_node_show_and_commands_tell_the_progress_of_an_update_under_way(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The node hangs midway through the upload: ``node show`` and ``commands`` of the real
    daemon say how many of the image's bytes it has taken (bytes and %) meanwhile."""
    package = RESTART_PACKAGE
    async with updatable(tmp_path, server, "gateway") as up:
        assert up.world.bluez is not None
        await up.world.bluez.smp_hold(ADDRESS, 4_000)
        assert await up.fw.write(0, package, OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        assert await up.fw.execute() == Code.CHANGED
        async with asyncio.timeout(UPDATE_TIMEOUT):
            while not (await up.node())["holding"]:
                await asyncio.sleep(0.05)
        shown = (await up.daemon.ctl_json("node", "show", NODE))["firmware"]
        sent, total = shown["sent"], shown["total"]
        assert total == len(package) and 0 < sent <= (await up.node())["received"] < total
        assert shown["state"] == "updating" and shown["percent"] == round(100 * sent / total)
        code, out, err = await up.daemon.ctl("commands", NODE)
        assert code == 0, err
        assert f"{sent}/{total} bytes ({shown['percent']}%)" in out, out
        await up.world.bluez.smp_release(ADDRESS)
        await up.fw.until(IDLE, 1, timeout=UPDATE_TIMEOUT)
        assert (await up.node())["primary"] == hashlib.sha256(package).hexdigest()


WAKE: dict[str, Any] = {"awake": 3.0, "asleep": 1.0, "budget": 5_000, "name": "fw-node"}
"""A sleepy node's wake windows: each ends after 3 s or once the node took 5 kB of image
(whichever comes first: on a loaded machine the time may, which only adds windows)."""
SLEEPY_PACKAGE = image((4, 0, 0, 0), 12_000)


async def executed_asleep(up: Updatable, package: bytes, mode: str, http: HttpPackage) -> None:
    """While the node sleeps the server gives the package (a push in the gateway mode, a pull
    in the endpoints mode) and executes Update: the server sees Updating at once, the node
    is asked nothing, and ``bridgectl commands`` lists the update as pending."""
    if mode == "gateway":
        assert await up.fw.write(0, package, OPAQUE) == Code.CHANGED
    else:
        assert await up.fw.write(1, http.url.encode(), TEXT) == Code.CHANGED
    await up.fw.until(DOWNLOADED, 0)
    assert await up.fw.execute() == Code.CHANGED
    await up.fw.until(UPDATING, 0)
    assert (await up.node())["received"] == 0
    pending = await up.daemon.ctl_json("commands", NODE)
    assert [(c["kind"], c["status"], c["path"]) for c in pending] == [
        ("firmware", "pending", "/5/0/2")
    ]


async def history(daemon: Daemon) -> list[dict[str, Any]]:
    """The firmware updates ``bridgectl commands --history`` lists, newest first."""
    ended = await daemon.ctl_json("commands", "--history")
    return [c for c in ended if c["kind"] == "firmware"]


@pytest.mark.parametrize("mode", ["gateway", "endpoints"])
async def test_a_sleepy_node_is_updated_across_its_wake_windows(
    tmp_path: Path, server: LwM2MTestServer, mode: str
) -> None:
    """The node sleeps when Update is executed; the gateway uploads in its wake windows, each
    cut by the window's end and resumed at the node's offset in the next, then tests, resets
    and confirms: the node runs the image, confirmed, having taken each byte once, in more
    than one window; the server saw the whole walk and the node's new /3/0/3."""
    package = SLEEPY_PACKAGE
    with http_package(HttpPackage(package)) as http:
        async with updatable(tmp_path, server, mode, sleepy=True) as up:
            assert up.world.bluez is not None
            await executed_asleep(up, package, mode, http)
            async with wake_windows(up.world.bluez, ADDRESS, **WAKE):
                await up.fw.until(IDLE, 1, timeout=UPDATE_TIMEOUT)
            held = await up.node()
            assert held["primary"] == hashlib.sha256(package).hexdigest()
            assert held["version"] == version_of(package) and held["confirmed"]
            assert held["received"] == len(package) and held["boots"] == 1  # resumed
            assert len([w for w in held["windows"] if w]) >= 3, held["windows"]
            assert up.fw.went(FULL_WALK if mode == "gateway" else FULL_WALK[1:])
            assert await firmware_version(up.fw) == version_of(package)
            (ended,) = await history(up.daemon)
            assert (ended["status"], ended["firmware"]["result"]) == ("applied", 1)
            assert await up.daemon.ctl_json("commands") == []


async def test_a_sleepy_nodes_update_waits_through_a_gateway_restart(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The gateway restarts while the update waits for the node to wake: the restarted one
    shows the server Updating still, and carries the update out when the node wakes."""
    package = image((4, 1, 0, 0), 6_000)
    with http_package(HttpPackage(package)) as http:
        async with updatable(tmp_path, server, "gateway", sleepy=True) as up:
            assert up.world.bluez is not None
            await executed_asleep(up, package, "gateway", http)
            assert await up.daemon.stop() == 0
            daemon = await up.world.start_daemon(
                server.uri, endpoint=ENDPOINT, gateway='exposure = "gateway"'
            )
            after = await FirmwareView.of_node(server, daemon, ENDPOINT, NODE, "gateway")
            async with after.watching():
                assert after.states[0] == (UPDATING, 0)
                pending = await daemon.ctl_json("commands", NODE)
                assert [(c["kind"], c["status"]) for c in pending] == [("firmware", "pending")]
                async with wake_windows(up.world.bluez, ADDRESS, **WAKE):
                    await after.until(IDLE, 1, timeout=UPDATE_TIMEOUT)
            held = await up.node()
            assert held["primary"] == hashlib.sha256(package).hexdigest() and held["confirmed"]
            assert held["received"] == len(package)


async def test_a_sleepy_node_that_never_wakes_again_expires_its_update(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The node sleeps through the update's time (``[transport.ble] firmware_timeout``): the
    update did not happen, so its command ends expired, as the 802.15.4 sleepy case does
    (test_firmware_154), and the server sees Idle with 8. Object 5 has no result for that:
    its State clause lets a failed Update return to Idle ("If the Update Resource failed,
    the state may return to either Downloaded or Idle depending on the underlying reason of
    update failure"), and of its Update Results only 8 "Firmware update failed" says the
    update was not carried out (10 is a Cancel's, 11 a deferral that stays Downloaded)."""
    package = image((4, 2, 0, 0), 6_000)
    with http_package(HttpPackage(package)) as http:
        async with updatable(
            tmp_path, server, "endpoints", sleepy=True, ble="firmware_timeout = 3"
        ) as up:
            await executed_asleep(up, package, "endpoints", http)
            await up.fw.until(IDLE, 8, timeout=UPDATE_TIMEOUT)
            held = await up.node()
            assert held["received"] == 0 and held["boots"] == 0  # asked nothing
            assert held["version"] == version_of(RUNNING)
            (ended,) = await history(up.daemon)
            assert (ended["node"], ended["path"], ended["status"]) == (NODE, "/5/0/2", "expired")
            assert ended["firmware"]["result"] == 8 and "did not wake" in ended["detail"]
            assert await up.daemon.ctl_json("commands") == []


async def test_bridgectl_updates_a_sleepy_node_showing_its_progress_between_wakes(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """``bridgectl node update NODE FILE`` on a sleepy node: it does not fail while the node
    sleeps, and waits. After one wake window (the node took part of the image, then slept)
    ``node show`` and ``commands`` tell how much (bytes and %); at the end bridgectl says the
    update was applied."""
    package = SLEEPY_PACKAGE
    (tmp_path / "fw.bin").write_bytes(package)
    async with updatable(tmp_path, server, "gateway", sleepy=True) as up:
        bluez = up.world.bluez
        assert bluez is not None
        updating = asyncio.create_task(
            up.daemon.ctl("node", "update", NODE, str(tmp_path / "fw.bin"), timeout=UPDATE_TIMEOUT)
        )
        await up.fw.until(UPDATING, 0)
        assert (await up.node())["received"] == 0
        await bluez.sleep(ADDRESS, False, budget=WAKE["budget"])  # one window, then asleep
        async with on_air(bluez, lambda _n: [(ADDRESS, {"name": "fw-node"})]):
            async with asyncio.timeout(UPDATE_TIMEOUT):
                while not await bluez.asleep(ADDRESS):
                    await asyncio.sleep(0.05)
        shown = (await up.daemon.ctl_json("node", "show", NODE))["firmware"]
        sent, total = shown["sent"], shown["total"]
        assert total == len(package) and 0 < sent <= (await up.node())["received"] < total
        assert shown["state"] == "updating" and shown["percent"] == round(100 * sent / total)
        code, out, err = await up.daemon.ctl("commands", NODE)
        assert code == 0 and f"{sent}/{total} bytes ({shown['percent']}%)" in out, (out, err)
        assert not updating.done()  # bridgectl waits
        async with wake_windows(bluez, ADDRESS, **WAKE):
            code, out, err = await updating
        assert code == 0, err
        assert out.splitlines()[-1] == f"{NODE}: idle, result 1 success, {version_of(package)}"
        held = await up.node()
        assert held["primary"] == hashlib.sha256(package).hexdigest() and held["confirmed"]
        assert held["received"] == len(package)


@pytest.mark.parametrize(
    ("package", "result", "boots"),
    [
        # boots once in a wake window, resets before it is confirmed: MCUboot reverts it
        (image((4, 3, 0, 0), 6_000, crashes=True), 8, 2),
        # its SHA-256 trailer is wrong: the node refuses to mark it for test, no reset
        (image((4, 3, 0, 0), 6_000, corrupt=True), 5, 0),
    ],
    ids=["rolls-back", "fails-its-check"],
)
async def test_a_sleepy_nodes_update_that_fails_on_the_node_ends_failed_with_its_result(
    tmp_path: Path, server: LwM2MTestServer, package: bytes, result: int, boots: int
) -> None:
    """Carried out in the node's wake windows, the update fails on the node: the server sees
    Idle with the node's result, the command ends failed (not expired) with it, and the node
    runs its old image, confirmed."""
    with http_package(HttpPackage(package)) as http:
        async with updatable(tmp_path, server, "endpoints", sleepy=True) as up:
            assert up.world.bluez is not None
            await executed_asleep(up, package, "endpoints", http)
            async with wake_windows(up.world.bluez, ADDRESS, **WAKE):
                await up.fw.until(IDLE, result, timeout=UPDATE_TIMEOUT)
            held = await up.node()
            assert held["version"] == version_of(RUNNING) and held["confirmed"]
            assert held["received"] == len(package) and held["boots"] == boots
            (ended,) = await history(up.daemon)
            assert (ended["status"], ended["firmware"]["result"]) == ("failed", result)
            assert ended["detail"].startswith(f"Update Result {result}")


async def test_a_sleepy_nodes_update_whose_time_ended_while_the_gateway_was_down_expires(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The update's time runs from its Execute, across a restart: the gateway stops while the
    update waits for the node to wake, and starts again once ``firmware_timeout`` has passed
    since. The update has expired (Idle with 8, ``expired``), though the node is awake now:
    it was asked nothing."""
    package = image((4, 4, 0, 0), 6_000)
    ble = "firmware_timeout = 8"
    with http_package(HttpPackage(package)) as http:
        async with updatable(tmp_path, server, "gateway", sleepy=True, ble=ble) as up:
            assert up.world.bluez is not None
            await executed_asleep(up, package, "gateway", http)
            executed = time.time()  # after the Execute
            assert await up.daemon.stop() == 0
            await asyncio.sleep(max(0.0, executed + 8 - time.time()))  # its time passes
            async with wake_windows(up.world.bluez, ADDRESS, **WAKE):
                daemon = await up.world.start_daemon(
                    server.uri, endpoint=ENDPOINT, gateway='exposure = "gateway"', ble=ble
                )
                after = await FirmwareView.of_node(server, daemon, ENDPOINT, NODE, "gateway")
                async with after.watching():
                    await after.until(IDLE, 8, timeout=UPDATE_TIMEOUT)
            assert (await up.node())["received"] == 0
            (ended,) = await history(daemon)
            assert (ended["status"], ended["firmware"]["result"]) == ("expired", 8)
