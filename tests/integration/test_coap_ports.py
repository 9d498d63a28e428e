"""Engine contexts bound to port 0 each get a port of their own, on real sockets.

aiocoap 0.4.17 sets SO_REUSEPORT on every server socket, and Linux then gives a port-0 bind an
ephemeral port that another SO_REUSEPORT socket of the same user already holds: with one
socket per node (the ``endpoints`` exposure mode), a few hundred endpoints shared ports and
received each other's responses, and one took over the server's port. The integration tests
otherwise turn aiocoap's SO_REUSEPORT off (conftest.py); these turn it back on, as it is in
the daemon.
"""

from __future__ import annotations

import collections
import resource
import socket
from collections.abc import Iterator

import aiocoap
import pytest
from aiocoap import resource as coap_resource

from bridged.engine.coap import create_context, unshared_socket

CONTEXTS = 1000
"""Enough that shared ports would be certain: with SO_REUSEPORT the kernel picks among about
28,000 ephemeral ports as if none were taken, so 1,000 binds would share about 18 pairs
(birthday bound; the chance of none is below 1e-7)."""


def sock_of(context: aiocoap.Context) -> socket.socket:
    """The UDP socket of ``context`` (an engine context or a stock aiocoap one)."""
    messages = context.request_interfaces[0].token_interface.message_interface
    sock = messages.transport.get_extra_info("socket")
    assert isinstance(sock, socket.socket)
    return sock


@pytest.fixture(autouse=True)
def _aiocoap_reuses_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOCOAP_REUSE_PORT", "1")


@pytest.fixture
def enough_files() -> Iterator[None]:
    """Room for ``CONTEXTS`` sockets under the soft open-files limit (a fresh Debian has
    1,024); restored afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = CONTEXTS + 512
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"the hard open-files limit ({hard}) is below {needed}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_port_zero_context_does_not_share_its_port() -> None:
    context = await create_context(coap_resource.Site(), ("127.0.0.1", 0))
    try:
        sock = sock_of(context)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        assert sock.getsockname()[:2] == ("::ffff:127.0.0.1", sock.getsockname()[1])
    finally:
        await context.shutdown()


async def test_a_thousand_port_zero_contexts_get_a_thousand_ports(enough_files: None) -> None:
    # An aiocoap server of the same user, as the LwM2M server of a test or a benchmark is:
    # no context may take its port either.
    server = await aiocoap.Context.create_server_context(
        coap_resource.Site(), bind=("127.0.0.1", 0), transports=["udp6"]
    )
    contexts: list[aiocoap.Context] = []
    try:
        for _ in range(CONTEXTS):
            contexts.append(await create_context(coap_resource.Site(), ("127.0.0.1", 0)))
        ports = collections.Counter(sock_of(c).getsockname()[1] for c in [server, *contexts])
        assert [p for p, n in ports.items() if n > 1] == []
    finally:
        for c in contexts:
            await c.shutdown()
        await server.shutdown()


async def test_a_name_that_does_not_resolve_is_a_resolution_error() -> None:
    with pytest.raises(aiocoap.error.ResolutionError):
        await unshared_socket("no-such-host.invalid")
