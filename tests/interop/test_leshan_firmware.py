"""/5 Firmware Update of a node through the gateway, driven by Eclipse Leshan 2.0.0-M4 the way
its demo UI does it: the real daemon in the endpoints mode (Leshan M4 cannot address a gateway's
end devices) over the simulated transport, whose nodes take an MCUboot image. Leshan pushes the
package to the node endpoint's /5/0/0 (Block1) or writes a coap:// Package URI, executes
/5/0/2, and reads State and Update Result until the update has ended. The same, through the
real daemon of an emulated world, for an 802.15.4 node of the RCP emulator and a BLE node of the
BlueZ emulation that runs MCUboot behind SMP, awake or sleepy: what the node then holds is read
from the node."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from emulators.bluez import wake_windows
from emulators.mcuboot import image, version_of
from emulators.world import Daemon, World, ble_unavailable, node_eui64
from firmware_servers import coap_package

from peers.leshan import EventStream, Leshan, leshan_events
from peers.leshan_gateway import link_urls, registered_daemon

pytest_plugins = ["peers.fixtures"]

NODE = "sim:0001"
TIMEOUT = 60.0
UPDATE_TIMEOUT = 120.0
"""Over the emulated radios, the node's own update and reboot take longer."""
SMP_ADDRESS = "C4:7C:8D:6A:00:0A"


events = leshan_events()


async def ended(leshan: Leshan, ep: str, state: int, result: int, timeout: float = TIMEOUT) -> None:
    """Read /5/0/3 and /5/0/5 until they are ``state`` and ``result``."""
    async with asyncio.timeout(timeout):
        while True:
            read = await leshan.read(ep, "/5/0", "TLV")
            assert read.code == "2.05", read.raw
            values = read.resources()
            if (values[3], values[5]) == (state, result):
                return
            await asyncio.sleep(0.1)


async def update(
    leshan: Leshan,
    events: EventStream,
    node_ep: str,
    package: bytes,
    delivery: str,
    uri: str,
    timeout: float = TIMEOUT,
) -> None:
    """The demo UI's walk, once the node endpoint registers with its /5: write the package
    (push) or its ``uri`` (pull), Execute Update, and see the new version in /3/0/3."""
    registration = await events.next("REGISTRATION", endpoint=node_ep, timeout=TIMEOUT)
    assert "/5/0" in link_urls(registration)
    if delivery == "push":
        written = await leshan.write_value(node_ep, "/5/0/0", package.hex(), "OPAQUE")
    else:
        written = await leshan.write_value(node_ep, "/5/0/1", uri, "TEXT")
    assert written.code == "2.04", written.raw
    await ended(leshan, node_ep, 2, 0)
    assert (await leshan.read(node_ep, "/5/0/7", "TEXT")).value == version_of(package)
    executed = await leshan.execute(node_ep, "/5/0/2")
    assert executed.code == "2.04", executed.raw
    await ended(leshan, node_ep, 0, 1, timeout)
    version = await leshan.read(node_ep, "/3/0/3", "TEXT")
    assert version.value == version_of(package), version.raw


@pytest.mark.parametrize("delivery", ["push", "pull"])
async def test_leshan_updates_a_node(
    tmp_path: Path, leshan: Leshan, events: EventStream, delivery: str
) -> None:
    ep = f"gw-leshan-fw-{delivery}"
    package = image((7, 1, 0, 3), 9_000)
    async with (
        registered_daemon(tmp_path, leshan, events, ep, exposure="endpoints") as (daemon, _),
        coap_package(package) as uri,
    ):
        await daemon.call("pair", node=NODE, name="porch")
        await update(leshan, events, f"{ep}:{NODE}", package, delivery, uri)


async def paired(
    world: World, daemon: Daemon, radio: str
) -> tuple[str, Callable[[], Awaitable[str]]]:
    """Pair a node of ``radio``: its id, and what reads the SHA-256 (hex) of the image it runs."""
    if radio == "802154":
        eui64 = node_eui64(5).hex()
        await daemon.ctl_json("pair", "802154", eui64, "--name", "hall")
        node = await world.add_node(5, "hall")

        async def running() -> str:
            return hashlib.sha256(node.firmware).hexdigest()

        return f"802154:{eui64}", running
    assert world.bluez is not None
    bluez = world.bluez
    await daemon.ctl_json("pair", "ble", SMP_ADDRESS, "--firmware", "smp", "--name", "pump")

    async def primary() -> str:
        return str((await bluez.smp_node(SMP_ADDRESS))["primary"])

    return f"ble:{SMP_ADDRESS}", primary


