"""The server-initiated bootstrap's session without a network (``bootstrap_listener``): what
the Bootstrap-Server writes stays staged until an accepted Finish, a session it leaves silent
is dropped, and nothing is served while another bootstrap is under way."""

from __future__ import annotations

import asyncio
import json

import aiocoap
from aiocoap.message import UndecidedRemote
from aiocoap.numbers.codes import Code
from timers import armed

from bridged.engine.bootstrap import Staged
from bridged.engine.bootstrap_listener import ServerInitiatedResource
from bridged.objects.builtin import builtin_definitions
from bridged.objects.formats import ContentFormat
from bridged.objects.ids import SecurityMode
from bridged.objects.tree import ObjectTree

SILENCE = 247.0


def live_tree() -> ObjectTree:
    """A Bootstrap-Server account (/0/0) and one complete LwM2M Server account (ssid 1)."""
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(0, 0, [(0, "coap://bs.example"), (1, True), (2, SecurityMode.NOSEC)])
    tree.create_instance(
        0, 1, [(0, "coap://lwm2m.example"), (1, False), (2, SecurityMode.NOSEC), (10, 1)]
    )
    tree.create_instance(1, 0, [(0, 1), (1, 300), (6, False), (7, "U")])
    tree.create_instance(3, 0, [(0, "ACME")])
    return tree


def request(code: Code, *path: str, payload: bytes = b"") -> aiocoap.Message:
    message = aiocoap.Message(code=code, uri_path=path, payload=payload)
    if payload:
        message.opt.content_format = ContentFormat.SENML_JSON
    message.remote = UndecidedRemote("coap", "bs.example")
    return message


def listened(
    tree: ObjectTree, finished: list[Staged], busy: bool = False
) -> ServerInitiatedResource:
    return ServerInitiatedResource(
        tree,
        on_finish=finished.append,
        busy=lambda: busy,
        silence=SILENCE,
        supported_modes=(SecurityMode.NOSEC,),
        preferred_format=ContentFormat.SENML_CBOR,
    )


INCOMPLETE = json.dumps(
    [
        {"bn": "/0/5/", "n": "0", "vs": "coap://other.example"},
        {"n": "1", "vb": False},
        {"n": "2", "v": 3},
        {"n": "10", "v": 7},
    ]
).encode()
"""A Security instance whose Server instance never comes: Finish refuses it."""


async def test_a_silent_session_is_dropped_and_the_next_starts_from_the_live_tree() -> None:
    live, finished = live_tree(), []
    served = listened(live, finished)
    written = await served.render(request(Code.PUT, "0", "5", payload=INCOMPLETE))
    assert written.code == Code.CHANGED
    assert (await served.render(request(Code.POST, "bs"))).code == Code.NOT_ACCEPTABLE
    assert live.instance_ids(0) == [0, 1], "the live tree is as it was"
    loop = asyncio.get_running_loop()
    [silence] = [h for h in armed() if h.when() - loop.time() > SILENCE / 2]
    silence._run()  # the Bootstrap-Server said nothing for ``SILENCE`` seconds (it cancels it)
    finish = await served.render(request(Code.POST, "bs"))
    assert finish.code == Code.CHANGED, finish.payload
    [provisioned] = finished
    assert set(provisioned) == {(0, 0), (0, 1), (1, 0)}, "what was staged before is gone"
    assert [h for h in armed() if h.when() - loop.time() > SILENCE / 2] == []


async def test_nothing_is_served_while_another_bootstrap_is_under_way() -> None:
    live, finished = live_tree(), []
    served = listened(live, finished, busy=True)
    answer = await served.render(request(Code.POST, "bs"))
    assert answer.code == Code.SERVICE_UNAVAILABLE
    assert finished == []
