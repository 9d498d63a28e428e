"""802.15.4 pairing through the real daemon, as a user does it with bridgectl.

``bridged`` runs as a subprocess configured for the RCP emulator, which runs here on a pty with
emulated LwM2M nodes on its air (`emulators.world`); the in-repo LwM2M server on 127.0.0.1 is
the upstream server, and ``bridgectl`` runs as a subprocess over the control socket. What is
checked, in the order a user meets it: an unpaired node is refused with 4.03 and the daemon
says so once, not per retry; ``permit-join`` lets it in and the server sees its objects and
values; ``pair 802154:<EUI-64>`` lets a node in without a permit-join window; ``unpair``
removes it upstream and its next Register is refused again.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import aiocoap
import pytest
from aiocoap.numbers.codes import Code
from emulators.lwm2m_node import TEMPERATURE, EmulatedNode
from emulators.world import World, node_eui64, node_id

from bridged.engine.registration import EventKind
from peers.lwm2m_server import LwM2MTestServer

ENDPOINT = "gw-radios"
TIMEOUT = 30.0
TEXT = 0


async def until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def refusals(node: EmulatedNode) -> int:
    """How many of the node's Registers were answered 4.03."""
    return sum(
        1 for e in node.events if e.kind is EventKind.REGISTRATION_FAILURE and "4.03" in e.detail
    )


def instances(links: str, oid: int) -> set[int]:
    """The instances of object ``oid`` in a Register or Update payload."""
    return {int(iid) for iid in re.findall(rf"</{oid}/(\d+)>", links)}


async def read_until(server: LwM2MTestServer, path: str, wanted: str) -> None:
    """Read ``path`` (text/plain) from the gateway until it answers ``wanted``."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            response = await server.request(ENDPOINT, Code.GET, path, accept=TEXT)
            if response.code == Code.CONTENT and response.payload.decode() == wanted:
                return
            await asyncio.sleep(0.05)


async def next_value(observation: aiocoap.protocol.Request, wanted: str) -> None:
    """Wait for a notification of ``wanted`` (text/plain) on a running observation."""
    async with asyncio.timeout(TIMEOUT):
        async for notification in observation.observation:
            if notification.payload.decode() == wanted:
                return


async def test_pairing_802154_nodes_through_the_daemon(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with World(tmp_path) as world:
        daemon = await world.start_daemon(server.uri, endpoint=ENDPOINT)
        register = await server.next_event("register", timeout=TIMEOUT)
        assert instances(register.payload.decode(), 3303) == set()

        # A node nobody paired knocks: 4.03 on every try, one line in the log.
        stranger = await world.add_node(1, "stranger")
        await until(lambda: refusals(stranger) >= 3, "three refused Registers")
        refused = f"node {node_id(stranger)} is not paired and permit-join is closed"
        assert daemon.log.read_text().count(refused) == 1
        assert not stranger.registered.is_set()

        # permit-join: the node's next Register gets it paired and exposed upstream.
        assert await daemon.ctl_json("permit-join", "30") == {"seconds": 30}
        await asyncio.wait_for(stranger.registered.wait(), TIMEOUT)
        nodes = await daemon.ctl_json("nodes")
        assert [n["id"] for n in nodes] == [node_id(stranger)]
        update = await server.next_event("update", timeout=TIMEOUT)
        (iid,) = instances(update.payload.decode(), 3303)
        value = f"/3303/{iid}/5700"
        await read_until(server, value, "21.0")  # the node's first report has come through
        observation = server.observe(ENDPOINT, value, accept=TEXT)
        first = await asyncio.wait_for(observation.response, TIMEOUT)
        assert first.code == Code.CONTENT and first.payload.decode() == "21.0"
        stranger.tree.set(TEMPERATURE, 23.5)
        await next_value(observation, "23.5")
        observation.observation.cancel()

        # Pre-authorised by its EUI-64 (bridgectl pair 802154 <EUI-64>): it gets in while
        # permit-join is closed.
        assert await daemon.ctl_json("permit-join", "0") == {"seconds": 0}
        porch = f"802154:{node_eui64(2).hex()}"
        typed = ":".join(f"{b:02X}" for b in node_eui64(2))  # 00:12:4B:..., as on a label
        paired = await daemon.ctl_json("pair", "802154", typed, "--name", "porch")
        assert paired["id"] == porch and paired["name"] == "porch"
        porch_node = await world.add_node(2, "porch-node")
        await asyncio.wait_for(porch_node.registered.wait(), TIMEOUT)
        assert refusals(porch_node) == 0
        # An Update may come first for what the node announced before its first reading is
        # committed (the registry's group commit): the server is told of both in the end.
        announced: set[int] = set()
        while len(announced) < 2:
            update = await server.next_event("update", timeout=TIMEOUT)
            announced = instances(update.payload.decode(), 3303)
        assert len(announced) == 2

        # unpair: gone upstream, and refused when it next registers.
        assert await daemon.ctl_json("unpair", node_id(stranger)) == {"unpaired": node_id(stranger)}
        update = await server.next_event("update", timeout=TIMEOUT)
        assert iid not in instances(update.payload.decode(), 3303)
        nodes = await daemon.ctl_json("nodes")
        assert [n["id"] for n in nodes] == [node_id(porch_node)]
        before = refusals(stranger)
        await stranger.update()  # its Update is unknown now: it registers again, and is refused
        await until(lambda: refusals(stranger) > before, "the Register after unpair refused")

        assert await daemon.stop() == 0
        deregister = await server.next_event("deregister", timeout=TIMEOUT)
        assert deregister.endpoint == ENDPOINT


@pytest.fixture(autouse=True)
def _short_paths(tmp_path: Path) -> None:
    """Unix socket paths are limited to 107 bytes."""
    assert len(str(tmp_path / "run" / "control.sock")) < 100, tmp_path


async def test_status_says_what_the_radio_is_doing(tmp_path: Path, server: LwM2MTestServer) -> None:
    """The transport runs while its dongle is pulled (it reopens it with back-off): status
    says the radio is down, and up again once the dongle is back."""

    async def radio() -> str:
        status = await daemon.ctl_json("status")
        return str(status["transports"]["802154"])

    async def until_radio(prefix: str) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not (await radio()).startswith(prefix):
                await asyncio.sleep(0.2)

    async with World(tmp_path) as world:
        daemon = await world.start_daemon(server.uri, endpoint=ENDPOINT)
        await until_radio("up, radio up: ")
        world.rcp.unplug()
        await until_radio("up, radio down: ")
        world.rcp.replug()
        await until_radio("up, radio up: ")
        assert await daemon.stop() == 0
