"""IEEE 802.15.4 MAC frames: published frames, the 2015 PAN ID table, round trips, garbage.

Published frames are from scapy's regression tests (test/scapy/layers/dot15d4.uts), as bytes
only; their field decodes were re-derived by hand from the frame control bits. The 2015 PAN ID
compression rows are IEEE 802.15.4-2015 Table 7-2.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.transports.ieee802154.errors import MacDecodeError, SecuredFrameError
from bridged.transports.ieee802154.mac import (
    BROADCAST,
    DuplicateFilter,
    FrameType,
    FrameVersion,
    HeaderIE,
    MacFrame,
    PayloadIE,
    SecurityHeader,
    _pan_presence,
    build_ack,
    build_frame,
    crc16_kermit,
    data_frame,
    parse_data_frame,
    parse_frame,
)


def kermit_bitwise(data: bytes) -> int:
    """CRC-16/KERMIT the slow, obvious way: the oracle for the table-free implementation."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def test_fcs_check_value() -> None:
    # The CRC catalogue's check value for CRC-16/KERMIT.
    assert crc16_kermit(b"123456789") == 0x2189


@given(st.binary(max_size=300))
def test_fcs_matches_the_bitwise_definition(data: bytes) -> None:
    assert crc16_kermit(data) == kermit_bitwise(data)


def test_scapy_data_frame_with_iphc() -> None:
    # dot15d4.uts: a 2003 data frame, PAN ID compression, short to broadcast, IPHC + NHC UDP.
    psdu = bytes.fromhex("4188002200ffff13007d3b01f0dac9dac98580c800000000000000f2eb")
    frame = parse_frame(psdu, fcs=False)
    assert frame.frame_type is FrameType.DATA
    assert frame.version is FrameVersion.V2003
    assert frame.pan_id_compression and not frame.ack_request and not frame.frame_pending
    assert (frame.seq, frame.dst_pan, frame.src_pan, frame.pan_id) == (0, 0x0022, None, 0x0022)
    assert (frame.dst, frame.src) == (BROADCAST, b"\x00\x13")
    assert frame.payload == psdu[9:]
    assert parse_frame(build_frame(frame)) == frame


def test_scapy_long_addressed_frame_header() -> None:
    # dot15d4.uts Dot15d4FCS frame, first 27 bytes: long/long addressing, PAN 0xabcd, then a
    # FRAG1 header (size 834, tag 0x23) and IPHC 78 f6. Extended addresses travel little-endian.
    head = bytes.fromhex(
        "41cca3cdab161514feff1312025544 33feff221102c3420023 78f6".replace(" ", "")
    )
    frame = parse_frame(head, fcs=False)
    assert (frame.seq, frame.dst_pan, frame.version) == (0xA3, 0xABCD, FrameVersion.V2003)
    assert frame.dst == bytes.fromhex("021213fffe141516")
    assert frame.src == bytes.fromhex("021122fffe334455")
    assert frame.payload == bytes.fromhex("c342002378f6")


def test_fcs_is_checked() -> None:
    psdu = build_ack(7)
    assert parse_frame(psdu).seq == 7
    with pytest.raises(MacDecodeError, match="FCS"):
        parse_frame(psdu[:-1] + bytes((psdu[-1] ^ 1,)))


def test_immediate_ack() -> None:
    # Frame control 0x0012: ack, frame pending; sequence number; FCS LSB first.
    psdu = build_ack(0x42, frame_pending=True)
    assert psdu[:3] == b"\x12\x00\x42"
    assert psdu[3:] == crc16_kermit(psdu[:3]).to_bytes(2, "little")
    frame = parse_frame(psdu)
    assert (frame.frame_type, frame.seq, frame.frame_pending) == (FrameType.ACK, 0x42, True)


# IEEE 802.15.4-2015 Table 7-2: (dst mode, src mode, PAN ID compression) -> PANs present.
TABLE_7_2 = [
    (0, 0, 0, False, False),
    (0, 0, 1, True, False),
    (2, 0, 0, True, False),
    (3, 0, 0, True, False),
    (2, 0, 1, False, False),
    (3, 0, 1, False, False),
    (0, 2, 0, False, True),
    (0, 3, 0, False, True),
    (0, 2, 1, False, False),
    (0, 3, 1, False, False),
    (3, 3, 0, True, False),
    (3, 3, 1, False, False),
    (2, 2, 0, True, True),
    (2, 3, 0, True, True),
    (3, 2, 0, True, True),
    (2, 3, 1, True, False),
    (3, 2, 1, True, False),
    (2, 2, 1, True, False),
]


