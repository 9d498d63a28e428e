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
aiocoap's own Block2 handling when it does not fit one message), sent as the piggybacked ACK,
encoded once (:func:`piggybacked`): those bytes are what a duplicate of the request gets
again (:class:`Encoded`). Anything else goes the general way:
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
from aiocoap.numbers.optionnumbers import OptionNumber
from aiocoap.numbers.types import ACK

from .dm import Reply, reply_message
from .options import CheckedSite
from .site import Answer

CONTENT_FORMAT = int(OptionNumber.CONTENT_FORMAT)
"""Option 12: below 13, so its delta from no option fits the option's first byte."""

AnswerNow = Callable[[aiocoap.Message], "Answer | None"]
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


def piggybacked(answer: Answer, request: aiocoap.Message) -> bytes:
    """``answer`` encoded as the ACK that carries it for the confirmable ``request``.

    A Reply (a response that fits one message, the inline Read's usual one: code, at most a
    Content-Format, payload) is encoded here, in the form aiocoap gives it (RFC 7252 §3: the
    header, the token, the option with its delta and length in one byte, the payload marker),
    without building aiocoap's message and its options for it; the Content-Format is a uint
    option, 0 as no bytes. Anything else (a Location, aiocoap's message of a first Block2
    block) is aiocoap's encoding. ``tests/integration/test_inline_read.py`` checks the two
    give the same bytes."""
    if isinstance(answer, Reply) and not answer.location:
        token: bytes = request.token
        # version 1, type ACK (2), token length; code; the request's Message ID; the token
        header: bytes = bytes((0x60 | len(token), answer.code, request.mid >> 8, request.mid & 255))
        header += token
        content_format = answer.content_format
        if content_format is not None:
            value = content_format.to_bytes((content_format.bit_length() + 7) // 8, "big")
            header += bytes((CONTENT_FORMAT << 4 | len(value),)) + value
        return header + b"\xff" + answer.payload if answer.payload else header
    response = reply_message(answer) if isinstance(answer, Reply) else answer
    response.mtype, response.mid, response.token = ACK, request.mid, request.token
    return bytes(response.encode())
