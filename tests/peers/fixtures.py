"""pytest fixtures for the peers; a test module loads them with ``pytest_plugins``.

Each fixture checks its tool once and hands back a factory. The peers run inside the test's own
event loop (the tests drive asyncio themselves), so the fixture cannot start them; it returns the
async context manager that does, already pointed at the checked executable.

Only a missing ``node`` skips (Node.js is optional for contributors). Everything ``make test``
installs is an error when absent, with the command that fixes it: the npm packages of the
lwm2m-node-lib peer, libcoap's coap-client, aiocoap-rd. A broken setup never passes as "skipped".
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable

import pytest

from peers.aiocoap_rd import AiocoapRD, RDFactory, find_aiocoap_rd
from peers.libcoap import CoapClient, find_coap_client
from peers.lwm2m_node import LwM2MNodeServer, NodeServerFactory, check_packages


@pytest.fixture
def lwm2m_node_server() -> NodeServerFactory:
    """``async with lwm2m_node_server() as server:`` starts the lwm2m-node-lib LwM2M server."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node (Node.js) is not installed: apt-get install nodejs npm")
    check_packages()
    return functools.partial(LwM2MNodeServer.running, node=node)


@pytest.fixture
def aiocoap_rd() -> RDFactory:
    """``async with aiocoap_rd() as rd:`` starts aiocoap's resource directory."""
    find_aiocoap_rd()
    return AiocoapRD.running


@pytest.fixture
def coap_client() -> Callable[..., CoapClient]:
    """``coap_client(bind=...)`` makes a libcoap coap-client wrapper (see peers.libcoap)."""
    find_coap_client()
    return CoapClient
