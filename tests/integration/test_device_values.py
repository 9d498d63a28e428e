"""Values of the gateway's /3/0 and /4/0 that change with time, as a server reads them and is
notified of them: the clock advances, the free memory and the addresses are the machine's now,
with nothing running to update them while nobody reads (issue 13, item 4)."""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiocoap
import pytest
from aiocoap.numbers.codes import Code
from clients import FAST_RETRY

from bridged import app, build
from bridged.config import Config, GatewaySection
from bridged.engine import device
from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.device import DefaultRoute, MachineFacts, NetInterface, install_device_objects
from bridged.objects import ids
from bridged.objects.builtin import builtin_definitions
from bridged.objects.formats import ContentFormat
from bridged.objects.paths import Path as LwM2MPath
from bridged.objects.tree import ObjectTree
from peers.lwm2m_server import LwM2MTestServer, decode_senml_cbor, decode_tlv

START = 1_700_000_000
ETH = NetInterface("eth0", arp_type=1, up=True, physical=True)


def facts(address: str, mem_available_kib: int) -> MachineFacts:
    router = address.rsplit(".", 1)[0] + ".1"
    return MachineFacts(
        time=START,
        mem_total_kib=1000,
        mem_available_kib=mem_available_kib,
        interfaces=(ETH,),
        addresses=(ipaddress.IPv4Address(address),),
        default_routes=(DefaultRoute("eth0", ipaddress.IPv4Address(router)),),
    )


@dataclass
class Machine:
    """The machine the gateway describes, changed by the test: its clock and its facts."""

    now: float = START
    facts: MachineFacts = field(default_factory=lambda: facts("192.168.1.23", 500))


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Machine:
    monkeypatch.setattr(device, "FACTS_MAX_AGE", 0.0)  # every read reads the machine
    return Machine()


@pytest.fixture
async def client(server: LwM2MTestServer, machine: Machine) -> AsyncIterator[LwM2MClient]:
    tree = ObjectTree(builtin_definitions())
    install_device_objects(
        tree,
        machine.facts,
        on_reboot=lambda: None,
        machine=lambda: machine.facts,
        clock=lambda: machine.now,
    )
    c = LwM2MClient(
        tree,
        "gw-1",
        ServerConfig(uri=server.uri, request_timeout=3.0, retry=FAST_RETRY),
        bind=("127.0.0.1", 0),
    )
    await c.start()
    await server.next_event("register")
    yield c
    await c.stop()


async def read(server: LwM2MTestServer, path: str) -> bytes:
    response = await server.request("gw-1", Code.GET, path)
    assert response.code == Code.CONTENT, response
    return bytes(response.payload)


async def test_current_time_advances_and_comes_back_after_a_write(
    client: LwM2MClient, server: LwM2MTestServer, machine: Machine
) -> None:
    assert await read(server, "/3/0/13") == str(START).encode()
    machine.now = START + 42
    assert await read(server, "/3/0/13") == str(START + 42).encode()
    written = await server.request(
        "gw-1", Code.PUT, "/3/0/13", b"5", content_format=ContentFormat.TEXT
    )
    assert written.code == Code.CHANGED
    machine.now = START + 43
    assert await read(server, "/3/0/13") == str(START + 43).encode(), "the system's clock"


async def test_memory_free_and_connectivity_are_the_machines_now(
    client: LwM2MClient, server: LwM2MTestServer, machine: Machine
) -> None:
    assert await read(server, "/3/0/10") == b"512"  # 500 KiB in kilobytes
    response = await server.request("gw-1", Code.GET, "/4/0", accept=ContentFormat.SENML_CBOR)
    before = {r.name: r.value for r in decode_senml_cbor(bytes(response.payload))}
    assert (before["/4/0/4/0"], before["/4/0/5/0"]) == ("192.168.1.23", "192.168.1.1")
    machine.facts = facts("10.0.0.5", 400)
    assert await read(server, "/3/0/10") == b"409"
    response = await server.request("gw-1", Code.GET, "/4/0", accept=ContentFormat.SENML_CBOR)
    after = {r.name: r.value for r in decode_senml_cbor(bytes(response.payload))}
    assert (after["/4/0/4/0"], after["/4/0/5/0"]) == ("10.0.0.5", "10.0.0.1")


