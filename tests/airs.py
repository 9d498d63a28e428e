"""Nodes on the air of each transport, for the node tests that must hold whatever the radio.

An ``Air`` is one transport with its far side: the simulated transport (``sim``); the 802.15.4
transport on real pyserial with the RCP emulator on the other end of a pty and emulated LwM2M
nodes on its air (``802154``); or the BLE transport on the real bleak against the BlueZ
emulation, with BTHome adverts and a GATT actuator (``ble``). Every air offers the same handle:
put node N on the air and pair it, make it report a temperature, let it sleep or wake, read its
own switch, and make it fail. A test that needs what an air cannot have (``executable``) is
skipped there, with the reason.

Every node has a temperature (its /3303/0/5700) and a switch (/3311/0/5850) that the gateway
can write; every node refuses a write of its colour (/3311/0/5706) with its own error.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any, ClassVar

import pytest
from emulators.bluez import BluezError
from emulators.lwm2m_node import EmulatedNode, RadioAir
from emulators.rcp import RcpEmulator

from bridged.engine.dm import Reply
from bridged.hosting import transport_host
from bridged.objects.builtin import builtin_definitions
from bridged.objects.errors import Forbidden, MethodNotAllowed
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.registry import LiveNode, NodeRegistry
from bridged.store.nodes import NodeId, PairedNode
from bridged.store.readings import Row
from bridged.transports.base import Transport
from bridged.transports.ieee802154.mac import parse_frame
from bridged.transports.simulated import SimulatedNode, SimulatedTransport

log = logging.getLogger(__name__)

TEMPERATURE = Path((3303, 0, 5700))
SWITCH = Path((3311, 0, 5850))
COLOUR = Path((3311, 0, 5706))
"""Writable in the object's definition; every node here refuses it (its own error code)."""
RESET_MIN_MAX = Path((3303, 0, 5605))
"""An executable resource of the nodes that have one (802.15.4)."""
TIMEOUT = 20.0
"""Generous: a loaded 2-core machine, real sockets, a pty and D-Bus."""
PAN = 0xFACE
AIRS = ("sim", "802154", "ble")


