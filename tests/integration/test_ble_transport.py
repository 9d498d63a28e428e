"""The ``ble`` transport end to end: the real bleak against the BlueZ emulation, reporting to a
real node registry on SQLite.

Adverts are built with the project's own BTHome encoder and with the published Ruuvi and
ATC/pvvx vectors of the decoder tests; the tests wait for what the registry records rather
than for time to pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path as FsPath
from typing import Any

import pytest
from emulators.bluez import BluezEmulator, GattSpec, bluez_bus, bluez_fixture  # noqa: F401

from bridged.objects.errors import MethodNotAllowed, NotFound, ServiceUnavailable
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.registry import NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeId, NodeStore, PairedNode
from bridged.store.readings import ReadingStore
from bridged.store.secrets import Secret, SecretStore
from bridged.transports.base import transport_class
from bridged.transports.ble import bthome, formats
from bridged.transports.ble.advert_data import ManufacturerData
from bridged.transports.ble.errors import MalformedAdvert
from bridged.transports.ble.measurements import Frame, Measurement
from bridged.transports.ble.scanner import ScannerState
from bridged.transports.ble.transport import BleTransport, node_id

TIMEOUT = 20.0
SENSOR = "A4:C1:38:0A:0B:0C"
OTHER = "A4:C1:38:0D:0E:0F"
GATT = "C4:7C:8D:6A:00:01"
KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
WRONG = bytes(16)
# The published vectors of tests/unit/test_ruuvi.py and tests/unit/test_atc.py.
RUUVI = bytes.fromhex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")
ATC1441 = bytes.fromhex("582d341233dc00e03e490b2c2e")
PVVX = bytes.fromhex("dc3312342d582f09aa173d0b4b7c05")

TEMPERATURE = Path.parse("/3303/0/5700")
HUMIDITY = Path.parse("/3304/0/5700")
BATTERY = Path.parse("/3/0/9")
SWITCH = Path.parse("/3311/0/5850")
SWITCH_CHAR = "0000ffe1-0000-1000-8000-00805f9b34fb"

GATT_SENSOR: GattSpec = {
    "180a": {
        "2a29": (["read"], b"Bridged Labs"),
        "2a24": (["read"], b"TH-1"),
        "2a25": (["read"], b"0042-7"),
        "2a26": (["read"], b"1.4.0"),
    },
    "180f": {"2a19": (["read"], b"\x57")},
    "181a": {
        "2a6e": (["read"], (2134).to_bytes(2, "little", signed=True)),
        "2a6f": (["read"], (4890).to_bytes(2, "little")),
    },
    "0000ffe0-0000-1000-8000-00805f9b34fb": {SWITCH_CHAR: (["read", "write"], b"\x00")},
}


def plain(temperature: float, packet: int) -> dict[str, bytes]:
    return {"fcd2": bthome.encode([(0x00, packet), (0x01, 87), (0x02, temperature), (0x03, 48.5)])}


def sealed(temperature: float, counter: int) -> dict[str, bytes]:
    data = bthome.encode([(0x02, temperature)], bindkey=KEY, address=SENSOR, counter=counter)
    return {"fcd2": data}


async def until(pred: Callable[[], object], what: str) -> None:
    try:
        async with asyncio.timeout(TIMEOUT):
            while not pred():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@pytest.fixture
def registry(tmp_path: FsPath) -> NodeRegistry:
    conn = connect(tmp_path / "state.db")
    readings = ReadingStore(conn)
    readings.add_consumer("server")
    return NodeRegistry(NodeStore(conn), SecretStore(tmp_path / "secrets.json"), readings)


@pytest.fixture
async def ble(bluez: BluezEmulator, registry: NodeRegistry) -> AsyncIterator[Callable[..., Any]]:
    """Starts a transport (attached to the registry) once hci0 scans; stopped at the end."""
    started: list[BleTransport] = []

    async def make(**config: object) -> BleTransport:
        await bluez.add_adapter("hci0", monitor=False)
        transport = BleTransport({"adapter": "hci0", **config}, registry)
        registry.attach(transport)
        started.append(transport)
        await transport.start()
        await until(lambda: transport.scanner_status.state is ScannerState.SCANNING, "scanning")
        return transport

    yield make
    for transport in started:
        await transport.stop()


def stored(registry: NodeRegistry, node: NodeId) -> dict[Path, object]:
    registry.flush()
    return {r.path: r.value for n, r in registry.readings_store.pending("server").rows if n == node}


def values(registry: NodeRegistry, node: NodeId) -> dict[Path, object]:
    return {p: r.value for p, r in registry.live[node].values.items()}


def test_the_entry_point_loads_the_transport() -> None:
    assert transport_class("ble") is BleTransport


async def test_a_paired_bthome_node_reports_readings_and_state(
    bluez: BluezEmulator, registry: NodeRegistry, ble: Callable[..., Any]
) -> None:
    transport = await ble()
    node = node_id(SENSOR.lower())
    registry.pair(PairedNode(node, "kitchen", "bthome"))
    with pytest.raises(ServiceUnavailable):
        await transport.read(node, Path.parse("/3303"))

    assert await bluez.advertise(SENSOR, name="kitchen", rssi=-61, service_data=plain(21.5, 1))
    await until(lambda: TEMPERATURE in registry.live[node].values, "the temperature")
    assert values(registry, node) == {
        BATTERY: 87,
        TEMPERATURE: 21.5,
        Path.parse("/3303/0/5701"): "Cel",
        HUMIDITY: 48.5,
        Path.parse("/3304/0/5701"): "%RH",
    }
    assert stored(registry, node)[TEMPERATURE] == 21.5
    state = registry.live[node].state
    assert state is not None
    assert (state.reachable, state.rssi, state.battery) == (True, -61, 87)
    heard = registry.heard_nodes[node]
    assert (heard.name, heard.rssi, heard.profile) == ("kitchen", -61, "bthome")

    # a repeat of the same packet is dropped; the next one is new data
    assert await bluez.advertise(SENSOR, rssi=-62, service_data=plain(21.5, 1))
    assert await bluez.advertise(SENSOR, rssi=-63, service_data=plain(22.75, 2))
    await until(lambda: values(registry, node)[TEMPERATURE] == 22.75, "the second advert")
    assert registry.live[node].state.rssi == -63  # type: ignore[union-attr]
    assert [r.value for r in await transport.read(node, TEMPERATURE)] == [22.75]
    with pytest.raises(NotFound):
        await transport.read(node, Path.parse("/3315"))


async def test_an_unpaired_node_is_only_heard(
    bluez: BluezEmulator, registry: NodeRegistry, ble: Callable[..., Any]
) -> None:
    transport = await ble()
    node = node_id(OTHER)
    assert await bluez.advertise(OTHER, name="street", rssi=-80, service_data=plain(5.0, 9))
    await until(lambda: node in registry.heard_nodes, "the unpaired node to be heard")
    heard = registry.heard_nodes[node]
    assert heard.profile == "bthome"
    assert {r.path: r.value for r in heard.records}[TEMPERATURE] == 5.0  # what scan shows
    assert registry.unpaired_readings == 0  # never even offered as readings
    assert stored(registry, node) == {}
    with pytest.raises(NotFound):
        await transport.read(node, TEMPERATURE)


async def test_an_encrypted_node_with_its_bind_key(
    bluez: BluezEmulator, registry: NodeRegistry, ble: Callable[..., Any]
) -> None:
    await ble()
    node = node_id(SENSOR)
    registry.pair(PairedNode(node, "cellar", "bthome"), {"bindkey": Secret(KEY)})
    assert await bluez.advertise(SENSOR, service_data=sealed(12.25, 1))
    await until(lambda: TEMPERATURE in registry.live[node].values, "the decrypted temperature")
    assert stored(registry, node)[TEMPERATURE] == 12.25


async def test_a_wrong_bind_key_is_counted_and_told_once(
    bluez: BluezEmulator,
    registry: NodeRegistry,
    ble: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridged.transports.ble.transport")
    transport = await ble()
    node = node_id(SENSOR)
    registry.pair(PairedNode(node, "cellar", "bthome"), {"bindkey": Secret(WRONG)})
    for counter in (1, 2, 3):
        assert await bluez.advertise(SENSOR, service_data=sealed(12.25, counter))
    await until(lambda: transport.decrypt_failures[node] == 3, "three decrypt failures")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        f"ble:{SENSOR}: bind key does not decrypt this node's adverts (told once)"
    ]
    await until(
        lambda: registry.live[node].state.decrypt_failures == 3,  # type: ignore[union-attr]
        "the count in the node's state",
    )
    state = registry.live[node].state
    assert state is not None and state.reachable
    assert state.problem == "bind key does not decrypt this node's adverts"
    assert KEY.hex() not in caplog.text and WRONG.hex() not in caplog.text
    assert registry.live[node].values == {}
    assert stored(registry, node) == {}
    assert registry.heard_nodes[node].profile == "bthome"
    assert registry.heard_nodes[node].records == ()

    # pairing again with the right key: the next frame decrypts
    registry.pair(PairedNode(node, "cellar", "bthome"), {"bindkey": Secret(KEY)})
    assert await bluez.advertise(SENSOR, service_data=sealed(13.5, 4))
    await until(lambda: TEMPERATURE in registry.live[node].values, "the decrypted temperature")
    assert values(registry, node)[TEMPERATURE] == 13.5
    state = registry.live[node].state
    assert state is not None and (state.problem, state.decrypt_failures) == (None, 0)
    assert transport.decrypt_failures[node] == 0


@pytest.mark.parametrize(
    ("advert", "expected"),
    [
        (
            {"manufacturer_data": {0x0499: RUUVI}},
            {TEMPERATURE: 24.3, HUMIDITY: 53.49, Path.parse("/3315/0/5700"): 1000.44},
        ),
        ({"service_data": {"181a": ATC1441}}, {TEMPERATURE: 22.4, HUMIDITY: 62, BATTERY: 73}),
        ({"service_data": {"181a": PVVX}}, {TEMPERATURE: 23.51, HUMIDITY: 60.58, BATTERY: 75}),
    ],
    ids=["ruuvi", "atc1441", "pvvx"],
)
async def test_ruuvi_and_atc_pvvx_adverts(
    bluez: BluezEmulator,
    registry: NodeRegistry,
    ble: Callable[..., Any],
    advert: dict[str, Any],
    expected: dict[Path, object],
) -> None:
    await ble()
    node = node_id(SENSOR)
    registry.pair(PairedNode(node, "attic", "sensor"))
    assert await bluez.advertise(SENSOR, **advert)
    await until(lambda: TEMPERATURE in registry.live[node].values, "the readings")
    got = values(registry, node)
    assert {p: got[p] for p in expected} == expected


class CellarFormat:
    """A test-only advert format: a temperature (s16 LE, 0.01 °C) as manufacturer data of
    0xFFFF, the company ID the Bluetooth SIG keeps for tests; 3 bytes are another format."""

    name = "cellar"
    where = ManufacturerData(0xFFFF)

    def decode(self, data: bytes, address: str, bindkey: bytes | None) -> Frame | None:
        if len(data) == 3:
            return None
        if len(data) != 2:
            raise MalformedAdvert(f"a cellar advert is 2 bytes, not {len(data)}")
        value = int.from_bytes(data, "little", signed=True) / 100
        return Frame((Measurement("temperature", value, "Cel"),))


async def test_a_registered_advert_format_is_decoded_from_the_air(
    bluez: BluezEmulator,
    registry: NodeRegistry,
    ble: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The extension point: a format registered in ``formats.FORMATS`` (here by the test) is
    asked by the real scanner path, for its readings and for what it refuses."""
    monkeypatch.setattr(formats, "FORMATS", (*formats.FORMATS, CellarFormat()))
    transport = await ble()
    node, other = node_id(SENSOR), node_id(OTHER)
    registry.pair(PairedNode(node, "cellar", "cellar"))
    registry.pair(PairedNode(other, "shed", "cellar"))
    reading = (-1234).to_bytes(2, "little", signed=True)
    assert await bluez.advertise(SENSOR, manufacturer_data={0xFFFF: reading})
    await until(lambda: TEMPERATURE in registry.live[node].values, "the temperature")
    assert stored(registry, node) == {TEMPERATURE: -12.34, Path.parse("/3303/0/5701"): "Cel"}
    assert registry.heard_nodes[node].profile == "cellar"

    assert await bluez.advertise(OTHER, manufacturer_data={0xFFFF: b"\x01"})
    await until(lambda: transport.malformed[other] == 1, "the malformed advert to be counted")
    assert registry.heard_nodes[other].profile == "cellar"  # refused, still heard as a cellar
    assert await bluez.advertise(OTHER, rssi=-75, manufacturer_data={0xFFFF: bytes(3)})
    await until(lambda: registry.heard_nodes[other].rssi == -75, "the declined advert")
    assert registry.heard_nodes[other].profile is None  # declined: no format knows it
    assert stored(registry, other) == {}


