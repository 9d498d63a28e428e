"""A deliberate stop is not the end of a node's fault either: the real daemon stopped by
SIGTERM and started again with a node's fault present.

What is checked is what a server reads of the gateway's /20/0/4014 after each restart
(decoded by the server's own code) and what the log of the stopped run says: the stop clears
nothing, the next start raises nothing again while the fault goes on, and the node found well
again clears it.

* A node not heard: the simulated transport with one node on its air (``sim:0001``) and a
  second paired node that is not (``sim:0002``), unavailable once its one-second timeout
  passes (7, unreachable).
* A node's own Error Code: an emulated 802.15.4 LwM2M node on the RCP emulator's air Sends
  its /3/0/11 (5, out of memory). The restarted gateway forgot it: the node's next Send of
  the same code was raised a second time, and its Send of 0 then cleared one of the two.
* An 802.15.4 node's frames refused (16): a restart knows no more of them than the fault kept,
  and the radio going down (which puts every node out of reach) is no evidence that the node's
  frames are taken again: it was logged cleared.
* A node unpaired with its fault raised: nothing would ever clear it, so its removal does
  (the reason saying so), and the next start does not raise it again.
* A kill -9 before the node's health was kept: the log has the fault raised, the health the
  next start begins from does not (the unreachable node, raised again once its timeout had
  passed again).
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from emulators.world import World, node_eui64, node_id

from bridged.faults import RADIO_DOWN
from bridged.health import DATA_REFUSED, NO_ERROR, REMOVED, UNREACHABLE
from bridged.objects.ids import SINGLE, Device
from bridged.objects.paths import Path as LwPath
from bridged.objects.values import Record
from bridged.store.faultlog import FaultEntry, FaultLogStore
from integration.test_154_security import ENDPOINT as KEYED_ENDPOINT
from integration.test_154_security import a_keyed_node_that_sent, forged_send, refused
from integration.test_daemon import ENDPOINT, Daemon, config_text, running_daemon, until
from integration.test_faults_stop import ENDPOINT as WORLD_ENDPOINT
from integration.test_faults_stop import event_log, faults_logged, start
from integration.test_faults_stop import stop as stop_world
from integration.test_health_restart import registered
from peers.lwm2m_server import LwM2MTestServer

HEARD, SILENT = "sim:0001", "sim:0002"
RAISED = (f"node {SILENT}", "raised", str(UNREACHABLE))
CLEARED = (f"node {SILENT}", "cleared", str(UNREACHABLE))


def config(server: LwM2MTestServer, tmp_path: Path, *, nodes: int) -> str:
    health = "[health]\nminimum = 0.1\n[health.transport]\nsim = 1\n"
    return config_text(server.uri, tmp_path, sim=f"nodes = {nodes}\ninterval = 0.2", extra=health)


async def logged(
    server: LwM2MTestServer, *expected: tuple[str, str, str], endpoint: str = ENDPOINT
) -> None:
    """Until the gateway's /20/0/4014 is ``expected`` (having had a beginning of it)."""

    async def there() -> bool:
        got = await faults_logged(server, endpoint)
        assert got == list(expected[: len(got)]), got
        return got == list(expected)

    await until(there)


async def last_seen(d: Daemon, node: str) -> float:
    shown = await d.call("node.show", node=node)
    assert isinstance(shown, dict)
    return float(shown["last_seen"] or 0.0)


async def heard(d: Daemon, node: str, after: float) -> None:
    """Until ``node`` is heard later than ``after``."""

    async def since() -> bool:
        return await last_seen(d, node) > after

    await until(since)


async def stop(d: Daemon) -> None:
    """SIGTERM; nothing logged from then on says that a fault ended."""
    d.proc.send_signal(signal.SIGTERM)
    assert await d.wait() == 0
    _, stopping = d.log.read_text().split(" __main__: stopping\n")
    assert "cleared" not in stopping and "is available again" not in stopping, stopping


async def silent_node_raised(d: Daemon, server: LwM2MTestServer) -> None:
    """Pair both nodes; until the silent one is logged raised."""
    await registered(server)
    await d.call("pair", node=HEARD, name="porch")
    await d.call("pair", node=SILENT, name="shed")
    await logged(server, RAISED)


async def found_well(tmp_path: Path, server: LwM2MTestServer) -> None:
    """A start with the silent node on the air: heard, it is logged cleared."""
    async with running_daemon(tmp_path, config(server, tmp_path, nodes=2)) as d:
        await registered(server)
        await logged(server, RAISED, CLEARED)
        await stop(d)


