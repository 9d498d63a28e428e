"""pytest fixtures for the peers; a test module loads them with ``pytest_plugins``.

Each fixture checks its tool once and hands back a factory. The peers run inside the test's own
event loop (the tests drive asyncio themselves), so the fixture cannot start them; it returns the
async context manager that does, already pointed at the checked executable.

Only a missing ``node`` skips (Node.js is optional for contributors), and a missing Java or
Leshan jar outside CI (``CI=true`` makes it an error, so CI cannot pass by skipping). Everything
else ``make test`` installs is an error when absent, with the command that fixes it: the npm
packages of the lwm2m-node-lib peer, libcoap's coap-client, aiocoap-rd. A broken setup never
passes as "skipped".

The Leshan server is the one peer started by its fixture, once per run (session scope): it takes
a JVM's start-up, and the tests share it, each with endpoint names of its own.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Iterator

import pytest

from peers.aiocoap_rd import AiocoapRD, RDFactory, find_aiocoap_rd
from peers.leshan import Leshan, LeshanMissing, check_jar, find_java, in_ci
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


@pytest.fixture(scope="session")
def leshan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Leshan]:
    """The Leshan demo server, started once per run on free loopback ports."""
    try:
        find_java()
        check_jar()
    except LeshanMissing as missing:
        if in_ci():  # an error, which no expected failure absorbs (they name what they expect)
            raise LeshanMissing(f"CI must run the Leshan cases: {missing}") from None
        pytest.skip(str(missing))
    server = Leshan.start(tmp_path_factory.mktemp("leshan"))
    try:
        yield server
    finally:
        server.stop()
