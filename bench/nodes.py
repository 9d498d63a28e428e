"""The three exposure modes with many nodes: memory, registration time, readings per second.

Three processes: this one orchestrates; the **server** is the in-repo LwM2M test server
(tests/peers/lwm2m_server.py) on 127.0.0.1; the **gateway** is the engine with the node
registry, the simulated transport and the exposure mode under test, pinned to one core, so its
RSS and CPU are its own.

* **register**: N simulated nodes are paired in a fresh SQLite store (before the clock starts);
  then the gateway loads them, builds the exposure and registers. ``startup`` is loading and
  exposing, ``register`` from starting the client(s) until the server has accepted every
  registration (one in instances and gateway mode, N in endpoints mode), RSS is the gateway
  process's after that; ``failed`` counts the Registers that failed on the way (each retried),
  ``stop`` is the time to de-register everything. Goal: at most 64 MB for 1,000 nodes in
  instances mode.
* **readings** (observed values, not delivery): with ``--rate-nodes`` nodes registered, the
  server observes every node's temperature (instances: /3303/x/5700 from the Register;
  gateway: it reads /25/x/1 for each prefix, as a gateway-aware server does, then observes
  /devN/3303/0/5700; endpoints: /3303/0/5700 of each endpoint). The gateway then reports
  ``--readings`` readings through ``NodeRegistry.readings`` (the transport interface, with its
  commit to SQLite), round robin over the nodes, yielding to the event loop every 5 readings
  per node, and the figure is readings / (time from the first reading to the server holding
  every node's last value). The tree shows a node's readings once their group commit is done
  (``COMMIT_WINDOW``, bridged/registry.py), and a notification carries the state when it
  goes out, so each carries the last of the node's readings that one commit took: readings
  per notification is about a node's readings fed per commit (the window plus the commit's
  own time), which grows with the feed rate and shrinks with the nodes. The notifications are
  NON, and bursts of them overflow the server's socket buffer on loopback; a lost one is not
  resent (RFC 7641), so the server reads a value it still waits for once no notification came
  for ``QUIET`` seconds (counted as ``recovered``). What it leaves out:
  Delivery and Send, which is how readings go upstream (no Delivery runs here); the figure is
  how fast the observed value follows the readings, not readings delivered. bench/readings.py
  measures the readings' real path, by Send, one reading per report.

    .venv/bin/python bench/nodes.py [--modes instances,gateway,endpoints]
                                    [--counts 100,1000,5000] [--readings 100000]
                                    [--rate-nodes 100,1000,5000]
                                    [--sections register,readings,records]

* **records**: upstream records per measured value, 802.15.4 nodes end to end through the RCP
  emulator (bench/records.py, which runs alone with more options). Goal: 1.0.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import queue
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path as FilePath
from typing import Any

HERE = FilePath(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "tests"))

RSS_GOAL_MB = 64.0
TRACE_ENV = "BENCH_TRACEMALLOC"
"""A file the gateway dumps a ``tracemalloc`` snapshot to once all are registered (it traces
from its start; what it costs is in its RSS and times then): what each part of the gateway
holds, compared between two counts (docs/benchmarks.md); and beside it, ``<file>.gc.json``, the
objects the garbage collector tracks (containers and instances: no str, int or float), counted
by type."""
FINAL = -40.0
"""The last reading of every node: when the server holds it everywhere, all was delivered."""
GATEWAY = "bench-gw"
QUIET = 2.0
"""Seconds without a notification after which the server reads the values it still waits for
(a notification lost on loopback is not resent; without this the run waited for ever)."""
MODES = ("instances", "gateway", "endpoints")


def rss_mb() -> float:
    for line in FilePath("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def raise_fd_limit() -> int:
    """Endpoints mode needs a socket per node: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


# -- the server (a process of its own) -----------------------------------------------------------


def socket_drops(sock: Any) -> int:
    """Datagrams the kernel dropped at ``sock`` because its receive buffer was full (the drops
    column of /proc/net/udp6 or /proc/net/udp); -1 where that is not known."""
    inode = os.fstat(sock.fileno()).st_ino
    for table in ("/proc/net/udp6", "/proc/net/udp"):
        try:
            with open(table) as f:
                rows = [line.split() for line in f.readlines()[1:]]
        except OSError:
            continue
        for row in rows:
            if int(row[9]) == inode:
                return int(row[-1])
    return -1


