"""802.15.4 link-layer security through the real daemon: no forged, replayed or foreign-key
frame speaks for a paired node.

The real ``bridged`` runs as a subprocess, opening the RCP emulator's pty with pyserial; the
emulated LwM2M nodes on its air secure their frames with their own link key (AES-CCM*, level
5, key identifier mode 1), and the in-repo LwM2M server upstream decodes what the gateway
Sends. A node is paired as a user does it: ``bridgectl pair 802154 <EUI-64> --key link=<hex>``.
What the node took of the gateway's frames is counted at the emulator (``RadioAir``: secured
frames it opened, plaintext ones, refused ones).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiocoap
import pytest
from aiocoap.numbers.codes import Code
from emulators.lwm2m_node import TEMPERATURE, EmulatedNode
from emulators.world import PAN, Daemon, World, node_eui64, node_id

from bridged.objects.builtin import builtin_definitions
from bridged.objects.formats import ContentFormat, codec_for
from bridged.objects.paths import ROOT
from bridged.objects.values import Record
from bridged.transports.ieee802154.link import LowpanLink
from bridged.transports.ieee802154.link_security import SecuritySettings
from bridged.transports.ieee802154.lowpan import UdpDatagram, link_local
from bridged.transports.ieee802154.mac import parse_frame
from bridged.transports.nodes import Secret
from integration.test_154_restart import received as times
from integration.test_154_restart import until
from peers.lwm2m_server import LwM2MTestServer

ENDPOINT = "gw-154-security"
TIMEOUT = 60.0
KEY = bytes.fromhex("5a6967426565416c6c69616e63653039")
OTHER_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


async def refused(daemon: Daemon, node: EmulatedNode, problem: str, above: int) -> int:
    """Wait until ``bridgectl node show`` counts more than ``above`` refused frames of the node,
    for ``problem``; returns the count."""
    shown: dict[str, Any] = {}
    try:
        async with asyncio.timeout(TIMEOUT):
            while True:
                shown = await daemon.ctl_json("node", "show", node_id(node))
                if shown["decrypt_failures"] > above and problem in (shown["problem"] or ""):
                    return int(shown["decrypt_failures"])
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"no refusal for {problem!r}: node show says {shown}") from None


async def measured(node: EmulatedNode, server: LwM2MTestServer, value: float) -> float:
    """The node measures ``value`` and Sends it; returns its time once the server has it."""
    at = float(int(time.time()) - 100) + value / 100
    assert (await node.measure(value, at)).code == Code.CHANGED
    await until(lambda: at in times(server), f"{value} at the server")
    return at


async def paired_keyed_node(world: World, daemon: Daemon, key: bytes = KEY) -> EmulatedNode:
    eui64 = node_eui64(1).hex()
    await daemon.ctl_json("pair", "802154", eui64, "--name", "cellar", "--key", f"link={KEY.hex()}")
    return await world.add_node(1, "cellar", link_key=key)


async def a_keyed_node_that_sent(
    world: World, server: LwM2MTestServer
) -> tuple[Daemon, EmulatedNode, float, list[bytes]]:
    """The daemon started, a node paired with its link key and registered, which then Sent a
    temperature: the daemon, the node, the time of that reading (at the server) and the frames
    of its Send (secured, as recorded on the air)."""
    assert world.air is not None
    daemon = await world.start_daemon(server.uri, endpoint=ENDPOINT)
    node = await paired_keyed_node(world, daemon)
    await asyncio.wait_for(node.registered.wait(), TIMEOUT)
    mark = len(world.air.injected[node.mac])
    first = await measured(node, server, 21.0)
    frames = world.air.injected[node.mac][mark:]
    assert frames and all(parse_frame(f).security is not None for f in frames)
    return daemon, node, first, frames


def forged_send(world: World, node: EmulatedNode, value: float) -> list[bytes]:
    """The frames of a Send of ``value`` in the node's name, from a radio without its key:
    its address, its port, a CoAP POST /dp the node server would take from it."""
    records = [Record(TEMPERATURE, value, time.time() - 50)]
    message = aiocoap.Message(
        code=Code.POST,
        uri_path=("dp",),
        content_format=ContentFormat.SENML_CBOR,
        payload=codec_for(ContentFormat.SENML_CBOR).encode(records, ROOT, builtin_definitions()),
    )
    message.mtype, message.mid, message.token = aiocoap.CON, 0x4242, b"forged"
    gateway = world.rcp.eui64
    datagram = UdpDatagram(node.ip, node.port, link_local(gateway), 5683, message.encode())
    return LowpanLink().send(datagram, src_mac=node.mac, dst_mac=gateway, pan_id=PAN)


@pytest.fixture(autouse=True)
def _short_paths(tmp_path: Path) -> None:
    """Unix socket paths are limited to 107 bytes."""
    assert len(str(tmp_path / "run" / "control.sock")) < 100, tmp_path


async def test_a_keyed_node_is_served_and_forged_or_replayed_frames_are_not(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with World(tmp_path) as world:
        assert world.air is not None
        air = world.air
        daemon, node, first, replayable = await a_keyed_node_that_sent(world, server)
        # The gateway's frames reach the node secured, and the node opened every one.
        assert air.opened[node.mac] > 0 and air.plain[node.mac] == 0
        assert air.refused[node.mac] == []
        # ... secured by the host: the RCP is told not to secure them again.
        to_node = [f for f in world.rcp.sent if parse_frame(f.psdu).dst == node.mac]
        assert to_node and all(f.request.security_processed for f in to_node)

        # A radio that knows the node's address but not its key: its Send goes in the clear.
        for psdu in forged_send(world, node, 99.0):
            world.rcp.inject(psdu)
        failures = await refused(daemon, node, "unsecured frames refused", 0)

        # A recorded secured Send, put on the air again.
        for psdu in replayable:
            world.rcp.inject(psdu)
        failures = await refused(daemon, node, "replayed frames refused", failures)

        # The node goes on; what it Sends after arrives, and nothing forged or replayed did.
        after = await measured(node, server, 22.0)
        got = times(server)
        assert got.count(first) == 1 and after in got
        shown = await daemon.ctl_json("node", "show", node_id(node))
        assert (shown["decrypt_failures"], shown["problem"]) == (failures, None), "taken again"
        assert all(r.value != 99.0 for e in server.history for r in getattr(e, "records", ()))
        assert air.plain[node.mac] == 0 and air.refused[node.mac] == []
        assert await daemon.stop() == 0


async def test_a_replay_after_a_gateway_restart_is_refused(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """Killed (kill -9) and started again, the gateway still refuses the frames it took
    before, and its own frames go on above every counter the node saw from it."""
    async with World(tmp_path) as world:
        assert world.air is not None
        air = world.air
        daemon, node, first, replayable = await a_keyed_node_that_sent(world, server)
        await measured(node, server, 22.0)
        daemon.proc.kill()
        await daemon.proc.wait()

        daemon = await world.start_daemon(server.uri, endpoint=ENDPOINT)
        opened = air.opened[node.mac]
        for psdu in replayable:
            world.rcp.inject(psdu)
        await refused(daemon, node, "replayed frames refused", 0)
        after = await measured(node, server, 23.0)
        assert times(server).count(first) == 1 and after in times(server)
        # The restarted gateway's frames were opened by the node: their counters went on.
        assert air.opened[node.mac] > opened
        assert air.plain[node.mac] == 0 and air.refused[node.mac] == []
        assert await daemon.stop() == 0


async def test_a_node_with_another_key_is_refused_and_counted(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with World(tmp_path) as world:
        daemon = await world.start_daemon(server.uri, endpoint=ENDPOINT)
        eui64 = node_eui64(1).hex()
        # Keys the node cannot have are refused at pairing, in one line.
        for key, why in [("link=abcd", "16 bytes"), (f"bindkey={KEY.hex()}", "one key")]:
            code, _, err = await daemon.ctl("pair", "802154", eui64, "--key", key)
            assert code != 0 and why in err, err
        code, _, err = await daemon.ctl("pair", "802154", "face:0001", "--key", f"link={KEY.hex()}")
        assert code != 0 and "EUI-64" in err, err

        node = await paired_keyed_node(world, daemon, key=OTHER_KEY)
        await refused(daemon, node, "do not verify with its key", 0)
        assert not node.registered.is_set()
        assert ENDPOINT in server.clients
        assert not any(e.kind == "send" for e in server.history)
        assert KEY.hex() not in daemon.log.read_text(), "a key never reaches the log"
        assert await daemon.stop() == 0


async def test_the_network_key_secures_every_node(tmp_path: Path, server: LwM2MTestServer) -> None:
    """With ``network_key`` in [transport.802154], a node paired without a key of its own uses
    the network key, and a node sending in the clear is refused."""
    key_file = tmp_path / "network.key"
    key_file.write_text(KEY.hex() + "\n")
    key_file.chmod(0o640)
    async with World(tmp_path, radio_options=f'network_key_file = "{key_file}"') as world:
        assert world.air is not None
        world.air.security = SecuritySettings(network_key=Secret(KEY))
        daemon = await world.start_daemon(server.uri, endpoint=ENDPOINT)
        await daemon.ctl_json("pair", "802154", node_eui64(1).hex(), "--name", "cellar")
        node = await world.add_node(1, "cellar")
        await asyncio.wait_for(node.registered.wait(), TIMEOUT)
        await measured(node, server, 21.0)
        assert world.air.opened[node.mac] > 0 and world.air.plain[node.mac] == 0

        await daemon.ctl_json("pair", "802154", node_eui64(2).hex(), "--name", "attic")
        world.air.security = SecuritySettings()  # a node without the network key
        clear = await world.add_node(2, "attic")
        await refused(daemon, clear, "unsecured frames refused", 0)
        assert not clear.registered.is_set()
        assert await daemon.stop() == 0
