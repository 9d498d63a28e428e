"""The peer harnesses work on their own, before any engine is pointed at them.

Each test plays the LwM2M client (or plain CoAP server) by hand with aiocoap, so a failure here is
a harness or peer problem, never an engine one. Everything runs on 127.0.0.1 with ephemeral ports
and waits on events with timeouts, never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiocoap
import aiocoap.resource as resource
import pytest
from aiocoap.numbers.contentformat import ContentFormat

from peers.aiocoap_rd import RDFactory
from peers.libcoap import CoapClient
from peers.lwm2m_node import CommandFailed, NodeServerFactory

pytest_plugins = ["peers.fixtures"]

ENDPOINT = "peer-test"
REGISTER_QUERY = f"ep={ENDPOINT}&lt=60&lwm2m=1.0&b=U"
OBJECT_LINKS = b"</1/0>,</3/0>"
SCENARIO_TIMEOUT = 30.0


def run(scenario: Coroutine[Any, Any, None]) -> None:
    """Run one test scenario in a fresh event loop, bounded so a hang fails instead of blocking."""
    asyncio.run(asyncio.wait_for(scenario, SCENARIO_TIMEOUT))


class TextResource(resource.ObservableResource):
    """A resource holding a text value that records the requests it gets and can be changed."""

    def __init__(self, value: bytes) -> None:
        super().__init__()
        self.value = value
        self.requests: list[aiocoap.Message] = []

    def change(self, value: bytes) -> None:
        self.value = value
        self.updated_state()

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        self.requests.append(request)
        return aiocoap.Message(payload=self.value, content_format=ContentFormat.TEXT)

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        self.requests.append(request)
        self.value = request.payload
        return aiocoap.Message(code=aiocoap.CHANGED)

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        self.requests.append(request)
        return aiocoap.Message(code=aiocoap.CHANGED)


class QueryResource(resource.Resource):
    """Answers FETCH with its payload reversed (binary) and records iPATCH payloads."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[aiocoap.Message] = []

    async def render_fetch(self, request: aiocoap.Message) -> aiocoap.Message:
        self.requests.append(request)
        return aiocoap.Message(
            code=aiocoap.CONTENT,
            payload=request.payload[::-1],
            content_format=ContentFormat.OCTETSTREAM,
        )

    async def render_ipatch(self, request: aiocoap.Message) -> aiocoap.Message:
        self.requests.append(request)
        return aiocoap.Message(code=aiocoap.CHANGED)


@contextlib.asynccontextmanager
async def serve(site: resource.Site) -> AsyncIterator[tuple[aiocoap.Context, int]]:
    """An aiocoap server context on 127.0.0.1 and its port.

    aiocoap does not report the port it bound for port 0, so take a free one and bind it; retry if
    another process took it in between.
    """
    for attempt in range(3):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        try:
            context = await aiocoap.Context.create_server_context(site, bind=("127.0.0.1", port))
        except OSError:
            if attempt == 2:
                raise
            continue
        try:
            yield context, port
        finally:
            await context.shutdown()
        return


async def request(context: aiocoap.Context, message: aiocoap.Message) -> aiocoap.Message:
    return await asyncio.wait_for(context.request(message).response, 10.0)


async def register(context: aiocoap.Context, server_uri: str) -> aiocoap.Message:
    """The raw LwM2M 1.0 Register a client would send."""
    reply = await request(
        context,
        aiocoap.Message(
            code=aiocoap.POST,
            uri=f"{server_uri}/rd?{REGISTER_QUERY}",
            payload=OBJECT_LINKS,
            content_format=ContentFormat.LINKFORMAT,
        ),
    )
    assert reply.code == aiocoap.CREATED, reply
    assert reply.opt.location_path, "a Register answer must carry a Location-Path"
    return reply


async def deregister(context: aiocoap.Context, server_uri: str, location: tuple[str, ...]) -> None:
    """De-register at the Location-Path exactly as the server gave it (segments verbatim)."""
    message = aiocoap.Message(code=aiocoap.DELETE, uri=server_uri)
    message.opt.uri_path = location
    reply = await request(context, message)
    assert reply.code == aiocoap.DELETED, reply


