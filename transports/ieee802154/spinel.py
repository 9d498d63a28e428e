"""Spinel, the command protocol of an OpenThread radio co-processor (RCP), sans-I/O.

A Spinel frame (one HDLC-lite payload) is a header byte, a command and its payload:

* **Header**: ``FLG(2) = 0b10 | IID(2) | TID(4)``. TID 0 marks an unsolicited frame (a
  received radio frame, a reset notification); a host numbers its requests 1-15 and the RCP
  answers with the same TID.
* **Command** and **property IDs** are *packed unsigned integers*: little-endian 7-bit groups,
  the high bit set on all but the last, at most three octets (0..2,097,151), as in EXI.
* Property values use Spinel's data packing: ``b`` bool (0 or 1, anything else is illegal),
  ``C``/``c`` u8/i8, ``S``/``s`` u16/i16, ``L``/``l`` u32/i32, ``X``/``x`` u64/i64 (all
  little-endian), ``i`` packed uint, ``E`` EUI-64 and ``6`` IPv6 address (big-endian, 8 and
  16 bytes), ``U`` NUL-terminated UTF-8, ``d`` data with a u16 length, ``D`` data to the end,
  ``t(...)`` a struct with a u16 length, ``A(...)`` an array to the end. A struct's length
  lets newer firmware append fields: a decoder skips what it does not know, so ``unpack``
  ignores trailing bytes inside a struct and after the last field.

Only the radio (RCP) subset is here: RESET, PROP_VALUE_GET/SET/IS, LAST_STATUS, the properties
a raw-802.15.4 host needs, and STREAM_RAW in both directions (a received frame with its
metadata; a frame to transmit with its parameters; the transmit outcome). Every decoder raises
only ``SpinelDecodeError``.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from bridged.objects.slotted import quick_init

HEADER_FLAG = 0x80
MAX_TID = 15
MAX_PACKED_UINT = (1 << 21) - 1
MAX_PSDU = 127


class SpinelDecodeError(ValueError):
    """Bytes that are not a valid Spinel frame or property value."""


class Command(enum.IntEnum):
    NOOP = 0
    RESET = 1
    PROP_VALUE_GET = 2
    PROP_VALUE_SET = 3
    PROP_VALUE_INSERT = 4
    PROP_VALUE_REMOVE = 5
    PROP_VALUE_IS = 6
    PROP_VALUE_INSERTED = 7
    PROP_VALUE_REMOVED = 8


#: Commands whose payload starts with a property ID.
PROPERTY_COMMANDS = frozenset(range(Command.PROP_VALUE_GET, Command.PROP_VALUE_REMOVED + 1))


class Prop(enum.IntEnum):
    """Property IDs, with the value's type signature in the comment."""

    LAST_STATUS = 0x00  # i (then, for a transmit, the rest of TxDone)
    PROTOCOL_VERSION = 0x01  # ii  major, minor
    NCP_VERSION = 0x02  # U
    CAPS = 0x05  # A(i)
    HWADDR = 0x08  # E  the dongle's EUI-64
    PHY_ENABLED = 0x20  # b
    PHY_CHAN = 0x21  # C  11..26
    PHY_TX_POWER = 0x25  # c  dBm
    MAC_15_4_LADDR = 0x34  # E  extended address the radio filters and auto-ACKs on
    MAC_15_4_SADDR = 0x35  # S
    MAC_15_4_PANID = 0x36  # S
    MAC_RAW_STREAM_ENABLED = 0x37  # b  receive on
    MAC_PROMISCUOUS_MODE = 0x38  # C  0 off, 1 network, 2 full
    STREAM_RAW = 0x71  # see RxFrame, TxRequest
    RCP_API_VERSION = 0xB0  # i


