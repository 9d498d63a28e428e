"""/5 Firmware Update of a node through the gateway, driven by Eclipse Leshan 2.0.0-M4 the way
its demo UI does it: the real daemon in the endpoints mode (Leshan M4 cannot address a gateway's
end devices) over the simulated transport, whose nodes take an MCUboot image. Leshan pushes the
package to the node endpoint's /5/0/0 (Block1) or writes a coap:// Package URI, executes
/5/0/2, and reads State and Update Result until the update has ended."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from emulators.mcuboot import image
from firmware_servers import coap_package

from peers.leshan import EventStream, Leshan, leshan_events
from peers.leshan_gateway import link_urls, registered_daemon

pytest_plugins = ["peers.fixtures"]

NODE = "sim:0001"
TIMEOUT = 60.0


events = leshan_events()


async def ended(leshan: Leshan, ep: str, state: int, result: int) -> None:
    """Read /5/0/3 and /5/0/5 until they are ``state`` and ``result``."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            read = await leshan.read(ep, "/5/0", "TLV")
            assert read.code == "2.05", read.raw
            values = read.resources()
            if (values[3], values[5]) == (state, result):
                return
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("delivery", ["push", "pull"])
async def test_leshan_updates_a_node(
    tmp_path: Path, leshan: Leshan, events: EventStream, delivery: str
) -> None:
    ep = f"gw-leshan-fw-{delivery}"
    package = image((7, 1, 0, 3), 9_000)
    async with (
        registered_daemon(tmp_path, leshan, events, ep, exposure="endpoints") as (daemon, _),
        coap_package(package) as uri,
    ):
        await daemon.call("pair", node=NODE, name="porch")
        node_ep = f"{ep}:{NODE}"
        registration = await events.next("REGISTRATION", endpoint=node_ep, timeout=TIMEOUT)
        assert "/5/0" in link_urls(registration)
        if delivery == "push":
            written = await leshan.write_value(node_ep, "/5/0/0", package.hex(), "OPAQUE")
        else:
            written = await leshan.write_value(node_ep, "/5/0/1", uri, "TEXT")
        assert written.code == "2.04", written.raw
        await ended(leshan, node_ep, 2, 0)
        assert (await leshan.read(node_ep, "/5/0/7", "TEXT")).value == "7.1.0+3"
        executed = await leshan.execute(node_ep, "/5/0/2")
        assert executed.code == "2.04", executed.raw
        await ended(leshan, node_ep, 0, 1)
        assert (await leshan.read(node_ep, "/3/0/3", "TEXT")).value == "7.1.0+3"
