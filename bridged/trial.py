"""``bridged --try``: the real daemon with simulated nodes, against a LwM2M server on this
machine, for a gateway that has no radios or no server yet (a Pi and no sensors).

What it does, in the order it prints it: a LwM2M server on 127.0.0.1 (`LocalServer`: enough of
one to see a gateway work: Register, Update, De-register, Send, and a Read of the name of each
node instance that appears); ``bridged`` started as a subprocess with a configuration of its
own in a temp dir (the simulated transport ``sim``: three nodes that report a temperature, a
humidity and a switch; the state, the control socket and the log in the temp dir); the nodes
paired with ``bridgectl pair`` as a user pairs real ones; then every reading the server
receives, with the node's name and what it is. Nothing of the installed service is used
(/etc/bridged, /var/lib/bridged, /run/bridged), so any user can run it, also next to the
service.

Ctrl-C, SIGTERM, SIGHUP (the terminal closed) or the end of ``--seconds`` stop it: the daemon
gets SIGTERM and de-registers, and the temp dir goes; the exit status is 0, or 1 with the
daemon's last log lines when a step did not happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiocoap
import aiocoap.resource
from aiocoap.numbers.codes import Code

from bridged.aio import cancel_and_wait
from bridged.objects.builtin import builtin_definitions
from bridged.objects.errors import LwM2MError
from bridged.objects.formats import ContentFormat, codec_for
from bridged.objects.ids import Ipso, IpsoResource
from bridged.objects.linkformat import parse_links
from bridged.objects.paths import Path as LwM2MPath

ENDPOINT = "bridged-try"
NODES = {"sim:0001": "living-room", "sim:0002": "bedroom", "sim:0003": "garden"}
INTERVAL = 2.0
"""Seconds between two reports of a simulated node: something happens every few seconds."""
STEP_TIMEOUT = 30.0
"""Generous: the daemon is a Python process that may start on a small, busy machine."""
LOCATION = ("rd", "bridged-try")
DEFINITIONS = builtin_definitions()


class TryFailed(Exception):
    """A step did not happen (the message says which)."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Ctrl-C, ``kill``, the terminal closed: each stops what was started, in order."""


def stop_on_signals() -> asyncio.Event:
    """An event that ``STOP_SIGNALS`` set (in the running loop)."""
    stop = asyncio.Event()
    for sig in STOP_SIGNALS:
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    return stop


