"""Access Control on the wire: two servers' endpoints over one tree, driven by libcoap.

Each server's requests reach its own ``DeviceManagement`` (its Short Server ID) over a real
aiocoap socket on 127.0.0.1; the requests come from libcoap's coap-client, an independent CoAP
implementation, so 4.01 and the Create that makes its sender owner are checked end to end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiocoap
import pytest

from bridged.engine.access import AccessControl, Right
from bridged.engine.dm import DeviceManagement, DeviceManagementResource
from bridged.objects.builtin import builtin_definitions
from bridged.objects.formats import ContentFormat, codec_for
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from peers.libcoap import CoapClient

pytest_plugins = ["peers.fixtures"]


def _port(context: aiocoap.Context) -> int:
    udp = context.request_interfaces[0].token_interface.message_interface
    return int(udp.transport.get_extra_info("socket").getsockname()[1])


@pytest.fixture
async def endpoints() -> AsyncIterator[tuple[AccessControl, dict[int, str]]]:
    """The base URI that reaches each server's DeviceManagement, by Short Server ID."""
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(3303, 0, [(5700, 21.5)])
    tree.create_instance(3303, 1, [(5700, 19.0)])
    access = AccessControl(tree)
    access.grant(3303, 0, owner=1, acl={0: int(Right.READ)})
    access.grant(3303, 1, owner=2, acl={})
    access.grant(3201, 65535, owner=65535, acl={1: int(Right.CREATE)})
    contexts: list[aiocoap.Context] = []
    uris: dict[int, str] = {}
    try:
        for ssid in (1, 2):
            dm = DeviceManagement(tree, server_id=ssid, access=access)
            context = await aiocoap.Context.create_server_context(
                DeviceManagementResource(dm), bind=("127.0.0.1", 0), transports=["udp6"]
            )
            contexts.append(context)
            uris[ssid] = f"coap://127.0.0.1:{_port(context)}"
        yield access, uris
    finally:
        for context in contexts:
            await context.shutdown()
        access.close()


async def test_each_server_gets_what_its_acl_grants_over_the_wire(
    endpoints: tuple[AccessControl, dict[int, str]], coap_client: Callable[..., CoapClient]
) -> None:
    access, uri = endpoints
    client = coap_client()
    refused = await client.request("get", f"{uri[1]}/3303/1/5700")
    assert refused.code == "4.01"
    owned = await client.request("get", f"{uri[2]}/3303/1/5700")
    assert (owned.code, owned.payload) == ("2.05", b"19.0")

    create = codec_for(ContentFormat.TLV).encode(
        [Record(Path.parse("/3201/5/5550"), True), Record(Path.parse("/3201/5/5750"), "attic")],
        Path((3201,)),
        access.tree.definitions,
    )
    denied = await client.request(
        "post", f"{uri[2]}/3201", content_format=ContentFormat.TLV, payload=create
    )
    assert denied.code == "4.01"
    created = await client.request(
        "post", f"{uri[1]}/3201", content_format=ContentFormat.TLV, payload=create
    )
    assert created.code == "2.01"
    entry = access.table.entry(3201, 5)
    assert entry is not None and entry.owner == 1
    acl = await client.request("get", f"{uri[2]}/2/{entry.iid}/3", accept=ContentFormat.TEXT)
    assert (acl.code, acl.payload) == ("2.05", b"1"), "any server reads /2"
    assert (await client.request("get", f"{uri[2]}/3201/5/5750")).code == "4.01"
    assert (await client.request("get", f"{uri[1]}/3201/5/5750")).code == "2.05"
