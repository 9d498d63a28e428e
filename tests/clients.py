"""What the engine's client tests share: a gateway tree, fast retries, waiting for events."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

from bridged.engine.bootstrap_client import BootstrapConfig
from bridged.engine.client import LwM2MClient
from bridged.engine.registration import EventKind, RegistrationEvent, RetryPolicy
from bridged.objects.builtin import builtin_definitions
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from peers.bootstrap_server import BootstrapRequest, BootstrapTestServer
from peers.lwm2m_server import ServerEvent

FAST_RETRY = RetryPolicy(count=2, timer=0.05, sequence_delay=0.1, sequence_count=1)
"""Loopback only: a failed Register is retried within a fraction of a second."""


def gateway_tree() -> ObjectTree:
    """A tree with /3/0 (Manufacturer "ACME") and one temperature, /3303/0."""
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(3, 0, [(0, "ACME"), (16, "U")])
    tree.create_instance(3303, 0, [(5700, 21.5)])
    return tree


async def next_event(
    events: asyncio.Queue[RegistrationEvent],
    kind: EventKind,
    server: str | None = None,
    timeout: float = 10.0,
) -> RegistrationEvent:
    """The next registration event of ``kind`` (from ``server`` when given), skipping others."""
    async with asyncio.timeout(timeout):
        while True:
            ev = await events.get()
            if ev.kind is kind and (server is None or ev.server == server):
                return ev


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 with nothing listening (a server that is down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def bootstrapping(
    tree: ObjectTree, endpoint: str, **options: Any
) -> AsyncIterator[tuple[BootstrapTestServer, BootstrapRequest]]:
    """A client of ``tree`` (with ``options``, e.g. ``nodes``, ``end_devices``) bootstrapping from
    an in-repo Bootstrap-Server: the server and the client's Bootstrap-Request, to drive the
    session from."""
    async with BootstrapTestServer() as bs:
        client = LwM2MClient(
            tree,
            endpoint,
            None,
            bind=("127.0.0.1", 0),
            bootstrap=BootstrapConfig(uri=bs.uri, request_timeout=3.0, retry=FAST_RETRY),
            **options,
        )
        await client.start()
        try:
            yield bs, await bs.next_request()
        finally:
            await client.stop()


def a_series(path: Path, count: int = 720) -> list[Record]:
    """``count`` readings of ``path``, a minute apart, each value its own: 720 make a Send body
    of several 1,024-byte blocks (the block-wise tests)."""
    return [Record(path, 20.0 + i / 100, 1_700_000_000.0 + 60 * i) for i in range(count)]


def assert_decoded_whole(sent: ServerEvent, series: list[Record]) -> None:
    """The server decoded every record of ``series`` from the Send ``sent``, in order."""
    assert [(r.time, r.value) for r in sent.records] == [(r.time, r.value) for r in series]
