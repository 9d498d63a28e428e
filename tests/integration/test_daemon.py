"""The real ``bridged`` process, end to end.

The daemon runs as a subprocess with a configuration in tmp_path: the simulated transport, the
in-repo LwM2M test server on 127.0.0.1, a NOTIFY_SOCKET this test listens on (as systemd
would) and a short watchdog period. ``bridgectl`` runs as a subprocess too, over the control
socket. What is checked: READY=1 / STATUS= / WATCHDOG=1 arrive, the daemon registers, the
bridgectl commands work and what they change reaches the server, SIGHUP reloads, SIGTERM
de-registers and exits 0, and a bad configuration exits with the file and key in its message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from peers.lwm2m_server import LwM2MTestServer

EXIT_CONFIG = 78
ENDPOINT = "gw-daemon"


def config_text(server_uri: str, tmp: Path, *, level: str = "info", extra: str = "") -> str:
    return f"""
[gateway]
endpoint = "{ENDPOINT}"
state_dir = "{tmp / "state"}"
runtime_dir = "{tmp / "run"}"
bind_address = "127.0.0.1"

[[server]]
uri = "{server_uri}"
lifetime = 120
request_timeout = 5
retry_timer = 0.05
retry_sequence_delay = 0.2

[log]
level = "{level}"

[transport.sim]
nodes = 2
interval = 0.2
{extra}
"""


class NotifyListener:
    """The NOTIFY_SOCKET end systemd would hold: every datagram's fields, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.seen: list[dict[str, str]] = []
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 4096)
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.seen.append(fields)
            self._arrived.set()

    async def wait_for(
        self, key: str, value: str | None = None, since: int = 0, timeout: float = 30.0
    ) -> int:
        """The index in ``seen`` of the first message from ``since`` on that has ``key``
        (set to ``value`` when given), waiting for it to arrive."""
        async with asyncio.timeout(timeout):
            while True:
                for i in range(since, len(self.seen)):
                    if key in self.seen[i] and value in (None, self.seen[i][key]):
                        return i
                since = len(self.seen)
                self._arrived.clear()
                await self._arrived.wait()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.sock.close()


class Daemon:
    def __init__(self, proc: asyncio.subprocess.Process, socket_path: Path, log: Path) -> None:
        self.proc = proc
        self.socket_path = socket_path
        self.log = log

    async def ctl(self, *args: str, timeout: float = 30.0) -> tuple[int, str, str]:
        """Run bridgectl against this daemon."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bridged.cli",
            "--socket",
            str(self.socket_path),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def ctl_json(self, *args: str) -> object:
        code, out, err = await self.ctl("--json", *args)
        assert code == 0, f"bridgectl {' '.join(args)}: {code} {err}"
        return json.loads(out)

    async def wait(self, timeout: float = 30.0) -> int:
        async with asyncio.timeout(timeout):
            return await self.proc.wait()


@contextlib.asynccontextmanager
async def running_daemon(
    tmp_path: Path, config: str, *, notify: NotifyListener | None = None
) -> AsyncIterator[Daemon]:
    cfg = tmp_path / "bridged.toml"
    cfg.write_text(config)
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "NOTIFY_SOCKET")}
    if notify is not None:
        env["NOTIFY_SOCKET"] = str(notify.path)
        env["WATCHDOG_USEC"] = "400000"  # a ping every 0.2 s
    log = tmp_path / "bridged.log"
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bridged.daemon",
            "--config",
            str(cfg),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    daemon = Daemon(proc, tmp_path / "run" / "control.sock", log)
    try:
        yield daemon
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def until(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Await an async ``predicate`` that becomes true (each try is a bridgectl round trip)."""
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


