"""The Debian package, checked as a user gets it.

One build per session (``packaging/build-deb``, what ``make deb`` runs) of a copy of the
checkout whose changelog has a new entry, as a release would (the version has one source),
then: what the .deb holds (the license of every bundled library in its copyright file), its
control fields, lintian, the venv run from an extracted tree on Debian's own interpreter,
``systemd-analyze verify`` on the unit it ships, the maintainer scripts' syntax, and, as root
(CI runs on a throwaway Debian 12), a real ``apt-get install`` and ``purge``.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from fnmatch import fnmatch
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(600)
"""The first test to use ``built`` waits for the whole package build (the venv's pip installs
included): half a minute on an idle machine, several on a loaded CI runner."""

ROOT = Path(__file__).resolve().parents[2]
VENV = "usr/lib/bridged/venv"
UNIT = "systemd/system/bridged.service"
UDEV_RULE = "udev/rules.d/99-bridged-rcp.rules"
"""Under /lib on Debian 12, /usr/lib from Debian 13 on (debhelper follows the release)."""
CONFFILE = "/etc/bridged/bridged.toml"
IS_ROOT = os.geteuid() == 0
BUILD_TOOLS = ("dpkg-buildpackage", "dh", "fakeroot", "help2man")
# Outside a venv and with no PYTHON* variables: what the package's commands see when a user
# runs them.
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def require(*tools: str) -> None:
    """Skip when a tool is missing, unless running as root, where ``make test`` installs it."""
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return
    if IS_ROOT:
        pytest.fail(f"{', '.join(missing)} missing: `make test` as root apt-installs it")
    pytest.skip(f"{', '.join(missing)} not installed (`make system-deps` as root adds it)")


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; its output is in the failure message if it fails.

    It runs in /, so that the checkout's own bridged/ is not importable from the current
    directory.
    """
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, cwd="/", check=False
    )
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@dataclass(frozen=True)
class Built:
    deb: Path
    changes: Path
    build_dir: Path
    tree: Path
    """The .deb's files (``dpkg-deb -x``), a scratch root for running and verifying them."""
    control: Path
    """The .deb's control files (``dpkg-deb -e``): control, conffiles, maintainer scripts."""


