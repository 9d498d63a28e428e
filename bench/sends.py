"""A Send's exchange alone: the gateway's instructions to send a Send already encoded and have
its answer, per Send and per record, under callgrind.

Two processes: the in-repo LwM2M server (``bench/readings.py --serve``: it decodes every Send
with its own code and answers 2.04) and this one, the engine's ``LwM2MClient`` registered to it
(run under valgrind with instrumentation off at the start: ``--callgrind``, the default, runs
it so). Each Send is 256 records (``--records``) of one resource at times 0.137 s apart, the payload
``send_payload`` makes of them (about 21 bytes a record, 5.4 KB: 6 Block1 messages of at most
1,024 bytes), encoded before the measure and handed to ``ServerSession.send_encoded`` with its
record count, as Delivery does; three Sends before the measure (registration, the first
address resolution), then ``--sends`` Sends measured, one after the other. What is counted is
the Send from ``ServerSession.send_encoded`` to its outcome: the checks, the request and its Block1
blocks through aiocoap's message layer, the answers. Left out: the encoding and the batch
(bench/readings.py measures the whole path), the server's CPU, and the kernel's (``sendmsg``
wakes the server's process: callgrind counts user space only).

    .venv/bin/python bench/sends.py [--sends 40] [--records 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path as FilePath

import callgrind_run

HERE = FilePath(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "tests"))


async def measure(sends: int, records: int) -> dict[str, int]:
    """The Sends, instrumented (this process runs under callgrind); the server's counts."""
    from clients import gateway_tree

    from bridged.engine.client import LwM2MClient, ServerConfig
    from bridged.engine.send import send_payload
    from bridged.objects.paths import Path
    from bridged.objects.values import Record

    server = subprocess.Popen(
        [sys.executable, str(HERE.parent / "readings.py"), "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    port = json.loads(server.stdout.readline())["port"]
    client = LwM2MClient(
        gateway_tree(),
        "bench-sends",
        ServerConfig(f"coap://127.0.0.1:{port}"),
        bind=("127.0.0.1", 0),
    )
    await client.start()
    while not (client.sessions and client.sessions[0].registrar.registered):
        await asyncio.sleep(0.05)
    session = client.sessions[0]
    temperature = Path.parse("/3303/0/5700")
    batches = [
        [Record(temperature, 20.0 + k / 7 + s, 1.7e9 + k * 0.137 + s * 100) for k in range(records)]
        for s in range(sends + 3)
    ]
    payloads = [send_payload(batch) for batch in batches]
    for batch, payload in zip(batches[:3], payloads[:3], strict=True):
        assert (await session.send_encoded(payload, len(batch))).delivered
    callgrind_run.instrument("on")
    for batch, payload in zip(batches[3:], payloads[3:], strict=True):
        assert (await session.send_encoded(payload, len(batch))).delivered
    callgrind_run.instrument("off")
    await client.stop()
    server.stdin.close()
    counts = [json.loads(line) for line in server.stdout if '"messages"' in line]
    server.wait()
    return {"sends": counts[-1]["sends"], "messages": counts[-1]["messages"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=40)
    parser.add_argument("--records", type=int, default=256, help="records a Send")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.sends, args.records))), flush=True)
        return
    stdout, instructions = callgrind_run.run(
        __file__,
        ["--measure", "--sends", str(args.sends), "--records", str(args.records)],
    )
    counts = json.loads(stdout.splitlines()[-1])
    per_send = instructions / args.sends
    messages = counts["messages"] / counts["sends"]  # every Send alike, the first three too
    print(
        "| Sends | records per Send | messages per Send | instructions per Send"
        " | per message | per record |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.sends} | {args.records} | {messages:.1f} | {per_send / 1e6:.2f} M "
        f"| {per_send / messages / 1000:,.0f} k | {per_send / args.records / 1000:.1f} k |"
    )


if __name__ == "__main__":
    main()
