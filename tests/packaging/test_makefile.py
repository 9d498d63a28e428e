"""What `make demo` and `make test` install, as make would run it (``make -n -B``: every
recipe printed, none run).

The demo needs the venv, a dbus-daemon and what builds dbus-python; the suite's toolchain (the
JRE and Maven of the Leshan peer, the Debian packaging tools, libcoap, autotools for DTLSSocket)
is 158 MB to download that the demo never uses.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_NEEDS = {"python3-venv", "dbus", "libdbus-1-dev", "libglib2.0-dev"}
TEST_ONLY = {
    "debhelper",
    "lintian",
    "fakeroot",
    "help2man",
    "libcoap3-bin",
    "autoconf",
    "debootstrap",
    "qemu-user-static",
}


JAVA_PEER_NEEDS = {
    package
    for package, command in (("default-jre-headless", "java"), ("maven", "mvn"))
    if shutil.which(command) is None
}
"""What the Leshan peers need, asked only where the command is missing (a Java and a Maven
installed otherwise serve as well)."""


def dry_run(target: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    proc = subprocess.run(
        ["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def apt_packages(recipes: str) -> set[str]:
    """The packages the apt_install loop of the recipes checks and installs."""
    return {p for found in re.findall(r"for p in ([^;]*);", recipes) for p in found.split()}


def pip_installs(recipes: str) -> list[str]:
    return re.findall(r"pip install -q -e '([^']*)'", recipes)


def test_make_demo_installs_only_what_the_demo_needs() -> None:
    recipes = dry_run("demo")
    packages = apt_packages(recipes)
    assert packages >= DEMO_NEEDS
    assert not packages & (TEST_ONLY | {"default-jre-headless", "maven"}), packages
    assert pip_installs(recipes) == [".[demo]"]
    assert "PYTHONPATH=tests .venv/bin/python -m demo" in recipes


def test_make_test_still_installs_everything() -> None:
    recipes = dry_run("test")
    assert apt_packages(recipes) >= DEMO_NEEDS | TEST_ONLY | JAVA_PEER_NEEDS
    assert pip_installs(recipes) == [".[test,dtls]"]


def test_make_test_registers_qemus_arm64_handler_and_the_demo_does_not() -> None:
    """The arm64 package check (tests/packaging/test_release.py) runs where the kernel hands
    aarch64 programs to QEMU: `make test` registers the handler where nothing did."""
    register = "cat $conf > $dir/register"
    assert "conf=/usr/lib/binfmt.d/qemu-aarch64.conf" in dry_run("test")
    assert register in dry_run("test")
    assert register not in dry_run("demo")
