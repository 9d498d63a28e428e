"""A damaged state database or secrets file, through the real daemon.

The daemon refuses to start with one line that names the file and the recovery command, exit
78 (which the systemd unit does not restart: no restart loop), and changes nothing.
``bridged --recover`` keeps the damaged file aside and makes a new one of what still reads:
the pairings survive damage to the readings' pages, and the daemon starts again with them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from integration.test_daemon import (
    EXIT_CONFIG,
    Daemon,
    _short_paths,  # noqa: F401 (fixture)
    config_text,
    running_daemon,
    until,
)

NOWHERE = "coap://127.0.0.1:9"  # no server: readings stay in the store
SIM = "nodes = 2\ninterval = 0.01"


def recover(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridged.daemon", "--config", str(tmp_path / "bridged.toml"),
         "--recover"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip


async def refused(tmp_path: Path, config: str, damaged: str) -> None:
    async with running_daemon(tmp_path, config) as d:
        assert await d.wait(timeout=60) == EXIT_CONFIG
        log = d.log.read_text()
    assert "Traceback" not in log, log
    (line,) = [line for line in log.splitlines() if line.startswith("bridged: ")]
    assert damaged in line and "damaged" in line and "bridged --recover" in line, line


async def test_a_damaged_database_is_refused_then_recovered_with_its_pairings(
    tmp_path: Path,
) -> None:
    config = config_text(NOWHERE, tmp_path, sim=SIM)
    async with running_daemon(tmp_path, config) as d:
        await until(lambda: _answers(d))
        await d.call("pair", node="sim:0001", name="porch")
        await d.call("pair", node="sim:0002", name="cellar")

        async def many() -> bool:
            status = await d.ctl_json("status")
            assert isinstance(status, dict)
            return int(status["readings"]["stored"]) >= 3000

        await until(many, timeout=60)
        d.proc.send_signal(signal.SIGTERM)
        assert await d.wait() == 0
    db = tmp_path / "state" / "state.db"
    size = db.stat().st_size
    with db.open("r+b") as f:  # the last pages (readings) are garbage now
        f.seek(size - 3 * 4096)
        f.write(b"\xa5" * 3 * 4096)

    await refused(tmp_path, config, str(db))
    assert db.stat().st_size == size, "nothing was changed"

    done = recover(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "nodes: 2 rows kept" in done.stdout, done.stdout
    kept = [p for p in db.parent.iterdir() if p.name.startswith("state.db.corrupt-")]
    assert len(kept) == 1 and kept[0].stat().st_size == size

    async with running_daemon(tmp_path, config) as d:
        await until(lambda: _answers(d))
        nodes = await d.ctl_json("nodes")
        assert isinstance(nodes, list)
        assert {(n["id"], n["name"]) for n in nodes} == {
            ("sim:0001", "porch"),
            ("sim:0002", "cellar"),
        }


async def test_a_damaged_secrets_file_is_refused_then_recovered(tmp_path: Path) -> None:
    config = config_text(NOWHERE, tmp_path, sim=SIM)
    state = tmp_path / "state"
    state.mkdir()
    secrets = state / "secrets.json"
    secrets.write_text(
        '{"ble:A4:C1:38:00:11:22": {"bindkey": "00112233445566778899aabbccddeeff"}, '
    )
    await refused(tmp_path, config, str(secrets))
    done = recover(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "kept as" in done.stdout and "pair them again" in done.stdout, done.stdout
    assert [p for p in state.iterdir() if p.name.startswith("secrets.json.corrupt-")]
    async with running_daemon(tmp_path, config) as d:
        await until(lambda: _answers(d))


async def _answers(d: Daemon) -> bool:
    code, _, _ = await d.ctl("status")
    return code == 0
