"""The verb table drives both ends: the control socket serves exactly its methods, with their
access, and bridgectl offers exactly its commands, each sending its method; a transport's
pairing options reach ``bridgectl pair`` from its declaration alone.

bridgectl runs against a scripted socket (test_cli's), the socket's side over a stand-in
gateway that records the call; tests/integration/test_control_socket.py adds a verb to the
table and runs it through a real gateway and socket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from base64 import b64encode
from pathlib import Path as FsPath
from typing import Any

import pytest

from bridged import cli, verbs
from bridged.control import REFUSED, Connection, ControlServer, Params, Peer, ProtocolError
from bridged.protocol import UPLOAD_CHUNK
from bridged.verb import (
    ASSIGNMENTS,
    DATA,
    FILE,
    KEYS,
    NODE,
    PATH,
    PATHS,
    REQUIRED,
    SERVER,
    VALUE,
    WORDS,
    Flag,
    Number,
    Param,
    Switch,
    Verb,
)

from .test_cli import ScriptedDaemon, run
from .test_control import _Writer

SAMPLES: dict[Any, list[str]] = {
    NODE: ["sim:1"],
    PATH: ["/3"],
    PATHS: ["/3/0/0"],
    VALUE: ["x"],
    FILE: [__file__],
}
"""A value bridgectl takes for a required argument of each kind (text: ``x``)."""


def argv_for(verb: Verb) -> list[str]:
    """bridgectl's words for ``verb`` with its required arguments."""
    words = [w for w in verb.words if not w.startswith("--")]
    flags = [w for w in verb.words if w.startswith("--")]
    for param in verb.params:
        if param.positional and param.default is REQUIRED:
            words += SAMPLES.get(param.kind, ["x"])
    return words + flags


CLI_VERBS = [v for v in verbs.VERBS if v.words]


@pytest.fixture
def socket_path(tmp_path: FsPath) -> FsPath:
    return tmp_path / "control.sock"


def test_the_socket_serves_exactly_the_tables_methods() -> None:
    server = ControlServer(object(), FsPath("/nonexistent/control.sock"))  # type: ignore[arg-type]
    assert server.methods == sorted(v.method for v in verbs.VERBS)
    assert len({v.method for v in verbs.VERBS}) == len(verbs.VERBS), "one declaration each"


def test_bridgectls_commands_are_exactly_the_tables() -> None:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert set(sub.choices) == {v.words[0] for v in CLI_VERBS}  # type: ignore[attr-defined]
    spelled = {" ".join(v.words) for v in CLI_VERBS}
    assert len(spelled) == len(CLI_VERBS), "no two verbs spelled alike"


@pytest.mark.parametrize("verb", CLI_VERBS, ids=lambda v: v.method)
def test_each_command_sends_its_verbs_method(socket_path: FsPath, verb: Verb) -> None:
    d = ScriptedDaemon(
        socket_path, lambda r: [{"id": r["id"], "error": {"code": 1, "message": "no"}}]
    )
    try:
        code, _, err = run(socket_path, *argv_for(verb))
    finally:
        d.close()
    assert code == cli.EXIT_FAILED, err
    assert d.requests[-1]["method"] == verb.method
    wire = {p.name for p in verb.wire_params()}
    assert set(d.requests[-1]["params"]) <= wire, "only the params the verb declares"


def test_the_socket_only_verbs_are_declared_so() -> None:
    assert [v.method for v in verbs.VERBS if not v.words] == [
        "node.update_chunk",
        "node.update_finish",
        "unsubscribe",
    ]
    assert all(v.run is not None for v in CLI_VERBS if v.streams), "a stream is shown live"


class _Gateway:
    """Any gateway call: recorded, and nothing to say."""

    def __init__(self) -> None:
        self.called: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        self.called.append(name)
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return {}


@pytest.mark.parametrize("verb", verbs.VERBS, ids=lambda v: v.method)
async def test_the_monitor_socket_refuses_exactly_the_verbs_that_change(verb: Verb) -> None:
    gateway = _Gateway()
    server = ControlServer(gateway, FsPath("/nonexistent/control.sock"))  # type: ignore[arg-type]
    writer = _Writer()
    conn = Connection(writer, Peer(1, 0, 0), read_only=True)  # type: ignore[arg-type]
    request = {"id": 1, "method": verb.method, "params": {}}
    await server.handle(json.dumps(request).encode(), conn)
    await server.end_subscription(conn)  # subscribe's forwarder, of a stand-in event hub
    (answer,) = writer.lines[-1:]
    refused = answer.get("error", {}).get("code") == REFUSED
    assert refused is verb.changes, answer
    if verb.changes:
        assert gateway.called == [], "refused before any gateway call"


