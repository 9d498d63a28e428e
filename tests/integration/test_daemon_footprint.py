"""What the real daemon holds in memory once it runs: only what its configuration needs.

Seen in the daemon's own memory map (/proc/PID/maps), not in this process: a module's shared
library is mapped once something imports it.
"""

from __future__ import annotations

from pathlib import Path

from integration.test_daemon import config_text, running_daemon
from peers.lwm2m_server import LwM2MTestServer


def mapped_packages(pid: int) -> set[str]:
    """The top-level packages under site-packages whose shared libraries ``pid`` has mapped."""
    found = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        _, sep, rest = line.partition("/site-packages/")
        if sep:
            found.add(rest.split("/")[0])
    return found


async def test_a_daemon_without_certificates_never_loads_cryptography(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """cryptography (the X.509 checks of security mode 2) was about 9 MB of every start's RSS;
    a configuration without certificates has no use for it."""
    async with running_daemon(tmp_path, config_text(server.uri, tmp_path)) as daemon:
        await server.next_event("register", timeout=30)
        mapped = mapped_packages(daemon.proc.pid)
    assert "cbor2" in mapped, mapped  # the walk sees what is mapped
    assert not mapped & {"cryptography", "OpenSSL"}, mapped
