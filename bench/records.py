"""Upstream records per measured value, 802.15.4 nodes end to end (goal: exactly 1.0).

Everything is the real path of a reading, in one process: emulated LwM2M nodes on the air of
the RCP emulator (real 802.15.4 frames and 6LoWPAN through pyserial on a pty), the 802.15.4
transport, the node registry with its group commit to SQLite, the instances exposure, delivery
and the gateway's LwM2M client, and the in-repo LwM2M test server, which decodes each Send
(SenML CBOR) itself. Each node measures ``--values`` temperatures:

* ``send`` nodes (LwM2M 1.1) measure as a real node that reports by Send does: the value
  changes in the node's tree (so the observation the gateway keeps on its object notifies it)
  and the node Sends it with its own time;
* ``notify`` nodes (LwM2M 1.0, no Send) only change the value: the gateway hears it through
  the notification of its observation.

The figures: Send records the server received for the nodes' temperatures and their other
resources, per value measured, and (``send``) how many records carry the node's own time.

    .venv/bin/python bench/records.py [--nodes 4] [--values 25] [--kinds send,notify]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from pathlib import Path as FilePath
from typing import Any

HERE = FilePath(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "tests"))

GOAL = 1.0
KINDS = ("send", "notify")
TIMEOUT = 60.0


async def _until(condition: Any, what: str) -> None:
    try:
        async with asyncio.timeout(TIMEOUT):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise SystemExit(f"timed out waiting for {what}") from None


async def measure(kind: str, nodes: int, values: int) -> dict[str, Any]:
    from aiocoap.numbers.codes import Code
    from airs import TEMPERATURE, RcpAir
    from clients import FAST_RETRY, gateway_tree
    from emulators.lwm2m_node import EmulatedNode

    from bridged.delivery import Delivery, DeliveryConfig
    from bridged.engine.client import LwM2MClient, ServerConfig
    from bridged.engine.registration import EventKind
    from bridged.exposure.instances import InstancesExposure
    from bridged.registry import NodeRegistry
    from bridged.store.database import connect
    from bridged.store.nodes import NodeId, NodeStore, PairedNode
    from bridged.store.readings import ReadingStore
    from bridged.store.secrets import SecretStore
    from peers.lwm2m_server import LwM2MTestServer

    with tempfile.TemporaryDirectory() as tmp:
        state = FilePath(tmp)
        conn = connect(state / "state.db")
        readings = ReadingStore(conn)
        registry = NodeRegistry(NodeStore(conn), SecretStore(state / "s.json"), readings)
        tree = gateway_tree()
        exposure = InstancesExposure(tree, registry.store)
        registry.listen(exposure)
        air = RcpAir(registry, state)
        async with LwM2MTestServer() as server:
            client = LwM2MClient(
                tree,
                "bench-records",
                ServerConfig(server.uri, request_timeout=2.0, retry=FAST_RETRY),
                bind=("127.0.0.1", 0),
            )
            delivery = Delivery(client, readings, exposure.gateway_path, DeliveryConfig())
            registry.on_commit(delivery.notify)
            await air.start()
            committing = asyncio.create_task(registry.run())
            emulated: dict[NodeId, EmulatedNode] = {}
            try:
                await client.start()
                await delivery.start()
                version = "1.1" if kind == "send" else "1.0"
                for index in range(1, nodes + 1):
                    node_id = air.rcp.node_id(index)
                    registry.pair(PairedNode(node_id, f"n{index}", "lwm2m"))
                    node = EmulatedNode(
                        bytes.fromhex(node_id.address), f"n{index}", version=version
                    )
                    air.rcp.nodes[node_id] = emulated[node_id] = node
                    await air.rcp.air.add(node)
                for node_id, node in emulated.items():
                    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
                    values_of = registry.live[node_id].values
                    await _until(lambda v=values_of: TEMPERATURE in v, f"{node_id} observed")
                await _until(lambda: "bench-records" in server.clients, "the gateway registered")

                start = time.time() - 3600
                own_times: set[float] = set()
                for k in range(values):
                    for n, (node_id, node) in enumerate(emulated.items()):
                        value = round(10.0 + n + k / 8, 3)
                        if kind == "send":
                            at = start + k * 60 + n / 100
                            own_times.add(at)
                            response = await node.measure(value, at)
                            assert response.code == Code.CHANGED, response.code
                        else:
                            node.tree.set(TEMPERATURE, value)
                            live = registry.live[node_id]
                            await _until(
                                lambda lv=live, v=value: lv.values[TEMPERATURE].value == v,
                                "the notification",
                            )
                for node in emulated.values():  # what they sent before has reached the gateway
                    mark = len(node.events)
                    await node.update()
                    await _until(
                        lambda nd=node, m=mark: any(
                            e.kind is EventKind.UPDATE_COMPLETE for e in nd.events[m:]
                        ),
                        "an Update round trip",
                    )
                registry.flush()
                await _until(lambda: delivery.backlog(1) == 0, "delivery")
            finally:
                committing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await committing
                await delivery.stop()
                await client.stop()
                await air.stop()
                conn.close()
            records = [
                r
                for e in server.history
                if e.kind == "send" and e.code == Code.CHANGED
                for r in e.records
            ]
    measured = nodes * values
    return {
        "measured": measured,
        "records": len(records),
        "temperatures": sum(1 for r in records if r.name.endswith("/5700")),
        "own_time": sum(1 for r in records if r.time in own_times) if kind == "send" else None,
    }


def report(nodes: int, values: int, kinds: list[str]) -> None:
    """Measure each kind of node and print the table (also ``bench/nodes.py --sections
    records``)."""
    logging.getLogger("bridged").setLevel(logging.ERROR)  # the radio stopping is expected
    print("### Upstream records per measured value (802.15.4 nodes, end to end)\n")
    print(f"{nodes} nodes, {values} values each (goal: {GOAL:.1f}).\n")
    print(
        "| nodes report by | values measured | Send records at the server | of them temperatures "
        "| records per measured value | with the node's own time |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for kind in kinds:
        r = asyncio.run(measure(kind, nodes, values))
        own = "-" if r["own_time"] is None else f"{r['own_time']:,}"
        print(
            f"| {kind} | {r['measured']:,} | {r['records']:,} | {r['temperatures']:,} "
            f"| {r['records'] / r['measured']:.2f} | {own} |",
            flush=True,
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--values", type=int, default=25)
    parser.add_argument("--kinds", default=",".join(KINDS), type=lambda s: s.split(","))
    args = parser.parse_args()
    report(args.nodes, args.values, args.kinds)


if __name__ == "__main__":
    main()
