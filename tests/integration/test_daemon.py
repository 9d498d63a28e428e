"""The real ``bridged`` process, end to end.

The daemon runs as a subprocess with a configuration in tmp_path: the simulated transport, the
in-repo LwM2M test server on 127.0.0.1, a NOTIFY_SOCKET this test listens on (as systemd
would) and a short watchdog period. ``bridgectl`` runs as a subprocess too, over the control
socket. What is checked: READY=1 / STATUS= / WATCHDOG=1 arrive, the daemon registers, the
bridgectl commands work and what they change reaches the server, SIGHUP reloads, SIGTERM
de-registers and exits 0, and a bad configuration exits with the file and key in its message.

Then what the daemon wires around the nodes: a server's write to a sleepy node waits in the
desired-state queue (``bridgectl commands``) until the node wakes, a refused write to an awake
node is the node's code at the server, readings that arrive while the server is down reach it
by Send with their original times once it is back, and the endpoints mode gives every paired
node an endpoint of its own, through which its readings are sent.
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
from aiocoap.numbers.codes import Code
from control_events import control_events

from peers.lwm2m_server import LwM2MTestServer, SenMLRecord

EXIT_CONFIG = 78
ENDPOINT = "gw-daemon"


def config_text(
    server_uri: str,
    tmp: Path,
    *,
    level: str = "info",
    extra: str = "",
    gateway: str = "",
    sim: str | None = "nodes = 2\ninterval = 0.2",
    request_timeout: float = 5,
) -> str:
    """The daemon's configuration; ``sim`` None: no transport runs the nodes."""
    transport = "" if sim is None else f"[transport.sim]\n{sim}"
    return f"""
[gateway]
endpoint = "{ENDPOINT}"
state_dir = "{tmp / "state"}"
runtime_dir = "{tmp / "run"}"
bind_address = "127.0.0.1"
{gateway}

[[server]]
uri = "{server_uri}"
lifetime = 120
request_timeout = {request_timeout}
retry_timer = 0.05
retry_sequence_delay = 0.2

[log]
level = "{level}"

{transport}
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

    async def call(self, method: str, **params: object) -> object:
        """One request on the control socket (what bridgectl sends), its result."""
        reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
        try:
            line = {"id": 1, "method": method, "params": params}
            writer.write(json.dumps(line).encode() + b"\n")
            async with asyncio.timeout(30):
                answer = json.loads(await reader.readline())
        finally:
            writer.close()
        assert "result" in answer, answer
        return answer["result"]

    def events(
        self, *kinds: str
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[dict[str, object]]]:
        """The daemon's events of ``kinds`` (``bridgectl events``), as they come."""
        return control_events(self.socket_path, *kinds)

    async def wait_registered(self) -> None:
        async def registered() -> bool:
            status = await self.ctl_json("status")
            assert isinstance(status, dict)
            return bool(status["servers"][0]["registered"])

        await until(registered)

    async def upstream(self, node: str, local: str) -> str:
        """The gateway path of ``node``'s ``local`` path, once the node has reported it."""
        found: list[str] = []

        async def reported() -> bool:
            shown = await self.call("node.show", node=node)
            assert isinstance(shown, dict)
            found[:] = [v["upstream"] for v in shown["values"] if v["path"] == local]
            return bool(found)

        await until(reported)
        return found[0]

    async def wait(self, timeout: float = 30.0) -> int:
        async with asyncio.timeout(timeout):
            return await self.proc.wait()


@contextlib.asynccontextmanager
async def running_daemon(
    tmp_path: Path,
    config: str,
    *,
    notify: NotifyListener | None = None,
    log_lines: list[str] | None = None,
) -> AsyncIterator[Daemon]:
    """The daemon with ``config``, its log in ``Daemon.log``, or (``log_lines``) read from a
    pipe into that list as it comes: a pipe is not a file, so a file size limit spares it."""
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
            stderr=stderr if log_lines is None else asyncio.subprocess.PIPE,
        )

    async def drain(lines: list[str]) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            lines.append(line.decode(errors="replace"))

    reader = None if log_lines is None else asyncio.create_task(drain(log_lines))
    daemon = Daemon(proc, tmp_path / "run" / "control.sock", log)
    try:
        yield daemon
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if reader is not None:
            await reader


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
            # STATUS= follows the registration (armed by the change, not a periodic timer).
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


async def next_matching(
    queue: asyncio.Queue[dict[str, object]], timeout: float = 30.0, **fields: object
) -> dict[str, object]:
    """The next event whose fields include ``fields``."""
    async with asyncio.timeout(timeout):
        while True:
            event = await queue.get()
            if all(event.get(k) == v for k, v in fields.items()):
                return event