@pytest.mark.parametrize("delivery", ["push", "pull"])
@pytest.mark.parametrize("radio", ["802154", "ble"])
async def test_leshan_updates_a_radio_node(
    tmp_path: Path, leshan: Leshan, events: EventStream, radio: str, delivery: str
) -> None:
    if radio == "ble" and ble_unavailable() is not None:
        pytest.skip(str(ble_unavailable()))
    ep = f"gw-leshan-fw-{radio}-{delivery}"
    package = image((6, 2, 0, 1), 7_000)
    async with World(tmp_path, ble=radio == "ble") as world, coap_package(package) as uri:
        if world.bluez is not None:
            await world.bluez.add_smp_device(SMP_ADDRESS, image((1, 0, 0, 0), 2_000))
        daemon = await world.start_daemon(leshan.uri, endpoint=ep, gateway='exposure = "endpoints"')
        node, running = await paired(world, daemon, radio)
        await update(leshan, events, f"{ep}:{node}", package, delivery, uri, UPDATE_TIMEOUT)
        assert await running() == hashlib.sha256(package).hexdigest()


async def test_leshan_sees_an_smp_update_go_on_across_a_gateway_restart(
    tmp_path: Path, leshan: Leshan, events: EventStream
) -> None:
    """The gateway stops (SIGTERM) once the BLE node booted the image on test, before it was
    confirmed. Restarted, its node endpoint registers again and Leshan reads the update end
    Idle with Success; the node was only confirmed (no second upload, no second boot)."""
    if ble_unavailable() is not None:
        pytest.skip(str(ble_unavailable()))
    ep = "gw-leshan-fw-restart"
    package = image((6, 3, 0, 0), 7_000)
    async with World(tmp_path, ble=True) as world:
        bluez = world.bluez
        assert bluez is not None
        await bluez.add_smp_device(SMP_ADDRESS, image((1, 0, 0, 0), 2_000))
        await bluez.smp_hold(SMP_ADDRESS, len(package), boots=1)  # hangs once it booted it
        options = {"endpoint": ep, "gateway": 'exposure = "endpoints"'}
        daemon = await world.start_daemon(leshan.uri, **options)
        node, _ = await paired(world, daemon, "ble")
        node_ep = f"{ep}:{node}"
        await events.next("REGISTRATION", endpoint=node_ep, timeout=TIMEOUT)
        written = await leshan.write_value(node_ep, "/5/0/0", package.hex(), "OPAQUE")
        assert written.code == "2.04", written.raw
        await ended(leshan, node_ep, 2, 0)
        executed = await leshan.execute(node_ep, "/5/0/2")
        assert executed.code == "2.04", executed.raw
        async with asyncio.timeout(UPDATE_TIMEOUT):
            while not (await bluez.smp_node(SMP_ADDRESS))["holding"]:
                await asyncio.sleep(0.05)
        assert await daemon.stop() == 0
        await bluez.smp_release(SMP_ADDRESS)
        await world.start_daemon(leshan.uri, **options)
        await events.next("REGISTRATION", endpoint=node_ep, timeout=TIMEOUT)
        await ended(leshan, node_ep, 0, 1, UPDATE_TIMEOUT)
        held = await bluez.smp_node(SMP_ADDRESS)
        assert held["primary"] == hashlib.sha256(package).hexdigest() and held["confirmed"]
        assert (held["received"], held["boots"]) == (len(package), 1)
        version = await leshan.read(node_ep, "/3/0/3", "TEXT")
        assert version.value == version_of(package), version.raw


