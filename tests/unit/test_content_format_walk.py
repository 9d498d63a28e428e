"""The change walk "add a content format" (docs/architecture.md), done: a codec module in
objects/formats/ and one line in ``ContentFormat``, nothing else, and the engine serves the
format: a Read and a Write in it, a Read-Composite, and its records counted as carrying time.

The walk is done on a copy of the object model (``bridged.objects``) laid over the real
package, in a process of its own, so the checkout is never written to.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
from overlays import run_over

import bridged

ROOT = Path(__file__).resolve().parents[2]
NUMBER = 65000
"""A Content-Format number from the experimental range (RFC 7252 §12.3): no real format's."""

CODEC = '''"""A format for the walk's test: SenML JSON behind a marker, with a number of its own."""

from collections.abc import Sequence

from ..definitions import Definitions
from ..paths import Path
from ..values import Record
from . import ContentFormat
from .senml_json import CODEC as SENML

MARK = b"probe:"


class ProbeCodec:
    content_format = ContentFormat.PROBE
    timed = True

    def encode(self, records: Sequence[Record], base: Path, registry: Definitions) -> bytes:
        return MARK + SENML.encode(records, base, registry)

    def decode(self, payload: bytes, base: Path, registry: Definitions) -> list[Record]:
        return SENML.decode(payload.removeprefix(MARK), base, registry)

    def encode_paths(self, paths: Sequence[Path]) -> bytes:
        return MARK + SENML.encode_paths(paths)

    def decode_paths(self, payload: bytes) -> list[Path]:
        return SENML.decode_paths(payload.removeprefix(MARK))


CODEC = ProbeCodec()
'''

SERVED = """
import sys

from aiocoap.numbers.codes import Code

from bridged.engine.dm import DeviceManagement, Request
from bridged.objects.builtin import builtin_definitions
from bridged.objects.formats import ContentFormat, carries_time, codec_for
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree

import bridged.objects
overlay, number = sys.argv[1], int(sys.argv[2])
assert bridged.objects.__file__.startswith(overlay), bridged.objects.__file__

tree = ObjectTree(builtin_definitions())
tree.create_instance(3303, 0, [(5700, 21.5), (5750, "kitchen")])
dm = DeviceManagement(tree)
probe = ContentFormat(number)

read = dm.handle(Request(Code.GET, ["3303", "0"], accept=probe))
assert (read.code, read.content_format) == (Code.CONTENT, probe), read
assert read.payload.startswith(b"probe:[")
records = codec_for(probe).decode(read.payload, Path.parse("/3303/0"), tree.definitions)
assert [(str(r.path), r.value) for r in records][0] == ("/3303/0/5700", 21.5), records

payload = b'probe:[{"n":"/3303/0/5750","vs":"cellar"}]'
write = dm.handle(Request(Code.POST, ["3303", "0"], payload=payload, content_format=probe))
assert write.code == Code.CHANGED, write
assert tree.get(Path.parse("/3303/0/5750")) == "cellar"

paths = b'probe:[{"n":"/3303/0/5700"}]'
composite = dm.handle(
    Request(Code.FETCH, [], payload=paths, content_format=probe, accept=probe)
)
assert composite.code == Code.CONTENT and b"21.5" in composite.payload, composite

assert carries_time(probe)
print("served")
"""


@pytest.fixture
def overlay(tmp_path: Path) -> Path:
    """The installed layout (``bridged/``, its ``objects`` and ``transports``) with the object
    model copied and every other part linked to the checkout's."""
    package = tmp_path / "bridged"
    package.mkdir()
    for entry in Path(bridged.__file__).parent.iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    shutil.copytree(
        ROOT / "objects", package / "objects", ignore=shutil.ignore_patterns("__pycache__")
    )
    (package / "transports").symlink_to(ROOT / "transports")
    return tmp_path


def test_a_content_format_is_a_codec_module_and_one_line(overlay: Path) -> None:
    formats = overlay / "bridged" / "objects" / "formats"
    (formats / "probe.py").write_text(CODEC)
    table = formats / "__init__.py"
    before = table.read_text()
    last = '    LWM2M_CBOR = 11544, "lwm2m_cbor"\n'
    assert last in before
    table.write_text(before.replace(last, f'{last}    PROBE = {NUMBER}, "probe"\n'))
    changed = [
        line
        for line in difflib.unified_diff(before.splitlines(), table.read_text().splitlines())
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert changed == [f'+    PROBE = {NUMBER}, "probe"']

    proc = run_over(overlay, SERVED, str(overlay), str(NUMBER))
    assert proc.returncode == 0 and proc.stdout.strip() == "served", proc.stderr
