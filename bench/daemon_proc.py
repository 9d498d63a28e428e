"""The real daemon as a process, for the idle and start-up benchmarks: its configuration, its
state directory with paired nodes, a server process, systemd's notify socket, and what
/proc says about the daemon (RSS, CPU time and context switches of all its threads).

The server is the in-repo LwM2M test server (tests/peers/lwm2m_server.py) in a process of its
own (``python bench/daemon_proc.py --serve``): it prints its port, then one JSON line per
registration with the system-wide monotonic time it arrived (CLOCK_MONOTONIC is shared by
every process), and runs until its stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests"))

SIM_OBJECTS = {3303: [0], 3304: [0], 3311: [0]}
"""What a simulated node reports having (transports/simulated.py): a temperature, a humidity
and a switch."""


def config_text(
    state: Path, server_uri: str, *, exposure: str = "instances", extra: str = ""
) -> str:
    """The daemon's configuration: the state and runtime directories under ``state``, one
    server, no transport unless ``extra`` adds one, the default log level (what it logs at
    start is part of the start)."""
    return f"""[gateway]
endpoint = "bench-daemon"
state_dir = "{state / "state"}"
runtime_dir = "{state / "run"}"
bind_address = "127.0.0.1"
exposure = "{exposure}"

[[server]]
uri = "{server_uri}"
lifetime = 3600
request_timeout = 30

