"""What setuptools cannot read from pyproject.toml alone: the version and the packages.

The version of bridged has one source, the top entry of packaging/debian/changelog.

Debian's tools read the package's version from there (dpkg-buildpackage, the .deb's Version),
and setuptools takes the distribution's version from here (pyproject.toml declares it dynamic),
which is what ``bridged --version``, ``bridgectl --version`` and the gateway's Firmware Version
(/3/0/3) report: a new changelog entry is all a release takes. The version must be one that
Python and Debian write alike (``0.2.0``, ``0.2.0+deb12u1``), so that the program says exactly
what ``dpkg -l`` shows.

The packages are found, not listed: the repository keeps the three import packages in three
top-level folders (pyproject.toml's ``package-dir``: ``bridged.objects`` is objects/), which
setuptools' own discovery cannot map (it names a package after its folder), so every folder
under each of them that holds an ``__init__.py`` is a package of the distribution. A new
``transports/<name>/`` lands in the wheel and the .deb with no edit here.
"""

import re
import tomllib
from pathlib import Path

from setuptools import find_packages, setup

TOP = Path(__file__).resolve().parent
CHANGELOG = TOP / "packaging" / "debian" / "changelog"
# PEP 440's normalized form, without epochs: what Python keeps as it is written.
PYTHON_VERSION = re.compile(
    r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?(\+[a-z0-9]+(\.[a-z0-9]+)*)?"
)


def changelog_version() -> str:
    first = CHANGELOG.read_text(encoding="utf-8").partition("\n")[0]
    match = re.match(r"bridged \(([^)]*)\) ", first)
    if match is None:
        raise SystemExit(f"{CHANGELOG}: the first line names no version: {first!r}")
    version = match.group(1)
    if not PYTHON_VERSION.fullmatch(version):
        raise SystemExit(
            f"{CHANGELOG}: version {version!r} is not written the same in Python (PEP 440) and "
            "Debian: use digits and dots, a/b/rc, .postN, .devN, +local (0.2.0, 0.2.0+deb12u1)"
        )
    return version


def packages() -> list[str]:
    """Each package-dir root and every package below it, under the root's import name."""
    pyproject = tomllib.loads((TOP / "pyproject.toml").read_text(encoding="utf-8"))
    roots: dict[str, str] = pyproject["tool"]["setuptools"]["package-dir"]
    found = []
    for name, folder in roots.items():
        found += [name, *(f"{name}.{sub}" for sub in find_packages(str(TOP / folder)))]
    return sorted(found)


setup(version=changelog_version(), packages=packages())
