"""IEEE 802.15.4 MAC frames: parse and build data, ack, command and beacon frames.

Frame versions 2003, 2006 and 2015 are understood, with short and extended addressing, PAN ID
compression (the 2015 version has its own table, IEEE 802.15.4-2015 Table 7-2), sequence-number
suppression and Header/Payload Information Elements (2015), and the FCS (CRC-16/KERMIT, sent
least significant byte first).

Addresses are bytes in the order people write them: a short address is 2 bytes big-endian
(``b"\\xff\\xff"`` is the broadcast address) and an extended address is the 8-byte EUI-64, most
significant byte first. On the air both travel little-endian; this module is the only place
that knows.

Security-enabled frames (AES-CCM*) are parsed up to their auxiliary security header: the frame
comes back with :attr:`MacFrame.security` set and its payload still protected (MIC included),
so the caller decides (:mod:`.security` opens it with a key, and the link refuses it with
:class:`SecuredFrameError` when it holds none). The 2003 security format, which has no
auxiliary header, is refused outright.
"""

from __future__ import annotations

import binascii
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import IntEnum

from bridged.objects.slotted import quick_init

from .errors import MacDecodeError, SecuredFrameError

MAX_PSDU = 127
"""aMaxPhyPacketSize of the 2.4 GHz O-QPSK PHY: the largest frame, FCS included."""

BROADCAST = b"\xff\xff"
"""The broadcast short address (and the broadcast PAN ID as bytes)."""

BROADCAST_PAN = 0xFFFF

_HT1 = 0x7E  # header termination 1: payload IEs follow
_HT2 = 0x7F  # header termination 2: the payload follows, no payload IEs
_PT = 0xF  # payload termination group ID

# Bit reversal of every byte value: CRC-16/KERMIT is the bit-reflected twin of the CRC-CCITT
# that binascii computes in C, so reflecting the input bytes and the result reuses it.
_REFLECT = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def crc16_kermit(data: bytes) -> int:
    """CRC-16/KERMIT (poly 0x1021 reflected, init 0, no final XOR) of ``data``.

    Computed with :func:`binascii.crc_hqx` (the unreflected CRC-CCITT, in C) over the
    bit-reversed bytes, then bit-reversed back: with a zero init and no final XOR the two
    algorithms are mirror images, and this runs some twenty times faster than a Python loop.
    """
    crc = binascii.crc_hqx(data.translate(_REFLECT), 0)
    return (_REFLECT[crc & 0xFF] << 8) | _REFLECT[crc >> 8]


class FrameType(IntEnum):
    BEACON = 0
    DATA = 1
    ACK = 2
    COMMAND = 3


class FrameVersion(IntEnum):
    V2003 = 0
    V2006 = 1
    V2015 = 2


_FRAME_TYPES = tuple(FrameType)
_VERSIONS = tuple(FrameVersion)


@dataclass(frozen=True)
class SecurityHeader:
    """The auxiliary security header of a secured frame (2006 and 2015)."""

    level: int
    key_id_mode: int
    frame_counter: int | None
    key_source: bytes = b""
    key_index: int | None = None

    @property
    def mic_length(self) -> int:
        """Length of the MIC that ends the payload: 0, 4, 8 or 16 bytes."""
        return (0, 4, 8, 16)[self.level & 3]

    def to_bytes(self) -> bytes:
        control = self.level | self.key_id_mode << 3 | (self.frame_counter is None) << 5
        out = bytearray((control,))
        if self.frame_counter is not None:
            out += self.frame_counter.to_bytes(4, "little")
        if self.key_id_mode:
            out += self.key_source + bytes((self.key_index or 0,))
        return bytes(out)


@dataclass(frozen=True)
class HeaderIE:
    """A Header Information Element (2015): element ID and raw content."""

    element_id: int
    content: bytes = b""


@dataclass(frozen=True)
class PayloadIE:
    """A Payload Information Element (2015): group ID and raw content (nested IEs unparsed)."""

    group_id: int
    content: bytes = b""


