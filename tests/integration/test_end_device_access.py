"""Access Control does not apply to an end device's objects (LwM2M Gateway TS 1.1, GW-09:
every server has full rights on them). With two servers configured, /2 decides what each may
do on the gateway's own instances; a node's objects at its prefix (``/dev0/5/0``) are none of
those, whatever instance IDs /2 names in the gateway's tree, so each server reads them in full
and may write them.

The real daemon (a subprocess) in the gateway mode, the RCP emulator on a pty with an emulated
LwM2M node on its air, and two in-repo LwM2M servers, each decoding what it received with its
own SenML CBOR decoder.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiocoap.numbers.codes import Code
from emulators.world import World, node_eui64

from bridged.objects.formats import ContentFormat
from peers.lwm2m_server import LwM2MTestServer, decode_senml_cbor

ENDPOINT = "gw-two"
INDEX = 6
NODE = f"802154:{node_eui64(INDEX).hex()}"
TIMEOUT = 30.0


async def test_each_server_reads_and_writes_an_end_devices_objects_whatever_2_says(
    tmp_path: Path,
) -> None:
    async with LwM2MTestServer() as first, LwM2MTestServer() as second, World(tmp_path) as world:
        daemon = await world.start_daemon(
            first.uri,
            endpoint=ENDPOINT,
            more_servers=[second.uri],
            gateway='exposure = "gateway"',
        )
        await daemon.ctl_json("pair", "802154", node_eui64(INDEX).hex(), "--name", "hall")
        node = await world.add_node(INDEX, "hall")
        await asyncio.wait_for(node.registered.wait(), TIMEOUT)
        prefix = (await daemon.upstream(NODE, "/5/0/3")).removesuffix("/5/0/3")
        temperature = await daemon.upstream(NODE, "/3303/0/5700")
        async with asyncio.timeout(TIMEOUT):
            while ENDPOINT not in first.clients or ENDPOINT not in second.clients:
                await asyncio.sleep(0.05)
        for server in (first, second):
            reply = await server.request(
                ENDPOINT, Code.GET, f"{prefix}/5/0", accept=ContentFormat.SENML_CBOR
            )
            assert reply.code == Code.CONTENT, reply
            values = {r.name: r.value for r in decode_senml_cbor(reply.payload)}
            assert values[f"{prefix}/5/0/3"] == 0  # State Idle
            assert values[f"{prefix}/5/0/9"] == 2  # both delivery methods
            reply = await server.request(
                ENDPOINT, Code.GET, temperature, accept=ContentFormat.SENML_CBOR
            )
            assert reply.code == Code.CONTENT, reply
            assert [(r.name, r.value) for r in decode_senml_cbor(reply.payload)] == [
                (temperature, 21.0)
            ]
        # the second server resets the node's /5 (full rights), which the first reads
        reply = await second.request(
            ENDPOINT, Code.PUT, f"{prefix}/5/0/1", b"", content_format=ContentFormat.TEXT
        )
        assert reply.code == Code.CHANGED, reply
        # /2 still governs the gateway's own instances: the second server may read, not write
        text = ContentFormat.TEXT
        assert (await second.request(ENDPOINT, Code.GET, "/3/0/0")).code == Code.CONTENT
        refused = await second.request(
            ENDPOINT, Code.PUT, "/3/0/13", b"1700000000", content_format=text
        )
        assert refused.code == Code.UNAUTHORIZED
        allowed = await first.request(
            ENDPOINT, Code.PUT, "/3/0/13", b"1700000000", content_format=text
        )
        assert allowed.code == Code.CHANGED