async def test_a_tlv_read_of_an_instance_again_shows_what_changed_since(
    client: LwM2MClient, server: LwM2MTestServer, machine: Machine
) -> None:
    """The gateway keeps an instance's Read and its TLV while nothing in it changes (issue 17):
    a server reading it again decodes the clock and the free memory as they are then, its own
    Write, and a sensor's new reading set on the device side."""
    device_path, sensor = LwM2MPath((ids.Device.OBJECT, 0)), LwM2MPath((ids.Ipso.TEMPERATURE, 0))
    client.tree.create_instance(*sensor.ids, [(ids.IpsoResource.SENSOR_VALUE, 21.5)])

    async def tlv(path: LwM2MPath) -> dict[tuple[int, ...], bytes]:
        response = await server.request("gw-1", Code.GET, str(path), accept=ContentFormat.TLV)
        assert response.code == Code.CONTENT, response
        assert response.opt.content_format == ContentFormat.TLV
        return decode_tlv(bytes(response.payload), path.ids)

    def resource(path: LwM2MPath, rid: int) -> tuple[int, ...]:
        return (*path.ids, rid)

    now, free = (
        resource(device_path, ids.Device.CURRENT_TIME),
        resource(device_path, ids.Device.MEMORY_FREE),
    )
    first = await tlv(device_path)
    assert (first[now], first[free]) == (START.to_bytes(4, "big"), (512).to_bytes(2, "big"))
    assert await tlv(device_path) == first
    machine.now = START + 5
    machine.facts = facts("192.168.1.23", 400)
    moved = await tlv(device_path)
    assert (moved[now], moved[free]) == ((START + 5).to_bytes(4, "big"), (409).to_bytes(2, "big"))
    timezone = device_path.child(ids.Device.TIMEZONE)
    written = await server.request(
        "gw-1", Code.PUT, str(timezone), b"Europe/Paris", content_format=ContentFormat.TEXT
    )
    assert written.code == Code.CHANGED
    assert await tlv(device_path) == {**moved, timezone.ids: b"Europe/Paris"}
    value = resource(sensor, ids.IpsoResource.SENSOR_VALUE)
    assert (await tlv(sensor))[value] == struct.pack(">f", 21.5)
    client.tree.set(sensor.child(ids.IpsoResource.SENSOR_VALUE), 22.25)
    assert (await tlv(sensor))[value] == struct.pack(">f", 22.25)


async def test_an_observation_of_the_clock_is_notified_at_pmax_with_the_time_then(
    client: LwM2MClient, server: LwM2MTestServer, machine: Machine
) -> None:
    written = await server.request("gw-1", Code.PUT, "/3/0/13", query=("pmax=1",))
    assert written.code == Code.CHANGED
    notes: asyncio.Queue[aiocoap.Message] = asyncio.Queue()
    request = server.observe("gw-1", "/3/0/13")
    assert request.observation is not None
    request.observation.register_callback(notes.put_nowait, _suppress_deprecation=True)
    async with asyncio.timeout(10):
        first = await request.response
        assert first.payload == str(START).encode()
        machine.now = START + 7
        assert (await notes.get()).payload == str(START + 7).encode()
    request.observation.cancel()


async def test_the_gateway_reads_its_machine_when_a_server_reads(
    tmp_path: Path, server: LwM2MTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's own wiring: /3/0/10 and /4/0 come from reading the machine at the Read, and
    /3/0/13 from the system clock."""
    monkeypatch.setattr(device, "FACTS_MAX_AGE", 0.0)
    machine = Machine()
    monkeypatch.setattr(build, "read_machine_facts", lambda: machine.facts)
    monkeypatch.setattr(build, "read_memory_available", lambda: machine.facts.mem_available_kib)
    config = Config(
        path=tmp_path / "bridged.toml",
        gateway=GatewaySection("gw-1", state_dir=tmp_path / "state", runtime_dir=tmp_path / "run"),
        servers=(ServerConfig(server.uri, request_timeout=5, retry=FAST_RETRY),),
    )
    gateway = app.Gateway(config)
    await gateway.start()
    try:
        await server.next_event("register")
        first = int(await read(server, "/3/0/13"))
        machine.facts = facts("10.0.0.5", 400)
        assert await read(server, "/3/0/10") == b"409"
        assert await read(server, "/4/0/4/0") == b"10.0.0.5"
        async with asyncio.timeout(10):  # the clock moves on
            while int(await read(server, "/3/0/13")) == first:
                await asyncio.sleep(0.1)
    finally:
        await gateway.stop()
