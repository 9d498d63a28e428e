"""Block1 assembly within bounds (``bridged.engine.blockwise``): what is kept, and for how
long, with a clock the test moves."""

from __future__ import annotations

from dataclasses import dataclass

import aiocoap
import pytest
from aiocoap.blockwise import ContinueException
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption
from timers import Clock

from bridged.engine.blockwise import Block1Assembler, Refused
from bridged.engine.pacing import EXCHANGE_LIFETIME


@dataclass(frozen=True)
class Peer:
    blockwise_key: str


def block(number: int, *, more: bool = True, path: str = "a", peer: str = "p") -> aiocoap.Message:
    message = aiocoap.Message(code=Code.PUT, uri_path=[path], payload=bytes([number]) * 16)
    message.opt.block1 = BlockOption.BlockwiseTuple(number, more, 0)  # 16-byte blocks
    message.remote = Peer(peer)
    return message


async def test_blocks_are_joined_once_the_last_arrives() -> None:
    assembler = Block1Assembler(64)
    for n in range(3):
        with pytest.raises(ContinueException):
            assembler.feed_and_take(block(n))
    whole = assembler.feed_and_take(block(3, more=False))
    assert whole.payload == bytes([0]) * 16 + bytes([1]) * 16 + bytes([2]) * 16 + bytes([3]) * 16
    assert len(assembler) == 0


async def test_an_unfinished_transfer_is_dropped_after_the_exchange_lifetime() -> None:
    clock = Clock(0.0)
    assembler = Block1Assembler(1024, clock=clock)
    with pytest.raises(ContinueException):
        assembler.feed_and_take(block(0))
    clock.now = EXCHANGE_LIFETIME - 1
    with pytest.raises(ContinueException):
        assembler.feed_and_take(block(1))  # in time: the lifetime counts from the last block
    clock.now += EXCHANGE_LIFETIME
    assembler.expire()
    assert len(assembler) == 0
    with pytest.raises(Refused) as late:
        assembler.feed_and_take(block(2))
    assert late.value.to_message().code == Code.REQUEST_ENTITY_INCOMPLETE


async def test_the_oldest_transfers_go_beyond_the_bound_on_their_number() -> None:
    assembler = Block1Assembler(1024, max_transfers=2)
    for path in ("a", "b", "c"):
        with pytest.raises(ContinueException):
            assembler.feed_and_take(block(0, path=path))
    assert len(assembler) == 2
    with pytest.raises(Refused):
        assembler.feed_and_take(block(1, path="a"))
    with pytest.raises(ContinueException):
        assembler.feed_and_take(block(1, path="c"))


async def test_a_short_intermediate_block_is_a_bad_request() -> None:
    assembler = Block1Assembler(1024)
    short = block(0)
    short.payload = b"abc"
    with pytest.raises(Refused) as refused:
        assembler.feed_and_take(short)
    assert refused.value.to_message().code == Code.BAD_REQUEST
