"""A request body sent in Block1 blocks (RFC 7959), the client's side: how a Send goes out.

aiocoap 0.4.17's block-wise client runs a task of its own per request and, per block, a
deep copy of the whole request (``Message.copy``: every option, recursively) and its whole
request machinery twice over (address lookup, a request object, a task). At a gateway's
maximum a Send is about seven 1,024-byte blocks, so that was the largest part of a Send's
cost in aiocoap (docs/benchmarks.md, "Readings upstream"). Here each block is one prepared
message: the request's options added once more (no copy of them), a slice of the body, and
one exchange without aiocoap's block-wise layer. What aiocoap did not do is done as the RFC
says:

* blocks go one at a time, each after the server's 2.31 Continue to the one before (or a
  success with its Block1, a server acting on each block as it comes, §2.3);
* a smaller block size in the server's answer is taken for the rest of the body, from the
  same byte on (late negotiation, §2.3: a server may ask for a smaller size in any answer);
* 4.13 Request Entity Too Large with a Block1 option (or a Size1 below the block size) is a
  server that takes smaller blocks (§2.9.3): the body starts again from its first byte in
  blocks of that size, or one size smaller where the answer names none (aiocoap dropped the
  answer's Block1, and failed outright on one to a body it sent in one message). The size that
  went through is the caller's to keep for the next body. A server whose bound is the whole
  body keeps answering 4.13 down to 16-byte blocks, and that 4.13 is the answer;
* a success without a Block1 option to a block that is not the last is a server that ignored
  the option and acted on part of the body: never taken as the whole request's success (a
  Send's readings would be marked delivered with most of them never read), but refused as a
  broken answer (``BrokenBlockwise``), as is an answer asking for more after the last block
  or acknowledging a block that was not sent. Any other error to any block is the answer.

A body of one block or less is one message without Block1. Each block is retransmitted by the
message layer as any confirmable request; the caller bounds the whole body in time
(``Registrar.transfer``: one request timeout, as aiocoap's block-wise request had). Request-Tag
(RFC 9175) is not needed: one body is in flight at a time, and a restart begins at block 0.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

import aiocoap
from aiocoap.numbers.codes import Code
from aiocoap.numbers.constants import MAX_REGULAR_BLOCK_SIZE_EXP
from aiocoap.numbers.optionnumbers import OptionNumber

from bridged.objects.errors import LwM2MError, coap_code

Exchange = Callable[[aiocoap.Message], Awaitable[aiocoap.Message]]
"""Sends one message as a request (no block-wise of its own) and returns the response."""

LARGEST = MAX_REGULAR_BLOCK_SIZE_EXP
"""Size exponent 6: 1,024-byte blocks, the largest over UDP and DTLS (7 is BERT, CoAP over
TCP's)."""

_PER_BLOCK = (OptionNumber.BLOCK1, OptionNumber.SIZE1)
"""The options each block sets for itself, not taken from the request."""


class BrokenBlockwise(LwM2MError):
    """The server's answer to a block breaks the block-wise transfer (see the module
    docstring): the request is not known to have arrived whole. 5.02 Bad Gateway: the gateway
    had an invalid answer from the server upstream."""

    code = coap_code(5, 2)


class Transferred(NamedTuple):
    """The server's final answer to a body, and the size exponent of the blocks it went in
    (the last size tried when the answer is a 4.13)."""

    response: aiocoap.Message
    exponent: int


def block_size(exponent: int) -> int:
    return 1 << (exponent + 4)


async def send_in_blocks(
    exchange: Exchange, request: aiocoap.Message, exponent: int
) -> Transferred:
    """Send ``request`` (its options, remote and payload; no Block1 of its own) in blocks of
    size ``exponent`` or smaller, as the server asks (see the module docstring)."""
    body = request.payload
    while True:
        response, exponent = await _transfer(exchange, request, body, exponent)
        if response.code != Code.REQUEST_ENTITY_TOO_LARGE:
            return Transferred(response, exponent)
        smaller = smaller_exponent(response, exponent)
        if smaller is None:
            return Transferred(response, exponent)
        exponent = smaller


def smaller_exponent(refusal: aiocoap.Message, exponent: int) -> int | None:
    """The block size exponent to try after ``refusal`` (4.13) to blocks of ``exponent``: the
    size its Block1 names, or the largest within its Size1, when smaller; else one size
    smaller; None when the smallest was refused (RFC 7959 §2.9.3)."""
    hint = refusal.opt.block1
    if hint is not None and hint.size_exponent < exponent:
        return int(hint.size_exponent)
    size1: int | None = refusal.opt.size1
    if size1 is not None and 16 <= size1 < block_size(exponent):
        return size1.bit_length() - 5  # the largest block of at most size1 bytes
    return exponent - 1 if exponent > 0 else None


async def _transfer(
    exchange: Exchange, request: aiocoap.Message, body: bytes, exponent: int
) -> tuple[aiocoap.Message, int]:
    """One transfer of ``body`` from its first byte; the final answer and the size it ended
    with (smaller than ``exponent`` when the server asked for that on the way)."""
    if len(body) <= block_size(exponent):
        return await exchange(_message(request, body)), exponent
    offset = 0
    while True:
        size = block_size(exponent)
        number = offset // size
        end = offset + size
        more = end < len(body)
        block = _message(request, body[offset:end])
        block.opt.block1 = (number, more, exponent)
        if number == 0:
            block.opt.size1 = len(body)
        response = await exchange(block)
        acknowledged = response.opt.block1
        if not more:
            if response.code == Code.CONTINUE or (acknowledged and acknowledged.more):
                raise BrokenBlockwise(f"the server asked for more than the {len(body)} bytes")
            return response, exponent
        if not response.code.is_successful():
            return response, exponent  # 4.13 included: the caller decides
        if acknowledged is None:
            raise BrokenBlockwise(
                f"the server answered {response.code} to block {number} of {len(body)} bytes,"
                " without Block1: it did not take the body block-wise"
            )
        if acknowledged.block_number != number:
            raise BrokenBlockwise(
                f"the server acknowledged block {acknowledged.block_number} for block {number}"
            )
        offset = end
        if acknowledged.size_exponent < exponent:  # late negotiation: from the same byte on
            exponent = acknowledged.size_exponent


def _message(request: aiocoap.Message, payload: bytes) -> aiocoap.Message:
    """A message of ``request``'s code, remote and options with ``payload``: the options are
    added as they are (immutable values), not deep-copied as ``Message.copy`` does."""
    message = aiocoap.Message(code=request.code, payload=payload)
    message.remote = request.remote
    for option in request.opt.option_list():
        if option.number not in _PER_BLOCK:
            message.opt.add_option(option)
    return message
