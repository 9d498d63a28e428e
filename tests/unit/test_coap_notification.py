"""The node-facing CoAP's own decoder of a NON notification (transports/ieee802154/
coap_notification.py): vectors, aiocoap as the oracle, and garbage.

The vectors are assembled byte by byte by RFC 7252 §3's message format (RFC 7252 and RFC 7641
give their examples as fields, not bytes): RFC 7641 Appendix A's notification (Token 0x4a,
Observe, Max-Age 15, "22.8 Cel"), a LwM2M node's (an 8-byte token, a 3-byte Observe, the
LwM2M TLV Content-Format 11542), and the messages the decoder leaves to aiocoap. Each is also
decoded by aiocoap, an independent implementation, and hypothesis compares the two on every
message aiocoap encodes and on arbitrary bytes.
"""

from __future__ import annotations

import pytest
from aiocoap import CON, NON, Message
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption
from hypothesis import given
from hypothesis import strategies as st

from bridged.transports.ieee802154.coap_notification import (
    CoapDecodeError,
    Notification,
    decode_notification,
)
from bridged.transports.ieee802154.notifications import notification_of

RFC7641 = "51 45 7b51 4a 612c 810f ff 32322e382043656c"
"""NON 2.05, MID 0x7b51, Token 0x4a, Observe 44, Max-Age 15, payload "22.8 Cel"."""
LWM2M = "58 45 0001 0102030405060708 63010203 622d16 ff c800"
"""NON 2.05, an 8-byte token, Observe 0x010203, Content-Format 11542 (TLV), a TLV payload."""


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (RFC7641, Notification(b"\x4a", Code.CONTENT, 44, None, b"22.8 Cel")),
        (
            LWM2M,
            Notification(bytes(range(1, 9)), Code.CONTENT, 0x010203, 11542, b"\xc8\x00"),
        ),
        # Observe 0 is an empty option; no payload, no marker
        ("50 45 0002 60", Notification(b"", Code.CONTENT, 0, None, b"")),
        # an error response with Observe (RFC 7641 §3.2 allows it to end the observation)
        ("51 84 0003 aa 6105", Notification(b"\xaa", Code.NOT_FOUND, 5, None, b"")),
    ],
)
def test_notifications(wire: str, expected: Notification) -> None:
    data = bytes.fromhex(wire)
    assert decode_notification(data) == expected
    assert _oracle(Message.decode(data)) == expected


@pytest.mark.parametrize(
    "wire",
    [
        "41 45 7b51 4a 612c ff 3232",  # CON: acknowledged, through aiocoap
        "61 45 7b51 4a 612c",  # ACK
        "51 01 7b51 4a 612c",  # a request (GET) with Observe
        "50 00 7b51",  # empty
        "51 45 7b51 4a ff 3232",  # no Observe: a last response
        "51 45 7b51 4a 4100 212c",  # an ETag (4) before Observe
        "51 45 7b51 4a 612c d1 0a 12",  # Block2 (23): delta 17 as 13 + 4
        "51 45 7b51 4a 612c d1 2f 01",  # Size1 (60): delta 54 as 13 + 41
        "51 45 7b51 4a 612c 0101",  # Observe twice
        "51 45 7b51 4a 6401020304",  # Observe of 4 bytes (RFC 7641 §2: 0-3)
        "51 e3 7b51 4a 612c",  # 7.03: no response code of CoAP's
    ],
)
def test_other_messages_are_left_to_aiocoap(wire: str) -> None:
    data = bytes.fromhex(wire)
    assert decode_notification(data) is None
    Message.decode(data)  # well formed: aiocoap takes it


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        ("514500", "shorter than the CoAP header"),
        ("91 45 7b51 4a", "version 2"),
        ("54 45 7b51 4a", "token runs past the end"),
        ("51 45 7b51 4a f1", "reserved option delta nibble 15"),
        ("51 45 7b51 4a 6f", "reserved option length nibble 15"),
        ("51 45 7b51 4a d1", "delta runs past the end"),
        ("51 45 7b51 4a e1 00", "delta runs past the end"),
        ("51 45 7b51 4a 6e 01", "length runs past the end"),
        ("51 45 7b51 4a 63 0102", "option 6 runs past the end"),
        ("51 45 7b51 4a 612c ff", "a payload marker with no payload"),
    ],
)
def test_bytes_that_are_no_coap_message_raise_a_typed_error(wire: str, error: str) -> None:
    with pytest.raises(CoapDecodeError, match=error):
        decode_notification(bytes.fromhex(wire))


@pytest.mark.parametrize(
    "wire",
    [
        "59 45 7b51 010203040506070809 612c",  # token length 9 (RFC 8974 extends 13-15)
        "54 45 7b51 4a",  # a token cut short
        "51 45 7b51 4a 612c ff",  # a payload marker with no payload
    ],
)
def test_what_aiocoap_reads_though_rfc_7252_refuses_it_is_refused_and_left_to_aiocoap(
    wire: str,
) -> None:
    """The decoder refuses it and the link hands the bytes to aiocoap, which is laxer: what
    the gateway accepts does not change."""
    data = bytes.fromhex(wire)
    with pytest.raises(CoapDecodeError):
        decode_notification(data)
    Message.decode(data)


def _oracle(message: Message) -> Notification | None:
    """What aiocoap's decode says ``decode_notification`` must make of a message."""
    numbers = [int(option.number) for option in message.opt.option_list()]
    if (
        message.mtype != NON
        or not 2 <= int(message.code) >> 5 <= 5
        or message.opt.observe is None
        or not set(numbers) <= {6, 12, 14}
        or len(numbers) != len(set(numbers))
    ):
        return None
    return notification_of(message)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    message = Message(
        code=Code(draw(st.sampled_from([1, 2, 65, 68, 69, 128, 132, 160, 163]))),
        payload=draw(st.binary(max_size=40)),
    )
    message.mtype = draw(st.sampled_from([NON, CON]))
    message.mid = draw(st.integers(0, 0xFFFF))
    message.token = draw(st.binary(max_size=8))
    if draw(st.booleans()):
        message.opt.observe = draw(st.integers(0, 2**24 - 1))
    if draw(st.booleans()):
        message.opt.content_format = draw(st.sampled_from([0, 60, 110, 112, 11542, 11543]))
    if draw(st.booleans()):
        message.opt.max_age = draw(st.integers(0, 2**32 - 1))
    if draw(st.booleans()):
        message.opt.etag = draw(st.binary(min_size=1, max_size=8))
    if draw(st.booleans()):
        message.opt.block2 = BlockOption.BlockwiseTuple(draw(st.integers(0, 100)), True, 2)
    return message.encode()


@given(messages())
def test_every_message_aiocoap_encodes_is_decoded_as_aiocoap_does(data: bytes) -> None:
    assert decode_notification(data) == _oracle(Message.decode(data))


@given(st.binary(max_size=60))
def test_arbitrary_bytes_never_raise_anything_but_the_typed_error(data: bytes) -> None:
    """Garbage is a ``CoapDecodeError``; what is taken is what aiocoap reads too."""
    try:
        notification = decode_notification(data)
    except CoapDecodeError:
        return
    if notification is not None:
        assert notification == _oracle(Message.decode(data))
