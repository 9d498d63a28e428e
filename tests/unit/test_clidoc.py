"""bridgectl's completions and manual pages, generated from its parser: bash completes what
the parser declares (run in a real bash), every command has a page groff reads without a
warning, and the zsh function names every command."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bridged import clidoc
from bridged.cli import build_parser


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clidoc")
    assert clidoc.main([str(out), "--version", "9.9"]) == 0
    return out


COMMANDS = [c.name for c in clidoc.describe(build_parser()).actions]


def test_the_commands_are_the_parsers() -> None:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert list(sub.choices) == COMMANDS  # type: ignore[attr-defined]
    assert {"status", "pair", "permit-join", "events"} <= set(COMMANDS)


def complete(written: Path, line: str) -> list[str]:
    """What bash offers for ``line`` (the word under the cursor is its last, maybe empty)."""
    words = line.split(" ")
    script = (
        f"source {written / 'bash-completion' / 'bridgectl'}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_bridgectl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    return sorted(w for w in out.stdout.splitlines() if w)


def test_bash_completes_commands_actions_and_options(written: Path) -> None:
    assert complete(written, "bridgectl st") == ["start", "status", "stop"]
    assert complete(written, "bridgectl --json no") == ["node", "nodes"]
    assert complete(written, "bridgectl node ") == ["show", "update"]
    assert complete(written, "bridgectl node show sim:1 --j") == ["--json"]
    assert "--bindkey" in complete(written, "bridgectl pair ble A4:C1:38:00:11:22 --")
    assert complete(written, "bridgectl permit-join 60 --w") == ["--wait"]
    assert complete(written, "bridgectl --timeout 5 observe ") == ["list"]
    assert complete(written, "bridgectl scan --seconds ") == [], "a value, not a word"


def test_a_man_page_per_command_that_groff_reads_cleanly(written: Path) -> None:
    man = written / "man"
    assert sorted(p.name for p in man.iterdir()) == sorted(
        ["bridgectl.1", *(f"bridgectl-{c}.1" for c in COMMANDS)]
    )
    pair = (man / "bridgectl-pair.1").read_text()
    assert pair.startswith('.TH BRIDGECTL-PAIR 1 "" "bridgectl 9.9"')
    assert "\\fB\\-\\-bindkey\\fR \\fIHEX\\fR" in pair
    overview = (man / "bridgectl.1").read_text()
    for c in COMMANDS:
        assert "\\fBbridgectl\\-" + c.replace("-", "\\-") + "\\fR(1)" in overview
    if shutil.which("groff") is None:
        return
    for page in man.iterdir():
        run = subprocess.run(
            ["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True
        )
        assert (run.returncode, run.stderr) == (0, ""), page.name
    text = subprocess.run(
        ["groff", "-man", "-Tutf8", str(man / "bridgectl-node.1")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "show" in text and "transport:address" in text


def test_zsh_completes_every_command(written: Path) -> None:
    text = (written / "zsh" / "_bridgectl").read_text()
    assert text.startswith("#compdef bridgectl\n")
    for command in COMMANDS:
        assert f"'{command}:" in text
    assert "_bridgectl_node_show() {" in text
    if shutil.which("zsh") is not None:
        subprocess.run(["zsh", "-n", str(written / "zsh" / "_bridgectl")], check=True)
