"""Scanning and pairing BLE nodes through the daemon: a real Gateway with the ``ble`` transport
(the real bleak against the BlueZ emulation), its control socket served in-process, and the
in-repo LwM2M server upstream.

What a user does with ``bridgectl scan`` and ``bridgectl pair ble <MAC> --bindkey HEX``, as
control requests: the scan lists unpaired nodes with their decoded values (and "encrypted" for
what it has no key for), pairing with the key brings the node's values upstream, a wrong key
leaves a clear state with its failure count, and nothing of an unpaired node ever reaches the
server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from aiocoap.numbers.codes import Code
from clients import FAST_RETRY
from emulators.bluez import BluezEmulator, bluez_bus, bluez_fixture, on_air  # noqa: F401

from bridged.app import Gateway
from bridged.config import Config, GatewaySection, TransportSection
from bridged.control import FAILED, INVALID_PARAMS, ControlServer
from bridged.engine.client import ServerConfig
from bridged.objects.formats import ContentFormat
from bridged.transports.ble import bthome
from bridged.transports.ble.scanner import ScannerState
from integration.test_control_socket import Connection
from peers.gateway import FACTS
from peers.lwm2m_server import LwM2MTestServer

TIMEOUT = 20.0
ENDPOINT = "gw-ble"
SENSOR = "A4:C1:38:0A:0B:0C"
STREET = "A4:C1:38:0D:0E:0F"
RUUVI_NODE = "CB:B8:33:4C:88:4F"
GATT = "C4:7C:8D:6A:00:01"
KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
WRONG = bytes(range(16))
# The published Ruuvi RAWv2 vector of tests/unit/test_ruuvi.py.
RUUVI = bytes.fromhex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")
NOT_DECRYPTED = "bind key does not decrypt this node's adverts"


def plain(temperature: float, packet: int) -> dict[str, bytes]:
    return {"fcd2": bthome.encode([(0x00, packet), (0x01, 87), (0x02, temperature), (0x03, 48.5)])}


def sealed(temperature: float, counter: int) -> dict[str, bytes]:
    data = bthome.encode([(0x02, temperature)], bindkey=KEY, address=SENSOR, counter=counter)
    return {"fcd2": data}


async def until(pred: Callable[[], Awaitable[object]], what: str) -> Any:
    """Await ``pred`` until it returns something true (and return that)."""
    try:
        async with asyncio.timeout(TIMEOUT):
            while not (got := await pred()):
                await asyncio.sleep(0.05)
            return got
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@pytest.fixture
async def gateway(
    bluez: BluezEmulator, tmp_path: Path, server: LwM2MTestServer
) -> AsyncIterator[Gateway]:
    await bluez.add_adapter("hci0", monitor=False)
    config = Config(
        path=tmp_path / "bridged.toml",
        gateway=GatewaySection(ENDPOINT, state_dir=tmp_path / "state", runtime_dir=tmp_path),
        servers=(ServerConfig(server.uri, request_timeout=5, retry=FAST_RETRY),),
        transports=(
            TransportSection(
                "ble",
                MappingProxyType({"adapter": "hci0", "gatt_interval": 3600, "connect_timeout": 10}),
            ),
        ),
    )
    gw = Gateway(config, facts=FACTS)
    await gw.start()
    try:
        await server.next_event("register", timeout=TIMEOUT)
        ble: Any = gw.transports["ble"]

        async def scanning() -> bool:
            return bool(ble.scanner_status.state is ScannerState.SCANNING)

        await until(scanning, "scanning")
        yield gw
    finally:
        await gw.stop()


@pytest.fixture
async def conn(gateway: Gateway, tmp_path: Path) -> AsyncIterator[Connection]:
    srv = ControlServer(gateway, tmp_path / "control.sock")
    await srv.start()
    reader, writer = await asyncio.open_unix_connection(str(srv.path))
    try:
        yield Connection(reader, writer)
    finally:
        writer.close()
        await writer.wait_closed()
        await srv.stop()


async def test_scan_lists_unpaired_nodes_with_their_decoded_values(
    bluez: BluezEmulator, conn: Connection
) -> None:
    def adverts(n: int) -> list[tuple[str, dict[str, Any]]]:
        return [
            (SENSOR, {"name": "ATC_0B0C", "rssi": -61, "service_data": plain(21.5, n)}),
            (RUUVI_NODE, {"name": "Ruuvi 884F", "rssi": -70, "manufacturer_data": {0x499: RUUVI}}),
            (STREET, {"rssi": -85, "service_data": sealed(5.0, n)}),
        ]

    async with on_air(bluez, adverts):
        rid = await conn.request("scan", seconds=3)
        streamed: dict[str, dict[str, Any]] = {}
        while "event" in (message := await conn.line(timeout=TIMEOUT)):
            if message["event"] == "node.heard":
                streamed[message["data"]["id"]] = message["data"]
    assert message["id"] == rid
    result = {n["id"]: n for n in message["result"]}
    for heard in (streamed, result):
        bthome_node = heard[f"ble:{SENSOR}"]
        assert (bthome_node["name"], bthome_node["profile"]) == ("ATC_0B0C", "bthome")
        assert bthome_node["values"] == "battery 87 % 21.5 °C 48.5 %"
        assert not bthome_node["paired"] and not bthome_node["encrypted"]
        ruuvi = heard[f"ble:{RUUVI_NODE}"]
        assert ruuvi["profile"] == "ruuvi"
        assert ruuvi["values"].startswith("24.3 °C 53.49 % 1000.44 hPa 0.004/-0.004/1.036 G")
        street = heard[f"ble:{STREET}"]
        # encrypted, and no key for it: said so, rather than no values
        assert (street["profile"], street["values"], street["encrypted"]) == (
            "bthome",
            "encrypted",
            True,
        )
    # strongest first
    assert [n["id"] for n in message["result"]][:2] == [f"ble:{SENSOR}", f"ble:{RUUVI_NODE}"]


async def read_upstream(server: LwM2MTestServer, path: str) -> tuple[Code, str]:
    response = await server.request(ENDPOINT, Code.GET, path, accept=ContentFormat.TEXT)
    return response.code, response.payload.decode()


async def test_pair_with_the_bind_key_brings_values_upstream_and_unpaired_never(
    bluez: BluezEmulator, conn: Connection, gateway: Gateway, server: LwM2MTestServer
) -> None:
    async with on_air(bluez, lambda n: [(STREET, {"service_data": plain(5.0, n)})]):

        async def heard() -> bool:
            return bool((await conn.call("status"))["nodes"]["heard"])

        await until(heard, "the unpaired node to be heard")
        # an unpaired node's values are decoded for scan, but never stored nor sent
        assert (await read_upstream(server, "/3303"))[0] == Code.NOT_FOUND
        status = await conn.call("status")
        assert (status["readings"]["stored"], status["readings"]["unpaired"]) == (0, 0)

        # the address as a user may type it; the key with --bindkey
        paired = await conn.call(
            "pair", node=f"ble:{SENSOR.lower().replace(':', '-')}", bindkey=KEY.hex()
        )
        assert paired["id"] == f"ble:{SENSOR}"
        counter = 0

        async def upstream() -> str | None:
            nonlocal counter
            counter += 1
            await bluez.advertise(SENSOR, service_data=sealed(12.25, counter))
            shown = await conn.call("node.show", node=f"ble:{SENSOR}")
            found = [v["upstream"] for v in shown["values"] if v["path"] == "/3303/0/5700"]
            return found[0] if found and found[0] else None

        path = await until(upstream, "the decrypted temperature upstream")
        assert await read_upstream(server, path) == (Code.CONTENT, "12.25")
        # only the paired node's instance, though the other keeps advertising
        links = await server.request(ENDPOINT, Code.GET, "/3303", accept=ContentFormat.LINK_FORMAT)
        instances = {link for link in links.payload.decode().split(",") if link.count("/") == 2}
        assert instances == {f"</{path.rsplit('/', 1)[0].lstrip('/')}>"}
    status = await conn.call("status")
    assert status["readings"]["unpaired"] == 0


async def test_a_wrong_bind_key_is_a_clear_state_with_its_count_until_repaired(
    bluez: BluezEmulator,
    conn: Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridged")
    node = f"ble:{SENSOR}"
    await conn.call("pair", node=node, bindkey=WRONG.hex(), name="cellar")
    counter = 0

    async def refused_three_times() -> dict[str, Any] | None:
        nonlocal counter
        counter += 1
        await bluez.advertise(SENSOR, service_data=sealed(12.25, counter))
        shown: dict[str, Any] = await conn.call("node.show", node=node)
        return shown if shown["decrypt_failures"] >= 3 else None

    shown = await until(refused_three_times, "three decrypt failures")
    assert shown["problem"] == NOT_DECRYPTED
    assert shown["values"] == []
    (listed,) = await conn.call("nodes")
    assert (listed["problem"], listed["decrypt_failures"]) == (
        NOT_DECRYPTED,
        shown["decrypt_failures"],
    )
    told = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert told == [f"{node}: {NOT_DECRYPTED} (told once)"]
    assert KEY.hex() not in caplog.text and WRONG.hex() not in caplog.text

    # pairing again with the right key recovers: values, no problem, the count restarts
    await conn.call("pair", node=node, bindkey=KEY.hex())

    async def recovered() -> dict[str, Any] | None:
        nonlocal counter
        counter += 1
        await bluez.advertise(SENSOR, service_data=sealed(13.5, counter))
        shown: dict[str, Any] = await conn.call("node.show", node=node)
        return shown if shown["values"] else None

    shown = await until(recovered, "the decrypted temperature")
    assert (shown["problem"], shown["decrypt_failures"]) == (None, 0)
    assert {v["path"]: v["value"] for v in shown["values"]}["/3303/0/5700"] == 13.5


async def test_pair_refuses_bad_addresses_and_keys(conn: Connection) -> None:
    bad = await conn.error("pair", node="ble:A4:C1:38:0A:0B")
    assert bad["code"] == INVALID_PARAMS and "is not a Bluetooth address" in bad["message"]
    bad = await conn.error("pair", node=f"ble:{SENSOR}", bindkey="231d39c1")
    assert bad["code"] == INVALID_PARAMS and "16 bytes" in bad["message"]
    assert "231d39c1" not in bad["message"]
    # a bind key given as a plain key is checked by the transport too
    bad = await conn.error("pair", node=f"ble:{SENSOR}", keys={"bindkey": "00ff"})
    assert bad["code"] == INVALID_PARAMS and "16 bytes" in bad["message"]
    bad = await conn.error("pair", node=f"ble:{SENSOR}", options={"firmware": "smp"})
    assert bad["code"] == INVALID_PARAMS and "GATT node" in bad["message"]
    # a sleepy node cannot be kept connected to notify
    notify = {"notify": ["2a6e"]}
    bad = await conn.error("pair", node=f"ble:{GATT}", profile="gatt", sleepy=True, options=notify)
    assert bad["code"] == INVALID_PARAMS and "cannot be kept connected" in bad["message"]
    bad = await conn.error("pair", node="802154:00:12:4b")
    assert bad["code"] == INVALID_PARAMS and "is not an 802.15.4 node address" in bad["message"]
    bad = await conn.error("pair", node="zigbee:1")
    assert bad["code"] == INVALID_PARAMS and "no transport named 'zigbee'" in bad["message"]
    assert await conn.call("nodes") == []
    # an 802.15.4 node (its transport not configured here) gets the id its transport uses
    paired = await conn.call("pair", node="802154:00-12-4B-00-01-02-03-04")
    assert paired["id"] == "802154:00124b0001020304"


async def test_pair_bonds_a_gatt_node_that_needs_it(bluez: BluezEmulator, conn: Connection) -> None:
    await bluez.add_gatt_device(GATT, {"180f": {"2a19": (["read"], b"\x57")}}, name="TH-1")
    await bluez.fail_next("Pair", "org.bluez.Error.AuthenticationFailed")
    failed = await conn.error("pair", node=f"ble:{GATT}", profile="gatt", options={"bond": True})
    assert failed["code"] == FAILED
    assert "bonding" in failed["message"] and "AuthenticationFailed" in failed["message"]
    assert await conn.call("nodes") == []  # not paired
    assert await bluez.device_property(GATT, "Paired") is False

    paired = await conn.call("pair", node=f"ble:{GATT}", profile="gatt", options={"bond": True})
    assert (paired["id"], paired["profile"]) == (f"ble:{GATT}", "gatt")
    assert await bluez.device_property(GATT, "Paired") is True
    assert await bluez.device_property(GATT, "Bonded") is True
