"""A configuration the daemon cannot run with is refused by ``bridged --check`` and at start,
the same way: exit 78 (EX_CONFIG, which the unit does not restart) and one line naming the
file, the key and why; never a traceback, a hang or a daemon sitting at "registering".

And a second daemon on a state directory (or a fixed CoAP port) that a running one holds
refuses to start instead of sharing it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from integration.test_daemon import (
    EXIT_CONFIG,
    config_text,
    running_daemon,
    until,
    until_sync,
)
from peers.lwm2m_server import LwM2MTestServer

SERVER = "coap://127.0.0.1:9"


def checked(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """``bridged --check`` of the configuration ``text``, as a user runs it."""
    cfg = tmp_path / "bridged.toml"
    cfg.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "bridged.daemon", "--config", str(cfg), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _uri(uri: str) -> Callable[[Path], str]:
    return lambda tmp: config_text(uri, tmp)


def _state_dir_is_a_file(tmp: Path) -> str:
    (tmp / "state").write_text("not a directory")
    return config_text(SERVER, tmp)


TWO_NOSEC_SERVERS = f'[[server]]\nuri = "{SERVER}"\nshort_server_id = 2\n'

BAD: dict[str, tuple[Callable[[Path], str], str]] = {
    "port-99999": (_uri("coap://127.0.0.1:99999"), "server[0].uri"),
    "port-abc": (_uri("coap://127.0.0.1:abc"), "server[0].uri"),
    "port-0": (_uri("coap://127.0.0.1:0"), "server[0].uri"),
    "user-info": (_uri("coap://user:pw@127.0.0.1:5683"), "server[0].uri"),
    "open-bracket": (_uri("coap://[::1"), "server[0].uri"),
    "sim-no-nodes": (
        lambda tmp: config_text(SERVER, tmp, sim="nodes = 0"),
        "transport.sim",
    ),
    "sim-unknown-key": (
        lambda tmp: config_text(SERVER, tmp, sim="nodes = 2\nnodez = 3"),
        "transport.sim",
    ),
    "objects-dir-missing": (
        lambda tmp: config_text(SERVER, tmp, gateway=f'objects_dir = "{tmp / "nowhere"}"'),
        "gateway.objects_dir",
    ),
    "state-dir-is-a-file": (_state_dir_is_a_file, "gateway.state_dir"),
    "retry-timer-huge": (
        lambda tmp: config_text(SERVER, tmp).replace("retry_timer = 0.05", "retry_timer = 8.6e24"),
        "server[0].retry_timer",
    ),
    "two-nosec-one-port": (
        lambda tmp: config_text(SERVER, tmp, gateway="bind_port = 56831", extra=TWO_NOSEC_SERVERS),
        "gateway.bind_port",
    ),
}


def _one_line(text: str, tmp: Path, key: str) -> None:
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert str(tmp / "bridged.toml") in lines[0] and key in lines[0], lines[0]


@pytest.mark.parametrize("case", sorted(BAD))
async def test_refused_at_check_and_at_start(tmp_path: Path, case: str) -> None:
    make, key = BAD[case]
    text = make(tmp_path)
    check = checked(tmp_path, text)
    assert check.returncode == EXIT_CONFIG, check.stdout + check.stderr
    _one_line(check.stderr, tmp_path, key)
    async with running_daemon(tmp_path, text) as d:
        assert await d.wait(timeout=60) == EXIT_CONFIG
        _one_line(d.log.read_text(), tmp_path, key)


def install_transport(
    monkeypatch: pytest.MonkeyPatch, tmp: Path, module: str, name: str, source: str
) -> None:
    """A transport shipped by another distribution: its module and an entry point in the
    ``bridged.transports`` group, on the daemon's PYTHONPATH (as pip would install it)."""
    plugins = tmp / "plugins"
    info = plugins / f"{module}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[bridged.transports]\n{name} = {module}:PluginTransport\n"
    )
    (plugins / f"{module}.py").write_text(source)
    path = os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)


