"""bridgectl: exit codes, --json, tables, the scan progress bar, and its fast start.

The daemon side is a scripted Unix socket server in a thread (the CLI's own logic is under
test here; tests/integration/test_daemon.py runs bridgectl against the real daemon)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from bridged import cli, output

HEAVY = ("aiocoap", "bleak", "serial", "bridged.engine", "bridged.app", "cbor2", "sqlite3")


class ScriptedDaemon:
    """Answers each request line with ``answer(request)`` (a list of lines to send)."""

    def __init__(self, path: Path, answer: Callable[[dict[str, Any]], list[dict[str, Any]]]):
        self.path = path
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen()
        self.conn: socket.socket | None = None
        self.thread = threading.Thread(target=self._serve, name="scripted-daemon")
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conn = conn
            with contextlib.suppress(OSError), conn, conn.makefile("rwb") as f:
                for line in f:
                    request = json.loads(line)
                    self.requests.append(request)
                    for message in self.answer(request):
                        f.write(json.dumps(message).encode() + b"\n")
                    f.flush()

    def close(self) -> None:
        """Stop serving and join the thread. Shutting the sockets down is what wakes it: on
        Linux, closing a socket another thread waits on (in ``accept`` or a read) leaves that
        thread waiting, for ever."""
        for sock in (self.sock, self.conn):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the scripted daemon's thread did not stop"


def test_the_scripted_daemon_stops_its_thread(socket_path: Path) -> None:
    """Idle in ``accept`` or serving a client that is still connected, it ends at ``close``."""
    idle = ScriptedDaemon(socket_path, lambda request: [])
    idle.close()
    assert not idle.thread.is_alive()
    socket_path.unlink()
    serving = ScriptedDaemon(socket_path, lambda request: [])
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(socket_path))
        client.sendall(b'{"id": 1, "method": "nodes"}\n')
        deadline = time.monotonic() + 10
        while not serving.requests and time.monotonic() < deadline:
            time.sleep(0.01)  # polled: the thread reads the client's next line once it has one
        assert serving.requests
        serving.close()
    assert not serving.thread.is_alive()


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "control.sock"


def run(socket_path: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = cli.main(["--socket", str(socket_path), *argv])
    finally:
        sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


def daemon(socket_path: Path, result: Any = None, error: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    def answer(request: dict[str, Any]) -> list[dict[str, Any]]:
        if error is not None:
            return [{"id": request["id"], "error": error}]
        return [{"id": request["id"], "result": result}]

    return ScriptedDaemon(socket_path, answer)


class Terminal(io.StringIO):
    """Output that is a terminal: bridgectl draws its progress there."""

    def isatty(self) -> bool:
        return True


def scripted(
    socket_path: Path,
    answer: Callable[[dict[str, Any]], list[dict[str, Any]]],
    err: IO[str],
    *argv: str,
) -> tuple[int, str]:
    """bridgectl's ``argv`` against a daemon that answers ``answer``, what it writes to stderr
    into ``err`` (a terminal, say); its exit code and what it wrote to stdout."""
    d = ScriptedDaemon(socket_path, answer)
    out = io.StringIO()
    try:
        client = cli.Client(str(socket_path), 5)
        try:
            code = cli.run(cli.build_parser().parse_args(argv), client, out, err)
        finally:
            client.close()
    finally:
        d.close()
        socket_path.unlink(missing_ok=True)
    return code, out.getvalue()


NODES = [
    {
        "id": "sim:0001",
        "name": "porch",
        "profile": "sim",
        "reachable": True,
        "rssi": -60,
        "battery": None,
        "age": 75.0,
    }
]


def test_json_output_is_the_result(socket_path: Path) -> None:
    d = daemon(socket_path, NODES)
    try:
        code, out, _ = run(socket_path, "--json", "nodes")
    finally:
        d.close()
    assert code == cli.EXIT_OK
    assert json.loads(out) == NODES
    assert d.requests == [{"id": 1, "method": "nodes", "params": {}}]


def test_tables_by_default(socket_path: Path) -> None:
    d = daemon(socket_path, NODES)
    try:
        code, out, _ = run(socket_path, "nodes")
    finally:
        d.close()
    assert code == cli.EXIT_OK
    header, row = out.splitlines()
    assert header.split() == [
        "NODE",
        "NAME",
        "PROFILE",
        "REACHABLE",
        "RSSI",
        "BATTERY",
        "LAST",
        "SEEN",
    ]
    assert row.split() == ["sim:0001", "porch", "sim", "yes", "-60", "-", "1m", "ago"]


def test_a_failed_operation_exits_1_with_the_daemons_message(socket_path: Path) -> None:
    d = daemon(socket_path, error={"code": 1, "message": "/9/9 does not exist", "coap": "4.04"})
    try:
        code, out, err = run(socket_path, "read", "/9/9")
    finally:
        d.close()
    assert code == cli.EXIT_FAILED and out == ""
    assert err.strip() == "bridgectl: /9/9 does not exist (4.04)"


def test_params_the_daemon_refuses_exit_2(socket_path: Path) -> None:
    d = daemon(socket_path, error={"code": -32602, "message": "params.path: bad"})
    try:
        code, _, err = run(socket_path, "read", "/x")
    finally:
        d.close()
    assert code == cli.EXIT_USAGE and "params.path" in err


def test_bad_arguments_exit_2(socket_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--socket", str(socket_path), "permit-join", "soon"])
    assert info.value.code == cli.EXIT_USAGE
    with pytest.raises(SystemExit) as info:
        cli.main(["frobnicate"])
    assert info.value.code == cli.EXIT_USAGE


def test_no_daemon_exits_3(socket_path: Path, tmp_path: Path) -> None:
    code, _, err = run(socket_path, "status")
    assert code == cli.EXIT_NOT_RUNNING and "not running" in err
    # A socket file nobody listens on (a daemon that died) is the same.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_path))
    stale.close()
    code, _, err = run(socket_path, "status")
    assert code == cli.EXIT_NOT_RUNNING


def test_the_socket_comes_from_the_environment(
    socket_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = daemon(socket_path, {"lwm2m": "stopped"})
    monkeypatch.setenv("BRIDGED_SOCKET", str(socket_path))
    try:
        assert cli.main(["stop"]) == cli.EXIT_OK
    finally:
        d.close()


def test_every_method_has_a_subcommand(socket_path: Path) -> None:
    """Each subcommand sends the method of the control socket it stands for."""
    commands = {
        ("status",): "status",
        ("nodes",): "nodes",
        ("node", "show", "sim:1"): "node.show",
        ("scan", "--seconds", "1"): "scan",
        ("pair", "sim:1", "--key", "bindkey=00"): "pair",
        ("unpair", "sim:1"): "unpair",
        ("permit-join", "30"): "permit_join",
        ("ls",): "ls",
        ("read", "/3"): "read",
        ("write", "/3/0/15", "x"): "write",
        ("exec", "/3/0/4"): "exec",
        ("create", "/3303"): "create",
        ("delete", "/3303/0"): "delete",
        ("observe", "list"): "observe.list",
        ("send", "/3/0/0"): "send",
        ("update",): "update",
        ("start",): "start",
        ("stop",): "stop",
        ("commands",): "commands.pending",
        ("commands", "--history"): "commands.history",
    }
    d = daemon(socket_path, error={"code": 1, "message": "no"})
    try:
        for argv, method in commands.items():
            assert run(socket_path, *argv)[0] == cli.EXIT_FAILED
            assert d.requests[-1]["method"] == method, argv
    finally:
        d.close()
    assert d.requests[4]["params"] == {
        "node": "sim:1",
        "profile": "",
        "sleepy": False,
        "keys": {"bindkey": "00"},
    }


def test_scan_streams_progress_on_a_terminal(socket_path: Path) -> None:
    def answer(request: dict[str, Any]) -> list[dict[str, Any]]:
        rid = request["id"]
        heard = {"id": "sim:1", "name": "a", "rssi": -50, "profile": "sim", "paired": False}
        return [
            {"id": rid, "event": "progress", "data": {"elapsed": 0, "seconds": 2, "heard": 0}},
            {"id": rid, "event": "node.heard", "data": heard},
            {"id": rid, "event": "progress", "data": {"elapsed": 2, "seconds": 2, "heard": 1}},
            {"id": rid, "result": [heard]},
        ]

    err = Terminal()
    code, out = scripted(socket_path, answer, err, "scan", "--seconds", "2")
    assert code == cli.EXIT_OK
    frames = err.getvalue().split("\r")
    assert frames[1].startswith("scanning [....") and "0/2 s, 0 heard" in frames[1]
    # the node's line clears the bar, then the bar is drawn again below it
    assert frames[2] == "\033[K+ sim:1  a  -50 dBm  sim\n"
    assert frames[3].startswith("scanning [....") and "0/2 s, 0 heard" in frames[3]
    assert frames[4].startswith("scanning [####") and "2/2 s, 1 heard" in frames[4]
    assert "sim:1" in out.splitlines()[1]


def test_progress_bar() -> None:
    assert output.progress_bar(5, 10, 3, width=10) == "scanning [#####.....] 5/10 s, 3 heard"
    assert output.progress_bar(12, 10, 0, width=4) == "scanning [####] 12/10 s, 0 heard"


def test_help_documents_the_exit_codes() -> None:
    text = cli.build_parser().format_help()
    for code in ("0  done", "1  the operation failed", "2  bad argument", "3  the daemon is not"):
        assert code in text


def test_help_imports_nothing_heavy() -> None:
    """``bridgectl --help`` loads only the standard library and bridged/cli.py."""
    probe = (
        "import sys\n"
        "from bridged import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print([m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r}])\n"
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


# -- bridgectl commands ----------------------------------------------------------------------

NOW = 1_700_000_000.0
WRITE = {
    "id": 7,
    "node": "sim:0002",
    "path": "/3311/0/5850",
    "kind": "write",
    "status": "pending",
    "records": [{"path": "/3311/0/5850", "value": True}],
    "arguments": "",
    "replace": True,
    "submitted": NOW - 300,
    "expires": NOW + 86100,
    "finished": None,
    "detail": "",
}
EXECUTE = {
    **WRITE,
    "id": 8,
    "path": "/3311/0",
    "kind": "execute",
    "records": [],
    "arguments": "0='x'",
    "submitted": NOW - 5,
    "expires": NOW - 1,
}
PARTIAL = {
    **WRITE,
    "id": 9,
    "path": "/3311/0",
    "replace": False,
    "records": [
        {"path": "/3311/0/5850", "value": False},
        {"path": "/3311/0/5706", "value": "red"},
    ],
}


def test_the_pending_queue_as_a_table() -> None:
    out = io.StringIO()
    output.show_commands([WRITE, EXECUTE, PARTIAL], out, now=NOW)
    header, *rows = out.getvalue().splitlines()
    assert header.split() == ["ID", "NODE", "PATH", "KIND", "VALUE", "SUBMITTED", "EXPIRES"]
    assert rows[0].split() == [
        "7",
        "sim:0002",
        "/3311/0/5850",
        "write",
        "true",
        "5m",
        "ago",
        "in",
        "24h",
    ]
    assert rows[1].split() == ["8", "sim:0002", "/3311/0", "execute", "0='x'", "5s", "ago", "due"]
    assert "/3311/0/5850=false, /3311/0/5706=red" in rows[2]


def test_a_firmware_update_under_way_is_listed_with_its_progress() -> None:
    firmware = {"state": "updating", "result": 0, "outcome": "initial", "version": "2.0.0+0"}
    update = {
        **WRITE,
        "id": None,
        "path": "/5/0/2",
        "kind": "firmware",
        "records": [],
        "expires": None,
        "firmware": {**firmware, "sent": 3072, "total": 4096, "percent": 75},
    }
    out = io.StringIO()
    output.show_commands([update], out, now=NOW)
    (row,) = out.getvalue().splitlines()[1:]
    assert "/5/0/2  firmware  updating, 3072/4096 bytes (75%), 2.0.0+0  5m ago" in row


def test_a_firmware_updates_progress_in_node_show_and_its_events() -> None:
    """Bytes and percent wherever an update under way is shown: ``node show``'s firmware line
    and each ``firmware`` event (``commands``: the test above)."""
    firmware = {"state": "updating", "result": 0, "outcome": "initial", "version": "2.0.0+0"}
    firmware |= {"sent": 3072, "total": 4096, "percent": 75}
    node = {**NODES[0], "transport": "sim", "sleepy": False, "rssi": None, "secrets": []}
    out = io.StringIO()
    output.show_node({**node, "values": [], "firmware": firmware}, out)
    assert "firmware   updating, 3072/4096 bytes (75%), 2.0.0+0" in out.getvalue().splitlines()
    event = {"event": "firmware", "data": {"node": "sim:0002", **firmware}}
    assert "sent=3072 total=4096 percent=75" in output.event_text(event)


def test_an_ended_firmware_update_in_the_history() -> None:
    ended = {
        **WRITE,
        "path": "/5/0/2",
        "kind": "firmware",
        "records": [],
        "status": "expired",
        "finished": NOW - 60,
        "detail": "Update Result 8: node sim:0002 did not wake to be updated within 900 s",
        "firmware": {"state": "idle", "result": 8, "outcome": "update failed", "version": ""},
    }
    out = io.StringIO()
    output.show_history([ended], out, now=NOW)
    (row,) = out.getvalue().splitlines()[1:]
    assert "/5/0/2  firmware  idle, result 8 update failed  expired  1m ago  Update Result 8" in row


def test_the_history_as_a_table() -> None:
    failed = {**WRITE, "status": "failed", "finished": NOW - 60, "detail": "4.05 not writable"}
    out = io.StringIO()
    output.show_history([failed], out, now=NOW)
    header, row = out.getvalue().splitlines()
    assert header.split() == ["ID", "NODE", "PATH", "KIND", "VALUE", "STATUS", "ENDED", "DETAIL"]
    assert row.split() == [
        "7",
        "sim:0002",
        "/3311/0/5850",
        "write",
        "true",
        "failed",
        "1m",
        "ago",
        "4.05",
        "not",
        "writable",
    ]


def test_commands_sends_the_node_and_history_the_limit(socket_path: Path) -> None:
    d = daemon(socket_path, [WRITE])
    try:
        code, out, _ = run(socket_path, "--json", "commands", "sim:0002")
        assert code == cli.EXIT_OK and json.loads(out) == [WRITE]
        code, out, _ = run(socket_path, "commands", "--history", "--limit", "5")
        assert code == cli.EXIT_OK and out.splitlines()[0].split()[5] == "STATUS"
    finally:
        d.close()
    assert [(r["method"], r["params"]) for r in d.requests] == [
        ("commands.pending", {"node": "sim:0002"}),
        ("commands.history", {"limit": 5}),
    ]


def test_status_shows_delivery_commands_and_node_endpoints() -> None:
    status = {
        "endpoint": "gw",
        "exposure": "endpoints",
        "summary": "",
        "uptime": 5,
        "lwm2m": "started",
        "servers": [
            {
                "short_server_id": 1,
                "uri": "coap://a",
                "state": "registered",
                "delivery": {
                    "backlog": 12,
                    "delivered": 300,
                    "sends": 4,
                    "skipped": 1,
                    "failed_sends": 2,
                    "last_error": "timeout",
                },
            }
        ],
        "endpoints": {"nodes": 3, "states": {"registered": 2, "waiting": 1}},
        "nodes": {"paired": 3, "reachable": 3, "heard": 3},
        "readings": {"stored": 12, "dropped": 0, "unpaired": 0},
        "commands": {"pending": 2},
        "transports": {"sim": "up"},
    }
    out = io.StringIO()
    output.show_status(status, out)
    text = out.getvalue()
    assert "delivery 12 waiting, 300 delivered in 4 sends, 1 skipped, last error: timeout" in text
    assert "3 node endpoints: 2 registered, 1 waiting" in text
    assert "commands   2 pending" in text


def test_status_shows_unavailable_nodes_and_the_gateways_faults() -> None:
    status = {
        "endpoint": "gw",
        "exposure": "instances",
        "uptime": 5,
        "lwm2m": "started",
        "servers": [],
        "nodes": {"paired": 3, "reachable": 1, "heard": 3, "unavailable": 2},
        "faults": [{"source": "transport.802154", "code": 8, "why": "radio down: unplugged"}],
        "readings": {"stored": 0, "dropped": 0, "unpaired": 0},
        "transports": {"802154": "up"},
    }
    out = io.StringIO()
    output.show_status(status, out)
    text = out.getvalue()
    assert "nodes      3 paired, 1 reachable, 3 heard, 2 UNAVAILABLE" in text
    assert "FAULT      transport.802154: radio down: unplugged (error code 8)" in text


def pair_request(socket_path: Path, *argv: str) -> tuple[int, str, dict[str, Any] | None]:
    d = daemon(socket_path, {"id": "x"})
    try:
        code, _, err = run(socket_path, "pair", *argv)
    finally:
        d.close()
        socket_path.unlink()
    return code, err, d.requests[-1]["params"] if d.requests else None


def test_pair_transport_address(socket_path: Path) -> None:
    code, _, params = pair_request(
        socket_path, "ble", "a4:c1:38:0a:0b:0c", "--bindkey", "231D39C1D7CC1AB1AEE224CD096DB932"
    )
    assert code == cli.EXIT_OK
    # the address goes as typed: the daemon normalises it for its transport
    assert params == {
        "node": "ble:a4:c1:38:0a:0b:0c",
        "profile": "",
        "sleepy": False,
        "bindkey": "231d39c1d7cc1ab1aee224cd096db932",
    }
    code, _, params = pair_request(socket_path, "802154", "00-12-4b-00-01-02-03-04")
    assert code == cli.EXIT_OK and params is not None
    assert params["node"] == "802154:00-12-4b-00-01-02-03-04"


def test_pair_transport_colon_address_still_works(socket_path: Path) -> None:
    code, _, params = pair_request(socket_path, "ble:A4:C1:38:0A:0B:0C", "--name", "kitchen")
    assert code == cli.EXIT_OK and params is not None
    assert (params["node"], params["name"]) == ("ble:A4:C1:38:0A:0B:0C", "kitchen")


def test_pair_bond_is_a_gatt_node_with_the_bond_option(socket_path: Path) -> None:
    code, _, params = pair_request(socket_path, "ble", "C4:7C:8D:6A:00:01", "--bond")
    assert code == cli.EXIT_OK and params is not None
    assert (params["profile"], params["options"]) == ("gatt", {"bond": True})


def test_pair_firmware_smp_is_a_gatt_node_with_the_firmware_option(socket_path: Path) -> None:
    argv = ("ble", "C4:7C:8D:6A:00:09", "--firmware", "smp", "--bond")
    code, _, params = pair_request(socket_path, *argv)
    assert code == cli.EXIT_OK and params is not None
    assert params["profile"] == "gatt"
    assert params["options"] == {"bond": True, "firmware": "smp"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("ble", "A4:C1:38:0A:0B:0C", "--bindkey", "231d39c1"), "32 hex digits"),
        (("ble", "A4:C1:38:0A:0B:0C", "--bindkey", "z" * 32), "not all hex"),
        (("A4C1380A0B0C",), "TRANSPORT ADDRESS"),
        (("ble:A4", "A4:C1:38:0A:0B:0C"), "not a transport name"),
    ],
)
def test_bad_pair_arguments_exit_2_before_asking(
    socket_path: Path, argv: tuple[str, ...], message: str
) -> None:
    code, err, params = pair_request(socket_path, *argv)
    assert code == cli.EXIT_USAGE and message in err
    assert params is None  # nothing was sent
    assert "231d39c1" not in err and "z" * 32 not in err  # a key is never echoed


def test_nodes_say_why_a_nodes_data_is_refused(socket_path: Path) -> None:
    bad = {
        **NODES[0],
        "id": "ble:A4:C1:38:0A:0B:0C",
        "decrypt_failures": 3,
        "problem": "bind key does not decrypt this node's adverts",
    }
    d = daemon(socket_path, [NODES[0], bad])
    try:
        code, out, _ = run(socket_path, "nodes")
    finally:
        d.close()
    assert code == cli.EXIT_OK
    assert out.splitlines()[-1] == (
        "ble:A4:C1:38:0A:0B:0C: bind key does not decrypt this node's adverts (3 decrypt failures)"
    )
    assert len(out.splitlines()) == 4  # header, two rows, one problem


def test_scan_lists_values_and_streams_json_lines(socket_path: Path) -> None:
    first = {
        "id": "ble:A4:C1:38:0A:0B:0C",
        "name": "ATC_0B0C",
        "rssi": -61,
        "profile": "bthome",
        "paired": False,
        "values": "21.4 °C 45.0 %",
    }
    sealed = {**first, "id": "ble:54:48:E6:8F:80:A5", "name": None, "values": "encrypted"}
    update = {**first, "values": "21.5 °C 45.0 %"}

    def answer(request: dict[str, Any]) -> list[dict[str, Any]]:
        rid = request["id"]
        return [
            {"id": rid, "event": "node.heard", "data": first},
            {"id": rid, "event": "node.heard", "data": sealed},
            {"id": rid, "event": "progress", "data": {"elapsed": 1, "seconds": 2, "heard": 2}},
            {"id": rid, "event": "node.heard", "data": update},
            {"id": rid, "result": [update, sealed]},
        ]

    for as_json in (False, True):
        err = Terminal()
        argv = ["--json"] * as_json + ["scan", "--seconds", "2"]
        code, out = scripted(socket_path, answer, err, *argv)
        assert code == cli.EXIT_OK
        if as_json:
            lines = [json.loads(line) for line in out.splitlines()]
            assert lines == [first, sealed, update, [update, sealed]]
            assert err.getvalue() == ""
        else:
            frames = err.getvalue().split("\r")
            live = [f.removeprefix("\x1b[K").rstrip("\n") for f in frames if "dBm" in f]
            assert live == [
                "+ ble:A4:C1:38:0A:0B:0C  ATC_0B0C  -61 dBm  bthome  21.4 °C 45.0 %",
                "+ ble:54:48:E6:8F:80:A5  -  -61 dBm  bthome  encrypted",
                "~ ble:A4:C1:38:0A:0B:0C  ATC_0B0C  -61 dBm  bthome  21.5 °C 45.0 %",
            ]
            header, *rows = out.splitlines()
            assert header.split() == ["NODE", "NAME", "RSSI", "PROFILE", "PAIRED", "VALUES"]
            assert rows[0].split()[-4:] == ["21.5", "°C", "45.0", "%"]
            assert rows[1].split()[-1] == "encrypted"


# -- issue 18.7: what a user of bridgectl hit ---------------------------------------------------


def test_json_socket_and_timeout_work_after_the_command_too(socket_path: Path) -> None:
    """The README says every command takes --json: after the command as well as before."""
    d = daemon(socket_path, NODES)
    try:
        code, out, _ = run(socket_path, "nodes", "--json")
        assert (code, json.loads(out)) == (cli.EXIT_OK, NODES)
        code, out, _ = run(socket_path, "observe", "list", "--json", "--timeout", "5")
        assert (code, json.loads(out)) == (cli.EXIT_OK, NODES)
        code, out, _ = run(socket_path, "--json", "nodes")
        assert json.loads(out) == NODES, "before the command: the subcommand keeps it"
    finally:
        d.close()
    code = cli.main(["nodes", "--socket", str(socket_path.parent / "none.sock")])
    assert code == cli.EXIT_NOT_RUNNING, "--socket after the command is the socket used"


def test_node_show_says_unknown_for_what_the_node_never_told() -> None:
    node = {
        **NODES[0],
        "transport": "sim",
        "sleepy": False,
        "rssi": None,
        "secrets": [],
        "values": [],
    }
    out = io.StringIO()
    output.show_node(node, out)
    lines = dict(line.split(None, 1) for line in out.getvalue().splitlines()[:8])
    assert lines["battery"] == "unknown" and lines["rssi"] == "unknown"
    assert "None" not in out.getvalue()


def test_events_are_readable_lines_with_local_iso_times() -> None:
    """Not Python reprs and epoch seconds: ``<ISO time> <kind> key=value ...``."""
    when = 1_700_000_000.5
    iso = output.iso_time(when)
    assert iso.startswith("2023-11-1") and iso[19] in "+-Z" and len(iso) in (20, 25)
    registration = {
        "event": "registration",
        "time": when,
        "data": {
            "server": "coap://192.0.2.1:5683",
            "event": "registration-failure",
            "state": "retry-wait",
            "detail": "coap://192.0.2.1:5683 timed out: no answer within 93 s",
        },
    }
    assert output.event_text(registration) == (
        f"{iso} registration server=coap://192.0.2.1:5683 event=registration-failure "
        'state=retry-wait detail="coap://192.0.2.1:5683 timed out: no answer within 93 s"'
    )
    readings = {
        "event": "readings",
        "time": when,
        "data": {
            "id": "sim:0001",
            "records": [
                {"path": "/3303/0/5700", "value": 21.5, "time": when},
                {"path": "/3311/0/5850", "value": True},
            ],
        },
    }
    assert output.event_text(readings) == (
        f"{iso} readings id=sim:0001 records=/3303/0/5700=21.5,/3311/0/5850=true"
    )
    command = {
        "event": "command",
        "data": {"id": 7, "submitted": when, "detail": "", "finished": None, "arguments": ""},
    }
    assert output.event_text(command) == f"command id=7 submitted={iso}"
    nested = {"event": "x", "data": {"objects": {"3303": [0]}}}
    assert output.event_text(nested) == 'x objects={"3303":[0]}'


class Interrupting(Terminal):
    """A terminal whose user presses Ctrl-C as the progress bar is drawn after a node's line."""

    def __init__(self) -> None:
        super().__init__()
        self.lines = 0

    def write(self, text: str) -> int:
        if "scanning" in text and self.lines:
            raise KeyboardInterrupt
        self.lines += text.endswith("\n")
        return super().write(text)


