"""The unit's start limit stops a crash loop and leaves a person's restarts alone.

systemd counts every start of a unit, whoever asks for it, in windows of StartLimitIntervalSec
that open at the first start after the previous window ended, and refuses the start past
StartLimitBurst in one window ("Start request repeated too quickly"; systemd's
``ratelimit_below``). These tests replay timelines of starts against the settings of the unit
in the repository (what the package ships), read with systemd's own parsers: the unit with
``systemd-analyze verify`` (systemd 252, Debian 12, knows every key) and the time spans with
``systemd-analyze timespan``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "packaging" / "bridged.service"
HOUR = 3600.0


def systemd_analyze(*args: str) -> str:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (`make system-deps` as root adds it)")
    proc = subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, check=False, cwd="/"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def setting(key: str) -> str:
    (value,) = re.findall(rf"^{key}=(.*)$", UNIT.read_text(), re.MULTILINE)
    return value


def seconds(key: str) -> float:
    """A time span of the unit as systemd reads it."""
    out = systemd_analyze("timespan", setting(key))
    (usec,) = re.findall(r"μs: (\d+)", out)
    return int(usec) / 1e6


@dataclass(frozen=True)
class StartLimit:
    interval: float
    burst: int
    restart_sec: float

    @classmethod
    def of_the_unit(cls) -> StartLimit:
        return cls(
            seconds("StartLimitIntervalSec"),
            int(setting("StartLimitBurst")),
            seconds("RestartSec"),
        )

    def refused(self, starts: list[float]) -> float | None:
        """When the first start of ``starts`` (times in seconds, in order) is refused."""
        begin, count = None, 0
        for at in starts:
            if begin is None or at - begin > self.interval:
                begin, count = at, 0
            count += 1
            if count > self.burst:
                return at
        return None

    def crash_loop(self, runs_for: float, until: float = HOUR) -> list[float]:
        """The starts of a daemon that exits ``runs_for`` seconds after each start and is
        started again RestartSec later (Restart=on-failure)."""
        return [n * (runs_for + self.restart_sec) for n in range(int(until / self.restart_sec))]


def test_the_unit_verifies_with_every_key_known(tmp_path: Path) -> None:
    """systemd-analyze prints what it does not know (an unknown key is ignored, not refused),
    so an empty output is the check; ExecStart points at a command that exists here."""
    unit = tmp_path / "bridged.service"
    unit.write_text(UNIT.read_text().replace("=/usr/bin/bridged ", "=/bin/true "))
    assert systemd_analyze("verify", "--man=no", str(unit)) == ""


@pytest.mark.parametrize("runs_for", [0.5, 2.0, 5.0])
def test_a_crash_loop_is_stopped_within_a_minute_or_two(runs_for: float) -> None:
    """A daemon that dies within seconds of its start (a Python startup on a Pi included)."""
    limit = StartLimit.of_the_unit()
    refused = limit.refused(limit.crash_loop(runs_for))
    assert refused is not None and refused <= 120, refused


def test_a_daemon_that_ran_a_while_is_restarted_again_and_again() -> None:
    """A crash after a while (a hang the watchdog ends after WatchdogSec) is not a tight loop:
    restarting it keeps the gateway up between crashes."""
    limit = StartLimit.of_the_unit()
    assert limit.refused(limit.crash_loop(runs_for=30.0)) is None


def test_the_readme_edit_then_restart_loop_and_a_reboot_are_not_refused() -> None:
    """What tripped the old limit (5 starts in 300 s) in 2.5 minutes with a correct
    configuration: the boot's start, a person's `systemctl restart` after each edit, and a
    server's Reboot (the daemon exits 75 and systemd starts it RestartSec later)."""
    limit = StartLimit.of_the_unit()
    reboot = 140.0
    starts = [0.0, 30.0, 60.0, 90.0, 120.0, reboot + limit.restart_sec, 170.0]
    assert limit.refused(starts) is None


@pytest.mark.parametrize("every", [13.0, 20.0, 45.0])
def test_a_person_restarting_for_an_hour_is_never_refused(every: float) -> None:
    """Restarts one after the other, as fast as editing a file and typing the command allows."""
    limit = StartLimit.of_the_unit()
    assert limit.refused([n * every for n in range(int(HOUR / every))]) is None