def test_every_kind_reads_what_bridgectl_sends() -> None:
    """The kinds a table param may have each take a command-line value and send it as the
    request's (or keep it to bridgectl)."""
    kinds = {type(p.kind) for v in verbs.VERBS for p in v.params}
    known = {
        type(k) for k in (NODE, PATH, PATHS, VALUE, WORDS, ASSIGNMENTS, KEYS, SERVER, DATA, FILE)
    }
    assert kinds - known <= {Number, Flag, Switch, type(verbs.TEXT), type(verbs.MAPPING)}
    assert Param("x", ASSIGNMENTS).kind.to_wire(["5550=1"]) == {"5550": "1"}
    assert Param("x", KEYS).kind.to_wire(["link=00ff"]) == {"link": "00ff"}


def test_a_chunk_of_a_file_is_base64_and_bounded() -> None:
    data = Param("data", DATA)
    chunk = bytes(range(256)) * (UPLOAD_CHUNK // 256)
    assert data.kind.read(Params({"data": b64encode(chunk).decode()}, ("data",)), data) == chunk
    for bad, why in (
        ("not base64!", "is not base64"),
        (b64encode(chunk + b"x").decode(), "at most"),
    ):
        with pytest.raises(ProtocolError, match=why):
            data.kind.read(Params({"data": bad}, ("data",)), data)


# -- a transport's pairing options -----------------------------------------------------------

RADIO = """
from bridged.transports.pairing import Pairing, PairingFlag, PairingKey

PAIRING = Pairing(
    keys=(PairingKey("netkey", 16, "its network key", label="a network key", option=True),),
    flags=(PairingFlag("commission", "commission it first", profile="commissioned"),),
)
"""


@pytest.fixture
def radio(tmp_path: FsPath) -> dict[str, str]:
    """A transport installed as a distribution of its own that declares a key and a flag,
    as its package and entry point on PYTHONPATH: bridgectl is not edited for it."""
    site = tmp_path / "site"
    (site / "fakeradio").mkdir(parents=True)
    (site / "fakeradio" / "__init__.py").write_text(textwrap.dedent(RADIO))
    info = site / "fakeradio-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeradio\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[bridged.pairing]\nfake = fakeradio:PAIRING\n")
    path = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path}


def bridgectl(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridged.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_a_transports_declared_options_are_in_pair_help(radio: dict[str, str]) -> None:
    text = bridgectl(radio, "pair", "--help").stdout
    assert "--netkey HEX" in text and "fake: its network key" in text
    assert "--commission" in text and "fake: commission it first" in text
    assert "--bindkey HEX" in text and "ble: its BTHome bind key" in text


def test_a_transports_declared_options_are_sent_and_checked(
    radio: dict[str, str], socket_path: FsPath
) -> None:
    d = ScriptedDaemon(socket_path, lambda r: [{"id": r["id"], "result": {"id": "fake:01"}}])
    try:
        key = "00112233445566778899AABBCCDDEEFF"
        done = bridgectl(
            radio, "--socket", str(socket_path), "pair", "fake", "01", "--netkey", key,
            "--commission",
        )  # fmt: skip
        short = bridgectl(radio, "--socket", str(socket_path), "pair", "fake:01", "--netkey", "0a")
        named = bridgectl(
            radio, "--socket", str(socket_path), "pair", "fake:1", "--key", "netkey=0a"
        )
        other = bridgectl(radio, "--socket", str(socket_path), "pair", "ble:A4", "--commission")
    finally:
        d.close()
    assert done.returncode == 0, done.stderr
    assert d.requests[0]["params"] == {
        "node": "fake:01",
        "profile": "commissioned",
        "sleepy": False,
        "netkey": key.lower(),
        "options": {"commission": True},
    }
    assert short.returncode == cli.EXIT_USAGE
    assert "--netkey: a network key is 16 bytes (32 hex digits)" in short.stderr
    assert "0a" not in short.stderr, "a key is never echoed"
    assert named.returncode == cli.EXIT_USAGE, "its --key too"
    assert "--key netkey: a network key is 16 bytes" in named.stderr
    assert other.returncode == cli.EXIT_USAGE
    assert "--commission is for fake nodes, not ble" in other.stderr
    assert len(d.requests) == 1, "nothing sent for a refused one"