def released(checkout: Path) -> str:
    """A copy of the checkout in ``checkout`` with a changelog entry on top of the last one, as
    a maintainer adds for a release (nothing else changes); returns its version."""
    shutil.copytree(
        ROOT,
        checkout,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "node_modules", "__pycache__", "*_cache", ".hypothesis"
        ),
    )
    changelog = checkout / "packaging" / "debian" / "changelog"
    text = changelog.read_text()
    previous = re.match(r"bridged \(([^)]*)\)", text)
    trailer = re.search(r"^ -- (.*?>)  ", text, re.MULTILINE)
    assert previous is not None and trailer is not None, text
    version = previous.group(1) + (".release2" if "+" in previous.group(1) else "+release2")
    entry = (
        f"bridged ({version}) bookworm; urgency=medium\n\n"
        "  * A release: the suite's package build, with a version of its own.\n\n"
        f" -- {trailer.group(1)}  {formatdate()}\n\n"
    )
    changelog.write_text(entry + text)
    return version


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    require(*BUILD_TOOLS)
    out = tmp_path_factory.mktemp("deb")
    checkout = tmp_path_factory.mktemp("checkout") / "bridged"
    released(checkout)
    # As a user's shell runs it: no PYTHON* variables (PYTHONDONTWRITEBYTECODE would hide
    # bytecode the build writes into the venv).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run(
        [str(checkout / "packaging" / "build-deb"), str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, (
        f"the package does not build:\n{proc.stdout[-6000:]}\n{proc.stderr}"
    )
    (deb,) = out.glob("bridged_*.deb")
    (changes,) = out.glob("bridged_*.changes")
    tree, control = out / "tree", out / "control"
    run("dpkg-deb", "-x", deb, tree)
    run("dpkg-deb", "-e", deb, control)
    (build_dir,) = (p for p in out.iterdir() if p.name.startswith("bridged-"))
    return Built(deb, changes, build_dir, tree, control)


def system_lib(built: Built, path: str) -> str:
    """Where the package put ``path`` (``UNIT``, ``UDEV_RULE``): lib/... or usr/lib/..."""
    for prefix in ("lib", "usr/lib"):
        if (built.tree / prefix / path).exists():
            return f"{prefix}/{path}"
    pytest.fail(f"{path} is not in the package, under /lib or /usr/lib")


def control_fields(built: Built) -> dict[str, str]:
    text = (built.control / "control").read_text()
    return dict(re.findall(r"^([\w-]+): (.*)$", text, re.MULTILINE))


def venv_python(built: Built) -> str:
    """The interpreter the venv was made with, e.g. ``python3.11``."""
    return os.readlink(built.tree / VENV / "bin" / "python3")


def test_contents(built: Built) -> None:
    listing = run("dpkg-deb", "-c", built.deb).stdout
    paths = {line.split()[5].removeprefix(".") for line in listing.splitlines()}
    py = venv_python(built)
    for path in (
        f"/{system_lib(built, UNIT)}",
        f"/{system_lib(built, UDEV_RULE)}",
        CONFFILE,
        "/usr/bin/bridged",
        "/usr/bin/bridgectl",
        f"/{VENV}/bin/bridged",
        f"/{VENV}/bin/bridgectl",
        f"/{VENV}/lib/{py}/site-packages/bridged/__init__.py",
        f"/{VENV}/lib/{py}/site-packages/bridged/objects/__init__.py",
        f"/{VENV}/lib/{py}/site-packages/bridged/transports/__init__.py",
        "/usr/share/man/man8/bridged.8.gz",
        "/usr/share/man/man1/bridgectl.1.gz",
        "/usr/share/man/man1/bridgectl-pair.1.gz",
        "/usr/share/bash-completion/completions/bridgectl",
        "/usr/share/zsh/vendor-completions/_bridgectl",
        "/usr/share/doc/bridged/copyright",
    ):
        assert path in paths, f"{path} is not in the package"
    assert paths & {"/usr/share/doc/bridged/README.md", "/usr/share/doc/bridged/README.md.gz"}
    assert (built.control / "conffiles").read_text().split() == [CONFFILE]
    # The commands are the venv's, not copies; no bytecode (postinst compiles it in place);
    # no build tools left in a venv nobody should pip-install into.
    assert os.readlink(built.tree / "usr/bin/bridged") == "../lib/bridged/venv/bin/bridged"
    assert not [p for p in paths if p.endswith(".pyc") or "__pycache__" in p]
    assert not [p for p in paths if re.search(r"/site-packages/(pip|setuptools)/", p)]
    # The staging tree the venv was built in is gone from every script and record.
    leaked = subprocess.run(
        ["grep", "-rlF", str(built.build_dir), str(built.tree)], capture_output=True, text=True
    ).stdout
    assert not leaked, f"build paths left in:\n{leaked}"


def test_bundles_the_runtime_dependencies(built: Built) -> None:
    """Every runtime dependency in pyproject.toml, with the systemd and dtls extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["systemd"]]
    wanted += project["optional-dependencies"]["dtls"]
    names = {re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0].lower() for req in wanted}
    frozen = (built.tree / "usr/share/doc/bridged/venv-packages.txt").read_text().lower()
    bundled = {re.split(r"==| @ ", line)[0].replace("_", "-") for line in frozen.splitlines()}
    assert names <= bundled, f"not in the venv: {names - bundled}"
    assert "aiocoap==0.4.17" in frozen


def test_copyright_names_every_bundled_library(built: Built) -> None:
    """Every file a bundled distribution installed into the venv falls under a stanza of its
    own in debian/copyright, not under bridged's ``Files: *``."""
    copyright_text = (built.tree / "usr/share/doc/bridged/copyright").read_text()
    patterns = [
        p
        for files in re.findall(r"^Files: (.*(?:\n +.*)*)", copyright_text, re.MULTILINE)
        for p in files.split()
        if p != "*"
    ]
    site = built.tree / VENV / "lib" / venv_python(built) / "site-packages"
    uncovered = set()
    for record in site.glob("*.dist-info/RECORD"):
        if record.parent.name.startswith("bridged-"):
            continue
        for line in record.read_text().splitlines():
            path = line.rsplit(",", 2)[0]
            if path.startswith("..") or ".dist-info/" in path or "__pycache__" in path:
                continue
            installed = f"{VENV}/lib/{venv_python(built)}/site-packages/{path}"
            if not any(fnmatch(installed, p) for p in patterns):
                uncovered.add(f"{record.parent.name}: {path.split('/')[0]}")
    assert not uncovered, f"not in debian/copyright: {sorted(uncovered)}"


def test_control_fields(built: Built) -> None:
    fields = control_fields(built)
    assert fields["Package"] == "bridged"
    changelog = (built.build_dir / "packaging" / "debian" / "changelog").read_text()
    assert fields["Version"] == re.findall(r"bridged \(([^)]*)\)", changelog)[0]
    assert "+release2" in fields["Version"] or ".release2" in fields["Version"]
    arch = run("dpkg", "--print-architecture").stdout.strip()
    assert fields["Architecture"] == arch
    depends = [d.strip().split()[0] for d in fields["Depends"].split(",")]
    # The exact interpreter of the venv, the user tools of postinst, and the shared libraries
    # of the venv's compiled modules (libsystemd0 for systemd-python).
    assert venv_python(built) in depends
    assert {"adduser", "libc6", "libsystemd0"} <= set(depends)
    assert set(fields["Recommends"].replace(",", " ").split()) == {"bluez", "dbus"}


def test_lintian_reports_no_errors(built: Built) -> None:
    require("lintian")
    proc = subprocess.run(
        ["lintian", "--fail-on", "error", str(built.changes)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def scratch_root(built: Built) -> Iterator[Path]:
    """The extracted tree with Debian's interpreter where the venv expects it (/usr/bin)."""
    py = venv_python(built)
    link = built.tree / "usr/bin" / py
    link.symlink_to(f"/usr/bin/{py}")
    yield built.tree
    link.unlink()


def test_commands_run_from_the_venv(built: Built, scratch_root: Path) -> None:
    venv = scratch_root / VENV
    python = venv / "bin" / "python3"
    version = control_fields(built)["Version"]
    # The version of the changelog, also the one the gateway's /3/0/3 tells LwM2M servers.
    assert run(python, venv / "bin" / "bridged", "--version", env=CLEAN_ENV).stdout == (
        f"bridged {version}\n"
    )
    firmware = (
        "from bridged.engine.device import MachineFacts, device_resources;"
        "print(device_resources(MachineFacts(time=0))[3])"
    )
    assert run(python, "-c", firmware, env=CLEAN_ENV).stdout == f"{version}\n"
    assert run(python, venv / "bin" / "bridgectl", "--help", env=CLEAN_ENV).stdout.startswith(
        "usage: bridgectl"
    )
    # The venv is self-contained: bridged comes from it, and the compiled modules (DTLSSocket,
    # systemd-python, cbor2's C extension) load on Debian's interpreter.
    check = (
        "import sys, bridged, aiocoap.defaults, bleak, cbor2, serial, DTLSSocket.dtls, OpenSSL.SSL;"
        "import systemd.daemon, systemd.journal;"
        "assert not aiocoap.defaults.dtls_missing_modules();"
        "print(sys.prefix); print(bridged.__file__)"
    )
    prefix, module = run(python, "-c", check, env=CLEAN_ENV).stdout.split()
    assert Path(prefix) == venv
    assert Path(module).is_relative_to(venv)


def tried(bridged: Path | str, *python: Path) -> None:
    """``bridged --try`` (README: try it without radios) shows a working gateway."""
    out = run(*python, bridged, "--try", "--seconds", "4", env=CLEAN_ENV).stdout
    assert "server: bridged-try registered" in out and "bridged exited with status 0" in out
    assert re.search(r"it works: the server received \d+ readings", out), out


def test_try_without_radios_from_the_venv(scratch_root: Path) -> None:
    venv = scratch_root / VENV
    tried(venv / "bin" / "bridged", venv / "bin" / "python3")


def verify_unit(unit: Path, manpath: Path | None) -> None:
    """``systemd-analyze verify``, which prints what it dislikes and still exits 0."""
    require("systemd-analyze")
    env = dict(CLEAN_ENV)
    man = ["--man=no"]
    if manpath is not None and shutil.which("man"):
        env["MANPATH"], man = str(manpath), []
    proc = subprocess.run(
        ["systemd-analyze", "verify", *man, str(unit)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_unit_verifies(built: Built, scratch_root: Path, tmp_path: Path) -> None:
    """The shipped unit, its ExecStart pointed at the extracted command and its man pages."""
    text = (scratch_root / system_lib(built, UNIT)).read_text()
    assert "ExecStart=/usr/bin/bridged --config /etc/bridged/bridged.toml" in text
    unit = tmp_path / "bridged.service"
    unit.write_text(text.replace("=/usr/bin/bridged ", f"={scratch_root}/usr/bin/bridged "))
    verify_unit(unit, scratch_root / "usr/share/man")


def test_unit_is_hardened(built: Built) -> None:
    settings: dict[str, list[str]] = {}
    for line in (built.tree / system_lib(built, UNIT)).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    for key, value in {
        "Type": "notify",
        "User": "bridged",
        "Group": "bridged",
        "SupplementaryGroups": "dialout bluetooth bridged-monitor",
        "StateDirectory": "bridged",
        "RuntimeDirectory": "bridged",
        "RuntimeDirectoryMode": "0751",
        "ConfigurationDirectory": "bridged",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "78",
        "DevicePolicy": "closed",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_BLUETOOTH",
    }.items():
        assert settings.get(key) == [value], key
    assert "WatchdogSec" in settings
    assert "/dev/bridged-rcp rw" in settings["DeviceAllow"]
    # Hiding /dev would hide the dongle.
    assert "PrivateDevices" not in settings


def test_udev_rule_names_the_common_rcp_dongles(built: Built) -> None:
    rules = [
        line
        for line in (built.tree / system_lib(built, UDEV_RULE)).read_text().splitlines()
        if line and not line.startswith("#")
    ]
    matches = [r for r in rules if 'SYMLINK+="bridged-rcp"' in r]
    ids = {tuple(re.findall(r'ENV\{ID_(?:VENDOR|MODEL)_ID\}=="(\w+)"', r)) for r in matches}
    assert {("1915", "cafe"), ("10c4", "ea60"), ("0451", "16a8"), ("0451", "bef3")} <= ids
    for rule in matches:
        assert 'GROUP="dialout"' in rule and 'MODE="0660"' in rule, rule
        # ModemManager's AT probes would garble the Spinel stream.
        assert 'ENV{ID_MM_DEVICE_IGNORE}="1"' in rule, rule
    assert rules[0] == 'ACTION=="remove", GOTO="bridged_rcp_end"'
    assert rules[-1] == 'LABEL="bridged_rcp_end"'


def test_maintainer_scripts_parse(built: Built) -> None:
    scripts = [built.control / s for s in ("postinst", "prerm", "postrm")]
    for script in scripts:
        assert script.read_text().startswith("#!/bin/sh\n"), script.name
        run("sh", "-n", script)
    # The debhelper snippets made it in: enabling the unit (deb-systemd-helper) and starting it
    # only where systemd runs (deb-systemd-invoke behind /run/systemd/system).
    postinst = scripts[0].read_text()
    assert "deb-systemd-helper" in postinst and "deb-systemd-invoke" in postinst
    assert "systemctl start" not in postinst


# --- install onto the machine, as root --------------------------------------------------------


SCRATCH = ("/var/tmp", "/var/cache/bridged-release", "/var/cache/bridged-pip")
"""Where the test tooling, not the package, writes while this test runs: other tests' temporary
directories and ``packaging/release-check``'s Debian roots and wheel cache (a root holds its
own /etc/bridged...). A release-check or a test running beside this one made the scan see
paths come and go that no package file list can hold; a Debian package never writes there."""


def named_bridged() -> set[str]:
    """Every path under the system directories with "bridged" in it, the tooling's scratch
    places (``SCRATCH``) left out."""
    dirs = [d for d in ("/etc", "/usr", "/lib", "/var", "/run") if Path(d).is_dir()]
    pruned: list[str] = []
    for place in SCRATCH:
        pruned += ["-path", place, "-prune", "-o"]
    found = subprocess.run(
        ["find", *dirs, "-xdev", *pruned, "-path", "*bridged*", "-print"],
        capture_output=True,
        text=True,
    ).stdout
    return set(found.split())


def apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**CLEAN_ENV, "DEBIAN_FRONTEND": "noninteractive"}
    return run("apt-get", "-y", "-o", "DPkg::Lock::Timeout=300", *args, env=env)


def installed() -> bool:
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", "bridged"], capture_output=True, text=True
    ).stdout
    return status.endswith(" installed")


def test_install_and_purge(built: Built) -> None:
    if not IS_ROOT:
        pytest.skip("installs the package onto the machine: root only (CI's throwaway Debian 12)")
    if subprocess.run(["dpkg-query", "-W", "bridged"], capture_output=True).returncode == 0:
        pytest.skip("a bridged package is already on this machine: not the suite's to purge")
    require("apt-get", "systemd-analyze")
    before = named_bridged()
    had_bluetooth = any(g.gr_name == "bluetooth" for g in grp.getgrall())
    try:
        # Nothing but the .deb itself is installed: everything it needs is already there.
        out = apt_get("install", "--no-install-recommends", str(built.deb)).stdout
        assert "0 upgraded, 1 newly installed" in out, out
        user = pwd.getpwnam("bridged")
        assert user.pw_dir == "/var/lib/bridged" and user.pw_uid < 1000
        assert grp.getgrgid(user.pw_gid).gr_name == "bridged"
        grp.getgrnam("dialout"), grp.getgrnam("bluetooth"), grp.getgrnam("bridged-monitor")
        conf = os.stat(CONFFILE)
        assert (conf.st_mode & 0o777, conf.st_uid, conf.st_gid) == (0o640, 0, user.pw_gid)
        version = run("/usr/bin/bridged", "--version", env=CLEAN_ENV).stdout
        assert version.strip() == f"bridged {control_fields(built)['Version']}"
        run("/usr/bin/bridgectl", "--help", env=CLEAN_ENV)
        tried("/usr/bin/bridged")
        assert list(Path(f"/{VENV}").rglob("__pycache__")), "postinst compiled no bytecode"
        assert Path("/etc/systemd/system/multi-user.target.wants/bridged.service").is_symlink()
        verify_unit(Path(f"/{system_lib(built, UNIT)}"), None)

        apt_get("purge", "bridged")
        with pytest.raises(KeyError):
            pwd.getpwnam("bridged")
        with pytest.raises(KeyError):
            grp.getgrnam("bridged")
        with pytest.raises(KeyError):
            grp.getgrnam("bridged-monitor")
        has_bluetooth = any(g.gr_name == "bluetooth" for g in grp.getgrall())
        assert has_bluetooth == had_bluetooth
        assert named_bridged() == before
    finally:
        if installed():
            apt_get("purge", "bridged")