async def serve(mode: str, observe_nodes: int) -> None:
    """Accept registrations; when ``observe_nodes`` > 0, observe every node's temperature and
    report when each holds ``FINAL``."""
    import aiocoap
    from aiocoap.numbers.codes import Code
    from server_events import until_stdin_closes

    from peers.lwm2m_server import LwM2MTestServer

    raise_fd_limit()
    srv = LwM2MTestServer()
    await srv.start()
    emit(port=srv.port)
    registered: set[str] = set()
    waiting: set[tuple[str, str]] = set()
    notifications = recovered = 0
    noted = time.monotonic()
    observing = 0
    requests: list[Any] = []

    def got(key: tuple[str, str], payload: bytes) -> None:
        if key in waiting and float(payload) == FINAL:
            waiting.discard(key)
            if not waiting:
                emit(
                    done=time.monotonic(),
                    notifications=notifications,
                    recovered=recovered,
                    dropped=socket_drops(srv._socket()),
                )

    def on_note(key: tuple[str, str], message: aiocoap.Message) -> None:
        nonlocal notifications, noted
        notifications += 1
        noted = time.monotonic()
        got(key, message.payload)

    async def recover() -> None:
        """Read what is still awaited once the notifications went quiet (see ``QUIET``)."""
        nonlocal recovered, noted
        while True:
            await asyncio.sleep(QUIET / 4)
            if observing < observe_nodes or not waiting or time.monotonic() - noted < QUIET:
                continue
            noted = time.monotonic()  # one round of reads per quiet spell
            for endpoint, path in list(waiting):
                read = await srv.request(endpoint, Code.GET, path)
                if read.code == Code.CONTENT and float(read.payload) == FINAL:
                    recovered += 1
                    got((endpoint, path), read.payload)

    async def watch(endpoint: str, path: str) -> None:
        nonlocal observing, noted
        request = srv.observe(endpoint, path)
        requests.append(request)
        first = await request.response
        if first.code != Code.CONTENT:
            raise RuntimeError(f"observe {endpoint} {path}: {first.code} {first.payload!r}")
        key = (endpoint, path)
        waiting.add(key)
        assert request.observation is not None
        request.observation.register_callback(lambda m: on_note(key, m), _suppress_deprecation=True)
        observing += 1
        if observing == observe_nodes:
            noted = time.monotonic()  # quiet from here on only if the notifications stop
            emit(observing=observing)

    async def watch_registration(endpoint: str, links: str) -> None:
        if mode == "endpoints":
            await watch(endpoint, "/3303/0/5700")
            return
        targets = [t.split(">")[0].lstrip("<") for t in links.split(",")]
        if mode == "instances":
            for t in targets:
                if t.startswith("/3303/"):
                    await watch(endpoint, f"{t}/5700")
            return
        for t in targets:
            if t.startswith("/25/"):
                prefix = await srv.request(endpoint, Code.GET, f"{t}/1")
                await watch(endpoint, f"/{prefix.payload.decode()}/3303/0/5700")

    tasks = [asyncio.create_task(recover())] if observe_nodes else []
    async for event in until_stdin_closes(srv):
        if event.kind == "register" and event.code == Code.CREATED:
            registered.add(event.endpoint)
            emit(registered=len(registered), at=time.monotonic())
            if observe_nodes:
                links = srv.clients[event.endpoint].links
                tasks.append(asyncio.create_task(watch_registration(event.endpoint, links)))
    for r in requests:
        if r.observation is not None and not r.observation.cancelled:
            r.observation.cancel()
    await srv.stop()


# -- the gateway (a process of its own, on one core) --------------------------------------------


