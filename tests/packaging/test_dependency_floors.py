"""The lowest versions pyproject.toml allows are ones the code runs with.

A floor that is too low is a promise nobody checks: pip keeps an old bleak that a system
already has, and the gateway fails at its first BLE scan. So the floor of every runtime
dependency (and of the ``systemd`` and ``dtls`` extras the Debian package installs) is
installed, exactly, in a venv of its own, and the code is run on it: every module imported,
``bridged --check`` on the example configuration, and the tests of what each dependency is
used for (the CBOR codecs, BTHome decryption, the BLE scanner and GATT client against the BlueZ
emulation, the 802.15.4 radio on a pty).

It needs PyPI (or pip's cache). The venv is kept in build/dependency-floors and made again only
when pyproject.toml's requirements change, so a rerun takes the tests' time alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
RUNTIME_EXTRAS = ("systemd", "dtls")
"""The extras the Debian package installs; the others are the suite's and the demo's tools."""
VENV = ROOT / "build" / "dependency-floors"
SMOKE_TESTS = (
    "tests/unit/test_lwm2m_cbor.py",  # cbor2: CBORDecoder's semantic decoders, duplicate keys
    "tests/unit/test_senml.py",
    "tests/unit/test_bthome.py",  # cryptography: AES-CCM
    "tests/integration/test_ble_scanner.py",  # bleak.args.bluez, dbus-fast
    "tests/integration/test_ble_gatt.py",  # BleakClient(bluez=...)
    "tests/integration/test_rcp_radio.py",  # pyserial: serial_for_url(exclusive=True)
)

pytestmark = pytest.mark.timeout(900)
"""The first run creates the venv (downloads and, for DTLSSocket and systemd-python, builds);
a rerun takes about a minute."""


def floors() -> list[str]:
    """``name==floor`` of every runtime requirement, from its ``>=`` specifier.

    Parsed here by hand: the suite's tests/packaging shadows the ``packaging`` library.
    """
    wanted = [*PROJECT["dependencies"]]
    for extra in RUNTIME_EXTRAS:
        wanted += PROJECT["optional-dependencies"][extra]
    pins = []
    for requirement in wanted:
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        lows = re.findall(r">=\s*([^,;\s]+)", requirement)
        assert name and len(lows) == 1, f"{requirement!r} declares no floor (>=)"
        pins.append(f"{name.group()}=={lows[0]}")
    return sorted(pins)


def run(*args: str | Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a command of the venv in the checkout, outside the suite's own venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def python() -> Path:
    """The interpreter of a venv holding the floors, bridged (editable) and the test tools.

    The floors are pip constraints on the install of ``.[test,...]``: whatever else is pulled
    in (the test tools, the floors' own dependencies) is resolved around them.
    """
    pins = floors()
    stamp = VENV / "floors.json"
    recipe = json.dumps({"pins": pins, "project": PROJECT, "python": sys.version}, indent=1)
    interpreter = VENV / "bin" / "python"
    if stamp.exists() and stamp.read_text() == recipe:
        return interpreter
    shutil.rmtree(VENV, ignore_errors=True)
    run(sys.executable, "-m", "venv", VENV, timeout=120)
    constraints = VENV / "constraints.txt"
    constraints.write_text("".join(f"{pin}\n" for pin in pins))
    extras = ",".join(("test", *RUNTIME_EXTRAS))
    run(
        interpreter, "-m", "pip", "install", "--quiet", "--constraint", constraints,
        "--editable", f".[{extras}]",
        timeout=800,
    )  # fmt: skip
    stamp.write_text(recipe)
    return interpreter


def test_the_floors_are_what_is_installed(python: Path) -> None:
    script = (
        "import sys\n"
        "from importlib.metadata import version\n"
        "from packaging.requirements import Requirement\n"
        "for pin in sys.argv[1:]:\n"
        "    req = Requirement(pin)\n"
        "    assert req.specifier.contains(version(req.name)), (pin, version(req.name))\n"
    )
    run(python, "-c", script, *floors(), timeout=60)


def test_every_module_imports(python: Path) -> None:
    roots = list(PYPROJECT["tool"]["setuptools"]["package-dir"])
    script = (
        "import importlib, pkgutil, sys\n"
        f"for root in {roots!r}:\n"
        "    package = importlib.import_module(root)\n"
        "    for module in pkgutil.walk_packages(package.__path__, root + '.'):\n"
        "        importlib.import_module(module.name)\n"
    )
    run(python, "-c", script, timeout=120)


def test_the_example_configuration_checks(python: Path) -> None:
    proc = run(VENV / "bin" / "bridged", "-c", "packaging/bridged.toml", "--check", timeout=60)
    assert "configuration is valid" in proc.stdout + proc.stderr


def test_the_code_that_uses_each_dependency_passes_its_tests(python: Path) -> None:
    run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SMOKE_TESTS, timeout=600)
