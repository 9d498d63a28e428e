"""A server's Read against the gateway: CPU time per request, next to aiocoap's bare GET.

Per request, how much CPU the process serving it spends: the real ``Gateway`` (bridged/app.py,
built from a configuration file, registered with the load generator as its LwM2M server)
answering a Read of /3/0/0 (text/plain) or of /3/0 in TLV, and, as the ceiling, a bare aiocoap
server context (stock settings) answering a trivial GET resource. The load generator is a
process of its own, one UDP socket keeping ``--inflight`` CON requests outstanding; toward the
gateway it is the LwM2M server (it answers the Register, so the gateway's NoSec socket serves
it, and sends its Reads from that socket).

Measured interleaved: each round runs every target once, each in fresh processes, for
``--seconds`` after one second of warm-up, and the ratio to the ceiling is taken inside the
round; the table shows the medians of ``--rounds`` rounds. CPU is the serving process's own
(utime + stime from /proc), so the load generator and other work on the machine are not in it.

Left out: the network (loopback), DTLS, the Register itself, and the server's side; a
duplicate request or a block-wise transfer is not exercised.

With ``--callgrind`` (valgrind installed), each gateway target instead runs once under
``valgrind --tool=callgrind``, instrumentation switched on for the measured window only, and
the table gives instructions per Read: they do not move with the machine's load.

    .venv/bin/python bench/read.py [--rounds 5] [--seconds 3] [--inflight 32] [--callgrind]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path as FilePath
from typing import Any

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import ACK, CON

HERE = FilePath(__file__).resolve()
READ_GOAL_MS = 0.15
TLV = 11542
TARGETS: dict[str, tuple[str, tuple[str, ...], int | None]] = {
    # name: (server kind, path, Accept)
    "aiocoap bare GET (the ceiling)": ("aiocoap", ("hello",), None),
    "gateway, Read /3/0/0 (text/plain)": ("gateway", ("3", "0", "0"), None),
    "gateway, Read /3/0 (TLV)": ("gateway", ("3", "0"), TLV),
}

CONFIG = """
[gateway]
endpoint = "bench-read"
state_dir = "{state}/state"
runtime_dir = "{state}/run"
bind_address = "127.0.0.1"

[[server]]
uri = "coap://127.0.0.1:{port}"
lifetime = 86400

[log]
level = "error"
"""


class Hello(resource.Resource):
    """The ceiling's resource: a fixed short payload, nothing else."""

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(code=Code.CONTENT, payload=b"ACME")


