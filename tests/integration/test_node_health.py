"""A server can tell a dead node from a quiet one: node health through the real gateway.

The real ``Gateway`` (bridged/app.py) in each exposure mode, with a real transport: the
802.15.4 one on a pty with the RCP emulator and emulated LwM2M nodes on its air, or the BLE
one on the real bleak against the BlueZ emulation. The in-repo LwM2M server observes the
node's health resources and the test asserts the notifications it decoded: a node that stops
is unreachable (/3/0/11 Error Code 7; in the instances mode its "<name> available" /3200
instance false) and is cleared when it is heard again; a link that degrades notifies low
signal (/3/0/11 4, /4/0/2 and /4/0/3; in the instances mode its "<name> signal" /3300), and
the gateway's /20 Event Log keeps it all;
a battery that drops notifies /3/0/9, /3/0/20 and /3/0/11 1. The gateway's own /3/0/11 says
when its dongle is unplugged or its Bluetooth adapter lost, until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path as FsPath
from types import MappingProxyType
from typing import Any

import pytest
from aiocoap.numbers.codes import Code
from airs import Rcp, until
from clients import FAST_RETRY, free_udp_port
from emulators.bluez import (  # noqa: F401 (fixtures)
    BluezEmulator,
    bluez_bus,
    bluez_fixture,
    on_air,
)

from bridged.app import Gateway
from bridged.config import Config, GatewaySection, TransportSection
from bridged.engine.client import ServerConfig
from bridged.exposure.endpoints import endpoint_name
from bridged.faults import RADIO_DOWN, SERVER_UNREACHABLE
from bridged.health import (
    BATTERY_LOW,
    LOW_BATTERY,
    LOW_SIGNAL,
    NO_ERROR,
    UNREACHABLE,
    HealthPolicy,
)
from bridged.objects.formats import ContentFormat
from bridged.objects.ids import BATTERY_PATH
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.transports.base import Heard, NodeState
from bridged.transports.ble import bthome
from bridged.transports.ble.scanner import ScannerState
from bridged.transports.ble.transport import node_id as ble_node_id
from bridged.transports.nodes import NodeId, PairedNode
from peers.gateway import FACTS
from peers.lwm2m_server import LwM2MTestServer, decode_senml_cbor

ENDPOINT = "gw-health"
TIMEOUT = 20.0
SILENCE = 2.5
"""Seconds of silence after which a node is unavailable here (``[health.transport]``)."""
MODES = ("instances", "gateway", "endpoints")
Values = dict[str, object]


def config(
    tmp_path: FsPath, server: LwM2MTestServer, mode: str, transport: TransportSection
) -> Config:
    return Config(
        path=tmp_path / "bridged.toml",
        gateway=GatewaySection(
            ENDPOINT,
            exposure=mode,
            state_dir=tmp_path / "state",
            runtime_dir=tmp_path,
            bind_address="127.0.0.1",
        ),
        servers=(ServerConfig(server.uri, request_timeout=5, retry=FAST_RETRY),),
        transports=(transport,),
        health=HealthPolicy(
            minimum=0.1,
            low_battery=20,
            low_signal=-90,
            transports=MappingProxyType({"802154": SILENCE, "ble": SILENCE}),
        ),
    )


@contextlib.asynccontextmanager
async def running(cfg: Config, server: LwM2MTestServer) -> AsyncIterator[Gateway]:
    gw = Gateway(cfg, facts=FACTS)
    await gw.start()
    try:
        await server.next_event("register", timeout=TIMEOUT)
        yield gw
    finally:
        await gw.stop()


class Watch:
    """A server's observation of one path, its first response and notifications decoded."""

    def __init__(self, server: LwM2MTestServer, endpoint: str, path: str) -> None:
        self.path = path
        self.request = server.observe(endpoint, path, accept=ContentFormat.SENML_CBOR)
        self.queue: asyncio.Queue[Values] = asyncio.Queue()

    async def start(self) -> Values:
        async with asyncio.timeout(TIMEOUT):
            first = await self.request.response
        assert first.code.is_successful(), (self.path, first)
        assert self.request.observation is not None
        self.request.observation.register_callback(
            lambda m: self.queue.put_nowait(values(m.payload)), _suppress_deprecation=True
        )
        return values(first.payload)

    async def until(self, wanted: Callable[[Values], bool], what: str) -> Values:
        """The first notification that is ``wanted``."""
        try:
            async with asyncio.timeout(TIMEOUT):
                while not wanted(got := await self.queue.get()):
                    pass
                return got
        except TimeoutError:
            raise AssertionError(f"no notification of {self.path} with {what}") from None

    def cancel(self) -> None:
        assert self.request.observation is not None
        self.request.observation.cancel()


