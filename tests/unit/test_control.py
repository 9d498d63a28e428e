"""The control protocol's parsing and errors, the peer-credential check, and the
desired-state queue methods over a stand-in gateway."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path as FsPath
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.control import (
    FAILED,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    Connection,
    ControlServer,
    Params,
    Peer,
    ProtocolError,
    Request,
    error_line,
    event_line,
    parse_request,
    peer_allowed,
    result_line,
)
from bridged.objects.paths import Path
from bridged.store.nodes import NodeId
from bridged.store.secrets import SecretsFileError


def test_a_request() -> None:
    line = b'{"id": 7, "method": "read", "params": {"path": "/3/0"}}\n'
    assert parse_request(line) == Request(7, "read", {"path": "/3/0"})
    assert parse_request(b'{"method": "status"}') == Request(None, "status", {})


@pytest.mark.parametrize(
    ("line", "code", "text"),
    [
        (b"not json", PARSE_ERROR, "not JSON"),
        (b"\xff\xfe", PARSE_ERROR, "not JSON"),
        (b"[1, 2]", INVALID_REQUEST, "JSON object"),
        (b'{"id": 1}', INVALID_REQUEST, "method"),
        (b'{"id": 1, "method": ""}', INVALID_REQUEST, "method"),
        (b'{"id": true, "method": "x"}', INVALID_REQUEST, "id"),
        (b'{"id": [1], "method": "x"}', INVALID_REQUEST, "id"),
        (b'{"id": 1, "method": "x", "params": [1]}', INVALID_REQUEST, "params"),
        (b'{"id": 1, "method": "x", "extra": 1}', INVALID_REQUEST, "extra"),
    ],
)
def test_bad_requests(line: bytes, code: int, text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(line)
    assert info.value.code == code
    assert text in info.value.message


def test_the_id_of_a_bad_request_is_kept_when_readable() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(b'{"id": 5, "method": 3}')
    assert info.value.data["id"] == 5


@given(st.binary(max_size=200))
def test_garbage_is_only_ever_a_protocol_error(line: bytes) -> None:
    try:
        parse_request(line)
    except ProtocolError:
        pass


@given(
    st.one_of(st.integers(), st.text(max_size=10), st.none()),
    st.text(min_size=1, max_size=20),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
def test_requests_round_trip(rid: object, method: str, params: dict[str, int]) -> None:
    line = json.dumps({"id": rid, "method": method, "params": params}).encode()
    assert parse_request(line) == Request(rid, method, params)


def test_answer_lines() -> None:
    assert json.loads(result_line(1, {"a": 1})) == {"id": 1, "result": {"a": 1}}
    assert json.loads(error_line(2, 1, "no", coap="4.04")) == {
        "id": 2,
        "error": {"code": 1, "message": "no", "coap": "4.04"},
    }
    assert json.loads(event_line(3, "progress", {"heard": 2}, 5.0)) == {
        "id": 3,
        "event": "progress",
        "data": {"heard": 2},
        "time": 5.0,
    }
    assert result_line(1, None).endswith(b"\n") and b"\n" not in result_line(1, "a\nb")[:-1]


def params_error(params: dict[str, object], call: str) -> ProtocolError:
    p = Params(params, ("path", "node", "seconds", "server", "name"))
    with pytest.raises(ProtocolError) as info:
        {
            "path": p.path,
            "node": p.node,
            "seconds": lambda: p.number("seconds", 10, 0.1, 60),
            "server": p.server,
            "name": lambda: p.get("name", str, ...),
        }[call]()
    assert info.value.code == INVALID_PARAMS
    return info.value


@pytest.mark.parametrize(
    ("params", "call", "text"),
    [
        ({}, "path", "params.path: is required"),
        ({"path": 3}, "path", "params.path: must be a string"),
        ({"path": "/x/y"}, "path", "params.path:"),
        ({"node": "nocolon"}, "node", "params.node:"),
        ({"node": "ble:A4:C1:38"}, "node", "params.node:"),
        ({"node": "802154:0012"}, "node", "params.node:"),
        ({"seconds": 0}, "seconds", "between 0.1 and 60"),
        ({"seconds": "5"}, "seconds", "must be an integer or a number"),
        ({"seconds": True}, "seconds", "not a boolean"),
        ({"server": 0}, "server", "outside 1..65534"),
        ({}, "name", "params.name: is required"),
    ],
)
def test_bad_params_name_the_param(params: dict[str, object], call: str, text: str) -> None:
    assert text in params_error(params, call).message


def test_node_ids_take_their_transports_spelling_for_every_method() -> None:
    """``unpair``, ``node show`` and ``commands`` find the node however its address is
    typed; a node of a transport no longer installed can still be named (and unpaired)."""

    def node(text: str) -> NodeId:
        return Params({"node": text}, ("node",)).node()

    assert node("ble:a4-c1-38-00-11-22") == NodeId("ble", "A4:C1:38:00:11:22")
    assert node("802154:00:12:4B:00:01:02:03:04") == NodeId("802154", "00124b0001020304")
    assert node("gone:whatever") == NodeId("gone", "whatever")


def test_unknown_params_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ProtocolError) as info:
        Params({"pth": "/3"}, ("path",))
    assert info.value.code == INVALID_PARAMS
    assert "pth" in info.value.message and "path" in info.value.message


def test_good_params() -> None:
    p = Params({"path": "/3303/1/5700", "seconds": 5}, ("path", "seconds"))
    assert p.path() == Path((3303, 1, 5700))
    assert p.number("seconds", 10, 0.1, 60) == 5.0
    assert p.path("other", default="/") == Path(())


# -- peer credentials ------------------------------------------------------------------------

DAEMON_UID = 990
GROUP = 990


@pytest.mark.parametrize(
    ("peer", "groups", "allowed"),
    [
        (Peer(1, 0, 0), frozenset(), True),  # root
        (Peer(1, DAEMON_UID, 12), frozenset(), True),  # the daemon's own user
        (Peer(1, 1000, GROUP), frozenset(), True),  # primary group is the socket's
        (Peer(1, 1000, 1000), frozenset({27, GROUP}), True),  # member of the socket's group
        (Peer(1, 1000, 1000), frozenset({27}), False),  # anybody else
    ],
)
def test_peer_credentials(peer: Peer, groups: frozenset[int], allowed: bool) -> None:
    assert peer_allowed(peer, own_uid=DAEMON_UID, allowed=frozenset({GROUP}), groups=groups) is (
        allowed
    )


def test_without_a_socket_group_only_root_and_the_daemon_pass() -> None:
    assert peer_allowed(Peer(1, 0, 0), own_uid=DAEMON_UID, allowed=frozenset(), groups=frozenset())
    assert not peer_allowed(
        Peer(1, 1000, GROUP), own_uid=DAEMON_UID, allowed=frozenset(), groups=frozenset({GROUP})
    )


MONITOR = 991


def test_the_monitor_socket_takes_either_group() -> None:
    """A member of bridged-monitor only, or of bridged, may watch; only bridged may change."""
    watcher = Peer(1, 1001, 1001)
    assert peer_allowed(
        watcher,
        own_uid=DAEMON_UID,
        allowed=frozenset({MONITOR, GROUP}),
        groups=frozenset({MONITOR}),
    )
    assert not peer_allowed(
        watcher, own_uid=DAEMON_UID, allowed=frozenset({GROUP}), groups=frozenset({MONITOR})
    )


# -- the desired-state queue methods ---------------------------------------------------------


class _Writer:
    """The stream a connection answers on: the lines written."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.lines.extend(json.loads(line) for line in data.splitlines())

    async def drain(self) -> None:
        pass


