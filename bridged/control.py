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
import contextlib
import functools
import grp
import json
import logging
import os
import pwd
import socket
import sqlite3
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from bridged.aio import cancel_and_wait
from bridged.objects.errors import LwM2MError
from bridged.objects.paths import Path
from bridged.store.secrets import SecretsFileError
from bridged.transports.base import UnknownTransport, normalise_node
from bridged.transports.nodes import NodeId, NodeIdError, Secret

from .app import HISTORY_LIMIT, Gateway, OperationFailed
from .cli import MONITOR_SOCKET_NAME
from .service import status_line

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
SOCKET_GROUP = "bridged"
MONITOR_GROUP = "bridged-monitor"
MAX_LINE = 1 << 16
MAX_SCAN = 3600.0
MAX_TEXT = 4096
"""The longest text param: every text the daemon takes (a path, a node id, a value, which the
resource's own bound then checks) is far shorter."""

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
FAILED = 1
NOT_AVAILABLE = 2
REFUSED = 3


BINDKEY = "bindkey"
BINDKEY_BYTES = 16
"""A BTHome bind key is an AES-128 key."""


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

    def _bad(self, name: str, why: str) -> ProtocolError:
        return ProtocolError(INVALID_PARAMS, f"params.{name}: {why}")

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        if name not in self.params or self.params[name] is None:
            if default is ...:
                raise self._bad(name, "is required")
            return default
        value = self.params[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self._bad(name, f"must be {_names(kinds)}, not a boolean")
        if not isinstance(value, kinds):
            raise self._bad(name, f"must be {_names(kinds)}, not {type(value).__name__}")
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise self._bad(name, f"is at most {MAX_TEXT} characters, not {len(value)}")
        return value

    def path(self, name: str = "path", default: str | None = None) -> Path:
        text = self.get(name, str, ... if default is None else default)
        try:
            return Path.parse(text)
        except LwM2MError as e:
            raise self._bad(name, str(e)) from None

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
            raise self._bad(name, str(e)) from None

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = float(self.get(name, (int, float), default))
        if not low <= value <= high:
            raise self._bad(name, f"must be between {low:g} and {high:g}, not {value:g}")
        return value

    def server(self) -> int | None:
        ssid = self.get("server", int)
        if ssid is not None and not 1 <= ssid <= 65534:
            raise self._bad("server", f"short server ID {ssid} is outside 1..65534")
        return ssid  # type: ignore[no-any-return]


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

Handler = Callable[[Params, "Connection"], Awaitable[Any]]


class Connection:
    """One client connection: its writer (serialised), its peer and its subscription."""

    def __init__(self, writer: asyncio.StreamWriter, peer: Peer, read_only: bool = False) -> None:
        self.writer = writer
        self.peer = peer
        self.read_only = read_only
        self.lock = asyncio.Lock()
        self.rid: Any = None
        self.forwarder: asyncio.Task[None] | None = None

    async def send(self, line: bytes) -> None:
        async with self.lock:
            self.writer.write(line)
            await self.writer.drain()

    async def event(self, kind: str, data: Mapping[str, Any], time: float | None = None) -> None:
        await self.send(event_line(self.rid, kind, data, time))


@dataclass(frozen=True, slots=True)
class Method:
    """A method of the socket: the params it takes, its handler, and whether it changes the
    gateway (pairing, its tree, its LwM2M client): those are refused on the monitor socket."""

    params: tuple[str, ...]
    handler: Handler
    changes: bool = False


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
        self._methods: dict[str, Method] = {
            "status": Method((), self._status),
            "nodes": Method((), self._nodes),
            "node.show": Method(("node",), self._node_show),
            "scan": Method(("seconds", "transport"), self._scan),
            "pair": Method(
                ("node", "name", "profile", "sleepy", "keys", "bindkey", "options"),
                self._pair,
                changes=True,
            ),
            "unpair": Method(("node",), self._unpair, changes=True),
            "permit_join": Method(("seconds",), self._permit_join, changes=True),
            "ls": Method(("path",), self._ls),
            "read": Method(("path",), self._read),
            "write": Method(("path", "value"), self._write, changes=True),
            "exec": Method(("path", "args"), self._exec, changes=True),
            "create": Method(("path", "values"), self._create, changes=True),
            "delete": Method(("path",), self._delete, changes=True),
            "observe.list": Method(("server",), self._observe_list),
            "send": Method(("paths", "server"), self._send, changes=True),
            "update": Method(("server",), self._update, changes=True),
            "start": Method((), self._start, changes=True),
            "stop": Method((), self._stop, changes=True),
            "subscribe": Method(("events",), self._subscribe),
            "unsubscribe": Method((), self._unsubscribe),
            "commands.pending": Method(("node",), self._commands_pending),
            "commands.history": Method(("node", "limit"), self._commands_history),
        }

    @property
    def methods(self) -> list[str]:
        return sorted(self._methods)

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
                await self._end_subscription(conn)
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
            method = self._methods.get(request.method)
            if method is None:
                raise ProtocolError(
                    METHOD_NOT_FOUND,
                    f"unknown method {request.method!r}; known: {', '.join(self.methods)}",
                )
            if method.changes and conn.read_only:
                raise ProtocolError(
                    REFUSED,
                    f"{request.method} changes the gateway: {self.monitor_path} is read-only; "
                    f"use {self.path} (group {self.group_name})",
                )
            params = Params(request.params, method.params)
            conn.rid = rid
            result = await method.handler(params, conn)
        except ProtocolError as e:
            await conn.send(error_line(e.data.get("id", rid), e.code, e.message))
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

    # -- methods -----------------------------------------------------------------------------

    async def _status(self, p: Params, conn: Connection) -> Any:
        status = self.gateway.status()
        status["summary"] = status_line(status)
        return status

    async def _nodes(self, p: Params, conn: Connection) -> Any:
        return self.gateway.node_list()

    async def _node_show(self, p: Params, conn: Connection) -> Any:
        return self.gateway.node(p.node())

    async def _scan(self, p: Params, conn: Connection) -> Any:
        """Stream what is heard for ``seconds``, with a progress line each second."""
        seconds = p.number("seconds", 10.0, 0.1, MAX_SCAN)
        transport = p.get("transport", str)
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

    async def _pair(self, p: Params, conn: Connection) -> Any:
        """Pair ``node`` (``transport:address``, the address in any spelling its transport
        takes), with its ``keys`` ({name: hex}), its BTHome ``bindkey`` (hex, 16 bytes) and
        transport ``options`` (e.g. ``{"bond": true}`` for a GATT node that needs bonding).
        A malformed address, key or option is INVALID_PARAMS; a radio failure (bonding) is
        FAILED with its reason."""
        node = p.node()
        keys = p.get("keys", dict, {})
        secrets = {}
        for name, text in keys.items():
            if not isinstance(text, str):
                raise ProtocolError(INVALID_PARAMS, f"params.keys.{name}: must be hex text")
            try:
                secrets[name] = Secret.from_hex(text)
            except ValueError as e:
                raise ProtocolError(INVALID_PARAMS, f"params.keys.{name}: {e}") from None
        bindkey = p.get("bindkey", str)
        if bindkey is not None:
            try:
                secrets[BINDKEY] = Secret.from_hex(bindkey, BINDKEY_BYTES)
            except ValueError as e:
                raise ProtocolError(INVALID_PARAMS, f"params.bindkey: {e}") from None
        self._audit(conn, f"pair {node}")
        try:
            return await self.gateway.pair(
                node,
                name=p.get("name", str),
                profile=p.get("profile", str, ""),
                sleepy=p.get("sleepy", bool, False),
                secrets=secrets,
                options=p.get("options", dict, {}),
            )
        except ValueError as e:
            raise ProtocolError(INVALID_PARAMS, f"cannot pair {node}: {e}") from None

    async def _unpair(self, p: Params, conn: Connection) -> Any:
        node = p.node()
        self._audit(conn, f"unpair {node}")
        self.gateway.unpair(node)
        return {"unpaired": str(node)}

    async def _permit_join(self, p: Params, conn: Connection) -> Any:
        seconds = p.number("seconds", 60.0, 0.0, MAX_SCAN)
        self._audit(conn, f"permit-join {seconds:g} s")
        return {"seconds": self.gateway.permit_join(seconds)}

    async def _ls(self, p: Params, conn: Connection) -> Any:
        return self.gateway.shell.ls(p.path(default="/"))

    async def _read(self, p: Params, conn: Connection) -> Any:
        return await self.gateway.shell.read(p.path())

    async def _write(self, p: Params, conn: Connection) -> Any:
        path = p.path()
        value = p.get("value", (str, int, float, bool), ...)
        text = ("1" if value else "0") if isinstance(value, bool) else str(value)
        self._audit(conn, f"write {path}")
        await self.gateway.shell.write(path, text)
        return {"written": str(path)}

    async def _exec(self, p: Params, conn: Connection) -> Any:
        path = p.path()
        self._audit(conn, f"exec {path}")
        await self.gateway.shell.execute(path, p.get("args", str, ""))
        return {"executed": str(path)}

    async def _create(self, p: Params, conn: Connection) -> Any:
        """Create an instance with ``values`` ({resource ID: text form}, optional)."""
        path = p.path()
        values: dict[int, str] = {}
        for rid, text in p.get("values", dict, {}).items():
            if not (isinstance(rid, str) and rid.isdigit() and isinstance(text, str)):
                raise ProtocolError(
                    INVALID_PARAMS, f"params.values.{rid}: give resource ID: text value"
                )
            values[int(rid)] = text
        self._audit(conn, f"create {path}")
        return {"created": self.gateway.shell.create(path, values)}

    async def _delete(self, p: Params, conn: Connection) -> Any:
        path = p.path()
        self._audit(conn, f"delete {path}")
        self.gateway.shell.delete(path)
        return {"deleted": str(path)}

    async def _observe_list(self, p: Params, conn: Connection) -> Any:
        return self.gateway.observations(p.server())

    async def _send(self, p: Params, conn: Connection) -> Any:
        texts = p.get("paths", list, ...)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ProtocolError(INVALID_PARAMS, "params.paths: must be a non-empty list of paths")
        try:
            paths = [Path.parse(t) for t in texts]
        except LwM2MError as e:
            raise ProtocolError(INVALID_PARAMS, f"params.paths: {e}") from None
        outcome = await self.gateway.send(paths, p.server())
        result = {
            "server": outcome.server,
            "status": outcome.status.value,
            "records": outcome.records,
            "detail": outcome.detail,
        }
        self.gateway.events.publish("send", **result)
        if not outcome.delivered:
            raise OperationFailed(
                f"send to {outcome.server}: {outcome.status.value} {outcome.detail}"
            )
        return result

    async def _update(self, p: Params, conn: Connection) -> Any:
        return {"updating": self.gateway.update(p.server())}

    async def _start(self, p: Params, conn: Connection) -> Any:
        self._audit(conn, "start (register)")
        await self.gateway.start_client()
        return {"lwm2m": "started"}

    async def _stop(self, p: Params, conn: Connection) -> Any:
        self._audit(conn, "stop (de-register)")
        await self.gateway.stop_client()
        return {"lwm2m": "stopped"}

    async def _subscribe(self, p: Params, conn: Connection) -> Any:
        kinds = p.get("events", list)
        if kinds is not None and not all(isinstance(k, str) for k in kinds):
            raise ProtocolError(INVALID_PARAMS, "params.events: must be a list of event kinds")
        await self._end_subscription(conn)
        sub = self.gateway.events.subscribe(kinds)
        conn.forwarder = asyncio.create_task(self._forward(sub, conn, conn.rid))
        return {"subscribed": kinds or "all"}

    async def _unsubscribe(self, p: Params, conn: Connection) -> Any:
        await self._end_subscription(conn)
        return {"subscribed": None}

    async def _commands_pending(self, p: Params, conn: Connection) -> Any:
        """The writes and executes waiting for their (sleepy) node, oldest first."""
        return self.gateway.commands_pending(self._optional_node(p))

    async def _commands_history(self, p: Params, conn: Connection) -> Any:
        """The commands that ended, newest first, each with its status and detail."""
        limit = int(p.number("limit", 100, 1, HISTORY_LIMIT))
        return self.gateway.commands_history(self._optional_node(p), limit)

    @staticmethod
    def _optional_node(p: Params) -> NodeId | None:
        return None if p.get("node", str) is None else p.node()

    async def _forward(self, sub: Any, conn: Connection, rid: Any) -> None:
        try:
            while (event := await sub.get()) is not None:
                await conn.send(event_line(rid, event.kind, event.data, event.time))
            if sub.overflowed:
                await conn.send(error_line(rid, FAILED, "subscription dropped: too far behind"))
        except (ConnectionError, BrokenPipeError):
            pass
        finally:
            sub.close()

    async def _end_subscription(self, conn: Connection) -> None:
        task, conn.forwarder = conn.forwarder, None
        await cancel_and_wait(task)


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
