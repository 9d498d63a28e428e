"""The 802.15.4 air of bench/readings.py (``--transport 802154``), a process of its own.

The RCP emulator (tests/emulators/rcp.py) on a pty, which the gateway opens with pyserial as a
dongle, and N emulated LwM2M nodes (tests/emulators/lwm2m_node.py) on its air: real 802.15.4
frames, 6LoWPAN and CoAP, built by the nodes' own stacks. The nodes register with the gateway
(in batches, each batch once registered), and once the air has been quiet for a second (the
gateway's observations of every node answered) a node's report is one of:

* ``notify``: a LwM2M 1.0 node's measurement: the temperature changes in its tree and its
  observation notifies the gateway (CoAP NON, no answer), which makes the changed value a
  reading (transports/ieee802154/sources.py);
* ``send``: a LwM2M 1.1 node's Send of the reading with its time (CoAP CON ``POST /dp``): the
  gateway answers each with 2.04, a transmit through the RCP and its outcome back.

Talks with the orchestrator by JSON lines on stdout and commands on stdin: ``{"link"}`` once
the pty is there; ``{"registered"}`` once every node registered and the air settled; on
``warm`` each node reports once (``{"warm"}``); on ``go TOTAL RATE`` the feed (``{"fed"}``,
with the feed's wall time): ``TOTAL`` reports round robin over the nodes, ``RATE`` per second
spread evenly or ``max`` (every report in its own turn of this process's loop, at most
``IN_FLIGHT`` Sends unanswered). ``fed`` is the values that went on the air: a Send each, but
an observation notifies the latest value only, so at ``max`` a node may measure again before
its notification of the last value went out (aiocoap sends the newer one instead), as CoAP
Observe allows; ``measured`` is the values measured.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path as FilePath
from typing import Any

HERE = FilePath(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "tests"))

PAN = 0xFACE
BATCH = 20
"""Nodes that register at once: more would have the gateway's answers queue behind one
another's transmits until the nodes' CoAP retransmissions add to the load."""
IN_FLIGHT = 16
"""Sends unanswered at most, at ``max`` (a node's CoAP stack sends one at a time; 16 nodes)."""
QUIET = 1.0
"""Seconds without a transmit of the gateway after which the air is settled."""
REGISTER_TIMEOUT = 600.0


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def eui64(index: int) -> bytes:
    return bytes.fromhex(f"00124b0000{index:06x}")


async def line() -> list[str]:
    return (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).split()


async def air(count: int, report: str, state: FilePath) -> None:
    import aiocoap.error
    from emulators.lwm2m_node import TEMPERATURE, EmulatedNode, RadioAir
    from emulators.rcp import RcpEmulator

    from bridged.engine.registration import RetryPolicy
    from bridged.objects.values import Record

    retry = RetryPolicy(count=50, timer=1.0, sequence_delay=1.0, sequence_count=100)
    version = "1.0" if report == "notify" else "1.1"
    async with RcpEmulator(state / "ttyRCP") as rcp:
        emit(link=str(rcp.link))
        radio = RadioAir(rcp, PAN)
        await rcp.wait_until(lambda: rcp.raw_stream, timeout=REGISTER_TIMEOUT)
        nodes = [
            EmulatedNode(eui64(i), f"bench-{i}", version=version, retry=retry) for i in range(count)
        ]
        for first in range(0, count, BATCH):
            batch = nodes[first : first + BATCH]
            for node in batch:
                await radio.add(node)
            async with asyncio.timeout(REGISTER_TIMEOUT):
                await asyncio.gather(*(node.registered.wait() for node in batch))
        await settled(rcp)
        emit(registered=count)

        answers: list[int] = []
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def sent(node: EmulatedNode, value: float) -> None:
            try:
                response = await node.send([Record(TEMPERATURE, value, time.time())])
                answers.append(response.code.is_successful())
            except (TimeoutError, aiocoap.error.Error):  # unanswered within request_timeout
                answers.append(False)
            finally:
                gate.release()

        tasks: set[asyncio.Task[None]] = set()

        async def reported(node: EmulatedNode, value: float) -> None:
            if report == "notify":
                node.tree.set(TEMPERATURE, value)
                return
            await gate.acquire()
            task = asyncio.create_task(sent(node, value))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        await line()  # "warm"
        for k, node in enumerate(nodes):
            await reported(node, -1.0 - k)
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        emit(warm=count)

        _, total, rate = await line()  # "go TOTAL RATE"
        period = 0.0 if rate == "max" else 1.0 / float(rate)
        notified = sum(len(node.notifications) for node in nodes)
        del answers[:]  # the warm-up's
        start = time.monotonic()
        for k in range(int(total)):
            await reported(nodes[k % count], float(k))
            if period:
                await asyncio.sleep(max(start + (k + 1) * period - time.monotonic(), 0.0))
            else:
                await asyncio.sleep(0)
        fed = time.monotonic() - start
        await asyncio.gather(*tasks)
        if report == "notify":  # what the nodes' observations put on the air (see below)
            sent = sum(len(node.notifications) for node in nodes) - notified
        else:
            sent = answers.count(True)
        emit(fed=sent, measured=int(total), feed_s=fed, refused=answers.count(False))
        await line()  # "stop"
        for node in nodes:
            await node.stop(deregister=False)


async def settled(rcp: Any) -> None:
    """Return once the gateway transmitted nothing for ``QUIET`` seconds."""
    seen, since = len(rcp.sent), time.monotonic()
    while time.monotonic() - since < QUIET:
        await asyncio.sleep(0.1)
        if len(rcp.sent) != seen:
            seen, since = len(rcp.sent), time.monotonic()


if __name__ == "__main__":
    asyncio.run(air(int(sys.argv[1]), sys.argv[2], FilePath(sys.argv[3])))
