"""Bad input at the daemon's edges gets a clear error and changes nothing, through the real
daemon: an over-long string written by a server (/3/0/14, the UTC offset, took 64 KiB) or sent
on the control socket (a value, a node name), JSON nested too deeply for the parser (was an
internal error with a traceback), and bridgectl facing a control socket whose backlog is full
(crashed with BlockingIOError).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiocoap.numbers.codes import Code

from integration.test_daemon import (
    ENDPOINT,
    Daemon,
    _short_paths,  # noqa: F401 (fixture)
    config_text,
    running_daemon,
)
from peers.lwm2m_server import LwM2MTestServer

PARSE_ERROR, INVALID_PARAMS, FAILED = -32700, -32602, 1


async def request(d: Daemon, line: bytes) -> dict[str, object]:
    """One raw line on the control socket, its answer."""
    reader, writer = await asyncio.open_unix_connection(str(d.socket_path))
    try:
        writer.write(line + b"\n")
        async with asyncio.timeout(30):
            answer = json.loads(await reader.readline())
    finally:
        writer.close()
    assert isinstance(answer, dict)
    return answer


def call(method: str, **params: object) -> bytes:
    return json.dumps({"id": 7, "method": method, "params": params}).encode()


@pytest.fixture
async def daemon(tmp_path: Path, server: LwM2MTestServer) -> AsyncIterator[Daemon]:
    """The daemon, registered with ``server``; its log has no traceback at the end."""
    async with running_daemon(tmp_path, config_text(server.uri, tmp_path)) as d:
        await server.next_event("register", timeout=30)
        await d.wait_registered()
        yield d
    assert "Traceback" not in d.log.read_text()


async def test_an_over_long_string_from_a_server_is_refused(
    daemon: Daemon, server: LwM2MTestServer
) -> None:
    before = (await server.request(ENDPOINT, Code.GET, "/3/0/14")).payload
    written = await server.request(ENDPOINT, Code.PUT, "/3/0/14", b"+" * 3000, content_format=0)
    assert written.code == Code.BAD_REQUEST and b"2048" in written.payload
    assert (await server.request(ENDPOINT, Code.GET, "/3/0/14")).payload == before


async def test_over_long_text_and_deep_json_on_the_control_socket_are_refused(
    daemon: Daemon,
) -> None:
    d = daemon
    for value, code, why in [
        ("x" * 3000, FAILED, "over 2048 bytes"),  # the resource's bound (4.00)
        ("x" * 60000, INVALID_PARAMS, "params.value: is at most 4096 characters"),
    ]:
        error = (await request(d, call("write", path="/3/0/15", value=value)))["error"]
        assert isinstance(error, dict) and error["code"] == code and why in error["message"]
    for name, why in [("n" * 100, "at most 64"), ("n" * 60000, "params.name: is at most 4096")]:
        error = (await request(d, call("pair", node="sim:0001", name=name)))["error"]
        assert isinstance(error, dict)
        assert error["code"] == INVALID_PARAMS and why in error["message"]
    assert await d.ctl_json("nodes") == []

    deep = b'{"id": 1, "method": "status", "params": ' + b"[" * 30000 + b"]" * 30000 + b"}"
    answer = await request(d, deep)
    error = answer["error"]
    assert isinstance(error, dict)
    assert error["code"] == PARSE_ERROR and "nested too deeply" in error["message"]
    assert "result" in await request(d, call("status"))


def test_bridgectl_waits_then_says_so_when_the_backlog_is_full(tmp_path: Path) -> None:
    path = tmp_path / "busy.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(0)  # a daemon too busy to accept
        waiting = []
        try:
            while True:  # fill its backlog
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.setblocking(False)
                waiting.append(s)
                s.connect(str(path))
        except BlockingIOError:
            pass
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bridged.cli", "--socket", str(path), "--timeout", "1",
                 "status"],
                capture_output=True,
                text=True,
                timeout=60,
            )  # fmt: skip
        finally:
            for s in waiting:
                s.close()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "too busy" in done.stderr and "try again" in done.stderr
