"""An 802.15.4 node's NON notification above the link, alone: the node server's instructions from
the link's decoded ``Notification`` to the registry's ``readings`` call, per notification,
under callgrind.

One process, run under valgrind with instrumentation off at the start (the default runs it
so). A node registered as LwM2M 1.0 (it reports by notifying) observed at /3303 by the node
server (``NodeServer`` with its ``NodeEvents``), its observation's first answer taken before
the measure; then ``--notifications`` notifications of the emulated node's /3303 pack (its
Sensor Value, a new float each, and its Sensor Units, ``82 a3 21 "/3303/" 00 "0/5700" 02 fb
... a2 00 "0/5701" 03 "Cel"``), each handed over as the link's message interface hands one
(``notifications.each_notification``'s callback: RFC 7641's order, then the node server's
``_notified``): the SenML CBOR decode, the node's state, the readings rule (``sources``), the
hand-over through ``NodeEvents``. The registry is a stub that counts what it is told. Left out:
the receive chain below the Notification (``bench/radio.py``), and everything after the
registry's call (``bench/reports.py``, ``bench/readings.py``).

    .venv/bin/python bench/notified.py [--notifications 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import callgrind_run

PACK = "82a321662f333330332f0066302f3537303002fb{}a20066302f35373031036343656c"
"""The emulated node's /3303 notification: its Sensor Value's 8 bytes go in the braces."""


def pack(value: float) -> bytes:
    return bytes.fromhex(PACK.format(struct.pack(">d", value).hex()))


class Registry:
    """The core's side: counts the readings and states it is told."""

    def __init__(self) -> None:
        self.readings = 0
        self.states = 0

    def readings_of(self, node: Any, records: Sequence[Any]) -> None:
        self.readings += len(records)

    def state(self, node: Any, state: Any) -> None:
        self.states += 1

    def session(self, node: Any, session: Mapping[str, Any] | None) -> None:
        pass

    def values(self, node: Any, records: Sequence[Any]) -> None:
        pass


async def measure(count: int) -> None:
    """The notifications, instrumented (this process runs under callgrind)."""
    from aiocoap.numbers.codes import Code

    from bridged.objects.builtin import builtin_definitions
    from bridged.objects.formats.senml_cbor_usual import UsualPack
    from bridged.objects.paths import Path
    from bridged.transports.ieee802154.coap_link import LowpanAddress
    from bridged.transports.ieee802154.coap_notification import Notification
    from bridged.transports.ieee802154.node_events import NodeEvents
    from bridged.transports.ieee802154.node_server import NodeRegistration, NodeServer
    from bridged.transports.ieee802154.notifications import Order

    registry = Registry()
    events = NodeEvents(registry)  # type: ignore[arg-type]
    events.readings = registry.readings_of  # type: ignore[method-assign]
    server = NodeServer("802154", events, builtin_definitions())
    address = LowpanAddress(None, bytes(16), 5683, bytes.fromhex("00124b0000000001"))  # type: ignore[arg-type]
    node = server.node_of(address)
    registration = NodeRegistration(
        node=node,
        address=address,
        endpoint="bench-0",
        location="1",
        lifetime=300,
        binding="U",
        queue=False,
        version="1.0",
        objects={3303: [0]},
        last_heard=0.0,
    )
    server.registrations[node] = registration
    path, usual, order = Path((3303,)), UsualPack(server.definitions), Order(1)
    first = Notification(b"tk", Code.CONTENT, 1, 112, pack(-1.0))
    server._notified(registration, first, path, usual, first=True)
    notifications = [
        Notification(b"tk", Code.CONTENT, k + 2, 112, pack(20.0 + k / 64)) for k in range(count)
    ]

    def decoded(notification: Notification) -> None:  # as each_notification's callback
        if order.newer(notification.observe):
            server._notified(registration, notification, path, usual, first=False)

    callgrind_run.instrument("on")
    for notification in notifications:
        decoded(notification)
    callgrind_run.instrument("off")
    print(json.dumps({"notifications": count, "readings": registry.readings}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notifications", type=int, default=2000)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        asyncio.run(measure(args.notifications))
        return
    stdout, instructions = callgrind_run.run(
        __file__,
        ["--measure", "--notifications", str(args.notifications)],
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    told = json.loads(stdout.splitlines()[-1])
    assert told["readings"] == told["notifications"], "every notification a reading"
    print("| notifications | readings | instructions per notification |")
    print("|---:|---:|---:|")
    print(
        f"| {told['notifications']:,} | {told['readings']:,} "
        f"| {instructions / told['notifications'] / 1000:.1f} k |"
    )


if __name__ == "__main__":
    main()
