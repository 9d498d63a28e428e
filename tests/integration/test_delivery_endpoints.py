"""Store-and-forward in the ``endpoints`` exposure mode: every node is an endpoint of its own,
and the readings stored while the server was away reach it through that endpoint, by Send with
their original times and node-local paths, all of them, in order per node (issue 4's outage
test, in this mode); a 1.0 server gets them as notifications of each endpoint's observations.

Real parts throughout: the simulated transport through the node registry, SQLite in tmp_path,
one LwM2M client per node on its own UDP socket, and the in-repo LwM2M server on 127.0.0.1,
stopped and started again on the same port for the outage."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path as FsPath

from aiocoap.numbers.codes import Code
from airs import TEMPERATURE, HandedOver, SimAir, gateway_paths
from clients import FAST_RETRY, gateway_tree

from bridged.delivery import Delivery, DeliveryConfig
from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.exposure.endpoints import EndpointsExposure, endpoint_name
from bridged.objects.builtin import builtin_definitions
from bridged.registry import NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeId, NodeStore
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore
from integration.test_delivery_notify import OBSERVED, PATIENT, Observer, cancel, of
from peers.lwm2m_server import LwM2MTestServer

GATEWAY = "gw-epb"
TIMEOUT = 30.0
FAST_DELIVERY = DeliveryConfig(max_records=64, retry=0.05, max_retry=0.2, poll=0.05)


@dataclass
class Gateway:
    registry: NodeRegistry
    exposure: EndpointsExposure
    air: SimAir
    delivery: Delivery
    handed: HandedOver
    nodes: list[NodeId]

    def sent(self, mark: int, node: NodeId) -> list[tuple[str, float, object]]:
        """(path at the node's endpoint, time, value) of the node's readings handed over since
        ``mark``, in order."""
        mine = [h for h in self.handed.readings[mark:] if h.node == node]
        return gateway_paths(mine, self.exposure.paths.upstream)

    async def registered(self) -> None:
        async def all_registered() -> None:
            while not all(
                (ep := self.exposure.endpoint(n)) is not None and ep.registered for n in self.nodes
            ):
                await asyncio.sleep(0.02)

        async with asyncio.timeout(TIMEOUT):
            await all_registered()

    async def delivered(self) -> None:
        self.registry.flush()
        await until(lambda: self.delivery.backlog(1) == 0)


@contextlib.asynccontextmanager
async def gateway(
    state: FsPath, uri: str, *, version: str = "1.1", config: DeliveryConfig = FAST_DELIVERY
) -> AsyncIterator[Gateway]:
    """A gateway in the endpoints mode with two paired simulated nodes, their endpoints
    registered with the server at ``uri`` (as LwM2M ``version``), delivering from the store
    with ``config``."""
    server = ServerConfig(uri, request_timeout=1.0, retry=FAST_RETRY, version=version)
    conn = connect(state / "state.db")
    readings = ReadingStore(conn)
    registry = NodeRegistry(NodeStore(conn), SecretStore(state / "s.json"), readings)
    exposure = EndpointsExposure(builtin_definitions(), GATEWAY, server, host="127.0.0.1")
    registry.listen(exposure)
    handed = HandedOver(registry)
    air = SimAir(registry)
    # The gateway's own client names the servers (as in the daemon); this test does not need it
    # registered, the node endpoints carry the readings.
    own = LwM2MClient(gateway_tree(), GATEWAY, server, bind=("127.0.0.1", 0))
    delivery = Delivery(own, readings, None, config, route=exposure.router(own))
    registry.on_commit(delivery.notify)
    committing = asyncio.create_task(registry.run())
    try:
        nodes = [await air.add(i, f"room-{i}") for i in (1, 2)]
        await exposure.start()
        await delivery.start()
        yield Gateway(registry, exposure, air, delivery, handed, nodes)
    finally:
        committing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await committing
        await delivery.stop()
        await exposure.stop()
        conn.close()


async def until(condition: object, timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


def sends_of(server: LwM2MTestServer, endpoint: str) -> list[tuple[str, float | None, object]]:
    """The records of the Sends ``endpoint`` delivered (2.04), in arrival order."""
    return [
        (r.name, r.time, r.value)
        for e in server.history
        if e.kind == "send" and e.code == Code.CHANGED and e.endpoint == endpoint
        for r in e.records
    ]


async def test_outage_each_endpoint_sends_its_nodes_readings_with_their_times(
    tmp_path: FsPath,
) -> None:
    first = LwM2MTestServer()
    await first.start()
    port = first.port
    async with gateway(tmp_path, first.uri) as gw:
        names = {n: endpoint_name(GATEWAY, n) for n in gw.nodes}
        await gw.registered()
        await gw.delivered()  # the reports that came with pairing
        for node, name in names.items():
            assert sends_of(first, name) == gw.sent(0, node), "pairing's reports, by Send"
        await first.stop()  # the server goes down
        mark = len(gw.handed.readings)
        start = time.time() - 1000
        reports = 20
        for i in range(reports):
            for n, node in enumerate(gw.nodes):
                await gw.air.report(node, 10.0 + n * 10 + i / 10, start + i)
        gw.registry.flush()
        sent = {node: gw.sent(mark, node) for node in gw.nodes}
        temperatures = [(p, t) for p, t, _ in sent[gw.nodes[0]] if p == str(TEMPERATURE)]
        assert temperatures == [(str(TEMPERATURE), start + i) for i in range(reports)]
        assert gw.delivery.backlog(1) >= sum(len(s) for s in sent.values())
        async with LwM2MTestServer(port=port) as back:
            # The server came back without the registrations: each endpoint's Send gets 4.04,
            # it registers again, and its node's backlog follows.
            await until(
                lambda: all(len(sends_of(back, names[n])) >= len(sent[n]) for n in gw.nodes)
            )
            for node, name in names.items():
                assert sends_of(back, name) == sent[node], f"{name}: all, in order, with times"
            assert not [e for e in back.history if e.kind == "send" and e.endpoint == GATEWAY]
            await until(lambda: gw.delivery.backlog(1) == 0)
        stats = gw.delivery.stats(1)
        assert stats.failed_sends >= 1 and stats.skipped == 0


async def test_an_unpaired_nodes_backlog_is_skipped_and_counted(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    async with gateway(tmp_path, server.uri) as gw:
        kept, gone = gw.nodes
        await gw.registered()
        await gw.delivered()
        # The kept node's endpoint stops taking Sends, so both nodes' readings wait.
        server.send_code = Code.SERVICE_UNAVAILABLE
        mark = len(gw.handed.readings)
        start = time.time() - 500
        for i in range(5):
            for node in gw.nodes:
                await gw.air.report(node, 20.0 + i, start + i)
        gw.registry.flush()
        expected = gw.sent(mark, kept)
        skipped = len(gw.sent(mark, gone))
        await until(lambda: gw.delivery.stats(1).failed_sends >= 1)
        gw.registry.unpair(gone)
        server.send_code = None
        await until(lambda: gw.delivery.backlog(1) == 0)
        assert sends_of(server, endpoint_name(GATEWAY, kept))[-len(expected) :] == expected
        assert gw.delivery.stats(1).skipped >= skipped


async def test_a_1_0_server_gets_each_nodes_backlog_as_its_endpoints_notifications(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    async with gateway(tmp_path, server.uri, version="1.0", config=PATIENT) as gw:
        await gw.registered()
        start = time.time() - 1000
        for i in range(10):  # nothing observes yet: they wait in the store
            for node in gw.nodes:
                await gw.air.report(node, 15.0 + i, start + i)
        gw.registry.flush()
        sent = {node: gw.sent(0, node) for node in gw.nodes}
        observers: dict[NodeId, dict[str, Observer]] = {}
        try:
            for node in gw.nodes:
                observers[node] = {}
                for path, accept in OBSERVED.items():
                    request = server.observe(endpoint_name(GATEWAY, node), path, accept=accept)
                    first = await asyncio.wait_for(request.response, TIMEOUT)
                    assert first.code == Code.CONTENT, (node, path, first)
                    observer = observers[node][path] = Observer(path, request)
                    observer.task = asyncio.create_task(observer.follow())
            await until(
                lambda: all(
                    len(o.series()) >= len(of(sent[n], p))
                    for n in gw.nodes
                    for p, o in observers[n].items()
                )
            )
            await until(lambda: gw.delivery.backlog(1) == 0)
            for node in gw.nodes:
                for path, observer in observers[node].items():
                    assert len(of(sent[node], path)) >= 10
                    assert observer.series() == of(sent[node], path), (node, path)
            stats = gw.delivery.stats(1)
            assert (stats.sends, stats.skipped) == (0, 0)
        finally:
            for node_observers in observers.values():
                await cancel(node_observers)
