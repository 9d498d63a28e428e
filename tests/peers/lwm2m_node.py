"""Driver for the lwm2m-node-lib LwM2M server peer (``tests/peers/node/server.js``).

The suite checks the client engine against a LwM2M server written by someone else. This module
starts that server as a subprocess on 127.0.0.1 and speaks its line-delimited JSON protocol
(documented at the top of ``server.js``): commands go out with an ``id`` and are answered by id,
everything else that arrives is an event (registration, update, unregistration, notification).

Events are kept in arrival order until a test asks for them, so a test can wait for "the
registration of ep1" without losing an update that came first. Nothing here sleeps: every wait is
on a line from the peer, bounded by a timeout.

What the peer can and cannot do is listed in ``server.js``; in short: LwM2M 1.x registrations of
any version, Read/Write/Execute/Observe on single resources with text values, Discover,
Write-Attributes; no Block1 on Register (it keeps the first block only), no binary formats.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peers.processes import wait_or_kill

NODE_DIR = Path(__file__).resolve().with_name("node")
SERVER_JS = NODE_DIR / "server.js"
INSTALL_COMMAND = f"npm ci --prefix {NODE_DIR}"

#: Lines of the peer's stderr kept for error messages.
STDERR_TAIL = 50


class PeerMissing(RuntimeError):
    """Node.js or the peer's npm packages are not installed; the message says how to fix it."""


class PeerExited(RuntimeError):
    """The peer process ended while a command or an event was awaited."""


class CommandFailed(RuntimeError):
    """The peer answered a command with ``ok: false``; ``error`` is the library's reason."""

    def __init__(self, op: str, error: str) -> None:
        super().__init__(f"{op} failed: {error}")
        self.op = op
        self.error = error


@dataclass(frozen=True)
class Event:
    """One event line from the peer: ``kind`` is its "event" field, ``data`` the whole object."""

    kind: str
    data: dict[str, Any]

    @property
    def endpoint(self) -> str | None:
        value = self.data.get("endpoint")
        return value if isinstance(value, str) else None


def find_node() -> str:
    """Path of the ``node`` executable, or PeerMissing saying how to install it."""
    node = shutil.which("node")
    if node is None:
        raise PeerMissing(
            "node (Node.js) is not installed; install it with: apt-get install nodejs npm"
        )
    return node


def check_packages() -> None:
    """Raise PeerMissing with the fix when ``npm ci`` has not been run in the peer's folder."""
    if not (NODE_DIR / "node_modules" / "lwm2m-node-lib" / "package.json").is_file():
        raise PeerMissing(f"the lwm2m-node-lib peer is not installed; run: {INSTALL_COMMAND}")