class Status(enum.IntEnum):
    OK = 0
    FAILURE = 1
    UNIMPLEMENTED = 2
    INVALID_ARGUMENT = 3
    INVALID_STATE = 4
    INVALID_COMMAND = 5
    INVALID_INTERFACE = 6
    INTERNAL_ERROR = 7
    SECURITY_ERROR = 8
    PARSE_ERROR = 9
    IN_PROGRESS = 10
    NOMEM = 11
    BUSY = 12
    PROP_NOT_FOUND = 13
    DROPPED = 14
    EMPTY = 15
    CMD_TOO_BIG = 16
    NO_ACK = 17
    CCA_FAILURE = 18
    ALREADY = 19
    ITEM_NOT_FOUND = 20
    INVALID_COMMAND_FOR_PROP = 21
    RESET_POWER_ON = 112
    RESET_EXTERNAL = 113
    RESET_SOFTWARE = 114
    RESET_FAULT = 115
    RESET_CRASH = 116
    RESET_ASSERT = 117
    RESET_OTHER = 118
    RESET_UNKNOWN = 119
    RESET_WATCHDOG = 120


#: LAST_STATUS values 112..127 all mean "the RCP has just reset".
RESET_STATUSES = range(112, 128)
#: An RCP may report one of its stack's own error codes as this base plus the code.
STATUS_STACK_NATIVE_BASE = 0x4000


def status_name(code: int) -> str:
    """A readable name for a LAST_STATUS value, known or not."""
    try:
        return Status(code).name
    except ValueError:
        pass
    if code in RESET_STATUSES:
        return f"RESET_{code}"
    if STATUS_STACK_NATIVE_BASE <= code < STATUS_STACK_NATIVE_BASE + 0x10000:
        return f"STACK_NATIVE_{code - STATUS_STACK_NATIVE_BASE}"
    return f"STATUS_{code}"


class RxFlag(enum.IntFlag):
    """STREAM_RAW receive metadata flags."""

    TX = 0x0001  # the frame is one this radio sent (an echo)
    BAD_FCS = 0x0004
    DUPE = 0x0008
    ACKED_FP = 0x0010  # acknowledged with Frame Pending set
    ACKED_SEC = 0x0020  # acknowledged with a secured enhanced ACK


# Capabilities (CAPS) a raw-radio host relies on.
CAP_CONFIG_RADIO = 34
CAP_MAC_RAW = 513


# -- packed unsigned integers -----------------------------------------------------------------


def pack_uint(value: int) -> bytes:
    """The packed (EXI-style) form of ``value``, 1 to 3 bytes."""
    if not 0 <= value <= MAX_PACKED_UINT:
        raise ValueError(f"packed unsigned integer out of range: {value}")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def unpack_uint(data: bytes, offset: int = 0, end: int | None = None) -> tuple[int, int]:
    """The packed unsigned integer at ``offset`` (before ``end``), and the offset after it."""
    end = len(data) if end is None else end
    value = 0
    for shift in (0, 7, 14):
        if offset >= end:
            raise SpinelDecodeError("packed unsigned integer cut short")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
    raise SpinelDecodeError("packed unsigned integer longer than three bytes")


# -- data packing -----------------------------------------------------------------------------

_FIXED = {
    "C": struct.Struct("<B"),
    "c": struct.Struct("<b"),
    "S": struct.Struct("<H"),
    "s": struct.Struct("<h"),
    "L": struct.Struct("<I"),
    "l": struct.Struct("<i"),
    "X": struct.Struct("<Q"),
    "x": struct.Struct("<q"),
}
_ADDRESS = {"E": 8, "6": 16}
_U16 = struct.Struct("<H")

# A parsed signature: each field is a type character, or ("t" | "A", its fields).
_Field = str | tuple[str, "tuple[_Field, ...]"]


def _runs_to_end(field: _Field) -> bool:
    return field == "D" or (isinstance(field, tuple) and field[0] == "A")


