"""The change walk "add a node-reaching server operation" (docs/architecture.md), done: four
core files (engine/dm.py, engine/nodes.py, operations.py, transports/base.py) and, in a
transport's own package, the override that carries it to the node; nothing else, and a
server's request reaches the node through the exposure mode's mapping and back.

The operation of the walk is a Discover that asks the node (the gateway serves Discover from
its tree). The walk is done on a copy of the package (``bridged``, its ``objects`` linked,
its ``transports`` copied) in a process of its own, so the checkout is never written to.
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import pytest
from overlays import run_over

import bridged

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(bridged.__file__).parent

EDITS = {
    "bridged/engine/dm.py": [
        (
            "        if method == Code.DELETE:\n            raise node_owned(path, node)\n",
            "        if method == Code.GET and accept == ContentFormat.LINK_FORMAT:\n"
            "            self._check(Operation.DISCOVER, path)\n"
            "            found_paths = await nodes.discover(node, local)\n"
            "            ups = [u for p in found_paths if (u := nodes.upstream(node, p))]\n"
            '            links = ",".join(f"<{u}>" for u in ups).encode()\n'
            "            return Reply(Code.CONTENT, links, ContentFormat.LINK_FORMAT)\n"
            "        if method == Code.DELETE:\n            raise node_owned(path, node)\n",
        )
    ],
    "bridged/engine/nodes.py": [
        (
            "    async def execute(self, node: NodeId, local: Path, arguments: str) -> None: ...\n",
            "    async def execute(self, node: NodeId, local: Path, arguments: str) -> None: ...\n"
            "\n"
            "    async def discover(self, node: NodeId, local: Path) -> list[Path]: ...\n",
        )
    ],
    "bridged/operations.py": [
        (
            "    def _live(self, node: NodeId) -> LiveNode:\n",
            "    async def discover(self, node: NodeId, local: Path) -> list[Path]:\n"
            "        self._live(node)\n"
            "        return await call_node(\n"
            "            self.registry, node, lambda t: t.discover(node, local), self.timeout\n"
            "        )\n\n"
            "    def _live(self, node: NodeId) -> LiveNode:\n",
        )
    ],
    "transports/base.py": [
        (
            "from bridged.objects.definitions import Definitions\n",
            "from bridged.objects.definitions import Definitions\n"
            "from bridged.objects.errors import MethodNotAllowed\n",
        ),
        (
            "    @abc.abstractmethod\n"
            "    async def execute(self, node: NodeId, path: Path, arguments: str) -> None:\n",
            "    async def discover(self, node: NodeId, path: Path) -> list[Path]:\n"
            '        """What the node has under ``path``; a transport that cannot refuses."""\n'
            '        raise MethodNotAllowed(f"{self.name} nodes cannot be discovered")\n\n'
            "    @abc.abstractmethod\n"
            "    async def execute(self, node: NodeId, path: Path, arguments: str) -> None:\n",
        ),
    ],
}
"""The walk's four core files, each edit an anchor in the checkout and what replaces it."""

REACHED = """
import asyncio
import sys
import tempfile
from pathlib import Path as FsPath

from aiocoap.numbers.codes import Code

import bridged
from bridged.engine.dm import Request
from bridged.objects.paths import Path
from bridged.transports.simulated import SimulatedTransport
from nodegw import node_gateway

assert bridged.__file__.startswith(sys.argv[1]), bridged.__file__
LINK_FORMAT = 40


class DiscoverableSim(SimulatedTransport):
    \"\"\"A transport that can: the override in its own package (no core edit).\"\"\"

    async def discover(self, node, path):
        self.asked = (str(node), str(path))
        return [path, path.child(5700)]


async def main() -> None:
    with tempfile.TemporaryDirectory() as state:
        gw = node_gateway(FsPath(state))
        gw.sim.__class__ = DiscoverableSim
        reply = await gw.dm.handle_async(Request(Code.GET, ("3303", "1"), accept=LINK_FORMAT))
        assert reply.code == Code.CONTENT, reply
        assert reply.payload == b"</3303/1>,</3303/1/5700>", reply.payload
        assert gw.sim.asked == ("sim:0001", "/3303/0"), "the node's own path reached it"
        gw.sim.__class__ = SimulatedTransport
        refused = await gw.dm.handle_async(Request(Code.GET, ("3303", "1"), accept=LINK_FORMAT))
        assert refused.code == Code.METHOD_NOT_ALLOWED, refused


asyncio.run(main())
print("reached")
"""


@pytest.fixture
def overlay(tmp_path: Path) -> Path:
    """The installed layout with the gateway package and the transports copied, the object
    model linked to the checkout's."""
    package = tmp_path / "bridged"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "objects").symlink_to(ROOT / "objects")
    shutil.copytree(
        ROOT / "transports", package / "transports", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def changed_files(overlay: Path) -> list[str]:
    """The files of the copy that differ from the checkout's."""
    changed = []
    for root, copy in (
        (PACKAGE, overlay / "bridged"),
        (ROOT / "transports", overlay / "bridged" / "transports"),
    ):
        for source in sorted(root.rglob("*.py")):
            mine = copy / source.relative_to(root)
            if not filecmp.cmp(source, mine, shallow=False):
                changed.append(str(source.relative_to(ROOT)))
    return changed


def test_a_node_reaching_operation_is_four_core_files(overlay: Path) -> None:
    for name, edits in EDITS.items():
        target = overlay / name.replace("transports/", "bridged/transports/", 1)
        text = target.read_text()
        for anchor, replacement in edits:
            assert text.count(anchor) == 1, f"{name}: the walk's anchor moved: {anchor!r}"
            text = text.replace(anchor, replacement)
        target.write_text(text)
    assert changed_files(overlay) == sorted(EDITS)

    proc = run_over(overlay, REACHED, str(overlay), path=[ROOT / "tests"])
    assert proc.returncode == 0 and proc.stdout.strip() == "reached", proc.stderr
