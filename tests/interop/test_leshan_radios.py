"""A node on a real radio transport, seen by Eclipse Leshan 2.0.0-M4 (instances mode): an
802.15.4 LwM2M node through the RCP emulator on a pty, and a BLE sensor with a GATT switch
through the BlueZ emulation (the airs of tests/airs.py; the simulated transport's case runs with
the real daemon in test_leshan_exposure.py).

The gateway here is the daemon's parts in-process (``nodegw.air_gateway``: SQLite, the node
registry, the transport, the instances exposure, node operations) under the real LwM2M client,
because the radios' far sides are emulators this process drives. Leshan reads the temperature
the node measured, observes it (a new measurement is notified), takes it by Send, and its Write
of the node's switch reaches the node: the node's own switch, as the emulator has it, changes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path as FsPath
from typing import Any

import pytest
from airs import SWITCH, TEMPERATURE, AirKind, air_kind_fixture  # noqa: F401 (fixture)
from clients import FAST_RETRY
from emulators.bluez import bluez_bus, bluez_fixture  # noqa: F401 (fixtures)
from nodegw import AirGateway, air_gateway

from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.objects.paths import Path
from bridged.objects.values import Record
from peers.leshan import EventStream, Leshan, leshan_events

pytest_plugins = ["peers.fixtures"]

EP = "gw-leshan-radio"


events = leshan_events()


@pytest.fixture(autouse=True)
def no_shared_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOCOAP_REUSE_PORT", "0")  # no two tests' sockets on one port


@pytest.fixture
async def gw(
    air_kind: AirKind, leshan: Leshan, events: EventStream, tmp_path: FsPath
) -> AsyncIterator[tuple[AirGateway, LwM2MClient]]:
    async with air_gateway(tmp_path, air_kind) as gw:
        client = LwM2MClient(
            gw.tree,
            f"{EP}-{air_kind.kind}",
            ServerConfig(leshan.uri, request_timeout=10.0, retry=FAST_RETRY),
            bind=("127.0.0.1", 0),
            nodes=gw.operations,
        )
        await client.start()
        try:
            await events.next("REGISTRATION", endpoint=f"{EP}-{air_kind.kind}")
            yield gw, client
        finally:
            await client.stop()


def is_send(data: dict[str, Any]) -> bool:
    return bool(data["incoming"]) and data["code"] == "POST" and '"dp"' in data["options"]


@pytest.mark.parametrize("air_kind", ["802154", "ble"], indirect=True)
async def test_a_radio_node_value_up_and_a_write_down(
    gw: tuple[AirGateway, LwM2MClient], leshan: Leshan, events: EventStream, air_kind: AirKind
) -> None:
    gateway, client = gw
    ep = f"{EP}-{air_kind.kind}"
    node = await gateway.air.add(1, "kitchen")
    await gateway.air.measure(node, 18.25)
    temperature = gateway.path(node, TEMPERATURE)
    await events.next("UPDATED", endpoint=ep)
    assert (await leshan.read(ep, temperature, "TLV")).value == 18.25
    assert (await leshan.write_attributes(ep, temperature, pmin=0)).code == "2.04"
    assert (await leshan.observe(ep, temperature, "TLV")).code == "2.05"
    await gateway.air.measure(node, 19.5)
    note = await events.next(
        "NOTIFICATION", endpoint=ep, match=lambda d: d["val"]["value"] == 19.5, timeout=30
    )
    assert note.data["res"] == temperature
    async with leshan.trace(ep) as coap:
        await client.send([Record(Path.parse(temperature), 19.5, time.time())])
        send = await coap.next("COAPLOG", match=is_send)
        answer = await coap.next(
            "COAPLOG", match=lambda d: not d["incoming"] and d["mId"] == send.data["mId"]
        )
        assert answer.data["code"] == "2.04", answer.data
    switch = gateway.path(node, SWITCH)
    assert (await leshan.write_value(ep, switch, True, "TLV")).code == "2.04"
    assert await gateway.air.switch(node) is True, "the node's own switch"
    await leshan.cancel_observe(ep, temperature)