def _parse(signature: str, pos: int = 0, nested: bool = False) -> tuple[tuple[_Field, ...], int]:
    fields: list[_Field] = []
    while pos < len(signature):
        char = signature[pos]
        if char == ")":
            if not nested:
                raise ValueError(f"unbalanced ')' in {signature!r}")
            return tuple(fields), pos + 1
        if fields and _runs_to_end(fields[-1]):
            raise ValueError(f"D and A(...) run to the end: they must come last in {signature!r}")
        if char in "tA":
            if signature[pos + 1 : pos + 2] != "(":
                raise ValueError(f"{char} must be followed by '(' in {signature!r}")
            inner, pos = _parse(signature, pos + 2, nested=True)
            fields.append((char, inner))
            continue
        if char not in _FIXED and char not in _ADDRESS and char not in "bidDU":
            raise ValueError(f"unknown Spinel type {char!r} in {signature!r}")
        fields.append(char)
        pos += 1
    if nested:
        raise ValueError(f"missing ')' in {signature!r}")
    return tuple(fields), pos


def _pack_fields(fields: Sequence[_Field], values: Sequence[Any], out: bytearray) -> None:
    if len(fields) != len(values):
        raise ValueError(f"{len(fields)} fields but {len(values)} values")
    for field, value in zip(fields, values, strict=True):
        if isinstance(field, tuple):
            kind, inner = field
            if kind == "t":
                body = bytearray()
                _pack_fields(inner, value, body)
                out += _U16.pack(len(body)) + body
            else:
                for item in value:
                    _pack_fields(inner, item if len(inner) > 1 else (item,), out)
        elif field in _FIXED:
            out += _FIXED[field].pack(value)
        elif field == "b":
            out.append(1 if value else 0)
        elif field == "i":
            out += pack_uint(value)
        elif field in _ADDRESS:
            if len(value) != _ADDRESS[field]:
                raise ValueError(f"{field} takes {_ADDRESS[field]} bytes, not {len(value)}")
            out += value
        elif field == "d":
            out += _U16.pack(len(value)) + value
        elif field == "D":
            out += value
        else:  # "U"
            text = value.encode()
            if b"\0" in text:
                raise ValueError("a Spinel string cannot contain NUL")
            out += text + b"\0"


def pack(signature: str, *values: Any) -> bytes:
    """``values`` packed by a Spinel type signature, e.g. ``pack("Ct(CC)", 1, (2, 3))``.

    A ``t(...)`` takes a tuple of its fields, an ``A(...)`` a sequence of items (each a tuple
    when the array has several fields).
    """
    fields, _ = _parse(signature)
    out = bytearray()
    _pack_fields(fields, values, out)
    return bytes(out)


def _take(data: bytes, pos: int, end: int, size: int, what: str) -> int:
    if end - pos < size:
        raise SpinelDecodeError(f"{what} needs {size} bytes, {max(end - pos, 0)} left")
    return pos + size


def _unpack_fields(
    fields: Sequence[_Field], data: bytes, pos: int, end: int
) -> tuple[list[Any], int]:
    values: list[Any] = []
    for field in fields:
        if isinstance(field, tuple):
            kind, inner = field
            if kind == "t":
                body, struct_end = _struct_at(data, pos, end, "struct")
                items, _ = _unpack_fields(inner, data, body, struct_end)
                values.append(tuple(items))
                pos = struct_end
            else:
                array: list[Any] = []
                while pos < end:
                    items, next_pos = _unpack_fields(inner, data, pos, end)
                    if next_pos == pos:
                        raise SpinelDecodeError("array of empty items")
                    array.append(tuple(items) if len(inner) > 1 else items[0])
                    pos = next_pos
                values.append(array)
        elif field in _FIXED:
            codec = _FIXED[field]
            next_pos = _take(data, pos, end, codec.size, field)
            values.append(codec.unpack_from(data, pos)[0])
            pos = next_pos
        elif field == "b":
            next_pos = _take(data, pos, end, 1, "b")
            if data[pos] > 1:
                raise SpinelDecodeError(f"boolean must be 0 or 1, not {data[pos]}")
            values.append(data[pos] == 1)
            pos = next_pos
        elif field == "i":
            value, pos = unpack_uint(data, pos, end)
            values.append(value)
        elif field in _ADDRESS:
            next_pos = _take(data, pos, end, _ADDRESS[field], field)
            values.append(bytes(data[pos:next_pos]))
            pos = next_pos
        elif field == "d":
            body, pos = _struct_at(data, pos, end, "data")
            values.append(bytes(data[body:pos]))
        elif field == "D":
            values.append(bytes(data[pos:end]))
            pos = end
        else:  # "U"
            nul = data.find(b"\0", pos, end)
            if nul < 0:
                raise SpinelDecodeError("string without its NUL terminator")
            try:
                values.append(bytes(data[pos:nul]).decode())
            except UnicodeDecodeError as exc:
                raise SpinelDecodeError(f"string is not UTF-8: {exc}") from None
            pos = nul + 1
    return values, pos


