"""The packaged unit's environment has glibc's malloc give back each large block freed.

glibc raises its mmap threshold to the size of each mapped block freed, after which large
blocks come from its heap, which keeps them once freed: a daemon with 10,000 nodes held 1 to
1.5 MB that its start had freed (issue 17). The unit fixes the threshold
(``GLIBC_TUNABLES``); a tunable glibc does not know is ignored without a word, so this runs
a process with the unit's environment and sees a large block mapped apart after a larger one
was freed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "packaging" / "bridged.service"

PROBE = """
import ctypes, json
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
freed = bytearray(8 << 20)  # mapped, and freed: glibc's threshold would move up to 8 MiB
del freed
before = libc.mallinfo2().hblks
block = bytearray(256 << 10)
print(json.dumps(libc.mallinfo2().hblks - before))
"""


def unit_environment() -> dict[str, str]:
    return dict(
        value.split("=", 1)
        for value in re.findall(r"^Environment=(.*)$", UNIT.read_text(), re.MULTILINE)
    )


def test_a_large_block_is_mapped_apart_after_a_larger_one_was_freed() -> None:
    if not hasattr(os, "confstr") or "glibc" not in (os.confstr("CS_GNU_LIBC_VERSION") or ""):
        pytest.skip("not glibc")
    env = {**os.environ, **unit_environment()}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == 1, "the 256 KiB block came from the heap"
