"""The real daemon lives through a file system that refuses writes, and loses nothing it can
keep.

The fault is made as the kernel makes it, without root: the daemon's file size limit
(RLIMIT_FSIZE, set from outside with prlimit) drops to one byte, so every write to the state
database fails (SQLite: "disk I/O error", as on a file system remounted read-only or a disk
that failed), then goes back up, as when space is freed. The daemon's log goes through a pipe,
which the limit does not touch. Readings produced meanwhile are counted from the daemon's own
event stream and must all reach the LwM2M server afterwards; ``bridgectl status`` shows the
condition while it lasts.
"""

from __future__ import annotations

import resource
import signal
from pathlib import Path

from aiocoap.numbers.codes import Code

from bridged.faults import STORE_REFUSES_WRITES
from bridged.objects.formats import ContentFormat
from integration.test_daemon import (
    ENDPOINT,
    _short_paths,  # noqa: F401 (fixture)
    config_text,
    produced,
    running_daemon,
    sends,
    until,
    until_sync,
)
from peers.lwm2m_server import LwM2MTestServer, decode_senml_cbor


async def error_codes(server: LwM2MTestServer) -> list[object]:
    """The gateway's /3/0/11 Error Code as a server reads it."""
    read = await server.request(ENDPOINT, Code.GET, "/3/0/11", accept=ContentFormat.SENML_CBOR)
    return [r.value for r in decode_senml_cbor(read.payload)]


def file_size_limit(pid: int, soft: int) -> None:
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))


async def test_storing_resumes_after_the_file_system_refused_writes(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    sim = "nodes = 1\ninterval = 0.2"
    log: list[str] = []
    config = config_text(server.uri, tmp_path, sim=sim)
    async with running_daemon(tmp_path, config, log_lines=log) as d:
        await server.next_event("register", timeout=30)
        await d.wait_registered()
        await d.call("pair", node="sim:0001", name="porch")
        upstream = {p: await d.upstream("sim:0001", p) for p in ("/3303/0/5700", "/3304/0/5700")}
        await until_sync(lambda: bool(sends(server)))
        normal = resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE)[0]
        async with d.events("readings") as events:
            file_size_limit(d.proc.pid, 1)
            try:

                async def refusing() -> bool:
                    status = await d.ctl_json("status")
                    assert isinstance(status, dict)
                    return bool(status["readings"]["problem"])

                await until(refusing)
                code, text, _ = await d.ctl("status")
                assert code == 0 and "STORING FAILS" in text
                assert await error_codes(server) == [STORE_REFUSES_WRITES]
                # Readings go on arriving; the daemon holds them.
                during = await produced(events, "sim:0001", upstream, 20)
                status = await d.ctl_json("status")
                assert isinstance(status, dict) and status["readings"]["unstored"] > 0
            finally:
                file_size_limit(d.proc.pid, normal)

        # Space is back: storing resumes by itself, and every reading reaches the server.
        await until_sync(lambda: during <= sends(server), timeout=60)
        status = await d.ctl_json("status")
        assert isinstance(status, dict)
        assert status["readings"]["problem"] is None
        assert status["readings"]["dropped"] == 0
        assert await error_codes(server) == [0]  # the fault is over
        assert d.proc.returncode is None
    errors = [line for line in log if "refuses writes" in line and "bridged.registry" in line]
    assert len(errors) == 1, log  # said once, not at every group commit
    faults = [line for line in log if "bridged.faults" in line]
    assert len(faults) == 2 and "gateway fault over: store" in faults[1], faults
    assert any("takes writes again" in line for line in log)
    assert not any("Traceback" in line for line in log)


async def test_an_unclean_stop_is_counted_and_a_clean_one_is_not(tmp_path: Path) -> None:
    """kill -9 can lose what was still on its way from the radio to the gateway: the next start
    says so and counts it (readings.unclean_stops)."""
    config = config_text("coap://127.0.0.1:9", tmp_path, sim="nodes = 1\ninterval = 0.05")

    async def started() -> dict[str, object]:
        async def answers() -> bool:
            code, _, _ = await d.ctl("status")
            return code == 0

        await until(answers)
        readings = (await d.ctl_json("status"))["readings"]  # type: ignore[index]
        assert isinstance(readings, dict)
        return readings

    async with running_daemon(tmp_path, config) as d:
        assert (await started())["unclean_stops"] == 0
        d.proc.kill()
        await d.wait()
    async with running_daemon(tmp_path, config) as d:
        assert (await started())["unclean_stops"] == 1
        assert "did not stop cleanly" in d.log.read_text()
        code, text, _ = await d.ctl("status")
        assert code == 0 and "1 unclean stops" in text
        d.proc.send_signal(signal.SIGTERM)
        assert await d.wait() == 0
    async with running_daemon(tmp_path, config) as d:
        assert (await started())["unclean_stops"] == 1