@quick_init  # every frame makes one (objects/slotted.py)
@dataclass(frozen=True, slots=True)
class MacFrame:
    """One MAC frame. PAN IDs are ``None`` where they are not on the air.

    ``dst_pan``/``src_pan`` and ``pan_id_compression`` are what the frame carries; :attr:`pan_id`
    is the PAN the frame belongs to whichever way it was compressed. ``seq`` is ``None`` only in
    a 2015 frame with sequence-number suppression.
    """

    frame_type: FrameType
    seq: int | None
    dst: bytes | None = None
    src: bytes | None = None
    dst_pan: int | None = None
    src_pan: int | None = None
    version: FrameVersion = FrameVersion.V2006
    pan_id_compression: bool = False
    ack_request: bool = False
    frame_pending: bool = False
    security: SecurityHeader | None = None
    header_ies: tuple[HeaderIE, ...] = ()
    payload_ies: tuple[PayloadIE, ...] = ()
    payload: bytes = b""

    @property
    def pan_id(self) -> int | None:
        return self.dst_pan if self.dst_pan is not None else self.src_pan

    @property
    def command_id(self) -> int | None:
        """The MAC command identifier of a command frame (its first payload byte)."""
        if self.frame_type is not FrameType.COMMAND or not self.payload:
            return None
        return self.payload[0]


def _pan_presence(version: int, dam: int, sam: int, compression: int) -> tuple[bool, bool]:
    """Which PAN IDs are on the air: (destination PAN present, source PAN present)."""
    if version < FrameVersion.V2015:
        if dam and sam:
            return True, not compression
        if compression:
            raise MacDecodeError("PAN ID compression set with fewer than two addresses")
        return bool(dam), bool(sam)
    # IEEE 802.15.4-2015 Table 7-2.
    if not dam and not sam:
        return bool(compression), False
    if not sam:
        return not compression, False
    if not dam:
        return False, not compression
    if dam == 3 and sam == 3:
        return not compression, False
    return True, not compression


def _need(body: bytes, end: int, what: str) -> None:
    if len(body) < end:
        raise MacDecodeError(f"frame truncated in the {what}")


def _address(body: bytes, pos: int, mode: int, what: str) -> tuple[bytes | None, int]:
    if mode == 0:
        return None, pos
    size = 2 if mode == 2 else 8
    _need(body, pos + size, what)
    return body[pos : pos + size][::-1], pos + size


def _pan(body: bytes, pos: int, present: bool, what: str) -> tuple[int | None, int]:
    if not present:
        return None, pos
    _need(body, pos + 2, what)
    return body[pos] | body[pos + 1] << 8, pos + 2


def _security_header(body: bytes, pos: int, version: int) -> tuple[SecurityHeader, int]:
    _need(body, pos + 1, "security control")
    control = body[pos]
    pos += 1
    if control >> 6 or (version < FrameVersion.V2015 and control >> 5):
        raise MacDecodeError(f"reserved bits set in security control 0x{control:02x}")
    counter = None
    if not control >> 5 & 1:
        _need(body, pos + 4, "frame counter")
        counter = int.from_bytes(body[pos : pos + 4], "little")
        pos += 4
    mode = control >> 3 & 3
    source, index = b"", None
    if mode:
        size = (0, 0, 4, 8)[mode]
        _need(body, pos + size + 1, "key identifier")
        source, index = body[pos : pos + size], body[pos + size]
        pos += size + 1
    return SecurityHeader(control & 7, mode, counter, source, index), pos


def _information_elements(
    body: bytes, pos: int, secured: bool
) -> tuple[tuple[HeaderIE, ...], tuple[PayloadIE, ...], int]:
    end = len(body)
    header: list[HeaderIE] = []
    payload: list[PayloadIE] = []
    payload_ies_follow = False
    while pos < end:
        _need(body, pos + 2, "header IE")
        descriptor = body[pos] | body[pos + 1] << 8
        if descriptor >> 15:
            raise MacDecodeError("payload IE before the header IE termination")
        length, element = descriptor & 0x7F, descriptor >> 7 & 0xFF
        _need(body, pos + 2 + length, "header IE")
        content = body[pos + 2 : pos + 2 + length]
        pos += 2 + length
        if element == _HT1:
            payload_ies_follow = True
            break
        if element == _HT2:
            break
        header.append(HeaderIE(element, content))
    if payload_ies_follow and not secured:  # secured: the payload IEs are ciphertext
        while pos < end:
            _need(body, pos + 2, "payload IE")
            descriptor = body[pos] | body[pos + 1] << 8
            if not descriptor >> 15:
                raise MacDecodeError("header IE in the payload IE list")
            length, group = descriptor & 0x7FF, descriptor >> 11 & 0xF
            _need(body, pos + 2 + length, "payload IE")
            content = body[pos + 2 : pos + 2 + length]
            pos += 2 + length
            if group == _PT:
                break
            payload.append(PayloadIE(group, content))
    return tuple(header), tuple(payload), pos