def values(payload: bytes) -> Values:
    return {r.name: r.value for r in decode_senml_cbor(payload)}


def codes(got: Values) -> set[object]:
    return {v for name, v in got.items() if "/3/0/11/" in name}


class Health:
    """Where a mode shows a node's health, and what says it is unreachable there."""

    def __init__(self, gw: Gateway, mode: str, node: NodeId, name: str) -> None:
        self.gw, self.mode, self.node, self.name = gw, mode, node, name
        self.endpoint = endpoint_name(ENDPOINT, node) if mode == "endpoints" else ENDPOINT
        prefix = ""
        if mode == "gateway":
            end_devices: Any = gw.exposure.end_devices
            prefix = f"/{end_devices.prefix(node)}"
        self.prefix = prefix

    def instance(self, oid: int, label: str) -> str:
        """The instances mode's health instance of ``oid`` whose 5750 is ``<name> <label>``."""
        for iid in self.gw.tree.instance_ids(oid):
            if self.gw.tree.get(Path((oid, iid, 5750))) == f"{self.name} {label}":
                return f"/{oid}/{iid}"
        raise AssertionError(f"no /{oid} instance '{self.name} {label}'")

    @property
    def reachability(self) -> str:
        if self.mode == "instances":
            return f"{self.instance(3200, 'available')}/5500"
        return f"{self.prefix}/3/0/11"

    def unreachable(self, got: Values) -> bool | None:
        """True or False as ``got`` says the node is unreachable or not (None: not said)."""
        if self.mode == "instances":
            state = next((v for n, v in got.items() if n.endswith("/5500")), None)
            return None if state is None else state is False
        found = codes(got)
        return (UNREACHABLE in found) if found else None

    async def watch(self, server: LwM2MTestServer, path: str) -> Watch:
        watch = Watch(server, self.endpoint, path)
        await watch.start()
        return watch

    async def registered(self, server: LwM2MTestServer) -> None:
        if self.mode == "endpoints":
            event = await server.next_event("register", timeout=TIMEOUT)
            assert event.endpoint == self.endpoint


# -- 802.15.4 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_an_802154_node_that_stops_is_unreachable_until_heard_and_a_weak_link_notified(
    mode: str, server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    async with Rcp(tmp_path) as rcp:
        section = TransportSection("802154", MappingProxyType(rcp.config(request_timeout=5)))
        async with running(config(tmp_path, server, mode, section), server) as gw:
            await rcp.radio_up()
            node = rcp.node_id(1)
            gw.registry.pair(PairedNode(node, "boiler", "lwm2m"))
            health = Health(gw, mode, node, "boiler")
            await health.registered(server)
            emulated = await rcp.add(1, "boiler")
            await asyncio.wait_for(emulated.registered.wait(), TIMEOUT)

            watch = await health.watch(server, health.reachability)
            rcp.gone.add(emulated.mac)  # the node stops: nothing of it is heard
            await watch.until(lambda v: health.unreachable(v) is True, "the node unreachable")
            rcp.gone.discard(emulated.mac)
            await emulated.update()  # back: it updates its registration
            cleared = await watch.until(lambda v: health.unreachable(v) is False, "cleared")
            if mode != "instances":
                assert codes(cleared) == {NO_ERROR}

            # Its link degrades: the next frames are heard weak.
            if mode == "instances":
                await emulated.update()
                await until(lambda: gw.tree.instance_ids(3300), "the signal instance")
                signal = await health.watch(server, f"{health.instance(3300, 'signal')}/5700")
            else:
                signal = await health.watch(server, f"{health.prefix}/4/0")
            rcp.air.quality[emulated.mac] = (-97, 40)
            await emulated.update()
            weak = await signal.until(lambda v: -97 in v.values(), "the weak RSSI")
            if mode != "instances":
                assert weak[f"{health.prefix}/4/0/3"] == 40  # LQI
                assert weak[f"{health.prefix}/4/0/0"] == 23  # IEEE 802.15.4 network
                await watch.until(lambda v: LOW_SIGNAL in codes(v), "low signal strength")
            watch.cancel()
            signal.cancel()

            # The Event Log keeps what happened, for a server that was not looking.
            read = await server.request(ENDPOINT, Code.GET, "/20/0/4014")
            assert read.code == Code.CONTENT
            lines = read.payload.decode().splitlines()
            raised = f" node {node} raised {UNREACHABLE} not heard for {SILENCE:.0f} s"
            cleared = f" node {node} cleared {UNREACHABLE} "
            assert any(line.endswith(raised) for line in lines), lines
            assert any(cleared in line for line in lines), lines


