"""A transport without a radio: simulated nodes, for the demo and the benchmarks.

Configuration (its section of the config file):

``nodes``     how many nodes are on the simulated air (default 3), ids ``sim:0001`` ...
``interval``  seconds between two reports of one node (default 5)
``sleepy``    how many of those nodes are sleepy (default 0): reachable only for ``awake``
              seconds after each report, like a battery node that wakes to send
``awake``     seconds a sleepy node stays reachable after reporting (default 1)
``delay``     seconds a node takes to answer a read, write or execute (default 0), to try
              what a slow radio does to a server's request

Every node has a temperature (/3303/0/5700) and a humidity (/3304/0/5700) that drift slowly,
and a light switch (/3311/0/5850, writable) so writes can be tried. Unpaired nodes are only
``heard``; paired ones report readings. Every node takes a firmware update (``SimulatedUpdater``):
an MCUboot image, whose version it then runs (/3/0/3), so the /5 walk can be tried.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path as FsPath
from typing import Any

from bridged.aio import cancel_and_wait
from bridged.objects.errors import MethodNotAllowed, NotFound, ServiceUnavailable
from bridged.objects.ids import SINGLE, Device, Ipso, IpsoResource
from bridged.objects.paths import Level, Path
from bridged.objects.values import Record
from bridged.transports.firmware import (
    FirmwareError,
    FirmwareImage,
    FirmwareUpdater,
    Progress,
    UpdateResult,
    mcuboot_header,
)
from bridged.transports.nodes import NodeId, PairedNode, Secret

from .base import (
    Heard,
    NodeState,
    Transport,
    TransportConfigError,
    TransportEvents,
    TransportHost,
    check_keys,
    config_number,
)

TEMPERATURE = Path((Ipso.TEMPERATURE, SINGLE, IpsoResource.SENSOR_VALUE))
HUMIDITY = Path((Ipso.HUMIDITY, SINGLE, IpsoResource.SENSOR_VALUE))
SWITCH = Path((Ipso.LIGHT_CONTROL, SINGLE, IpsoResource.ON_OFF))
FIRMWARE_VERSION = Path((Device.OBJECT, SINGLE, Device.FIRMWARE_VERSION))
OBJECTS: Mapping[int, Sequence[int]] = {
    p.ids[0]: [p.ids[1]] for p in (TEMPERATURE, HUMIDITY, SWITCH)
}
SETTINGS = ("nodes", "interval", "sleepy", "awake", "delay")


def _number(config: Mapping[str, Any], key: str, default: float, minimum: float) -> float:
    return config_number(config.get(key, default), f"simulated.{key}", low=minimum)


class SimulatedNode:
    """One node's state; its readings are a pure function of time, so runs are repeatable.
    Slotted: the benchmarks simulate 10,000 (a dict of 100 bytes each less, issue 17)."""

    __slots__ = ("firmware", "id", "index", "last_report", "sleepy", "switch", "version")

    def __init__(self, index: int, sleepy: bool) -> None:
        self.id = NodeId("sim", f"{index:04d}")
        self.index = index
        self.sleepy = sleepy
        self.switch = False
        self.last_report = -math.inf
        self.firmware = b""
        """The image it runs, once it was updated, and the version it says it runs."""
        self.version = "1.0.0"

    def values(self, now: float) -> list[Record]:
        phase = now / 600 + self.index
        return [
            Record(TEMPERATURE, round(21.0 + 3.0 * math.sin(phase), 2), now),
            Record(HUMIDITY, round(45.0 + 10.0 * math.cos(phase), 1), now),
            Record(SWITCH, self.switch, now),
        ]


class SimulatedUpdater:
    """A simulated node's firmware update: it takes an MCUboot image (its header's version is
    what the node runs afterwards, reported as /3/0/3) and refuses anything else."""

    def __init__(self, transport: SimulatedTransport) -> None:
        self.transport = transport

    def describe(self, path: FsPath) -> tuple[str, str]:
        with path.open("rb") as f:
            header = mcuboot_header(f.read(64))
        if header is None:
            raise FirmwareError(UpdateResult.UNSUPPORTED_PACKAGE, "not an MCUboot image")
        return "", header.version

    async def update(self, node: NodeId, image: FirmwareImage, progress: Progress) -> str:
        sim = self.transport._reachable(node, FIRMWARE_VERSION)
        data = await asyncio.to_thread(image.path.read_bytes)
        header = mcuboot_header(data)
        if header is None or len(data) < header.header_size + header.image_size:
            raise FirmwareError(UpdateResult.INTEGRITY_FAILURE, "the image is cut short")
        await self.transport._answer()
        progress(len(data), len(data))
        sim.firmware, sim.version = data, header.version
        self.transport.events.values(node, [Record(FIRMWARE_VERSION, header.version)])
        return header.version


class SimulatedTransport(Transport):
    name = "sim"

    def __init__(
        self,
        config: Mapping[str, Any],
        events: TransportEvents,
        host: TransportHost | None = None,
    ) -> None:
        super().__init__(config, events, host)
        check_keys(config, SETTINGS, "simulated.")
        # At least one node: the reporting loop has nothing to wait for without one.
        count = int(_number(config, "nodes", 3, 1))
        sleepy = int(_number(config, "sleepy", 0, 0))
        if sleepy > count:
            raise TransportConfigError(f"simulated.sleepy ({sleepy}) is more than nodes ({count})")
        self.interval = _number(config, "interval", 5.0, 0.001)
        self.awake = _number(config, "awake", 1.0, 0.0)
        self.delay = _number(config, "delay", 0.0, 0.0)
        self.nodes = {
            n.id: n for n in (SimulatedNode(i + 1, i >= count - sleepy) for i in range(count))
        }
        self.paired: set[NodeId] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="transport-sim")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def pair(self, node: PairedNode, secrets: Mapping[str, Secret]) -> None:
        self.paired.add(node.id)
        if node.id in self.nodes:
            self.events.objects(node.id, OBJECTS)

    def unpair(self, node: NodeId) -> None:
        self.paired.discard(node)

    def firmware_updater(self, node: NodeId) -> FirmwareUpdater | None:
        return SimulatedUpdater(self) if node in self.nodes else None

    async def _run(self) -> None:
        per_node = self.interval / max(len(self.nodes), 1)
        while True:
            for node in self.nodes.values():
                self.report(node, time.time())
                await asyncio.sleep(per_node)

    def report(self, node: SimulatedNode, now: float) -> None:
        """One report of ``node``: heard by everyone, readings for the core if paired."""
        node.last_report = now
        records = node.values(now)
        self.events.heard(Heard(node.id, now, f"sim-{node.index}", -60, "sim", tuple(records)))
        if node.id in self.paired:
            self.events.state(node.id, NodeState(True, now, rssi=-60, sleepy=node.sleepy))
            self.events.readings(node.id, records)

    def _reachable(self, node_id: NodeId, path: Path) -> SimulatedNode:
        node = self.nodes.get(node_id)
        if node is None or node_id not in self.paired:
            raise NotFound(f"{node_id} is not a paired simulated node")
        if node.sleepy and time.time() - node.last_report > self.awake:
            raise ServiceUnavailable(f"{node_id} is asleep")
        if path.level < Level.OBJECT or path.ids[0] not in (*OBJECTS, FIRMWARE_VERSION.ids[0]):
            raise NotFound(f"{node_id} has no {path}")
        return node

    async def _answer(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)

    async def read(self, node: NodeId, path: Path) -> list[Record]:
        sim = self._reachable(node, path)
        await self._answer()
        now = time.time()
        known = [*sim.values(now), Record(FIRMWARE_VERSION, sim.version, now)]
        return [r for r in known if path.contains(r.path)]

    async def write(self, node: NodeId, path: Path, records: Sequence[Record]) -> None:
        sim = self._reachable(node, path)
        await self._answer()
        for r in records:
            if r.path != SWITCH or not isinstance(r.value, bool):
                raise MethodNotAllowed(f"{r.path} of a simulated node is not writable")
        for r in records:
            sim.switch = bool(r.value)

    async def execute(self, node: NodeId, path: Path, arguments: str) -> None:
        self._reachable(node, path)
        await self._answer()
        raise MethodNotAllowed(f"{path} of a simulated node is not executable")