async def serve_aiocoap() -> None:
    site = resource.Site()
    site.add_resource(["hello"], Hello())
    context = await aiocoap.Context.create_server_context(
        site, bind=("127.0.0.1", 0), transports=["udp6"]
    )
    mman = context.request_interfaces[0].token_interface
    print(json.dumps({"port": mman.message_interface._local_port()}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    os._exit(0)


async def serve_gateway(port: int, state: FilePath) -> None:
    from bridged.app import Gateway
    from bridged.config import load

    logging.basicConfig(level=logging.ERROR)  # the daemon's logging is not set up here
    for sub in ("state", "run"):
        (state / sub).mkdir(mode=0o700)
    path = state / "bridged.toml"
    path.write_text(CONFIG.format(state=state, port=port))
    gateway = Gateway(load(path))
    await gateway.start()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await gateway.stop()


# -- the load generator -------------------------------------------------------------------------


def template(path: tuple[str, ...], accept: int | None) -> bytearray:
    """A CON GET for ``path`` with a 4-byte token; Message ID and token are patched per send."""
    message = aiocoap.Message(code=Code.GET, uri_path=path)
    if accept is not None:
        message.opt.accept = accept
    message.mtype, message.mid, message.token = CON, 0, b"\0\0\0\0"
    return bytearray(message.encode())


def answer_register(sock: socket.socket) -> tuple[str, int]:
    """Wait for the gateway's Register, answer it 2.01 with a Location-Path; its address."""
    sock.settimeout(30)
    while True:
        data, address = sock.recvfrom(65536)
        request = aiocoap.Message.decode(data)
        if request.code == Code.POST and tuple(request.opt.uri_path) == ("rd",):
            break
    response = aiocoap.Message(code=Code.CREATED, location_path=("rd", "c1"))
    response.mtype, response.mid, response.token = ACK, request.mid, request.token
    sock.sendto(response.encode(), address)
    return address


def load(target: str, port: int, seconds: float, inflight: int) -> None:
    """Keep ``inflight`` GETs outstanding from one socket; report when the measured window
    opens (after one second) and the answers counted in it."""
    _, path, accept = TARGETS[target]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    peer = answer_register(sock) if port == 0 else ("127.0.0.1", port)
    sock.connect(peer)
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    message = template(path, accept)
    mid, token = 0, 0
    pending: dict[bytes, float] = {}
    counts = {"answered": 0, "lost": 0, "bad": 0}

    def send(now: float) -> None:
        nonlocal mid, token
        mid, token = (mid + 1) & 0xFFFF, (token + 1) & 0xFFFFFFFF
        message[2:4] = mid.to_bytes(2, "big")
        message[4:8] = tok = token.to_bytes(4, "big")
        pending[tok] = now
        sock.send(message)

    start = time.monotonic()
    for _ in range(inflight):
        send(start)
    measure_from, end = start + 1.0, start + 1.0 + seconds
    counting = False
    while (now := time.monotonic()) < end:
        if not counting and now >= measure_from:
            counting, counts = True, dict.fromkeys(counts, 0)
            print(json.dumps({"measuring": True}), flush=True)
        for _ in sel.select(0.2):
            while True:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    break
                if data[0] >> 4 & 3 == 0 and data[1] >> 5 == 0:  # a request (an Update)
                    sock.send(bytes([0x60, 0x44]) + data[2:4] + data[4 : 4 + (data[0] & 15)])
                    continue
                if pending.pop(data[4 : 4 + (data[0] & 0x0F)], None) is None:
                    continue
                counts["answered" if data[1] == 0x45 else "bad"] += 1
                send(now)
        for tok in [t for t, sent in pending.items() if now - sent > 2.0]:
            del pending[tok]
            counts["lost"] += 1
            send(now)
    print(json.dumps({**counts, "seconds": time.monotonic() - measure_from}), flush=True)


# -- orchestration ------------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    fields = FilePath(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def line(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    text = proc.stdout.readline()
    if not text:
        raise RuntimeError(f"{proc.args} ended (exit {proc.wait()})")
    result: dict[str, Any] = json.loads(text)
    return result


def measure(target: str, args: argparse.Namespace, callgrind: FilePath | None = None) -> float:
    """CPU milliseconds per answered request of the serving process, one fresh run; with
    ``callgrind`` (an output file), the gateway's instructions per answered request."""
    me = [sys.executable, str(HERE)]
    kind = TARGETS[target][0]
    pipes: dict[str, Any] = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
    with tempfile.TemporaryDirectory() as state:
        procs: list[subprocess.Popen[str]] = []
        try:
            if kind == "aiocoap":
                server = subprocess.Popen([*me, "--serve-aiocoap"], **pipes)
                procs.append(server)
                port = line(server)["port"]
                gen = subprocess.Popen([*me, "--load", target, str(port), *opts(args)], **pipes)
                procs.append(gen)
                line(gen)
            else:
                gen = subprocess.Popen([*me, "--load", target, "0", *opts(args)], **pipes)
                procs.append(gen)
                port = line(gen)["port"]
                serve = [*me, "--serve-gateway", str(port), state]
                if callgrind is not None:
                    serve = [
                        "valgrind",
                        "--tool=callgrind",
                        "--instr-atstart=no",
                        f"--callgrind-out-file={callgrind}",
                        f"--log-file={callgrind}.log",
                        *serve,
                    ]
                server = subprocess.Popen(serve, **pipes)
                procs.append(server)
            if (os.cpu_count() or 1) > 1:
                os.sched_setaffinity(server.pid, {0})
                os.sched_setaffinity(gen.pid, {1})
            line(gen)  # measuring
            instrument(server.pid, "on", callgrind)
            cpu0 = proc_cpu_s(server.pid)
            counts = line(gen)
            cpu = proc_cpu_s(server.pid) - cpu0
            instrument(server.pid, "off", callgrind)
            if counts["bad"] or not counts["answered"]:
                raise RuntimeError(f"{target}: {counts}")
            if callgrind is not None:
                return instructions(procs, callgrind) / counts["answered"]
            return cpu * 1000 / counts["answered"]
        finally:
            for proc in reversed(procs):
                if proc.stdin is not None:
                    proc.stdin.close()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def instrument(pid: int, state: str, callgrind: FilePath | None) -> None:
    if callgrind is not None:
        subprocess.run(
            ["callgrind_control", "-i", state, str(pid)], check=True, capture_output=True
        )


def instructions(procs: list[subprocess.Popen[str]], callgrind: FilePath) -> int:
    """The instructions callgrind collected while instrumentation was on, once the serving
    process has ended (its log has the total then)."""
    for proc in reversed(procs):
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=120)
    log = FilePath(f"{callgrind}.log").read_text()
    match = re.search(r"Collected : (\d+)", log)
    if match is None:
        raise RuntimeError(f"no instruction total in {callgrind}.log")
    return int(match.group(1))


def callgrind_table(args: argparse.Namespace) -> None:
    print(f"callgrind, {args.seconds:g} s, {args.inflight} CON in flight\n")
    print("| server | instructions per Read |\n|---|---:|")
    for target, (kind, _, _) in TARGETS.items():
        if kind != "gateway":
            continue
        with tempfile.TemporaryDirectory() as tmp:
            count = measure(target, args, FilePath(tmp) / "callgrind.out")
        print(f"| {target} | {count / 1000:,.0f} k |")


def opts(args: argparse.Namespace) -> list[str]:
    return [f"--seconds={args.seconds}", f"--inflight={args.inflight}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--inflight", type=int, default=32)
    parser.add_argument("--callgrind", action="store_true", help="instructions per Read instead")
    parser.add_argument("--serve-aiocoap", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-gateway", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=2, metavar=("TARGET", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_aiocoap:
        asyncio.run(serve_aiocoap())
        return
    if args.serve_gateway:
        port, state = args.serve_gateway
        asyncio.run(serve_gateway(int(port), FilePath(state)))
        return
    if args.load:
        target, port = args.load
        load(target, int(port), args.seconds, args.inflight)
        return
    if args.callgrind:
        callgrind_table(args)
        return
    ceiling = next(iter(TARGETS))
    rounds: dict[str, list[float]] = {t: [] for t in TARGETS}
    ratios: dict[str, list[float]] = {t: [] for t in TARGETS}
    for _ in range(args.rounds):
        ms = {target: measure(target, args) for target in TARGETS}
        for target, value in ms.items():
            rounds[target].append(value)
            ratios[target].append(value / ms[ceiling])
    print(
        f"{args.rounds} rounds of {args.seconds:g} s each, {args.inflight} CON in flight; medians\n"
    )
    print("| server | CPU ms per request | of aiocoap's bare GET | rounds (ms) |")
    print("|---|---:|---:|---|")
    for target in TARGETS:
        values = ", ".join(f"{v:.3f}" for v in rounds[target])
        print(
            f"| {target} | {statistics.median(rounds[target]):.3f} "
            f"| {statistics.median(ratios[target]):.0%} | {values} |"
        )
    print(f"\ngoal: a Read at most {READ_GOAL_MS} CPU-ms")


if __name__ == "__main__":
    main()