class LwM2MNodeServer:
    """A running lwm2m-node-lib server; use :meth:`running` to get one."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self._process = process
        #: The UDP port the LwM2M server listens on (on 127.0.0.1).
        self.port = port
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: deque[Event] = deque()
        self._arrived = asyncio.Condition()
        self._stderr: deque[str] = deque(maxlen=STDERR_TAIL)
        self._exited = False
        self._tasks = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    @property
    def uri(self) -> str:
        """The server URI a LwM2M client is configured with."""
        return f"coap://127.0.0.1:{self.port}"

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, *, port: int = 0, node: str | None = None, ready_timeout: float = 15.0
    ) -> AsyncIterator[LwM2MNodeServer]:
        """Start the peer (port 0: a free port), wait for its ready line, stop it on exit."""
        server = await cls.start(port=port, node=node, ready_timeout=ready_timeout)
        try:
            yield server
        finally:
            await server.stop()

    @classmethod
    async def start(
        cls, *, port: int = 0, node: str | None = None, ready_timeout: float = 15.0
    ) -> LwM2MNodeServer:
        """Start the peer and return once it listens; call :meth:`stop` when done."""
        executable = node or find_node()
        check_packages()
        process = await asyncio.create_subprocess_exec(
            executable,
            "--no-warnings",  # the library's old dependencies warn on every start
            str(SERVER_JS),
            str(port),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=NODE_DIR,
        )
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), ready_timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise PeerExited(f"lwm2m-node-lib peer not ready within {ready_timeout} s") from None
        try:
            ready = json.loads(line)
        except json.JSONDecodeError:
            ready = {}
        if ready.get("event") != "ready":
            assert process.stderr is not None
            await process.wait()
            stderr = (await process.stderr.read()).decode(errors="replace")
            raise PeerExited(f"lwm2m-node-lib peer failed to start: {line!r}\n{stderr}")
        return cls(process, int(ready["port"]))

    async def stop(self, timeout: float = 5.0) -> None:
        """Close stdin (the peer stops its server and exits); kill it if it does not."""
        if self._process.returncode is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            await wait_or_kill(self._process, timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- commands ---------------------------------------------------------------------------

    async def command(self, op: str, *, timeout: float = 10.0, **fields: Any) -> Any:
        """Send one command and return its ``value``; CommandFailed if the answer is not ok."""
        if self._exited:
            raise PeerExited(self._exit_message())
        command_id = next(self._ids)
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[command_id] = reply
        line = json.dumps({"id": command_id, "op": op, **fields}) + "\n"
        assert self._process.stdin is not None
        self._process.stdin.write(line.encode())
        try:
            await self._process.stdin.drain()
            answer = await asyncio.wait_for(reply, timeout)
        except TimeoutError:
            raise TimeoutError(f"no answer to {op} {fields} within {timeout} s") from None
        finally:
            self._replies.pop(command_id, None)
        if not answer.get("ok"):
            raise CommandFailed(op, str(answer.get("error")))
        return answer.get("value")

    async def read(self, endpoint: str, path: str, *, accept: str | None = None) -> str:
        """Read one resource (/o/i/r); ``accept`` is a media type name such as "text/plain"."""
        fields: dict[str, Any] = {"accept": accept} if accept is not None else {}
        return str(await self.command("read", endpoint=endpoint, path=path, **fields))

    async def write(
        self, endpoint: str, path: str, value: str, *, content_format: str | None = None
    ) -> None:
        """Write one resource (PUT /o/i/r) with a text value, text/plain unless told otherwise."""
        fields: dict[str, Any] = {"format": content_format} if content_format is not None else {}
        await self.command("write", endpoint=endpoint, path=path, value=value, **fields)

    async def execute(self, endpoint: str, path: str, arguments: str | None = None) -> None:
        """Execute a resource (POST /o/i/r), with the argument list as payload if given."""
        fields: dict[str, Any] = {"value": arguments} if arguments is not None else {}
        await self.command("execute", endpoint=endpoint, path=path, **fields)

    async def observe(self, endpoint: str, path: str, *, accept: str | None = None) -> str:
        """Observe a resource; returns the first value, later ones arrive as notification events."""
        fields: dict[str, Any] = {"accept": accept} if accept is not None else {}
        return str(await self.command("observe", endpoint=endpoint, path=path, **fields))

    async def cancel(self, endpoint: str, path: str) -> None:
        """Forget an observation (the library sends nothing: later notifications go unanswered)."""
        await self.command("cancel", endpoint=endpoint, path=path)

    async def discover(self, endpoint: str, path: str) -> str:
        """Discover /o, /o/i or /o/i/r; returns the link-format text."""
        return str(await self.command("discover", endpoint=endpoint, path=path))

    async def write_attributes(self, endpoint: str, path: str, **attributes: float | str) -> None:
        """Write-Attributes (pmin, pmax, gt, lt, st, cancel) on a resource."""
        await self.command("writeAttributes", endpoint=endpoint, path=path, attributes=attributes)

    async def list_clients(self) -> list[dict[str, Any]]:
        """The registered clients: endpoint, id, lifetime, address, port, location."""
        return list(await self.command("listClients"))

    # -- events -----------------------------------------------------------------------------

    async def wait_event(
        self, kind: str | None = None, *, timeout: float = 10.0, **match: Any
    ) -> Event:
        """Remove and return the oldest event of this kind whose fields equal ``match``.

        Events that do not match stay queued for a later call.
        """

        def take() -> Event | None:
            for event in self._events:
                if (kind is None or event.kind == kind) and all(
                    event.data.get(key) == value for key, value in match.items()
                ):
                    self._events.remove(event)
                    return event
            return None

        async def wait() -> Event:
            async with self._arrived:
                while True:
                    event = take()
                    if event is not None:
                        return event
                    if self._exited:
                        raise PeerExited(self._exit_message())
                    await self._arrived.wait()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            pending = [event.data for event in self._events]
            raise TimeoutError(
                f"no {kind or 'event'} {match} within {timeout} s; queued: {pending}"
            ) from None

    async def events(self, *, timeout: float = 10.0) -> AsyncIterator[Event]:
        """Every event in arrival order; stops with TimeoutError after ``timeout`` of silence."""
        while True:
            yield await self.wait_event(timeout=timeout)

    # -- plumbing ---------------------------------------------------------------------------

    async def _read_stdout(self) -> None:
        assert self._process.stdout is not None
        try:
            async for raw in self._process.stdout:
                try:
                    message = json.loads(raw)
                except json.JSONDecodeError:
                    self._stderr.append(f"(not JSON on stdout) {raw!r}")
                    continue
                if "event" in message:
                    async with self._arrived:
                        self._events.append(Event(str(message["event"]), message))
                        self._arrived.notify_all()
                else:
                    reply = self._replies.get(message.get("id"))
                    if reply is not None and not reply.done():
                        reply.set_result(message)
        finally:
            await self._process.wait()
            self._exited = True
            for reply in self._replies.values():
                if not reply.done():
                    reply.set_exception(PeerExited(self._exit_message()))
            async with self._arrived:
                self._arrived.notify_all()

    async def _read_stderr(self) -> None:
        assert self._process.stderr is not None
        async for raw in self._process.stderr:
            self._stderr.append(raw.decode(errors="replace").rstrip())

    def _exit_message(self) -> str:
        tail = "\n".join(self._stderr)
        return f"lwm2m-node-lib peer exited with status {self._process.returncode}\n{tail}"


#: What the ``lwm2m_node_server`` fixture hands out: :meth:`LwM2MNodeServer.running`.
NodeServerFactory = Callable[..., AbstractAsyncContextManager[LwM2MNodeServer]]
