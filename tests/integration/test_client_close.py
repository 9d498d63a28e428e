"""Closing a client without waiting for its server: no De-register, or a De-register cut short,
and in both cases the socket closed (a gateway with thousands of endpoints must be able to
bound its shutdown without leaking a socket per endpoint)."""

from __future__ import annotations

import asyncio
import socket

import aiocoap
from aiocoap.numbers.codes import Code
from clients import FAST_RETRY, gateway_tree, next_event

from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.registration import EventKind, RegistrationEvent
from peers.lwm2m_server import LwM2MTestServer

TIMEOUT = 10.0


def client_socket(client: LwM2MClient) -> socket.socket:
    context = client.sessions[0].uplink.context
    messages = context.request_interfaces[0].token_interface.message_interface
    sock = messages.transport.get_extra_info("socket")
    assert isinstance(sock, socket.socket)
    return sock


async def registered_client(server: LwM2MTestServer) -> LwM2MClient:
    events: asyncio.Queue[RegistrationEvent] = asyncio.Queue()
    client = LwM2MClient(
        gateway_tree(),
        "closing",
        ServerConfig(server.uri, request_timeout=60.0, retry=FAST_RETRY),
        bind=("127.0.0.1", 0),
        on_event=events.put_nowait,
    )
    await client.start()
    await next_event(events, EventKind.REGISTRATION_COMPLETE)
    return client


async def test_stop_without_deregister_sends_nothing_and_closes_the_socket(
    server: LwM2MTestServer,
) -> None:
    client = await registered_client(server)
    sock = client_socket(client)
    await client.stop(deregister=False)
    assert sock.fileno() == -1
    assert [e.kind for e in server.history] == ["register"]
    assert "closing" in server.clients


async def test_a_stop_cut_short_while_the_server_is_silent_still_closes_the_socket(
    server: LwM2MTestServer,
) -> None:
    client = await registered_client(server)
    sock = client_socket(client)
    deletes: list[aiocoap.Message] = []

    def silent_to_deregister(message: aiocoap.Message) -> bool:
        if message.code == Code.DELETE:
            deletes.append(message)
            return True
        return False

    server.drop = silent_to_deregister
    stopping = asyncio.create_task(client.stop())
    async with asyncio.timeout(TIMEOUT):
        while not deletes:  # the De-register is out, and will not be answered
            await asyncio.sleep(0.01)
    stopping.cancel()
    async with asyncio.timeout(TIMEOUT):
        await asyncio.gather(stopping, return_exceptions=True)
    assert stopping.cancelled()
    assert sock.fileno() == -1