def device_site() -> tuple[resource.Site, TextResource]:
    site = resource.Site()
    manufacturer = TextResource(b"Acme")
    site.add_resource(("3", "0", "0"), manufacturer)
    return site, manufacturer


# -- lwm2m-node-lib LwM2M server --------------------------------------------------------------


def test_node_server_register_read_observe_deregister(lwm2m_node_server: NodeServerFactory) -> None:
    async def scenario() -> None:
        site, manufacturer = device_site()
        async with lwm2m_node_server() as server, serve(site) as (context, client_port):
            reply = await register(context, server.uri)

            registered = await server.wait_event("registration", endpoint=ENDPOINT)
            assert registered.data["lifetime"] == 60
            assert registered.data["version"] == "1.0"
            assert registered.data["binding"] == "U"
            assert registered.data["payload"] == OBJECT_LINKS.decode()
            assert registered.data["port"] == client_port
            assert registered.data["location"] == "/" + "/".join(reply.opt.location_path)
            assert [c["endpoint"] for c in await server.list_clients()] == [ENDPOINT]

            assert await server.read(ENDPOINT, "/3/0/0") == "Acme"
            # The read came from the server's own port, as a LwM2M client may require.
            assert manufacturer.requests[-1].remote.hostinfo == f"127.0.0.1:{server.port}"

            assert await server.observe(ENDPOINT, "/3/0/0") == "Acme"
            manufacturer.change(b"Acme Corp")
            notified = await server.wait_event("notification", endpoint=ENDPOINT, path="/3/0/0")
            assert notified.data["value"] == "Acme Corp"
            await server.cancel(ENDPOINT, "/3/0/0")

            await deregister(context, server.uri, reply.opt.location_path)
            gone = await server.wait_event("unregistration", endpoint=ENDPOINT)
            assert gone.data["reason"] == "deregister"
            assert await server.list_clients() == []

    run(scenario())


def test_node_server_write_execute_and_errors(lwm2m_node_server: NodeServerFactory) -> None:
    async def scenario() -> None:
        site, manufacturer = device_site()
        async with lwm2m_node_server() as server, serve(site) as (context, _):
            await register(context, server.uri)
            await server.wait_event("registration", endpoint=ENDPOINT)

            await server.write(ENDPOINT, "/3/0/0", "Zeta")
            written = manufacturer.requests[-1]
            assert (written.code, written.payload) == (aiocoap.PUT, b"Zeta")
            assert written.opt.content_format == ContentFormat.TEXT

            await server.execute(ENDPOINT, "/3/0/0", "0='x'")
            executed = manufacturer.requests[-1]
            assert (executed.code, executed.payload) == (aiocoap.POST, b"0='x'")

            await server.read(ENDPOINT, "/3/0/0", accept="application/vnd.oma.lwm2m+tlv")
            assert manufacturer.requests[-1].opt.accept == ContentFormat(11542)

            with pytest.raises(CommandFailed, match="no registered client"):
                await server.read("nobody", "/3/0/0")
            with pytest.raises(CommandFailed, match="needs a resource path"):
                await server.read(ENDPOINT, "/3/0")
            with pytest.raises(CommandFailed, match=r"4\.04"):
                await server.read(ENDPOINT, "/3/0/1")

    run(scenario())


def test_node_server_reports_its_port_and_stops(lwm2m_node_server: NodeServerFactory) -> None:
    async def scenario() -> None:
        async with lwm2m_node_server() as server:
            assert server.port > 0
            port = server.port
        # Stopped: the port is free again.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", port))

    run(scenario())


# -- aiocoap resource directory ----------------------------------------------------------------


def test_aiocoap_rd_lists_a_raw_register(aiocoap_rd: RDFactory) -> None:
    async def scenario() -> None:
        site, _ = device_site()
        async with aiocoap_rd() as rd, serve(site) as (context, client_port):
            reply = await register(context, rd.uri)

            [endpoint] = await rd.endpoints(ep=ENDPOINT)
            assert endpoint.attributes["lwm2m"] == "1.0"
            assert endpoint.attributes["b"] == "U"
            assert endpoint.attributes["base"] == f"coap://127.0.0.1:{client_port}"
            assert endpoint.target == "/" + "/".join(reply.opt.location_path)
            targets = {link.target for link in await rd.resources()}
            assert targets == {
                f"coap://127.0.0.1:{client_port}/1/0",
                f"coap://127.0.0.1:{client_port}/3/0",
            }

            await deregister(context, rd.uri, reply.opt.location_path)
            assert await rd.endpoints() == []

    run(scenario())