[log]
level = "info"
{extra}"""


def pair_nodes(state: Path, count: int) -> None:
    """Pair ``count`` simulated nodes in the state database the way the daemon keeps them
    (``NodeRegistry.pair`` stores the node, its transport's report stores its objects), with
    the daemon not running: their instance IDs are allocated at the daemon's next start."""
    from bridged.store.database import connect
    from bridged.store.nodes import NodeStore
    from bridged.transports.nodes import NodeId, PairedNode

    (state / "state").mkdir(parents=True, exist_ok=True, mode=0o750)
    conn = connect(state / "state" / "state.db")
    store = NodeStore(conn)
    now = time.time()
    for i in range(count):
        node = NodeId("sim", f"{i + 1:05d}")
        store.pair(PairedNode(node, f"node {i + 1}", "sim", paired_at=now))
        store.set_objects(node, SIM_OBJECTS)
    conn.close()


# -- the server process --------------------------------------------------------------------------


async def serve() -> None:
    from aiocoap.numbers.codes import Code
    from server_events import until_stdin_closes

    from peers.lwm2m_server import LwM2MTestServer

    srv = LwM2MTestServer()
    await srv.start()
    print(json.dumps({"port": srv.port}), flush=True)
    async for event in until_stdin_closes(srv):
        if event.kind == "register" and event.code == Code.CREATED:
            print(json.dumps({"registered": event.endpoint, "at": time.monotonic()}), flush=True)
    await srv.stop()


class Server:
    """The server process; its reports are read as they come (a full pipe would block it)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reports: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.port = int(self.next("port", 60)["port"])
        self.uri = f"coap://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._reports.put(json.loads(line))
        self._reports.put(None)

    def next(self, key: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fields = self._reports.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                raise RuntimeError(f"the server reported no {key!r} within {timeout:g} s") from None
            if fields is None:
                raise RuntimeError(f"the server ended before reporting {key!r}")
            if key in fields:
                return fields

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the daemon process --------------------------------------------------------------------------


def unit_environment(python: str) -> dict[str, str]:
    """The variables the packaged unit's ``Environment=`` lines set, the unit of the checkout
    whose venv ``python`` is (``<checkout>/.venv/bin/python``; this checkout's for another):
    each checkout's daemon runs as its own unit runs it."""
    unit = Path(python).absolute().parents[2] / "packaging" / "bridged.service"
    lines = (unit if unit.exists() else ROOT / "packaging" / "bridged.service").read_text()
    return dict(
        line.removeprefix("Environment=").split("=", 1)
        for line in lines.splitlines()
        if line.startswith("Environment=")
    )


def compile_bytecode(python: str) -> None:
    """Byte-compile the modules the daemon of ``python`` (a checkout's venv) imports, as the
    package's postinst does for an installed daemon: a development shell often sets
    PYTHONDONTWRITEBYTECODE, and each start then compiled the project's 100-odd modules
    again (about 0.1 s), which no installed daemon does."""
    checkout = Path(python).absolute().parents[2]
    folders = [checkout / name for name in ("bridged", "objects", "transports")]
    subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "0", *map(str, folders)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


class Daemon:
    """``bridged --config`` under an emulated systemd: ``NOTIFY_SOCKET`` (READY=1, STATUS=,
    WATCHDOG=1 arrive here), ``WATCHDOG_USEC`` as the packaged unit sets it (30 s) and the
    unit's ``Environment=`` (``unit_environment``); ``run`` is what ``python`` runs (a module
    that wraps the daemon, ``bench/endpoint_memory.py``), ``extra_env`` more variables."""

    def __init__(
        self,
        state: Path,
        config: str,
        *,
        watchdog_usec: int = 30_000_000,
        python: str = sys.executable,
        run: tuple[str, ...] = ("-m", "bridged.daemon"),
        extra_env: dict[str, str] | None = None,
    ) -> None:
        path = state / "bridged.toml"
        path.write_text(config)
        self.notify_path = state / "notify.sock"
        self.notify_path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.notify_path))
        self._notes: queue.Queue[tuple[float, bytes] | None] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()
        env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM",)}
        env.update(unit_environment(python))
        env["NOTIFY_SOCKET"] = str(self.notify_path)
        env["WATCHDOG_USEC"] = str(watchdog_usec)
        env.update(extra_env or {})
        self.log = state / "bridged.log"
        self.started = time.monotonic()
        with self.log.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [python, *run, "--config", str(path)],
                env=env,
                cwd=state,  # not a checkout: ``-m`` imports from the working directory first
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self.pid = self.proc.pid

    def _drain(self) -> None:
        """Read every notify datagram as it comes, with when it came: the daemon sends one
        per STATUS= change (one per registration in the endpoints mode), and a socket nobody
        reads fills up and blocks the daemon's send, its event loop with it."""
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:
                data = b""
            if not data:  # shut down by ``stop``
                self._notes.put(None)
                return
            self._notes.put((time.monotonic(), data))

    def wait_notify(self, key: str, timeout: float) -> tuple[float, dict[str, str]]:
        """The next notify datagram that has ``key``, and when it came (monotonic)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"no {key} from the daemon (see {self.log})")
            try:
                note = self._notes.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if note is None:
                raise RuntimeError(f"no {key} from the daemon: its notify socket is closed")
            at, data = note
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            if key in fields:
                return at, fields

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._sock.shutdown(socket.SHUT_RDWR)  # ends ``_drain``'s recv
        self._sock.close()
        self.notify_path.unlink(missing_ok=True)
        return self.proc.returncode


# -- /proc -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """What /proc says about a process at one moment: context switches per thread, CPU time
    of its threads (seconds, from schedstat: nanoseconds, not clock ticks), RSS and its peak
    (MB)."""

    at: float
    switches: dict[int, int]
    cpu: float
    rss_mb: float
    hwm_mb: float


def _status(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def sample(pid: int) -> Sample:
    switches = {}
    cpu = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = _status(task / "status")
            # schedstat: nanoseconds on a CPU, nanoseconds waiting, time slices
            cpu += int((task / "schedstat").read_text().split()[0]) / 1e9
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        switches[int(task.name)] = int(fields["voluntary_ctxt_switches"]) + int(
            fields["nonvoluntary_ctxt_switches"]
        )
    status = _status(Path(f"/proc/{pid}/status"))
    return Sample(
        time.monotonic(),
        switches,
        cpu,
        int(status["VmRSS"].split()[0]) / 1024,
        int(status["VmHWM"].split()[0]) / 1024,
    )


def wakeups(before: Sample, after: Sample) -> tuple[float, int]:
    """Context switches per second of every thread between two samples (a thread that came
    or went counts from 0 or up to its last sample), and the most threads seen."""
    total = 0
    for tid, n in after.switches.items():
        total += n - before.switches.get(tid, 0)
    return total / (after.at - before.at), max(len(before.switches), len(after.switches))


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        asyncio.run(serve())