async def test_writes_to_nodes_sleepy_and_awake(tmp_path: Path, server: LwM2MTestServer) -> None:
    """sim:0001 is awake, sim:0002 sleepy; each reports every 6 s, 3 s apart, so a write
    right after the sleepy node's report waits in the queue for about 6 s."""
    sim = "nodes = 2\nsleepy = 1\ninterval = 6\nawake = 1"
    async with running_daemon(tmp_path, config_text(server.uri, tmp_path, sim=sim)) as d:
        await server.next_event("register", timeout=30)
        await d.wait_registered()
        async with d.events("command", "readings") as events:
            await d.call("pair", node="sim:0001", name="porch")
            await d.call("pair", node="sim:0002", name="cellar", sleepy=True)
            await next_matching(events, event="readings", id="sim:0002")
            sleepy = await d.upstream("sim:0002", "/3311/0/5850")
            written = await server.request(ENDPOINT, Code.PUT, sleepy, b"1", content_format=0)
            assert written.code == Code.CHANGED
            queued = await next_matching(events, event="command", status="pending")
            pending = await d.ctl_json("commands")
            assert isinstance(pending, list)
            assert [(c["id"], c["node"], c["path"], c["kind"], c["status"]) for c in pending] == [
                (queued["id"], "sim:0002", "/3311/0/5850", "write", "pending")
            ]
            assert pending[0]["records"] == [{"path": "/3311/0/5850", "value": True}]
            assert pending[0]["expires"] - pending[0]["submitted"] == 86400
            assert await d.ctl_json("commands", "sim:0001") == []
            code, table, _ = await d.ctl("commands")
            assert code == 0
            assert table.split("\n")[1].split()[:5] == [
                str(queued["id"]),
                "sim:0002",
                "/3311/0/5850",
                "write",
                "true",
            ]
            status = await d.ctl_json("status")
            assert isinstance(status, dict) and status["commands"] == {"pending": 1}

            # The node wakes (its next report): the command is applied.
            applied = await next_matching(events, event="command", id=queued["id"])
            assert applied["status"] == "applied"
        history = await d.ctl_json("commands", "--history")
        assert isinstance(history, list)
        assert (history[0]["id"], history[0]["status"]) == (queued["id"], "applied")
        assert await d.ctl_json("commands") == []
        code, table, _ = await d.ctl("commands", "--history", "sim:0002")
        assert code == 0 and "applied" in table.split("\n")[1]
        read = await server.request(ENDPOINT, Code.GET, sleepy)
        assert read.payload == b"1", "the node's new value is upstream"
        log = d.log.read_text()
        assert f"command {queued['id']}: write of /3311/0/5850 on node sim:0002 applied" in log

        # The awake node refuses to write its colour: the server gets the node's 4.05.
        awake = await d.upstream("sim:0001", "/3311/0/5850")
        colour = awake.rsplit("/", 1)[0] + "/5706"
        refused = await server.request(ENDPOINT, Code.PUT, colour, b"red", content_format=0)
        assert refused.code == Code.METHOD_NOT_ALLOWED
        switched = await server.request(ENDPOINT, Code.PUT, awake, b"1", content_format=0)
        assert switched.code == Code.CHANGED
        assert (await server.request(ENDPOINT, Code.GET, awake)).payload == b"1"
        assert await d.ctl_json("commands") == [], "an awake node's writes are not queued"


async def produced(
    events: asyncio.Queue[dict[str, object]], node: str, upstream: dict[str, str], count: int
) -> set[tuple[str, float, object]]:
    """At least ``count`` readings of ``node`` as the daemon's event stream reports them, as
    (gateway path, time, value) of the node-local paths ``upstream`` maps."""
    out: set[tuple[str, float, object]] = set()
    while len(out) < count:
        event = await next_matching(events, id=node)
        records = event["records"]
        assert isinstance(records, list)
        out |= {
            (upstream[r["path"]], r["time"], r["value"]) for r in records if r["path"] in upstream
        }
    return out


def sends(server: LwM2MTestServer) -> set[tuple[str, float | None, object]]:
    return {
        (r.name, r.time, r.value)
        for e in server.history
        if e.kind == "send" and e.code == Code.CHANGED
        for r in e.records
    }


