"""Readings through the gateway's whole path, as users pay for it: upstream records per CPU-second.

Three processes. The **server** is the in-repo LwM2M test server (tests/peers/lwm2m_server.py)
on 127.0.0.1: it answers every Send 2.04 after decoding its SenML CBOR with its own code, and
counts the records it received and the distinct (name, value) pairs among them. The
**gateway** is the real ``Gateway`` (bridged/app.py) built from a configuration file, in the
instances exposure mode, with N nodes paired in its state directory before it starts; a
**feeder** in the gateway process plays a transport: it calls the node registry's
``TransportEvents`` (``heard``, ``state``, ``readings``) as the simulated transport does for
one report, with ONE reading per report (a temperature with the time it was measured, each
value distinct), round robin over the nodes. From there the path is the product's: the commit
to SQLite, the exposure's tree update, Delivery, and LwM2M Send to the server. This process
orchestrates.

Rates: ``--rate`` reports per second (spread evenly, 100 by default: a realistic gateway with
100 to 1,000 nodes reporting every 1 to 10 s), and ``max``: every report in its own turn of
the event loop (``asyncio.sleep(0)`` between two), as fast as the gateway takes them.

Figures, all of the gateway process only (``time.process_time``: every thread of it, none of
the server's): CPU from the first report until the server acknowledged the last record, per
upstream record (µs) and as records per CPU-second; the floor of that: the CPU of one turn of
the event loop at the same pace with no report (each report of a real transport wakes the loop
too, and on a shared virtual machine a timer wake-up costs tens to hundreds of µs, which no
code of the gateway's can remove); upstream records per measured value (what
the server received over what was fed: 1.0 is the invariant); and, with ``--callgrind``, the
instructions the gateway executed per record in a shorter run under ``valgrind
--tool=callgrind`` (instrumentation switched on by ``callgrind_control`` for the feed only).
The kernel's part of the gateway's CPU (system time, ``getrusage``) has a column of its own:
callgrind does not count it. The server's view of the same Sends: their payload bytes per
upstream record, and the requests per Send (a Send larger than a block goes in Block1 blocks
of 1,024 bytes, each a request the server answers and the gateway waits for).

Batch shapes: the readings per group commit and the records per Send. The product's windows
are times (the group commit's ``COMMIT_WINDOW``, Delivery's linger), and valgrind makes the
gateway about a hundred times slower, so at "max" a callgrind run with those windows commits a
few dozen readings at a time where the native run commits thousands: its instructions would
count a low rate's batching, not the maximum's. ``--callgrind`` therefore runs twice:
unscaled (the product's windows; its pace under valgrind gives the slowdown, the native run's
reports per second over its own), then with both windows stretched by that slowdown
(``window_scale``; passed to the gateway the bench builds, not through a configuration key),
and shows each run's shapes and instructions per record next to the native run's shapes.

Left out: the radio and its decoding (bench/radio.py, bench/ble.py measure those), the
server's CPU, the gateway's start and registration, and idle time before the feed. The feeder
is in the gateway process, so its own small cost (building a Record per report) is counted,
and its timer is what wakes the loop for each report.

``--transport 802154`` puts a real transport in the feeder's place: a fourth process,
bench/air154.py, runs the RCP emulator on a pty and N emulated LwM2M nodes on its air, and
the gateway's ``[transport.802154]`` opens that pty with pyserial as it opens a dongle. A
report is then a node's CoAP message in real 802.15.4 frames (``--report notify``: a LwM2M
1.0 node's NON notification of its changed temperature; ``send``: a LwM2M 1.1 node's CON
Send, which the gateway answers through the RCP), and the gateway's whole receive path runs:
the reader thread's wake-up per read, Spinel, HDLC, the MAC, 6LoWPAN, CoAP, the node server,
then the same path as above. Left out there: a real dongle's USB or UART (the pty hands over
each frame the emulator writes at once), the air's losses and retransmissions, link-layer
security, and the nodes' registration and the gateway's observations of them (before the
measure). The floor column does not apply to it (n/a). ``--callgrind`` works there too: the
gateway runs under valgrind from its start (the nodes register with it the slower), and the
air (another process) is not counted.

Wake-ups per report: the voluntary context switches of all the gateway's threads
(``getrusage``) during the measure over the reports fed: each is a thread that slept and was
woken (the loop by a timer or a file descriptor, the reader thread by the pty).
Each node reports twice before the measure (the warm-up, neither counted nor timed), a little
more than ``SAME_REPORT`` apart: a node's first report after a start allocates its instances
upstream (health, battery), and its second gives the node health its first interval between
reports, from which it works the node's timeout out, a change of its health shown upstream:
both are start-up, not the path a reading takes from then on (with one report in the warm-up,
a node's first report of the measure could make that change: 39 of 100 nodes did in a
``--callgrind`` run of 1,000 readings, profiled as well).

    .venv/bin/python bench/readings.py [--nodes 100,1000] [--rates 100,max]
                                       [--seconds 20] [--max-readings 20000] [--linger S]
                                       [--transport sim|802154] [--report notify|send]
                                       [--callgrind] [--callgrind-readings 2000]
                                       [--callgrind-out DIR] [--turns] [--profile DIR]

``--turns``: after the table, the gateway's CPU turn by turn of its event loop, summed by what
each turn did (a report fed, a group commit, a Delivery batch built, a Send acknowledged, a
timer that fired and whose; "idle": none of these, e.g. a reply read), and the CPU of the
store's ``append`` apart (bench/turns.py): what a low rate pays per record for each wake-up,
commit and Send, which instructions do not show (a turn after a sleep runs on cold caches).

``--profile DIR``: the gateway process runs cProfile during each measure and writes its
statistics to ``DIR/gateway-{transport}-{nodes}-{rate}.pstats`` (read them with ``python -m
pstats``): the breakdown by function (callgrind's counts are the interpreter's C functions),
its CPU figures inflated by the profiler.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import queue
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path as FilePath
from typing import Any
from unittest import mock

from bridged.registry import COMMIT_WINDOW

HERE = FilePath(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "tests"))

RECORDS_GOAL = 25_000
INSTRUCTIONS_GOAL = 150_000
ENDPOINT = "bench-readings"
FLOOR_TICKS = 500
"""Turns of the paced loop without reports that measure the floor (module docstring)."""
PROFILE = "BENCH_READINGS_PROFILE"
"""Set in the gateway process's environment (``--profile``): where its cProfile statistics of
the measure go."""
TURNS = "BENCH_READINGS_TURNS"
"""Set in the gateway process's environment (``--turns``): count its CPU turn by turn of the
event loop (bench/turns.py)."""


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


# -- the server (a process of its own) ----------------------------------------------------------


async def serve() -> None:
    """Answer Register and Send; after each Send, report the records received so far, how
    many distinct (name, value) pairs they hold, and the Sends, their payload bytes and the
    requests (Block1 blocks) they came in."""
    from server_events import until_stdin_closes

    from peers.lwm2m_server import LwM2MTestServer

    srv = LwM2MTestServer()
    await srv.start()
    emit(port=srv.port)
    records = sends = size = messages = 0
    distinct: set[tuple[str, object]] = set()
    async for event in until_stdin_closes(srv):
        if event.kind == "register":
            emit(registered=event.endpoint)
        elif event.kind == "send":
            records += len(event.records)
            sends, size, messages = sends + 1, size + len(event.payload), messages + event.messages
            distinct.update((r.name, r.value) for r in event.records)
            emit(
                records=records, distinct=len(distinct), sends=sends, bytes=size, messages=messages
            )
    await srv.stop()


# -- the gateway (a process of its own) ---------------------------------------------------------


CONFIG = """
[gateway]
endpoint = "{endpoint}"
state_dir = "{state}/state"
runtime_dir = "{state}/run"
bind_address = "127.0.0.1"
exposure = "instances"

