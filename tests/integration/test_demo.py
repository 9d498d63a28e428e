"""``make demo``: a smoke test of the whole thing, and its screen model.

The demo runs as ``make demo`` runs it (``python -m demo`` from the repository root with
``tests`` on PYTHONPATH), with ``--seconds`` and stdout a pipe, so it prints plain lines. Its
output must show the endpoint registering, the nodes' objects appearing in its registration,
values that change, the daemon's De-register on the way out, and exit 0.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import sys
from collections import defaultdict
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).parents[2]
TIMEOUT = 120.0


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

    assert re.search(r"server: bridged-demo registered \(lifetime 120 s", text)
    updates = [line for line in text.splitlines() if "bridged-demo updated its objects" in line]
    assert any("</3303/0>" in line and "</3311/0>" in line for line in updates), text
    assert "$ bridgectl permit-join 30" in text and "802154:00124b0000030001" in text

    seen: defaultdict[str, set[str]] = defaultdict(set)
    for path, value in re.findall(r"value (/\d+/\d+/\d+) = (\S+)", text):
        seen[path].add(value)
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
    screen.registered_as("gw", {"lt": "60", "lwm2m": "1.1", "b": "U"}, links)
    first = [("/3303/0/5700", 21.0), ("/3303/0/5701", "Cel"), ("/3303/0/5750", "kitchen")]
    assert [line.split("  ", 1)[1] for line in screen.notified(first)] == [
        "value /3303/0/5700 = 21 Cel  (kitchen)"
    ]
    assert screen.notified([("/3303/0/5700", 21.0)]) == []  # no change, no line
    (line,) = screen.notified([("/3303/0/5700", 22.456)])
    assert line.endswith("value /3303/0/5700 = 22.46 Cel  (kitchen)")
    assert screen.values["/3303/0/5700"].changes == 1
    page = screen.render("title")
    assert "endpoint gw: registered (lifetime 60 s, LwM2M 1.1, binding U)" in page
    assert "/3303[0,4]" in page
    assert re.search(r"/3303/0/5700 +kitchen +22\.46 Cel +1", page)

    screen.updated("gw", "</1/0>,</3/0>,</3311/0>")  # the kitchen node was unpaired
    assert screen.values == {}
    screen.deregistered("gw")
    assert "endpoint gw: de-registered" in screen.render("title")
