"""Server operations on node-backed resources (DeviceManagement.handle_async over
NodeOperations and the CommandQueue), with the simulated transport and real SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sqlite3
from pathlib import Path as FsPath

import cbor2
import pytest
from aiocoap.numbers.codes import Code
from nodegw import NodeGateway, node_gateway
from timers import armed
from timers import settled as loop_settled

from bridged.commands import CommandQueue
from bridged.engine.dm import Request
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.registry import NodeRegistry
from bridged.store.commands import CommandStatus
from bridged.store.database import connect
from bridged.store.nodes import NodeStore
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore

SWITCH_1, SWITCH_2 = "3311/1/5850", "3311/2/5850"
TEXT, SENML_JSON, SENML_CBOR = 0, 110, 112


def segments(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


async def put(gw: NodeGateway, path: str, payload: bytes, cf: int = TEXT) -> int:
    return (await gw.dm.handle_async(Request(Code.PUT, segments(path), (), payload, cf))).code


async def settled(gw: NodeGateway) -> None:
    """Let the command tasks started by a wake-up finish."""
    async with asyncio.timeout(10):
        while gw.commands._tasks:
            await asyncio.gather(*gw.commands._tasks.values())


@pytest.fixture
def gw(tmp_path: FsPath) -> NodeGateway:
    return node_gateway(tmp_path)


async def test_read_of_an_awake_node_reaches_the_node(gw: NodeGateway) -> None:
    assert not gw.tree.has(Path.parse("/3303/1/5700")), "the node has reported nothing yet"
    reply = await gw.dm.handle_async(Request(Code.GET, segments("3303/1/5700")))
    assert reply.code == Code.CONTENT
    value = float(reply.payload)
    assert 18.0 <= value <= 24.0
    assert gw.tree.get(Path.parse("/3303/1/5700")) == value, "a value read is a reading"


async def test_read_of_a_sleepy_node_answers_its_last_report_with_its_time(
    gw: NodeGateway,
) -> None:
    reply = await gw.dm.handle_async(Request(Code.GET, segments("3303/2/5700")))
    assert reply.code == Code.SERVICE_UNAVAILABLE, "asleep, and nothing reported yet"
    gw.wake(gw.sleepy)
    reported = gw.registry.live[gw.sleepy.id].values[Path.parse("/3303/0/5700")]
    gw.sleep(gw.sleepy)  # the radio would refuse now: the answer must not need it
    reply = await gw.dm.handle_async(Request(Code.GET, segments("3303/2"), accept=SENML_CBOR))
    assert reply.code == Code.CONTENT
    records = {
        r[0]: r for r in ((i.get(-2, "") + i.get(0, ""), i) for i in cbor2.loads(reply.payload))
    }
    temperature = records["/3303/2/5700"][1]
    assert temperature[2] == reported.value
    assert temperature.get(-3, 0) + temperature.get(6, 0) == reported.time


async def test_write_to_an_awake_node_is_applied_then_shown(gw: NodeGateway) -> None:
    assert await put(gw, SWITCH_1, b"1") == Code.CHANGED
    assert gw.awake.switch is True
    assert gw.tree.get(Path.parse("/3311/1/5850")) is True
    assert not gw.commands.pending()


async def test_write_the_node_refuses_returns_its_code(gw: NodeGateway) -> None:
    """The simulated node refuses any write but its switch: 4.05, not 2.04."""
    assert await put(gw, "3311/1/5706", b"red") == Code.METHOD_NOT_ALLOWED
    assert not gw.tree.has(Path.parse("/3311/1/5706")), "nothing written, nothing shown"


async def test_write_to_a_node_that_does_not_answer_is_5_04(tmp_path: FsPath) -> None:
    gw = node_gateway(tmp_path, delay=30.0, timeout=0.05)
    assert await put(gw, SWITCH_1, b"1") == Code.GATEWAY_TIMEOUT
    assert (
        await gw.dm.handle_async(Request(Code.GET, segments(SWITCH_1)))
    ).code == Code.GATEWAY_TIMEOUT


async def test_write_to_an_awake_node_out_of_reach_is_5_03(gw: NodeGateway) -> None:
    gw.sim.paired.discard(gw.awake.id)  # the transport no longer hears it
    assert await put(gw, SWITCH_1, b"1") == Code.NOT_FOUND
    gw.sim.paired.add(gw.awake.id)
    gw.awake.sleepy = True  # a node out of its awake window: the transport says 5.03
    assert await put(gw, SWITCH_1, b"1") == Code.SERVICE_UNAVAILABLE


async def test_write_to_a_sleepy_node_is_desired_state_applied_when_it_wakes(
    gw: NodeGateway,
) -> None:
    gw.wake(gw.sleepy)
    gw.sleep(gw.sleepy)
    assert await put(gw, SWITCH_2, b"1") == Code.CHANGED
    (pending,) = gw.commands.pending()
    assert (pending.node, pending.path, pending.status) == (
        gw.sleepy.id,
        Path.parse("/3311/0/5850"),
        CommandStatus.PENDING,
    )
    assert gw.tree.get(Path.parse("/3311/2/5850")) is False, "not applied: not shown"
    assert gw.sleepy.switch is False
    gw.wake(gw.sleepy)
    await settled(gw)
    assert gw.sleepy.switch is True
    assert gw.tree.get(Path.parse("/3311/2/5850")) is True
    assert not gw.commands.pending()
    (applied,) = gw.commands.history()
    assert applied.status is CommandStatus.APPLIED and applied.id == pending.id
    assert [c.status for c in gw.ended] == [CommandStatus.PENDING, CommandStatus.APPLIED]


async def test_a_newer_write_supersedes_the_pending_one(gw: NodeGateway) -> None:
    assert await put(gw, SWITCH_2, b"1") == Code.CHANGED
    assert await put(gw, SWITCH_2, b"0") == Code.CHANGED
    (pending,) = gw.commands.pending()
    assert pending.records[0].value is False
    (old,) = gw.commands.history()
    assert (
        old.status is CommandStatus.SUPERSEDED and old.detail == f"replaced by command {pending.id}"
    )
    gw.wake(gw.sleepy)
    await settled(gw)
    assert gw.sleepy.switch is False
    assert [c.status for c in gw.commands.history()] == [
        CommandStatus.APPLIED,
        CommandStatus.SUPERSEDED,
    ]


async def test_commands_expire_when_the_node_does_not_wake(gw: NodeGateway) -> None:
    assert await put(gw, SWITCH_2, b"1") == Code.CHANGED
    gw.clock.now += 3599
    assert gw.commands.expire() == []
    gw.clock.now += 1
    (expired,) = gw.commands.expire()
    assert expired.status is CommandStatus.EXPIRED and gw.ended[-1] == expired
    gw.wake(gw.sleepy)
    await settled(gw)
    assert gw.sleepy.switch is False, "an expired command is never applied"


async def test_a_refused_command_fails_with_the_nodes_code(gw: NodeGateway) -> None:
    assert await put(gw, "3311/2/5706", b"red") == Code.CHANGED
    assert (
        await gw.dm.handle_async(Request(Code.POST, segments("3303/2/5605"), (), b"", None))
    ).code == Code.CHANGED
    gw.wake(gw.sleepy)
    await settled(gw)
    statuses = {str(c.path): (c.kind.value, c.status, c.detail[:4]) for c in gw.commands.history()}
    assert statuses == {
        "/3311/0/5706": ("write", CommandStatus.FAILED, "4.05"),
        "/3303/0/5605": ("execute", CommandStatus.FAILED, "4.05"),
    }


async def test_a_node_that_falls_asleep_keeps_its_commands(gw: NodeGateway) -> None:
    assert await put(gw, SWITCH_2, b"1") == Code.CHANGED
    gw.commands._waiting.add(gw.sleepy.id)
    await gw.commands.apply(gw.sleepy.id)  # not awake: the transport says 5.03
    assert [c.status for c in gw.commands.pending()] == [CommandStatus.PENDING]


async def test_pending_commands_survive_a_restart(gw: NodeGateway, tmp_path: FsPath) -> None:
    assert await put(gw, SWITCH_2, b"1") == Code.CHANGED
    conn = connect(tmp_path / "state.db")
    registry = NodeRegistry(NodeStore(conn), SecretStore(tmp_path / "s.json"), ReadingStore(conn))
    registry.attach(gw.sim)
    again = CommandQueue(conn, registry, clock=gw.clock)
    (pending,) = again.pending()
    assert pending.records[0].value is True
    gw.sim.events = registry
    gw.wake(gw.sleepy)
    await asyncio.gather(*again._tasks.values())
    assert gw.sleepy.switch is True


async def test_write_composite_across_nodes_and_the_gateway(gw: NodeGateway) -> None:
    payload = json.dumps(
        [
            {"n": "/3311/0/5850", "vb": True},
            {"n": "/3311/1/5850", "vb": True},
            {"n": "/3311/2/5850", "vb": True},
        ]
    ).encode()
    reply = await gw.dm.handle_async(Request(Code.iPATCH, (), (), payload, SENML_JSON))
    assert reply.code == Code.CHANGED
    assert gw.tree.get(Path.parse("/3311/0/5850")) is True  # the gateway's own
    assert gw.awake.switch is True  # applied on the awake node
    assert [str(c.path) for c in gw.commands.pending()] == ["/3311/0/5850"]  # kept for the sleepy
    assert gw.sleepy.switch is False


async def test_write_composite_stops_at_a_node_error(gw: NodeGateway) -> None:
    payload = json.dumps(
        [{"n": "/3311/0/5850", "vb": True}, {"n": "/3311/1/5706", "vs": "red"}]
    ).encode()
    reply = await gw.dm.handle_async(Request(Code.iPATCH, (), (), payload, SENML_JSON))
    assert reply.code == Code.METHOD_NOT_ALLOWED
    assert not gw.tree.has(Path.parse("/3311/0/5850")), "the gateway's part waits for the nodes'"


async def test_unpaired_nodes_are_never_exposed(gw: NodeGateway) -> None:
    third = list(gw.sim.nodes.values())[2]
    gw.wake(third)
    assert gw.tree.instance_ids(3303) == [0, 1, 2]
    gw.registry.unpair(gw.awake.id)
    assert gw.tree.instance_ids(3303) == [0, 2]
    assert gw.operations.locate(Path.parse("/3303/1/5700")) is None
    assert (
        await gw.dm.handle_async(Request(Code.GET, segments("3303/1/5700")))
    ).code == Code.NOT_FOUND
    assert await put(gw, SWITCH_1, b"1") == Code.NOT_FOUND
    assert gw.awake.switch is False


async def test_gateway_paths_stay_synchronous(gw: NodeGateway) -> None:
    reply = await gw.dm.handle_async(Request(Code.GET, segments("3311/0/5750")))
    assert (reply.code, reply.payload) == (Code.CONTENT, b"gateway")
    assert gw.dm.handle(Request(Code.GET, segments("3311/0/5750"))) == reply


async def test_a_command_the_full_store_cannot_keep_is_5_03(
    gw: NodeGateway, tmp_path: FsPath
) -> None:
    gw.wake(gw.sleepy)
    gw.sleep(gw.sleepy)
    conn = gw.commands.store._conn
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count={pages}")  # the disk is full
    # Fill the commands' pages so that no new row fits, as on a full disk.
    for size in (4000, 1000, 200, 50, 1):
        with contextlib.suppress(sqlite3.OperationalError):
            while True:
                conn.execute(
                    "INSERT INTO commands(node_id, path, kind, replace, body, created, expires,"
                    " status) VALUES ('x', '/1', 'write', 0, ?, 0, 0, 'applied')",
                    (b"f" * size,),
                )
    assert await put(gw, SWITCH_2, b"1") == Code.SERVICE_UNAVAILABLE
    assert not gw.commands.pending()
    conn.execute("PRAGMA max_page_count=1073741823")  # space is back
    assert await put(gw, SWITCH_2, b"1") == Code.CHANGED
    assert len(gw.commands.pending()) == 1


async def test_a_command_listener_that_raises_does_not_stop_the_others(gw: NodeGateway) -> None:
    """The command is still kept and applied, and the listener after the failing one is
    still told of it as it is queued and as it ends."""

    def broken(command: object) -> None:
        raise RuntimeError("a listener's own defect")

    told: list[CommandStatus] = []
    gw.commands.listen(broken)
    gw.commands.listen(lambda command: told.append(command.status))
    gw.wake(gw.sleepy)
    gw.sleep(gw.sleepy)
    assert await put(gw, SWITCH_2, b"1") == Code.CHANGED
    gw.wake(gw.sleepy)
    await settled(gw)
    assert gw.sleepy.switch is True
    assert told == [CommandStatus.PENDING, CommandStatus.APPLIED]


async def test_the_expiry_sleeps_until_the_first_command_expires(gw: NodeGateway) -> None:
    """With no command pending, the expiry arms no timer (it looked every 60 s); a command
    kept arms one, for when its time to live is over."""
    task = asyncio.create_task(gw.commands.run())
    try:
        await loop_settled()
        assert armed() == []
        assert await put(gw, SWITCH_2, b"1") == Code.CHANGED
        gw.clock.now += 1800  # half of the command's time to live
        await loop_settled()
        (deadline,) = armed()
        assert 1700 < deadline.when() - asyncio.get_running_loop().time() <= 1800
        gw.clock.now += 1800
        (expired,) = gw.commands.expire()
        assert expired.status is CommandStatus.EXPIRED
        assert await put(gw, SWITCH_2, b"0") == Code.CHANGED
        assert len(gw.commands.pending()) == 1
        gw.wake(gw.sleepy)
        await settled(gw)
        await loop_settled()
        assert armed() == [], "the applied command's deadline went with it"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_operations_over_other_paths_reach_the_node_and_keep_no_dict(
    gw: NodeGateway,
) -> None:
    """A node endpoint's operations (``over`` its paths; the daemon keeps one per endpoint,
    10,000 of them, issue 17) are slotted, hold their paths and the backends shared by all
    (two slots: 48 bytes, 72 with a slot for each backend) and reach the node like the
    gateway's; a timeout set on one is its own."""
    endpoint = gw.operations.over(gw.exposure.paths)
    assert not hasattr(endpoint, "__dict__"), "slotted: one per node endpoint"
    held = [r for r in gc.get_referents(endpoint) if not isinstance(r, type)]
    assert held == [gw.operations._backends, gw.exposure.paths]
    other = gw.operations.over(gw.exposure.paths)
    other.timeout = 0.5
    assert (other.timeout, endpoint.timeout) == (0.5, gw.operations.timeout)
    assert (endpoint.registry, endpoint.commands, endpoint.timeout) == (
        gw.registry,
        gw.commands,
        gw.operations.timeout,
    )
    found = endpoint.locate(Path.parse("/3311/1/5850"))
    assert found is not None
    await endpoint.write(*found, [Record(found[1], True)], replace=False)
    assert gw.sim.nodes[found[0]].switch is True, "what the node holds"


async def test_the_queue_hears_of_wakes_only_while_a_command_waits(gw: NodeGateway) -> None:
    """A report with no command kept calls no awake hook (issue 17); the queue listens again
    for the next command, which is still applied when its node wakes."""
    hooks = gw.registry._awake_hooks
    assert not hooks.anyone, "no command kept: nothing told of each report"
    for value, shown in ((b"1", True), (b"0", False)):
        assert await put(gw, SWITCH_2, value) == Code.CHANGED
        assert hooks.anyone
        gw.wake(gw.sleepy)
        await settled(gw)
        assert gw.sleepy.switch is shown
        assert not gw.commands.pending() and not hooks.anyone