async def test_daemon_end_to_end(tmp_path: Path, server: LwM2MTestServer) -> None:
    notify = NotifyListener(tmp_path / "notify.sock")
    try:
        async with running_daemon(tmp_path, config_text(server.uri, tmp_path), notify=notify) as d:
            ready = await notify.wait_for("READY", "1")
            assert ready == 0 and "STATUS" in notify.seen[ready]
            register = await server.next_event("register", timeout=30)
            assert register.endpoint == ENDPOINT
            assert "</3/0>" in register.payload.decode()
            await notify.wait_for("WATCHDOG", "1")
            # STATUS= follows the registration (it is not a timer: once, on the change).
            registered_status = await notify.wait_for("STATUS", since=ready + 1)
            assert notify.seen[registered_status]["STATUS"].startswith("registered to ")

            async def registered() -> bool:
                status = await d.ctl_json("status")
                assert isinstance(status, dict)
                return bool(status["servers"][0]["registered"])

            await until(registered)
            status = await d.ctl_json("status")
            assert isinstance(status, dict)
            assert status["endpoint"] == ENDPOINT
            assert status["transports"] == {"sim": "up"}
            assert status["nodes"]["paired"] == 0

            # Pairing exposes the node's objects: the registration is updated.
            paired = await d.ctl_json("pair", "sim:0001", "--name", "porch")
            assert isinstance(paired, dict) and paired["id"] == "sim:0001"
            update = await server.next_event("update")
            assert "</3303/" in update.payload.decode()
            nodes = await d.ctl_json("nodes")
            assert isinstance(nodes, list) and [n["id"] for n in nodes] == ["sim:0001"]
            code, table, _ = await d.ctl("nodes")
            assert code == 0 and "porch" in table.splitlines()[1]

            listing = await d.ctl_json("ls", "/")
            assert isinstance(listing, list)
            assert {"/3", "/4", "/3303"} <= {row["path"] for row in listing}

            async def temperature() -> bool:
                code, out, _ = await d.ctl("--json", "read", "/3303")
                return code == 0 and any(r["path"].endswith("/5700") for r in json.loads(out))

            await until(temperature)

            assert await d.ctl_json("write", "/3/0/15", "Europe/Paris") == {"written": "/3/0/15"}
            assert await d.ctl_json("read", "/3/0/15") == [
                {"path": "/3/0/15", "value": "Europe/Paris"}
            ]
            code, _, err = await d.ctl("write", "/3/0/9", "not-a-number")
            assert code == 1 and "not a valid" in err
            code, _, err = await d.ctl("read", "/0")
            assert code == 1 and "4.01" in err
            code, _, err = await d.ctl("read", "/not/a/path")
            assert code == 2 and "params.path" in err

            await d.ctl_json("update")
            await server.next_event("update")

            assert await d.ctl_json("stop") == {"lwm2m": "stopped"}
            await server.next_event("deregister")
            assert await d.ctl_json("start") == {"lwm2m": "started"}
            await server.next_event("register")

            assert await d.ctl_json("unpair", "sim:0001") == {"unpaired": "sim:0001"}
            update = await server.next_event("update")
            assert "</3303/" not in update.payload.decode()
            code, _, err = await d.ctl("unpair", "sim:0001")
            assert code == 1 and "not paired" in err

            # SIGHUP: the file is read again and what can change is applied.
            (tmp_path / "bridged.toml").write_text(
                config_text(server.uri, tmp_path, extra="[store]\nmax_readings = 500\n")
            )
            d.proc.send_signal(signal.SIGHUP)
            reloading = await notify.wait_for("RELOADING", "1")
            await notify.wait_for("READY", "1", since=reloading)

            # SIGTERM: de-register, exit 0.
            d.proc.send_signal(signal.SIGTERM)
            await server.next_event("deregister")
            assert await d.wait() == 0
            assert any(m.get("STOPPING") == "1" for m in notify.seen)
            log = d.log.read_text()
            assert "configuration reloaded" in log and "500 readings" in log
            assert not (tmp_path / "run" / "control.sock").exists()
    finally:
        await notify.close()


async def test_bad_configuration_exits_with_file_and_key(tmp_path: Path) -> None:
    text = config_text("coap://127.0.0.1:9", tmp_path).replace("lifetime = 120", 'lifetime = "x"')
    async with running_daemon(tmp_path, text) as d:
        assert await d.wait() == EXIT_CONFIG
        message = d.log.read_text().strip()
    assert message.count("\n") == 0
    assert str(tmp_path / "bridged.toml") in message
    assert "server[0].lifetime" in message and "integer" in message


async def test_transport_refusing_its_table_exits_with_file_and_key(tmp_path: Path) -> None:
    text = config_text("coap://127.0.0.1:9", tmp_path).replace("nodes = 2", "nodes = -1")
    async with running_daemon(tmp_path, text) as d:
        assert await d.wait() == EXIT_CONFIG
        message = d.log.read_text().strip().splitlines()[-1]
    assert str(tmp_path / "bridged.toml") in message and "transport.sim" in message


async def test_bridgectl_without_daemon_says_not_running(tmp_path: Path) -> None:
    d = Daemon(None, tmp_path / "missing.sock", tmp_path / "log")  # type: ignore[arg-type]
    code, _, err = await d.ctl("status")
    assert code == 3 and "not running" in err


@pytest.fixture(autouse=True)
def _short_paths(tmp_path: Path) -> None:
    """Unix socket paths are limited to 107 bytes."""
    assert len(str(tmp_path / "run" / "control.sock")) < 100, tmp_path