class _Commands:
    """The gateway's side of commands.pending/history: records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, NodeId | None, int | None]] = []

    def commands_pending(self, node: NodeId | None = None) -> list[dict[str, Any]]:
        self.asked.append(("pending", node, None))
        return [{"id": 1}]

    def commands_history(self, node: NodeId | None = None, limit: int = 100) -> list[Any]:
        self.asked.append(("history", node, limit))
        return [{"id": 2}]


async def ask(method: str, **params: object) -> tuple[dict[str, Any], _Commands]:
    gateway = _Commands()
    server = ControlServer(gateway, FsPath("/nonexistent/control.sock"))  # type: ignore[arg-type]
    writer = _Writer()
    conn = Connection(writer, Peer(1, 0, 0))  # type: ignore[arg-type]
    await server.handle(json.dumps({"id": 9, "method": method, "params": params}).encode(), conn)
    (answer,) = writer.lines
    return answer, gateway


async def test_commands_pending_all_or_of_one_node() -> None:
    answer, gateway = await ask("commands.pending")
    assert answer == {"id": 9, "result": [{"id": 1}]}
    assert gateway.asked == [("pending", None, None)]
    _, gateway = await ask("commands.pending", node="sim:0002")
    assert gateway.asked == [("pending", NodeId("sim", "0002"), None)]


async def test_commands_history_with_node_and_limit() -> None:
    answer, gateway = await ask("commands.history", node="ble:A4:C1:38:00:11:22", limit=5)
    assert answer["result"] == [{"id": 2}]
    assert gateway.asked == [("history", NodeId("ble", "A4:C1:38:00:11:22"), 5)]
    _, gateway = await ask("commands.history")
    assert gateway.asked == [("history", None, 100)]


@pytest.mark.parametrize(
    ("method", "params", "text"),
    [
        ("commands.pending", {"node": "nocolon"}, "params.node"),
        ("commands.pending", {"node": 3}, "params.node: must be a string"),
        ("commands.pending", {"limit": 3}, "unknown param(s) limit"),
        ("commands.history", {"limit": 0}, "params.limit: must be between 1 and 1000"),
        ("commands.history", {"limit": "5"}, "params.limit"),
        ("commands.pending", {"node": "sim:" + "0" * 5000}, "params.node: is at most 4096"),
    ],
)
async def test_commands_bad_params(method: str, params: dict[str, object], text: str) -> None:
    answer, gateway = await ask(method, **params)
    assert answer["error"]["code"] == INVALID_PARAMS and text in answer["error"]["message"]
    assert gateway.asked == []


class _FullDisk(_Commands):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def commands_pending(self, node: NodeId | None = None) -> list[dict[str, Any]]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (sqlite3.OperationalError("database or disk is full"), "state database refuses"),
        (SecretsFileError("/var/lib/bridged/secrets.json: cannot write: full"), "cannot write"),
    ],
)
async def test_a_refused_write_of_a_state_file_is_a_failure_not_an_internal_error(
    error: Exception, text: str
) -> None:
    server = ControlServer(_FullDisk(error), FsPath("/nonexistent/control.sock"))  # type: ignore[arg-type]
    writer = _Writer()
    conn = Connection(writer, Peer(1, 0, 0))  # type: ignore[arg-type]
    await server.handle(b'{"id": 3, "method": "commands.pending"}', conn)
    (answer,) = writer.lines
    assert answer["error"]["code"] == FAILED and text in answer["error"]["message"]


async def test_ending_a_subscription_keeps_the_callers_cancellation() -> None:
    """A handler cancelled while it ends its connection's subscription (the daemon stopping)
    ends cancelled once the forwarder has ended, rather than running on: under a
    ``suppress(CancelledError)`` the caller's cancellation was taken for the forwarder's
    (bridged/aio.py, ``cancel_and_wait``)."""
    server = ControlServer(_Commands(), FsPath("/nonexistent/control.sock"))  # type: ignore[arg-type]
    conn = Connection(_Writer(), Peer(1, 0, 0))  # type: ignore[arg-type]
    started, cleaning, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def forwarder() -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            cleaning.set()
            await release.wait()  # its clean-up takes a while

    conn.forwarder = asyncio.create_task(forwarder())
    await started.wait()
    ending = asyncio.create_task(server.end_subscription(conn))
    await cleaning.wait()  # the handler waits for the forwarder now
    ending.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await ending
    assert conn.forwarder is None
