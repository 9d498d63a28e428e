"""The Debian package on Debian 13 (trixie, Python 3.13), the release of Raspberry Pi OS 13.

The package bundles a venv built with the release's own interpreter, so a .deb built on this
machine (Debian 12) cannot serve Debian 13: ``packaging/release-check trixie`` builds it in a
trixie chroot with the project's own build script, checks it with lintian, installs it with apt,
runs it and purges it. It needs root and debootstrap (and Debian's archive and PyPI on the first
run, which makes the root it then reuses: see the README's packaging section).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(1800)
"""The first run makes the trixie root (debootstrap and the build dependencies, about 2 minutes
here, more on a slow mirror); the suite's 120 s default would cut it short."""


def test_builds_installs_and_runs_on_debian_13() -> None:
    if os.geteuid() != 0:
        pytest.skip("release-check makes a chroot and installs into it: root only")
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap not installed (apt-get install debootstrap)")
    proc = subprocess.run(
        [str(ROOT / "packaging" / "release-check"), "trixie"],
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"release-check trixie failed:\n{out[-6000:]}\n{proc.stderr}"
    changelog = (ROOT / "packaging" / "debian" / "changelog").read_text()
    version = re.findall(r"bridged \(([^)]*)\)", changelog)[0]
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    # Built for trixie's interpreter, the version of the changelog, the example configuration
    # valid, the simulated nodes' readings at the local server, and nothing left after purge.
    built = rf"^bridged {re.escape(version)} {arch}: Depends: python3\.13,"
    assert re.search(built, out, re.MULTILINE), out
    assert f"\nbridged {version}\n" in out
    assert "/etc/bridged/bridged.toml: configuration is valid" in out
    assert "server: bridged-try registered" in out and "bridged exited with status 0" in out
    assert re.search(r"it works: the server received \d+ readings", out), out
    assert "builds, installs, runs and purges on trixie" in out