def parse_frame(psdu: bytes, *, fcs: bool = True) -> MacFrame:
    """Parse one PSDU. With ``fcs`` the last two bytes are the FCS and must check.

    Raises :class:`MacDecodeError` (or :class:`SecuredFrameError` for a 2003 secured frame) on
    anything else: truncation, reserved frame types, versions or address modes, an FCS mismatch.
    """
    body = bytes(psdu)
    if fcs:
        if len(body) < 4:
            raise MacDecodeError(f"frame of {len(body)} bytes is shorter than FCF and FCS")
        if crc16_kermit(body):  # the CRC over data and its own FCS is 0 when they agree
            raise MacDecodeError("FCS mismatch")
        body = body[:-2]
    if len(body) < 2:
        raise MacDecodeError("frame shorter than its frame control field")
    fc = body[0] | body[1] << 8
    ftype, version = fc & 7, fc >> 12 & 3
    dam, sam = fc >> 10 & 3, fc >> 14 & 3
    secured, compression = fc >> 3 & 1, fc >> 6 & 1
    seq_suppressed, ie_present = fc >> 8 & 1, fc >> 9 & 1
    if ftype > FrameType.COMMAND:
        raise MacDecodeError(f"frame type {ftype} is not supported")
    if version == 3:
        raise MacDecodeError("reserved frame version 3")
    if dam == 1 or sam == 1:
        raise MacDecodeError("reserved address mode 1")
    if fc & 0x80 or (version < FrameVersion.V2015 and (seq_suppressed or ie_present)):
        raise MacDecodeError(f"reserved bits set in frame control 0x{fc:04x}")
    if secured and version == FrameVersion.V2003:
        raise SecuredFrameError("802.15.4-2003 security is not supported")
    pos = 2
    seq = None
    if not seq_suppressed:
        _need(body, 3, "sequence number")
        seq, pos = body[2], 3
    dst_pan_present, src_pan_present = _pan_presence(version, dam, sam, compression)
    dst_pan, pos = _pan(body, pos, dst_pan_present, "destination PAN")
    dst, pos = _address(body, pos, dam, "destination address")
    src_pan, pos = _pan(body, pos, src_pan_present, "source PAN")
    src, pos = _address(body, pos, sam, "source address")
    security = None
    if secured:
        security, pos = _security_header(body, pos, version)
    header_ies: tuple[HeaderIE, ...] = ()
    payload_ies: tuple[PayloadIE, ...] = ()
    if ie_present:
        header_ies, payload_ies, pos = _information_elements(body, pos, bool(secured))
    if security is not None and len(body) - pos < security.mic_length:
        raise MacDecodeError("secured frame shorter than its MIC")
    # In field order, not by keyword: fourteen keywords cost a microsecond more per frame.
    return MacFrame(
        _FRAME_TYPES[ftype],
        seq,
        dst,
        src,
        dst_pan,
        src_pan,
        _VERSIONS[version],
        bool(compression),  # pan_id_compression
        bool(fc >> 5 & 1),  # ack_request
        bool(fc >> 4 & 1),  # frame_pending
        security,
        header_ies,
        payload_ies,
        body[pos:],
    )


