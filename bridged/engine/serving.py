"""The engine's server context, and the inline answer: a plain Read answered as it arrives.

aiocoap 0.4.17 serves every request through its token layer (a ``Pipe`` with its callbacks,
the token manager's table of running requests), then a task of its own (``Context.
render_to_pipe`` runs the site behind a second pipe that turns exceptions into error
responses), and sends the response through the message layer's ``send_message``, which encodes
it twice (once to keep for duplicates, once to send). For a server's Read of the gateway's own
objects that machinery was most of the CPU the request cost: nothing in such a Read awaits
anything, and its response is the piggybacked ACK of the request.

So the message layer (``bridged.engine.coap.BoundedMessageManager._process_request``) first
asks the context's site for the response at once (:class:`ServingContext`'s ``answer_now``:
``answer_now`` of ``bridged.engine.options.CheckedSite``, ``bridged.engine.site.ClientSite``
and ``bridged.engine.dm.DeviceManagementResource``): a request the option check refuses, and a
plain Read (no Observe, no Block1, not a later Block2 block) that device management answers
from the tree. The response is the one the general path gives (the same reply, through
aiocoap's own Block2 handling), sent as the piggybacked ACK, encoded once: those bytes are what
a duplicate of the request gets again (:class:`Encoded`). Anything else goes the general way:
a NON request (its response needs a Message ID of its own), one with No-Response, one whose
token is still in use by a running request (aiocoap ends that one first), and anything a site
cannot answer without awaiting (a node's value, an observation, a block-wise upload, the
Bootstrap interface). Who is served (``peers_only``) is decided before this, in the message
layer.

The hook is the message layer's ``_process_request``, which the engine's message manager
already replaces; the site's side is ``answer_now(request) -> Message | None``, the engine's
own interface. What the inline answer relies on in aiocoap (``MessageManager.
_process_request``, ``_send_via_transport``, ``TokenManager.incoming_requests``, a message
interface's ``send`` reading only ``remote`` and ``encode()``) is listed, with the rest of the
engine's aiocoap internals, in ``tests/unit/test_aiocoap_internals.py``, which fails when an
aiocoap release changes any of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiocoap
from aiocoap import interfaces

from .options import CheckedSite

AnswerNow = Callable[[aiocoap.Message], aiocoap.Message | None]
"""A site's response to a request, given at once; None: the request takes the general path."""


class ServingContext(aiocoap.Context):
    """An aiocoap context serving ``site`` behind the option check (``CheckedSite``), whose
    message layer answers at once what the site can (``answer_now``, the module docstring)."""

    def __init__(self, site: Any, **kwargs: Any) -> None:
        super().__init__(serversite=None if site is None else CheckedSite(site), **kwargs)

    @property
    def answer_now(self) -> AnswerNow | None:
        site = self.serversite
        return None if site is None else site.answer_now


class Encoded:
    """A message already encoded, for a message interface's ``send``: aiocoap's transports read
    only a message's ``remote`` and ``encode()`` there. What the inline answer sends, and what
    a duplicate request gets again, without decoding and encoding the bytes once more."""

    __slots__ = ("data", "remote")

    def __init__(self, remote: interfaces.EndpointAddress, data: bytes) -> None:
        self.remote = remote
        self.data = data

    def encode(self) -> bytes:
        return self.data
