"""The engine driven by libcoap's coap-client, a CoAP implementation nobody on this project wrote.

The client registers with the lwm2m-node-lib server as usual; coap-client then sends its raw
requests from that server's own address and port (see ``peers.libcoap``), because a LwM2M
client may refuse requests that do not come from its server. It covers what no LwM2M server
library exposes: every Content-Format and Accept, the composite FETCH and iPATCH, Execute
arguments, Create and Delete, Write-Attributes and Discover. Payloads read are decoded with the
project's codecs and compared with the tree; payloads written are written by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import cbor2
import pytest

from bridged.engine.client import LwM2MClient
from bridged.engine.registration import RegistrationEvent
from bridged.objects.formats import ContentFormat as CF
from bridged.objects.formats import codec_for, composite_codec_for
from bridged.objects.paths import ROOT, Path
from bridged.objects.values import ObjLnk
from peers.gateway import ENDPOINT, Gateway, client_port, registration_complete
from peers.libcoap import CoapClient, CoapResponse
from peers.lwm2m_node import LwM2MNodeServer

pytest_plugins = ["peers.fixtures"]


class Sender:
    """coap-client bound to the LwM2M server's port, aimed at the registered client."""

    def __init__(self, coap: CoapClient, base: str) -> None:
        self.coap = coap
        self.base = base

    async def __call__(self, method: str, path: str, **options: object) -> CoapResponse:
        return await self.coap.request(method, self.base + path, **options)


@pytest.fixture
async def send(
    coap_client: Callable[..., CoapClient],
    client: LwM2MClient,
    node_server: LwM2MNodeServer,
    events: asyncio.Queue[RegistrationEvent],
) -> Sender:
    await node_server.wait_event("registration", endpoint=ENDPOINT)
    await registration_complete(events)
    coap = coap_client(bind=("127.0.0.1", node_server.port))
    return Sender(coap, f"coap://127.0.0.1:{client_port(client)}")


def pairs(records: object) -> list[tuple[str, object]]:
    return [(str(r.path), r.value) for r in records]


@pytest.mark.parametrize(
    ("test_id", "path", "accept"),
    [
        ("int-201", "/32771/0/0", CF.TEXT),
        ("int-201", "/3303/0/5700", CF.TEXT),
        ("int-224", "/32771/0/1", CF.OPAQUE),
        ("int-203", "/32771/0", CF.TLV),
        ("int-222", "/32771", CF.TLV),
        ("int-203", "/32771/0/8", CF.TLV),
        ("int-204", "/32771/0", CF.LWM2M_JSON),
        ("int-231", "/32771/0", CF.SENML_JSON),
        ("int-232", "/32771/0", CF.SENML_CBOR),
        ("int-225", "/32771/0/8/1", CF.SENML_CBOR),
        ("int-211", "/32771/0", CF.LWM2M_CBOR),
        ("int-223", "/3/0", CF.LWM2M_CBOR),
    ],
)
async def test_LightweightM2M_1_1_int_2xx_read_in_every_format(
    gw: Gateway, send: Sender, test_id: str, path: str, accept: int
) -> None:
    """LightweightM2M-1.1-int-201, 203, 204, 211, 231, 232 (querying basic information in each
    format) and int-222 to 225 (Read on object, instance, resource, resource instance): the
    answer carries the asked format, and decodes with our codecs to the tree's values."""
    response = await send("get", path, accept=int(accept))
    assert response.code == "2.05", (test_id, response)
    assert response.content_format in (str(int(accept)), _LIBCOAP_NAMES.get(accept))
    target = Path.parse(path)
    decoded = codec_for(accept).decode(response.payload, target, gw.tree.definitions)
    assert pairs(decoded) == pairs(gw.tree.read(target))


_LIBCOAP_NAMES = {
    CF.TEXT: "text/plain",
    CF.LINK_FORMAT: "application/link-format",
    CF.OPAQUE: "application/octet-stream",
    CF.SENML_JSON: "application/senml+json",
    CF.SENML_CBOR: "application/senml+cbor",
}