@pytest.mark.parametrize(("dam", "sam", "pic", "dst_pan", "src_pan"), TABLE_7_2)
def test_2015_pan_id_compression_table(
    dam: int, sam: int, pic: int, dst_pan: bool, src_pan: bool
) -> None:
    fc = 1 | pic << 6 | dam << 10 | 2 << 12 | sam << 14
    body = bytearray(fc.to_bytes(2, "little") + b"\x09")
    if dst_pan:
        body += b"\x34\x12"
    body += {0: b"", 2: b"\x02\x01", 3: bytes(range(1, 9))}[dam]
    if src_pan:
        body += b"\x78\x56"
    body += {0: b"", 2: b"\x04\x03", 3: bytes(range(11, 19))}[sam]
    body += b"payload"
    frame = parse_frame(bytes(body), fcs=False)
    assert frame.dst_pan == (0x1234 if dst_pan else None)
    assert frame.src_pan == (0x5678 if src_pan else None)
    assert frame.payload == b"payload"
    assert parse_frame(build_frame(frame)) == frame


@pytest.mark.parametrize("version", [FrameVersion.V2003, FrameVersion.V2006])
def test_pre_2015_pan_id_compression(version: FrameVersion) -> None:
    frame = data_frame(
        seq=1, src=b"\x00\x01", dst=b"\x00\x02", pan_id=0xFACE, payload=b"x", version=version
    )
    psdu = build_frame(frame)
    assert len(psdu) == 2 + 1 + 2 + 2 + 2 + 1 + 2  # one PAN ID on the air
    assert parse_frame(psdu) == frame
    # Compression with a single address is not a frame of these versions.
    fc = 1 | 1 << 6 | 2 << 10 | version << 12
    with pytest.raises(MacDecodeError, match="compression"):
        parse_frame(fc.to_bytes(2, "little") + b"\x01\x34\x12\x02\x00", fcs=False)


def test_2015_information_elements_are_skipped_into_fields() -> None:
    # Header IE (CSL, ID 0x1a, 4 bytes), HT1, payload IE (MLME group 1, 2 bytes), PT, payload.
    fc = 1 | 1 << 6 | 1 << 9 | 2 << 10 | 2 << 12 | 2 << 14
    header_ie = (4 | 0x1A << 7).to_bytes(2, "little") + b"\x01\x02\x03\x04"
    ht1 = (0x7E << 7).to_bytes(2, "little")
    payload_ie = (2 | 1 << 11 | 1 << 15).to_bytes(2, "little") + b"\xaa\xbb"
    pt = (0xF << 11 | 1 << 15).to_bytes(2, "little")
    body = fc.to_bytes(2, "little") + b"\x05\xcd\xab\x02\x00\x01\x00"
    frame = parse_frame(body + header_ie + ht1 + payload_ie + pt + b"\x7a\x33", fcs=False)
    assert frame.header_ies == (HeaderIE(0x1A, b"\x01\x02\x03\x04"),)
    assert frame.payload_ies == (PayloadIE(1, b"\xaa\xbb"),)
    assert frame.payload == b"\x7a\x33"
    # HT2: header IEs then the payload, no payload IEs.
    ht2 = (0x7F << 7).to_bytes(2, "little")
    frame = parse_frame(body + header_ie + ht2 + b"\x41", fcs=False)
    assert (frame.payload_ies, frame.payload) == ((), b"\x41")


def test_secured_frame_is_reported_not_decoded() -> None:
    # 2006 data frame, security level 5 (ENC-MIC-32), key ID mode 1, frame counter 0x01020304.
    fc = 1 | 1 << 3 | 1 << 6 | 2 << 10 | 1 << 12 | 2 << 14
    aux = bytes((5 | 1 << 3,)) + (0x01020304).to_bytes(4, "little") + b"\x07"
    body = fc.to_bytes(2, "little") + b"\x09\xcd\xab\x02\x00\x01\x00" + aux + b"cipher" + b"MIC!"
    frame = parse_frame(body, fcs=False)
    assert frame.security == SecurityHeader(5, 1, 0x01020304, b"", 7)
    assert frame.security.mic_length == 4
    assert frame.payload == b"cipherMIC!"
    assert parse_frame(build_frame(frame)) == frame
    with pytest.raises(SecuredFrameError):
        parse_frame((fc & ~(3 << 12)).to_bytes(2, "little") + body[2:], fcs=False)


