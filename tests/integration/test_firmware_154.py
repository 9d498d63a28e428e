"""Firmware update of an 802.15.4 node, end to end: the real daemon (a subprocess) with the RCP
emulator on a pty and an emulated LwM2M node (with a /5 of its own, MCUboot-like) on its air;
the in-repo LwM2M server updates the node through the gateway's /5 of it, in the gateway and
endpoints modes. The node pulls the image from the gateway over 6LoWPAN (Block2) or, where it
only takes push, gets it written (Block1); what it received is read from the node itself,
what the server observed from the server."""

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
from control_events import control_events
from emulators.lwm2m_node import FIRST_VERSION, EmulatedNode
from emulators.mcuboot import image, version_of
from emulators.world import Daemon, World, node_eui64
from firmware_servers import HttpPackage, http_package
from firmware_view import (
    DOWNLOADED,
    DOWNLOADING,
    FULL_WALK,
    IDLE,
    OPAQUE,
    TEXT,
    TIMEOUT,
    UPDATING,
    FirmwareView,
)

from peers.lwm2m_server import LwM2MTestServer

ENDPOINT = "gw-fw154"
INDEX = 4
NODE = f"802154:{node_eui64(INDEX).hex()}"
MODES = ("gateway", "endpoints")


@dataclass
class Updatable:
    world: World
    daemon: Daemon
    node: EmulatedNode
    fw: FirmwareView


@contextlib.asynccontextmanager
async def updatable(
    tmp_path: Path,
    server: LwM2MTestServer,
    mode: str,
    *,
    delivery: int = 2,
    sleepy: bool = False,
    radio: str = "",
    rollback: bool = False,
) -> AsyncIterator[Updatable]:
    async with World(tmp_path) as world:
        daemon = await world.start_daemon(
            server.uri, endpoint=ENDPOINT, gateway=f'exposure = "{mode}"', radio=radio
        )
        await daemon.ctl_json("pair", "802154", node_eui64(INDEX).hex(), "--name", "hall")
        node = await world.add_node(
            INDEX, "hall", firmware_delivery=delivery, sleepy=sleepy, rollback=rollback
        )
        await asyncio.wait_for(node.registered.wait(), TIMEOUT)
        view = await FirmwareView.of_node(server, daemon, ENDPOINT, NODE, mode)
        async with view.watching() as fw:
            yield Updatable(world, daemon, node, fw)


@pytest.mark.parametrize(("mode", "delivery"), [("gateway", 0), ("endpoints", 1)])
async def test_a_node_is_updated_over_the_air(
    tmp_path: Path, server: LwM2MTestServer, mode: str, delivery: int
) -> None:
    """Pull (the node fetches the image from the gateway with Block2) in the gateway mode,
    push (the gateway writes it to the node with Block1) in the endpoints mode."""
    package = image((2, 0, 1, 5), 6_000)
    async with updatable(tmp_path, server, mode, delivery=delivery) as up:
        fw = up.fw
        assert await fw.write(0, package, OPAQUE) == Code.CHANGED
        await fw.until(DOWNLOADED, 0)
        registrations = len(up.node.events)
        assert await fw.execute() == Code.CHANGED
        await fw.until(IDLE, 1, timeout=120)
        assert hashlib.sha256(up.node.firmware).digest() == hashlib.sha256(package).digest()
        assert len(up.node.events) > registrations  # it registered again after its reboot
        assert fw.went(FULL_WALK)
        assert (await fw.read(7)).decode() == version_of(package)
        assert up.node.firmware_states[-2:] == [3, 0]  # Updating, then Idle (success)


