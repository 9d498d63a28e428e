"""The registry's group commit (bridged/registry.py) end to end, asserted at the server.

Readings reported close together share one commit; a reading is acted on (shown upstream,
delivered) only once it is committed. So the server must get every reading once, in order,
whatever windows the readings fell in; and a gateway killed between a reading's arrival and
its commit must not have shown or sent it: after the restart the server has exactly what was
committed, every reading the gateway acknowledged among it, and the unclean stop is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path as FsPath

from bridged.objects.values import Record
from bridged.registry import COMMIT_WINDOW
from bridged.store.database import connect, unclean_stops
from bridged.transports.simulated import TEMPERATURE
from integration.test_delivery import (
    FAST_DELIVERY,
    delivered,
    gateway,
    received,
    registered,
    sends,
    until,
)
from integration.test_idle import config_file
from peers.lwm2m_server import LwM2MTestServer


async def test_readings_across_and_within_commit_windows_arrive_once_each_in_order(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    """Produced = arrived: bursts within one window (one commit), readings a loop turn apart,
    and readings a window apart, from two nodes interleaved."""
    async with gateway(tmp_path, server.uri) as gw:
        await registered(server)
        await delivered(gw)  # the nodes' first reports
        before = len(received(server))
        start = time.time() - 1000
        produced = []
        for k in range(300):
            node = gw.nodes[k % 2]
            record = Record(TEMPERATURE, float(k), start + k)
            gw.registry.readings(node, [record])
            path = str(gw.exposure.paths.upstream(node, TEMPERATURE))
            produced.append((path, record.time, record.value))
            if k % 50 == 49:
                await asyncio.sleep(COMMIT_WINDOW * 1.5)  # the window's commit is done
            elif k % 7 == 0:
                await asyncio.sleep(0)  # a turn of the loop, within the window
        await until(lambda: len(received(server)) >= before + len(produced))
        await until(lambda: gw.delivery.backlog(1) == 0)
        got = [(r.name, r.time, r.value) for r in received(server)[before:]]
        assert got == produced


async def half_gone(since: float, seconds: float) -> None:
    """Until ``seconds`` have passed on the loop's clock (the deadlines') since ``since``."""
    loop = asyncio.get_running_loop()
    await until(lambda: loop.time() - since >= seconds)


async def test_a_reading_in_the_second_half_of_the_window_commits_it_at_the_end_of_its_turn(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    """The loop is awake for the later reading anyway: the commit rides on that wake-up, not on
    a timer of its own; nothing is shown before the commit, and the server gets both."""
    window = 2.0
    config = replace(FAST_DELIVERY, linger=0.0)
    async with gateway(tmp_path, server.uri, config=config, commit_window=window) as gw:
        await registered(server)
        await delivered(gw)  # the nodes' first reports
        before, shown = len(received(server)), len(gw.handed.readings)
        node, start = gw.nodes[0], time.time() - 100
        armed = asyncio.get_running_loop().time()
        gw.registry.readings(node, [Record(TEMPERATURE, 1.0, start)])
        await half_gone(armed, window / 2)
        assert gw.registry.unstored == 1, "the window runs: not committed yet"
        gw.registry.readings(node, [Record(TEMPERATURE, 2.0, start + 1)])
        assert gw.registry.unstored == 2 and len(gw.handed.readings) == shown  # not mid-turn
        await asyncio.sleep(0)  # the turn ends
        assert gw.registry.unstored == 0, "committed with the wake-up that brought the reading"
        assert [h.value for h in gw.handed.readings[shown:]] == [1.0, 2.0]
        await until(lambda: len(received(server)) >= before + 2)
        assert [(r.time, r.value) for r in received(server)[before:]] == [
            (start, 1.0),
            (start + 1, 2.0),
        ]


async def test_a_batch_lingering_past_half_its_linger_goes_with_the_next_commit(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    """Delivery's linger rides on the commit's wake-up the same way: the partial batch goes
    with the commit that brings more readings, long before its linger would end, as one Send."""
    linger = 6.0
    async with gateway(tmp_path, server.uri, config=replace(FAST_DELIVERY, linger=linger)) as gw:
        await registered(server)
        await delivered(gw)  # the nodes' first reports
        before, sends_before = len(received(server)), len(sends(server))
        node, start = gw.nodes[0], time.time() - 100
        gw.registry.readings(node, [Record(TEMPERATURE, 1.0, start)])
        committed = asyncio.get_running_loop().time()
        gw.registry.flush()  # delivery lingers from here
        await half_gone(committed, linger / 2 + 0.1)
        assert len(received(server)) == before, "a partial batch lingers"
        gw.registry.readings(node, [Record(TEMPERATURE, 2.0, start + 1)])
        gw.registry.flush()
        # Within a third of what is left of the linger: the commit sent it, not its timer.
        await until(lambda: len(received(server)) >= before + 2, timeout=linger / 6)
        assert [(r.time, r.value) for r in received(server)[before:]] == [
            (start, 1.0),
            (start + 1, 2.0),
        ]
        assert len(sends(server)) == sends_before + 1


CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from pathlib import Path
    from bridged.app import Gateway
    from bridged.config import load
    from bridged.objects.values import Record
    from bridged.transports.nodes import NodeId
    from bridged.transports.simulated import TEMPERATURE

    NODE = NodeId("sim", "0001")

    def say(**fields):
        print(json.dumps(fields), flush=True)

    class Shown:
        # What the gateway acted on: the registry tells its listeners after the commit.
        def node_added(self, node): pass
        def node_removed(self, node): pass
        def node_objects(self, node): pass
        def node_values(self, node, records): pass
        def node_readings(self, node, records):
            say(shown=[r.value for r in records])

    async def main(config, feed):
        gw = Gateway(load(Path(config)))
        if feed:
            await gw.pair(NODE, name="porch")
            gw.registry.objects(NODE, {3303: [0]})
        gw.registry.listen(Shown())
        await gw.start()
        while not any(s.registered for s in gw.client.sessions):
            await asyncio.sleep(0.01)
        say(registered=True)
        if not feed:
            await asyncio.sleep(3600)  # delivers what is stored, until the test stops it
        now = time.time()
        for i in range(10):
            # As a transport that acknowledges (an 802.15.4 node's Send answered 2.04).
            gw.registry.readings(NODE, [Record(TEMPERATURE, float(i), now + i)])
            await gw.registry.durable()
            say(durable=float(i))
        for i in range(10, 15):
            # As a BLE advert, which nobody acknowledges: it waits for the group commit...
            gw.registry.readings(NODE, [Record(TEMPERATURE, float(i), now + i)])
        say(waiting=gw.registry.unstored)
        time.sleep(3600)  # ...which never comes: the loop does not turn again before kill -9

    asyncio.run(main(sys.argv[1], sys.argv[2] == "feed"))
    """
)


