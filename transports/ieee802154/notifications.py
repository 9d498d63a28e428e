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

Without aiocoap's block-wise wrapper, a notification larger than the node's block size comes
as its first block (Block2, RFC 7959 §3.4), and the node server asks for the rest itself
(``rest_of``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiocoap
from aiocoap import error
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption


async def each_notification(
    observation: aiocoap.protocol.ClientObservation,
    on_notification: Callable[[aiocoap.Message], None],
) -> None:
    """Call ``on_notification`` with every notification of ``observation``, in the order they
    arrive, until the observation ends: returns when the server ends it (not observable any
    more, cancelled), raises what else ended it. Cancelling the wait stops the calls."""
    ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    live = True

    def notified(message: aiocoap.Message) -> None:
        if live:
            on_notification(message)

    def failed(exc: Exception) -> None:
        if ended.done():
            return
        if isinstance(exc, (error.NotObservable, error.ObservationCancelled)):
            ended.set_result(None)
        else:
            ended.set_exception(exc)

    observation.register_callback(notified, _suppress_deprecation=True)
    observation.register_errback(failed, _suppress_deprecation=True)
    try:
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