async def gateway(mode: str, count: int, readings: int, state: FilePath, uri: str) -> None:
    from bridged.engine.client import LwM2MClient, ServerConfig
    from bridged.engine.observe import MAX_OBSERVATIONS
    from bridged.engine.registration import EventKind, RegistrationEvent, RetryPolicy
    from bridged.exposure.endpoints import EndpointsExposure, NodeEndpoint
    from bridged.exposure.gateway import GatewayExposure
    from bridged.exposure.instances import InstancesExposure
    from bridged.objects.builtin import builtin_definitions
    from bridged.objects.tree import ObjectTree
    from bridged.objects.values import Record
    from bridged.registry import NodeRegistry
    from bridged.store.database import connect
    from bridged.store.nodes import NodeId, NodeStore, PairedNode
    from bridged.store.readings import ReadingStore
    from bridged.store.secrets import SecretStore
    from bridged.transports.simulated import TEMPERATURE, SimulatedTransport

    os.sched_setaffinity(0, {0})
    raise_fd_limit()
    trace = os.environ.get(TRACE_ENV)
    if trace:
        tracemalloc.start(1)
    conn = connect(state / "state.db")
    store = NodeStore(conn)
    for i in range(count):  # pre-paired, before the clock starts
        store.pair(PairedNode(NodeId("sim", f"{i + 1:04d}"), f"node {i + 1}", "sim"))

    registered = asyncio.Event()
    done = failed = 0

    def one_registered() -> None:
        nonlocal done
        done += 1
        if done == (count if mode == "endpoints" else 1):
            registered.set()

    def on_event(e: RegistrationEvent) -> None:
        nonlocal failed
        if e.kind is EventKind.REGISTRATION_COMPLETE:
            one_registered()
        elif e.kind is EventKind.REGISTRATION_FAILURE:
            failed += 1

    t0 = time.monotonic()
    registry = NodeRegistry(store, SecretStore(state / "secrets.json"), ReadingStore(conn))
    sim = SimulatedTransport({"nodes": count}, registry)
    registry.attach(sim)
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(3, 0, [(0, "bench"), (16, "U")])
    now = time.time()
    for node in sim.nodes.values():  # every node has reported once, so it has values
        sim.report(node, now)
    # One observation per node: beyond the default bound the rest are answered, not observed.
    config = ServerConfig(
        uri,
        lifetime=3600,
        request_timeout=30.0,
        retry=RetryPolicy(count=5),
        max_observations=max(count, MAX_OBSERVATIONS),
    )
    client: LwM2MClient | None = None
    endpoints: EndpointsExposure | None = None
    if mode == "endpoints":

        def ep_event(ep: NodeEndpoint, e: RegistrationEvent) -> None:
            on_event(e)

        endpoints = EndpointsExposure(
            tree.definitions, GATEWAY, config, host="127.0.0.1", on_event=ep_event
        )
        registry.listen(endpoints)
        t1 = time.monotonic()
        await endpoints.start()
    else:
        end_devices = None
        if mode == "instances":
            registry.listen(InstancesExposure(tree, store))
        else:
            end_devices = GatewayExposure(tree, store)
            registry.listen(end_devices)
        t1 = time.monotonic()
        client = LwM2MClient(
            tree, GATEWAY, config, bind=("127.0.0.1", 0), on_event=on_event, end_devices=end_devices
        )
        await client.start()
    await registered.wait()
    t2 = time.monotonic()
    if trace:
        tracemalloc.take_snapshot().dump(trace)
        kinds = Counter(type(o).__name__ for o in gc.get_objects())
        FilePath(f"{trace}.gc.json").write_text(json.dumps(kinds))
    emit(
        startup=t1 - t0,
        register=t2 - t1,
        rss=rss_mb(),
        instances=len(list(tree.instances())),
        failed=failed,
    )

    committer = asyncio.create_task(registry.run())
    loop = asyncio.get_running_loop()
    command = await loop.run_in_executor(None, sys.stdin.readline)
    if command.strip() == "go" and readings:
        nodes = [n.id for n in sim.nodes.values()]
        per_node = readings // len(nodes)
        cpu0, start = time.process_time(), time.monotonic()
        for k in range(per_node):
            value = FINAL if k == per_node - 1 else float(k % 1000)
            for node in nodes:
                registry.readings(node, [Record(TEMPERATURE, value)])
            if k % 5 == 4:
                await asyncio.sleep(0)  # let the notifications go, as a radio loop would
        fed = time.monotonic()
        emit(start=start, fed=fed, readings=per_node * len(nodes), cpu=time.process_time() - cpu0)
        await loop.run_in_executor(None, sys.stdin.readline)
        emit(cpu_total=time.process_time() - cpu0)
    committer.cancel()
    t3 = time.monotonic()
    if client is not None:
        await client.stop()
    if endpoints is not None:
        await endpoints.stop()
    emit(stopped=time.monotonic() - t3)


# -- orchestration ------------------------------------------------------------------------------


WAIT = 900.0
"""The longest the orchestrator waits for one report before giving the run up."""