async def until(condition: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@dataclass(frozen=True)
class Handed:
    """A reading as the registry handed it over (absolute time, node-local path)."""

    node: NodeId
    path: Path
    value: object
    time: float


class HandedOver:
    """Every reading the registry handed over to the store, in the order the store keeps them
    (what delivery must deliver), with the times the gateway gave them: it follows the
    registry's ``readings_store.append``, as a reading is handed over when it is committed
    (the registry's listeners are told each node's readings of a commit together, not in the
    order the store keeps them)."""

    def __init__(self, registry: NodeRegistry) -> None:
        self.readings: list[Handed] = []
        store = registry.readings_store
        append = store.append

        def kept(rows: Sequence[Row], *, unstored: int = 0) -> int:
            last = append(rows, unstored=unstored)  # refused: raises, nothing was kept
            self.readings += [Handed(node, r.path, r.value, r.time) for node, r in rows]
            return last

        store.append = kept  # type: ignore[method-assign]


class Air(abc.ABC):
    """One transport attached to ``registry`` and the nodes on its air."""

    kind: ClassVar[str]
    keeps_time: ClassVar[bool] = True
    """The node's report carries the time it measured (else the gateway stamps arrival)."""
    executable: ClassVar[str | None] = None
    """Why the nodes have nothing to execute, or None."""

    def __init__(self, registry: NodeRegistry) -> None:
        self.registry = registry
        self.executed: list[tuple[NodeId, str]] = []

    @property
    @abc.abstractmethod
    def transport(self) -> Transport: ...

    @abc.abstractmethod
    async def start(self) -> None:
        """Start the transport (attached to the registry) and its far side."""

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def add(self, index: int, name: str, *, sleepy: bool = False) -> NodeId:
        """Node ``index`` (1..9) on the air, paired as ``name``; returns once the registry has
        its temperature."""

    @abc.abstractmethod
    async def report(self, node: NodeId, value: float, at: float) -> None:
        """The node reports temperature ``value`` measured at ``at``; returns once the registry
        has it."""

    async def measure(self, node: NodeId, value: float) -> None:
        """The node's sensor reads ``value`` now (what a read that reaches it answers)."""
        await self.report(node, value, time.time())

    @abc.abstractmethod
    async def sleep(self, node: NodeId) -> None:
        """A sleepy node falls asleep: its radio is off."""

    @abc.abstractmethod
    async def wake(self, node: NodeId) -> None:
        """A sleepy node wakes and talks to the gateway."""

    @abc.abstractmethod
    async def switch(self, node: NodeId) -> bool:
        """The node's own switch, as the node has it."""

    def out_of_range(self, node: NodeId, gone: bool) -> None:
        """The node stops (or starts again) answering anything."""
        raise NotImplementedError

    def live(self, node: NodeId) -> LiveNode:
        return self.registry.live[node]

    async def reported(self, node: NodeId, value: float, before: Record | None) -> None:
        """Wait until the registry has a new temperature ``value`` of ``node``."""

        def arrived() -> bool:
            live = self.registry.live.get(node)
            now = None if live is None else live.values.get(TEMPERATURE)
            return now is not None and now is not before and now.value == value

        await until(arrived, f"temperature {value} of {node}")


# -- sim ----------------------------------------------------------------------------------------


class _SimNode(SimulatedNode):
    """A simulated node whose temperature can be set (otherwise a function of time)."""

    temperature: float | None = None

    def values(self, now: float) -> list[Record]:
        records = super().values(now)
        if self.temperature is not None:
            records[0] = Record(TEMPERATURE, self.temperature, now)
        return records


class SimAir(Air):
    kind = "sim"
    executable = "the simulated nodes have nothing executable"

    def __init__(self, registry: NodeRegistry, **config: object) -> None:
        super().__init__(registry)
        self.sim = SimulatedTransport({"nodes": 9, "awake": 60, **config}, registry)
        self.sim.nodes = {n.id: _SimNode(n.index, n.sleepy) for n in self.sim.nodes.values()}
        registry.attach(self.sim)

    @property
    def transport(self) -> Transport:
        return self.sim

    async def start(self) -> None:
        """Not started: the nodes report when a test tells them to."""

    async def stop(self) -> None:
        pass

    def node(self, node: NodeId) -> _SimNode:
        found = self.sim.nodes[node]
        assert isinstance(found, _SimNode)
        return found

    async def add(self, index: int, name: str, *, sleepy: bool = False) -> NodeId:
        sim = self.node(NodeId("sim", f"{index:04d}"))
        sim.sleepy = sleepy
        self.registry.pair(PairedNode(sim.id, name, "sim", sleepy=sleepy))
        self.sim.report(sim, time.time())
        return sim.id

    async def report(self, node: NodeId, value: float, at: float) -> None:
        sim = self.node(node)
        sim.temperature = value
        self.sim.report(sim, at)

    async def sleep(self, node: NodeId) -> None:
        self.node(node).last_report = -math.inf

    async def wake(self, node: NodeId) -> None:
        self.sim.report(self.node(node), time.time())

    async def switch(self, node: NodeId) -> bool:
        return self.node(node).switch

    def out_of_range(self, node: NodeId, gone: bool) -> None:
        self.sim.delay = 30.0 if gone else 0.0


# -- 802154 -------------------------------------------------------------------------------------


class Rcp:
    """The far side of the 802.15.4 transport: the RCP emulator on a pty and emulated LwM2M
    nodes on its air. It lives in the test's process; the gateway may live in another."""

    def __init__(self, state: FsPath) -> None:
        self.emulator = RcpEmulator(state / "ttyRCP")
        self.air = RadioAir(self.emulator, PAN)
        self.nodes: dict[NodeId, EmulatedNode] = {}
        self.gone: set[bytes] = set()
        self.air.drop = self._lost

    def config(self, **extra: object) -> dict[str, object]:
        """The ``[transport.802154]`` section of a gateway that opens this dongle."""
        return {"port": str(self.emulator.link), "pan_id": PAN, **extra}

    async def __aenter__(self) -> Rcp:
        await self.emulator.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            async with asyncio.timeout(15):
                for node in self.nodes.values():
                    await node.stop(deregister=False)
        except TimeoutError:
            warnings.warn("emulated 802.15.4 nodes did not stop within 15 s", stacklevel=1)
        await self.emulator.__aexit__(None, None, None)

    def _lost(self, psdu: bytes) -> bool:
        """Frames from or to a node that is out of range are lost."""
        if not self.gone:
            return False
        frame = parse_frame(psdu)
        return frame.src in self.gone or frame.dst in self.gone

    @staticmethod
    def node_id(index: int) -> NodeId:
        return NodeId("802154", f"00124b00000300{index:02x}")

    async def radio_up(self) -> None:
        await self.emulator.wait_until(lambda: self.emulator.raw_stream, timeout=TIMEOUT)

    async def add(
        self, index: int, name: str, *, sleepy: bool = False, **options: Any
    ) -> EmulatedNode:
        """Node ``index`` on the air (``options``: the rest of ``EmulatedNode``'s); it registers
        once the gateway lets it in."""
        node_id = self.node_id(index)
        node = EmulatedNode(bytes.fromhex(node_id.address), name, sleepy=sleepy, **options)
        self.nodes[node_id] = node
        await self.air.add(node)
        return node

    async def send(self, node: NodeId, records: list[Record]) -> None:
        """The node's LwM2M Send; it succeeds (the gateway took the readings) or raises."""
        response = await self.nodes[node].send(records)
        if not response.code.is_successful():
            raise AssertionError(f"Send of {node} answered {response.code}")


class RcpAir(Air):
    kind = "802154"

    def __init__(self, registry: NodeRegistry, state: FsPath) -> None:
        super().__init__(registry)
        self.rcp = Rcp(state)
        self._transport: Transport | None = None

    @property
    def transport(self) -> Transport:
        assert self._transport is not None
        return self._transport

    async def start(self) -> None:
        from bridged.transports.ieee802154.transport import IEEE802154Transport

        await self.rcp.__aenter__()
        config = self.rcp.config(awake_window=0.5, request_timeout=5)
        self._transport = IEEE802154Transport(
            config, self.registry, transport_host(builtin_definitions())
        )
        self.registry.attach(self._transport)
        await self._transport.start()
        await self.rcp.radio_up()

    async def stop(self) -> None:
        try:
            async with asyncio.timeout(15):
                if self._transport is not None:
                    await self._transport.stop()
        except TimeoutError:
            warnings.warn("the 802.15.4 transport did not stop within 15 s", stacklevel=1)
        await self.rcp.__aexit__()

    async def add(self, index: int, name: str, *, sleepy: bool = False) -> NodeId:
        node_id = self.rcp.node_id(index)
        self.registry.pair(PairedNode(node_id, name, "lwm2m", sleepy=sleepy))
        node = await self.rcp.add(index, name, sleepy=sleepy)

        def reset(path: Path, arguments: str) -> None:
            if arguments == "9":
                raise Forbidden("this node refuses that argument")
            self.executed.append((node_id, arguments))

        node.tree.on_execute(3303, 5605, reset)
        write = node.dm.write

        def refuse_colour(
            path: Path, payload: bytes, content_format: int | None, *, replace: bool
        ) -> Reply:
            if COLOUR.contains(path) or path.contains(COLOUR):
                raise MethodNotAllowed("this lamp's colour is fixed")
            return write(path, payload, content_format, replace=replace)

        node.dm.write = refuse_colour  # type: ignore[method-assign]
        await asyncio.wait_for(node.registered.wait(), TIMEOUT)

        def observed() -> bool:
            # Read each time: a node's values map is replaced at its first value (LiveNode).
            values = self.live(node_id).values
            return TEMPERATURE in values and SWITCH in values

        await until(observed, f"{node_id} observed")
        return node_id

    async def report(self, node: NodeId, value: float, at: float) -> None:
        await self.rcp.send(node, [Record(TEMPERATURE, value, at)])

    async def measure(self, node: NodeId, value: float) -> None:
        before = self.live(node).values.get(TEMPERATURE)
        self.rcp.nodes[node].tree.set(TEMPERATURE, value)
        await self.reported(node, value, before)  # the node notified it

    async def sleep(self, node: NodeId) -> None:
        def asleep() -> bool:
            state = self.live(node).state
            return state is not None and not state.reachable

        await until(asleep, f"{node} asleep (its awake window over)")

    async def wake(self, node: NodeId) -> None:
        live = self.live(node)
        before = live.state
        await self.rcp.nodes[node].update()

        def awake() -> bool:
            return live.state is not before and live.state is not None and live.state.reachable

        await until(awake, f"{node} awake")

    async def switch(self, node: NodeId) -> bool:
        return bool(self.rcp.nodes[node].tree.get(SWITCH))

    def out_of_range(self, node: NodeId, gone: bool) -> None:
        eui64 = bytes.fromhex(node.address)
        if gone:
            self.rcp.gone.add(eui64)
        else:
            self.rcp.gone.discard(eui64)


# -- ble ----------------------------------------------------------------------------------------

SWITCH_SERVICE = "0000ffe0-0000-1000-8000-00805f9b34fb"
SWITCH_CHAR = "0000ffe1-0000-1000-8000-00805f9b34fb"


class BleAir(Air):
    kind = "ble"
    keeps_time = False
    executable = "BLE nodes have nothing executable (the transport answers 4.05)"

    def __init__(self, registry: NodeRegistry, bluez: Any) -> None:
        super().__init__(registry)
        self.bluez = bluez
        self._transport: Transport | None = None
        self._packets: dict[NodeId, int] = {}
        self.gatt_ready: set[NodeId] = set()

    @staticmethod
    def address(index: int) -> str:
        return f"A4:C1:38:00:00:{index:02X}"

    @property
    def transport(self) -> Transport:
        assert self._transport is not None
        return self._transport

    async def start(self) -> None:
        from bridged.transports.ble.scanner import ScannerState
        from bridged.transports.ble.transport import BleTransport

        await self.bluez.add_adapter("hci0", monitor=False)
        actuators = [
            {"node": self.address(i), "path": str(SWITCH), "characteristic": SWITCH_CHAR}
            for i in range(1, 10)
        ]
        transport = BleTransport(
            {"adapter": "hci0", "gatt_interval": 3600, "actuators": actuators}, self.registry
        )
        self._transport = transport
        self.registry.attach(transport)
        await transport.start()
        await until(lambda: transport.scanner_status.state is ScannerState.SCANNING, "scanning")

    async def stop(self) -> None:
        if self._transport is not None:
            await self._transport.stop()

    async def add(self, index: int, name: str, *, sleepy: bool = False) -> NodeId:
        from bridged.transports.ble.transport import node_id

        node = node_id(self.address(index))
        self.registry.pair(PairedNode(node, name, "bthome", sleepy=sleepy))
        await self.report(node, 20.0 + index, time.time())
        # The switch is a GATT characteristic of the same node, written on demand.
        await self.bluez.add_gatt_device(
            node.address, {SWITCH_SERVICE: {SWITCH_CHAR: (["read", "write"], b"\x00")}}
        )
        return node

    async def report(self, node: NodeId, value: float, at: float) -> None:
        from bridged.transports.ble import bthome

        packet = self._packets[node] = (self._packets.get(node, -1) + 1) % 256
        data = bthome.encode([(0x00, packet), (0x01, 87), (0x02, value)])
        live = self.registry.live.get(node)
        before = None if live is None else live.values.get(TEMPERATURE)
        assert await self.bluez.advertise(node.address, service_data={"fcd2": data})
        await self.reported(node, value, before)

    async def sleep(self, node: NodeId) -> None:
        """Between two adverts a BLE node is out of reach: nothing to do."""

    async def wake(self, node: NodeId) -> None:
        """It advertises (a reading: the moment to take its commands)."""
        live = self.live(node).values.get(TEMPERATURE)
        await self.report(node, (live.value if live else 20.0) + 0.5, time.time())  # type: ignore[operator]

    async def switch(self, node: NodeId) -> bool:
        try:
            writes = await self.bluez.writes(node.address, SWITCH_CHAR)
        except BluezError as e:
            if "NoSuchCharacteristic" not in str(e):
                raise
            return False  # its GATT objects appear on the first connection: never written
        return bool(writes) and writes[-1] == b"\x01"


@dataclass(frozen=True)
class AirKind:
    """Which air a test runs on, with the BlueZ emulation when it is ``ble``."""

    kind: str
    bluez: Any = None


@pytest.fixture(name="air_kind", params=AIRS)
def air_kind_fixture(request: pytest.FixtureRequest) -> AirKind:
    """Each air in turn (``indirect`` parametrization picks some). A module using it imports
    this (``air_kind_fixture``) and the BlueZ fixtures (``bluez_bus``, ``bluez_fixture``)."""
    kind = request.param
    return AirKind(kind, request.getfixturevalue("bluez") if kind == "ble" else None)


def make_air(kind: str, registry: NodeRegistry, state: FsPath, bluez: Any = None) -> Air:
    if kind == "sim":
        return SimAir(registry)
    if kind == "802154":
        return RcpAir(registry, state)
    if kind == "ble":
        return BleAir(registry, bluez)
    raise ValueError(kind)


def gateway_paths(
    handed: Sequence[Handed], gateway_path: Callable[[NodeId, Path], Path | None]
) -> list[tuple[str, float, object]]:
    """(gateway path, time, value) of the readings that have a gateway path, in order."""
    out = []
    for h in handed:
        target = gateway_path(h.node, h.path)
        if target is not None:
            out.append((str(target), h.time, h.value))
    return out
