"""The engine's registration interface against aiocoap-rd (--lwm2m-compat), an RFC 9176
resource directory: Register, Update and De-register, checked through the directory's own
lookup interface. Its Location-Path ("/reg/1/": three segments, the last empty) catches a
client that assumes "/rd/<id>".
"""

from __future__ import annotations

import asyncio

from bridged.engine.registration import EventKind, RegistrationEvent
from bridged.objects.paths import Path
from peers.aiocoap_rd import RDFactory
from peers.gateway import ENDPOINT, Gateway, client_port, registration_complete, running_client

pytest_plugins = ["peers.fixtures"]


async def next_event(events: asyncio.Queue[RegistrationEvent], kind: EventKind) -> None:
    async with asyncio.timeout(10.0):
        while (await events.get()).kind is not kind:
            pass


async def test_LightweightM2M_1_1_int_101_102_103_with_a_resource_directory(
    aiocoap_rd: RDFactory, gw: Gateway, events: asyncio.Queue[RegistrationEvent]
) -> None:
    """LightweightM2M-1.1-int-101 (Register), int-102 (Update) and int-103 (De-register):
    the directory lists the endpoint with the registration's parameters and object links,
    takes an empty Update, gets a new object list by a fresh Register when it refuses an
    Update with a body, and forgets the endpoint on De-register."""
    async with aiocoap_rd() as rd:
        async with running_client(gw, rd.uri, lifetime=600, events=events) as client:
            registered = await registration_complete(events)
            [endpoint] = await rd.endpoints(ep=ENDPOINT)
            base = f"coap://127.0.0.1:{client_port(client)}"
            assert endpoint.attributes["base"] == base
            assert endpoint.attributes["lwm2m"] == "1.1"
            assert endpoint.attributes["b"] == "U"
            # The client keeps the directory's Location-Path verbatim, empty segment included.
            registrar = client.sessions[0].registrar
            assert "/" + "/".join(registrar.location or ()) == endpoint.target
            assert registered.detail == endpoint.target
            targets = {link.target for link in await rd.resources(ep=ENDPOINT)}
            assert {f"{base}/3/0", f"{base}/3303/0", f"{base}/32771/0"} <= targets
            assert not any(t.startswith(f"{base}/0") for t in targets)

            # An empty Update (the server executed /1/0/8) refreshes the registration.
            gw.tree.execute(Path.parse("/1/0/8"))
            await next_event(events, EventKind.UPDATE_COMPLETE)

            # RFC 9176 has no Update with a body, so the directory refuses the one that carries
            # the new object list (4.00); the client registers afresh, which the directory takes
            # as the same endpoint's new registration.
            gw.tree.create_instance(3303, 1, [(5750, "porch")])
            await next_event(events, EventKind.UPDATE_FAILURE)
            await registration_complete(events)
            [endpoint] = await rd.endpoints(ep=ENDPOINT)
            assert f"{base}/3303/1" in {link.target for link in await rd.resources(ep=ENDPOINT)}
        await next_event(events, EventKind.DEREGISTERED)
        assert await rd.endpoints(ep=ENDPOINT) == []