def unpack(signature: str, data: bytes) -> tuple[Any, ...]:
    """The values ``data`` holds by a Spinel type signature; trailing bytes are ignored."""
    fields, _ = _parse(signature)
    values, _ = _unpack_fields(fields, data, 0, len(data))
    return tuple(values)


# -- frames -----------------------------------------------------------------------------------


@quick_init  # every frame makes one (objects/slotted.py)
@dataclass(frozen=True, slots=True)
class Frame:
    """One Spinel frame. For property commands, ``prop`` and ``value`` split the payload."""

    command: int
    payload: bytes = b""
    tid: int = 0
    iid: int = 0

    @property
    def prop(self) -> int:
        """The property ID of a property command."""
        return decode_property(self.payload)[0]

    @property
    def value(self) -> bytes:
        """The property value of a property command."""
        return decode_property(self.payload)[1]


def encode_frame(frame: Frame) -> bytes:
    if not 0 <= frame.tid <= MAX_TID or not 0 <= frame.iid <= 3:
        raise ValueError(f"TID must be 0..15 and IID 0..3, not {frame.tid}, {frame.iid}")
    return (
        bytes((HEADER_FLAG | frame.iid << 4 | frame.tid,))
        + pack_uint(frame.command)
        + (frame.payload)
    )


def decode_frame(data: bytes) -> Frame:
    if not data:
        raise SpinelDecodeError("empty Spinel frame")
    header = data[0]
    if header & 0xC0 != HEADER_FLAG:
        raise SpinelDecodeError(f"header {header:#04x} lacks the 0b10 flag bits")
    command, pos = unpack_uint(data, 1)
    return Frame(command, bytes(data[pos:]), header & 0x0F, (header >> 4) & 0x03)


def decode_property(payload: bytes) -> tuple[int, bytes]:
    """Split a property command's payload into its property ID and value."""
    prop, pos = unpack_uint(payload)
    return prop, payload[pos:]


def prop_frame(command: Command, prop: int, value: bytes = b"", tid: int = 0) -> Frame:
    return Frame(command, pack_uint(prop) + value, tid)


# -- STREAM_RAW -------------------------------------------------------------------------------

_RX_HEAD = struct.Struct("<bbHH")  # RSSI, noise floor, flags, PHY struct length
_PHY = struct.Struct("<BBQ")  # channel, LQI, timestamp (µs)
_MAC = struct.Struct("<BI")  # ACK key ID, ACK frame counter


