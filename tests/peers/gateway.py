"""The engine under test, as the interop and malformed-request tests run it.

One function builds the tree the gateway would serve: the Device and Connectivity Monitoring
objects from ``install_device_objects`` (facts fixed, so values are known), a temperature sensor
(IPSO 3303) with its executable reset, and a probe object that has one writable resource of
every LwM2M type, so that every content format can carry a value of every type in both
directions. ``running_client`` starts the real ``LwM2MClient`` on 127.0.0.1 against a server URI
and stops it (de-registering) on exit.

Executions are recorded in ``Gateway.executed``, a queue the tests await instead of polling.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.device import MachineFacts, install_device_objects
from bridged.engine.registration import EventKind, RegistrationEvent, RetryPolicy
from bridged.engine.sockets import SocketUplink
from bridged.engine.uplink import OpenUdp, UdpUplink
from bridged.objects.builtin import builtin_definitions
from bridged.objects.definitions import (
    Operations,
    ResourceDef,
    ResourceType,
    ValueRange,
    make_object,
)
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import ObjLnk

ENDPOINT = "gw-interop"
FACTS = MachineFacts(
    time=1_700_000_000,
    dt_model="Raspberry Pi 5 Model B Rev 1.0",
    dt_compatible=("raspberrypi,5-model-b", "brcm,bcm2712"),
    dt_serial="10000000abcdef01",
    mem_total_kib=4_000_000,
    mem_available_kib=3_000_000,
    timezone="Europe/Berlin",
    utc_offset=3600,
)

TEMPERATURE = 3303
PROBE = 32771
"""A vendor object taught to the registry, as a user's DDF file would: a writable resource of
each LwM2M type, a multi-instance one and an executable one."""

PROBE_OBJECT = make_object(
    PROBE,
    "Interop Probe",
    [
        ResourceDef(0, "Label", Operations.RW, ResourceType.STRING),
        ResourceDef(1, "Blob", Operations.RW, ResourceType.OPAQUE),
        ResourceDef(
            2, "Level", Operations.RW, ResourceType.INTEGER, range=ValueRange.parse("0..100")
        ),
        ResourceDef(3, "Counter", Operations.RW, ResourceType.UNSIGNED),
        ResourceDef(4, "Ratio", Operations.RW, ResourceType.FLOAT),
        ResourceDef(5, "Enabled", Operations.RW, ResourceType.BOOLEAN),
        ResourceDef(6, "Since", Operations.RW, ResourceType.TIME),
        ResourceDef(7, "Peer", Operations.RW, ResourceType.OBJLNK),
        ResourceDef(8, "Thresholds", Operations.RW, ResourceType.INTEGER, multiple=True),
        ResourceDef(9, "Serial", Operations.R, ResourceType.STRING),
        ResourceDef(10, "Run", Operations.E, ResourceType.NONE),
    ],
)

PROBE_VALUES = {
    0: "probe",
    1: b"\x00\x01\xfe\xff",
    2: 42,
    3: 7,
    4: 0.5,
    5: True,
    6: 1_700_000_123,
    7: ObjLnk(3303, 0),
    8: {0: 10, 1: -20},
    9: "P-1",
}


@dataclass
class Gateway:
    """The tree and what its executable resources were asked to do."""

    tree: ObjectTree
    executed: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)
    """(path, argument text) of every Execute of 3303/x/5605 and 32771/x/10, in order."""
    reboots: asyncio.Queue[None] = field(default_factory=asyncio.Queue)

    def value(self, path: str) -> object:
        return self.tree.get(Path.parse(path))


def gateway() -> Gateway:
    """A fresh gateway tree (see the module docstring)."""
    definitions = builtin_definitions()
    definitions.add(PROBE_OBJECT)
    tree = ObjectTree(definitions)
    gw = Gateway(tree)
    install_device_objects(
        tree,
        FACTS,
        on_reboot=lambda: gw.reboots.put_nowait(None),
        clock=lambda: FACTS.time,  # a clock that stands still, so every value is known
    )
    tree.create_instance(TEMPERATURE, 0, [(5700, 21.5), (5701, "Cel"), (5750, "kitchen")])
    tree.create_instance(PROBE, 0, PROBE_VALUES.items())

    def record(path: Path, arguments: str) -> None:
        gw.executed.put_nowait((str(path), arguments))

    tree.on_execute(TEMPERATURE, 5605, record)
    tree.on_execute(PROBE, 10, record)
    return gw


@contextlib.asynccontextmanager
async def running_client(
    gw: Gateway,
    server_uri: str,
    *,
    endpoint: str = ENDPOINT,
    lifetime: int = 300,
    events: asyncio.Queue[RegistrationEvent] | None = None,
    udp: OpenUdp = UdpUplink.create,
) -> AsyncIterator[LwM2MClient]:
    """Start the real LwM2M client for ``gw`` against ``server_uri`` (its NoSec socket opened
    by ``udp``: a context of its own, or a shared engine's socket); stop it on exit.

    Retries are short (a test server that is not up yet costs milliseconds, not minutes).
    """
    queue: asyncio.Queue[RegistrationEvent] = events if events is not None else asyncio.Queue()
    client = LwM2MClient(
        gw.tree,
        endpoint,
        ServerConfig(
            uri=server_uri,
            lifetime=lifetime,
            # Generous: the peers (node, coap-client) answer slowly on a loaded 2-core machine.
            request_timeout=15.0,
            retry=RetryPolicy(count=3, timer=0.05, sequence_delay=0.2, sequence_count=1),
        ),
        bind=("127.0.0.1", 0),
        on_event=queue.put_nowait,
        udp=udp,
    )
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


async def registration_complete(
    events: asyncio.Queue[RegistrationEvent], timeout: float = 40.0
) -> RegistrationEvent:
    """Wait for the client's next completed Register (the client has the server's answer)."""
    async with asyncio.timeout(timeout):
        while (event := await events.get()).kind is not EventKind.REGISTRATION_COMPLETE:
            pass
    return event


def client_port(client: LwM2MClient) -> int:
    """The UDP port the client's socket is bound to (aiocoap does not report it for port 0)."""
    assert client.sessions, "the client is not started"
    uplink = client.sessions[0].uplink
    if isinstance(uplink, SocketUplink):  # a shared engine's socket
        return int(uplink._socket.sock.getsockname()[1])
    udp = uplink.context.request_interfaces[0].token_interface.message_interface
    return int(udp.transport.get_extra_info("socket").getsockname()[1])
