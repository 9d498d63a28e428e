"""``make demo``: a smoke test of the whole thing, every way out of it, and its screen model.

The demo runs as ``make demo`` runs it (``python -m demo`` from the repository root with
``tests`` on PYTHONPATH), with ``--seconds`` and stdout a pipe, so it prints plain lines. Its
output must show the endpoint registering, the nodes' objects appearing in its registration,
values that change, the daemon's De-register on the way out, and exit 0. However it is left
(its terminal closed, SIGTERM, Ctrl-C, its parent killed), nothing it started outlives it:
no process, no temp dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from emulators.world import ble_unavailable

ROOT = Path(__file__).parents[2]
TIMEOUT = 120.0
LEAVE_TIMEOUT = 30.0
"""How long what the demo started may take to end once the demo is left."""
LIVE = b"live: the server observes"
"""The demo's line once everything is set up and paired."""


def load_view() -> ModuleType:
    """demo/view.py, which has no imports of its own to resolve (the demo package is not
    installed, nor on the tests' path)."""
    spec = importlib.util.spec_from_file_location("demo_view", ROOT / "demo" / "view.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


async def test_the_demo_shows_what_the_server_sees_and_stops_cleanly() -> None:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, ["tests", os.environ.get("PYTHONPATH")])),
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "demo",
        "--seconds",
        "3",
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode()
    assert proc.returncode == 0, f"{text}\n{err.decode()}"
    assert "Traceback" not in text + err.decode()
    assert "\x1b[" not in text, "not a terminal: plain lines, no screen redraws"

    assert re.search(r"server: bridged-demo registered: /1\[0\] /3\[0\] /4\[0\]", text)
    updates = " ".join(line for line in text.splitlines() if "updated its objects: new" in line)
    assert "/3303[" in updates and "/3311[" in updates, text
    assert "$ bridgectl permit-join 30  ->  permit-join open for 30 s" in text
    assert "kitchen, attic, cellar joined" in text

    # Every value line says whose value it is and what it is, with its unit.
    seen: defaultdict[str, set[str]] = defaultdict(set)
    for node, what, value, path in re.findall(r"  (\w+)  (.+?) = (.+?)  \((/\d+/\d+/\d+)\)", text):
        seen[path].add(value)
        if path.startswith("/3303/"):
            assert what == "Temperature" and value.endswith(" °C"), (node, what, value)
        if path.startswith("/3311/"):
            assert what == "Light Control On/Off" and value in ("on", "off"), (what, value)
    assert "kitchen  Temperature = " in text
    changing = [path for path, values in seen.items() if len(values) >= 2]
    assert len(changing) >= 2, seen

    tail = text[text.index("stopping: SIGTERM to bridged") :]
    assert "server: bridged-demo de-registered" in tail
    assert "bridged exited with status 0" in tail
    assert "temp dir removed" in tail


def test_the_screen_model() -> None:
    view = load_view()
    links = (
        '</>;rt="oma.lwm2m";ct="112 110 60",'
        "</1/0>,</3/0>,</3303>;ver=1.1,</3303/0>,</3303/4>,</3311/0>"
    )
    assert view.object_list(links) == {1: [0], 3: [0], 3303: [0, 4], 3311: [0]}
    assert view.node_instances(view.object_list(links)) == ["/3303/0", "/3303/4", "/3311/0"]

    clock = iter(range(1_000_000, 2_000_000))
    screen = view.ServerView(clock=lambda: float(next(clock)))
    screen.registered_as("gw", {"lt": "60", "lwm2m": "1.1", "b": "U"}, "</1/0>,</3/0>")
    update = screen.updated("gw", links)
    assert update.endswith("gw updated its objects: new /3303[0,4] /3311[0]")
    first = [("/3303/0/5700", 21.0), ("/3303/0/5701", "Cel"), ("/3303/0/5750", "kitchen")]
    assert [line.split("  ", 1)[1] for line in screen.notified(first)] == [
        "kitchen  Temperature = 21 °C  (/3303/0/5700)"
    ]
    assert screen.notified([("/3303/0/5700", 21.0)]) == []  # no change, no line
    (line,) = screen.notified([("/3303/0/5700", 22.456)])
    assert line.endswith("kitchen  Temperature = 22.46 °C  (/3303/0/5700)")
    assert screen.values["/3303/0/5700"].changes == 1

    # What a value is: a Generic Sensor's type, an object's resource other than Sensor Value.
    ruuvi = [
        ("/3300/1/5700", 4.0),
        ("/3300/1/5701", "dBm"),
        ("/3300/1/5750", "greenhouse"),
        ("/3300/1/5751", "tx_power"),
        ("/3311/0/5850", True),
        ("/3311/0/5750", "kitchen"),
    ]
    assert [line.split("  ", 1)[1] for line in screen.notified(ruuvi)] == [
        "greenhouse  tx power = 4 dBm  (/3300/1/5700)",
        "kitchen  Light Control On/Off = on  (/3311/0/5850)",
    ]

    # The story stays on the screen however many values change, in a small terminal too.
    story = [screen.event(f"step {n}") for n in range(6)]
    for n in range(50):
        screen.notified([("/3303/0/5700", float(n))])
    page = screen.render("title", height=24, width=80)
    lines = page.splitlines()
    assert len(lines) <= 24 and max(map(len, lines)) <= 80
    assert all(line in page for line in story)
    assert "server sees gw: registered (lifetime 60 s, LwM2M 1.1, binding U)" in page
    assert "objects: /1[0] /3[0] /3303[0,4] /3311[0]" in page
    assert re.search(r"kitchen +Temperature +49 °C +51  /3303/0/5700", page)
    assert re.search(r"greenhouse +tx power +4 dBm +0  /3300/1/5700", page)
    small = screen.render("title", height=10, width=80).splitlines()
    assert len(small) == 10 and small[-1].startswith("... 2 more")

    screen.updated("gw", "</1/0>,</3/0>,</3311/0>")  # the kitchen node was unpaired
    assert list(screen.values) == ["/3311/0/5850"]
    screen.deregistered("gw")
    assert "server sees gw: de-registered" in screen.render("title")