class RxFrame(NamedTuple):
    """A STREAM_RAW frame from the RCP: a received PSDU (including its 2-byte FCS) and metadata.

    ``rx_error`` is the RCP's receive error (0 for a frame; anything else reports a failed
    reception and carries no frame). ``timestamp_us`` is None from firmware whose PHY struct
    has no timestamp. ``ack_key_id``/``ack_frame_counter`` come with RCPs that secure ACKs.

    A named tuple, not a frozen dataclass: every frame heard makes one, and ten fields set
    through their slots' setters (``quick_init``) cost 9.3 k instructions a frame, the tuple
    4.3 k, as immutable and compared the same (by its fields, in order).
    """

    psdu: bytes
    rssi: int
    noise_floor: int = -128
    flags: int = 0
    channel: int = 0
    lqi: int = 0
    timestamp_us: int | None = None
    rx_error: int = 0
    ack_key_id: int | None = None
    ack_frame_counter: int | None = None


def encode_rx(frame: RxFrame) -> bytes:
    """The STREAM_RAW value an RCP sends for a received frame (``d c c S t(CCX) t(i) [t(CL)]``)."""
    phy = _PHY.pack(frame.channel, frame.lqi, frame.timestamp_us or 0)
    vendor = pack_uint(frame.rx_error)
    out = (
        _U16.pack(len(frame.psdu))
        + frame.psdu
        + _RX_HEAD.pack(frame.rssi, frame.noise_floor, frame.flags, len(phy))
        + phy
        + _U16.pack(len(vendor))
        + vendor
    )
    if frame.ack_key_id is not None:
        out += _U16.pack(_MAC.size) + _MAC.pack(frame.ack_key_id, frame.ack_frame_counter or 0)
    return out


def _decode_rx(value: bytes, pos: int) -> tuple[RxFrame, int]:
    end = len(value)
    if end - pos < 2:
        raise SpinelDecodeError("STREAM_RAW without its frame length")
    (length,) = _U16.unpack_from(value, pos)
    psdu_end = pos + 2 + length
    if psdu_end + _RX_HEAD.size > end:
        raise SpinelDecodeError(f"STREAM_RAW frame of {length} bytes cut short or no metadata")
    psdu = bytes(value[pos + 2 : psdu_end])
    rssi, noise_floor, flags, phy_len = _RX_HEAD.unpack_from(value, psdu_end)
    phy = psdu_end + _RX_HEAD.size
    pos = phy + phy_len
    if pos > end or phy_len < 2:
        raise SpinelDecodeError(f"STREAM_RAW PHY metadata of {phy_len} bytes cut short")
    channel, lqi = value[phy], value[phy + 1]
    timestamp = _PHY.unpack_from(value, phy)[2] if phy_len >= _PHY.size else None
    rx_error = 0
    key_id = counter = None
    if pos < end:  # vendor struct: the receive error
        vendor, pos = _struct_at(value, pos, end, "vendor metadata")
        if vendor < pos:
            rx_error, _ = unpack_uint(value, vendor, pos)
    if pos < end:  # MAC struct: the key and frame counter of a secured ACK
        mac, pos = _struct_at(value, pos, end, "MAC metadata")
        if pos - mac >= _MAC.size:
            key_id, counter = _MAC.unpack_from(value, mac)
    frame = RxFrame(
        psdu, rssi, noise_floor, flags, channel, lqi, timestamp, rx_error, key_id, counter
    )
    return frame, pos


_STREAM_RAW_IS = (
    bytes((HEADER_FLAG,)) + pack_uint(Command.PROP_VALUE_IS) + pack_uint(Prop.STREAM_RAW)
)


def decode_stream_raw(data: bytes) -> RxFrame | None:
    """The :class:`RxFrame` of a Spinel frame that is an unsolicited STREAM_RAW PROP_VALUE_IS
    of interface 0 (TID 0), None for any other frame: ``decode_frame``, ``decode_property``
    and ``decode_rx`` in one, for the frame the RCP sends per frame heard on the air, without
    the :class:`Frame` and the copies of its payload and value the three make on the way
    (tests/unit/test_spinel.py compares it with them under Hypothesis)."""
    if data[:3] != _STREAM_RAW_IS:
        return None
    return _decode_rx(data, 3)[0]


