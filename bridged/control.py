"""The control socket: how ``bridgectl`` (or any script) drives the running daemon.

A Unix stream socket at ``<runtime_dir>/control.sock``, mode 0660 and group ``bridged`` when
that group exists (changing the group needs the right to; when the daemon does not have it the
socket keeps the daemon's group, which the systemd unit makes ``bridged`` anyway). Each
connection's peer credentials (SO_PEERCRED) are checked: root, the daemon's own user and the
members of the socket's group may talk to it; anyone else is refused with one error line.

Beside it, ``<runtime_dir>/monitor.sock`` (mode 0660, group ``bridged-monitor`` when that
group exists) serves the same protocol read-only, for a monitoring user: status, nodes, events,
reads, scans; a method that changes the gateway (pair, write, exec, permit-join, ...) is
refused there with REFUSED. Its members, and those of ``bridged``, may use it. Two sockets
rather than one with a group check, so that the file system's permissions keep a monitoring
user away from the changing methods even before the daemon looks at who is calling.

The methods are the verbs of bridged/verbs.py, each with the params, access and gateway call
declared there; this module reads a request's params by their kinds (``Params``), refuses a
changing verb on the monitor socket, and serves the streams of ``scan`` and ``subscribe``.

The protocol is newline-delimited JSON, one request per line::

    {"id": 1, "method": "read", "params": {"path": "/3303/0/5700"}}
    -> {"id": 1, "result": [{"path": "/3303/0/5700", "value": 21.5}]}
    -> {"id": 1, "error": {"code": 1, "message": "...", "coap": "4.04"}}

Long operations stream: ``scan`` sends ``{"id": 1, "event": "progress" | "node.heard",
"data": {...}}`` lines before its result (a ``node.heard`` line for each new node, and again
when what it shows changes: its values, name, format or pairing), and ``subscribe`` answers
at once, then sends an event line for everything that happens (registration state changes,
nodes paired, unpaired and heard, readings, transports, node endpoints' registrations,
commands queued and their outcomes) until ``unsubscribe`` or the connection closes. Other
requests may be sent on a subscribed connection.

``commands.pending`` (params ``node``, optional) lists the desired-state queue, the writes and
executes waiting for a sleepy node; ``commands.history`` (``node``, ``limit``, both optional)
the commands that ended, newest first, each with its ``status`` (applied, failed, expired,
superseded) and ``detail`` (the node's CoAP code and message when it failed).

Error codes: the JSON-RPC ones for the protocol (-32700 not JSON, -32600 not a request, -32601
unknown method, -32602 bad params, -32603 internal error), then 1 the operation failed
(``coap`` carries the LwM2M code when there is one), 2 not available in this build, 3 refused
(peer credentials).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import grp
import inspect
import json
import logging
import os
import pwd
import socket
import sqlite3
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from bridged.aio import cancel_and_wait
from bridged.engine.access import check_server_id
from bridged.objects.errors import LwM2MError
from bridged.objects.paths import Path
from bridged.store.secrets import SecretsFileError
from bridged.transports.base import UnknownTransport, normalise_node
from bridged.transports.nodes import NodeId, NodeIdError, Secret

from . import verbs
from .app import Gateway
from .protocol import (
    FAILED,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    MONITOR_SOCKET_NAME,
    PARSE_ERROR,
    REFUSED,
    UPLOAD_CHUNK,
    OperationFailed,
)
from .verb import BadParams, Verb

log = logging.getLogger(__name__)

SOCKET_GROUP = "bridged"
MONITOR_GROUP = "bridged-monitor"
MAX_LINE = 1 << 16
MAX_TEXT = 4096
"""The longest text param: every text the daemon takes (a path, a node id, a value, which the
resource's own bound then checks) is far shorter."""


class ProtocolError(Exception):
    """A request that cannot be served; ``code`` is one of the error codes above."""

    def __init__(self, code: int, message: str, **data: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


@dataclass(frozen=True, slots=True)
class Request:
    id: Any
    method: str
    params: Mapping[str, Any]


def parse_request(line: bytes) -> Request:
    """One request line; ProtocolError (with the id when it could be read) otherwise."""
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(PARSE_ERROR, f"not JSON: {e}") from None
    except RecursionError:
        raise ProtocolError(PARSE_ERROR, "not JSON this daemon reads: nested too deeply") from None
    if not isinstance(message, dict):
        raise ProtocolError(INVALID_REQUEST, "a request is a JSON object")
    rid = message.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (int, str))):
        raise ProtocolError(INVALID_REQUEST, "id must be a number or a string")
    method = message.get("method")
    if not isinstance(method, str) or not method:
        raise ProtocolError(INVALID_REQUEST, "method must be a non-empty string", id=rid)
    params = message.get("params", {})
    if not isinstance(params, dict):
        raise ProtocolError(INVALID_REQUEST, "params must be an object", id=rid)
    unknown = set(message) - {"id", "method", "params"}
    if unknown:
        raise ProtocolError(INVALID_REQUEST, f"unknown member(s) {sorted(unknown)}", id=rid)
    return Request(rid, method, params)


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