async def test_LightweightM2M_1_1_int_237_read_without_accept(gw: Gateway, send: Sender) -> None:
    """LightweightM2M-1.1-int-237: a Read of an object without Accept gets the 1.1 default
    (SenML CBOR), and a single resource plain text."""
    response = await send("get", "/32771")
    assert (response.code, response.content_format) == ("2.05", "application/senml+cbor")
    decoded = codec_for(CF.SENML_CBOR).decode(
        response.payload, Path.parse("/32771"), gw.tree.definitions
    )
    assert pairs(decoded) == pairs(gw.tree.read(Path.parse("/32771")))
    response = await send("get", "/3303/0/5701")
    assert (response.code, response.payload) == ("2.05", b"Cel")


async def test_LightweightM2M_1_1_int_260_discover(send: Sender) -> None:
    """LightweightM2M-1.1-int-260: Discover (Accept 40) lists the instance and its resources,
    the multi-instance one with its dimension, the executable one once it has a handler."""
    response = await send("get", "/32771/0", accept=40)
    assert (response.code, response.content_format) == ("2.05", "application/link-format")
    links = response.payload.decode().split(",")
    assert links[0] == "</32771/0>"
    assert {"</32771/0/1>", "</32771/0/8>;dim=2", "</32771/0/9>", "</32771/0/10>"} <= set(links)


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/32771/0/2", CF.OPAQUE),  # an Integer is not opaque
        ("/32771/0", CF.TEXT),  # text/plain carries one value
        ("/32771/0", 60),  # plain CBOR is no LwM2M format
        ("/32771/0", 50),  # application/json
    ],
)
async def test_unsupported_accept_is_4_06(send: Sender, path: str, accept: int) -> None:
    assert (await send("get", path, accept=accept)).code == "4.06"


WRITES = [
    # (test id, method, path, content format, payload, values after)
    ("int-205", "put", "/32771/0/2", CF.TEXT, b"55", {"/32771/0/2": 55}),
    ("int-205", "put", "/32771/0/7", CF.TEXT, b"3:0", {"/32771/0/7": ObjLnk(3, 0)}),
    ("int-227", "put", "/32771/0/1", CF.OPAQUE, b"\x00\xff\x10", {"/32771/0/1": b"\x00\xff\x10"}),
    # TLV: resource 2 = 0x37; resource 5 = false
    (
        "int-215",
        "post",
        "/32771/0",
        CF.TLV,
        bytes.fromhex("c10237c10500"),
        {"/32771/0/2": 55, "/32771/0/5": False},
    ),
    # TLV multiple resource 8 with instances 0 -> 1 and 3 -> -1: replaces the resource
    (
        "int-215",
        "put",
        "/32771/0/8",
        CF.TLV,
        bytes.fromhex("8808064100014103ff"),
        {"/32771/0/8": {0: 1, 3: -1}},
    ),
    (
        "int-220",
        "post",
        "/32771/0",
        CF.LWM2M_JSON,
        b'{"bn":"/32771/0/","e":[{"n":"2","v":56},{"n":"0","sv":"json"}]}',
        {"/32771/0/2": 56, "/32771/0/0": "json"},
    ),
    (
        "int-234",
        "post",
        "/32771/0",
        CF.SENML_JSON,
        b'[{"bn":"/32771/0/","n":"2","v":57},{"n":"6","v":1700000999},{"n":"1","vd":"AQI"}]',
        {"/32771/0/2": 57, "/32771/0/6": 1_700_000_999, "/32771/0/1": b"\x01\x02"},
    ),
    (
        "int-233",
        "post",
        "/32771/0",
        CF.SENML_CBOR,
        cbor2.dumps([{-2: "/32771/0/", 0: "4", 2: 2.25}, {0: "5", 4: False}]),
        {"/32771/0/4": 2.25, "/32771/0/5": False},
    ),
    (
        "int-212",
        "post",
        "/32771/0",
        CF.LWM2M_CBOR,
        cbor2.dumps({32771: {0: {2: 58, 0: "cbor"}}}),
        {"/32771/0/2": 58, "/32771/0/0": "cbor"},
    ),
    (
        "int-226",
        "put",
        "/32771/0",
        CF.SENML_JSON,
        b'[{"bn":"/32771/0/","n":"0","vs":"replaced"},{"n":"2","v":1}]',
        {"/32771/0/0": "replaced", "/32771/0/2": 1},
    ),
]


