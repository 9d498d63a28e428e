"""``bridged --try``: the real daemon with simulated nodes against a LwM2M server on this
machine, as a user with a Pi and no sensors runs it (the package's test runs it from the
extracted .deb too). What the trial's server received is printed by it, decoded with the
project's codecs; it must show the gateway registering, the nodes paired and named, readings
arriving, the De-register, and nothing left behind: no process, no temp dir.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

TIMEOUT = 120.0


def trial(tmp: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bridged.daemon", "--try", *args],
        cwd="/",  # the installed package, not a checkout's files
        env=dict(os.environ, TMPDIR=str(tmp)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def no_daemon_runs_on(tmp: Path) -> bool:
    return not [
        p for p in Path("/proc").iterdir() if p.name.isdigit() and str(tmp).encode() in _cmdline(p)
    ]


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def test_try_shows_a_working_gateway_and_leaves_nothing(tmp_path: Path) -> None:
    proc = trial(tmp_path, "--seconds", "6")
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert re.search(r"a LwM2M server on this machine: coap://127\.0\.0\.1:\d+", out)
    assert "server: bridged-try registered: /1/0 /3/0 /4/0" in out
    for node, name in (("sim:0001", "living-room"), ("sim:0002", "bedroom")):
        assert f"$ bridgectl pair {node} --name {name}  ->  paired {node}" in out
    assert re.search(r"updated its objects: .*/3303/0 .*/3303/2", out), out
    # Readings with the node's name (read by the server from 5750) and what they are.
    assert re.search(r"living-room +Temperature +[\d.]+ +\(/3303/0/5700\)", out), out
    assert re.search(r"garden +Light Control +(on|off) +\(/3311/2/5850\)", out), out
    tail = out[out.index("stopping: SIGTERM to bridged") :]
    assert "server: bridged-try de-registered" in tail
    assert "bridged exited with status 0" in tail
    assert re.search(r"it works: the server received \d+ readings", tail)
    assert list(tmp_path.iterdir()) == []
    assert no_daemon_runs_on(tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_try_stops_everything_on_ctrl_c_and_a_closed_terminal(
    tmp_path: Path, sig: signal.Signals
) -> None:
    proc = trial(tmp_path)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("live:"):
            break
    else:
        pytest.fail(f"bridged --try never got live (exit {proc.wait()})")
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, out
    assert "server: bridged-try de-registered" in out
    assert list(tmp_path.iterdir()) == []
    assert no_daemon_runs_on(tmp_path)


def test_seconds_without_try_is_refused() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bridged.daemon", "--seconds", "5"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 2
    assert "--seconds goes with --try" in proc.stderr and "Traceback" not in proc.stderr
