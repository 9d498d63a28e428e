"""``bridgectl node update NODE FILE``, a local firmware update, end to end: bridgectl in a
process of its own, the real gateway (the simulated transport) serving a real control socket,
the in-repo LwM2M server observing the node's /5. The update takes the server's path (the same
state machine), so the server sees it as it would its own push and Execute; what the node got
is read from the node."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from emulators.mcuboot import image
from firmware_view import DOWNLOADING, FULL_WALK, IDLE, TIMEOUT, UPDATING

from bridged.control import ControlServer
from bridged.protocol import UPLOAD_CHUNK
from bridged.trial import bridgectl
from integration.test_firmware import NODE, Updatable, updatable
from integration.test_firmware_154 import NODE as NODE_154
from integration.test_firmware_154 import updatable as over_the_air
from peers.lwm2m_server import LwM2MTestServer

CONNECTION_LOST = 4
WALK = [(IDLE, 0), (DOWNLOADING, 0), (UPDATING, 0), (IDLE, 1)]


@contextlib.asynccontextmanager
async def controlled(
    tmp_path: Path, server: LwM2MTestServer, *, max_size: int = 200_000
) -> AsyncIterator[tuple[Updatable, Path]]:
    async with updatable(tmp_path, server, "gateway", max_size=max_size) as up:
        control = ControlServer(up.gw, tmp_path / "run" / "control.sock")
        await control.start()
        try:
            yield up, control.path
        finally:
            await control.stop()


async def node_update(socket: Path, node: object, file: Path, *flags: str) -> tuple[int, str, str]:
    return await bridgectl(socket, "node", "update", *flags, str(node), str(file))


def package_dir(up: Updatable) -> Path:
    return up.gw.config.gateway.state_dir / "firmware"


async def test_a_file_updates_the_node_as_a_servers_push_would(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """More than one chunk: the node runs exactly the file, and the server observed the
    whole walk, Idle to Idle with Update Result 1."""
    package = image((7, 1, 0, 3), 3 * UPLOAD_CHUNK + 1_000)
    (tmp_path / "fw.bin").write_bytes(package)
    async with controlled(tmp_path, server) as (up, socket):
        code, out, err = await node_update(socket, NODE, tmp_path / "fw.bin")
        assert (code, err) == (0, "")
        assert hashlib.sha256(up.node.firmware).hexdigest() == hashlib.sha256(package).hexdigest()
        await up.fw.until(IDLE, 1)
        # Downloaded lasts no longer than the Execute that follows it at once: the server's
        # observation of /5/0/3 may or may not catch it.
        assert up.fw.went(WALK) or up.fw.went(FULL_WALK)
        assert out.splitlines()[-1] == f"{NODE}: idle, result 1 success, 7.1.0+3"
        code, out, err = await bridgectl(socket, "--json", "node", "show", str(NODE))
        assert json.loads(out)["firmware"]["version"] == "7.1.0+3"


async def test_json_shows_the_progress_in_bytes(tmp_path: Path, server: LwM2MTestServer) -> None:
    package = image((7, 2, 0, 0), 2 * UPLOAD_CHUNK)
    (tmp_path / "fw.bin").write_bytes(package)
    async with controlled(tmp_path, server) as (_, socket):
        code, out, err = await node_update(socket, NODE, tmp_path / "fw.bin", "--json")
        assert code == 0, err
        seen = [json.loads(line) for line in out.splitlines()]
        uploaded = [e["sent"] for e in seen if e["state"] == "downloading" and e["sent"]]
        assert uploaded == [*range(UPLOAD_CHUNK, len(package), UPLOAD_CHUNK), len(package)]
        assert all(e["total"] == len(package) for e in seen if e["sent"] is not None)
        assert (seen[-1]["state"], seen[-1]["result"]) == ("idle", 1)


async def test_a_file_too_big_is_refused_before_anything_is_sent(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    package = image((1, 0, 0, 0), 12_000)
    (tmp_path / "fw.bin").write_bytes(package)
    async with controlled(tmp_path, server, max_size=10_000) as (up, socket):
        code, _, err = await node_update(socket, NODE, tmp_path / "fw.bin")
        assert code == 1
        assert f"{len(package)} bytes; at most 10000 are kept" in err and "(4.13)" in err
        assert up.fw.states == [(IDLE, 0)]  # the server saw nothing happen
        assert not package_dir(up).exists() or not any(package_dir(up).iterdir())
        assert up.node.firmware == b""


async def test_an_unknown_node_or_a_missing_file_is_a_clear_error(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    (tmp_path / "fw.bin").write_bytes(image((1, 0, 0, 0)))
    async with controlled(tmp_path, server) as (up, socket):
        code, _, err = await node_update(socket, "sim:0099", tmp_path / "fw.bin")
        assert (code, err.strip()) == (1, "bridgectl: node sim:0099 is not paired (4.04)")
        code, _, err = await node_update(socket, NODE, tmp_path / "no")
        assert (code, err.strip()) == (
            2,
            f"bridgectl: {tmp_path / 'no'}: No such file or directory",
        )
        assert up.fw.states == [(IDLE, 0)]


async def test_an_upload_cut_midway_leaves_the_node_idle_and_nothing_kept(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """bridgectl dies after its first chunk (its connection ends): the server sees the
    download fail (Idle, Connection lost), no package is kept, and a new update works."""
    package = image((2, 0, 0, 0), 3 * UPLOAD_CHUNK)
    async with controlled(tmp_path, server) as (up, socket):
        reader, writer = await asyncio.open_unix_connection(str(socket))

        async def call(method: str, **params: object) -> dict[str, object]:
            writer.write(json.dumps({"id": 1, "method": method, "params": params}).encode() + b"\n")
            answer: dict[str, object] = json.loads(await reader.readline())
            result = answer["result"]
            assert isinstance(result, dict)
            return result

        sha256 = hashlib.sha256(package).hexdigest()
        begun = await call("node.update", node=str(NODE), size=len(package), sha256=sha256)
        chunk = base64.b64encode(package[:UPLOAD_CHUNK]).decode()
        await call(
            "node.update_chunk", node=str(NODE), upload=begun["upload"], offset=0, data=chunk
        )
        await up.fw.until(DOWNLOADING, 0)
        writer.close()
        await writer.wait_closed()
        await up.fw.until(IDLE, CONNECTION_LOST)
        assert not any(package_dir(up).iterdir())
        assert up.gw.firmware.status(NODE)["state"] == "idle"  # type: ignore[index]
        (tmp_path / "fw.bin").write_bytes(package)
        code, _, err = await node_update(socket, NODE, tmp_path / "fw.bin")
        assert code == 0, err
        assert up.node.firmware == package
        assert up.fw.went([(IDLE, CONNECTION_LOST), *WALK[1:]])


async def test_bridgectl_killed_mid_upload_leaves_the_node_idle(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """A real bridgectl, killed once the daemon took its first chunk of a 100-chunk file."""
    package = image((2, 1, 0, 0), 100 * UPLOAD_CHUNK)
    (tmp_path / "fw.bin").write_bytes(package)
    async with controlled(tmp_path, server, max_size=len(package)) as (up, socket):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridged.cli", "--socket", str(socket), "node", "update",
            str(NODE), str(tmp_path / "fw.bin"), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            async with asyncio.timeout(TIMEOUT):
                while up.gw.firmware.progress.get(NODE, (0, 0))[0] == 0:
                    await asyncio.sleep(0.001)
        finally:
            proc.kill()
            await proc.wait()
        await up.fw.until(IDLE, CONNECTION_LOST)
        assert not any(package_dir(up).iterdir())
        assert up.node.firmware == b""


async def test_no_wait_returns_once_the_file_is_taken(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    package = image((3, 0, 0, 0))
    (tmp_path / "fw.bin").write_bytes(package)
    async with controlled(tmp_path, server) as (up, socket):
        code, out, err = await node_update(socket, NODE, tmp_path / "fw.bin", "--no-wait")
        assert code == 0, err
        assert out.startswith(f"{NODE}: {len(package)} bytes taken, ")
        await up.fw.until(IDLE, 1)
        assert up.node.firmware == package


async def test_a_file_updates_an_802154_node_over_the_air(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The real daemon, the RCP emulator's LwM2M node pulling the image over 6LoWPAN."""
    package = image((2, 5, 0, 1), 5_000)
    (tmp_path / "fw.bin").write_bytes(package)
    async with over_the_air(tmp_path, server, "gateway", delivery=0) as up:
        code, out, err = await up.daemon.ctl(
            "node", "update", NODE_154, str(tmp_path / "fw.bin"), timeout=150
        )
        assert code == 0, err
        assert hashlib.sha256(up.node.firmware).hexdigest() == hashlib.sha256(package).hexdigest()
        await up.fw.until(IDLE, 1)
        assert up.fw.went(WALK) or up.fw.went(FULL_WALK)
        assert out.splitlines()[-1] == f"{NODE_154}: idle, result 1 success, 2.5.0+1"