async def test_a_corrupt_image_fails_its_integrity_check_on_the_node(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    package = image((2, 0, 0, 0), 3_000, corrupt=True)
    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.fw.write(0, package, OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        assert await up.fw.execute() == Code.CHANGED
        await up.fw.until(IDLE, 5, timeout=120)
        assert up.node.package == package  # it had the image: its check refused it
        assert up.node.firmware == b""  # it runs what it ran
        firmware = await up.fw.server.request(up.fw.endpoint, Code.GET, f"{up.fw.prefix}/3/0/3")
        assert firmware.payload.decode() == FIRST_VERSION


async def test_a_node_that_rolls_back_fails_its_update(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The node takes the image, says Success and reboots, but MCUboot boots its old image:
    it registers again with its old /3/0/3, which is no new version to confirm the update.
    The server sees Idle with 8 (Firmware update failed), never Success."""
    package = image((7, 0, 0, 0), 4_000)
    async with updatable(tmp_path, server, "gateway", delivery=0, rollback=True) as up:
        assert await up.fw.write(0, package, OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        registrations = len(up.node.events)
        assert await up.fw.execute() == Code.CHANGED
        await up.fw.until(IDLE, 8, timeout=60)
        assert (IDLE, 1) not in up.fw.states
        assert hashlib.sha256(up.node.package).digest() == hashlib.sha256(package).digest()
        assert up.node.firmware == b""  # it runs what it ran
        assert len(up.node.events) > registrations  # it registered again after its reboot
        firmware = await up.fw.server.request(up.fw.endpoint, Code.GET, f"{up.fw.prefix}/3/0/3")
        assert firmware.payload.decode() == FIRST_VERSION


@pytest.mark.parametrize("delivery", [0, 1])
async def test_a_transfer_cut_on_the_air_goes_on(
    tmp_path: Path, server: LwM2MTestServer, delivery: int
) -> None:
    """Frames between the gateway and the node are lost midway through the image, pulled by
    the node (the blocks it asked for) or pushed by the gateway (one Block1 write, which no
    ``[transport.802154] request_timeout`` cuts short: CoAP resends the lost blocks): the
    transfer goes on, and the node ends running exactly the image, the server seeing
    Downloading, then Idle with Success."""
    package = image((2, 4, 0, 0), 6_000)
    lost: list[bytes] = []
    passed = 0

    def drop(psdu: bytes) -> bool:
        nonlocal passed
        passed += 1
        if passed > 12 and len(lost) < 4 and not up.node.package:  # the image is on its way
            lost.append(psdu)
            return True
        return False

    async with updatable(tmp_path, server, "gateway", delivery=delivery) as up:
        assert await up.fw.write(0, package, OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        assert up.world.air is not None
        up.world.air.drop = drop
        assert await up.fw.execute() == Code.CHANGED
        await up.fw.until(IDLE, 1, timeout=120)
        assert len(lost) == 4
        assert DOWNLOADING in up.node.firmware_states
        assert hashlib.sha256(up.node.firmware).digest() == hashlib.sha256(package).digest()
        assert (await up.fw.read(7)).decode() == version_of(package)


async def test_a_push_the_air_cuts_off_is_a_lost_connection(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """Every frame that carries the image is lost (the node goes out of range as it is
    pushed): the update's time (``firmware_timeout``) ends the transfer, and the server sees
    Idle with Update Result 4 (Connection lost), not 8; the node got nothing."""
    async with updatable(
        tmp_path, server, "gateway", delivery=1, radio="firmware_timeout = 8"
    ) as up:
        assert await up.fw.write(0, image((2, 5, 0, 0), 6_000), OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        assert up.world.air is not None
        up.world.air.drop = lambda psdu: len(psdu) > 100  # a block's fragments, not a read
        assert await up.fw.execute() == Code.CHANGED
        await up.fw.until(IDLE, 4, timeout=60)
        assert up.node.package == b"" and up.node.firmware == b""
        assert up.node.firmware_states == [IDLE]


@pytest.mark.parametrize(("mode", "delivery"), [("gateway", 0), ("endpoints", 1)])
async def test_a_package_the_node_does_not_take_is_an_unsupported_package(
    tmp_path: Path, server: LwM2MTestServer, mode: str, delivery: int
) -> None:
    """An 802.15.4 node judges its own package: one that is no MCUboot image, pulled or
    pushed, it refuses with Update Result 6, which the server sees; it runs what it ran."""
    async with updatable(tmp_path, server, mode, delivery=delivery) as up:
        assert await up.fw.write(0, b"PK\x03\x04" + bytes(3_000), OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        assert await up.fw.execute() == Code.CHANGED
        await up.fw.until(IDLE, 6, timeout=120)
        assert up.node.firmware_states[-2:] == [DOWNLOADING, IDLE]  # then Idle with 6
        assert up.node.package == b"" and up.node.firmware == b""


async def test_a_gateway_restart_midway_keeps_the_servers_view(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The daemon stops while the node is being updated: started again, it shows the server
    the update under way (never Idle with no result, as if nothing had happened), runs it
    again from the package it kept, and the node ends running the image."""
    package = image((3, 3, 0, 0), 4_000)
    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.fw.write(0, package, OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        assert await up.fw.execute() == Code.CHANGED
        await up.fw.until(UPDATING, 0)
        assert await up.daemon.stop() == 0
        await up.world.start_daemon(server.uri, endpoint=ENDPOINT, gateway='exposure = "gateway"')
        async with asyncio.timeout(TIMEOUT):
            while True:
                register = await server.next_event("register")
                if register.endpoint == ENDPOINT:
                    break
        after = FirmwareView(server, ENDPOINT, up.fw.prefix)
        async with after.watching():
            assert after.states[0] in ((UPDATING, 0), (IDLE, 1))
            assert await after.ended(timeout=120) == 1
        assert up.node.firmware == package


READ_DELIVERY = b"\xb15\x010\x019"
"""The Uri-Path options of a GET of /5/0/9 (Delivery Method), as they are in its frame."""


async def test_a_node_that_does_not_answer_at_first_is_asked_again(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The node does not answer the gateway's first read of its /5/0/9 as the update starts
    (its frames lost: a restarted gateway's first exchanges were seen lost so, under load):
    the read is asked again within the update's time (``firmware_timeout``), as the reads of
    its State are, rather than the update failing with 8 at ``request_timeout``."""
    package = image((3, 4, 0, 0), 4_000)
    lost: list[bytes] = []

    def drop(psdu: bytes) -> bool:
        if READ_DELIVERY in psdu and len(lost) < 2:  # the read and its CoAP retransmission
            lost.append(psdu)
            return True
        return False

    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.fw.write(0, package, OPAQUE) == Code.CHANGED
        await up.fw.until(DOWNLOADED, 0)
        assert up.world.air is not None
        up.world.air.drop = drop
        assert await up.fw.execute() == Code.CHANGED
        assert await up.fw.ended(timeout=120) == 1
        assert len(lost) == 2
        assert up.node.firmware == package


async def test_a_package_the_server_names_reaches_the_node(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """Pull twice: the gateway fetches the server's http:// URI, the node the gateway's
    coap:// one (endpoints mode)."""
    package = image((4, 1, 0, 2), 5_000)
    with http_package(HttpPackage(package)) as http:
        async with updatable(tmp_path, server, "endpoints", delivery=0) as up:
            assert await up.fw.write(1, http.url.encode(), TEXT) == Code.CHANGED
            await up.fw.until(DOWNLOADED, 0)
            assert await up.fw.execute() == Code.CHANGED
            await up.fw.until(IDLE, 1, timeout=120)
            assert up.node.firmware == package
            assert up.fw.went(FULL_WALK[1:])


async def test_the_nodes_progress_is_told_as_it_pulls(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """Each block the node asks for moves the update's progress (``firmware`` events, and
    ``node show`` while it runs)."""
    package = image((2, 2, 0, 0), 6_000)
    async with updatable(tmp_path, server, "gateway", delivery=0) as up:
        async with control_events(up.daemon.socket, "firmware") as events:
            assert await up.fw.write(0, package, OPAQUE) == Code.CHANGED
            await up.fw.until(DOWNLOADED, 0)
            assert await up.fw.execute() == Code.CHANGED
            await up.fw.until(IDLE, 1, timeout=120)
            seen = [await asyncio.wait_for(events.get(), TIMEOUT)]
            while (seen[-1]["state"], seen[-1]["result"]) != ("idle", 1):
                seen.append(await asyncio.wait_for(events.get(), TIMEOUT))
        sent = [e["sent"] for e in seen if e["node"] == NODE and e["sent"] is not None]
        assert sent == sorted(sent) and len(set(sent)) > 2 and sent[-1] == len(package)
        shown = await up.daemon.ctl_json("node", "show", NODE)
        assert shown["firmware"]["version"] == "2.2.0+0"


async def test_a_restarted_gateway_shows_the_nodes_5_before_the_node_talks(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with updatable(tmp_path, server, "gateway") as up:
        assert await up.daemon.stop() == 0
        assert up.world.air is not None
        up.world.air.drop = lambda psdu: True  # the node is silent from now on
        daemon = await up.world.start_daemon(
            server.uri, endpoint=ENDPOINT, gateway='exposure = "gateway"'
        )
        assert await daemon.upstream(NODE, "/5/0/3") == f"{up.fw.prefix}/5/0/3"


async def executed_asleep(up: Updatable, package: bytes) -> None:
    """Once the sleepy node sleeps, the server pushes ``package`` and executes Update: the
    server sees Updating at once."""
    async with asyncio.timeout(TIMEOUT):
        while (await up.daemon.ctl_json("node", "show", NODE))["reachable"]:
            await asyncio.sleep(0.2)
    assert await up.fw.write(0, package, OPAQUE) == Code.CHANGED
    await up.fw.until(DOWNLOADED, 0)
    assert await up.fw.execute() == Code.CHANGED
    await up.fw.until(UPDATING, 0)


async def test_a_sleepy_node_is_updated_when_it_wakes(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The node sleeps when Update is executed: the server sees Updating at once, and the
    gateway carries the update out in the node's next wake window."""
    package = image((8, 0, 0, 0), 4_000)
    async with updatable(
        tmp_path, server, "gateway", delivery=0, sleepy=True, radio="awake_window = 2"
    ) as up:
        await executed_asleep(up, package)
        assert up.node.package == b""  # asleep: nothing was asked of it yet
        await up.node.update()  # it wakes
        await up.fw.until(IDLE, 1, timeout=120)
        assert up.node.firmware == package


async def test_one_update_per_node_at_a_time(tmp_path: Path, server: LwM2MTestServer) -> None:
    """While the sleepy node's update waits for its wake (State Updating), neither another
    package nor a URI from the server (4.05) nor a local ``bridgectl node update`` is taken;
    the node, once awake, gets the first package and nothing else."""
    package, other = image((8, 2, 0, 0), 4_000), image((8, 3, 0, 0), 4_000)
    (tmp_path / "other.bin").write_bytes(other)
    async with updatable(
        tmp_path, server, "gateway", delivery=0, sleepy=True, radio="awake_window = 2"
    ) as up:
        await executed_asleep(up, package)
        assert await up.fw.write(0, other, OPAQUE) == Code.METHOD_NOT_ALLOWED
        assert await up.fw.write(1, b"coap://[::1]/other.bin", TEXT) == Code.METHOD_NOT_ALLOWED
        code, _, err = await up.daemon.ctl("node", "update", NODE, str(tmp_path / "other.bin"))
        assert code != 0 and "being updated" in err, err
        assert up.node.package == b""  # nothing went to the node meanwhile
        await up.node.update()  # it wakes
        await up.fw.until(IDLE, 1, timeout=120)
        assert up.node.firmware == package
        assert (await up.fw.read(7)).decode() == version_of(package)


async def history(daemon: Daemon) -> list[dict[str, Any]]:
    """The firmware updates ``bridgectl commands --history`` lists, newest first."""
    ended = await daemon.ctl_json("commands", "--history")
    return [c for c in ended if c["kind"] == "firmware"]


async def test_a_sleepy_node_that_does_not_wake_in_time_expires_its_update(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The node sleeps through the update's time (``firmware_timeout``): the update did not
    happen, rather than failed on the node, so its command ends expired, as a sleepy node's
    write does. Object 5 has no result for that: its State clause lets a failed Update
    return to Idle ("If the Update Resource failed, the state may return to either Downloaded
    or Idle depending on the underlying reason of update failure"), and of its Update Results
    only 8 "Firmware update failed" says the update was not carried out (10 is for "A Cancel
    operation has been executed successfully", 11 for an update the user deferred, which stays
    Downloaded). So the server sees Updating, then Idle with 8; the node was asked nothing."""
    package = image((9, 0, 0, 0), 4_000)
    async with updatable(
        tmp_path,
        server,
        "gateway",
        delivery=0,
        sleepy=True,
        radio="awake_window = 2\nfirmware_timeout = 3",
    ) as up:
        await executed_asleep(up, package)
        pending = await up.daemon.ctl_json("commands")
        assert [(c["kind"], c["status"]) for c in pending] == [("firmware", "pending")]
        await up.fw.until(IDLE, 8)
        assert up.node.package == b"" and up.node.firmware_states == [IDLE]  # asked nothing
        (ended,) = await history(up.daemon)
        assert (ended["node"], ended["path"], ended["status"]) == (NODE, "/5/0/2", "expired")
        assert ended["firmware"]["result"] == 8 and "did not wake" in ended["detail"]
        assert await up.daemon.ctl_json("commands") == []
        code, text, _ = await up.daemon.ctl("commands", "--history")
        assert code == 0 and "expired" in text and "result 8 update failed" in text


async def test_a_sleepy_nodes_update_whose_time_ended_while_the_gateway_was_down_expires(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The update's time (``firmware_timeout``) runs from the server's Execute, across a
    restart: the gateway stops while the update waits for the node to wake and starts again
    once that time has passed. The update has expired (Idle with 8, as above), though the
    node wakes now: it is asked nothing."""
    package = image((9, 1, 0, 0), 4_000)
    radio = "awake_window = 2\nfirmware_timeout = 15"
    async with updatable(tmp_path, server, "gateway", delivery=0, sleepy=True, radio=radio) as up:
        await executed_asleep(up, package)
        executed = time.time()
        assert await up.daemon.stop() == 0
        await asyncio.sleep(max(0.0, executed + 15 - time.time()))  # its time passes
        daemon = await up.world.start_daemon(
            server.uri, endpoint=ENDPOINT, gateway='exposure = "gateway"', radio=radio
        )
        async with asyncio.timeout(TIMEOUT):
            while (await server.next_event("register")).endpoint != ENDPOINT:
                pass
        after = FirmwareView(server, ENDPOINT, up.fw.prefix)
        async with after.watching():
            await up.node.update()  # it wakes, to a gateway that is up
            await after.until(IDLE, 8, timeout=120)
        assert up.node.package == b"" and up.node.firmware_states == [IDLE]  # asked nothing
        (ended,) = await history(daemon)
        assert (ended["status"], ended["firmware"]["result"]) == ("expired", 8)


async def test_ended_updates_are_in_the_command_history_with_their_result(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """Applied (with the version the node then runs), then failed with the node's own
    result (an image failing its integrity check on the node: 5); newest first, and each a
    ``command`` event as it ends."""
    good, corrupt = image((6, 1, 0, 0), 3_000), image((6, 2, 0, 0), 3_000, corrupt=True)
    async with (
        updatable(tmp_path, server, "gateway") as up,
        control_events(up.daemon.socket, "command") as events,
    ):
        for package, result in ((good, 1), (corrupt, 5)):
            assert await up.fw.write(0, package, OPAQUE) == Code.CHANGED
            await up.fw.until(DOWNLOADED, 0)
            assert await up.fw.execute() == Code.CHANGED
            await up.fw.until(IDLE, result, timeout=120)
            told = await asyncio.wait_for(events.get(), TIMEOUT)
            assert (told["kind"], told["firmware"]["result"]) == ("firmware", result)
        failed, applied = await history(up.daemon)
        assert (applied["status"], applied["firmware"]["result"]) == ("applied", 1)
        assert applied["firmware"]["version"] == version_of(good) == "6.1.0+0"
        assert (failed["status"], failed["firmware"]["result"]) == ("failed", 5)
        assert failed["detail"].startswith("Update Result 5")
        assert applied["submitted"] <= applied["finished"] <= failed["submitted"]
        assert up.node.firmware == good  # it runs the good one still
        code, text, _ = await up.daemon.ctl("commands", "--history", NODE)
        assert code == 0 and "applied" in text and "result 5 integrity failure" in text
