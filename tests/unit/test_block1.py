"""The Send's Block1 sender (bridged/engine/block1.py) against scripted answers: the blocks it
sends, and what it makes of answers that break a block-wise transfer (RFC 7959). The sender's
exchanges with real servers are in tests/integration/test_send.py and
tests/interop/test_leshan_send.py."""

from __future__ import annotations

from collections.abc import Callable

import aiocoap
import pytest
from aiocoap.numbers.codes import Code

from bridged.engine.block1 import BrokenBlockwise, send_in_blocks, smaller_exponent

Answer = Callable[[aiocoap.Message], aiocoap.Message]


def answer(
    code: Code, block1: tuple[int, bool, int] | None = None, **options: int
) -> aiocoap.Message:
    message = aiocoap.Message(code=code, **options)
    if block1 is not None:
        message.opt.block1 = block1
    return message


def continued(request: aiocoap.Message) -> aiocoap.Message:
    """A server taking every block: 2.31 with the block's own Block1, 2.04 to the last."""
    block = request.opt.block1
    if block is not None and block.more:
        return answer(Code.CONTINUE, (block.block_number, True, block.size_exponent))
    return answer(Code.CHANGED, None if block is None else tuple(block))  # type: ignore[arg-type]


async def sent(
    body: bytes, respond: Answer, exponent: int = 6
) -> tuple[list[aiocoap.Message], int]:
    """The blocks the sender sent for ``body`` and the exponent it ended with."""
    blocks: list[aiocoap.Message] = []

    async def exchange(message: aiocoap.Message) -> aiocoap.Message:
        blocks.append(message)
        return respond(message)

    request = aiocoap.Message(code=Code.POST, uri="coap://192.0.2.1/dp", payload=body)
    request.opt.content_format = 112
    done = await send_in_blocks(exchange, request, exponent)
    assert done.response.code == Code.CHANGED
    return blocks, done.exponent


async def test_a_body_goes_in_slices_of_itself_with_the_requests_options() -> None:
    body = bytes(range(256)) * 10  # 2,560 bytes: blocks of 1,024, 1,024 and 512
    blocks, exponent = await sent(body, continued)
    assert [b.payload for b in blocks] == [body[:1024], body[1024:2048], body[2048:]]
    assert [tuple(b.opt.block1) for b in blocks] == [(0, True, 6), (1, True, 6), (2, False, 6)]
    assert [b.opt.size1 for b in blocks] == [2560, None, None]
    assert all(tuple(b.opt.uri_path) == ("dp",) and b.opt.content_format == 112 for b in blocks)
    assert exponent == 6


async def test_a_body_of_one_block_is_one_message_without_block1() -> None:
    blocks, _ = await sent(b"x" * 1024, continued)
    assert [(b.payload, b.opt.block1, b.opt.size1) for b in blocks] == [(b"x" * 1024, None, None)]


async def test_late_negotiation_goes_on_from_the_next_byte_in_the_smaller_size() -> None:
    """RFC 7959 §2.3: the server acknowledges block 0 of 1,024 bytes asking for 256: the next
    block is number 4 of 256 bytes (byte 1,024 on)."""

    def smaller(request: aiocoap.Message) -> aiocoap.Message:
        block = request.opt.block1
        if not block.more:
            return answer(Code.CHANGED, (block.block_number, False, 4))
        return answer(Code.CONTINUE, (block.block_number, True, 4))

    body = bytes(2048)
    blocks, exponent = await sent(body, smaller)
    assert [tuple(b.opt.block1) for b in blocks] == [(0, True, 6)] + [
        (n, n < 7, 4) for n in range(4, 8)
    ]
    assert b"".join(b.payload for b in blocks) == body and exponent == 4


@pytest.mark.parametrize(
    ("refusal", "then"),
    [
        (answer(Code.REQUEST_ENTITY_TOO_LARGE, (0, False, 3)), 3),
        (answer(Code.REQUEST_ENTITY_TOO_LARGE, size1=300), 4),
        (answer(Code.REQUEST_ENTITY_TOO_LARGE, size1=65536), 5),
        (answer(Code.REQUEST_ENTITY_TOO_LARGE), 5),
    ],
    ids=["Block1 names it", "Size1 within a block", "Size1 is the body's bound", "no hint"],
)
async def test_a_413_starts_the_body_again_in_smaller_blocks(
    refusal: aiocoap.Message, then: int
) -> None:
    """RFC 7959 §2.9.3: the size a 4.13 names, or one size smaller."""
    refused: list[int] = []

    def server(request: aiocoap.Message) -> aiocoap.Message:
        block = request.opt.block1
        if block is not None and block.size_exponent == 6:
            refused.append(block.block_number)
            return refusal
        return continued(request)

    body = bytes(3000)
    blocks, exponent = await sent(body, server)
    assert refused == [0] and exponent == then
    assert b"".join(b.payload for b in blocks[1:]) == body


def test_the_smallest_block_refused_ends_the_steps() -> None:
    assert smaller_exponent(answer(Code.REQUEST_ENTITY_TOO_LARGE), 0) is None


@pytest.mark.parametrize(
    ("respond", "why"),
    [
        (lambda r: answer(Code.CHANGED), "did not take the body block-wise"),
        (lambda r: answer(Code.CONTINUE, (5, True, 6)), "acknowledged block 5 for block 0"),
        (
            lambda r: continued(r) if r.opt.block1.more else answer(Code.CONTINUE, (2, True, 6)),
            "asked for more",
        ),
    ],
    ids=["2.04 without Block1 to block 0", "another block acknowledged", "more after the last"],
)
async def test_an_answer_that_breaks_the_transfer_is_refused(respond: Answer, why: str) -> None:
    with pytest.raises(BrokenBlockwise, match=why):
        await sent(bytes(3000), respond)


async def test_an_error_to_a_block_is_the_answer() -> None:
    async def exchange(message: aiocoap.Message) -> aiocoap.Message:
        return answer(Code.NOT_FOUND)

    request = aiocoap.Message(code=Code.POST, uri="coap://192.0.2.1/dp", payload=bytes(3000))
    done = await send_in_blocks(exchange, request, 6)
    assert done.response.code == Code.NOT_FOUND