@pytest.mark.parametrize(
    ("test_id", "method", "path", "content_format", "payload", "after"), WRITES
)
async def test_LightweightM2M_1_1_int_2xx_write_in_every_format(
    gw: Gateway,
    send: Sender,
    test_id: str,
    method: str,
    path: str,
    content_format: int,
    payload: bytes,
    after: dict[str, object],
) -> None:
    """LightweightM2M-1.1-int-205, 212, 215, 220, 233, 234 (setting basic information in each
    format), int-226 (partial update, POST) and int-227 (replace, PUT): 2.04, and the values
    land in the tree with their types."""
    response = await send(method, path, content_format=int(content_format), payload=payload)
    assert response.code == "2.04", (test_id, response)
    for where, value in after.items():
        assert gw.value(where) == value, (test_id, where)


async def test_LightweightM2M_1_1_int_226_replace_drops_what_it_does_not_name(
    gw: Gateway, send: Sender
) -> None:
    """PUT on an instance replaces it: optional writable resources it does not carry go."""
    payload = b'[{"bn":"/32771/0/","n":"0","vs":"only"}]'
    response = await send("put", "/32771/0", content_format=110, payload=payload)
    assert response.code == "2.04"
    assert not gw.tree.has(Path.parse("/32771/0/2"))
    assert gw.value("/32771/0/9") == "P-1"  # read-only: the server cannot remove it


@pytest.mark.parametrize("content_format", [CF.SENML_JSON, CF.SENML_CBOR])
async def test_LightweightM2M_1_1_int_229_236_read_composite(
    gw: Gateway, send: Sender, content_format: int
) -> None:
    """LightweightM2M-1.1-int-229 (Read-Composite, FETCH) with int-236 (partial presence:
    an absent instance is left out) and int-235 (the root path: everything but /0)."""
    codec = composite_codec_for(content_format)
    wanted = [Path.parse(p) for p in ("/3303/0/5700", "/32771/0/8", "/3303/9", "/3/0/0")]
    response = await send(
        "fetch",
        "/",
        content_format=int(content_format),
        accept=int(content_format),
        payload=codec.encode_paths(wanted),
    )
    assert response.code == "2.05"
    expected = [r for p in wanted if gw.tree.has(p) for r in gw.tree.read(p)]
    expected.sort(key=lambda r: r.path.sort_key())
    assert pairs(codec.decode(response.payload, ROOT, gw.tree.definitions)) == pairs(expected)

    response = await send(
        "fetch", "/", content_format=int(content_format), payload=codec.encode_paths([ROOT])
    )
    assert response.code == "2.05"
    everything = codec.decode(response.payload, ROOT, gw.tree.definitions)
    assert {r.path.ids[0] for r in everything} == {1, 3, 4, 3303, 32771}


@pytest.mark.parametrize(
    ("content_format", "payload"),
    [
        (
            CF.SENML_JSON,
            b'[{"n":"/3303/0/5750","vs":"attic"},{"n":"/32771/0/2","v":9},'
            b'{"n":"/32771/0/8/1","v":5}]',
        ),
        (
            CF.SENML_CBOR,
            cbor2.dumps(
                [
                    {0: "/3303/0/5750", 3: "attic"},
                    {0: "/32771/0/2", 2: 9},
                    {0: "/32771/0/8/1", 2: 5},
                ]
            ),
        ),
    ],
)
async def test_LightweightM2M_1_1_int_230_257_write_composite(
    gw: Gateway, send: Sender, content_format: int, payload: bytes
) -> None:
    """LightweightM2M-1.1-int-230 and int-257 (Write-Composite, iPATCH): values of several
    objects land together."""
    response = await send("ipatch", "/", content_format=int(content_format), payload=payload)
    assert response.code == "2.04"
    assert gw.value("/3303/0/5750") == "attic"
    assert gw.value("/32771/0/2") == 9
    assert gw.value("/32771/0/8/1") == 5


