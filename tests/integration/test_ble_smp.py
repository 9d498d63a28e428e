"""The BLE transport's SMP updater with the real bleak BlueZ backend, against the BlueZ
emulation's MCUboot node (`emulators.mcuboot` behind the SMP GATT service): what the node
holds and runs afterwards is read from the node."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from emulators.bluez import BluezEmulator, bluez_bus, bluez_fixture  # noqa: F401
from emulators.mcuboot import image, version_of

from bridged.aio import Backoff
from bridged.objects.paths import Path as LwPath
from bridged.objects.values import Record
from bridged.transports.ble.gatt import GattNode, GattPoller
from bridged.transports.ble.smp import SmpUpdater
from bridged.transports.firmware import FirmwareError, FirmwareImage, UpdateResult
from bridged.transports.nodes import NodeId

NODE = "C4:7C:8D:6A:00:05"
NID = NodeId("ble", NODE)
RUNNING = image((1, 0, 0, 0), 2_000)
FAST = Backoff(0.01, 0.05)


@pytest.fixture
def delivered() -> asyncio.Queue[tuple[Record, ...]]:
    return asyncio.Queue()


@pytest.fixture
async def poller(delivered: asyncio.Queue[tuple[Record, ...]]) -> AsyncIterator[GattPoller]:
    async with GattPoller(
        lambda _a, r: delivered.put_nowait(r), connect_timeout=10.0, backoff=FAST
    ) as p:
        yield p


@pytest.fixture
async def node(bluez: BluezEmulator) -> str:
    await bluez.add_adapter("hci0", monitor=False)
    return await bluez.add_smp_device(NODE, RUNNING, name="fw-1")


def package(tmp_path: Path, data: bytes) -> FirmwareImage:
    path = tmp_path / "package.bin"
    path.write_bytes(data)
    updater = SmpUpdater(GattPoller(lambda _a, _r: None), NODE)
    name, version = updater.describe(path)
    digest = hashlib.sha256(data).hexdigest()
    return FirmwareImage(path, len(data), digest, name, version, time.time())


async def test_an_image_is_uploaded_tested_booted_and_confirmed(
    bluez: BluezEmulator, node: str, poller: GattPoller, tmp_path: Path
) -> None:
    data = image((2, 1, 0, 7), 9_000)
    sent: list[tuple[int, int]] = []
    updater = SmpUpdater(poller, NODE)
    version = await updater.update(
        NID, package(tmp_path, data), lambda done, total: sent.append((done, total))
    )
    assert version == version_of(data) == "2.1.0+7"
    held = await bluez.smp_node(NODE)
    assert held["primary"] == hashlib.sha256(data).hexdigest()  # exactly the image's bytes
    assert held["secondary"] == hashlib.sha256(RUNNING).hexdigest()  # the old one, swapped
    assert held["version"] == version and held["confirmed"] and held["boots"] == 1
    assert held["received"] == len(data)
    assert sent[-1] == (len(data), len(data)) and len(sent) > 2
    assert [d for d, _ in sent] == sorted(d for d, _ in sent)


@pytest.mark.parametrize(
    ("data", "result", "boots"),
    [
        # MCUboot boots it once (a test boot); it resets before it is confirmed: reverted
        (image((2, 0, 0, 0), 3_000, crashes=True), UpdateResult.UPDATE_FAILED, 2),
        # its SHA-256 trailer is wrong: MCUmgr refuses to mark it for test, no reset
        (image((2, 0, 0, 0), 3_000, corrupt=True), UpdateResult.INTEGRITY_FAILURE, 0),
    ],
    ids=["rolls-back", "fails-its-check"],
)
async def test_a_node_left_on_its_old_image_fails_the_update(
    bluez: BluezEmulator,
    node: str,
    poller: GattPoller,
    tmp_path: Path,
    data: bytes,
    result: UpdateResult,
    boots: int,
) -> None:
    with pytest.raises(FirmwareError) as failed:
        await SmpUpdater(poller, NODE).update(NID, package(tmp_path, data), lambda _d, _t: None)
    assert failed.value.result == result
    held = await bluez.smp_node(NODE)
    assert held["version"] == version_of(RUNNING) and held["confirmed"]
    assert held["primary"] == hashlib.sha256(RUNNING).hexdigest()
    assert held["boots"] == boots


async def test_a_cut_upload_resumes_from_the_nodes_offset(
    bluez: BluezEmulator, node: str, poller: GattPoller, tmp_path: Path
) -> None:
    data = image((3, 0, 0, 0), 12_000)
    await bluez.smp_cut_at(NODE, 5_000)
    version = await SmpUpdater(poller, NODE).update(
        NID, package(tmp_path, data), lambda _d, _t: None
    )
    assert version == version_of(data)
    held = await bluez.smp_node(NODE)
    assert held["primary"] == hashlib.sha256(data).hexdigest()
    assert held["cuts"] == 1
    # resumed from the node's offset, not started again: no byte was sent twice
    assert held["received"] == len(data)


async def test_a_reset_lost_with_the_link_is_asked_again(
    bluez: BluezEmulator, node: str, poller: GattPoller, tmp_path: Path
) -> None:
    """The link drops as the reset request goes out (as a wake window's end can cut it): the
    node, back, still runs the old image with the new one pending, which is no rollback: it
    is asked to reset again, boots the image once and keeps it."""
    data = image((3, 1, 0, 0), 4_000)
    await bluez.smp_lose_reset(NODE)
    version = await SmpUpdater(poller, NODE).update(
        NID, package(tmp_path, data), lambda _d, _t: None
    )
    assert version == version_of(data)
    held = await bluez.smp_node(NODE)
    assert held["primary"] == hashlib.sha256(data).hexdigest() and held["confirmed"]
    assert held["boots"] == 1


async def test_a_transfer_cut_on_every_connection_is_connection_lost(
    bluez: BluezEmulator, node: str, poller: GattPoller, tmp_path: Path
) -> None:
    data = image((3, 0, 0, 0), 12_000)
    await bluez.smp_cut_at(NODE, 2_000, 4_000)
    updater = SmpUpdater(poller, NODE, attempts=2)
    with pytest.raises(FirmwareError) as failed:
        await updater.update(NID, package(tmp_path, data), lambda _d, _t: None)
    assert failed.value.result == UpdateResult.CONNECTION_LOST
    held = await bluez.smp_node(NODE)
    assert held["version"] == version_of(RUNNING) and held["boots"] == 0


def test_a_file_without_an_mcuboot_header_is_an_unsupported_package(tmp_path: Path) -> None:
    path = tmp_path / "firmware.zip"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(FirmwareError) as refused:
        SmpUpdater(GattPoller(lambda _a, _r: None), NODE).describe(path)
    assert refused.value.result == UpdateResult.UNSUPPORTED_PACKAGE
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(image((1, 0, 0, 0), 3_000)[:1_000])
    with pytest.raises(FirmwareError) as short:
        SmpUpdater(GattPoller(lambda _a, _r: None), NODE).describe(truncated)
    assert short.value.result == UpdateResult.UNSUPPORTED_PACKAGE


async def test_a_poll_during_an_update_waits_for_its_connection(
    bluez: BluezEmulator, node: str, poller: GattPoller, tmp_path: Path
) -> None:
    """BlueZ has one link to a node: a poll's connection would be the update's, and its end
    would cut the upload. The poller connects to a node once at a time."""
    data = image((2, 0, 0, 0), 40_000)
    sent: list[int] = []
    update = asyncio.create_task(
        SmpUpdater(poller, NODE).update(
            NID, package(tmp_path, data), lambda done, _t: sent.append(done)
        )
    )
    while (await bluez.smp_node(NODE))["received"] == 0:
        await asyncio.sleep(0.01)
    records = await poller.poll(NODE)
    assert LwPath((3, 0, 3)) in {r.path for r in records}
    assert await update == version_of(data)
    assert sent == sorted(set(sent)), "the upload went on in one connection, never resumed"


async def test_a_subscribed_node_is_updated_over_its_standing_connection(
    bluez: BluezEmulator,
    poller: GattPoller,
    tmp_path: Path,
    delivered: asyncio.Queue[tuple[Record, ...]],
) -> None:
    await bluez.add_adapter("hci0", monitor=False)
    await bluez.add_smp_device(NODE, RUNNING, {"180f": {"2a19": (["read", "notify"], b"\x57")}})
    poller.add(GattNode(NODE, notify=("2a19",)))
    await asyncio.wait_for(delivered.get(), 20)  # connected and subscribed
    data = image((2, 0, 0, 0), 5_000)
    version = await SmpUpdater(poller, NODE).update(
        NID, package(tmp_path, data), lambda _d, _t: None
    )
    assert version == version_of(data)
    assert (await bluez.smp_node(NODE))["confirmed"]
    # after the node's reset the poller is subscribed again
    battery = LwPath((3, 0, 9))
    async with asyncio.timeout(20):
        while True:
            if await bluez.notify(NODE, "2a19", b"\x21"):
                records = await delivered.get()
                if any(r.path == battery and r.value == 0x21 for r in records):
                    break
            await asyncio.sleep(0.05)


async def test_a_node_without_the_smp_service_fails_the_update(
    bluez: BluezEmulator, poller: GattPoller, tmp_path: Path
) -> None:
    await bluez.add_adapter("hci0", monitor=False)
    await bluez.add_gatt_device(NODE, {"180f": {"2a19": (["read"], b"\x57")}})
    data = image((2, 0, 0, 0), 1_000)
    with pytest.raises(FirmwareError) as failed:
        await SmpUpdater(poller, NODE).update(NID, package(tmp_path, data), lambda _d, _t: None)
    assert failed.value.result == UpdateResult.UPDATE_FAILED
    assert "no MCUmgr SMP service" in str(failed.value)
