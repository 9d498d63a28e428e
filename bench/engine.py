"""The LwM2M engine under load, each figure next to aiocoap's own ceiling from the same run.

The ceiling is a bare aiocoap server context answering a trivial GET resource with stock
aiocoap settings, driven by the same load generator as the engine. The load generator is a
separate process speaking raw CoAP over UDP from several sockets (so that no socket wraps its
Message IDs within a receiver's deduplication window), keeping a fixed number of CON GETs in
flight; the server under test is a process of its own too, so its CPU time and RSS are its own.

Sections:

* **read**: Read throughput of one resource (/3/0/0, text/plain) served by the engine's
  DeviceManagementResource in a context from ``bridged.engine.coap``, in requests/s and CPU
  time per request, as a ratio to the ceiling (goal: at least 50 %).
* **register**: a Register of 5,000 object instances (Block1) by ``LwM2MClient`` against the
  in-repo test server, until the server has the whole object list (goal: under 2 s).
* **notify**: notifications per second the engine sends to one loopback observer that observes
  1,000 resources (/3303/i/5700, pmin=0) whose values change as fast as the server process can
  change them, as a ratio to the ceiling: a bare aiocoap server with 1,000 observable resources
  driven the same way (goal: at least 50 %).
* **memory**: RSS of the server process after ``--minutes`` of reads as fast as the load
  generator gets answers, for the engine and for the bare aiocoap server, with the
  deduplication entries each holds and the longest event-loop stall (goal for the engine: under
  100 MB after 10 minutes).
* **attributes**: CPU time of ``--writes`` Write-Attributes, one per observed resource (a
  server setting pmin/pmax on each node), in the process itself.
* **discover**: CPU time of ``--discovers`` Discovers of one instance each among ``--nodes``
  nodes' instances (three per node, as the instances mode shows them), in the process itself.

    .venv/bin/python bench/engine.py [--sections read,notify,register,memory,attributes,discover]
                                     [--seconds S] [--minutes M] [--inflight N] [--sockets K]
                                     [--writes N] [--nodes N] [--discovers N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import CON

from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.coap import create_context, message_managers, notification_turns
from bridged.engine.dm import DeviceManagement, DeviceManagementResource, Request
from bridged.engine.observe import Observations
from bridged.engine.udp import guard_received_datagrams
from bridged.objects.builtin import builtin_definitions
from bridged.objects.formats import ContentFormat
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree

READ_GOAL = 0.5
REGISTER_GOAL_S = 2.0
RSS_GOAL_MB = 100.0
HERE = FilePath(__file__).resolve()
TESTS = HERE.parent.parent / "tests"

# -- the server under test (a process of its own) -----------------------------------------------

TARGETS = {
    "aiocoap": "bare aiocoap server, trivial GET (the ceiling)",
    "engine": "engine, Read /3/0/0",
}
TARGET_PATH = {"aiocoap": ("hello",), "engine": ("3", "0", "0")}
OBSERVED = 1000


class Hello(resource.Resource):
    """The ceiling's resource: a fixed short payload, nothing else."""

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(code=Code.CONTENT, payload=b"ACME")


async def serve_observed() -> tuple[aiocoap.Context, asyncio.Task[None]]:
    """The engine with ``OBSERVED`` temperatures, and a task that, once all of them are
    observed, changes every value and yields to the loop, over and over: as many changes as
    the engine can notify."""
    tree = ObjectTree(builtin_definitions())
    for i in range(OBSERVED):
        tree.create_instance(3303, i, [(5700, 0.0)])
    dm = DeviceManagement(tree)
    observations = Observations(dm)
    context = await create_context(DeviceManagementResource(dm, observations), ("127.0.0.1", 0))
    guard_received_datagrams(context)  # as an uplink's: the RTT from arrival stamps
    observations.turns = notification_turns(context)
    paths = [Path((3303, i, 5700)) for i in range(OBSERVED)]

    async def change_forever() -> None:
        while len(observations) < OBSERVED:
            await asyncio.sleep(0.05)
        tick = 0
        while True:
            tick += 1
            for path in paths:
                tree.set(path, float(tick))
            await asyncio.sleep(0)

    return context, asyncio.create_task(change_forever())


