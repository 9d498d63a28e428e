"""OMA LwM2M 1.1 interop, Send (OMA-ETS-LightweightM2M-V1_1 int-306) of a batch of several nodes'
readings at several times, against Eclipse Leshan 2.0.0-M15's LwM2M server, with the real daemon
(instances mode, three simulated nodes paired, plain coap://).

The gateway's Send pack is compact: its records share base names and base times (RFC 8428
§4.5.3; OMA LwM2M 1.1 Core §7.4.5 SenML CBOR takes SenML's base fields as they are), and
numbers travel in their shortest exact CBOR form (a half- or single-precision float where it
keeps the value). What is asserted is what Leshan's own SenML CBOR decoder made of it: every
record at its path, value and timestamp, each matching a reading the gateway took from a node
(its ``readings`` events, with the node's own time), for several nodes and several times in
one Send.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from clients import FAST_RETRY, gateway_tree
from integration.test_daemon import Daemon, running_daemon, until

from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.send import BLOCK, send_payload
from bridged.objects.paths import Path
from bridged.objects.values import Record
from peers.leshan_gateway import config
from peers.leshan_m15 import LeshanM15, leshan_m15_fixture  # noqa: F401 (fixture)

pytestmark = pytest.mark.asyncio(loop_scope="module")

EP = "gw-leshan15-send"
NODES = ("sim:0001", "sim:0002", "sim:0003")
LOCAL_PATHS = ("/3303/0/5700", "/3304/0/5700", "/3311/0/5850")
"""What a simulated node reports each time: temperature, humidity, switch."""
SIM = "nodes = 3\ninterval = 0.5"
LINGER = 2.0
"""Seconds a Send batch waits for more: each node reports four times meanwhile."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(
    tmp_path_factory: pytest.TempPathFactory, leshan_m15: LeshanM15
) -> AsyncIterator[tuple[Daemon, asyncio.Queue[dict[str, object]]]]:
    """The daemon registered to Leshan M15, its ``readings`` events followed from before the
    nodes are paired, and the nodes paired and listed in Leshan's registration (Leshan answers
    4.04 to a Send naming an instance it was not told of)."""
    tmp = tmp_path_factory.mktemp("send")
    extra = f"[delivery]\nlinger = {LINGER}\n"
    text = config(leshan_m15.uri, tmp, EP, sim=SIM, extra=extra)
    async with running_daemon(tmp, text) as daemon:
        await leshan_m15.event(EP, "registered")
        async with daemon.events("readings") as readings:
            for k, node in enumerate(NODES):
                await daemon.call("pair", node=node, name=f"node {k}")
            instances = {
                (await daemon.upstream(n, LOCAL_PATHS[0])).rsplit("/", 1)[0] for n in NODES
            }

            async def listed() -> bool:
                clients = await asyncio.to_thread(leshan_m15.clients)
                links = [c["links"] for c in clients if c["endpoint"] == EP]
                return bool(links) and instances <= {link["url"] for link in links[0]}

            await until(listed, timeout=60)
            yield daemon, readings


async def test_LightweightM2M_1_1_int_306_send_of_several_nodes_at_several_times(
    gateway: tuple[Daemon, asyncio.Queue[dict[str, object]]], leshan_m15: LeshanM15
) -> None:
    """One Send with readings of at least two nodes at at least two times: Leshan decodes
    every record at the node's upstream path, with the value and the time (to the microsecond,
    Leshan keeps nanoseconds) of a reading the gateway took from that node."""
    daemon, readings = gateway
    upstream = {
        await daemon.upstream(node, local): (node, local) for node in NODES for local in LOCAL_PATHS
    }

    def rich(event: dict[str, Any]) -> bool:
        series = event["series"]
        nodes = {upstream[p][0] for at in series for p in at["values"] if p in upstream}
        return len(series) >= 2 and len(nodes) >= 2

    def refused() -> str | None:
        errors = [e["error"] for e in leshan_m15.events(EP) if e["event"] == "send-error"]
        return f"Leshan could not decode a Send: {errors[0]}" if errors else None

    _, send = await leshan_m15.event(EP, "send", match=rich, timeout=90, give_up=refused)
    decoded = [
        (path, value, at["time"][0] + at["time"][1] / 1e9)
        for at in send["series"]
        for path, value in at["values"].items()
    ]
    assert all(path in upstream for path, _, _ in decoded), decoded
    taken: list[tuple[str, str, object, float]] = []

    def matched(record: tuple[str, object, float]) -> bool:
        path, value, time = record
        node, local = upstream[path]
        return any(
            (n, p, v) == (node, local, value) and type(v) is type(value) and abs(t - time) < 1e-6
            for n, p, v, t in taken
        )

    async def all_matched() -> bool:
        while not readings.empty():
            event = readings.get_nowait()
            for r in event["records"]:  # type: ignore[attr-defined]
                taken.append((str(event["id"]), r["path"], r["value"], r["time"]))
        return all(matched(record) for record in decoded)

    await until(all_matched, timeout=30)


@pytest.fixture(scope="module")
def leshan_small_blocks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeshanM15]:
    """Leshan 2.0.0-M15 whose Californium prefers 256-byte blocks (``PREFERRED_BLOCK_SIZE``):
    its 2.31 Continue to a larger block asks for that size (RFC 7959 late negotiation)."""
    yield from LeshanM15.fixture(tmp_path_factory, properties={"peer.preferredBlockSize": "256"})


@pytest.mark.parametrize(
    ("peer", "exponent"),
    [("leshan_m15", 5), ("leshan_small_blocks", 4)],
    ids=["Californium's 512-byte blocks", "256-byte blocks"],
)
async def test_a_send_of_many_blocks_is_decoded_whole_by_leshan(
    peer: str, exponent: int, request: pytest.FixtureRequest
) -> None:
    """A Send several Block1 blocks long (the gateway's own block-wise sender, engine/block1.py,
    through Californium's block-wise layer): Leshan's decoder gets every record of it, each
    value at its time. Californium answers the first 1,024-byte block 2.31 Continue with its
    preferred size (512 bytes by default, RFC 7959 late negotiation), and the client sends the
    rest, and its next Sends, in blocks of that size."""
    leshan_m15: LeshanM15 = request.getfixturevalue(peer)
    endpoint = f"gw-leshan15-blocks-{exponent}"
    temperature = Path.parse("/3303/0/5700")
    series = [Record(temperature, 20.0 + k / 4, 1_700_000_000.0 + 60 * k) for k in range(400)]
    assert len(send_payload(series)) > 4 * BLOCK
    client = LwM2MClient(
        gateway_tree(),
        endpoint,
        ServerConfig(leshan_m15.uri, request_timeout=10.0, retry=FAST_RETRY),
        bind=("127.0.0.1", 0),
    )
    await client.start()
    try:
        await leshan_m15.event(endpoint, "registered")
        outcome = await client.send(series)
        assert outcome.delivered, outcome.detail
        _, send = await leshan_m15.event(endpoint, "send")
        assert client.session(1).block_exponent == exponent
    finally:
        await client.stop()
    decoded = [
        (at["time"][0] + at["time"][1] / 1e9, value)
        for at in send["series"]
        for path, value in at["values"].items()
        if path == str(temperature)
    ]
    assert decoded == [(r.time, r.value) for r in series]