async def test_an_advert_only_node_cannot_be_written_or_executed(
    registry: NodeRegistry, ble: Callable[..., Any]
) -> None:
    transport = await ble()
    node = node_id(SENSOR)
    registry.pair(PairedNode(node, "kitchen", "bthome"))
    with pytest.raises(MethodNotAllowed) as err:
        await transport.write(node, SWITCH, [Record(SWITCH, True)])
    assert err.value.code == MethodNotAllowed.code
    with pytest.raises(MethodNotAllowed):
        await transport.execute(node, Path.parse("/3/0/4"), "")


async def test_a_gatt_node_is_polled_read_and_written(
    bluez: BluezEmulator, registry: NodeRegistry, ble: Callable[..., Any]
) -> None:
    transport = await ble(
        gatt_interval=3600,
        connect_timeout=10,
        actuators=[{"node": GATT.lower(), "path": str(SWITCH), "characteristic": "ffe1"}],
    )
    await bluez.add_gatt_device(GATT, GATT_SENSOR, name="TH-1")
    node = node_id(GATT)
    registry.pair(PairedNode(node, "hall", "gatt"))
    await until(lambda: TEMPERATURE in registry.live[node].values, "the first poll")
    assert values(registry, node) == {
        Path.parse("/3/0/0"): "Bridged Labs",
        Path.parse("/3/0/1"): "TH-1",
        Path.parse("/3/0/2"): "0042-7",
        Path.parse("/3/0/3"): "1.4.0",
        BATTERY: 87,
        TEMPERATURE: 21.34,
        HUMIDITY: 48.9,
    }
    assert stored(registry, node)[Path.parse("/3/0/0")] == "Bridged Labs"
    assert await bluez.device_property(GATT, "Connected") is False  # polled, not kept

    got = await transport.read(node, Path.parse("/3303"))
    assert [(r.path, r.value) for r in got] == [(TEMPERATURE, 21.34)]

    await transport.write(node, SWITCH, [Record(SWITCH, True)])
    await transport.write(node, Path.parse("/3311/0"), [Record(SWITCH, False)])
    assert await bluez.writes(GATT, SWITCH_CHAR) == [b"\x01", b"\x00"]
    assert values(registry, node)[SWITCH] is False
    with pytest.raises(MethodNotAllowed):
        await transport.write(node, TEMPERATURE, [Record(TEMPERATURE, 20.0)])
    with pytest.raises(MethodNotAllowed):
        await transport.execute(node, SWITCH, "")
    state = registry.live[node].state
    assert state is not None and state.reachable and state.battery == 87


