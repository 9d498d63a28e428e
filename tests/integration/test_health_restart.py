"""A node's health survives a restart of the real daemon.

The daemon runs the simulated transport with one node on its air (``sim:0001``, heard at
RSSI -60 dBm) and a second paired node that is never heard (``sim:0002``, unavailable once its
one-second timeout passes), in the endpoints mode. It is stopped (SIGTERM) and started again
with no transport, so nothing is heard of either node after the restart: what ``bridgectl node
show`` and a server then see of them is what the gateway kept. Before, the restarted gateway
showed both as never heard (RSSI, last seen unknown) and available, with no fault.
"""

from __future__ import annotations

import signal
from pathlib import Path

from aiocoap.numbers.codes import Code

from bridged.health import UNREACHABLE
from integration.test_daemon import ENDPOINT, config_text, running_daemon, until
from peers.lwm2m_server import LwM2MTestServer

HEARD, SILENT = "sim:0001", "sim:0002"
TEXT = 0


def config(server: LwM2MTestServer, tmp_path: Path, *, sim: str | None, timeout: str) -> str:
    health = f"[health]\nminimum = 0.1\n[health.transport]\nsim = {timeout}\n"
    return config_text(
        server.uri, tmp_path, gateway='exposure = "endpoints"', sim=sim, extra=health
    )


async def registered(server: LwM2MTestServer, *nodes: str) -> None:
    """Once the gateway's endpoint and those of ``nodes`` are registered (a deregistered one
    leaves ``server.clients``)."""

    async def up() -> bool:
        return {ENDPOINT, *(f"{ENDPOINT}:{node}" for node in nodes)} <= set(server.clients)

    await until(up)


async def read_text(server: LwM2MTestServer, node: str, path: str) -> str:
    response = await server.request(f"{ENDPOINT}:{node}", Code.GET, path, accept=TEXT)
    assert response.code == Code.CONTENT, (node, path, response)
    return str(response.payload.decode())


async def test_node_health_is_shown_as_it_was_after_a_restart(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    first = config(server, tmp_path, sim="nodes = 1\ninterval = 0.2", timeout="1")
    async with running_daemon(tmp_path, first) as d:
        await registered(server)
        await d.call("pair", node=HEARD, name="porch")
        await d.call("pair", node=SILENT, name="shed")
        shown: dict[str, dict[str, object]] = {}

        async def settled() -> bool:
            for node in (HEARD, SILENT):
                got = await d.call("node.show", node=node)
                assert isinstance(got, dict)
                shown[node] = got
            heard, silent = shown[HEARD], shown[SILENT]
            return heard["rssi"] == -60 and silent["health"]["available"] is False  # type: ignore[index]

        await until(settled)
        seen_before = shown[HEARD]["last_seen"]
        assert isinstance(seen_before, float)
        d.proc.send_signal(signal.SIGTERM)
        assert await d.wait() == 0

    # Nothing is heard now; a timeout far away keeps the timer from deciding anything.
    second = config(server, tmp_path, sim=None, timeout='"1h"')
    async with running_daemon(tmp_path, second) as d:
        await registered(server, HEARD, SILENT)
        heard = await d.call("node.show", node=HEARD)
        silent = await d.call("node.show", node=SILENT)
        assert isinstance(heard, dict) and isinstance(silent, dict)
        assert heard["rssi"] == -60
        assert isinstance(heard["last_seen"], float) and heard["last_seen"] >= seen_before
        assert heard["health"]["available"] is True
        assert silent["health"]["available"] is False
        assert silent["health"]["errors"] == [UNREACHABLE]

        code, table, err = await d.ctl("node", "show", HEARD)
        assert code == 0, err
        lines = dict(line.split(None, 1) for line in table.splitlines()[:9] if " " in line)
        assert lines["rssi"].strip() == "-60"
        assert "unknown" not in table.split("last seen", 1)[1].splitlines()[0]

        # What a server reads of them derives from the same: the node's /4/0/2 Radio Signal
        # Strength, and the silent node's /3/0/11 Error Code (7, unreachable).
        assert await read_text(server, HEARD, "/4/0/2") == "-60"
        assert await read_text(server, SILENT, "/3/0/11/0") == str(UNREACHABLE)
        assert await read_text(server, HEARD, "/3/0/11/0") == "0"