@pytest.mark.parametrize(
    ("fc", "match"),
    [
        (0x0004, "frame type"),  # reserved type 4
        (0x3001, "version"),  # version 3
        (0x0401, "address mode"),  # destination mode 1
        (0x0081, "reserved"),  # bit 7
        (0x0101, "reserved"),  # sequence-number suppression in a 2003 frame
    ],
)
def test_reserved_values_are_refused(fc: int, match: str) -> None:
    with pytest.raises(MacDecodeError, match=match):
        parse_frame(fc.to_bytes(2, "little") + bytes(12), fcs=False)


addresses = st.one_of(
    st.none(), st.binary(min_size=2, max_size=2), st.binary(min_size=8, max_size=8)
)


@st.composite
def frames(draw: st.DrawFn) -> MacFrame:
    version = draw(st.sampled_from(FrameVersion))
    dst, src = draw(addresses), draw(addresses)
    modern = version is FrameVersion.V2015
    single = (dst is None) != (src is None)
    compression = draw(st.booleans()) if modern or not single else False
    if not modern and dst is None and src is None:
        compression = False
    mode = {None: 0, 2: 2, 8: 3}
    dst_present, src_present = _pan_presence(
        version,
        mode[None if dst is None else len(dst)],
        mode[None if src is None else len(src)],
        compression,
    )
    pans = st.integers(0, 0xFFFF)
    dst_pan = draw(pans) if dst_present else None
    src_pan = draw(pans) if src_present else None
    security = None
    if version is not FrameVersion.V2003 and draw(st.booleans()):
        mode = draw(st.integers(0, 3))
        security = SecurityHeader(
            draw(st.integers(0, 7)),
            mode,
            draw(st.one_of(st.integers(0, 2**32 - 1), st.none())) if modern else 0,
            bytes((0, 0, 4, 8)[mode]),
            draw(st.integers(0, 255)) if mode else None,
        )
    header_ies: tuple[HeaderIE, ...] = ()
    payload_ies: tuple[PayloadIE, ...] = ()
    if modern:
        header_ies = tuple(
            HeaderIE(draw(st.integers(0, 0x7D)), draw(st.binary(max_size=6)))
            for _ in range(draw(st.integers(0, 2)))
        )
        if security is None:
            payload_ies = tuple(
                PayloadIE(draw(st.integers(0, 0xE)), draw(st.binary(max_size=6)))
                for _ in range(draw(st.integers(0, 2)))
            )
    payload = draw(st.binary(max_size=20))
    if security is not None:
        payload += bytes(security.mic_length)
    return MacFrame(
        frame_type=draw(st.sampled_from(FrameType)),
        seq=draw(st.one_of(st.integers(0, 255), st.none()))
        if modern
        else draw(st.integers(0, 255)),
        dst=dst,
        src=src,
        dst_pan=dst_pan,
        src_pan=src_pan,
        version=version,
        pan_id_compression=compression,
        ack_request=draw(st.booleans()),
        frame_pending=draw(st.booleans()),
        security=security,
        header_ies=header_ies,
        payload_ies=payload_ies,
        payload=payload,
    )


@given(frames())
def test_build_parse_round_trip(frame: MacFrame) -> None:
    assert parse_frame(build_frame(frame)) == frame


@given(st.binary(max_size=140), st.booleans())
def test_garbage_raises_only_the_typed_error(data: bytes, fcs: bool) -> None:
    try:
        parse_frame(data, fcs=fcs)
    except MacDecodeError:
        pass


def test_duplicate_filter() -> None:
    seen = DuplicateFilter(sources=2, depth=2)
    assert not seen.is_duplicate(b"\x00\x01", 5)
    assert seen.is_duplicate(b"\x00\x01", 5)
    assert not seen.is_duplicate(b"\x00\x02", 5)  # per source
    assert not seen.is_duplicate(b"\x00\x01", 6)
    assert not seen.is_duplicate(b"\x00\x01", 7)
    assert not seen.is_duplicate(b"\x00\x01", 5)  # fell out of the depth-2 history
    assert not seen.is_duplicate(b"\x00\x03", 1)  # evicts 00:02, the least recently heard
    assert len(seen) == 2
    assert not seen.is_duplicate(b"\x00\x02", 5)