# -- every way out ---------------------------------------------------------------------------


def demo_env(tmp: Path) -> dict[str, str]:
    """The environment of ``make demo``, with a temp dir of the test's own to check."""
    return dict(
        os.environ,
        TMPDIR=str(tmp),
        PYTHONPATH=os.pathsep.join(filter(None, ["tests", os.environ.get("PYTHONPATH")])),
    )


def proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from the state on (``[state, ppid, ..., starttime (19), ...]``)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> dict[tuple[int, str], bytes]:
    """Every process under ``pid`` by pid and start time (a reused pid is another process),
    with its command line."""
    children: defaultdict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        stat = proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None:
            children[int(stat[1])].append(int(entry.name))
    found: dict[tuple[int, str], bytes] = {}
    todo = [pid]
    while todo:
        for child in children.pop(todo.pop(), []):
            stat = proc_stat(child)
            if stat is not None:
                with contextlib.suppress(OSError):
                    found[child, stat[19]] = (Path("/proc") / str(child) / "cmdline").read_bytes()
                todo.append(child)
    return found


def alive(pid: int, started: str) -> bool:
    stat = proc_stat(pid)
    return stat is not None and stat[19] == started and stat[0] != "Z"


def read_until(fd: int, marker: bytes, timeout: float = TIMEOUT) -> bytes:
    """What ``fd`` gives until ``marker`` shows (or it ends, or ``timeout`` passes)."""
    out = b""
    deadline = time.monotonic() + timeout
    while marker not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # a pty whose other side is closed: EIO
                break
            if not chunk:
                break
            out += chunk
    assert marker in out, out.decode(errors="replace")[-3000:]
    return out


def take_controlling_tty() -> None:
    """In the demo's process: its stdin (the pty) becomes its controlling terminal, so that
    closing the other side hangs the demo up as closing a terminal window does."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_and_leave(way: str, tmp: Path) -> tuple[dict[tuple[int, str], bytes], int | None]:
    """Start the demo, wait until it is live, leave it ``way``; returns the demo and what ran
    under it then (`descendants`), and its exit status (None when its parent was killed)."""
    demo = [sys.executable, "-m", "demo"]
    common = {"cwd": ROOT, "env": demo_env(tmp), "stdin": subprocess.DEVNULL}
    if way == "terminal closed":
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        proc = subprocess.Popen(
            demo,
            cwd=ROOT,
            env=demo_env(tmp),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=take_controlling_tty,
        )
        os.close(slave)
        try:
            read_until(master, LIVE)
            under = descendants(proc.pid)
        finally:
            os.close(master)  # the terminal window closes: SIGHUP
        return {**under, **itself(proc.pid)}, proc.wait(TIMEOUT)
    if way == "parent killed":
        parent = subprocess.Popen(
            ["sh", "-c", '"$@" & echo "demo $!"; wait', "sh", *demo],
            stdout=subprocess.PIPE,
            **common,  # type: ignore[arg-type]
        )
        assert parent.stdout is not None
        out = read_until(parent.stdout.fileno(), LIVE)
        pid = int(re.findall(rb"demo (\d+)", out)[0])
        under = {**descendants(pid), **itself(pid)}
        parent.kill()
        parent.wait()
        read_until(parent.stdout.fileno(), b"temp dir removed")
        parent.stdout.close()
        return under, None
    proc = subprocess.Popen(demo, stdout=subprocess.PIPE, **common)  # type: ignore[arg-type]
    assert proc.stdout is not None
    read_until(proc.stdout.fileno(), LIVE)
    under = {**descendants(proc.pid), **itself(proc.pid)}
    proc.send_signal(signal.SIGTERM if way == "SIGTERM" else signal.SIGINT)
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert b"temp dir removed" in out, out.decode(errors="replace")
    return under, proc.returncode


def itself(pid: int) -> dict[tuple[int, str], bytes]:
    stat = proc_stat(pid)
    assert stat is not None
    return {(pid, stat[19]): b"demo"}


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """The demo's TMPDIR: short, since the private D-Bus socket's path in it must fit a
    sockaddr_un (108 bytes), which pytest's tmp_path does not."""
    path = Path(tempfile.mkdtemp(prefix="bd-"))
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize("way", ["terminal closed", "SIGTERM", "SIGINT", "parent killed"])
def test_every_way_out_of_the_demo_leaves_nothing_behind(way: str, short_tmp: Path) -> None:
    processes, status = run_and_leave(way, short_tmp)
    commands = b" ".join(processes.values())
    assert b"bridged.daemon" in commands, processes
    if ble_unavailable() is None:
        assert b"dbus-daemon" in commands and b"dbusmock" in commands, processes
    assert status in (0, None)
    deadline = time.monotonic() + LEAVE_TIMEOUT
    try:
        while left := [cmd for (pid, started), cmd in processes.items() if alive(pid, started)]:
            assert time.monotonic() < deadline, f"still running: {left}"
            time.sleep(0.1)
    finally:  # what a failure leaves is the test's to end
        for pid, started in processes:
            if alive(pid, started):
                os.kill(pid, signal.SIGKILL)
    assert list(short_tmp.iterdir()) == []