class Peer:
    """A server or gateway process, its reports read as they come: a process whose stdout
    nobody reads blocks once the pipe is full (the server reports every registration: 5,000
    of them are about 200 KB, three times a pipe's 64 KB), and a blocked server answers
    nothing."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid
        self._reports: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._reports.put(json.loads(line))
        self._reports.put(None)

    def read_until(self, key: str) -> dict[str, Any]:
        while True:
            try:
                fields = self._reports.get(timeout=WAIT)
            except queue.Empty:
                raise RuntimeError(f"no {key!r} reported within {WAIT:g} s") from None
            if fields is None:
                raise RuntimeError(f"ended before reporting {key!r} (exit {self.proc.wait()})")
            if key in fields:
                return fields

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()


def run(mode: str, count: int, readings: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as state:
        server = Peer("--serve", mode, str(count if readings else 0))
        try:
            if os.cpu_count() and os.cpu_count() > 1:  # type: ignore[operator]
                os.sched_setaffinity(server.pid, {1})
            port = server.read_until("port")["port"]
            gw = Peer(
                "--gateway", mode, str(count), str(readings), state, f"coap://127.0.0.1:{port}"
            )
            try:
                result = gw.read_until("register")
                if readings:
                    server.read_until("observing")
                    gw.send("go")
                    fed = gw.read_until("fed")
                    done = server.read_until("done")
                    gw.send("stop")
                    cpu = gw.read_until("cpu_total")["cpu_total"]
                    result.update(
                        rate=fed["readings"] / (done["done"] - fed["start"]),
                        fed_rate=fed["readings"] / (fed["fed"] - fed["start"]),
                        notifications=done["notifications"],
                        recovered=done["recovered"],
                        dropped=done["dropped"],
                        readings=fed["readings"],
                        cpu=cpu,
                    )
                else:
                    gw.send("stop")
                result.update(stopped=gw.read_until("stopped")["stopped"])
                gw.proc.wait(timeout=600)
            finally:
                if gw.proc.poll() is None:
                    gw.proc.kill()
        finally:
            assert server.proc.stdin is not None
            server.proc.stdin.close()
            try:
                server.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.proc.kill()
    return result


def section_register(args: argparse.Namespace) -> None:
    print("### Registration and memory\n")
    print(f"RSS of the gateway process after registering (goal: ≤ {RSS_GOAL_MB:g} MB for 1,000")
    print("nodes in instances mode); N simulated nodes, 3 objects each.\n")
    print(
        "| mode | nodes | instances in the gateway tree | startup s | register s "
        "| failed Registers | RSS MB | stop s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode in args.modes:
        for count in args.counts:
            r = run(mode, count, 0)
            print(
                f"| {mode} | {count:,} | {r['instances']:,} | {r['startup']:.2f} "
                f"| {r['register']:.2f} | {r['failed']} | {r['rss']:.1f} | {r['stopped']:.2f} |",
                flush=True,
            )
    print()


def section_readings(args: argparse.Namespace) -> None:
    print("### Observed values following readings (no Delivery, no Send)\n")
    print(f"{args.readings:,} readings over N nodes, from `NodeRegistry.readings`")
    print("to the server holding every node's last value through its observations; a")
    print("notification carries the last of a node's readings that one group commit took;")
    print(f"a last value still awaited after {QUIET:g} s of quiet is read (recovered);")
    print("dropped: datagrams the server's socket dropped, its buffer full; gateway on one")
    print("core. Delivery does not run: bench/readings.py measures readings upstream.\n")
    print(
        "| mode | nodes | readings/s to the observed value | fed/s | notifications "
        "| readings per notification | recovered | dropped | gateway CPU µs per reading fed "
        "| readings fed per gateway CPU-second, no Delivery |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode in args.modes:
        for count in args.rate_nodes:
            r = run(mode, count, args.readings)
            print(
                f"| {mode} | {count:,} | {r['rate']:,.0f} | {r['fed_rate']:,.0f} "
                f"| {r['notifications']:,} | {r['readings'] / max(r['notifications'], 1):.1f} "
                f"| {r['recovered']} | {r['dropped']} | {r['cpu'] / r['readings'] * 1e6:.1f} "
                f"| {r['readings'] / r['cpu']:,.0f} |",
                flush=True,
            )
    print()


def section_records(args: argparse.Namespace) -> None:
    from records import KINDS, report

    report(nodes=4, values=25, kinds=list(KINDS))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        asyncio.run(serve(sys.argv[2], int(sys.argv[3])))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--gateway":
        mode, count, readings, state, uri = sys.argv[2:7]
        asyncio.run(gateway(mode, int(count), int(readings), FilePath(state), uri))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default=",".join(MODES), type=lambda s: s.split(","))
    parser.add_argument(
        "--counts", default="100,1000,5000", type=lambda s: [int(c) for c in s.split(",")]
    )
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument(
        "--rate-nodes", default="100", type=lambda s: [int(c) for c in s.split(",")]
    )
    parser.add_argument("--sections", default="register,readings", type=lambda s: s.split(","))
    args = parser.parse_args()
    print(f"open files soft limit: {raise_fd_limit()}\n")
    sections: dict[str, Callable[[argparse.Namespace], None]] = {
        "register": section_register,
        "readings": section_readings,
        "records": section_records,
    }
    for name in args.sections:
        sections[name](args)


if __name__ == "__main__":
    main()