async def test_execute_with_arguments(gw: Gateway, send: Sender) -> None:
    """Execute (POST on a resource) hands the argument list to the handler as sent; no
    payload is no arguments; a broken list (a space is no argument character) is 4.00 and
    runs nothing."""
    arguments = "0='a.b',3,7='!#x'"
    response = await send("post", "/32771/0/10", content_format=0, payload=arguments)
    assert response.code == "2.04"
    assert gw.executed.get_nowait() == ("/32771/0/10", arguments)
    assert (await send("post", "/3303/0/5605")).code == "2.04"
    assert gw.executed.get_nowait() == ("/3303/0/5605", "")
    assert (await send("post", "/32771/0/10", content_format=0, payload="0='a b'")).code == "4.00"
    assert gw.executed.empty()


async def test_create_and_delete(gw: Gateway, send: Sender, node_server: LwM2MNodeServer) -> None:
    """Create (POST on an object) makes the instance the payload names and answers its
    location; Delete removes it. Each sends the server a new object list. The payload
    carries writable resources only: a read-only one (the sensor's value) is 4.05, and an
    instance without its mandatory resources (the sensor's value again) is 4.00."""
    refused = b'[{"bn":"/3303/5/","n":"5700","v":18.5},{"n":"5750","vs":"cellar"}]'
    assert (await send("post", "/3303", content_format=110, payload=refused)).code == "4.05"
    unmeasured = b'[{"bn":"/3303/5/","n":"5750","vs":"cellar"}]'
    assert (await send("post", "/3303", content_format=110, payload=unmeasured)).code == "4.00"
    payload = b'[{"bn":"/3201/5/","n":"5550","vb":true},{"n":"5750","vs":"cellar"}]'
    response = await send("post", "/3201", content_format=110, payload=payload)
    assert response.code == "2.01"
    assert response.options.get("Location-Path") == "3201/5"
    assert gw.value("/3201/5/5750") == "cellar"
    update = await node_server.wait_event("update", endpoint=ENDPOINT, timeout=20.0)
    assert "</3201/5>" in str(update.data["payload"]).split(",")

    # TLV without an instance wrapper: the client picks the lowest free ID.
    state = bytes.fromhex("e115ae01")  # resource 5550 (16-bit ID), 1 byte: true
    tlv = state + bytes.fromhex("e61676") + b"garage"  # resource 5750, 6 bytes
    response = await send("post", "/3201", content_format=11542, payload=tlv)
    assert (response.code, response.options.get("Location-Path")) == ("2.01", "3201/0")
    assert gw.value("/3201/0/5750") == "garage"

    assert (await send("delete", "/3201/5")).code == "2.02"
    assert not gw.tree.has(Path.parse("/3201/5"))
    assert (await send("delete", "/3201/5")).code == "4.04"


async def test_LightweightM2M_1_1_int_261_write_attributes_then_discover(send: Sender) -> None:
    """LightweightM2M-1.1-int-261 (Write-Attributes on a multiple resource) and int-260: the
    attributes written show in Discover, at the level they were written; an empty value
    removes one."""
    assert (await send("put", "/32771/0/8?pmin=10&pmax=120")).code == "2.04"
    assert (await send("put", "/32771/0/2?gt=50&lt=10&st=5")).code == "2.04"
    assert (await send("put", "/32771/0?pmax=300")).code == "2.04"
    links = (await send("get", "/32771/0", accept=40)).payload.decode().split(",")
    assert links[0] == "</32771/0>;pmax=300"
    assert "</32771/0/8>;dim=2;pmin=10;pmax=120" in links
    assert "</32771/0/2>;gt=50;lt=10;st=5" in links
    assert (await send("put", "/32771/0/8?pmin")).code == "2.04"
    links = (await send("get", "/32771/0/8", accept=40)).payload.decode().split(",")
    assert links[0] == "</32771/0/8>;dim=2;pmax=120"
