"""The real ``bridged`` daemon, as a subprocess, registered to the Leshan peer.

The interop cases against Leshan run the product as a user does: the daemon with a
configuration file (the simulated transport's nodes behind it), driven by Leshan through its
REST API and by ``bridgectl`` where a user would act (pairing a node). The subprocess plumbing
(control socket, ``bridgectl``, SIGTERM) is the one ``tests/integration/test_daemon.py`` uses.

Leshan is shared by the whole run, so every daemon gets an endpoint name of its own.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from integration.test_daemon import Daemon, running_daemon

from peers.leshan import Event, EventStream, Leshan

SIM = "nodes = 2\ninterval = 0.5"
"""Two simulated nodes, each reporting every half second: values change between reads."""


def config(
    uri: str,
    tmp: Path,
    endpoint: str,
    *,
    exposure: str = "instances",
    lifetime: int = 120,
    request_timeout: float = 10,
    server: str = "",
    sim: str = SIM,
    extra: str = "",
) -> str:
    """The daemon's configuration file: one server (``server`` adds keys to its table)."""
    return f"""
[gateway]
endpoint = "{endpoint}"
exposure = "{exposure}"
state_dir = "{tmp / "state"}"
runtime_dir = "{tmp / "run"}"
bind_address = "127.0.0.1"

[[server]]
uri = "{uri}"
lifetime = {lifetime}
request_timeout = {request_timeout}
retry_timer = 0.05
retry_sequence_delay = 0.2
{server}

[log]
level = "info"

[transport.sim]
{sim}
{extra}
"""


@contextlib.asynccontextmanager
async def registered_daemon(
    tmp: Path,
    leshan: Leshan,
    events: EventStream,
    endpoint: str,
    *,
    uri: str | None = None,
    **options: str | int,
) -> AsyncIterator[tuple[Daemon, Event]]:
    """Start the daemon against ``leshan`` and yield it with Leshan's REGISTRATION event.

    On exit the daemon is stopped with SIGTERM (it de-registers) if it still runs.
    """
    text = config(uri or leshan.uri, tmp, endpoint, **options)  # type: ignore[arg-type]
    async with running_daemon(tmp, text) as daemon:
        try:
            registration = await events.next("REGISTRATION", endpoint=endpoint, timeout=60)
        except TimeoutError as error:
            raise TimeoutError(f"{error}\ndaemon log:\n{daemon.log.read_text()}") from None
        try:
            yield daemon, registration
        finally:
            if daemon.proc.returncode is None:
                daemon.proc.send_signal(signal.SIGTERM)
                await daemon.wait()


def link_urls(registration: Event) -> set[str]:
    """The object and instance paths of a REGISTRATION or UPDATED event's object links."""
    data = registration.data.get("registration", registration.data)
    return {link["url"] for link in data["objectLinks"]}