def _struct_at(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """Where the body of the ``t(...)`` at ``pos`` starts and ends."""
    body = _take(data, pos, end, 2, f"{what} length")
    (length,) = _U16.unpack_from(data, pos)
    return body, _take(data, body, end, length, what)


def decode_rx(value: bytes) -> RxFrame:
    """A STREAM_RAW value from the RCP; fields appended by newer firmware are skipped."""
    return _decode_rx(value, 0)[0]


@dataclass(frozen=True, slots=True)
class TxRequest:
    """A STREAM_RAW value the host sends: a PSDU (with room for its 2-byte FCS, which the RCP
    fills in) and the transmit parameters. The RCP does CSMA-CA and the retries."""

    psdu: bytes
    channel: int
    max_csma_backoffs: int = 4
    max_frame_retries: int = 3
    csma_ca: bool = True
    header_updated: bool = False
    is_retx: bool = False
    security_processed: bool = False
    tx_delay: int = 0
    tx_delay_base_time: int = 0
    rx_channel_after_tx_done: int | None = None
    tx_power: int | None = None


_TX_PARAMS = struct.Struct("<BBB????IIB")


def encode_tx(request: TxRequest) -> bytes:
    """``d C C C b b b b L L C [c]``: the field list OpenThread hosts send."""
    if not 0 < len(request.psdu) <= MAX_PSDU:
        raise ValueError(f"a PSDU is 1..{MAX_PSDU} bytes, not {len(request.psdu)}")
    rx_channel = request.rx_channel_after_tx_done
    out = (
        _U16.pack(len(request.psdu))
        + request.psdu
        + _TX_PARAMS.pack(
            request.channel,
            request.max_csma_backoffs,
            request.max_frame_retries,
            request.csma_ca,
            request.header_updated,
            request.is_retx,
            request.security_processed,
            request.tx_delay,
            request.tx_delay_base_time,
            request.channel if rx_channel is None else rx_channel,
        )
    )
    if request.tx_power is not None:
        out += struct.pack("<b", request.tx_power)
    return out


def decode_tx(value: bytes) -> TxRequest:
    """A STREAM_RAW value from a host. As an RCP does, the parameters after the channel may be
    left off (older hosts send fewer); missing ones keep their defaults."""
    signature = "dCCCbbbbLLCc"
    fields, _ = _parse(signature)
    values: list[Any] = []
    pos = 0
    for count, field in enumerate(fields):
        if pos >= len(value) and count >= 2:
            break
        items, pos = _unpack_fields((field,), value, pos, len(value))
        values.extend(items)
    return TxRequest(*values)


@dataclass(frozen=True, slots=True)
class TxDone:
    """The LAST_STATUS value that ends a transmit: the outcome and the ACK, if one came."""

    status: int
    frame_pending: bool = False
    header_updated: bool = False
    ack: RxFrame | None = None


def encode_tx_done(done: TxDone) -> bytes:
    out = pack_uint(done.status) + pack("bb", done.frame_pending, done.header_updated)
    if done.status == Status.OK:
        out += encode_rx(done.ack if done.ack is not None else RxFrame(b"", 0))
    return out


def decode_tx_done(value: bytes) -> TxDone:
    """A transmit's LAST_STATUS value: a status alone, or with the ACK details after it."""
    status, pos = unpack_uint(value)
    if pos >= len(value):
        return TxDone(status)
    frame_pending, header_updated = unpack("bb", value[pos:])
    pos += 2
    ack = None
    if pos < len(value):
        ack, pos = _decode_rx(value, pos)
        if not ack.psdu:
            ack = None
    return TxDone(status, frame_pending, header_updated, ack)


def iter_caps(value: bytes) -> Iterator[int]:
    """The capabilities in a CAPS value (``A(i)``)."""
    pos = 0
    while pos < len(value):
        cap, pos = unpack_uint(value, pos)
        yield cap