# The frame control of what nodes send nearly always: an unsecured data frame, 2003 or 2006,
# intra-PAN (PAN ID compression), both addresses short or extended, a sequence number, no IEs
# and no reserved bit. The mask keeps every bit that decides the header's layout or a refusal;
# the value says how they must be for ``parse_data_frame``.
_DATA_FC_MASK = 0xABCF  # type, security, compression, reserved, seq suppression, IEs, version
_DATA_FC = 0x8841  # data, unsecured, compressed, 2003/2006, DAM and SAM of 2 or 3 (bit 1 set)


def parse_data_frame(psdu: bytes) -> tuple[int, bytes, bytes, bytes] | None:
    """``(seq, dst, src, payload)`` of the common frame, FCS checked; None for any other frame
    (or a bad FCS), which :func:`parse_frame` reads, or refuses, as for every frame.

    The receive path's fast path: a node's datagram comes in this one shape, and building a
    :class:`MacFrame` of fourteen fields to read four of them was a fifth of the MAC and
    6LoWPAN decode. What it returns is what ``parse_frame`` would have given for these fields
    (tests/unit/test_mac.py compares the two under Hypothesis)."""
    if len(psdu) < 9 or (psdu[0] | psdu[1] << 8) & _DATA_FC_MASK != _DATA_FC:
        return None
    dst_end = 13 if psdu[1] & 0x04 else 7  # after FC, seq, the PAN ID and the destination
    end = dst_end + (8 if psdu[1] & 0x40 else 2)
    if len(psdu) < end + 2 or crc16_kermit(psdu):
        return None
    return psdu[2], psdu[5:dst_end][::-1], psdu[dst_end:end][::-1], psdu[end:-2]


def _mode(address: bytes | None) -> int:
    if address is None:
        return 0
    if len(address) == 2:
        return 2
    if len(address) == 8:
        return 3
    raise ValueError(f"a MAC address is 2 or 8 bytes, not {len(address)}")


def build_frame(frame: MacFrame) -> bytes:
    """The PSDU of ``frame``, FCS included. Raises ValueError for a frame that cannot exist.

    The frame's PAN IDs must be the ones its version, addressing and ``pan_id_compression``
    put on the air (see :func:`data_frame` for the usual intra-PAN choice).
    """
    dam, sam = _mode(frame.dst), _mode(frame.src)
    version = int(frame.version)
    has_ies = bool(frame.header_ies or frame.payload_ies)
    if version < FrameVersion.V2015 and (frame.seq is None or has_ies):
        raise ValueError("sequence-number suppression and IEs need frame version 2015")
    if frame.security is not None and version == FrameVersion.V2003:
        raise ValueError("802.15.4-2003 security is not supported")
    try:
        dst_pan_present, src_pan_present = _pan_presence(
            version, dam, sam, frame.pan_id_compression
        )
    except MacDecodeError as exc:
        raise ValueError(str(exc)) from None
    if (frame.dst_pan is not None) != dst_pan_present or (
        frame.src_pan is not None
    ) != src_pan_present:
        raise ValueError("the PAN IDs do not match the addressing and PAN ID compression")
    fc = (
        frame.frame_type
        | (frame.security is not None) << 3
        | frame.frame_pending << 4
        | frame.ack_request << 5
        | frame.pan_id_compression << 6
        | (frame.seq is None) << 8
        | has_ies << 9
        | dam << 10
        | version << 12
        | sam << 14
    )
    out = bytearray(fc.to_bytes(2, "little"))
    if frame.seq is not None:
        out.append(frame.seq & 0xFF)
    if frame.dst_pan is not None:
        out += frame.dst_pan.to_bytes(2, "little")
    if frame.dst is not None:
        out += frame.dst[::-1]
    if frame.src_pan is not None:
        out += frame.src_pan.to_bytes(2, "little")
    if frame.src is not None:
        out += frame.src[::-1]
    if frame.security is not None:
        out += frame.security.to_bytes()
    if has_ies:
        for hie in frame.header_ies:
            out += (len(hie.content) | hie.element_id << 7).to_bytes(2, "little") + hie.content
        if frame.payload_ies:
            out += (_HT1 << 7).to_bytes(2, "little")
            for pie in frame.payload_ies:
                descriptor = len(pie.content) | pie.group_id << 11 | 1 << 15
                out += descriptor.to_bytes(2, "little") + pie.content
            if frame.payload:
                out += (_PT << 11 | 1 << 15).to_bytes(2, "little")
        elif frame.payload:
            out += (_HT2 << 7).to_bytes(2, "little")
    out += frame.payload
    out += crc16_kermit(bytes(out)).to_bytes(2, "little")
    if len(out) > MAX_PSDU:
        raise ValueError(f"frame of {len(out)} bytes exceeds the {MAX_PSDU}-byte PSDU")
    return bytes(out)