async def test_a_node_fault_present_at_a_stop_stays_raised_until_the_node_is_heard(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with running_daemon(tmp_path, config(server, tmp_path, nodes=1)) as d:
        await silent_node_raised(d, server)
        seen = await last_seen(d, HEARD)
        await stop(d)

    async with running_daemon(tmp_path, config(server, tmp_path, nodes=1)) as d:
        await registered(server)
        await heard(d, HEARD, seen)
        assert await faults_logged(server, ENDPOINT) == [RAISED], "the same fault, once"
        await stop(d)

    await found_well(tmp_path, server)


OUT_OF_MEMORY = 5
"""A Core /3/0/11 value that only the node itself can say."""
OWN_ERROR = LwPath((Device.OBJECT, SINGLE, Device.ERROR_CODE, 0))


async def test_a_nodes_own_error_code_present_at_a_stop_stays_raised_until_it_says_0(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    source = f"node 802154:{node_eui64(1).hex()}"
    raised, cleared = (
        (source, "raised", str(OUT_OF_MEMORY)),
        (source, "cleared", str(OUT_OF_MEMORY)),
    )
    async with World(tmp_path) as world:
        daemon = await start(world, server)
        await daemon.ctl_json("pair", "802154", node_eui64(1).hex(), "--name", "n1")
        node = await world.add_node(1, "n1")
        await asyncio.wait_for(node.registered.wait(), 30.0)

        async def says(code: int) -> None:
            response = await node.send([Record(OWN_ERROR, code, time.time())])
            assert response.code.is_successful(), response

        await says(OUT_OF_MEMORY)
        await logged(server, raised, endpoint=WORLD_ENDPOINT)
        await stop_world(daemon, server)
        daemon = await start(world, server)
        await says(OUT_OF_MEMORY)  # still so: the same fault
        await says(NO_ERROR)
        await logged(server, raised, cleared, endpoint=WORLD_ENDPOINT)
        await stop_world(daemon, server)


async def test_a_node_fault_raised_before_a_kill_is_not_raised_again(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """kill -9 before the node's health was kept (it is, at most every minute): the next start
    shows the node available until its timeout passes again, which raised it a second time."""
    async with running_daemon(tmp_path, config(server, tmp_path, nodes=1)) as d:
        await silent_node_raised(d, server)
        d.proc.kill()
        await d.wait()

    async with running_daemon(tmp_path, config(server, tmp_path, nodes=1)) as d:

        async def answers() -> bool:  # the killed run's socket file is still there
            return (await d.ctl("status"))[0] == 0

        await until(answers)

        async def silent_unavailable() -> bool:
            shown = await d.call("node.show", node=SILENT)
            assert isinstance(shown, dict)
            return shown["health"]["available"] is False

        await until(silent_unavailable)
        assert await faults_logged(server, ENDPOINT) == [RAISED], "the same fault, once"
        await stop(d)

    await found_well(tmp_path, server)


async def test_a_node_unpaired_with_a_fault_raised_has_it_cleared_for_good(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with running_daemon(tmp_path, config(server, tmp_path, nodes=1)) as d:
        await silent_node_raised(d, server)
        await d.call("unpair", node=SILENT)
        await logged(server, RAISED, CLEARED)
        assert (await event_log(server, ENDPOINT))[-1].endswith(f" cleared {UNREACHABLE} {REMOVED}")
        seen = await last_seen(d, HEARD)
        await stop(d)

    async with running_daemon(tmp_path, config(server, tmp_path, nodes=1)) as d:
        await registered(server)
        await heard(d, HEARD, seen)
        assert await faults_logged(server, ENDPOINT) == [RAISED, CLEARED], "not raised again"
        await stop(d)


async def test_a_nodes_refused_frames_stay_raised_after_a_restart_while_its_radio_is_down(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    async with World(tmp_path) as world:
        daemon, node, _, _ = await a_keyed_node_that_sent(world, server)  # its traffic settled
        source = f"node 802154:{node_eui64(1).hex()}"
        raised = (source, "raised", str(DATA_REFUSED))
        for psdu in forged_send(world, node, 99.0):  # a radio without its key, in its name
            world.rcp.inject(psdu)
        await refused(daemon, node, "unsecured frames refused", 0)
        await logged(server, raised, endpoint=KEYED_ENDPOINT)
        await node.stop(deregister=False)  # not heard after: nothing says its frames are good
        assert await daemon.stop() == 0

        daemon = await world.start_daemon(server.uri, endpoint=KEYED_ENDPOINT)
        await server.next_event("register", timeout=30.0)
        world.rcp.unplug()

        async def radio_down() -> bool:
            got = await faults_logged(server, KEYED_ENDPOINT)
            return ("transport.802154", "raised", str(RADIO_DOWN)) in got

        await until(radio_down)  # its nodes were told out of reach in the same step, with no
        shown = await daemon.ctl_json("node", "show", node_id(node))  # word of their frames;
        assert shown["reachable"] is False  # the news of a node is committed before it is shown
        nodes = [e for e in await faults_logged(server, KEYED_ENDPOINT) if e[0] == source]
        assert nodes == [raised], "cleared without evidence"


async def test_a_fault_left_raised_for_a_node_no_longer_paired_is_cleared_at_the_start(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """What a gateway before the fix left: a node unpaired with its fault still raised."""
    gone = ("node sim:0009", "raised", str(UNREACHABLE))
    async with running_daemon(tmp_path, config(server, tmp_path, nodes=1)) as d:
        await registered(server)
        await stop(d)
    with closing(sqlite3.connect(tmp_path / "state" / "state.db")) as conn, conn:
        FaultLogStore(conn).append(FaultEntry(time.time(), gone[0], UNREACHABLE, True, "old"))

    async with running_daemon(tmp_path, config(server, tmp_path, nodes=1)) as d:
        await registered(server)
        await logged(server, gone, (gone[0], "cleared", gone[2]))
        await stop(d)
