"""HDLC-lite framing: published vectors, escapes, resynchronisation, and garbage in any chunking.

Vectors:
* CRC-16/X-25 check value 0x906E for the ASCII string "123456789": the catalogue of
  parametrised CRC algorithms (reveng.sourceforge.io, "CRC-16/IBM-SDLC", alias X-25:
  poly 0x1021 reflected, init 0xFFFF, xorout 0xFFFF, check 0x906E).
* RFC 1662 (PPP in HDLC-like framing), appendix C.2: running the FCS over data + FCS (LSB first)
  leaves the "good FCS" residue 0xF0B8 (before the final complement: 0x0F47 after it).
* The Spinel reset command ``80 01`` and the reset notification ``80 06 00 72`` (Spinel draft,
  "Test Vectors") framed as OpenThread sends them: ``7E 80 01 02 92 7E`` and
  ``7E 80 06 00 72 FC 57 7E``.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bridged.transports.ieee802154.hdlc import (
    ESCAPED,
    FrameDecoder,
    HdlcDecodeError,
    HdlcFault,
    crc16_x25,
    decode_frame,
    encode_frame,
)

RESET = bytes.fromhex("8001")
RESET_FRAME = bytes.fromhex("7e800102927e")
RESET_NOTIFICATION = bytes.fromhex("80060072")
RESET_NOTIFICATION_FRAME = bytes.fromhex("7e80060072fc577e")


def test_crc_check_value() -> None:
    assert crc16_x25(b"123456789") == 0x906E
    assert crc16_x25(b"") == 0x0000


def test_good_fcs_residue() -> None:
    data = b"123456789"
    with_fcs = data + crc16_x25(data).to_bytes(2, "little")
    # The residue before the final complement is 0xF0B8, i.e. 0x0F47 after it.
    assert crc16_x25(with_fcs) ^ 0xFFFF == 0xF0B8


@pytest.mark.parametrize(
    ("payload", "wire"), [(RESET, RESET_FRAME), (RESET_NOTIFICATION, RESET_NOTIFICATION_FRAME)]
)
def test_spinel_vectors(payload: bytes, wire: bytes) -> None:
    assert encode_frame(payload) == wire
    assert FrameDecoder().feed(wire) == [payload]


def test_all_five_bytes_are_escaped_on_the_way_out() -> None:
    wire = encode_frame(ESCAPED)
    body = wire[1:-1]
    assert body[:10] == bytes.fromhex("7d5e7d5d7d317d337dd8")
    assert not set(body) & {0x7E, 0x11, 0x13, 0xF8}


def test_any_escaped_byte_is_accepted() -> None:
    # pyspinel escapes only 7E and 7D; an encoder may also escape bytes that need no escape.
    payload = b"\x80\x06\x41"
    fcs = crc16_x25(payload).to_bytes(2, "little")
    wire = b"\x7e" + b"".join(bytes((0x7D, b ^ 0x20)) for b in payload + fcs) + b"\x7e"
    assert FrameDecoder().feed(wire) == [payload]


def test_repeated_flags_and_chunking() -> None:
    wire = b"\x7e\x7e\x7e" + RESET_FRAME + RESET_NOTIFICATION_FRAME + b"\x7e"
    decoder = FrameDecoder()
    frames = [frame for byte in wire for frame in decoder.feed(bytes((byte,)))]
    assert frames == [RESET, RESET_NOTIFICATION]
    assert decoder.frames == 2
    assert sum(decoder.errors.values()) == 0


def test_garbage_before_the_first_flag_is_discarded() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\x01\x02garbage" + RESET_FRAME) == [RESET]
    assert decoder.discarded == 9


@pytest.mark.parametrize(
    ("segment", "fault"),
    [
        (b"\x80\x01\x02\x93", HdlcFault.BAD_FCS),
        (b"\x80\x01", HdlcFault.TOO_SHORT),
        (b"\x80", HdlcFault.TOO_SHORT),
        (b"\x80\x01\x02\x92\x7d", HdlcFault.BAD_ESCAPE),
    ],
)
def test_bad_frames_are_counted_and_skipped(segment: bytes, fault: HdlcFault) -> None:
    seen: list[HdlcDecodeError] = []
    decoder = FrameDecoder(on_error=seen.append)
    assert decoder.feed(b"\x7e" + segment + RESET_FRAME) == [RESET]
    assert decoder.errors[fault] == 1
    assert [e.fault for e in seen] == [fault]
    with pytest.raises(HdlcDecodeError) as exc:
        decode_frame(segment)
    assert exc.value.fault is fault


def test_overlong_frame_is_dropped_and_decoding_resumes() -> None:
    decoder = FrameDecoder(max_payload=16)
    frames = decoder.feed(b"\x7e" + bytes(range(1, 100)))
    frames += decoder.feed(b"\x01" * 10 + RESET_FRAME)
    assert frames == [RESET]
    assert decoder.errors[HdlcFault.OVERLONG] == 1
    # A complete frame over the limit is refused too.
    assert decoder.feed(encode_frame(bytes(17))) == []
    assert decoder.errors[HdlcFault.OVERLONG] == 2


@given(st.lists(st.binary(min_size=1, max_size=300), max_size=5), st.data())
def test_round_trip_in_any_chunking(payloads: list[bytes], data: st.DataObject) -> None:
    wire = b"".join(encode_frame(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    decoder = FrameDecoder()
    frames: list[bytes] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        frames += decoder.feed(wire[start:end])
    assert frames == payloads


@given(st.binary(max_size=400), st.lists(st.integers(1, 50), max_size=10))
def test_garbage_never_raises_and_a_good_frame_after_it_gets_through(
    garbage: bytes, sizes: list[int]
) -> None:
    decoder = FrameDecoder(max_payload=128)
    pos = 0
    for size in sizes:
        decoder.feed(garbage[pos : pos + size])
        pos += size
    decoder.feed(garbage[pos:])
    # A flag ends whatever the garbage left open; the next frame is decoded.
    assert decoder.feed(b"\x7e" + RESET_FRAME) == [RESET]


@given(st.binary(max_size=300))
def test_decode_frame_raises_only_its_error(segment: bytes) -> None:
    try:
        decode_frame(segment)
    except HdlcDecodeError:
        pass


@given(st.binary(min_size=3, max_size=300).filter(lambda b: 0x7D not in b), st.booleans())
def test_a_frame_is_taken_exactly_when_its_fcs_is_its_payloads_crc(
    segment: bytes, fixed: bool
) -> None:
    """``decode_frame`` checks the FCS by the residue of one CRC over the payload and FCS:
    it takes a frame exactly when the FCS is the CRC of the payload, as the definition says."""
    if fixed:
        segment = segment[:-2] + crc16_x25(segment[:-2]).to_bytes(2, "little")
    assume(0x7D not in segment)  # an escape: another test's
    good = crc16_x25(segment[:-2]) == int.from_bytes(segment[-2:], "little")
    try:
        assert decode_frame(segment) == segment[:-2] and good
    except HdlcDecodeError as e:
        assert e.fault is HdlcFault.BAD_FCS and not good
