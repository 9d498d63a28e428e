"""What every integration test shares: real sockets on 127.0.0.1, one per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from peers.lwm2m_server import LwM2MTestServer


@pytest.fixture(autouse=True)
def _no_port_sharing(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiocoap sets SO_REUSEPORT by default: two tests' sockets could then share a port and
    receive each other's datagrams."""
    monkeypatch.setenv("AIOCOAP_REUSE_PORT", "0")


@pytest.fixture
async def server() -> AsyncIterator[LwM2MTestServer]:
    """The in-repo LwM2M test server."""
    async with LwM2MTestServer() as srv:
        yield srv