def test_a_number_heard_again_after_the_retransmission_window_is_a_new_frame() -> None:
    """A restarted gateway (or a rebooted node) whose first sequence number meets the ones a
    node heard last from it: those frames are new ones, not MAC retransmissions (which come
    within the window), and are taken. They were dropped, each a datagram lost until CoAP
    retransmitted it (seen restarting the gateway: 2.4 to 2.9 s per collision)."""
    now = [100.0]
    seen = DuplicateFilter(depth=4, window=1.0, clock=lambda: now[0])
    gateway = b"\x00\x01"
    for seq in (10, 11, 12, 13):
        assert not seen.is_duplicate(gateway, seq)
    now[0] += 0.05
    assert seen.is_duplicate(gateway, 13), "a retransmission within the window"
    now[0] += 5.0  # the gateway restarted and began at 11
    assert [seen.is_duplicate(gateway, seq) for seq in (11, 12, 13, 14)] == [False] * 4
    assert seen.is_duplicate(gateway, 12), "its own retransmission still is one"


def _with_fcs(body: bytes) -> bytes:
    return body + crc16_kermit(body).to_bytes(2, "little")


def _general(psdu: bytes) -> tuple[int | None, bytes | None, bytes | None, bytes] | str | None:
    """What ``parse_frame`` makes of a PSDU, as the fast path's fields: None for a frame that
    is not an unsecured data frame, the error for one it refuses."""
    try:
        frame = parse_frame(psdu)
    except MacDecodeError as e:
        return str(e)
    if frame.frame_type is not FrameType.DATA or frame.security is not None:
        return None
    return frame.seq, frame.dst, frame.src, frame.payload


@given(frames(), st.data())
def test_the_data_frame_fast_path_is_parse_frame_where_it_answers(
    frame: MacFrame, data: st.DataObject
) -> None:
    """``parse_data_frame`` gives ``parse_frame``'s fields or declines (None): on frames of
    every type, version, addressing and security, and on each with one byte changed (a bad
    FCS, a reserved bit, another layout)."""
    psdu = build_frame(frame)
    if data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(psdu) - 1))
        psdu = psdu[:at] + bytes((psdu[at] ^ data.draw(st.integers(1, 255)),)) + psdu[at + 1 :]
        if data.draw(st.booleans()):
            psdu = _with_fcs(psdu[:-2])
    fast = parse_data_frame(psdu)
    if fast is not None:
        assert fast == _general(psdu)


@given(
    st.sampled_from([FrameVersion.V2003, FrameVersion.V2006]),
    st.integers(0, 255),
    st.one_of(st.binary(min_size=2, max_size=2), st.binary(min_size=8, max_size=8)),
    st.one_of(st.binary(min_size=2, max_size=2), st.binary(min_size=8, max_size=8)),
    st.binary(max_size=100),
)
def test_a_nodes_data_frame_takes_the_fast_path(
    version: FrameVersion, seq: int, src: bytes, dst: bytes, payload: bytes
) -> None:
    """The shape the fast path is for (an intra-PAN data frame, 2003 or 2006, both addresses
    present, unsecured) is taken by it, with the fields it was built from."""
    frame = data_frame(seq=seq, src=src, dst=dst, pan_id=0xABCD, payload=payload, version=version)
    assert parse_data_frame(build_frame(frame)) == (seq, dst, src, payload)


@given(st.integers(0, 0xFFFF), st.integers(-1, 15), st.binary(max_size=140))
def test_the_data_frame_fast_path_on_garbage_declines_or_agrees(
    free: int, flipped: int, data: bytes
) -> None:
    """Garbage after a frame control of the fast path's shape (its free bits at random), and
    after each frame control one bit away from it (a reserved bit, a security bit, another
    version, type or address mode), with a right FCS and without."""
    fc = 0x8841 | free & ~0xABCF
    if flipped >= 0:
        fc ^= 1 << flipped
    for candidate in (data, fc.to_bytes(2, "little") + data):
        for psdu in (candidate, _with_fcs(candidate)):
            fast = parse_data_frame(psdu)
            if fast is not None:
                assert fast == _general(psdu)
