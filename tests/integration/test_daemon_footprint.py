"""What the real daemon holds in memory once it runs: only what its configuration needs.

Seen in the daemon's own memory map (/proc/PID/maps), not in this process: a package with a
compiled part, or an extension module of the standard library, is mapped once something
imports it, and stays.
"""

from __future__ import annotations

from pathlib import Path

from integration.test_daemon import config_text, running_daemon
from peers.lwm2m_server import LwM2MTestServer


def mapped_modules(pid: int) -> set[str]:
    """The packages under site-packages and the standard library's extension modules
    (lib-dynload) whose shared libraries ``pid`` has mapped."""
    found = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        for where in ("/site-packages/", "/lib-dynload/"):
            _, sep, rest = line.partition(where)
            if sep:
                found.add(rest.split("/")[0].split(".")[0])
    return found


async def test_a_daemon_without_certificates_or_definitions_files_loads_neither_parser(
    tmp_path: Path, server: LwM2MTestServer
) -> None:
    """cryptography (the X.509 checks of security mode 2) was about 9 MB of every start's RSS,
    the XML parser (DDF files, ``objects_dir``) 0.6 MB; a configuration without certificates
    and without DDF files of its own has no use for them."""
    async with running_daemon(tmp_path, config_text(server.uri, tmp_path)) as daemon:
        await server.next_event("register", timeout=30)
        mapped = mapped_modules(daemon.proc.pid)
    assert {"cbor2", "_sqlite3"} <= mapped, mapped  # the walk sees what is mapped
    assert not mapped & {"cryptography", "OpenSSL", "pyexpat"}, mapped