async def test_leshan_updates_a_sleepy_smp_node_across_its_wake_windows(
    tmp_path: Path, leshan: Leshan, events: EventStream
) -> None:
    """The BLE node is paired with ``--sleepy`` and sleeps when Leshan executes Update: Leshan
    reads Updating meanwhile, then, as the node wakes (each window ends once it took 5 kB),
    Idle with Success; the node runs the image, confirmed, uploaded over several windows."""
    if ble_unavailable() is not None:
        pytest.skip(str(ble_unavailable()))
    ep = "gw-leshan-fw-sleepy"
    package = image((6, 4, 0, 0), 12_000)
    async with World(tmp_path, ble=True) as world:
        bluez = world.bluez
        assert bluez is not None
        await bluez.add_smp_device(SMP_ADDRESS, image((1, 0, 0, 0), 2_000))
        await bluez.sleep(SMP_ADDRESS)
        daemon = await world.start_daemon(leshan.uri, endpoint=ep, gateway='exposure = "endpoints"')
        pair = ("pair", "ble", SMP_ADDRESS, "--firmware", "smp", "--sleepy", "--name", "pump")
        await daemon.ctl_json(*pair)
        node_ep = f"{ep}:ble:{SMP_ADDRESS}"
        await events.next("REGISTRATION", endpoint=node_ep, timeout=TIMEOUT)
        written = await leshan.write_value(node_ep, "/5/0/0", package.hex(), "OPAQUE")
        assert written.code == "2.04", written.raw
        await ended(leshan, node_ep, 2, 0)
        executed = await leshan.execute(node_ep, "/5/0/2")
        assert executed.code == "2.04", executed.raw
        await ended(leshan, node_ep, 3, 0)
        assert (await bluez.smp_node(SMP_ADDRESS))["received"] == 0  # asleep: asked nothing
        async with wake_windows(bluez, SMP_ADDRESS, awake=3.0, asleep=1.0, budget=5_000):
            await ended(leshan, node_ep, 0, 1, UPDATE_TIMEOUT)
        held = await bluez.smp_node(SMP_ADDRESS)
        assert held["primary"] == hashlib.sha256(package).hexdigest() and held["confirmed"]
        assert held["received"] == len(package)
        assert len([w for w in held["windows"] if w]) >= 3, held["windows"]
        version = await leshan.read(node_ep, "/3/0/3", "TEXT")
        assert version.value == version_of(package), version.raw


async def test_leshan_updates_a_sleepy_802154_node_when_it_wakes(
    tmp_path: Path, leshan: Leshan, events: EventStream
) -> None:
    """The 802.15.4 node is a queue-mode LwM2M client that sleeps between its wake windows:
    Leshan writes a Package URI, executes Update while the node sleeps and reads Updating
    meanwhile (the node was asked nothing); as the node wakes, the gateway has it pull the
    image, and Leshan reads Idle with Success and the new /3/0/3."""
    ep = "gw-leshan-fw-sleepy-154"
    package = image((6, 5, 0, 0), 6_000)
    async with World(tmp_path) as world, coap_package(package) as uri:
        daemon = await world.start_daemon(
            leshan.uri,
            endpoint=ep,
            gateway='exposure = "endpoints"',
            radio="awake_window = 2",
        )
        eui64 = node_eui64(6).hex()
        await daemon.ctl_json("pair", "802154", eui64, "--name", "cellar")
        node = await world.add_node(6, "cellar", firmware_delivery=0, sleepy=True)
        node_ep = f"{ep}:802154:{eui64}"
        await events.next("REGISTRATION", endpoint=node_ep, timeout=TIMEOUT)
        async with asyncio.timeout(TIMEOUT):  # its wake window ends
            while (await daemon.ctl_json("node", "show", f"802154:{eui64}"))["reachable"]:
                await asyncio.sleep(0.2)
        written = await leshan.write_value(node_ep, "/5/0/1", uri, "TEXT")
        assert written.code == "2.04", written.raw
        await ended(leshan, node_ep, 2, 0)
        executed = await leshan.execute(node_ep, "/5/0/2")
        assert executed.code == "2.04", executed.raw
        await ended(leshan, node_ep, 3, 0)
        assert node.package == b""  # asleep: asked nothing yet
        await node.update()  # it wakes
        await ended(leshan, node_ep, 0, 1, UPDATE_TIMEOUT)
        assert node.firmware == package
        version = await leshan.read(node_ep, "/3/0/3", "TEXT")
        assert version.value == version_of(package), version.raw
