"""Every notification of an observation the node server made, none dropped, each whole.

aiocoap's ``async for notification in request.observation`` is a lossy queue: its iterator
keeps one notification not yet taken, and a second that arrives before the consumer ran
replaces it. CoAP Observe allows that for a resource's state, but a LwM2M 1.0 node reports
its readings by notifying (sources.py), and two notifications of one observation reach the
gateway in the same turn of the loop whenever one serial read carries both (the RCP reader
hands over a busy line's frames together, pacing.py): the first reading was lost. The
callbacks the iterator itself is built on see each one; aiocoap 0.4.17 marks them deprecated
for applications, so they are registered as its iterator registers them
(``_suppress_deprecation``), pinned in tests/unit/test_aiocoap_internals.py.

A node's NON notification, the report of every node that observes its readings, is decoded by
the link's message interface (``coap_notification``: no aiocoap message is made of it), matched
to its observation there and handed over here directly (``LowpanMessageInterface.observing``):
aiocoap's message manager, token manager, pipe and request generator do nothing for it but
find the callback (responses are not deduplicated, and a NON is not acknowledged). What they do
check is kept here, for every notification whichever way it came: RFC 7641 §3.4's order
(``Order``: an older notification, or one repeated, is not taken). A CON notification (ACK), a
last response without Observe, a notification in blocks or with options the link's decoder
leaves to aiocoap, and any token not observed (a CON gets an RST) still go through aiocoap.

Without aiocoap's block-wise wrapper, a notification larger than the node's block size comes
as its first block (Block2, RFC 7959 §3.4), and the node server asks for the rest itself
(``rest_of``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import aiocoap
from aiocoap import error
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption

from .coap_link import LowpanAddress
from .coap_notification import Notification

OBSERVE_WRAP = 2**23
"""RFC 7641 §3.4: a notification whose Observe number is within this distance after the last
one taken is newer (the numbers are 24 bits and wrap)."""
OBSERVE_RESET = 128.0
"""RFC 7641 §3.4: seconds after which a notification is newer whatever its number."""


class Order:
    """RFC 7641 §3.4's order of one observation's notifications: the Observe number and arrival
    time of the newest taken so far (the first answer's to begin with)."""

    def __init__(self, first: int | None, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._number = first
        self._at = clock()

    def newer(self, number: int | None) -> bool:
        """Whether the notification with Observe number ``number`` is to be taken (and is then
        the newest); a last response (no Observe number) always is."""
        if number is None:
            return True
        at, last = self._clock(), self._number
        if not (
            last is None
            or (last < number and number - last < OBSERVE_WRAP)
            or (last > number and last - number > OBSERVE_WRAP)
            or at > self._at + OBSERVE_RESET
        ):
            return False
        self._number, self._at = number, at
        return True


def notification_of(message: aiocoap.Message) -> Notification:
    """What the node server takes of a response aiocoap decoded (``Notification``)."""
    return Notification(
        message.token,
        message.code,
        message.opt.observe,
        message.opt.content_format,
        message.payload,
    )


async def each_notification(
    request: aiocoap.protocol.Request,
    first: aiocoap.Message,
    on_notification: Callable[[aiocoap.Message | Notification], None],
) -> None:
    """Call ``on_notification`` with every notification of ``request``'s observation, whose
    first answer was ``first``, in the order they arrive and newer than those taken before
    (``Order``), until the observation ends: returns when the server ends it (not observable
    any more, cancelled), raises what else ended it. Cancelling the wait stops the calls.
    A notification comes as the ``Notification`` the link decoded, or as the message aiocoap
    decoded when it was one the link leaves to aiocoap (``coap_notification``)."""
    observation = request.observation
    assert observation is not None
    ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    live = True
    order = Order(first.opt.observe)

    def notified(message: aiocoap.Message) -> None:
        if live and order.newer(message.opt.observe):
            on_notification(message)

    def decoded(notification: Notification) -> None:
        if live and order.newer(notification.observe):
            on_notification(notification)

    def failed(exc: Exception) -> None:
        if ended.done():
            return
        if isinstance(exc, (error.NotObservable, error.ObservationCancelled)):
            ended.set_result(None)
        else:
            ended.set_exception(exc)

    observation.register_callback(notified, _suppress_deprecation=True)
    observation.register_errback(failed, _suppress_deprecation=True)
    remote = first.remote
    direct = (
        remote.interface.observing(first.token, remote, decoded)
        if isinstance(remote, LowpanAddress)
        else contextlib.nullcontext()
    )
    try:
        with direct:
            await ended
    finally:
        live = False


async def rest_of(
    context: aiocoap.Context, get: aiocoap.Message, first: aiocoap.Message
) -> aiocoap.Message | None:
    """The whole representation whose first block is ``first`` (a notification with Block2),
    its other blocks asked for by ``get`` (the resource's GET, without Observe) one after the
    other in the notification's block size, as RFC 7959 §3.4 has the client do. None when the
    node serves another representation by then (another ETag, or blocks that do not follow
    on: it changed and keeps no copy of the one it notified), or answers no block: the blocks
    of two representations are never glued (§2.4), and the caller reads the current one."""
    block = first.opt.block2
    assert block is not None
    payload = first.payload
    while block.more:
        asked = get.copy(
            block2=BlockOption.BlockwiseTuple(block.block_number + 1, False, block.size_exponent)
        )
        response = await context.request(asked, handle_blockwise=False).response
        block = response.opt.block2
        if (
            response.code != Code.CONTENT
            or block is None
            or block.start != len(payload)
            or response.opt.etag != first.opt.etag
        ):
            return None
        payload += response.payload
    return first.copy(payload=payload, block2=None)