async def test_readings_of_an_outage_are_sent_with_their_times(tmp_path: Path) -> None:
    first = LwM2MTestServer()
    await first.start()
    port = first.port
    # Delivery lingers 0.05 s, not the default 0.5: the outage lasts about 3 s, and a Send must
    # be tried (and fail) within it for the outage to be one Delivery saw.
    config = config_text(first.uri, tmp_path, request_timeout=1, extra="[delivery]\nlinger = 0.05")
    async with running_daemon(tmp_path, config) as d:
        await first.next_event("register", timeout=30)
        await d.wait_registered()
        await d.call("pair", node="sim:0001", name="porch")
        upstream = {p: await d.upstream("sim:0001", p) for p in ("/3303/0/5700", "/3304/0/5700")}
        await until_sync(lambda: bool(sends(first)))
        async with d.events("readings") as events:
            await first.stop()  # the server goes down
            during: list[SenMLRecord] = []
            while len(during) < 30:
                event = await next_matching(events, id="sim:0001")
                records = event["records"]
                assert isinstance(records, list)
                during += [
                    SenMLRecord(upstream[r["path"]], r["time"], r["value"])
                    for r in records
                    if r["path"] in upstream
                ]
        async with LwM2MTestServer(port=port) as back:
            expected = {(r.name, r.time, r.value) for r in during}
            await until_sync(lambda: expected <= sends(back), timeout=60)
            status = await d.ctl_json("status")
            assert isinstance(status, dict)
            delivery = status["servers"][0]["delivery"]
            assert delivery["delivered"] >= len(expected) and delivery["failed_sends"] >= 1


def sends_of(server: LwM2MTestServer, endpoint: str) -> list[SenMLRecord]:
    """The records of the Sends of ``endpoint`` the server took (2.04), in order."""
    return [
        r
        for e in server.history
        if e.kind == "send" and e.code == Code.CHANGED and e.endpoint == endpoint
        for r in e.records
    ]


async def until_sync(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_endpoints_mode(tmp_path: Path, server: LwM2MTestServer) -> None:
    config = config_text(server.uri, tmp_path, gateway='exposure = "endpoints"')
    async with running_daemon(tmp_path, config) as d:
        assert (await server.next_event("register", timeout=30)).endpoint == ENDPOINT
        await d.call("pair", node="sim:0001", name="porch")
        await d.call("pair", node="sim:0002", name="cellar")
        registered = {(await server.next_event("register")).endpoint for _ in range(2)}
        assert registered == {f"{ENDPOINT}:sim:0001", f"{ENDPOINT}:sim:0002"}
        assert set(server.clients) == {ENDPOINT, *registered}

        async def counted() -> bool:
            status = await d.ctl_json("status")
            assert isinstance(status, dict)
            return status["endpoints"] == {"nodes": 2, "states": {"registered": 2}}

        await until(counted)
        code, table, _ = await d.ctl("status")
        assert code == 0 and "2 node endpoints: 2 registered" in table

        # A server's request to a node endpoint reaches the node.
        switched = await server.request(
            f"{ENDPOINT}:sim:0001", Code.PUT, "/3311/0/5850", b"1", content_format=0
        )
        assert switched.code == Code.CHANGED
        read = await server.request(f"{ENDPOINT}:sim:0001", Code.GET, "/3311/0/5850")
        assert read.payload == b"1"
        # Readings go from the store by Send, each through its node's endpoint, at the node's
        # own paths; status shows the backlog as in the other modes.
        await until_sync(
            lambda: {"/3303/0/5700"} <= {r.name for r in sends_of(server, f"{ENDPOINT}:sim:0001")}
        )
        assert not sends_of(server, ENDPOINT), "nothing goes through the gateway's endpoint"

        async def delivering() -> bool:
            status = await d.ctl_json("status")
            assert isinstance(status, dict)
            delivery = status["servers"][0]["delivery"]
            return bool(delivery["delivered"] and delivery["sends"]) and "backlog" in delivery

        await until(delivering)

        await d.call("unpair", node="sim:0001")
        gone = await server.next_event("deregister")
        assert gone.endpoint == f"{ENDPOINT}:sim:0001"

        # bridgectl stop and start take the node endpoints down and up with the gateway's.
        await d.ctl_json("stop")
        down = {(await server.next_event("deregister")).endpoint for _ in range(2)}
        assert down == {ENDPOINT, f"{ENDPOINT}:sim:0002"}
        await d.ctl_json("start")
        up = {(await server.next_event("register")).endpoint for _ in range(2)}
        assert up == {ENDPOINT, f"{ENDPOINT}:sim:0002"}

        d.proc.send_signal(signal.SIGTERM)
        down = {(await server.next_event("deregister")).endpoint for _ in range(2)}
        assert down == {ENDPOINT, f"{ENDPOINT}:sim:0002"}
        assert await d.wait() == 0