async def test_unpairing_stops_the_readings(
    bluez: BluezEmulator, registry: NodeRegistry, ble: Callable[..., Any]
) -> None:
    transport = await ble()
    node = node_id(SENSOR)
    registry.pair(PairedNode(node, "kitchen", "bthome"))
    registry.unpair(node)
    assert await bluez.advertise(SENSOR, service_data=plain(21.5, 1))
    await until(lambda: node in registry.heard_nodes, "the advert")
    assert registry.unpaired_readings == 0
    assert stored(registry, node) == {}
    with pytest.raises(NotFound):
        await transport.read(node, TEMPERATURE)


async def test_losing_the_adapter_makes_advert_nodes_unreachable(
    bluez: BluezEmulator, registry: NodeRegistry, ble: Callable[..., Any]
) -> None:
    transport = await ble()
    node = node_id(SENSOR)
    registry.pair(PairedNode(node, "kitchen", "bthome"))
    assert await bluez.advertise(SENSOR, rssi=-61, service_data=plain(21.5, 1))
    await until(lambda: registry.live[node].state is not None, "the node's state")
    await bluez.remove_adapter("hci0")
    await until(lambda: not registry.live[node].state.reachable, "the node out of reach")  # type: ignore[union-attr]
    assert transport.scanner_status.state is not ScannerState.SCANNING

    await bluez.add_adapter("hci0", monitor=False)
    await until(lambda: transport.scanner_status.state is ScannerState.SCANNING, "scanning")
    assert await bluez.advertise(SENSOR, rssi=-64, service_data=plain(21.75, 2))
    await until(lambda: registry.live[node].state.reachable, "the node back")  # type: ignore[union-attr]
