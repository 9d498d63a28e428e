"""HDLC-lite, the byte framing an OpenThread RCP speaks on its UART, sans-I/O.

A frame on the line is ``7E <escaped payload + FCS> 7E``:

* ``0x7E`` is the flag. Consecutive flags are allowed, so the empty segment between two flags
  is not a frame.
* ``0x7D`` escapes the next byte, which is sent XOR ``0x20``. OpenThread's encoder escapes
  ``7E``, ``7D``, XON ``11``, XOFF ``13`` and ``F8``; some hosts escape only the first two, so
  the decoder undoes an escape in front of any byte, and the encoder emits all five (a dongle
  behind a UART with software flow control must never see a bare XON/XOFF).
* The FCS is CRC-16/X-25 (reflected polynomial 0x8408, init 0xFFFF, final XOR 0xFFFF) of the
  payload, appended least significant byte first.

``FrameDecoder`` is fed whatever the serial port returned, in any chunking. It never raises: a
bad frame (wrong FCS, too short, overlong, an escape right before the flag) is counted in
``errors``, reported to ``on_error`` and skipped, and bytes before the first flag (a stream
picked up in mid-frame) are counted in ``discarded``; decoding resumes at the next flag.
"""

from __future__ import annotations

import binascii
import enum
import re
from collections.abc import Callable

FLAG = 0x7E
ESCAPE = 0x7D
ESCAPE_XOR = 0x20
#: Bytes the encoder escapes: flag, escape, XON, XOFF and 0xF8 (as OpenThread does).
ESCAPED = bytes((0x7E, 0x7D, 0x11, 0x13, 0xF8))
FCS_SIZE = 2
#: The largest payload a Spinel peer sends (OpenThread's SPINEL_FRAME_MAX_SIZE).
DEFAULT_MAX_PAYLOAD = 1300

_ESCAPED_RE = re.compile(b"[" + re.escape(ESCAPED) + b"]")
# CRC-16/X-25 is the reflected form of the CRC-CCITT that binascii.crc_hqx computes in C:
# feeding crc_hqx bit-reversed bytes and bit-reversing its result gives X-25 before the final
# XOR, at C speed (a pure-Python table loop costs ~10 µs for a 127-byte radio frame).
_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


class HdlcFault(enum.Enum):
    """Why a frame between two flags was refused."""

    TOO_SHORT = "too short"
    BAD_FCS = "bad FCS"
    OVERLONG = "overlong"
    BAD_ESCAPE = "escape before the flag"


class HdlcDecodeError(ValueError):
    """A frame between two flags that is not a valid HDLC-lite frame."""

    def __init__(self, fault: HdlcFault, detail: str = "") -> None:
        super().__init__(f"HDLC frame refused: {fault.value}{': ' + detail if detail else ''}")
        self.fault = fault


def crc16_x25(data: bytes) -> int:
    """CRC-16/X-25 of ``data`` (check value 0x906E for ``b"123456789"``)."""
    raw = binascii.crc_hqx(data.translate(_REVERSED), 0xFFFF)
    return (_REVERSED[raw & 0xFF] << 8 | _REVERSED[raw >> 8]) ^ 0xFFFF


_GOOD_RESIDUE = 0x0F47
"""CRC-16/X-25 of a payload followed by its own FCS (least significant byte first): the same
for every payload, the CRC's residue (0xF0B8) after its final XOR."""


def _escape(match: re.Match[bytes]) -> bytes:
    return bytes((ESCAPE, match[0][0] ^ ESCAPE_XOR))


def encode_frame(payload: bytes) -> bytes:
    """The bytes to write for one frame: flag, escaped payload and FCS, flag."""
    body = payload + crc16_x25(payload).to_bytes(2, "little")
    return b"\x7e" + _ESCAPED_RE.sub(_escape, body) + b"\x7e"


def _unescape(segment: bytes) -> bytes:
    out = bytearray()
    start = 0
    end = len(segment)
    while (index := segment.find(ESCAPE, start)) >= 0:
        if index + 1 >= end:
            raise HdlcDecodeError(HdlcFault.BAD_ESCAPE)
        out += segment[start:index]
        out.append(segment[index + 1] ^ ESCAPE_XOR)
        start = index + 2
    out += segment[start:]
    return bytes(out)


def decode_frame(segment: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> bytes:
    """The payload of one frame, given the bytes between its two flags.

    Raises ``HdlcDecodeError`` for a frame with no payload, a bad FCS, an escape with nothing
    after it, or a payload longer than ``max_payload``.
    """
    body = _unescape(segment) if ESCAPE in segment else segment
    if len(body) <= FCS_SIZE:
        raise HdlcDecodeError(HdlcFault.TOO_SHORT, f"{len(body)} bytes")
    if len(body) - FCS_SIZE > max_payload:
        raise HdlcDecodeError(HdlcFault.OVERLONG, f"{len(body) - FCS_SIZE} bytes")
    payload = body[:-FCS_SIZE]
    if crc16_x25(body) != _GOOD_RESIDUE:  # one CRC over the payload and its FCS: no slice
        received = int.from_bytes(body[-FCS_SIZE:], "little")
        computed = crc16_x25(payload)
        raise HdlcDecodeError(HdlcFault.BAD_FCS, f"{received:#06x}, computed {computed:#06x}")
    return payload


class FrameDecoder:
    """Splits a byte stream into frame payloads; resynchronises on garbage, never raises.

    ``errors`` counts refused frames by fault, ``discarded`` the bytes dropped while looking
    for a flag, ``frames`` the good frames. ``on_error`` (if given) is told of each refused
    frame, e.g. to log it.
    """

    def __init__(
        self,
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        on_error: Callable[[HdlcDecodeError], None] | None = None,
    ) -> None:
        self.max_payload = max_payload
        self.on_error = on_error
        self.frames = 0
        self.discarded = 0
        self.errors: dict[HdlcFault, int] = dict.fromkeys(HdlcFault, 0)
        # An escaped payload + FCS is at most twice its size: beyond that, no flag is coming
        # for a frame we could accept, so stop buffering and wait for the next flag.
        self._max_segment = 2 * (max_payload + FCS_SIZE)
        self._partial = bytearray()
        self._synced = False

    def resync(self) -> None:
        """Forget any partial frame and wait for a flag, as for a newly opened port."""
        self._partial.clear()
        self._synced = False

    def _refuse(self, error: HdlcDecodeError) -> None:
        self.errors[error.fault] += 1
        if self.on_error is not None:
            self.on_error(error)

    def _segment(self, segment: bytes, frames: list[bytes]) -> None:
        if not segment:
            return
        try:
            frames.append(decode_frame(segment, self.max_payload))
        except HdlcDecodeError as exc:
            self._refuse(exc)
        else:
            self.frames += 1

    def feed(self, data: bytes) -> list[bytes]:
        """The payloads of the frames that ``data`` completes, in order."""
        frames: list[bytes] = []
        start = 0
        while (index := data.find(FLAG, start)) >= 0:
            if self._synced:
                if self._partial:
                    self._partial += data[start:index]
                    segment = bytes(self._partial)
                    self._partial.clear()
                else:
                    segment = data[start:index]
                self._segment(segment, frames)
            else:
                self.discarded += index - start
                self._synced = True
            start = index + 1
        rest = data[start:]
        if not self._synced:
            self.discarded += len(rest)
        elif rest:
            self._partial += rest
            if len(self._partial) > self._max_segment:
                self.discarded += len(self._partial)
                self._partial.clear()
                self._synced = False
                self._refuse(HdlcDecodeError(HdlcFault.OVERLONG, "no flag in sight"))
        return frames
