"""``bridgectl``: pair and inspect nodes, and drive the LwM2M client, through the daemon's
control socket (see bridged/control.py for the protocol).

It imports nothing heavy (no aiocoap, no bleak, no serial, not the engine): only the standard
library, so ``bridgectl --help`` and every command start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any

from . import __version__

DEFAULT_SOCKET = "/run/bridged/control.sock"
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

INVALID_PARAMS = -32602

EPILOG = f"""\
exit status:
  {EXIT_OK}  done
  {EXIT_FAILED}  the operation failed (the daemon said why)
  {EXIT_USAGE}  bad argument
  {EXIT_NOT_RUNNING}  the daemon is not running (no socket, or nothing listening on it)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); scan prints what it heard until then

The socket is --socket, else $BRIDGED_SOCKET, else {DEFAULT_SOCKET}.
Examples:
  bridgectl status
  bridgectl scan --seconds 30
  bridgectl pair ble A4:C1:38:00:11:22 --name kitchen --bindkey 231d39c1d7cc1ab1aee224cd096db932
  bridgectl pair 802154 00:12:4b:00:01:02:03:04
  bridgectl read /3303/0/5700
  bridgectl --json nodes
"""


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


# -- output ----------------------------------------------------------------------------------


def table(rows: Sequence[Sequence[Any]], header: Sequence[str], out: IO[str]) -> None:
    """Columns padded to their widest cell; None shows as ``-``."""
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    for row in [list(header), *cells]:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def progress_bar(elapsed: float, total: float, heard: int, width: int = 30) -> str:
    """``scanning [#####.....]  5/10 s, 3 heard``."""
    done = 0 if total <= 0 else min(int(width * elapsed / total), width)
    bar = "#" * done + "." * (width - done)
    return f"scanning [{bar}] {elapsed:.0f}/{total:.0f} s, {heard} heard"


def value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def show_status(status: Mapping[str, Any], out: IO[str]) -> None:
    out.write(f"endpoint   {status['endpoint']} (exposure {status['exposure']})\n")
    out.write(f"summary    {status.get('summary', '')}\n")
    out.write(f"uptime     {status['uptime']:.0f} s, LwM2M client {status['lwm2m']}\n")
    for s in status["servers"]:
        detail = f" ({s['detail']})" if s.get("detail") else ""
        out.write(f"server {s['short_server_id']:<3} {s['uri']}  {s['state']}{detail}\n")
        delivery = s.get("delivery")
        if delivery:
            error = f", last error: {delivery['last_error']}" if delivery["last_error"] else ""
            out.write(
                f"  delivery {delivery['backlog']} waiting, {delivery['delivered']} delivered "
                f"in {delivery['sends']} sends, {delivery['skipped']} skipped{error}\n"
            )
    endpoints = status.get("endpoints")
    if endpoints is not None:
        states = ", ".join(f"{n} {state}" for state, n in endpoints["states"].items())
        out.write(f"endpoints  {endpoints['nodes']} node endpoints: {states or 'none'}\n")
    nodes = status["nodes"]
    out.write(
        f"nodes      {nodes['paired']} paired, {nodes['reachable']} reachable, "
        f"{nodes['heard']} heard\n"
    )
    readings = status["readings"]
    out.write(
        f"readings   {readings['stored']} stored, {readings['dropped']} dropped, "
        f"{readings['unpaired']} from unpaired nodes ignored\n"
    )
    if readings.get("unclean_stops"):
        out.write(
            f"  {readings['unclean_stops']} unclean stops (kill -9, crash): each may have lost "
            "what was still on its way from the radio to the gateway\n"
        )
    if readings.get("problem"):
        out.write(
            f"  STORING FAILS: {readings['problem']}; {readings['unstored']} readings held "
            "in memory until it works again\n"
        )
    commands = status.get("commands")
    if commands is not None:
        out.write(f"commands   {commands['pending']} pending (bridgectl commands)\n")
    for name, state in sorted(status["transports"].items()):
        out.write(f"transport  {name}: {state}\n")
    if status.get("permit_join"):
        out.write(f"permit-join open for {status['permit_join']:.0f} s\n")


def problem_text(node: Mapping[str, Any]) -> str | None:
    """Why a node's data is refused (``bind key does not decrypt this node's adverts``) with
    its decrypt-failure count, or None when nothing is wrong."""
    failures = node.get("decrypt_failures") or 0
    problem = node.get("problem")
    if problem is None:
        return None
    return f"{problem} ({failures} decrypt failure{'' if failures == 1 else 's'})"


def show_nodes(nodes: Iterable[Mapping[str, Any]], out: IO[str]) -> None:
    nodes = list(nodes)
    table(
        [
            (
                n["id"],
                n["name"],
                n["profile"] or None,
                "yes" if n["reachable"] else "no",
                n["rssi"],
                n["battery"],
                age_text(n["age"]),
            )
            for n in nodes
        ],
        ("NODE", "NAME", "PROFILE", "REACHABLE", "RSSI", "BATTERY", "LAST SEEN"),
        out,
    )
    for n in nodes:
        problem = problem_text(n)
        if problem is not None:
            out.write(f"{n['id']}: {problem}\n")


def show_node(node: Mapping[str, Any], out: IO[str]) -> None:
    for key in ("id", "name", "transport", "profile", "sleepy", "reachable", "rssi", "battery"):
        value = node[key]
        out.write(f"{key:<10} {'unknown' if value is None else value_text(value)}\n")
    out.write(f"{'last seen':<10} {age_text(node['age'])}\n")
    out.write(f"{'keys':<10} {', '.join(node['secrets']) or '-'}\n")
    if node.get("decrypt_failures") or node.get("problem"):
        out.write(f"{'decrypt failures':<10} {node.get('decrypt_failures') or 0}\n")
        out.write(f"{'problem':<10} {node.get('problem') or '-'}\n")
    firmware = node.get("firmware")
    if firmware:
        sent = "" if firmware["percent"] is None else f", {firmware['percent']}% sent"
        out.write(
            f"{'firmware':<10} {firmware['state']}, result {firmware['result']}"
            f" {firmware['version'] or ''}{sent}\n"
        )
    table(
        [(v["path"], v["upstream"], value_text(v["value"])) for v in node["values"]],
        ("NODE PATH", "UPSTREAM", "VALUE"),
        out,
    )


def show_records(records: Iterable[Mapping[str, Any]], out: IO[str]) -> None:
    for r in records:
        out.write(f"{r['path']} = {value_text(r['value'])}\n")


def show_heard(nodes: Iterable[Mapping[str, Any]], out: IO[str]) -> None:
    table(
        [
            (
                n["id"],
                n["name"],
                n["rssi"],
                n["profile"],
                "yes" if n["paired"] else "no",
                n.get("values") or None,
            )
            for n in nodes
        ],
        ("NODE", "NAME", "RSSI", "PROFILE", "PAIRED", "VALUES"),
        out,
    )


def in_text(seconds: float) -> str:
    """A time to come, ``in 23h``; ``due`` once it has passed."""
    if seconds <= 0:
        return "due"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"in {seconds / size:.0f}{unit}"
    return f"in {seconds:.0f}s"


def command_value(command: Mapping[str, Any]) -> str | None:
    """What a command sets or passes: a write's value (``path=value`` for each record when it
    writes several), an execute's arguments."""
    if command["kind"] == "execute":
        return command["arguments"] or None
    records = command["records"]
    if len(records) == 1 and records[0]["path"] == command["path"]:
        return value_text(records[0]["value"])
    return ", ".join(f"{r['path']}={value_text(r['value'])}" for r in records) or None


COMMAND_COLUMNS = ("ID", "NODE", "PATH", "KIND", "VALUE")


def command_cells(command: Mapping[str, Any]) -> tuple[Any, ...]:
    """The cells every command table starts with: which command, for which node and path,
    setting or passing what."""
    c = command
    return (c["id"], c["node"], c["path"], c["kind"], command_value(c))


def show_commands(
    commands: Iterable[Mapping[str, Any]], out: IO[str], now: float | None = None
) -> None:
    """The desired-state queue: what waits for which node, since when and until when."""
    now = time.time() if now is None else now
    table(
        [
            (
                *command_cells(c),
                age_text(max(now - c["submitted"], 0.0)),
                in_text(c["expires"] - now),
            )
            for c in commands
        ],
        (*COMMAND_COLUMNS, "SUBMITTED", "EXPIRES"),
        out,
    )


def show_history(
    commands: Iterable[Mapping[str, Any]], out: IO[str], now: float | None = None
) -> None:
    """The commands that ended: how (applied, failed, expired, superseded), when and why."""
    now = time.time() if now is None else now
    table(
        [
            (
                *command_cells(c),
                c["status"],
                None if c["finished"] is None else age_text(max(now - c["finished"], 0.0)),
                c["detail"] or None,
            )
            for c in commands
        ],
        (*COMMAND_COLUMNS, "STATUS", "ENDED", "DETAIL"),
        out,
    )


def heard_line(node: Mapping[str, Any], new: bool) -> str:
    """One live line of a scan: ``+ ble:A4:C1:38:0A:0B:0C  kitchen  -61 dBm  bthome  21.4 °C``
    (``+`` a node heard for the first time, ``~`` new values of one already listed)."""
    rssi = "-" if node.get("rssi") is None else f"{node['rssi']} dBm"
    paired = "  (paired)" if node.get("paired") else ""
    fields = (node["id"], node.get("name") or "-", rssi, node.get("profile") or "-")
    values = node.get("values") or ""
    return f"{'+' if new else '~'} {'  '.join(fields)}  {values}".rstrip() + paired


def show_observations(servers: Iterable[Mapping[str, Any]], out: IO[str]) -> None:
    for s in servers:
        out.write(f"server {s['short_server_id']} {s['server']}: {len(s['observations'])}\n")
        for paths in s["observations"]:
            out.write(f"  {' '.join(paths)}\n")


# -- the commands ----------------------------------------------------------------------------


BINDKEY_DIGITS = 32


def bindkey_hex(text: str) -> str:
    """``--bindkey``: 32 hex digits (a 16-byte AES-128 key), checked here so a typo is told
    before anything reaches the daemon; the message never repeats the key."""
    digits = text.strip().lower()
    if len(digits) != BINDKEY_DIGITS or any(c not in "0123456789abcdef" for c in digits):
        raise Failed(
            EXIT_USAGE,
            f"--bindkey: a bind key is {BINDKEY_DIGITS} hex digits (16 bytes); "
            f"this one has {len(digits)} characters"
            + ("" if all(c in "0123456789abcdef" for c in digits) else ", not all hex"),
        )
    return digits


def node_argument(node: str, address: str | None) -> str:
    """``pair TRANSPORT ADDRESS`` or ``pair transport:address``, as the daemon's node id text;
    the daemon normalises the address for its transport."""
    if address is not None:
        if not node or ":" in node:
            raise Failed(EXIT_USAGE, f"{node!r} is not a transport name (ble, 802154, ...)")
        return f"{node}:{address}"
    if ":" not in node:
        raise Failed(EXIT_USAGE, f"give TRANSPORT ADDRESS or transport:address, not {node!r}")
    return node


def _keys(pairs: Sequence[str]) -> dict[str, str]:
    keys = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise Failed(EXIT_USAGE, f"--key {name or pair!r}: give NAME=HEX")
        keys[name] = value
    return keys


def _values(pairs: Sequence[str]) -> dict[str, str]:
    """``create``'s ``RID=VALUE`` arguments as {resource ID: text form}."""
    values = {}
    for pair in pairs:
        rid, sep, value = pair.partition("=")
        if not sep or not rid.isdigit():
            raise Failed(EXIT_USAGE, f"{pair!r}: give RID=VALUE, e.g. 5550=1")
        values[rid] = value
    return values


def _server(args: argparse.Namespace) -> dict[str, Any]:
    return {} if args.server is None else {"server": args.server}


def _common_options(parser: argparse.ArgumentParser, after_command: bool = False) -> None:
    """--socket, --json and --timeout, taken before the command and after it. After it their
    default is SUPPRESS, so that one given before the command is not reset by it."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if after_command else value

    parser.add_argument(
        "--socket", default=default(None), help=f"the control socket (default: {DEFAULT_SOCKET})"
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="machine-readable output"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=default(30.0),
        help="seconds to wait for an answer (30)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridgectl",
        description="Pair and inspect the nodes of a running bridged, and drive its LwM2M client.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bridgectl {__version__}")
    _common_options(parser)
    after = argparse.ArgumentParser(add_help=False)
    _common_options(after, after_command=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[after], **kwargs)

    def action(
        actions: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str
    ) -> argparse.ArgumentParser:
        return actions.add_parser(name, help=help, description=help, parents=[after])

    command("status", "the gateway: registration, nodes, readings, transports")
    command("nodes", "the paired nodes")
    node = command("node", "one paired node")
    node_sub = node.add_subparsers(dest="node_command", required=True, metavar="ACTION")
    show = action(node_sub, "show", "a node in detail: state, keys, values")
    show.add_argument("node", help="transport:address")
    scan = command(
        "scan",
        "list the nodes heard during a window, live, with their decoded values "
        "(with --json: a JSON line per node heard or changed, then the list as a JSON array)",
    )
    scan.add_argument("--seconds", type=float, default=10.0, help="window (%(default)s s)")
    scan.add_argument("--transport", help="only nodes of this transport")
    pair = command("pair", "pair a node: it is exposed upstream from now on")
    pair.add_argument(
        "node", help="the transport (ble, 802154, ...), or transport:address in one word"
    )
    pair.add_argument(
        "address",
        nargs="?",
        help="its address: a MAC (A4:C1:38:00:11:22) or an EUI-64 (00:12:4b:00:01:02:03:04)",
    )
    pair.add_argument("--bindkey", metavar="HEX", help="its BTHome bind key (32 hex digits)")
    pair.add_argument(
        "--bond", action="store_true", help="bond through BlueZ (a GATT node that needs it)"
    )
    pair.add_argument(
        "--firmware",
        choices=("smp",),
        help="how its firmware is updated: smp (a GATT node running MCUboot with MCUmgr SMP)",
    )
    pair.add_argument("--name", help="its name (shown upstream in 5750 Application Type)")
    pair.add_argument("--profile", default="", help="how its data is read (bthome, ...)")
    pair.add_argument("--sleepy", action="store_true", help="a battery node that sleeps")
    pair.add_argument(
        "--key", action="append", default=[], metavar="NAME=HEX", help="a key (bindkey=...)"
    )
    unpair = command("unpair", "unpair a node: it disappears upstream")
    unpair.add_argument("node")
    permit = command(
        "permit-join",
        "let nodes that ask join for a while (0 closes); with --wait (the default on a "
        "terminal) count down and show each node that joins until the window closes, and "
        "Ctrl-C closes it",
    )
    permit.add_argument("seconds", nargs="?", type=float, default=60.0)
    permit.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        help="count down and show the nodes that join (default: when stdout is a terminal)",
    )
    ls = command("ls", "objects, instances or resources of the gateway's tree")
    ls.add_argument("path", nargs="?", default="/")
    read = command("read", "read values of the gateway's tree")
    read.add_argument("path")
    write = command("write", "set a resource (text form: 0/1, numbers, base64, oid:iid)")
    write.add_argument("path")
    write.add_argument("value")
    execute = command("exec", "execute a resource")
    execute.add_argument("path")
    execute.add_argument("args", nargs="?", default="", help="LwM2M arguments, e.g. 0='x'")
    create = command("create", "create an object instance, with its mandatory resources")
    create.add_argument("path", help="/oid (lowest free instance) or /oid/iid")
    create.add_argument(
        "values", nargs="*", metavar="RID=VALUE", help="a resource's value (text form), e.g. 5550=1"
    )
    delete = command("delete", "delete an object instance")
    delete.add_argument("path")
    observe = command("observe", "the servers' observations")
    observe_sub = observe.add_subparsers(dest="observe_command", required=True, metavar="ACTION")
    observe_list = action(observe_sub, "list", "list them per server")
    observe_list.add_argument("--server", type=int, help="short server ID")
    send = command("send", "LwM2M Send of the current values of paths")
    send.add_argument("paths", nargs="+")
    send.add_argument("--server", type=int, help="short server ID (default: the first)")
    update = command("update", "send a registration Update now")
    update.add_argument("--server", type=int, help="short server ID (default: all)")
    command("start", "register with the servers again (after stop)")
    command("stop", "de-register from every server and stay off until start")
    events = command("events", "stream what happens (registrations, nodes, readings...)")
    events.add_argument("kinds", nargs="*", help="only these kinds (registration, node, ...)")
    commands = command(
        "commands",
        "the desired-state queue: writes and executes waiting for a sleepy node",
    )
    commands.add_argument("node", nargs="?", help="only this node's (transport:address)")
    commands.add_argument(
        "--history",
        action="store_true",
        help="the commands that ended instead, newest first: applied, failed, expired or "
        "superseded, and why",
    )
    commands.add_argument(
        "--limit", type=int, default=100, help="with --history, at most this many (%(default)s)"
    )
    return parser


def run(args: argparse.Namespace, client: Client, out: IO[str], err: IO[str]) -> int:
    """Run the parsed command over ``client``, writing to ``out`` (data) and ``err``."""
    as_json = args.json

    def emit(result: Any, human: Callable[[Any, IO[str]], object] | None = None) -> int:
        if as_json or human is None:
            out.write(json.dumps(result, indent=2) + "\n")
        else:
            human(result, out)
        return EXIT_OK

    cmd = args.command
    if cmd == "status":
        return emit(client.call("status"), show_status)
    if cmd == "nodes":
        return emit(client.call("nodes"), show_nodes)
    if cmd == "node":
        return emit(client.call("node.show", {"node": args.node}), show_node)
    if cmd == "scan":
        return _scan(args, client, out, err)
    if cmd == "pair":
        return emit(
            client.call("pair", pair_params(args)), lambda n, o: o.write(f"paired {n['id']}\n")
        )
    if cmd == "unpair":
        result = client.call("unpair", {"node": args.node})
        return emit(result, lambda r, o: o.write(f"unpaired {r['unpaired']}\n"))
    if cmd == "permit-join":
        wait = out.isatty() if args.wait is None else args.wait
        if wait and args.seconds > 0:
            return _permit_join(args, client, out, err)
        result = client.call("permit_join", {"seconds": args.seconds})
        return emit(
            result,
            lambda r, o: o.write(
                f"permit-join open for {r['seconds']:g} s\n"
                if r["seconds"]
                else "permit-join closed\n"
            ),
        )
    if cmd == "ls":
        return emit(
            client.call("ls", {"path": args.path}),
            lambda rows, o: table(
                [(r["path"], r["name"], r.get("operations")) for r in rows],
                ("PATH", "NAME", "OPERATIONS"),
                o,
            ),
        )
    if cmd == "read":
        return emit(client.call("read", {"path": args.path}), show_records)
    if cmd == "write":
        result = client.call("write", {"path": args.path, "value": args.value})
        return emit(result, lambda r, o: None)
    if cmd == "exec":
        result = client.call("exec", {"path": args.path, "args": args.args})
        return emit(result, lambda r, o: None)
    if cmd == "create":
        result = client.call("create", {"path": args.path, "values": _values(args.values)})
        return emit(result, lambda r, o: o.write(f"created {r['created']}\n"))
    if cmd == "delete":
        return emit(client.call("delete", {"path": args.path}), lambda r, o: None)
    if cmd == "observe":
        return emit(client.call("observe.list", _server(args)), show_observations)
    if cmd == "send":
        result = client.call("send", {"paths": args.paths, **_server(args)})
        return emit(
            result,
            lambda r, o: o.write(f"{r['records']} record(s) {r['status']} ({r['server']})\n"),
        )
    if cmd == "update":
        result = client.call("update", _server(args))
        return emit(result, lambda r, o: o.write(f"update sent to {', '.join(r['updating'])}\n"))
    if cmd in ("start", "stop"):
        result = client.call(cmd)
        return emit(result, lambda r, o: o.write(f"LwM2M client {r['lwm2m']}\n"))
    if cmd == "events":
        return _events(args, client, out)
    if cmd == "commands":
        which: dict[str, Any] = {} if args.node is None else {"node": args.node}
        if args.history:
            which["limit"] = args.limit
            return emit(client.call("commands.history", which), show_history)
        return emit(client.call("commands.pending", which), show_commands)
    raise Failed(EXIT_USAGE, f"unknown command {cmd}")


def pair_params(args: argparse.Namespace) -> dict[str, Any]:
    """The ``pair`` request of ``bridgectl pair``: ``--bond`` and ``--firmware`` mean a GATT
    node (unless ``--profile`` says otherwise) with the option ``bond`` or ``firmware``."""
    gatt = args.bond or args.firmware
    params: dict[str, Any] = {
        "node": node_argument(args.node, args.address),
        "profile": args.profile or ("gatt" if gatt else ""),
        "sleepy": args.sleepy,
    }
    if args.name:
        params["name"] = args.name
    if args.key:
        params["keys"] = _keys(args.key)
    if args.bindkey is not None:
        params["bindkey"] = bindkey_hex(args.bindkey)
    options: dict[str, Any] = {}
    if args.bond:
        options["bond"] = True
    if args.firmware:
        options["firmware"] = args.firmware
    if options:
        params["options"] = options
    return params


def _scan(args: argparse.Namespace, client: Client, out: IO[str], err: IO[str]) -> int:
    """The scan window: on a terminal, a line per node heard (and per change of its values)
    above the progress bar; with --json, each of those as a JSON line on stdout as it comes;
    then the final table (or JSON array)."""
    live = err.isatty() and not args.json
    shown: set[str] = set()
    heard: dict[str, Mapping[str, Any]] = {}
    bar = ""

    def on_event(message: Mapping[str, Any]) -> None:
        nonlocal bar
        data = message["data"]
        if message["event"] == "node.heard":
            heard[data["id"]] = data
        if args.json:
            if message["event"] == "node.heard":
                out.write(json.dumps(data) + "\n")
                out.flush()
            return
        if not live:
            return
        if message["event"] == "progress":
            bar = progress_bar(data["elapsed"], data["seconds"], data["heard"])
        elif message["event"] == "node.heard":
            line = heard_line(data, data["id"] not in shown)
            shown.add(data["id"])
            err.write("\r\033[K" + line + "\n")
        err.write("\r" + bar)
        err.flush()

    client.sock.settimeout(args.timeout + args.seconds)
    params: dict[str, Any] = {"seconds": args.seconds}
    if args.transport:
        params["transport"] = args.transport
    code = EXIT_OK
    try:
        result = client.call("scan", params, on_event)
    except KeyboardInterrupt:
        # Ctrl-C ends the window early: what was heard so far is still the answer.
        result, code = list(heard.values()), EXIT_INTERRUPTED
    finally:
        if live:
            err.write("\n")
    if args.json:
        out.write(json.dumps(result) + "\n")
    else:
        show_heard(result, out)
    return code


TIME_KEYS = frozenset({"time", "submitted", "expires", "finished", "last_seen", "paired_at"})
"""The event data that are times (seconds since the epoch): shown as local ISO times."""


def iso_time(seconds: float) -> str:
    """``2026-12-06T23:21:05+01:00``: local time, to the second, with its offset."""
    return datetime.datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def field_text(key: str, value: Any) -> str:
    """One event field as ``key=value``: times in local ISO form, records as ``path=value``
    pairs, text with spaces quoted, anything else nested as compact JSON."""
    if key in TIME_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{key}={iso_time(value)}"
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, dict) and "path" in v and "value" in v for v in value)
    ):
        return f"{key}=" + ",".join(f"{v['path']}={value_text(v['value'])}" for v in value)
    if isinstance(value, (dict, list)):
        return f"{key}={json.dumps(value, separators=(',', ':'), ensure_ascii=False)}"
    text = value_text(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        text = json.dumps(text, ensure_ascii=False)
    return f"{key}={text}"


def event_text(message: Mapping[str, Any]) -> str:
    """An event as one line: ``2026-12-06T23:21:05+01:00 node.paired id=sim:0002 name=shed``
    (fields without a value left out)."""
    when = message.get("time")
    fields = [
        field_text(k, v) for k, v in message.get("data", {}).items() if v is not None and v != ""
    ]
    head = [iso_time(when)] if isinstance(when, (int, float)) else []
    return " ".join([*head, str(message.get("event")), *fields])


def _events(args: argparse.Namespace, client: Client, out: IO[str]) -> int:
    """Stream events until Ctrl-C (the usual end: exit 0) or the daemon ends them."""
    client.call("subscribe", {"events": args.kinds} if args.kinds else {})
    client.sock.settimeout(None)
    try:
        while True:
            message = client.receive()
            if "error" in message:
                raise failure(message["error"])
            out.write((json.dumps(message) if args.json else event_text(message)) + "\n")
            out.flush()
    except KeyboardInterrupt:
        return EXIT_OK


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


def _permit_join(args: argparse.Namespace, client: Client, out: IO[str], err: IO[str]) -> int:
    """Open the window, then count down and show each node that joins until it closes
    (here, or by anyone else's ``permit-join``); Ctrl-C closes it (exit 130). On a terminal
    the countdown is redrawn on stderr; each join is a line on stdout (a JSON line with
    --json), and so is the end."""
    live = err.isatty() and not args.json
    client.call("subscribe", {"events": ["node.paired", "permit_join"]})  # before: miss none
    stream = Stream(client)
    seconds = stream.call("permit_join", {"seconds": args.seconds}, args.timeout)["seconds"]
    deadline = time.monotonic() + seconds
    joined: list[dict[str, Any]] = []

    def say(line: str) -> None:
        if live:
            err.write("\r\033[K")
            err.flush()
        out.write(line + "\n")
        out.flush()

    try:
        while (left := deadline - time.monotonic()) > 0:
            if live:
                err.write(
                    f"\rpermit-join open: {math.ceil(left)} s left, {len(joined)} joined\033[K"
                )
                err.flush()
            message = stream.get(min(left, 1.0))
            if message is None:
                continue
            if message is stream.END:
                raise Failed(EXIT_FAILED, "bridged closed the connection")
            data = message.get("data", {})
            if message.get("event") == "node.paired":
                joined.append(dict(data))
                say(json.dumps(data) if args.json else f"joined {data['id']} ({data['name']})")
            elif message.get("event") == "permit_join":
                # Someone opened it again for longer, or closed it.
                deadline = time.monotonic() + max(float(data["seconds"]), 0.0)
    except KeyboardInterrupt:
        with contextlib.suppress(Failed):
            stream.call("permit_join", {"seconds": 0}, args.timeout)
        end = {"closed": "interrupted", "joined": [n["id"] for n in joined]}
        say(json.dumps(end) if args.json else f"permit-join closed: {len(joined)} joined")
        return EXIT_INTERRUPTED
    end = {"closed": "window over", "joined": [n["id"] for n in joined]}
    say(json.dumps(end) if args.json else f"permit-join closed: {len(joined)} joined")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = args.socket or os.environ.get("BRIDGED_SOCKET") or DEFAULT_SOCKET
    try:
        client = Client(path, args.timeout)
        try:
            return run(args, client, sys.stdout, sys.stderr)
        finally:
            client.close()
    except Failed as e:
        print(f"bridgectl: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``bridgectl events | head``): it had what it wanted. Point
        # stdout at /dev/null so that the interpreter's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
