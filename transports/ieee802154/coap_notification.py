"""A node's CoAP NON notification, decoded without aiocoap's message layer, sans-I/O.

Most of what arrives from the nodes once they are registered is one kind of message: the NON
notification of an observation the gateway keeps (a LwM2M 1.0 node's readings, every node's
changed values). It carries a token, the Observe number, the Content-Format and the payload,
and needs nothing of aiocoap's message layer (a NON response is neither acknowledged nor
deduplicated: ``notifications.py``). ``aiocoap.Message.decode`` built an options object, an
enum member per option number and a message of a dozen attributes for it, per notification,
about a quarter of the node-facing CoAP's cost per frame. :func:`decode_notification` reads the
RFC 7252 §3 message format directly and takes only that one shape:

* a NON message (type 1) whose code is a response (class 2 to 5);
* its options only Observe (6, RFC 7641), Content-Format (12) and Max-Age (14), each at most
  once, with the lengths RFC 7252 §5.10 and RFC 7641 §2 give them (uint of 0-3, 0-2, 0-4
  bytes); Observe present.

Any other message, well formed, is None: aiocoap's decode takes it as before (requests, ACKs,
CON notifications, a Block2 notification, an ETag, a last response without Observe). Bytes that
are not a CoAP message at all raise :class:`CoapDecodeError`, naming what is wrong; the link
then hands them to aiocoap all the same, which decides and logs as it always did, so this
decoder never changes what the gateway accepts, only what one common message costs.
"""

from __future__ import annotations

from typing import NamedTuple

from aiocoap.numbers import types
from aiocoap.numbers.codes import Code
from aiocoap.numbers.optionnumbers import OptionNumber

from .errors import RadioDecodeError

VERSION = 1
NON = int(types.NON)
PAYLOAD_MARKER = 0xFF
MAX_TOKEN = 8
"""RFC 7252 §3: token lengths 9-15 are reserved (a message format error)."""
OBSERVE, CONTENT_FORMAT, MAX_AGE = (
    int(OptionNumber.OBSERVE),
    int(OptionNumber.CONTENT_FORMAT),
    int(OptionNumber.MAX_AGE),
)
_UINT_SIZES = {OBSERVE: 3, CONTENT_FORMAT: 2, MAX_AGE: 4}
"""The options a notification taken here may carry, and their longest value (RFC 7641 §2,
RFC 7252 §5.10)."""
_RESPONSES = {int(code): code for code in Code if 2 <= int(code) >> 5 <= 5}
"""Response codes (classes 2-5) to aiocoap's ``Code`` members, looked up, never built."""


class CoapDecodeError(RadioDecodeError):
    """Bytes in a UDP datagram to the gateway's CoAP port that are not a CoAP message (RFC 7252
    §3: a short header, another version, a reserved token length or option nibble, an option
    running past the end, a payload marker with no payload)."""


class Notification(NamedTuple):
    """What the node server takes of a notification: its token (the observation it belongs to),
    code, Observe number (None: a last response), Content-Format (None: not given) and payload
    (a Max-Age says nothing the node server uses). A named tuple: every notification makes
    one, and a frozen dataclass's five fields set through their slots' setters cost more than
    the rest of its decode's header (spinel.RxFrame says the same)."""

    token: bytes
    code: Code
    observe: int | None
    content_format: int | None
    payload: bytes


def _extended(data: bytes, pos: int, nibble: int, what: str) -> tuple[int, int]:
    """An option delta or length nibble with its extended bytes (RFC 7252 §3.1)."""
    if nibble < 13:
        return nibble, pos
    if nibble == 13:
        if pos >= len(data):
            raise CoapDecodeError(f"option {what} runs past the end")
        return data[pos] + 13, pos + 1
    if nibble == 14:
        if pos + 2 > len(data):
            raise CoapDecodeError(f"option {what} runs past the end")
        return (data[pos] << 8 | data[pos + 1]) + 269, pos + 2
    raise CoapDecodeError(f"reserved option {what} nibble 15")


def decode_notification(data: bytes) -> Notification | None:
    """The NON notification ``data`` is (module docstring), None for another CoAP message;
    :class:`CoapDecodeError` for bytes that are not a CoAP message."""
    end = len(data)
    if end < 4:
        raise CoapDecodeError(f"{end} bytes is shorter than the CoAP header")
    first = data[0]
    if first >> 6 != VERSION:
        raise CoapDecodeError(f"CoAP version {first >> 6}")
    tkl = first & 0x0F
    if tkl > MAX_TOKEN:
        raise CoapDecodeError(f"reserved token length {tkl}")
    pos = 4 + tkl
    if pos > end:
        raise CoapDecodeError("the token runs past the end")
    values: dict[int, int] = {}
    number = 0
    taken = True  # every option so far is one taken here
    while pos < end:
        byte = data[pos]
        if byte == PAYLOAD_MARKER:
            if pos + 1 == end:
                raise CoapDecodeError("a payload marker with no payload")
            break
        delta, length, pos = byte >> 4, byte & 0x0F, pos + 1
        if delta > 12 or length > 12:  # extended (a notification's options never are): a call
            delta, pos = _extended(data, pos, delta, "delta")
            length, pos = _extended(data, pos, length, "length")
        if pos + length > end:
            raise CoapDecodeError(f"option {number + delta} runs past the end")
        number += delta
        longest = _UINT_SIZES.get(number)
        if longest is None or length > longest or number in values:
            taken = False
        else:
            values[number] = int.from_bytes(data[pos : pos + length], "big")
        pos += length
    code = _RESPONSES.get(data[1])
    if not taken or code is None or (first >> 4) & 3 != NON or OBSERVE not in values:
        return None
    return Notification(
        data[4 : 4 + tkl],
        code,
        values[OBSERVE],
        values.get(CONTENT_FORMAT),
        data[pos + 1 :] if pos < end else b"",
    )