async def test_a_sleepy_nodes_update_is_a_pending_command_with_its_progress(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """The update of a sleepy node waits for its wake: ``bridgectl commands`` lists it
    meanwhile, with its progress, and no more once it is applied."""
    package = image((8, 1, 0, 0), 4_000)
    (tmp_path / "fw.bin").write_bytes(package)
    async with over_the_air(
        tmp_path, server, "gateway", delivery=0, sleepy=True, radio="awake_window = 2"
    ) as up:
        async with asyncio.timeout(TIMEOUT):
            while (await up.daemon.ctl_json("node", "show", NODE_154))["reachable"]:
                await asyncio.sleep(0.2)
        code, out, err = await up.daemon.ctl(
            "node", "update", "--no-wait", NODE_154, str(tmp_path / "fw.bin")
        )
        assert code == 0, err
        await up.fw.until(UPDATING, 0)
        (pending,) = await up.daemon.ctl_json("commands", NODE_154)
        assert (pending["kind"], pending["path"]) == ("firmware", "/5/0/2")
        assert pending["firmware"]["state"] == "updating"
        code, out, err = await up.daemon.ctl("commands")
        (line,) = [line for line in out.splitlines() if NODE_154 in line]
        assert line.split()[1:5] == [NODE_154, "/5/0/2", "firmware", "updating,"], line
        assert up.node.package == b""  # asleep: nothing was asked of it yet
        await up.node.update()  # it wakes
        await up.fw.until(IDLE, 1, timeout=120)
        assert up.node.firmware == package
        assert await up.daemon.ctl_json("commands", NODE_154) == []