PLUGIN = """
import asyncio, time
from bridged.transports.base import Heard, Transport
from bridged.transports.nodes import NodeId


class PluginTransport(Transport):
    name = "plugin"

    async def start(self):
        self._task = asyncio.ensure_future(self._hear())

    async def _hear(self):
        while True:
            self.events.heard(Heard(NodeId("plugin", "0001"), time.time(), name="from-a-plugin"))
            await asyncio.sleep(0.1)

    async def stop(self):
        self._task.cancel()

    def pair(self, node, secrets): ...
    def unpair(self, node): ...
    async def read(self, node, path): return []
    async def write(self, node, path, records): ...
    async def execute(self, node, path, arguments): ...
"""


async def test_a_transport_from_another_distribution_runs_with_no_core_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "add a transport" walk of docs/architecture.md: a class and an entry point in
    another distribution, and the real daemon loads it by its table and lists its nodes."""
    install_transport(monkeypatch, tmp_path, "plugin_radio", "plugin", PLUGIN)
    text = config_text(SERVER, tmp_path, extra="[transport.plugin]\n")
    async with running_daemon(tmp_path, text) as d:
        await until_sync(d.socket_path.exists)
        code, out, err = await d.ctl("scan", "--seconds", "1", "--transport", "plugin")
        assert code == 0, err
        assert "plugin:0001" in out and "from-a-plugin" in out, out


BROKEN_TRANSPORTS = {
    # An installed transport whose module cannot import (a library it needs is missing) ...
    "import-error": "import a_library_that_is_not_installed_here\n",
    # ... or whose module raises while it loads.
    "raises": "raise RuntimeError('no radio library')\n",
}


@pytest.mark.parametrize("case", sorted(BROKEN_TRANSPORTS))
async def test_a_transport_that_fails_to_load_is_refused_in_one_line(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transport plug-in (an entry point in the ``bridged.transports`` group of another
    distribution) whose module fails to import: exit 78 and one line, at --check and at start,
    never the import's traceback."""
    install_transport(monkeypatch, tmp_path, "broken_radio", "broken", BROKEN_TRANSPORTS[case])
    text = config_text(SERVER, tmp_path, extra="[transport.broken]\n")
    check = checked(tmp_path, text)
    assert check.returncode == EXIT_CONFIG, check.stdout + check.stderr
    _one_line(check.stderr, tmp_path, "transport.broken")
    assert "broken_radio" in check.stderr
    async with running_daemon(tmp_path, text) as d:
        assert await d.wait(timeout=60) == EXIT_CONFIG
        _one_line(d.log.read_text(), tmp_path, "transport.broken")


async def test_second_daemon_on_one_state_dir_refuses(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    text = config_text(server.uri, tmp_path)
    async with running_daemon(tmp_path, text) as first:
        await server.next_event("register", timeout=30)
        await first.wait_registered()
        second_dir = tmp_path / "second"
        second_dir.mkdir()
        # Same state directory, its own control socket.
        text2 = text.replace(f'runtime_dir = "{tmp_path / "run"}"', f'runtime_dir = "{second_dir}"')
        async with running_daemon(second_dir, text2) as second:
            assert await second.wait(timeout=60) == EXIT_CONFIG
            log = second.log.read_text()
        assert "Traceback" not in log
        assert str(tmp_path / "state") in log and "another bridged" in log
        status = await first.ctl_json("status")
        assert isinstance(status, dict) and status["servers"][0]["registered"]


async def test_second_daemon_on_one_fixed_port_refuses(
    tmp_path: Path, server: LwM2MTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in production: aiocoap left to its default, which shares ports (SO_REUSEPORT).
    monkeypatch.delenv("AIOCOAP_REUSE_PORT")
    port = _free_udp_port()
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    async with running_daemon(
        first_dir, config_text(server.uri, first_dir, gateway=f"bind_port = {port}")
    ) as first:
        await server.next_event("register", timeout=30)
        await first.wait_registered()
        async with running_daemon(
            second_dir, config_text(server.uri, second_dir, gateway=f"bind_port = {port}")
        ) as second:
            assert await second.wait(timeout=60) == EXIT_CONFIG
            log = second.log.read_text()
        assert "Traceback" not in log
        assert "gateway.bind_port" in log.strip().splitlines()[-1] and str(port) in log
        # The first still has its server: an Update goes through.
        await first.ctl_json("update")
        await until(lambda: _updated(server))


async def _updated(server: LwM2MTestServer) -> bool:
    return any(e.kind == "update" for e in server.history)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