# -- libcoap coap-client ---------------------------------------------------------------------


def test_coap_client_get_with_accept(coap_client: Callable[..., CoapClient]) -> None:
    async def scenario() -> None:
        site, manufacturer = device_site()
        async with serve(site) as (_, port):
            client = coap_client()
            response = await client.request("get", f"coap://127.0.0.1:{port}/3/0/0", accept=0)
            assert (response.code, response.content_format, response.payload) == (
                "2.05",
                "text/plain",
                b"Acme",
            )
            assert manufacturer.requests[-1].opt.accept == ContentFormat.TEXT

            missing = await client.request("get", f"coap://127.0.0.1:{port}/3/0/9")
            assert missing.code == "4.04"

    run(scenario())


def test_coap_client_observe(coap_client: Callable[..., CoapClient]) -> None:
    async def scenario() -> None:
        site, manufacturer = device_site()
        async with serve(site) as (_, port):
            client = coap_client()
            uri = f"coap://127.0.0.1:{port}/3/0/0"
            async with client.observe(uri, duration=20) as observation:
                first = await observation.next()
                assert (first.code, first.payload) == ("2.05", b"Acme")
                numbers = [first.observe]
                for value in (b"one", b"two\x01'", b"three"):
                    manufacturer.change(value)
                    notification = await observation.next()
                    assert (notification.code, notification.payload) == ("2.05", value)
                    numbers.append(notification.observe)
            observed = [number for number in numbers if number is not None]
            assert observed == sorted(observed) and len(observed) == len(numbers)

    run(scenario())


def test_coap_client_fetch_from_file_and_ipatch(
    coap_client: Callable[..., CoapClient], tmp_path: Path
) -> None:
    async def scenario() -> None:
        site = resource.Site()
        query = QueryResource()
        site.add_resource(("q",), query)
        async with serve(site) as (_, port):
            client = coap_client()
            body = bytes(range(40)) + b"\xff\x00"
            body_file = tmp_path / "fetch.bin"
            body_file.write_bytes(body)

            fetched = await client.request(
                "fetch",
                f"coap://127.0.0.1:{port}/q",
                content_format=60,
                payload_file=body_file,
                block_size=16,  # Block1 for the request, Block2 for the answer
            )
            assert fetched.code == "2.05"
            assert fetched.content_format == "application/octet-stream"
            assert fetched.payload == body[::-1]
            assert query.requests[-1].payload == body
            assert query.requests[-1].opt.content_format == ContentFormat.CBOR

            patched = await client.request(
                "ipatch", f"coap://127.0.0.1:{port}/q", content_format=0, payload="a b%c\u00e9"
            )
            assert (patched.code, patched.payload) == ("2.04", b"")
            assert query.requests[-1].payload == "a b%c\u00e9".encode()

    run(scenario())


def test_coap_client_sends_from_the_lwm2m_server_port(
    coap_client: Callable[..., CoapClient], lwm2m_node_server: NodeServerFactory
) -> None:
    async def scenario() -> None:
        site, manufacturer = device_site()
        async with lwm2m_node_server() as server, serve(site) as (context, port):
            await register(context, server.uri)
            await server.wait_event("registration", endpoint=ENDPOINT)

            client = coap_client(bind=("127.0.0.1", server.port))
            response = await client.request("get", f"coap://127.0.0.1:{port}/3/0/0")
            assert (response.code, response.payload) == ("2.05", b"Acme")
            assert manufacturer.requests[-1].remote.hostinfo == f"127.0.0.1:{server.port}"

            # The LwM2M server kept its port and registration throughout.
            assert await server.read(ENDPOINT, "/3/0/0") == "Acme"

    run(scenario())
