"""A bench process under callgrind with instrumentation off at its start: the process itself
switches it on around what it measures (``instrument``), and its parent reads the total.
Shared by bench/sends.py and bench/batch.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path as FilePath


def instrument(state: str) -> None:
    """Switch this process's instrumentation ``on`` or ``off`` (it runs under callgrind)."""
    subprocess.run(
        ["callgrind_control", "-i", state, str(os.getpid())], check=True, capture_output=True
    )


def run(script: str, args: Sequence[str], env: dict[str, str] | None = None) -> tuple[str, int]:
    """Run ``script`` with ``args`` under callgrind; its standard output and the instructions
    collected while it had instrumentation on."""
    with tempfile.TemporaryDirectory() as tmp:
        log = FilePath(tmp) / "callgrind.log"
        out = subprocess.run(
            [
                *("valgrind", "--tool=callgrind", "--instr-atstart=no"),
                *(f"--callgrind-out-file={tmp}/callgrind.out", f"--log-file={log}"),
                *(sys.executable, script, *args),
            ],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
        found = re.search(r"Collected : (\d+)", log.read_text())
        assert found is not None, "no instruction total in callgrind's log"
    return out.stdout, int(found.group(1))
