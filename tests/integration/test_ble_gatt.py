"""The GATT poller with the real bleak BlueZ backend, against the BlueZ emulation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from emulators.bluez import FAILED, BluezEmulator, GattSpec, bluez_bus, bluez_fixture  # noqa: F401

from bridged.aio import Backoff
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.transports.base import NodeState
from bridged.transports.ble.gatt import GattFailed, GattNode, GattPoller, GattUnreachable

TIMEOUT = 20.0
NODE = "C4:7C:8D:6A:00:01"
FAST = Backoff(0.01, 0.05)

SENSOR: GattSpec = {
    "180a": {
        "2a29": (["read"], b"Bridged Labs"),
        "2a24": (["read"], b"TH-1"),
        "2a25": (["read"], b"0042-7"),
        "2a26": (["read"], b"1.4.0"),
    },
    "180f": {"2a19": (["read", "notify"], b"\x57")},
    "181a": {
        "2a6e": (["read", "notify"], (2134).to_bytes(2, "little", signed=True)),
        "2a6f": (["read"], (4890).to_bytes(2, "little")),
        "2a6d": (["read"], (1013250).to_bytes(4, "little")),
    },
    # a vendor service: an on/off switch (e.g. backing a 3342 or 3201) and a read-only status
    "0000ffe0-0000-1000-8000-00805f9b34fb": {
        "0000ffe1-0000-1000-8000-00805f9b34fb": (["read", "write"], b"\x00"),
        "0000ffe2-0000-1000-8000-00805f9b34fb": (["read"], b"\x01"),
    },
}
SWITCH = "0000ffe1-0000-1000-8000-00805f9b34fb"
STATUS = "0000ffe2-0000-1000-8000-00805f9b34fb"


def records(*pairs: tuple[str, object]) -> dict[Path, object]:
    return {Path.parse(p): v for p, v in pairs}


EXPECTED = records(
    ("/3/0/0", "Bridged Labs"),
    ("/3/0/1", "TH-1"),
    ("/3/0/2", "0042-7"),
    ("/3/0/3", "1.4.0"),
    ("/3/0/9", 87),
    ("/3303/0/5700", 21.34),
    ("/3304/0/5700", 48.9),
    ("/3315/0/5700", 1013.25),
)


class Sink:
    def __init__(self) -> None:
        self.records: asyncio.Queue[tuple[str, tuple[Record, ...]]] = asyncio.Queue()
        self.states: list[tuple[str, NodeState]] = []

    def on_records(self, address: str, recs: tuple[Record, ...]) -> None:
        self.records.put_nowait((address, recs))

    def on_state(self, address: str, state: NodeState) -> None:
        self.states.append((address, state))

    async def next(self) -> dict[Path, object]:
        _, recs = await asyncio.wait_for(self.records.get(), TIMEOUT)
        return {r.path: r.value for r in recs}


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
async def poller(sink: Sink) -> AsyncIterator[GattPoller]:
    async with GattPoller(
        sink.on_records, on_state=sink.on_state, connect_timeout=10.0, backoff=FAST
    ) as p:
        yield p


@pytest.fixture
async def node(bluez: BluezEmulator) -> str:
    await bluez.add_adapter("hci0", monitor=False)
    return await bluez.add_gatt_device(NODE, SENSOR, name="TH-1")


async def test_poll_reads_device_information_battery_and_ess_then_disconnects(
    bluez: BluezEmulator, node: str, poller: GattPoller, sink: Sink
) -> None:
    got = await poller.poll(NODE)
    assert {r.path: r.value for r in got} == EXPECTED
    assert await sink.next() == EXPECTED
    assert all(r.time is not None for r in got)
    assert await bluez.device_property(NODE, "Connected") is False
    assert await bluez.calls(node, "Disconnect") == 1
    assert [(a, s.reachable, s.sleepy) for a, s in sink.states] == [(NODE, True, True)]


async def test_scheduled_polls_leave_no_idle_connection(
    bluez: BluezEmulator, node: str, poller: GattPoller, sink: Sink
) -> None:
    poller.add(GattNode(NODE, interval=0.05, read=("2a19", "2a6e")))
    for _ in range(3):
        assert await sink.next() == records(("/3/0/9", 87), ("/3303/0/5700", 21.34))
        # delivered after the disconnect: between polls the node is left alone
        assert await bluez.device_property(NODE, "Connected") is False
    assert await bluez.calls(node, "Connect") >= 3


async def test_a_notifying_node_stays_connected_and_subscribed(
    bluez: BluezEmulator, node: str, poller: GattPoller, sink: Sink
) -> None:
    poller.add(GattNode(NODE, notify=("2a6e", "2a19")))
    assert await sink.next() == EXPECTED
    assert await bluez.notify(NODE, "2a6e", (2304).to_bytes(2, "little"))
    assert await sink.next() == records(("/3303/0/5700", 23.04))
    assert await bluez.notify(NODE, "2a19", b"\x56")
    assert await sink.next() == records(("/3/0/9", 86))
    assert await bluez.notify(NODE, "2a6e", b"\x00\x80")  # "value is not known": no record
    assert await bluez.notify(NODE, "2a6e", (-550).to_bytes(2, "little", signed=True))
    assert await sink.next() == records(("/3303/0/5700", -5.5))
    assert await bluez.device_property(NODE, "Connected") is True
    assert await bluez.calls(node, "Connect") == 1
    assert [s.sleepy for _, s in sink.states] == [False]

    await poller.remove(NODE)
    assert await bluez.device_property(NODE, "Connected") is False


async def test_a_dropped_link_is_reconnected_and_resubscribed(
    bluez: BluezEmulator, node: str, poller: GattPoller, sink: Sink
) -> None:
    poller.add(GattNode(NODE, notify=("2a6e",), read=("2a19",)))
    assert await sink.next() == records(("/3/0/9", 87))
    await bluez.drop(NODE)
    assert await sink.next() == records(("/3/0/9", 87))  # the read after reconnecting
    assert await bluez.calls(node, "Connect") == 2
    assert [s.reachable for _, s in sink.states] == [True, False, True]
    assert await bluez.notify(NODE, "2a6e", (1999).to_bytes(2, "little"))
    assert await sink.next() == records(("/3303/0/5700", 19.99))


async def test_write_to_an_actuator_characteristic(
    bluez: BluezEmulator, node: str, poller: GattPoller
) -> None:
    await poller.write(NODE, SWITCH, b"\x01")
    await poller.write(NODE, SWITCH, b"\x00")
    assert await bluez.writes(NODE, SWITCH) == [b"\x01", b"\x00"]
    assert await bluez.device_property(NODE, "Connected") is False
    with pytest.raises(GattFailed, match=r"write to 0000ffe2-.* failed: .*Not Permitted"):
        await poller.write(NODE, STATUS, b"\x01")


async def test_write_uses_the_standing_connection_of_a_subscribed_node(
    bluez: BluezEmulator, node: str, poller: GattPoller, sink: Sink
) -> None:
    poller.add(GattNode(NODE, notify=("2a6e",), read=("2a19",)))
    await sink.next()
    await poller.write(NODE, SWITCH, b"\x01")
    assert await bluez.writes(NODE, SWITCH) == [b"\x01"]
    assert await bluez.calls(node, "Connect") == 1
    assert await bluez.device_property(NODE, "Connected") is True


async def test_pair_bonds_through_bluez(
    bluez: BluezEmulator, node: str, poller: GattPoller
) -> None:
    got = await poller.pair(NODE)
    assert {r.path: r.value for r in got} == EXPECTED
    assert await bluez.device_property(NODE, "Paired") is True
    assert await bluez.device_property(NODE, "Bonded") is True
    assert await bluez.calls(node, "Pair") == 1
    assert await bluez.device_property(NODE, "Connected") is False


async def test_the_slot_budget_holds_with_more_nodes_than_slots(
    bluez: BluezEmulator, sink: Sink
) -> None:
    await bluez.add_adapter("hci0", monitor=False)
    nodes = [f"C4:7C:8D:6A:01:{i:02X}" for i in range(6)]
    for address in nodes:
        await bluez.add_gatt_device(address, {"180f": {"2a19": (["read"], b"\x50")}})
    async with GattPoller(sink.on_records, slots=2, connect_timeout=10.0, backoff=FAST) as poller:
        results = await asyncio.gather(*(poller.poll(a) for a in nodes))
    assert all({r.path: r.value for r in recs} == records(("/3/0/9", 80)) for recs in results)
    assert await bluez.max_connected() == 2


async def test_connection_failures_are_retried_with_back_off(
    bluez: BluezEmulator, node: str, sink: Sink
) -> None:
    await bluez.fail_next("Connect", FAILED)
    await bluez.fail_next("Connect", "org.bluez.Error.InProgress")
    async with GattPoller(
        sink.on_records, on_state=sink.on_state, connect_timeout=10.0, retries=3, backoff=FAST
    ) as poller:
        assert {r.path: r.value for r in await poller.poll(NODE)} == EXPECTED
    assert await bluez.calls(node, "Connect") == 3


async def test_an_unreachable_node_is_reported(bluez: BluezEmulator, node: str, sink: Sink) -> None:
    for _ in range(2):
        await bluez.fail_next("Connect", FAILED)
    async with GattPoller(
        sink.on_records, on_state=sink.on_state, connect_timeout=10.0, retries=2, backoff=FAST
    ) as poller:
        with pytest.raises(GattUnreachable, match="not reachable after 2 attempts") as err:
            await poller.poll(NODE)
    assert err.value.code == GattUnreachable.code  # 5.03 to a server
    assert [(a, s.reachable) for a, s in sink.states] == [(NODE, False)]


async def test_an_unknown_node_is_unreachable(bluez: BluezEmulator, sink: Sink) -> None:
    await bluez.add_adapter("hci0", monitor=False)
    async with GattPoller(sink.on_records, connect_timeout=10.0, retries=1) as poller:
        with pytest.raises(GattUnreachable):
            await poller.poll("C4:7C:8D:6A:FF:FF")


def test_connect_timeouts_below_10_s_are_refused() -> None:
    with pytest.raises(ValueError, match="too short"):
        GattPoller(lambda a, r: None, connect_timeout=5.0)


async def test_a_sleepy_node_is_polled_at_its_advert_with_one_attempt_per_connection(
    bluez: BluezEmulator, node: str, poller: GattPoller, sink: Sink
) -> None:
    """Asleep, a node refuses connections: its poll waits for its advert rather than trying
    on a schedule, and a connection to it is tried once (a retry with back-off would hold its
    turn past its next wake window)."""
    await bluez.sleep(NODE)
    poller.add(GattNode(NODE, interval=3600, read=("2a19",), sleepy=True))
    with pytest.raises(GattUnreachable, match="after 1 attempts"):
        await poller.poll(NODE)
    assert await bluez.calls(node, "Connect") == 1  # and none by its schedule
    await bluez.sleep(NODE, False)
    poller.heard(NODE)  # its advert, as the transport passes it on
    assert await sink.next() == records(("/3/0/9", 87))
    assert await bluez.calls(node, "Connect") == 2