[[server]]
uri = "{uri}"
lifetime = 86400

[log]
level = "warning"
"""

RADIO = """
[transport.802154]
port = "{link}"
pan_id = {pan}
"""


async def gateway(
    count: int,
    rate: str,
    total: int,
    state: FilePath,
    uri: str,
    linger: float,
    commit_window: float,
    link: str | None = None,
) -> None:
    """The gateway process; with ``link`` (the emulated dongle's pty) its readings come from
    the 802.15.4 air (air154.py) instead of the feeder in this process. ``linger`` is
    Delivery's and ``commit_window`` the node registry's group commit window (``--callgrind``:
    both scaled, see ``window_scale``, the linger beyond the 10 s the configuration file
    allows): the bench passes them to the gateway it builds, not through the file."""
    from air154 import PAN, eui64

    from bridged.app import DATABASE, Gateway
    from bridged.config import load
    from bridged.objects.values import Record
    from bridged.registry import NodeRegistry
    from bridged.store.database import connect
    from bridged.store.nodes import NodeStore
    from bridged.transports.base import SAME_REPORT, Heard, NodeState
    from bridged.transports.nodes import NodeId, PairedNode
    from bridged.transports.simulated import TEMPERATURE

    logging.basicConfig(level=logging.ERROR)  # the daemon's logging is not set up here
    (state / "state").mkdir(mode=0o700)
    (state / "run").mkdir(mode=0o700)
    conn = connect(state / "state" / DATABASE)
    store = NodeStore(conn)
    if link is None:
        nodes = [NodeId("sim", f"{i + 1:04d}") for i in range(count)]
    else:
        nodes = [NodeId("802154", eui64(i).hex()) for i in range(count)]
    for node in nodes:  # paired (a simulated one with its objects) before the gateway starts
        store.pair(PairedNode(node, f"node {node.address}", "sim" if link is None else "lwm2m"))
        if link is None:
            store.set_objects(node, {3303: [0]})
    conn.close()
    path = state / "bridged.toml"
    text = CONFIG.format(endpoint=ENDPOINT, state=state, uri=uri)
    path.write_text(text + ("" if link is None else RADIO.format(link=link, pan=PAN)))
    # The registry the gateway builds gets the bench's window (a constructor argument).
    window = functools.partial(NodeRegistry, commit_window=commit_window)
    with mock.patch("bridged.app.NodeRegistry", window):
        config = load(path)  # linger beyond the file's bounds (--callgrind scales it)
        gw = Gateway(replace(config, delivery=replace(config.delivery, linger=linger)))
    await gw.start()
    while not any(s.registered for s in gw.client.sessions):
        await asyncio.sleep(0.01)
    events = gw.registry
    stats = gw.delivery.stats(gw.config.servers[0].short_server_id)
    turns = None
    if os.environ.get(TURNS):
        from turns import Turns

        turns = Turns(asyncio.get_running_loop())
        gw.registry.on_commit(lambda count: turns.mark("commit"))
        turns.wrap(gw.delivery, "_batch", "batch")
        turns.wrap(gw.delivery, "_count", "acked")
        turns.wrap(gw.registry, "readings", "report")  # the feeder's, a transport's
        turns.within(gw.readings, "append", "the store's append")
    if link is not None:
        emit(up=True)
        await asyncio.get_running_loop().run_in_executor(
            None, sys.stdin.readline
        )  # "warm": the air's warm-up is fed
        while stats.delivered < count:
            await asyncio.sleep(0.01)
        await measured(gw, stats, total, floor=None, turns=turns)
        return

    def report(node: NodeId, value: float) -> None:
        now = time.time()
        record = Record(TEMPERATURE, value, now)
        events.heard(Heard(node, now, node.address, -60, "sim", (record,)))
        events.state(node, NodeState(True, now, rssi=-60))
        events.readings(node, [record])

    for again in (False, True):  # the warm-up: each node's first two reports (module docstring)
        if again:
            await asyncio.sleep(SAME_REPORT * 1.05)
        for k, node in enumerate(nodes):
            report(node, -1.0 - k - again * count)
            await asyncio.sleep(0)
    while stats.delivered < 2 * count:
        await asyncio.sleep(0.01)

    period = 0.0 if rate == "max" else 1.0 / float(rate)

    async def pace(k: int, start: float) -> None:
        if period:
            delay = start + (k + 1) * period - time.monotonic()
            await asyncio.sleep(max(delay, 0.0))
        else:
            await asyncio.sleep(0)

    # The floor: the same pace with no report, what the event loop's turn per report costs
    # in this process (on a shared virtual machine a timer wake-up is far from free).
    ticks = min(total, FLOOR_TICKS)
    cpu0, start = time.process_time(), time.monotonic()
    for k in range(ticks):
        await pace(k, start)
    floor = (time.process_time() - cpu0) / ticks

    async def feed() -> None:
        start = time.monotonic()
        for k in range(total):
            report(nodes[k % count], float(k))
            await pace(k, start)
        emit(fed=total, feed_s=time.monotonic() - start)

    await measured(gw, stats, total, floor, feed, turns)


async def measured(
    gw: Any,
    stats: Any,
    total: int,
    floor: float | None,
    feed: Callable[[], Awaitable[None]] | None = None,
    turns: Any = None,
) -> None:
    """Measure from "go" until the server acknowledged the records fed: ``total`` by
    ``feed``, in this process, or as many as the orchestrator says ("expect N") the air
    put on it, whose feed it starts once this process said it measures. Then wait for
    "stop"."""
    from bridged.delivery import consumer_name

    loop = asyncio.get_running_loop()
    emit(ready=True, warm_up=stats.delivered)
    await loop.run_in_executor(None, sys.stdin.readline)  # "go"
    delivered0, sends0 = stats.delivered, stats.sends
    commits = [0, 0]  # group commits, readings they committed

    def committed(rows: int) -> None:
        commits[0] += 1
        commits[1] += rows

    gw.registry.on_commit(committed)
    cpu0, woken0, kernel0 = time.process_time(), wake_ups(), kernel_time()
    profile = None
    if os.environ.get(PROFILE):
        import cProfile

        profile = cProfile.Profile(time.process_time)  # CPU, not time preempted
        profile.enable()
    if turns is not None:
        turns.start()
    emit(measuring=True)
    if feed is not None:
        await feed()
    else:
        total = int((await loop.run_in_executor(None, sys.stdin.readline)).split()[1])
    await reached(stats, delivered0 + total).wait()
    cpu, woken = time.process_time() - cpu0, wake_ups() - woken0
    kernel = kernel_time() - kernel0
    by_turn = None if turns is None else turns.stop()
    if profile is not None:
        profile.disable()
        profile.dump_stats(os.environ[PROFILE])
    emit(
        cpu=cpu,
        kernel=kernel,
        turns=by_turn,
        wake_ups=woken,
        sends=stats.sends - sends0,
        commits=commits[0],
        committed=commits[1],
        floor=floor,
        waiting=gw.readings.waiting(consumer_name(gw.config.servers[0].short_server_id)),
    )
    await loop.run_in_executor(None, sys.stdin.readline)  # "stop"
    await gw.stop()
    emit(stopped=True)


def reached(stats: Any, target: int) -> asyncio.Event:
    """An event set once Delivery's ``stats.delivered`` reaches ``target``: the wait for the
    server's acknowledgements must not poll, or its own wake-ups would be in the figures."""
    event = asyncio.Event()
    if stats.delivered >= target:
        event.set()

    class Watched(type(stats)):  # type: ignore[misc]
        def __setattr__(self, name: str, value: Any) -> None:
            super().__setattr__(name, value)
            if name == "delivered" and value >= target:
                event.set()

    stats.__class__ = Watched
    return event


def wake_ups() -> int:
    """The times a thread of this process went to sleep and was woken (voluntary context
    switches of every thread, those that ended included)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw


def kernel_time() -> float:
    """The CPU this process's threads spent in the kernel (system time), which callgrind's
    instruction counts do not see: syscalls (the loop's poll, SQLite's writes, the sockets)
    and the page faults and scheduling they bring."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


# -- orchestration ------------------------------------------------------------------------------


WAIT = 600.0


class Peer:
    """A process whose JSON reports are read as they come (a full pipe would block it)."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.pid = self.proc.pid
        self.reports: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.last: dict[str, Any] = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.reports.put(json.loads(line))
        self.reports.put(None)

    def read_until(self, key: str, done: Any = None) -> dict[str, Any]:
        """The next report with ``key`` (whose value satisfies ``done``, when given)."""
        while True:
            try:
                fields = self.reports.get(timeout=WAIT)
            except queue.Empty:
                raise RuntimeError(f"no {key!r} reported within {WAIT:g} s") from None
            if fields is None:
                raise RuntimeError(f"ended before reporting {key!r} (exit {self.proc.wait()})")
            self.last.update(fields)
            if key in fields and (done is None or done(fields)):
                return fields

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def window_scale(native_rate: float, slow_rate: float) -> float:
    """How much longer the time windows (the group commit's, Delivery's linger) must be for a
    gateway that takes ``slow_rate`` reports a second (under valgrind) to batch as one that
    takes ``native_rate`` (natively, at the same pace asked): the slowdown, never below 1 (a
    run that keeps the pace batches as the native one without scaling)."""
    if slow_rate <= 0:
        raise ValueError(f"a rate of {slow_rate} reports a second measures no slowdown")
    return max(native_rate / slow_rate, 1.0)


def pin(pid: int, cpu: int) -> None:
    """Keep a process on one core of a machine with two or more (the gateway on its own)."""
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(pid, {cpu})


def run(
    count: int,
    rate: str,
    total: int,
    linger: float,
    callgrind: FilePath | None = None,
    report: str | None = None,
    profile: FilePath | None = None,
    turns: bool = False,
    commit_window: float = COMMIT_WINDOW,
) -> dict[str, Any]:
    """One run: a fresh server and gateway, ``total`` reports over ``count`` nodes, Delivery
    lingering ``linger`` seconds for a partial batch, the node registry's group commit window
    ``commit_window`` seconds; with ``report`` (``notify`` or
    ``send``) the reports come from nodes on the 802.15.4 air (air154.py); with ``profile``
    the gateway's cProfile statistics of the measure are written there."""
    me = [sys.executable, str(HERE)]
    with tempfile.TemporaryDirectory() as state:
        server = Peer([*me, "--serve"])
        air: Peer | None = None
        try:
            pin(server.pid, 1)
            port = server.read_until("port")["port"]
            command = [*me, "--gateway", str(count), rate, str(total), state]
            command += [f"coap://127.0.0.1:{port}", str(linger), str(commit_window)]
            if report is not None:
                air = Peer(
                    [sys.executable, str(HERE.parent / "air154.py"), str(count), report, state]
                )
                pin(air.pid, 1)
                command.append(air.read_until("link")["link"])
            if callgrind is not None:
                command = [
                    "valgrind",
                    "--tool=callgrind",
                    "--instr-atstart=no",
                    f"--callgrind-out-file={callgrind}",
                    f"--log-file={callgrind}.log",
                    *command,
                ]
            env = dict(os.environ)
            if profile is not None:
                env[PROFILE] = str(profile)
            if turns:
                env[TURNS] = "1"
            gw = Peer(command, env)
            try:
                pin(gw.pid, 0)
                if air is not None:
                    gw.read_until("up")
                    air.read_until("registered")
                    air.send("warm")
                    air.read_until("warm")
                    gw.send("warm")
                warm_up = gw.read_until("ready")["warm_up"]
                server.read_until("registered")
                # The warm-up was acknowledged before "ready": its Sends are all reported.
                before = server.read_until("records", lambda f: f["distinct"] >= warm_up)
                if callgrind is not None:
                    subprocess.run(
                        ["callgrind_control", "-i", "on", str(gw.pid)],
                        check=True,
                        capture_output=True,
                    )
                gw.send("go")
                gw.read_until("measuring")
                if air is not None:
                    air.send(f"go {total} {rate}")
                    result = air.read_until("fed")
                    gw.send(f"expect {result['fed']}")
                else:
                    result = gw.read_until("fed")
                result.update(gw.read_until("cpu"))
                if callgrind is not None:
                    subprocess.run(
                        ["callgrind_control", "-i", "off", str(gw.pid)],
                        check=True,
                        capture_output=True,
                    )
                fed = result["fed"]
                got = server.read_until("records", lambda f: f["distinct"] >= warm_up + fed)
                result.update(records=got["records"] - warm_up, distinct=got["distinct"] - warm_up)
                result.update({k: got[k] - before[k] for k in ("bytes", "messages")})
                result["server_sends"] = got["sends"] - before["sends"]
                gw.send("stop")
                gw.read_until("stopped")
                if air is not None:
                    air.send("stop")
            finally:
                gw.close()
        finally:
            if air is not None:
                air.close()
            server.close()
    if callgrind is not None:
        result["instructions"] = callgrind_total(callgrind)
    return result


def callgrind_total(out: FilePath) -> int:
    """The instructions (Ir) callgrind collected while instrumentation was on, from its log."""
    log = FilePath(f"{out}.log")
    match = re.search(r"Collected : (\d+)", log.read_text())
    if match is None:
        raise RuntimeError(f"no instruction total in {log}")
    return int(match.group(1))


def shapes(r: dict[str, Any]) -> str:
    """A run's batch shapes as table cells: readings per group commit, records per Send."""
    per_commit = r["committed"] / max(r["commits"], 1)
    return f"{per_commit:,.0f} | {r['records'] / max(r['sends'], 1):,.0f}"


def callgrind_cells(
    count: int,
    rate: str,
    total: int,
    linger: float,
    native_rate: float,
    report: str | None,
    keep: FilePath | None = None,
) -> str:
    """The instructions per record under callgrind, in two runs: unscaled (the product's time
    windows), whose pace under valgrind gives the slowdown, then with the group commit window
    and Delivery's linger scaled by it, so that its batches are the native run's (a commit's
    and a Send's fixed cost shared by as many records): the table cells of both. With
    ``keep``, each run's callgrind output stays there (``callgrind_annotate`` reads it)."""
    runs: list[dict[str, Any]] = []
    for scale in (1.0, None):
        if scale is None:
            scale = window_scale(native_rate, runs[0]["fed"] / runs[0]["feed_s"])
        with tempfile.TemporaryDirectory() as tmp:
            name = f"callgrind-{count}-{rate}-{'unscaled' if scale == 1.0 else 'scaled'}.out"
            out = (keep or FilePath(tmp)) / name
            c = run(
                count,
                rate,
                total,
                linger * scale,
                out,
                report=report,
                commit_window=COMMIT_WINDOW * scale,
            )
        c["scale"] = scale
        runs.append(c)
    unscaled, scaled = runs
    return (
        f" {scaled['scale']:,.0f} | {shapes(scaled)} | {per_record(scaled)} "
        f"| {shapes(unscaled)} | {per_record(unscaled)} |"
    )


def per_record(c: dict[str, Any]) -> str:
    """A callgrind run's instructions per upstream record, as a table cell."""
    return f"{c['instructions'] / c['records'] / 1000:,.0f} k"


def print_turns(count: int, rate: str, r: dict[str, Any]) -> None:
    """The turns of one run by what happened in them: how many, their CPU, per record."""
    print(f"\n{count:,} nodes at {rate}: turns of the gateway's event loop by what they did")
    print(
        "\n| turn did | turns | per record | CPU µs per turn | µs per record |"
        "\n|---|---:|---:|---:|---:|"
    )
    for key, (n, cpu) in sorted(r["turns"].items(), key=lambda kv: -kv[1][1]):
        print(
            f"| {key} | {n:,.0f} | {n / r['records']:.3f} | {cpu / n * 1e6:.0f} "
            f"| {cpu / r['records'] * 1e6:.1f} |"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        asyncio.run(serve())
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--gateway":
        count, rate, total, state, uri, linger, window, *link = sys.argv[2:]
        asyncio.run(
            gateway(
                int(count),
                rate,
                int(total),
                FilePath(state),
                uri,
                float(linger),
                float(window),
                *link,
            )
        )
        return
    from bridged.delivery import DeliveryConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--nodes", default="100,1000", type=lambda s: [int(c) for c in s.split(",")]
    )
    parser.add_argument("--rates", default="100,max", type=lambda s: s.split(","))
    parser.add_argument("--seconds", type=float, default=20.0, help="per paced run")
    parser.add_argument("--max-readings", type=int, default=20_000, help="per run at max")
    parser.add_argument(
        "--linger",
        type=float,
        default=DeliveryConfig().linger,
        help="[delivery] linger, seconds (the default's)",
    )
    parser.add_argument(
        "--transport",
        choices=("sim", "802154"),
        default="sim",
        help="where reports come from: the feeder in the gateway process (sim), or nodes on "
        "the emulated RCP's air through the real 802.15.4 transport (module docstring)",
    )
    parser.add_argument(
        "--report",
        choices=("notify", "send"),
        default="notify",
        help="with --transport 802154: a node's NON notification or its CON Send",
    )
    parser.add_argument("--callgrind", action="store_true", help="add instructions per record")
    parser.add_argument(
        "--turns",
        action="store_true",
        help="after the table, the gateway's CPU turn by turn of its event loop, by what "
        "happened in the turn (bench/turns.py)",
    )
    parser.add_argument("--callgrind-readings", type=int, default=2_000)
    parser.add_argument(
        "--callgrind-out",
        type=FilePath,
        metavar="DIR",
        help="keep each callgrind run's output in DIR (callgrind-NODES-RATE-{unscaled,scaled}"
        ".out), for callgrind_annotate --inclusive=yes",
    )
    parser.add_argument(
        "--profile",
        type=FilePath,
        metavar="DIR",
        help="write the gateway's cProfile statistics of each measure to DIR (their CPU "
        "figures then include the profiler's)",
    )
    args = parser.parse_args()
    callgrind = args.callgrind and shutil.which("valgrind") is not None
    report = args.report if args.transport == "802154" else None
    print(
        "| nodes | reports/s | readings fed | upstream records | records per value "
        "| Sends | bytes per record | messages per Send | gateway CPU s | µs per record "
        "| of it, in the kernel µs | the loop's turn per report µs "
        "| wake-ups per report | records per CPU-second | readings per commit | records per Send"
        + (
            " | callgrind: slowdown | readings per commit | records per Send "
            "| instructions per record | unscaled: readings per commit | records per Send "
            "| instructions per record |"
            if callgrind
            else " |"
        )
    )
    print(
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        + ("---:|" * 7 if callgrind else "")
    )
    coalesced: list[str] = []
    by_turn: list[tuple[int, str, dict[str, Any]]] = []
    for count in args.nodes:
        for rate in args.rates:
            total = args.max_readings if rate == "max" else int(float(rate) * args.seconds)
            profile = None
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
                profile = args.profile / f"gateway-{args.transport}-{count}-{rate}.pstats"
            r = run(
                count, rate, total, args.linger, report=report, profile=profile, turns=args.turns
            )
            if args.turns:
                by_turn.append((count, rate, r))
            if r.get("measured", r["fed"]) != r["fed"]:
                coalesced.append(f"{count} nodes at {rate}: {r['measured']:,} measured")
            cell = ""
            if callgrind:
                small = min(total, args.callgrind_readings)
                if args.callgrind_out is not None:
                    args.callgrind_out.mkdir(parents=True, exist_ok=True)
                cell = callgrind_cells(
                    count,
                    rate,
                    small,
                    args.linger,
                    total / r["feed_s"],
                    report,
                    args.callgrind_out,
                )
            shown = f"{total / r['feed_s']:,.0f}" + (" (max)" if rate == "max" else "")
            floor = "n/a" if r["floor"] is None else f"{r['floor'] * 1e6:.0f}"
            print(
                f"| {count:,} | {shown} | {r['fed']:,} | {r['records']:,} "
                f"| {r['records'] / r['fed']:.2f} | {r['sends']:,} "
                f"| {r['bytes'] / r['records']:.1f} | {r['messages'] / r['server_sends']:.2f} "
                f"| {r['cpu']:.2f} "
                f"| {r['cpu'] / r['records'] * 1e6:.0f} | {r['kernel'] / r['records'] * 1e6:.0f} "
                f"| {floor} "
                f"| {r['wake_ups'] / r['fed']:.2f} | {r['records'] / r['cpu']:,.0f} "
                f"| {shapes(r)} |" + cell,
                flush=True,
            )
    for count, rate, r in by_turn:
        print_turns(count, rate, r)
    refused = "" if report != "send" else f" (Sends refused or unanswered: {r['refused']})"
    print(
        f"\ntransport: {args.transport}"
        + ("" if report is None else f", reports by {report}")
        + refused
        + "".join(f"\nreadings fed (on the air) of values {c}" for c in coalesced)
        + f"\nDelivery's linger: {args.linger:g} s"
        f"\ngoal: ≥ {RECORDS_GOAL:,} upstream records per gateway CPU-second"
        + (f", ≤ {INSTRUCTIONS_GOAL // 1000} k instructions per record" if callgrind else "")
    )


if __name__ == "__main__":
    main()
