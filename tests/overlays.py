"""Run a script against a copy of the package laid over the checkout (the change-walk tests:
tests/unit/test_content_format_walk.py, test_node_operation_walk.py), in a process of its own,
so that the walk edits the copy and the checkout is never written to."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def run_over(
    overlay: Path, script: str, *args: str, path: Sequence[Path] = ()
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (``-c``) with ``args`` where ``bridged`` is ``overlay``'s (its folder is
    the working directory and first on the path, before the editable install), and ``path``
    after it; no PYTHON* setting of the test's own process leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (overlay, *path))
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=overlay,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
