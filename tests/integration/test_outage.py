"""After an outage, through the real daemon: what it says while the radio is down, and how soon
the backlog goes once the server is back.

* While the 802.15.4 dongle is pulled, no node can be reached: ``bridgectl nodes`` and
  ``status`` must not call them reachable (they were, for minutes, before).
* Sends that fail while the server is failing make delivery back off (doubling, up to 60 s).
  When the gateway has registered again with the restarted server, the server is there: the
  backlog goes at once, not when the back-off happens to end.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiocoap.numbers.codes import Code
from emulators.world import World

from integration.test_daemon import (
    _short_paths,  # noqa: F401 (fixture)
    config_text,
    produced,
    running_daemon,
    sends,
    until,
    until_sync,
)
from peers.lwm2m_server import LwM2MTestServer

TIMEOUT = 30.0


async def test_nodes_are_not_reachable_while_the_radio_is_down(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with World(tmp_path) as world:
        daemon = await world.start_daemon(server.uri, endpoint="gw-outage")
        assert await daemon.ctl_json("permit-join", "30") == {"seconds": 30}
        node = await world.add_node(1, "porch")
        await asyncio.wait_for(node.registered.wait(), TIMEOUT)

        async def reachable() -> list[bool]:
            return [n["reachable"] for n in await daemon.ctl_json("nodes")]

        async def until_reachable(wanted: list[bool], count: int) -> None:
            async with asyncio.timeout(TIMEOUT):
                while not (
                    await reachable() == wanted
                    and (await daemon.ctl_json("status"))["nodes"]["reachable"] == count
                ):
                    await asyncio.sleep(0.2)

        await until_reachable([True], 1)
        world.rcp.unplug()
        await until_reachable([False], 0)
        world.rcp.replug()
        await node.update()  # the node talks again: it is reachable again
        await until_reachable([True], 1)
        assert await daemon.stop() == 0


async def test_the_backlog_goes_as_soon_as_the_gateway_has_registered_again(
    tmp_path: Path,
) -> None:
    first = LwM2MTestServer()
    await first.start()
    port = first.port
    sim = "nodes = 1\ninterval = 0.2"
    config = config_text(first.uri, tmp_path, sim=sim, request_timeout=1)
    async with running_daemon(tmp_path, config) as d:
        await first.next_event("register", timeout=TIMEOUT)
        await d.wait_registered()
        await d.call("pair", node="sim:0001", name="porch")
        upstream = {p: await d.upstream("sim:0001", p) for p in ("/3303/0/5700", "/3304/0/5700")}
        await until_sync(lambda: bool(sends(first)))
        # The server is failing: it refuses every Send, and delivery backs off.
        first.send_code = Code.SERVICE_UNAVAILABLE

        async def backing_off() -> bool:
            status = await d.ctl_json("status")
            assert isinstance(status, dict)
            # The 4th failure in a row: delivery now waits 8 s before its next try.
            return int(status["servers"][0]["delivery"]["failed_sends"]) >= 4

        await until(backing_off, timeout=60)
        async with d.events("readings") as events:
            during = await produced(events, "sim:0001", upstream, 4)
        await first.stop()  # restarted: it has forgotten the gateway
        async with LwM2MTestServer(port=port) as back:
            # The gateway learns the server lost it (its Update is 4.04) and registers again.
            await d.ctl_json("update")
            register = await back.next_event("register", timeout=TIMEOUT)
            assert register.code == Code.CREATED
            # Far less than the back-off delivery was in when the server came back.
            await until_sync(lambda: during <= sends(back), timeout=4)