# -- BLE ----------------------------------------------------------------------------------------


SENSOR = "A4:C1:38:0A:0B:01"


def advertising(
    bluez: BluezEmulator, battery: list[int]
) -> contextlib.AbstractAsyncContextManager[None]:
    """The node advertises (BTHome: battery ``battery[0]``, a temperature) while the block
    runs, as a node does."""

    def adverts(n: int) -> list[tuple[str, dict[str, Any]]]:
        data = bthome.encode([(0x00, n % 256), (0x01, battery[0]), (0x02, 21.5)])
        return [(SENSOR, {"service_data": {"fcd2": data}})]

    return on_air(bluez, adverts, every=0.2)


@pytest.mark.parametrize("mode", MODES)
async def test_a_ble_node_whose_adverts_stop_is_unavailable_and_its_battery_drop_notified(
    mode: str, server: LwM2MTestServer, tmp_path: FsPath, bluez: BluezEmulator
) -> None:
    await bluez.add_adapter("hci0", monitor=False)
    section = TransportSection("ble", MappingProxyType({"adapter": "hci0", "gatt_interval": 3600}))
    async with running(config(tmp_path, server, mode, section), server) as gw:
        ble: Any = gw.transports["ble"]
        await until(lambda: ble.scanner_status.state is ScannerState.SCANNING, "scanning")
        node = ble_node_id(SENSOR)
        gw.registry.pair(PairedNode(node, "porch", "bthome"))
        health = Health(gw, mode, node, "porch")
        await health.registered(server)
        events = gw.events.subscribe(["node.health"])
        battery = [87]
        async with advertising(bluez, battery):
            await until(lambda: Path((3, 0, 9)) in gw.registry.live[node].values, "a battery")
            watch = await health.watch(server, health.reachability)
        # Its adverts stop.
        await watch.until(lambda v: health.unreachable(v) is True, "the node unavailable")
        async with asyncio.timeout(TIMEOUT):  # bridgectl events streams the transition
            while (event := await events.get()) is not None and event.data["available"]:
                pass
        assert event is not None and event.data["id"] == str(node)
        assert event.data["errors"] == [UNREACHABLE]
        shown = gw.node(node)["health"]  # what bridgectl nodes and node show say
        assert (shown["available"], shown["errors"]) == (False, [UNREACHABLE])
        assert gw.status()["nodes"]["unavailable"] == 1
        battery[0] = 12
        if mode == "instances":
            level = await health.watch(server, f"{health.instance(3300, 'battery')}/5700")
        else:
            level = await health.watch(server, f"{health.prefix}/3/0")
        async with advertising(bluez, battery):
            await watch.until(lambda v: health.unreachable(v) is False, "available again")
            low = await level.until(lambda v: 12 in v.values(), "the battery drop")
            if mode != "instances":
                assert low[f"{health.prefix}/3/0/20"] == BATTERY_LOW
                assert LOW_BATTERY in codes(low)
        watch.cancel()
        level.cancel()