def data_frame(
    *,
    seq: int,
    src: bytes,
    dst: bytes,
    pan_id: int,
    payload: bytes,
    version: FrameVersion = FrameVersion.V2006,
    ack_request: bool | None = None,
) -> MacFrame:
    """An intra-PAN data frame with the PAN ID carried once, as every stack sends them.

    An acknowledgement is requested unless the destination is the broadcast address.
    """
    compression = not (version == FrameVersion.V2015 and len(src) == 8 and len(dst) == 8)
    return MacFrame(
        frame_type=FrameType.DATA,
        seq=seq,
        dst=dst,
        src=src,
        dst_pan=pan_id,
        version=version,
        pan_id_compression=compression,
        ack_request=dst != BROADCAST if ack_request is None else ack_request,
        payload=payload,
    )


def build_ack(seq: int, *, frame_pending: bool = False) -> bytes:
    """An immediate acknowledgement (2003 format: frame control, sequence number, FCS)."""
    return build_frame(
        MacFrame(FrameType.ACK, seq, version=FrameVersion.V2003, frame_pending=frame_pending)
    )


def max_payload(
    *,
    src: bytes,
    dst: bytes,
    version: FrameVersion = FrameVersion.V2006,
    security: SecurityHeader | None = None,
) -> int:
    """Room for the MAC payload in an intra-PAN data frame between these addresses; with
    ``security``, room for the plaintext once the auxiliary security header and the MIC are
    in the frame too."""
    frame = data_frame(seq=0, src=src, dst=dst, pan_id=0, payload=b"", version=version)
    header = build_frame(replace(frame, security=security))
    return MAX_PSDU - len(header) - (security.mic_length if security is not None else 0)


RETRANSMISSION_WINDOW = 1.0
"""Seconds within which a frame with a sequence number already heard is a MAC retransmission.
A sender retries a frame whose ACK it missed after macAckWaitDuration and a CSMA-CA back-off,
at most macMaxFrameRetries (<= 7) times: well under a second in all. A number heard again
later is a new frame of a sender that started its numbers afresh (a restarted gateway or a
rebooted node), not a duplicate."""


class DuplicateFilter:
    """Duplicate suppression: the last few sequence numbers heard from each source address.

    A retransmitted frame (its ACK was lost) carries the same sequence number; delivering it
    twice would feed a CoAP duplicate to the layers above. Only a number heard within
    ``window`` seconds (``RETRANSMISSION_WINDOW``) counts: a restarted sender meeting its old
    numbers had its first frames dropped as duplicates, each a datagram lost until CoAP's
    retransmission, seconds later. Memory is bounded twice: ``depth`` numbers per source, and
    ``sources`` addresses, the least recently heard forgotten first.
    """

    def __init__(
        self,
        *,
        sources: int = 256,
        depth: int = 4,
        window: float = RETRANSMISSION_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if sources < 1 or depth < 1:
            raise ValueError("sources and depth must be at least 1")
        self._sources = sources
        self._depth = depth
        self._window = window
        self._clock = clock
        self._seen: dict[bytes, deque[tuple[int, float]]] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def is_duplicate(self, source: bytes, seq: int) -> bool:
        """Whether ``seq`` from ``source`` was already seen lately; records it if not."""
        history = self._seen.pop(source, None)
        if history is None:
            if len(self._seen) >= self._sources:
                del self._seen[next(iter(self._seen))]
            history = deque(maxlen=self._depth)
        self._seen[source] = history  # re-inserted: most recently heard last
        now = self._clock()
        for seen, at in history:  # a loop, not any() over a generator: half the cost
            if seen == seq and now - at <= self._window:
                return True
        history.append((seq, now))
        return False
