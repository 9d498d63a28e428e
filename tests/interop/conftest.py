"""Fixtures of the engine's interop tests: the gateway tree, and the real client registered
with the lwm2m-node-lib server (which the coap-client tests also use, sending from its port)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bridged.engine.client import LwM2MClient
from bridged.engine.registration import RegistrationEvent
from peers.gateway import Gateway, gateway, running_client
from peers.lwm2m_node import LwM2MNodeServer, NodeServerFactory

LIFETIME = 600
"""Long enough that no periodic Update happens during a test (coap-client, bound to the
server's port, would receive it)."""


@pytest.fixture
def gw() -> Gateway:
    return gateway()


@pytest.fixture
def events() -> asyncio.Queue[RegistrationEvent]:
    return asyncio.Queue()


@pytest.fixture
async def node_server(lwm2m_node_server: NodeServerFactory) -> AsyncIterator[LwM2MNodeServer]:
    async with lwm2m_node_server() as srv:
        yield srv


@pytest.fixture
async def client(
    gw: Gateway, node_server: LwM2MNodeServer, events: asyncio.Queue[RegistrationEvent]
) -> AsyncIterator[LwM2MClient]:
    """The client, started against the lwm2m-node-lib server (not yet awaited registered)."""
    async with running_client(gw, node_server.uri, lifetime=LIFETIME, events=events) as c:
        yield c
