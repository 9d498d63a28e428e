"""Store-and-forward against lwm2m-node-lib, a LwM2M 1.0 server nobody on this project wrote.

It has no Send, and observes single resources only, taking notifications as text: asked for
LwM2M JSON (11543), it hands over the JSON text, which is decoded here. So the backlog reaches
it as series notifications of an observed resource, every reading with its time, in order.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path as FsPath

import pytest
from integration.test_delivery import gateway, until

from bridged.delivery import DeliveryConfig
from peers.lwm2m_node import LwM2MNodeServer, NodeServerFactory
from peers.lwm2m_server import SenMLRecord, decode_timed

pytest_plugins = ["peers.fixtures"]

GRACE = DeliveryConfig(max_records=64, retry=0.05, max_retry=0.2, poll=0.05, observe_grace=3.0)
"""The server observes one resource within 3 s of registering; the others' readings are then
skipped, not waited for."""


@pytest.fixture
async def peer(lwm2m_node_server: NodeServerFactory) -> AsyncIterator[LwM2MNodeServer]:
    async with lwm2m_node_server() as srv:
        yield srv


async def test_lwm2m_node_lib_gets_the_backlog_of_an_observed_resource(
    tmp_path: FsPath, peer: LwM2MNodeServer
) -> None:
    async with gateway(tmp_path, peer.uri, version="1.0", config=GRACE) as gw:
        await peer.wait_event("registration", endpoint="gw-nodes")
        sent = gw.burst(20, time.time() - 1000)
        path = next(name for name, _, _ in sent if name.startswith("/3303/"))
        expected = [s for s in sent if s[0] == path]
        series: list[SenMLRecord] = []
        first = await peer.observe("gw-nodes", path, accept="application/vnd.oma.lwm2m+json")
        assert decode_timed(first.encode(), 11543)[0].name == path

        async def take() -> bool:
            note = await peer.wait_event("notification", endpoint="gw-nodes", path=path)
            series.extend(decode_timed(str(note.data["value"]).encode(), 11543))
            return len(series) >= len(expected)

        while not await take():
            pass
        assert [(r.name, r.time, r.value) for r in series] == expected
        await until(lambda: gw.delivery.backlog(1) == 0)
        stats = gw.delivery.stats(1)
        assert (stats.delivered, stats.unobserved) == (len(expected), len(sent) - len(expected))