async def serve(kind: str) -> None:
    """Serve ``kind`` on 127.0.0.1, print the port, run until stdin closes, print statistics."""
    changer = None
    if kind == "engine-observe":
        context, changer = await serve_observed()
    elif kind == "aiocoap":
        site = resource.Site()
        site.add_resource(["hello"], Hello())
        context = await aiocoap.Context.create_server_context(
            site, bind=("127.0.0.1", 0), transports=["udp6"]
        )
    else:
        tree = ObjectTree(builtin_definitions())
        tree.create_instance(3, 0, [(0, "ACME"), (1, "bridged"), (16, "U")])
        site = DeviceManagementResource(DeviceManagement(tree))
        context = await create_context(site, ("127.0.0.1", 0))
    mman = context.request_interfaces[0].token_interface
    print(mman.message_interface._local_port(), flush=True)

    loop = asyncio.get_running_loop()
    stall = 0.0

    async def watch_loop() -> None:
        nonlocal stall
        while True:
            t0 = loop.time()
            await asyncio.sleep(0.01)
            stall = max(stall, loop.time() - t0 - 0.01)

    watcher = asyncio.create_task(watch_loop())
    await loop.run_in_executor(None, sys.stdin.read)
    watcher.cancel()
    if changer is not None:
        changer.cancel()
    bounded = message_managers(context)
    stats = {
        "dedup": len(bounded[0].dedup) if bounded else len(mman._recent_messages),
        "evicted": bounded[0].dedup.evicted if bounded else 0,
        "stall_ms": stall * 1000,
    }
    print(json.dumps(stats), flush=True)
    os._exit(0)  # the statistics are out; tearing down 100,000s of timers proves nothing


# -- the load generator (a process of its own) --------------------------------------------------


def get_template(path: tuple[str, ...]) -> bytearray:
    """A CON GET for ``path`` with a 4-byte token; Message ID and token are patched per send."""
    message = aiocoap.Message(code=Code.GET, uri_path=path)
    message.mtype, message.mid, message.token = CON, 0, b"\0\0\0\0"
    return bytearray(message.encode())


def load(port: int, path: tuple[str, ...], seconds: float, inflight: int, sockets: int) -> None:
    """Keep ``inflight`` GETs outstanding for ``seconds`` (after one second of warm-up), or until
    SIGTERM; print the answers counted as JSON. A request unanswered for 2 s is counted lost and
    replaced."""
    template = get_template(path)
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(sockets):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        socks.append(sock)
        sel.register(sock, selectors.EVENT_READ, len(socks) - 1)
    mids = [random.randrange(65536) for _ in socks]
    pending: list[dict[bytes, float]] = [{} for _ in socks]
    token = random.randrange(1 << 32)
    counts: dict[str, float] = {"answered": 0, "lost": 0, "bad": 0}
    stopped: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopped.append(signum))

    def send(i: int, now: float) -> None:
        nonlocal token
        token = (token + 1) & 0xFFFFFFFF
        mids[i] = (mids[i] + 1) & 0xFFFF
        tok = token.to_bytes(4, "big")
        template[2:4] = mids[i].to_bytes(2, "big")
        template[4:8] = tok
        pending[i][tok] = now
        socks[i].send(template)

    start = time.monotonic()
    for n in range(inflight):
        send(n % sockets, start)
    measure_from = start + 1.0
    end = measure_from + seconds
    next_sweep = start + 0.5
    counting = False
    while True:
        now = time.monotonic()
        if now >= end or stopped:
            break
        if not counting and now >= measure_from:
            counting, counts = True, dict.fromkeys(counts, 0)
        for key, _ in sel.select(0.2):
            i = key.data
            while True:
                try:
                    data = socks[i].recv(2048)
                except BlockingIOError:
                    break
                tkl = data[0] & 0x0F
                if data[1] == 0:  # an empty ACK; a separate response follows
                    continue
                if data[0] >> 4 & 3 == 0:  # a separate CON response: acknowledge it
                    socks[i].send(bytes([0x60, 0]) + data[2:4])
                if pending[i].pop(data[4 : 4 + tkl], None) is None:
                    continue
                counts["answered" if data[1] == 0x45 else "bad"] += 1
                send(i, now)
        if now >= next_sweep:
            next_sweep = now + 0.5
            for i in range(sockets):
                for tok in [t for t, sent in pending[i].items() if now - sent > 2.0]:
                    del pending[i][tok]
                    counts["lost"] += 1
                    send(i, now)
    counts["seconds"] = time.monotonic() - measure_from
    print(json.dumps(counts), flush=True)


