"""The wheel holds every package of the source tree, a folder added to it too.

The three import packages live in three top-level folders (pyproject.toml's ``package-dir``)
and setup.py finds the packages below them: a transport added as a new ``transports/<name>/``
must reach the wheel (and so the .deb, whose venv pip-installs the same build) with no edit
to the packaging. The wheel is built as pip builds it for a user, from a copy of the checkout
that has such a new folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
ROOTS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
"""Import name of each top-level folder: ``bridged.objects`` is objects/."""


def sources(checkout: Path) -> dict[str, Path]:
    """Every module and package-data file of the tree, by its path in an installed layout."""
    found: dict[str, Path] = {}
    package_data: dict[str, list[str]] = PYPROJECT["tool"]["setuptools"]["package-data"]
    for name, folder in ROOTS.items():
        top = checkout / folder
        for init in top.rglob("__init__.py"):
            package = init.parent
            installed = "/".join([*name.split("."), *package.relative_to(top).parts])
            dotted = installed.replace("/", ".")
            patterns = ["*.py", *package_data.get(dotted, [])]
            for pattern in patterns:
                for f in package.glob(pattern):
                    found[f"{installed}/{f.name}"] = f
    return found


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout with a transport folder that no configuration names."""
    tree = tmp_path_factory.mktemp("checkout") / "bridged"
    shutil.copytree(
        ROOT,
        tree,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "node_modules",
            "__pycache__",
            "*_cache",
            ".hypothesis",
            "*.egg-info",
        ),
    )
    probe = tree / "transports" / "probe"
    probe.mkdir()
    (probe / "__init__.py").write_text('"""A transport the packaging was not told of."""\n')
    (probe / "radio.py").write_text("FREQUENCY = 1\n")
    return tree


@pytest.fixture(scope="module")
def wheel(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The names in the wheel pip builds of the copy (setuptools from pip's cache)."""
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), "."],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    (built,) = out.glob("bridged-*.whl")
    with zipfile.ZipFile(built) as archive:
        return set(archive.namelist())


def test_every_module_and_package_data_file_is_in_the_wheel(
    checkout: Path, wheel: set[str]
) -> None:
    expected = sources(checkout)
    assert "bridged/objects/py.typed" in expected
    assert "bridged/transports/ble/transport.py" in expected
    missing = sorted(set(expected) - wheel)
    assert not missing, f"not in the wheel: {missing}"


def test_a_new_transport_folder_lands_in_the_wheel(wheel: set[str]) -> None:
    assert {"bridged/transports/probe/__init__.py", "bridged/transports/probe/radio.py"} <= wheel


def test_the_wheel_holds_nothing_but_the_packages(wheel: set[str]) -> None:
    """No other folder of the checkout (tests/ has packages too) is shipped as code."""
    tops = {name.split("/")[0] for name in wheel}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"bridged"}