def test_ctrl_c_during_scan_exits_130_with_the_table_so_far(socket_path: Path) -> None:
    heard = {"id": "sim:1", "name": "a", "rssi": -50, "profile": "sim", "paired": False}

    def answer(request: dict[str, Any]) -> list[dict[str, Any]]:
        rid = request["id"]
        return [
            {"id": rid, "event": "progress", "data": {"elapsed": 0, "seconds": 9, "heard": 0}},
            {"id": rid, "event": "node.heard", "data": heard},
        ]

    code, out = scripted(socket_path, answer, Interrupting(), "scan", "--seconds", "9")
    assert code == cli.EXIT_INTERRUPTED == 130
    header, row = out.splitlines()
    assert header.split()[0] == "NODE" and row.split()[:2] == ["sim:1", "a"]


def bridgectl(socket_path: Path, *argv: str, **popen: Any) -> subprocess.Popen[str]:
    """bridgectl as a user runs it: its own process, its stdout a pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "bridged.cli", "--socket", str(socket_path), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def test_sigint_during_scan_exits_130_with_what_was_heard(socket_path: Path) -> None:
    heard = {"id": "sim:1", "name": "a", "rssi": -50, "profile": "sim", "paired": False}
    d = ScriptedDaemon(
        socket_path,
        lambda request: [{"id": request["id"], "event": "node.heard", "data": heard}],
    )
    try:
        proc = bridgectl(socket_path, "scan", "--seconds", "60", "--json")
        assert proc.stdout is not None and proc.stderr is not None
        assert json.loads(proc.stdout.readline()) == heard  # streamed: it has the node
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
    finally:
        d.close()
    assert proc.returncode == 130, err
    assert json.loads(rest) == [heard]
    assert "Traceback" not in err


def test_events_into_a_pipe_that_closes_is_no_traceback(socket_path: Path) -> None:
    """``bridgectl events | head``: the reader goes; bridgectl ends quietly, exit 0."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(socket_path))
    server.listen()

    def serve() -> None:
        with contextlib.suppress(OSError):  # accept woken by the shutdown, or bridgectl gone
            conn, _ = server.accept()
            with conn, conn.makefile("rwb") as f:
                request = json.loads(f.readline())
                result = {"id": request["id"], "result": {"subscribed": "all"}}
                f.write(json.dumps(result).encode() + b"\n")
                event = {
                    "id": request["id"],
                    "event": "node.heard",
                    "time": 1.7e9,
                    "data": NODES[0],
                }
                while True:  # until bridgectl is gone
                    f.write(json.dumps(event).encode() + b"\n")
                    f.flush()

    thread = threading.Thread(target=serve, name="events-server")
    thread.start()
    try:
        proc = bridgectl(socket_path, "events")
        assert proc.stdout is not None and proc.stderr is not None
        assert "node.heard id=sim:0001" in proc.stdout.readline()
        proc.stdout.close()  # head has its lines
        err = proc.stderr.read()
        assert proc.wait(timeout=30) == cli.EXIT_OK, err
    finally:
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)  # wakes an accept still waiting; close does not
        server.close()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert "Traceback" not in err and "BrokenPipe" not in err, err
