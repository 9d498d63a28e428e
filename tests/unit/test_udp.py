"""The receive guard's pure part: the 4.13 answer to a datagram too large to receive whole."""

from __future__ import annotations

import aiocoap
import pytest
from aiocoap import resource
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type

from bridged.engine.udp import RECEIVE_LIMIT, guard_received_datagrams, refusal_of_truncated


def header(type_: int, code: int, mid: int, token: bytes) -> bytes:
    return bytes([0x40 | type_ << 4 | len(token), code]) + mid.to_bytes(2, "big") + token


def test_a_confirmable_request_gets_a_piggybacked_4_13() -> None:
    # the options are cut in the middle: only header and token are read
    refusal = refusal_of_truncated(header(0, 3, 0x1301, b"\x07\x08") + b"\xb5327")
    assert refusal is not None
    assert (refusal.mtype, refusal.code) == (Type.ACK, Code.REQUEST_ENTITY_TOO_LARGE)
    assert (refusal.mid, refusal.token) == (0x1301, b"\x07\x08")
    assert str(RECEIVE_LIMIT).encode() in refusal.payload
    refusal.encode()  # complete enough for the wire


@pytest.mark.parametrize(
    "datagram",
    [
        header(1, 3, 1, b"\x01") + b"\xff" + b"y" * 10,  # NON request
        header(0, 0x45, 1, b"\x01"),  # CON response
        header(2, 0, 1, b""),  # empty ACK
        header(3, 0, 1, b""),  # Reset
        b"\x80\x01\x12\x34",  # CoAP version 2
        bytes([0x49, 1, 0, 1]) + b"\x00" * 9,  # token length 9 (reserved)
        bytes([0x48, 1, 0, 1, 0]),  # token cut short
        b"\x40\x01",  # shorter than a header
        b"",
    ],
)
def test_anything_else_gets_no_answer(datagram: bytes) -> None:
    assert refusal_of_truncated(datagram) is None


async def test_the_guard_covers_the_udp_transport() -> None:
    context = await aiocoap.Context.create_server_context(
        resource.Site(), bind=("127.0.0.1", 0), transports=["udp6"]
    )
    try:
        assert guard_received_datagrams(context) == 1
    finally:
        await context.shutdown()