def observe_load(port: int, seconds: float) -> None:
    """Observe every temperature from one socket (a LwM2M server is one peer), acknowledge
    confirmable notifications, and count the notifications received in ``seconds`` once every
    observation is established; print the counts as JSON. Observe requests go out in small
    batches and are repeated until answered, as a burst of 1,000 overflows a socket buffer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(0.05)
    requests = {}
    for i in range(OBSERVED):
        message = aiocoap.Message(code=Code.GET, uri_path=("3303", str(i), "5700"), observe=0)
        message.mtype, message.mid, message.token = CON, i, i.to_bytes(4, "big")
        requests[message.token] = message.encode()
    established: set[bytes] = set()
    counts: dict[str, float] = {"notifications": 0, "con": 0}

    def receive() -> None:
        try:
            data = sock.recv(2048)
        except TimeoutError:
            return
        if len(data) < 4 or data[1] == 0:
            return  # an empty ACK
        if data[0] >> 4 & 3 == 0:
            sock.send(bytes([0x60, 0]) + data[2:4])  # acknowledge a confirmable notification
            counts["con"] += 1
        token = data[4 : 4 + (data[0] & 0x0F)]
        if token in requests and data[1] == 0x45:
            established.add(token)
            counts["notifications"] += 1

    deadline = time.monotonic() + 60.0
    while len(established) < OBSERVED and time.monotonic() < deadline:
        for token in [t for t in requests if t not in established][:50]:
            sock.send(requests[token])
        until = time.monotonic() + 0.5
        while time.monotonic() < until and len(established) < OBSERVED:
            receive()
    counts["observing"] = len(established)
    counts["notifications"] = counts["con"] = 0
    start = time.monotonic()
    while time.monotonic() < start + seconds:
        receive()
    counts["seconds"] = time.monotonic() - start
    print(json.dumps(counts), flush=True)


# -- orchestration ---------------------------------------------------------------------------


@dataclass
class Run:
    """One load run against one server process."""

    kind: str
    answered: int
    lost: int
    seconds: float
    cpu_s: float
    rss_mb: float
    peak_rss_mb: float
    server: dict[str, Any]
    stopped_early: bool = False

    @property
    def rate(self) -> float:
        return self.answered / self.seconds

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_s * 1000 / max(1, self.answered)


def proc_cpu_s(pid: int) -> float:
    fields = FilePath(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in FilePath(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_load(
    kind: str,
    seconds: float,
    args: argparse.Namespace,
    sample: Callable[[float, float], None] | None = None,
    rss_cap_mb: float | None = None,
) -> Run:
    """Start a ``kind`` server process, load it for ``seconds``, and collect the figures."""
    me = [sys.executable, str(HERE)]
    server = subprocess.Popen(
        [*me, "--serve", kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        port = int(server.stdout.readline())
        gen = subprocess.Popen(
            [
                *me,
                "--load",
                str(port),
                "/".join(TARGET_PATH[kind]),
                f"--seconds={seconds}",
                f"--inflight={args.inflight}",
                f"--sockets={args.sockets}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)  # the generator's warm-up
        cpu0, t0, peak, stopped = proc_cpu_s(server.pid), time.monotonic(), 0.0, False
        while gen.poll() is None:
            time.sleep(min(5.0, seconds / 4))
            rss = proc_rss_mb(server.pid)
            peak = max(peak, rss)
            if sample is not None:
                sample(time.monotonic() - t0, rss)
            if rss_cap_mb is not None and rss > rss_cap_mb and gen.poll() is None:
                gen.terminate()
                stopped = True
        cpu = proc_cpu_s(server.pid) - cpu0
        rss = proc_rss_mb(server.pid)
        out = gen.stdout.read() if gen.stdout else ""
        counts = json.loads(out)
        server.stdin.close()
        stats = json.loads(server.stdout.readline() or "{}")
        return Run(
            kind,
            counts["answered"],
            counts["lost"],
            counts["seconds"],
            cpu,
            rss,
            max(peak, rss),
            stats,
            stopped,
        )
    finally:
        server.kill()
        server.wait()


def run_observe(seconds: float) -> dict[str, float]:
    """The observer's counts against a fresh engine process."""
    me = [sys.executable, str(HERE)]
    server = subprocess.Popen(
        [*me, "--serve", "engine-observe"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        port = int(server.stdout.readline())
        observer = subprocess.run(
            [*me, "--observe", str(port), f"--seconds={seconds}"],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        counts: dict[str, float] = json.loads(observer.stdout)
        return counts
    finally:
        server.kill()
        server.wait()


def section_notify(args: argparse.Namespace) -> None:
    print(
        f"\nNotifications: {OBSERVED:,} resources observed (pmin=0) by one server socket, every"
        f" value changing as fast as the engine notifies; {args.seconds:g} s each"
    )
    ceiling = run_load("aiocoap", args.seconds, args).rate
    counts = run_observe(args.seconds)
    rate = counts["notifications"] / counts["seconds"]
    print(f"{'server':<52} {'per s':>8} {'CON':>6} {'of ceiling':>11}")
    print(f"{TARGETS['aiocoap'] + ', GET':<52} {ceiling:>8.0f} {'':>6} {1:>11.0%}")
    observing = "" if counts["observing"] == OBSERVED else f" ({counts['observing']:.0f} observed)"
    label = f"engine, notifications of {OBSERVED:,} observations{observing}"
    print(f"{label:<52} {rate:>8.0f} {counts['con']:>6.0f} {rate / ceiling:>11.0%}")
    print(f"goal: the engine at {READ_GOAL:.0%} of the ceiling or more")


def section_read(args: argparse.Namespace) -> None:
    print(
        f"\nRead throughput: {args.seconds:g} s each, {args.inflight} CON GETs in flight"
        f" from {args.sockets} sockets"
    )
    runs = [run_load(kind, args.seconds, args) for kind in TARGETS]
    ceiling = runs[0].rate
    print(f"{'server':<46} {'req/s':>8} {'CPU ms/req':>11} {'lost':>5} {'of ceiling':>11}")
    for run in runs:
        ratio = run.rate / ceiling if ceiling else 0.0
        print(
            f"{TARGETS[run.kind]:<46} {run.rate:>8.0f} {run.cpu_ms_per_request:>11.3f}"
            f" {run.lost:>5} {ratio:>11.0%}"
        )
    print(f"goal: the engine at {READ_GOAL:.0%} of the ceiling or more")


async def register_instances(count: int) -> tuple[float, int, int]:
    """Seconds from ``start()`` until the test server has all ``count`` instances; payload
    bytes and blocks."""
    sys.path.insert(0, str(TESTS))
    from peers.lwm2m_server import LwM2MTestServer

    tree = ObjectTree(builtin_definitions())
    tree.create_instance(3, 0, [(0, "ACME")])
    for i in range(count):
        tree.create_instance(3303, i, [(5700, 20.0 + i / 100)])
    async with LwM2MTestServer() as server:
        assert server.context is not None
        mman = server.context.request_interfaces[0].token_interface
        blocks = 0
        dispatch = mman.dispatch_message

        def count_blocks(message: aiocoap.Message) -> None:
            nonlocal blocks
            blocks += message.opt.block1 is not None
            dispatch(message)

        mman.dispatch_message = count_blocks
        client = LwM2MClient(tree, "bench", ServerConfig(uri=server.uri), bind=("127.0.0.1", 0))
        t0 = time.perf_counter()
        await client.start()
        event = await asyncio.wait_for(server.next_event("register"), 60)
        elapsed = time.perf_counter() - t0
        await client.stop()
    assert event.payload.count(b"</3303/") == count, "the server got every instance"
    return elapsed, len(event.payload), blocks


def section_register(args: argparse.Namespace) -> None:
    count = 5000
    elapsed, size, blocks = asyncio.run(register_instances(count))
    print(f"\nRegister of {count:,} object instances against the in-repo test server")
    print(f"{'instances':>9} {'bytes':>7} {'blocks':>7} {'seconds':>8}  goal")
    print(f"{count:>9,} {size:>7,} {blocks:>7} {elapsed:>8.3f}  under {REGISTER_GOAL_S:g} s")


def section_memory(args: argparse.Namespace) -> None:
    seconds = args.minutes * 60
    print(
        f"\nMemory: {args.minutes:g} min of reads as fast as answered, {args.inflight} in flight"
        f" from {args.sockets} sockets; RSS of the server process"
    )
    runs = []
    for kind in ("engine", "aiocoap"):
        trace: list[tuple[float, float]] = []
        runs.append(
            run_load(
                kind,
                seconds,
                args,
                sample=lambda t, rss, trace=trace: trace.append((t, rss)),
                rss_cap_mb=args.rss_cap_mb,
            )
        )
        points = trace[:: max(1, len(trace) // 6)]
        print(f"  {kind} RSS MB over time: " + ", ".join(f"{t:.0f}s {r:.0f}" for t, r in points))
    header = f"{'server':<46} {'req/s':>7} {'RSS MB':>7} {'peak MB':>8} {'dedup':>8}"
    print(header + f" {'stall ms':>9}")
    for run in runs:
        note = " (stopped at the RSS cap)" if run.stopped_early else ""
        print(
            f"{TARGETS[run.kind]:<46} {run.rate:>7.0f} {run.rss_mb:>7.1f} {run.peak_rss_mb:>8.1f}"
            f" {run.server.get('dedup', 0):>8} {run.server.get('stall_ms', 0):>9.0f}{note}"
        )
    print(f"goal: the engine under {RSS_GOAL_MB:g} MB")


class SinkPipe:
    """Stands in for aiocoap's pipe in the in-process sections: keeps nothing."""

    def __init__(self, request: aiocoap.Message) -> None:
        self.request = request

    def add_response(self, message: aiocoap.Message, is_last: bool = False) -> None:
        pass


async def write_attributes_cpu(count: int) -> float:
    """CPU seconds of ``count`` Write-Attributes, one per observed /3303/i/5700 (what a server
    does to set pmin/pmax on each node), each through ``Observations.render_to_pipe`` and the
    scheduler's next step."""
    tree = ObjectTree(builtin_definitions())
    for i in range(count):
        tree.create_instance(3303, i, [(5700, 20.0)])
    observations = Observations(DeviceManagement(tree), clock=lambda: 0.0, limit=count)
    serving = []
    for i in range(count):
        get = aiocoap.Message(code=Code.GET, uri_path=["3303", str(i), "5700"], observe=0)
        get.token, get.remote = i.to_bytes(4, "big"), "server"
        serving.append(asyncio.create_task(observations.serve(SinkPipe(get))))
    await asyncio.sleep(0)
    assert len(observations) == count
    dm = observations.dm

    async def render(pipe: SinkPipe) -> None:
        dm.handle(Request.of(pipe.request))

    t0 = time.process_time()
    for i in range(count):
        put = aiocoap.Message(code=Code.PUT, uri_path=["3303", str(i), "5700"])
        put.opt.uri_query, put.remote = ("pmin=10", "pmax=60"), "server"
        await observations.render_to_pipe(SinkPipe(put), render)
        observations.step(0.0)
    cpu = time.process_time() - t0
    await observations.close()
    await asyncio.gather(*serving)
    return cpu


def section_attributes(args: argparse.Namespace) -> None:
    count = args.writes
    cpu = asyncio.run(write_attributes_cpu(count))
    print(f"\nWrite-Attributes on each of {count:,} observed resources, one after the other")
    print(f"{'writes':>7} {'CPU s':>7} {'CPU us/write':>13}")
    print(f"{count:>7,} {cpu:>7.2f} {cpu / count * 1e6:>13.0f}")


def discover_cpu(nodes: int, count: int) -> float:
    """CPU seconds of ``count`` Discovers of one temperature instance each (/3303/i), in a
    tree with ``nodes`` nodes' instances as the instances mode shows them: a temperature, a
    humidity and a light switch each."""
    tree = ObjectTree(builtin_definitions())
    for i in range(nodes):
        tree.create_instance(3303, i, [(5700, 20.0), (5750, f"room{i}")])
        tree.create_instance(3304, i, [(5700, 50.0)])
        tree.create_instance(3311, i, [(5850, False)])
    dm = DeviceManagement(tree)
    link = ContentFormat.LINK_FORMAT
    requests = [Request(Code.GET, ["3303", str(i % nodes)], accept=link) for i in range(count)]
    t0 = time.process_time()
    for request in requests:
        assert dm.handle(request).code == Code.CONTENT
    return time.process_time() - t0


def section_discover(args: argparse.Namespace) -> None:
    nodes, count = args.nodes, args.discovers
    cpu = discover_cpu(nodes, count)
    print(f"\nDiscover of one instance among {nodes:,} nodes' {3 * nodes:,} instances")
    print(f"{'discovers':>9} {'CPU s':>7} {'CPU us/discover':>16}")
    print(f"{count:>9,} {cpu:>7.2f} {cpu / count * 1e6:>16.0f}")


# One entry per section, run in this order.
SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {
    "read": section_read,
    "notify": section_notify,
    "register": section_register,
    "memory": section_memory,
    "attributes": section_attributes,
    "discover": section_discover,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--seconds", type=float, default=10.0, help="per read-throughput run")
    parser.add_argument("--minutes", type=float, default=0.5, help="per memory run")
    parser.add_argument("--inflight", type=int, default=32)
    parser.add_argument("--sockets", type=int, default=32)
    parser.add_argument("--writes", type=int, default=5000, help="Write-Attributes section")
    parser.add_argument("--nodes", type=int, default=10000, help="Discover section")
    parser.add_argument("--discovers", type=int, default=1000, help="Discover section")
    parser.add_argument("--rss-cap-mb", type=float, default=2048.0, help="stop a run beyond it")
    parser.add_argument("--serve", choices=[*TARGETS, "engine-observe"], help=argparse.SUPPRESS)
    parser.add_argument("--observe", metavar="PORT", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=2, metavar=("PORT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    if args.observe:
        observe_load(args.observe, args.seconds)
        return
    if args.load:
        port, path = args.load
        load(int(port), tuple(path.split("/")), args.seconds, args.inflight, args.sockets)
        return
    print(f"bridged engine benchmarks; aiocoap {aiocoap.meta.version}, {os.cpu_count()} cores")
    for name in args.sections.split(","):
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