async def test_a_gateway_killed_before_the_commit_had_shown_and_sent_only_committed_readings(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    config = config_file(tmp_path, server.uri)
    said: list[dict[str, object]] = []

    async def run(mode: str) -> tuple[asyncio.subprocess.Process, asyncio.Task[None]]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, str(config), mode, stdout=asyncio.subprocess.PIPE
        )

        async def follow() -> None:
            assert proc.stdout is not None
            while line := await proc.stdout.readline():
                said.append(json.loads(line))

        return proc, asyncio.create_task(follow())

    def values(key: str) -> list[object]:
        return [v for f in said if key in f for v in (f[key] if key == "shown" else [f[key]])]

    async def stop(proc: asyncio.subprocess.Process, reader: asyncio.Task[None]) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await reader

    proc, reader = await run("feed")
    try:
        await until(lambda: values("waiting") == [5])
    finally:
        await stop(proc, reader)
    durable = [float(i) for i in range(10)]
    assert values("durable") == durable
    assert set(values("shown")) <= set(durable), "shown before its commit"
    assert {r.value for r in received(server)} <= set(durable), "sent before its commit"

    said.clear()
    proc, reader = await run("resume")
    try:
        await until(lambda: {r.value for r in received(server)} >= set(durable))
        await until(lambda: values("registered") == [True])
    finally:
        await stop(proc, reader)
    arrived = sorted(r.value for r in received(server))
    assert sorted(set(arrived)) == durable  # every acknowledged reading, nothing uncommitted
    with contextlib.closing(connect(tmp_path / "state" / "state.db")) as conn:
        assert unclean_stops(conn) == 1  # the kill before the commit, counted at the restart
