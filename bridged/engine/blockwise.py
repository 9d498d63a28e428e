"""Block-wise request bodies (Block1, RFC 7959), assembled within bounds.

aiocoap 0.4.17 assembles a Block1 body in its resources' ``Block1Spool`` before the resource
sees any of it: of any size (the engine's 64 KiB bound applied only to the finished body, so a
16 MiB body was taken in whole, and each block copied everything received so far), for as long
as blocks keep coming, and a block that does not follow on from the previous one raised a bare
``ValueError``, which became 5.00 with a traceback in the log.

``Block1Assembler`` takes its place on a resource (it has the spool's ``feed_and_take``):

* the first block past ``max_payload`` (or a first block whose Size1 announces more) ends the
  transfer with 4.13 Request Entity Too Large, carrying Size1 = ``max_payload`` (RFC 7959
  §2.9.3, §4), so nothing beyond the bound is kept; ``limit`` may give a request a bound of
  its own (a firmware package written to a node's /5/0/0 is larger than any other body);
* a block that is not the next one expected, or that comes without a transfer in progress,
  ends it with 4.08 Request Entity Incomplete (§2.9.2); a block of the wrong size is 4.00;
* a transfer whose next block has not come within ``lifetime`` (EXCHANGE_LIFETIME) is dropped,
  and at most ``max_transfers`` are kept at once (the oldest goes first);
* blocks are kept as a list and joined once, when the last one arrives.

Intermediate blocks are answered 2.31 Continue by aiocoap, as before.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import aiocoap
from aiocoap.blockwise import ContinueException, _extract_block_key
from aiocoap.error import RenderableError

from bridged.objects.errors import (
    BadRequest,
    LwM2MError,
    RequestEntityIncomplete,
    RequestEntityTooLarge,
)

from .pacing import EXCHANGE_LIFETIME

MAX_TRANSFERS = 8
"""How many unfinished Block1 bodies one resource keeps at once: a server writes one body at a
time, a few in parallel at most."""

BERT_EXPONENT = 7
"""Block size exponent 7: BERT (RFC 8323), where a block may carry several 1024-byte units."""


class Refused(RenderableError):
    """An engine error raised where aiocoap renders the response itself (its block-wise
    layer): the error's code and message, and for 4.13 the bound as Size1."""

    def __init__(self, error: LwM2MError, max_payload: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.max_payload = max_payload

    def to_message(self) -> aiocoap.Message:
        from .dm import error_reply, reply_message  # dm's resource imports this module

        message = reply_message(error_reply(self.error))
        if isinstance(self.error, RequestEntityTooLarge):
            message.opt.size1 = self.max_payload
        return message


@dataclass
class _Transfer:
    first: aiocoap.Message
    limit: int
    parts: list[bytes] = field(default_factory=list)
    received: int = 0
    last_seen: float = 0.0


class Block1Assembler:
    """A resource's Block1 assembly, bounded (see the module docstring). ``clock`` gives
    monotonic seconds (the event loop's time by default)."""

    def __init__(
        self,
        max_payload: int,
        *,
        lifetime: float = EXCHANGE_LIFETIME,
        max_transfers: int = MAX_TRANSFERS,
        clock: Callable[[], float] | None = None,
        limit: Callable[[aiocoap.Message], int] | None = None,
    ) -> None:
        self.max_payload = max_payload
        self._limit = limit or (lambda request: max_payload)
        self.lifetime = lifetime
        self.max_transfers = max_transfers
        self._clock = clock
        self._transfers: OrderedDict[Hashable, _Transfer] = OrderedDict()
        self._sweep: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._transfers)

    def feed_and_take(self, request: aiocoap.Message) -> aiocoap.Message:
        """The whole request once its last block is in (a request without Block1 as it is);
        raises aiocoap's ``ContinueException`` (2.31) for a block that is not the last, and
        ``Refused`` for what cannot be assembled."""
        if request.opt.block1 is None:
            return request
        try:
            return self._feed(request)
        except RequestEntityTooLarge as e:
            raise Refused(e, self._limit(request)) from None
        except LwM2MError as e:
            raise Refused(e, self.max_payload) from None

    def expire(self) -> None:
        """Drop the transfers whose next block is overdue."""
        now = self._now()
        for key in [k for k, t in self._transfers.items() if now - t.last_seen >= self.lifetime]:
            del self._transfers[key]

    def _feed(self, request: aiocoap.Message) -> aiocoap.Message:
        self.expire()
        block = request.opt.block1
        key = _extract_block_key(request)
        payload = bytes(request.payload)
        if block.block_number == 0:
            self._transfers.pop(key, None)
            announced = request.opt.size1
            limit = self._limit(request)
            if announced is not None and announced > limit:
                raise RequestEntityTooLarge(
                    f"a {announced}-byte body exceeds the {limit} bytes served"
                )
            transfer = _Transfer(request, limit)
        else:
            found = self._transfers.pop(key, None)
            if found is None:
                raise RequestEntityIncomplete(
                    f"block {block.block_number} without the blocks before it"
                )
            if block.start != found.received:
                raise RequestEntityIncomplete(
                    f"block {block.block_number} starts at byte {block.start};"
                    f" {found.received} bytes were received"
                )
            transfer = found
        full = len(payload) == block.size
        bert = block.size_exponent == BERT_EXPONENT and len(payload) % block.size == 0
        if block.more and not (full or bert):
            raise BadRequest(f"block {block.block_number} is not {block.size} bytes long")
        if transfer.received + len(payload) > transfer.limit:
            raise RequestEntityTooLarge(f"the body exceeds the {transfer.limit} bytes served")
        transfer.parts.append(payload)
        transfer.received += len(payload)
        if block.more:
            self._keep(key, transfer)
            raise ContinueException(block)
        return _assembled(transfer, request)

    def _keep(self, key: Hashable, transfer: _Transfer) -> None:
        transfer.last_seen = self._now()
        self._transfers[key] = transfer
        while len(self._transfers) > self.max_transfers:
            self._transfers.popitem(last=False)
        if self._sweep is None:
            self._schedule_sweep()

    def _schedule_sweep(self) -> None:
        """Wake when the oldest transfer falls overdue: the timer exists only while a transfer
        is unfinished."""
        due = min(t.last_seen for t in self._transfers.values()) + self.lifetime
        delay = max(0.0, due - self._now())
        self._sweep = asyncio.get_running_loop().call_later(delay, self._swept)

    def _swept(self) -> None:
        self._sweep = None
        self.expire()
        if self._transfers:
            self._schedule_sweep()

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()


def _assembled(transfer: _Transfer, last: aiocoap.Message) -> aiocoap.Message:
    """The first block's request with the whole body, answered on the last block's exchange
    (as aiocoap's spool does: the last block's token, Message ID, Block1 and Block2)."""
    request = transfer.first
    request.payload = b"".join(transfer.parts)
    request.opt.block1 = last.opt.block1
    request.token = last.token
    request.mid = last.mid
    if last.opt.block2 is not None:
        request.opt.block2 = last.opt.block2
    return request