def result_line(rid: Any, result: Any) -> bytes:
    return encode({"id": rid, "result": result})


def error_line(rid: Any, code: int, message: str, **data: Any) -> bytes:
    return encode({"id": rid, "error": {"code": code, "message": message, **data}})


def event_line(rid: Any, kind: str, data: Mapping[str, Any], time: float | None = None) -> bytes:
    body: dict[str, Any] = {"id": rid, "event": kind, "data": dict(data)}
    if time is not None:
        body["time"] = time
    return encode(body)


class Params:
    """A request's params with typed getters; a wrong one is INVALID_PARAMS naming it."""

    def __init__(self, params: Mapping[str, Any], known: tuple[str, ...]) -> None:
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ProtocolError(
                INVALID_PARAMS,
                f"unknown param(s) {', '.join(unknown)}; this method takes "
                + (", ".join(known) or "none"),
            )
        self.params = params

    def bad(self, name: str, why: str) -> ProtocolError:
        return ProtocolError(INVALID_PARAMS, f"params.{name}: {why}")

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        if name not in self.params or self.params[name] is None:
            if default is ...:
                raise self.bad(name, "is required")
            return default
        value = self.params[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.bad(name, f"must be {_names(kinds)}, not a boolean")
        if not isinstance(value, kinds):
            raise self.bad(name, f"must be {_names(kinds)}, not {type(value).__name__}")
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise self.bad(name, f"is at most {MAX_TEXT} characters, not {len(value)}")
        return value

    def path(self, name: str = "path", default: str | None = None) -> Path:
        text = self.get(name, str, ... if default is None else default)
        try:
            return Path.parse(text)
        except LwM2MError as e:
            raise self.bad(name, str(e)) from None

    def node(self, name: str = "node") -> NodeId:
        """A node id, its address in its transport's spelling (``ble:a4-c1-...`` is
        ``ble:A4:C1:...``); kept as given when its transport is not installed (any more), so
        such a node can still be shown and unpaired."""
        try:
            node = NodeId.parse(self.get(name, str, ...))
            return normalise_node(node)
        except UnknownTransport:
            return node
        except (NodeIdError, ValueError) as e:
            raise self.bad(name, str(e)) from None

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = float(self.get(name, (int, float), default))
        if not low <= value <= high:
            raise self.bad(name, f"must be between {low:g} and {high:g}, not {value:g}")
        return value

    def server(self, name: str = "server") -> int | None:
        ssid = self.get(name, int)
        if ssid is None:
            return None
        try:
            return check_server_id(ssid)
        except ValueError as e:
            raise self.bad(name, str(e)) from None

    def paths(self, name: str) -> list[Path]:
        texts = self.get(name, list, ...)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise self.bad(name, "must be a non-empty list of paths")
        try:
            return [Path.parse(t) for t in texts]
        except LwM2MError as e:
            raise self.bad(name, str(e)) from None

    def key(self, name: str) -> Secret | None:
        """A key given in hex; its length is its transport's to check (transports/pairing.py),
        and no message repeats it."""
        text = self.get(name, str)
        try:
            return None if text is None else Secret.from_hex(text)
        except ValueError as e:
            raise self.bad(name, str(e)) from None

    def data(self, name: str) -> bytes:
        """Bytes in base64, at most UPLOAD_CHUNK of them (a chunk of a file bridgectl sends)."""
        text = self.params.get(name)
        if not isinstance(text, str):
            raise self.bad(name, "is required, as base64 text")
        try:
            data = base64.b64decode(text, validate=True)
        except ValueError:
            raise self.bad(name, "is not base64") from None
        if len(data) > UPLOAD_CHUNK:
            raise self.bad(name, f"is at most {UPLOAD_CHUNK} bytes, not {len(data)}")
        return data

    def keys(self, name: str) -> dict[str, Secret]:
        """Keys by name, each in hex."""
        secrets = {}
        for key, text in self.get(name, dict, {}).items():
            if not isinstance(text, str):
                raise self.bad(f"{name}.{key}", "must be hex text")
            try:
                secrets[key] = Secret.from_hex(text)
            except ValueError as e:
                raise self.bad(f"{name}.{key}", str(e)) from None
        return secrets


def _names(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


# -- peer credentials ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Peer:
    pid: int
    uid: int
    gid: int


def peer_of(sock: socket.socket) -> Peer:
    pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return Peer(pid, uid, gid)


def peer_allowed(
    peer: Peer, *, own_uid: int, allowed: frozenset[int], groups: frozenset[int]
) -> bool:
    """Root, the daemon's own user, or a member of one of the ``allowed`` groups (the
    socket's, and for the monitor socket the control socket's too): its primary group, or
    one of ``groups``, the peer user's supplementary groups."""
    if peer.uid in (0, own_uid):
        return True
    return peer.gid in allowed or bool(allowed & groups)


def user_groups(uid: int) -> frozenset[int]:
    """The groups ``uid`` is a member of, from the user and group databases."""
    try:
        user = pwd.getpwuid(uid)
    except KeyError:
        return frozenset()
    return frozenset(os.getgrouplist(user.pw_name, user.pw_gid))


# -- the server ------------------------------------------------------------------------------


class Connection:
    """One client connection: its writer (serialised), its peer and its subscription."""

    def __init__(self, writer: asyncio.StreamWriter, peer: Peer, read_only: bool = False) -> None:
        self.writer = writer
        self.peer = peer
        self.read_only = read_only
        self.lock = asyncio.Lock()
        self.rid: Any = None
        self.forwarder: asyncio.Task[None] | None = None
        self.on_close: list[Callable[[], None]] = []
        """What to undo when the connection ends (an upload it left unfinished)."""

    async def send(self, line: bytes) -> None:
        async with self.lock:
            self.writer.write(line)
            await self.writer.drain()

    async def event(self, kind: str, data: Mapping[str, Any], time: float | None = None) -> None:
        await self.send(event_line(self.rid, kind, data, time))


class ControlServer:
    """Serves ``gateway`` on ``path``, and read-only on ``monitor_path`` (see the module
    docstring)."""

    def __init__(
        self,
        gateway: Gateway,
        path: FsPath,
        *,
        group: str = SOCKET_GROUP,
        monitor_group: str = MONITOR_GROUP,
    ) -> None:
        self.gateway = gateway
        self.path = path
        self.monitor_path = path.with_name(MONITOR_SOCKET_NAME)
        self.group_name = group
        self.monitor_group = monitor_group
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()
        self._own_uid = os.getuid()
        self._verbs = {verb.method: verb for verb in verbs.VERBS}

    @property
    def methods(self) -> list[str]:
        return sorted(self._verbs)

    async def start(self) -> None:
        """Listen on both sockets; a live socket at ``path`` means another daemon runs
        (OperationFailed). The runtime directory, when made here, lets others through (not
        list it): the monitor socket's users are not in the daemon's group."""
        self.path.parent.mkdir(mode=0o751, parents=True, exist_ok=True)
        if await _answers(self.path):
            raise OperationFailed(f"{self.path}: another bridged is running")
        for path, group, read_only in (
            (self.path, self.group_name, False),
            (self.monitor_path, self.monitor_group, True),
        ):
            await self._listen(path, group, read_only)
        log.info("control socket on %s, read-only on %s", self.path, self.monitor_path)

    async def _listen(self, path: FsPath, group: str, read_only: bool) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        old = os.umask(0o117)
        try:
            server = await asyncio.start_unix_server(
                functools.partial(self._serve, read_only=read_only), path=str(path), limit=MAX_LINE
            )
        finally:
            os.umask(old)
        self._servers.append(server)
        os.chmod(path, 0o660)
        try:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        except KeyError:
            log.debug("no group %s: %s keeps the daemon's group", group, path)
        except PermissionError:
            log.debug("not allowed to give %s to group %s", path, group)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
        await cancel_and_wait(*self._connections)
        for path in (self.path, self.monitor_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, read_only: bool
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        conn: Connection | None = None
        path = self.monitor_path if read_only else self.path
        try:
            peer = peer_of(writer.get_extra_info("socket"))
            conn = Connection(writer, peer, read_only)
            if not self._allowed(peer, read_only):
                log.warning("%s: uid %d (pid %d) refused", path, peer.uid, peer.pid)
                await conn.send(error_line(None, REFUSED, f"uid {peer.uid} may not use {path}"))
                return
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    return
                except asyncio.LimitOverrunError:
                    await conn.send(
                        error_line(None, INVALID_REQUEST, f"a request is at most {MAX_LINE} bytes")
                    )
                    return
                if line.strip():
                    await self.handle(line, conn)
        except (ConnectionError, BrokenPipeError):
            pass
        finally:
            if conn is not None:
                await self.end_subscription(conn)
                for undo in conn.on_close:
                    undo()
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _allowed(self, peer: Peer, read_only: bool) -> bool:
        """The members of the socket's group; on the monitor socket, those of the control
        socket's group too."""
        allowed = set()
        for path in (self.monitor_path, self.path) if read_only else (self.path,):
            with contextlib.suppress(OSError):
                allowed.add(os.stat(path).st_gid)
        groups = user_groups(peer.uid) if peer.uid not in (0, self._own_uid) else frozenset()
        return peer_allowed(peer, own_uid=self._own_uid, allowed=frozenset(allowed), groups=groups)

    async def handle(self, line: bytes, conn: Connection) -> None:
        """Serve one request line, answering on ``conn``."""
        rid = None
        try:
            request = parse_request(line)
            rid = request.id
            verb = self._verbs.get(request.method)
            if verb is None:
                raise ProtocolError(
                    METHOD_NOT_FOUND,
                    f"unknown method {request.method!r}; known: {', '.join(self.methods)}",
                )
            if verb.changes and conn.read_only:
                raise ProtocolError(
                    REFUSED,
                    f"{request.method} changes the gateway: {self.monitor_path} is read-only; "
                    f"use {self.path} (group {self.group_name})",
                )
            conn.rid = rid
            result = await self._serve_verb(verb, request.params, conn)
        except ProtocolError as e:
            await conn.send(error_line(e.data.get("id", rid), e.code, e.message))
        except BadParams as e:
            await conn.send(error_line(rid, INVALID_PARAMS, str(e)))
        except LwM2MError as e:
            await conn.send(error_line(rid, FAILED, str(e), coap=e.code_text))
        except (OperationFailed, SecretsFileError) as e:
            await conn.send(error_line(rid, FAILED, str(e)))
        except sqlite3.OperationalError as e:
            # A full or read-only file system: the change was not made, and is not a bug.
            message = f"the state database refuses the change ({e}); see bridgectl status"
            await conn.send(error_line(rid, FAILED, message))
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as e:
            log.exception("control request %r failed", line[:200])
            await conn.send(error_line(rid, INTERNAL_ERROR, f"{type(e).__name__}: {e}"))
        else:
            await conn.send(result_line(rid, result))

    def _audit(self, conn: Connection, what: str) -> None:
        log.info("control: %s (uid %d, pid %d)", what, conn.peer.uid, conn.peer.pid)

    async def _serve_verb(self, verb: Verb, params: Mapping[str, Any], conn: Connection) -> Any:
        """Read the request's params by the verb's declaration, log it when it changes the
        gateway, and make its gateway call."""
        args = verb.read(Params(params, tuple(p.name for p in verb.wire_params())))
        if verb.audit is not None:
            self._audit(conn, verb.audit.format_map(vars(args)))
        result = verb.call(self.gateway, args, _Session(self, conn))
        return await result if inspect.isawaitable(result) else result

    async def forward(self, sub: Any, conn: Connection, rid: Any) -> None:
        try:
            while (event := await sub.get()) is not None:
                await conn.send(event_line(rid, event.kind, event.data, event.time))
            if sub.overflowed:
                await conn.send(error_line(rid, FAILED, "subscription dropped: too far behind"))
        except (ConnectionError, BrokenPipeError):
            pass
        finally:
            sub.close()

    async def end_subscription(self, conn: Connection) -> None:
        task, conn.forwarder = conn.forwarder, None
        await cancel_and_wait(task)


class _Session:
    """The connection a verb is served on (``bridged.verb.Session``): the streams of scan and
    subscribe are the connection's."""

    def __init__(self, server: ControlServer, conn: Connection) -> None:
        self.server = server
        self.gateway = server.gateway
        self.conn = conn

    async def scan(self, seconds: float, transport: str | None) -> list[dict[str, Any]]:
        """Stream what is heard for ``seconds``, with a progress line each second."""
        conn = self.conn
        sub = self.gateway.events.subscribe(["node.heard"])
        loop = asyncio.get_running_loop()
        start = loop.time()
        heard: dict[str, dict[str, Any]] = {}
        try:
            while (left := start + seconds - loop.time()) > 0:
                await conn.event(
                    "progress", {"elapsed": seconds - left, "seconds": seconds, "heard": len(heard)}
                )
                tick = loop.time() + min(left, 1.0)
                while (wait := tick - loop.time()) > 0:
                    try:
                        async with asyncio.timeout(wait):
                            event = await sub.get()
                    except TimeoutError:
                        break
                    if event is None:
                        raise OperationFailed("the scan fell behind what is heard")
                    node = dict(event.data)
                    if transport is not None and not node["id"].startswith(f"{transport}:"):
                        continue
                    node["paired"] = NodeId.parse(node["id"]) in self.gateway.registry.live
                    before = heard.get(node["id"])
                    if before is None or _scan_line(before) != _scan_line(node):
                        await conn.event("node.heard", node, event.time)
                    heard[node["id"]] = node
        finally:
            sub.close()
        await conn.event("progress", {"elapsed": seconds, "seconds": seconds, "heard": len(heard)})
        return sorted(heard.values(), key=lambda n: (-(n["rssi"] or -999), n["id"]))

    async def subscribe(self, kinds: list[str] | None) -> dict[str, Any]:
        await self.server.end_subscription(self.conn)
        sub = self.gateway.events.subscribe(kinds)
        self.conn.forwarder = asyncio.create_task(
            self.server.forward(sub, self.conn, self.conn.rid)
        )
        return {"subscribed": kinds or "all"}

    async def unsubscribe(self) -> dict[str, Any]:
        await self.server.end_subscription(self.conn)
        return {"subscribed": None}

    def on_close(self, undo: Callable[[], None]) -> None:
        self.conn.on_close.append(undo)


def _scan_line(node: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a scan shows of a heard node, but its RSSI (which changes with every advert): a
    node is streamed again when this changes."""
    return (node["name"], node["profile"], node["values"], node["paired"])


async def _answers(path: FsPath) -> bool:
    """Whether something listens on the Unix socket ``path``."""
    try:
        _, writer = await asyncio.open_unix_connection(str(path))
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True
