"""The control protocol as both ends share it, and bridgectl's end of it.

The daemon's end is bridged/control.py (which documents the protocol); what both ends must agree
on is stated here once: the sockets' names, the error codes. bridgectl's connection (``Client``,
and ``Stream`` for a connection that streams events) and its exit statuses live here too, so
that the verbs' own ways of running (bridged/live.py) and bridgectl (bridged/cli.py) share them.

It imports only the standard library: bridgectl runs with it alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

DEFAULT_SOCKET = "/run/bridged/control.sock"
SOCKET_NAME = "control.sock"
MONITOR_SOCKET_NAME = "monitor.sock"
"""The read-only socket beside the control socket, for a monitoring user (group
bridged-monitor): bridgectl falls back to it when the control socket is not theirs."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_INTERRUPTED = 130
"""Ctrl-C (SIGINT), as shells report a command it ended: 128 + 2."""
CONNECT_WAIT = 30.0
"""Seconds to wait for a connection while the daemon's backlog is full, without --timeout."""

# The error codes of an answer: the JSON-RPC ones for the protocol, then the daemon's own.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
FAILED = 1
"""The operation failed (``coap`` carries the LwM2M code when there is one)."""
NOT_AVAILABLE = 2
"""Not available in this build."""
REFUSED = 3
"""Refused: peer credentials, or a changing method on the read-only monitor socket."""

UPLOAD_CHUNK = 32 * 1024
"""Bytes of a file in one ``node.update_chunk`` request: base64 makes them 43,692 characters,
well within the 64 KiB a request line may be."""
HISTORY_LIMIT = 1000
"""The most ended commands ``commands.history`` answers (and looks through for one node's)."""


class OperationFailed(Exception):
    """A control operation that cannot be done now; the message says why (FAILED on the
    socket, exit 1 in bridgectl)."""


class Failed(Exception):
    """The command failed; ``code`` is the exit status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Client:
    """One connection to the control socket; ``call`` sends a request and returns its result,
    handing any streamed event lines to ``on_event`` meanwhile."""

    def __init__(self, path: str, timeout: float | None) -> None:
        monitor = os.path.join(os.path.dirname(path), MONITOR_SOCKET_NAME)
        try:
            self.sock = self._open(path, timeout)
        except PermissionError:
            # Not a member of bridged: perhaps of bridged-monitor, which may watch.
            try:
                self.sock = self._open(monitor, timeout)
            except (PermissionError, FileNotFoundError, ConnectionRefusedError):
                raise Failed(
                    EXIT_FAILED,
                    f"{path}: permission denied; join the group bridged "
                    f"(or bridged-monitor, to watch through {monitor})",
                ) from None
            path = monitor
        self.path = path
        self.file = self.sock.makefile("rb")
        self._next = 0

    def _open(self, path: str, timeout: float | None) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            self._connect(sock, path, timeout)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            sock.close()
            if isinstance(e, FileNotFoundError) and os.path.basename(path) == MONITOR_SOCKET_NAME:
                raise
            raise Failed(
                EXIT_NOT_RUNNING,
                f"bridged is not running ({path}: {e.strerror}); see systemctl status bridged",
            ) from None
        except PermissionError:
            sock.close()
            raise
        return sock

    @staticmethod
    def _connect(sock: socket.socket, path: str, timeout: float | None) -> None:
        """Connect, waiting while the daemon's listen backlog is full (a socket with a
        timeout is non-blocking inside, and connect then fails with EAGAIN at once)."""
        deadline = time.monotonic() + (CONNECT_WAIT if timeout is None else timeout)
        while True:
            try:
                sock.connect(path)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    sock.close()
                    raise Failed(
                        EXIT_FAILED,
                        f"bridged is too busy to take a connection on {path} "
                        "(its backlog is full); try again",
                    ) from None
                time.sleep(0.05)

    def close(self) -> None:
        # Shut down first: a Stream's thread blocked reading the file holds its lock, and
        # closing the file would wait for it; the shutdown ends that read.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.file.close()
        self.sock.close()

    def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        on_event: Callable[[Mapping[str, Any]], None] = lambda e: None,
    ) -> Any:
        rid = self.send(method, params)
        while True:
            message = self.receive()
            if "event" in message:
                # Outside the socket's error handling: a closed stdout is not a lost daemon.
                on_event(message)
                continue
            if "error" in message:
                raise failure(message["error"])
            if message.get("id") == rid:
                return message.get("result")

    def send(self, method: str, params: Mapping[str, Any] | None = None) -> int:
        """Send a request; returns its id."""
        self._next += 1
        request = {"id": self._next, "method": method, "params": dict(params or {})}
        with self._socket_errors():
            self.sock.sendall(json.dumps(request).encode() + b"\n")
        return self._next

    def receive(self) -> dict[str, Any]:
        """The next line from the daemon (a result, an error or an event)."""
        with self._socket_errors():
            line = self.file.readline()
        if not line:
            raise Failed(EXIT_FAILED, "bridged closed the connection")
        message: dict[str, Any] = json.loads(line)
        return message

    @contextlib.contextmanager
    def _socket_errors(self) -> Iterator[None]:
        try:
            yield
        except TimeoutError:
            raise Failed(EXIT_FAILED, f"no answer from bridged on {self.path}") from None
        except (ConnectionError, BrokenPipeError) as e:
            raise Failed(EXIT_FAILED, f"connection to bridged lost: {e}") from None


def failure(error: Mapping[str, Any]) -> Failed:
    """The daemon's error answer as the failure bridgectl exits with."""
    code = EXIT_USAGE if error.get("code") == INVALID_PARAMS else EXIT_FAILED
    coap = f" ({error['coap']})" if error.get("coap") else ""
    return Failed(code, f"{error.get('message')}{coap}")


class Stream:
    """The lines of a subscribed connection, read by a thread into a queue, so that the
    caller can wait for the next one a second at a time (a socket file cannot be read again
    once a read timed out) and Ctrl-C still interrupts the wait."""

    END: dict[str, Any] = {}
    """What ``get`` returns once the daemon closed the connection."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.held: list[dict[str, Any]] = []
        client.sock.settimeout(None)
        threading.Thread(target=self._read, name="bridgectl-stream", daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in self.client.file:
                self.lines.put(json.loads(line))
        self.lines.put(self.END)

    def get(self, timeout: float) -> dict[str, Any] | None:
        """The next message, None when none came within ``timeout``, END at the end."""
        if self.held:
            return self.held.pop(0)
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def call(self, method: str, params: Mapping[str, Any], timeout: float) -> Any:
        """A request on the streamed connection: its result; the events that come before it
        are kept for ``get``."""
        rid = self.client.send(method, params)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if message.get("id") == rid and "event" not in message:
                if "error" in message:
                    raise failure(message["error"])
                return message.get("result")
            self.held.append(message)
            if message is self.END:
                break
        raise Failed(EXIT_FAILED, f"no answer from bridged to {method}")