async def run_until(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> bool:
    """Run ``work`` until it ends or ``stop`` is set; returns whether it ran its course. What
    it raises (but its cancellation) propagates."""
    running = asyncio.create_task(work)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait((running, stopping), return_when=asyncio.FIRST_COMPLETED)
    await cancel_and_wait(stopping, running)
    return not running.cancelled()


async def bridgectl(
    control_socket: Path, *args: str, timeout: float = STEP_TIMEOUT
) -> tuple[int, str, str]:
    """Run ``bridgectl ARGS`` against the daemon of ``control_socket`` as a user runs it, in a
    session of its own (Ctrl-C reaches the caller only): exit status, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridged.cli",
        "--socket",
        str(control_socket),
        *args,
        start_new_session=True,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


class LocalServer(aiocoap.resource.Resource):
    """The LwM2M server of the trial, for one client; says what it sees through ``say``."""

    def __init__(self, say: Callable[[str], None]) -> None:
        super().__init__()
        self.say = say
        self.context: aiocoap.Context | None = None
        self.uri = ""
        self.remote: object = None
        self.instances: set[LwM2MPath] = set()
        self.names: dict[LwM2MPath, str] = {}
        self.units: dict[LwM2MPath, str] = {}
        self.registered = asyncio.Event()
        self.deregistered = asyncio.Event()
        self.readings = 0
        self._reads: set[asyncio.Task[None]] = set()
        self._read_once: set[LwM2MPath] = set()

    async def start(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.context = await aiocoap.Context.create_server_context(
            self, bind=("127.0.0.1", port), transports=["udp6"]
        )
        self.uri = f"coap://127.0.0.1:{port}"

    async def stop(self) -> None:
        await cancel_and_wait(*self._reads)  # a read's own errors are suppressed in it
        if self.context is not None:
            await self.context.shutdown()

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        path, code = tuple(request.opt.uri_path), request.code
        try:
            if path == ("rd",) and code == Code.POST:
                self.remote = request.remote
                self._objects(request, "registered")
                self.registered.set()
                return aiocoap.Message(code=Code.CREATED, location_path=LOCATION)
            if path == LOCATION and code == Code.POST:
                self.remote = request.remote
                if request.payload:
                    self._objects(request, "updated its objects")
                return aiocoap.Message(code=Code.CHANGED)
        except LwM2MError as e:
            self.say(f"server: a registration it cannot read: {e}")
            return aiocoap.Message(code=Code(e.code))
        if path == LOCATION and code == Code.DELETE:
            self.say(f"server: {ENDPOINT} de-registered")
            self.deregistered.set()
            return aiocoap.Message(code=Code.DELETED)
        if path == ("dp",) and code == Code.POST:
            return self._send(request)
        return aiocoap.Message(code=Code.NOT_FOUND)

    def _objects(self, request: aiocoap.Message, what: str) -> None:
        listed = set()
        for link in parse_links(bytes(request.payload).decode(errors="replace")):
            with contextlib.suppress(LwM2MError):
                path = LwM2MPath.parse(link.target)
                if len(path.ids) == 2:
                    listed.add(path)
        new = sorted(listed - self.instances, key=lambda p: p.ids)
        self.instances = listed
        shown = " ".join(str(p) for p in new) or "no new instances"
        self.say(f"server: {ENDPOINT} {what}: {shown}")
        for instance in new:
            self._learn(instance)

    def _learn(self, instance: LwM2MPath) -> None:
        """Read a node instance not read yet (once; a Send may come before the Update that
        lists it)."""
        if instance.ids[0] < Ipso.FIRST or instance in self._read_once:
            return
        self._read_once.add(instance)
        task = asyncio.create_task(self._read(instance))
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    async def _read(self, instance: LwM2MPath) -> None:
        """Read a new node instance, as a server's UI would, for its node's name (5750) and
        its unit (5701)."""
        assert self.context is not None
        request = aiocoap.Message(
            code=Code.GET, uri_path=tuple(map(str, instance.ids)), accept=ContentFormat.SENML_CBOR
        )
        request.remote = self.remote
        with contextlib.suppress(aiocoap.error.Error, TimeoutError, LwM2MError):
            async with asyncio.timeout(STEP_TIMEOUT):
                response = await self.context.request(request).response
            if response.code != Code.CONTENT:
                return
            codec = codec_for(ContentFormat.SENML_CBOR)
            for record in codec.decode(bytes(response.payload), instance, DEFINITIONS):
                if record.path.ids[2:] == (IpsoResource.APPLICATION_TYPE,):
                    self.names[instance] = str(record.value)
                elif record.path.ids[2:] == (IpsoResource.SENSOR_UNITS,):
                    self.units[instance] = str(record.value)

    def _send(self, request: aiocoap.Message) -> aiocoap.Message:
        try:
            codec = codec_for(request.opt.content_format or 0)
            records = codec.decode(bytes(request.payload), LwM2MPath(()), DEFINITIONS)
        except LwM2MError as e:
            self.say(f"server: a Send it cannot read: {e}")
            return aiocoap.Message(code=Code(e.code))
        self.readings += len(records)
        self.say(f"server: received a Send of {len(records)} readings")
        for record in records:
            self.say(f"    {self.describe(record.path, record.value)}")
            self._learn(LwM2MPath(record.path.ids[:2]))
        return aiocoap.Message(code=Code.CHANGED)

    def describe(self, path: LwM2MPath, value: object) -> str:
        """``living-room  Temperature    21.3 Cel  (/3303/0/5700)``: whose value, what it is,
        the value with its unit, and where it is."""
        instance = LwM2MPath(path.ids[:2])
        try:
            what = DEFINITIONS.get(path.ids[0]).name
        except LwM2MError:
            what = f"object {path.ids[0]}"
        if isinstance(value, bool):
            shown = "on" if value else "off"
        else:
            shown = f"{value:g}" if isinstance(value, float) else str(value)
        shown = f"{shown} {self.units.get(instance, '')}".rstrip()
        return f"{self.names.get(instance, '(not read yet)'):<14} {what:<14} {shown:>10}  ({path})"


def configuration(workdir: Path, server_uri: str) -> str:
    return f"""# bridged --try: simulated nodes, a LwM2M server on this machine, all in a temp dir.
[gateway]
endpoint = "{ENDPOINT}"
state_dir = "{workdir / "state"}"
runtime_dir = "{workdir / "run"}"
bind_address = "127.0.0.1"

[[server]]
uri = "{server_uri}"
lifetime = 120
retry_timer = 1
retry_sequence_delay = 5

[log]
level = "info"

[transport.sim]
nodes = {len(NODES)}
interval = {INTERVAL}
"""


def say(line: str) -> None:
    """One line of the trial's output; a terminal that is gone (EIO) or a closed pipe (EPIPE)
    gets nothing more, and the trial still stops what it started."""
    try:
        print(line, flush=True)
    except OSError:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), sys.stdout.fileno())


async def within(step: Awaitable[object], what: str) -> None:
    try:
        async with asyncio.timeout(STEP_TIMEOUT):
            await step
    except TimeoutError:
        raise TryFailed(f"timed out waiting for {what}") from None


class Trial:
    """The daemon subprocess and what the trial does with it."""

    def __init__(self, workdir: Path, server: LocalServer) -> None:
        self.workdir = workdir
        self.server = server
        self.log = workdir / "bridged.log"
        self.socket = workdir / "run" / "control.sock"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        config = self.workdir / "bridged.toml"
        config.write_text(configuration(self.workdir, self.server.uri))
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bridged.daemon",
                "--config",
                str(config),
                "--log-target",
                "stderr",
                env=env,
                start_new_session=True,  # Ctrl-C reaches the trial, which stops it in order
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )
        say(f"bridged started (pid {self.proc.pid}) with {len(NODES)} simulated nodes")
        say(f"  its configuration, state and log: {self.workdir} (removed at the end)")

    async def ctl(self, *args: str) -> None:
        """``bridgectl ARGS`` against the trial's daemon, shown with its answer."""
        code, out, err = await bridgectl(self.socket, *args)
        say(f"$ bridgectl {' '.join(args)}  ->  {(out if code == 0 else err).strip()}")
        if code != 0:
            raise TryFailed(f"bridgectl {' '.join(args)} failed ({code})")

    async def run(self, seconds: float | None) -> None:
        await self.start()
        await within(self.server.registered.wait(), "the gateway's Register")
        for node, name in NODES.items():
            await self.ctl("pair", node, "--name", name)
        say("live: the nodes report; the server prints every reading it receives (Ctrl-C stops)")
        if seconds is None:
            await asyncio.Future()
        await asyncio.sleep(seconds or 0)

    async def stop(self) -> int:
        """SIGTERM, the De-register, the exit status (0 when it was never started)."""
        if self.proc is None:
            return 0
        if self.proc.returncode is None:
            say("stopping: SIGTERM to bridged")
            self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(STEP_TIMEOUT):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.server.registered.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self.server.deregistered.wait()
        assert self.proc.returncode is not None
        say(f"bridged exited with status {self.proc.returncode}")
        return self.proc.returncode

    def log_tail(self, lines: int = 15) -> list[str]:
        if not self.log.exists():
            return []
        return self.log.read_text(errors="replace").splitlines()[-lines:]


async def trial(seconds: float | None) -> int:
    stop = stop_on_signals()
    failed: str | None = None
    ran_its_course = False
    with tempfile.TemporaryDirectory(prefix="bridged-try-") as tmp:
        server = LocalServer(say)
        await server.start()
        say(f"a LwM2M server on this machine: {server.uri}")
        shown = Trial(Path(tmp), server)
        try:
            try:
                ran_its_course = await run_until(stop, shown.run(seconds))
            except (TryFailed, OSError) as e:
                failed = str(e) or type(e).__name__
            status = await shown.stop()
            tail = shown.log_tail() if failed or status else []
        finally:
            await server.stop()
    say("the LwM2M server stopped; temp dir removed")
    if ran_its_course and not failed and not status and not server.readings:
        failed = f"the server received no readings in {seconds:g} s"
    if failed or status:
        say(f"bridged --try failed: {failed or f'bridged exited with status {status}'}")
        for line in tail:
            say(f"  bridged: {line}")
        return 1
    if server.readings:
        say(f"it works: the server received {server.readings} readings from the simulated nodes")
    return 0


def main(seconds: float | None) -> int:
    return asyncio.run(trial(seconds))