async def test_a_report_is_one_health_change_with_what_each_of_its_events_said(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    """A transport tells one report as several events (heard with an RSSI, the node's state
    with its link quality, readings with its battery level); the health model hears them as
    one report (issue 17: an update for each was a third of a report's cost), and what its
    listeners (the exposure, the event hub, the event log) are told once has all of it."""
    section = TransportSection("sim", MappingProxyType({"nodes": 1, "interval": 3600}))
    async with running(config(tmp_path, server, "gateway", section), server) as gw:
        node = NodeId("sim", "0009")  # not on the simulated air: only the test reports it
        gw.registry.pair(PairedNode(node, "cellar", "sim"))
        told: list[tuple[int | None, int | None, int | None]] = []
        gw.nodes_health.listen(
            lambda n, now, before: (
                told.append((now.rssi, now.lqi, now.battery))
                if n == node and before is not None
                else None
            )
        )
        now = time.time()
        gw.registry.heard(Heard(node, now, "cellar", -70, "sim"))
        gw.registry.state(node, NodeState(True, now, rssi=-70, lqi=200))
        gw.registry.readings(node, [Record(BATTERY_PATH, 15, now)])
        await until(lambda: told, "the report told")
        await gw.registry.durable()
        assert told == [(-70, 200, 15)]
        health = gw.nodes_health.health(node)
        assert health is not None and health.errors == (LOW_BATTERY,)


# -- the gateway's own faults -------------------------------------------------------------------


async def test_an_unplugged_dongle_is_a_gateway_fault_until_it_is_back(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    async with Rcp(tmp_path) as rcp:
        section = TransportSection("802154", MappingProxyType(rcp.config()))
        async with running(config(tmp_path, server, "instances", section), server) as gw:
            await rcp.radio_up()
            events = gw.events.subscribe(["gateway.fault"])
            watch = Watch(server, ENDPOINT, "/3/0/11")
            assert codes(await watch.start()) == {NO_ERROR}
            rcp.emulator.unplug()
            down = await watch.until(lambda v: RADIO_DOWN in codes(v), "the radio down")
            assert codes(down) == {RADIO_DOWN}
            [fault] = gw.status()["faults"]  # bridgectl status
            assert (fault["source"], fault["code"]) == ("transport.802154", RADIO_DOWN)
            async with asyncio.timeout(TIMEOUT):
                event = await events.get()
            assert event is not None and event.data["source"] == "transport.802154"
            assert event.data["present"] and "radio down" in event.data["why"]
            rcp.emulator.replug()
            await watch.until(lambda v: codes(v) == {NO_ERROR}, "the fault cleared")
            watch.cancel()


async def test_a_lost_bluetooth_adapter_is_a_gateway_fault_until_it_is_back(
    server: LwM2MTestServer, tmp_path: FsPath, bluez: BluezEmulator
) -> None:
    await bluez.add_adapter("hci0", monitor=False)
    section = TransportSection("ble", MappingProxyType({"adapter": "hci0"}))
    async with running(config(tmp_path, server, "gateway", section), server) as gw:
        ble: Any = gw.transports["ble"]
        await until(lambda: ble.scanner_status.state is ScannerState.SCANNING, "scanning")
        watch = Watch(server, ENDPOINT, "/3/0/11")
        assert codes(await watch.start()) == {NO_ERROR}
        await bluez.remove_adapter("hci0")
        await watch.until(lambda v: codes(v) == {RADIO_DOWN}, "the adapter lost")
        await bluez.add_adapter("hci0", monitor=False)
        await watch.until(lambda v: codes(v) == {NO_ERROR}, "the fault cleared")
        read = await server.request(ENDPOINT, Code.GET, "/20/0/4014")
        lines = read.payload.decode().splitlines()
        assert any(f" transport.ble raised {RADIO_DOWN} scanner on hci0:" in x for x in lines)
        assert any(f" transport.ble cleared {RADIO_DOWN} " in x for x in lines), lines
        watch.cancel()


async def test_a_server_that_cannot_be_reached_is_a_gateway_fault_another_server_reads(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    dead = f"coap://127.0.0.1:{free_udp_port()}"
    cfg = replace(
        config(tmp_path, server, "instances", TransportSection("sim", MappingProxyType({}))),
        servers=(
            ServerConfig(server.uri, short_server_id=1, request_timeout=5, retry=FAST_RETRY),
            ServerConfig(dead, short_server_id=2, request_timeout=0.3, retry=FAST_RETRY),
        ),
    )
    async with running(cfg, server) as gw:
        await until(lambda: f"server {dead}" in gw.faults.present, "the registration failed")
        read = await server.request(ENDPOINT, Code.GET, "/3/0/11", accept=ContentFormat.SENML_CBOR)
        assert codes(values(read.payload)) == {SERVER_UNREACHABLE}
