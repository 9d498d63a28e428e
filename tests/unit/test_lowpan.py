"""6LoWPAN: IPHC and NHC UDP against published vectors, round trips, dispatch, garbage.

The IPHC vectors are those of OpenThread's tests/unit/test_lowpan.cpp (BSD-3-Clause), restated
as facts: the MAC addresses, the IPv6 header, the compressed bytes. Its network data gives the
contexts: 0 = fd00:cafe:face:1234::/64, 1 = 2001:2:0:1::/64, 2 = 2001:2:0:2::/64 (C flag clear:
decoding only). Every row was checked by hand against RFC 6282 §3.1.1 and §4.3.3.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bridged.transports.ieee802154.errors import LowpanDecodeError
from bridged.transports.ieee802154.lowpan import (
    Context,
    Ipv6Packet,
    LowpanDecoder,
    UdpDatagram,
    compress,
    decode_udp_frame,
    decompress_header,
    eui64_from_address,
    iid_from_mac,
    link_local,
    udp_checksum,
)

LONG_SRC = bytes.fromhex("00005eef10221100")
LONG_DST = bytes.fromhex("00005eef10aabbcc")
SHORT_SRC = b"\x00\x00"
SHORT_DST = b"\xc0\x03"
BCAST = b"\xff\xff"
PAYLOAD = bytes.fromhex("8000010203040506")
CONTEXTS = {
    0: Context(bytes.fromhex("fd00cafeface1234"), 64),
    1: Context(bytes.fromhex("2001000200000001"), 64),
    2: Context(bytes.fromhex("2001000200000002"), 64, compress=False),
}


def ip(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def packet(
    word: int, nh: int, hl: int, src: str, dst: str, udp: tuple[int, int, int] | None = None
) -> Ipv6Packet:
    payload = PAYLOAD
    if udp is not None:
        sport, dport, checksum = udp
        payload = (
            sport.to_bytes(2, "big")
            + dport.to_bytes(2, "big")
            + (8 + len(PAYLOAD)).to_bytes(2, "big")
            + checksum.to_bytes(2, "big")
            + PAYLOAD
        )
    return Ipv6Packet(ip(src), ip(dst), nh, hl, word >> 20 & 0xFF, word & 0xFFFFF, payload)


LL_SRC, LL_DST = "fe80::200:5eef:1022:1100", "fe80::200:5eef:10aa:bbcc"
LL_S0, LL_SC003 = "fe80::ff:fe00:0000", "fe80::ff:fe00:c003"
ML = "fd00:cafe:face:1234:"
W = 0x60000000

# (name, MAC source, MAC destination, packet, IPHC bytes, compress, decompress)
VECTORS = [
    ("long/long", LONG_SRC, LONG_DST, packet(W, 58, 64, LL_SRC, LL_DST), "7a333a", 1, 1),
    ("short/short", SHORT_SRC, SHORT_DST, packet(W, 58, 64, LL_S0, LL_SC003), "7a333a", 1, 1),
    ("short/long", SHORT_SRC, LONG_DST, packet(W, 58, 64, LL_S0, LL_DST), "7a333a", 1, 1),
    ("long/short", LONG_SRC, SHORT_DST, packet(W, 58, 64, LL_SRC, LL_SC003), "7a333a", 1, 1),
    ("unspecified", LONG_SRC, SHORT_DST, packet(W, 58, 64, "::", LL_SC003), "7a433a", 1, 1),
    (
        "inline",
        LONG_SRC,
        SHORT_DST,
        packet(W, 58, 64, "2001:2:0:3:aaaa:bbbb:cccc:dddd", "2001:2:0:4::"),
        "7a003a2001000200000003aaaabbbbccccdddd20010002000000040000000000000000",
        1,
        1,
    ),
    (
        "64-bit long",
        LONG_SRC,
        LONG_DST,
        packet(W, 58, 64, "fe80::200:5eef:1022:1101", "fe80::200:5eef:10aa:bbcd"),
        "7a113a02005eef1022110102005eef10aabbcd",
        1,
        1,
    ),
    (
        "64-bit short",
        SHORT_SRC,
        SHORT_DST,
        packet(W, 58, 64, "fe80::200:5eef:1022:1101", "fe80::200:5eef:10aa:bbcd"),
        "7a113a02005eef1022110102005eef10aabbcd",
        1,
        1,
    ),
    (
        "16-bit",
        SHORT_SRC,
        SHORT_DST,
        packet(W, 58, 64, "fe80::ff:fe00:1", "fe80::ff:fe00:c004"),
        "7a223a0001c004",
        1,
        1,
    ),
    (
        "elided/16-bit",
        LONG_SRC,
        LONG_DST,
        packet(W, 58, 64, LL_SRC, "fe80::ff:fe00:beaf"),
        "7a323abeaf",
        1,
        1,
    ),
    (
        "elided/inline",
        LONG_SRC,
        LONG_DST,
        packet(W, 58, 64, LL_SRC, "2001:2:0:4::"),
        "7a303a20010002000000040000000000000000",
        1,
        1,
    ),
    (
        "multicast inline",
        LONG_SRC,
        BCAST,
        packet(W, 58, 64, LL_SRC, "ff05::100:30:1"),
        "7a383aff050000000000000000010000300001",
        1,
        1,
    ),
    (
        "multicast 48",
        LONG_SRC,
        BCAST,
        packet(W, 58, 64, LL_SRC, "ff05::1:30:1"),
        "7a393a050100300001",
        1,
        1,
    ),
    (
        "multicast 32",
        SHORT_SRC,
        BCAST,
        packet(W, 58, 64, LL_SRC, "ff03::fc"),
        "7a1a3a02005eef10221100030000fc",
        1,
        1,
    ),
    ("multicast 8", LONG_SRC, BCAST, packet(W, 58, 64, LL_SRC, "ff02::2"), "7a3b3a02", 1, 1),
    (
        "context 0, 64-bit",
        SHORT_SRC,
        SHORT_DST,
        packet(W, 58, 64, ML + "abcd:ef01:2345:6789", ML + "c31d:a702:d41:beef"),
        "7a553aabcdef0123456789c31da7020d41beef",
        1,
        1,
    ),
    (
        "context 0 named inline",
        SHORT_SRC,
        SHORT_DST,
        packet(W, 58, 64, ML + "abcd:ef01:2345:6789", ML + "c31d:a702:d41:beef"),
        "7ad5003aabcdef0123456789c31da7020d41beef",
        0,
        1,
    ),
    (
        "context 0, 16-bit",
        SHORT_SRC,
        SHORT_DST,
        packet(W, 58, 64, ML + ":ff:fe00:fffc", ML + ":ff:fe00:fffe"),
        "7a663afffcfffe",
        1,
        1,
    ),
    (
        "context 0, elided long",
        LONG_SRC,
        LONG_DST,
        packet(W, 58, 64, ML + "200:5eef:1022:1100", ML + "200:5eef:10aa:bbcc"),
        "7a773a",
        1,
        1,
    ),
    (
        "context 0, elided short",
        SHORT_SRC,
        SHORT_DST,
        packet(W, 58, 64, ML + ":ff:fe00:0", ML + ":ff:fe00:c003"),
        "7a773a",
        1,
        1,
    ),
    (
        "context 1 source, inline destination",
        SHORT_SRC,
        SHORT_DST,
        packet(W, 58, 64, "2001:2:0:1:abcd:ef01:2345:6789", "2001:2:0:3:c31d:a702:d41:beef"),
        "7ad0103aabcdef01234567892001000200000003c31da7020d41beef",
        1,
        1,
    ),
    (
        "context 1 both",
        SHORT_SRC,
        SHORT_DST,
        packet(W, 58, 64, "2001:2:0:1:abcd:ef01:2345:6789", "2001:2:0:1:c31d:a702:d41:beef"),
        "7ad5113aabcdef0123456789c31da7020d41beef",
        1,
        1,
    ),
    (
        "context 2 is not for compression",
        SHORT_SRC,
        SHORT_DST,
        packet(W, 58, 64, "2001:2:0:2:abcd:ef01:2345:6789", "2001:2:0:2:c31d:a702:d41:beef"),
        "7a003a2001000200000002abcdef01234567892001000200000002c31da7020d41beef",
        1,
        0,
    ),
    (
        "context 0 multicast",
        LONG_SRC,
        SHORT_DST,
        packet(W, 58, 64, ML + "200:5eef:1022:1100", "ff33:40:fd00:cafe:face:1234:0:1"),
        "7a7c3a330000000001",
        1,
        1,
    ),
    (
        "TF 3 bytes",
        LONG_SRC,
        LONG_DST,
        packet(0x6011AC59, 58, 64, LL_SRC, LL_DST),
        "6a3341ac593a",
        1,
        1,
    ),
    ("TF 1 byte", LONG_SRC, LONG_DST, packet(0x60D00000, 58, 64, LL_SRC, LL_DST), "7233433a", 1, 1),
    (
        "TF ECN only",
        LONG_SRC,
        LONG_DST,
        packet(0x60100000, 58, 64, LL_SRC, LL_DST),
        "7233403a",
        1,
        1,
    ),
    (
        "TF inline",
        LONG_SRC,
        LONG_DST,
        packet(0x6EA12345, 58, 64, LL_SRC, LL_DST),
        "6233ba0123453a",
        1,
        1,
    ),
    ("hop limit 1", SHORT_SRC, SHORT_DST, packet(W, 58, 1, LL_S0, LL_SC003), "79333a", 1, 1),
    ("hop limit 255", SHORT_SRC, SHORT_DST, packet(W, 58, 255, LL_S0, LL_SC003), "7b333a", 1, 1),
    ("hop limit 63", SHORT_SRC, SHORT_DST, packet(W, 58, 63, LL_S0, LL_SC003), "78333a3f", 1, 1),
    (
        "UDP ports inline",
        LONG_SRC,
        LONG_DST,
        packet(W, 17, 64, LL_SRC, LL_DST, (5683, 5684, 0xBEEF)),
        "7e33f016331634beef",
        1,
        1,
    ),
    (
        "UDP destination 8-bit",
        LONG_SRC,
        LONG_DST,
        packet(W, 17, 64, LL_SRC, LL_DST, (5683, 61441, 0xBEEF)),
        "7e33f1163301beef",
        1,
        1,
    ),
    (
        "UDP source 8-bit",
        LONG_SRC,
        LONG_DST,
        packet(W, 17, 64, LL_SRC, LL_DST, (61695, 5683, 0xBEEF)),
        "7e33f2ff1633beef",
        1,
        1,
    ),
    (
        "UDP ports 4-bit",
        LONG_SRC,
        LONG_DST,
        packet(W, 17, 64, LL_SRC, LL_DST, (61616, 61631, 0xFACE)),
        "7e33f30fface",
        1,
        1,
    ),
    (
        "UDP to ff02::1",
        LONG_SRC,
        LONG_DST,
        packet(W, 17, 64, LL_SRC, "ff02::1", (61616, 61631, 0xFACE)),
        "7e3b01f30fface",
        1,
        1,
    ),
    ("UDP without NHC", SHORT_SRC, SHORT_DST, packet(W, 17, 64, LL_S0, LL_SC003), "7a3311", 1, 1),
]


@pytest.mark.parametrize(
    ("mac_src", "mac_dst", "expected", "iphc", "do_compress", "do_decompress"),
    [pytest.param(*row[1:], id=row[0]) for row in VECTORS],
)
def test_openthread_vectors(
    mac_src: bytes,
    mac_dst: bytes,
    expected: Ipv6Packet,
    iphc: str,
    do_compress: int,
    do_decompress: int,
) -> None:
    compressed = bytes.fromhex(iphc)
    rest = expected.payload[8:] if expected.payload != PAYLOAD else PAYLOAD
    if do_decompress:
        decoder = LowpanDecoder(contexts=CONTEXTS)
        decoded = decoder.decode(compressed + rest, src_mac=mac_src, dst_mac=mac_dst)
        assert decoded == expected
    if do_compress:
        header, tail = compress(expected, src_mac=mac_src, dst_mac=mac_dst, contexts=CONTEXTS)
        assert header.hex() == compressed.hex()
        assert tail == rest


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("40010203040506", "dispatch 0x40"),  # neither IPHC nor IPv6
        ("7a00", "next header"),  # truncated
        ("7a343a", "reserved"),  # M=0 DAC=1 DAM=00
        ("7a3d3a", "reserved"),  # M=1 DAC=1 DAM=01
        ("7a3e3a", "reserved"),  # M=1 DAC=1 DAM=10
        ("7a3f3a", "reserved"),  # M=1 DAC=1 DAM=11
        ("7e3300", "NHC"),  # unknown NHC identifier
        ("7e33e0", "extension header truncated"),  # NHC Hop-by-Hop cut short
        ("7ad5333a" + "00" * 16, "context 3"),  # unknown context
        ("0011", "NALP"),
        ("42", "dispatch 0x42"),  # HC1
        ("8011223344", "mesh"),
        ("", "empty"),
    ],
)
def test_openthread_error_vectors_and_refused_dispatches(data: str, match: str) -> None:
    decoder = LowpanDecoder(contexts=CONTEXTS)
    with pytest.raises(LowpanDecodeError, match=match):
        decoder.decode(bytes.fromhex(data), src_mac=LONG_SRC, dst_mac=LONG_DST)


def test_elided_address_without_mac_address_is_refused() -> None:
    with pytest.raises(LowpanDecodeError, match="MAC header has no address"):
        LowpanDecoder().decode(bytes.fromhex("7a333a"), src_mac=None, dst_mac=LONG_DST)


def test_uncompressed_ipv6_and_bc0_dispatch() -> None:
    original = UdpDatagram(ip(LL_SRC), 5683, ip("ff02::1"), 5683, b"hello").to_packet()
    decoder = LowpanDecoder()
    assert decoder.decode(b"\x41" + original.to_bytes(), src_mac=None, dst_mac=None) == original
    bc0 = b"\x50\x07\x41" + original.to_bytes()  # RFC 4944 §11: a broadcast header, skipped
    assert decoder.decode(bc0, src_mac=None, dst_mac=None) == original


def test_scapy_udp_checksum() -> None:
    # dot15d4.uts: NHC UDP 56009 -> 56009, checksum 0x8580, to ff02::1, from MAC 0x0013 in PAN
    # 0x0022. scapy derives the source IID the RFC 4944 §6 way (with the PAN ID); its checksum
    # covers an 8-byte payload c8 00 00 00 00 00 00 00.
    src = link_local(b"\x00\x13", pan_id=0x0022)
    assert src == ip("fe80::22:ff:fe00:13")
    udp = bytes.fromhex("dac9dac900100000c800000000000000")
    assert udp_checksum(src, ip("ff02::1"), udp) == 0x8580


def test_elided_udp_checksum_is_computed() -> None:
    # NHC 0xf7: ports 0xF0Bx both, checksum elided (C=1).
    decoder = LowpanDecoder()
    packet = decoder.decode(bytes.fromhex("7e33f70f") + b"data", src_mac=LONG_SRC, dst_mac=LONG_DST)
    assert packet is not None
    datagram = UdpDatagram.from_packet(packet)  # verifies the checksum
    assert (datagram.src_port, datagram.dst_port, datagram.payload) == (61616, 61631, b"data")


def test_interface_identifiers() -> None:
    # RFC 4944 §6: the EUI-64 with the U/L bit inverted; a short address as 0000:00ff:fe00:XXXX
    # (RFC 6282 §3.2.2), or with the PAN ID and the U/L bit cleared.
    assert link_local(LONG_SRC) == ip(LL_SRC)
    assert iid_from_mac(b"\x12\x34") == bytes.fromhex("000000fffe001234")
    assert iid_from_mac(b"\x12\x34", pan_id=0xFFFF) == bytes.fromhex("fdff00fffe001234")
    assert eui64_from_address(ip(LL_SRC)) == LONG_SRC
    assert eui64_from_address(ip(LL_SC003)) is None


def test_udp_checksum_errors() -> None:
    good = UdpDatagram(ip(LL_SRC), 1, ip(LL_DST), 2, b"abc").to_packet()
    assert UdpDatagram.from_packet(good).payload == b"abc"
    for bad_udp, match in [
        (good.payload[:6] + b"\0\0" + good.payload[8:], "checksum 0"),
        (good.payload[:-1] + b"x", "mismatch"),
        (good.payload[:4] + b"\0\x09" + good.payload[6:], "length"),
        (good.payload[:5], "shorter"),
    ]:
        with pytest.raises(LowpanDecodeError, match=match):
            UdpDatagram.from_packet(Ipv6Packet(good.src, good.dst, 17, 64, payload=bad_udp))


macs = st.one_of(st.binary(min_size=2, max_size=2), st.binary(min_size=8, max_size=8))


@st.composite
def addresses(draw: st.DrawFn, mac: bytes) -> bytes:
    prefix = draw(
        st.sampled_from([b"\xfe\x80" + bytes(6), CONTEXTS[0].prefix[:8], CONTEXTS[1].prefix[:8]])
    )
    group = draw(st.binary(min_size=1, max_size=1))
    return draw(
        st.sampled_from(
            [
                prefix + iid_from_mac(mac),
                prefix + bytes.fromhex("000000fffe00") + draw(st.binary(min_size=2, max_size=2)),
                prefix + draw(st.binary(min_size=8, max_size=8)),
                b"\xff\x02" + bytes(13) + group,
                b"\xff" + group + bytes(11) + draw(st.binary(min_size=3, max_size=3)),
                b"\xff" + group + bytes(9) + draw(st.binary(min_size=5, max_size=5)),
                b"\xff" + group + b"\x00\x40" + CONTEXTS[0].prefix[:8] + bytes(4),
                draw(st.binary(min_size=16, max_size=16)),
                bytes(16),
            ]
        )
    )


@st.composite
def packets(draw: st.DrawFn) -> tuple[Ipv6Packet, bytes, bytes]:
    src_mac, dst_mac = draw(macs), draw(macs)
    src = draw(addresses(src_mac))
    if src[0] == 0xFF:
        src = bytes(16)
    dst = draw(addresses(dst_mac))
    if draw(st.booleans()):
        datagram = UdpDatagram(
            src,
            draw(st.integers(0, 0xFFFF)),
            dst,
            draw(st.integers(0, 0xFFFF)),
            draw(st.binary(max_size=60)),
        )
        base = datagram.to_packet(hop_limit=draw(st.sampled_from([1, 64, 255, 7])))
    else:
        base = Ipv6Packet(
            src,
            dst,
            draw(st.integers(0, 255)),
            draw(st.integers(0, 255)),
            payload=draw(st.binary(max_size=60)),
        )
    tc, fl = draw(st.integers(0, 255)), draw(st.integers(0, 0xFFFFF))
    tc = draw(st.sampled_from([0, tc, tc & 3]))
    fl = draw(st.sampled_from([0, fl]))
    packet = Ipv6Packet(base.src, base.dst, base.next_header, base.hop_limit, tc, fl, base.payload)
    return packet, src_mac, dst_mac


@given(packets())
def test_compress_decompress_round_trip(case: tuple[Ipv6Packet, bytes, bytes]) -> None:
    packet, src_mac, dst_mac = case
    header, rest = compress(packet, src_mac=src_mac, dst_mac=dst_mac, contexts=CONTEXTS)
    assert len(header) + len(rest) <= 40 + len(packet.payload) + 2  # never much worse
    decoded = LowpanDecoder(contexts=CONTEXTS).decode(
        header + rest, src_mac=src_mac, dst_mac=dst_mac
    )
    assert decoded == packet


@given(packets())
def test_a_header_decompressed_to_fields_is_the_packet_its_bytes_are(
    case: tuple[Ipv6Packet, bytes, bytes],
) -> None:
    """A datagram in one frame becomes its packet from the decompressed fields
    (``Decompressed.packet``); a fragmented one from the header's bytes (``header``), as
    reassembly needs: both are the same packet."""
    packet, src_mac, dst_mac = case
    header, rest = compress(packet, src_mac=src_mac, dst_mac=dst_mac, contexts=CONTEXTS)
    data = header + rest
    assume(data[0] >> 5 == 0b011)
    prefix = decompress_header(data, src_mac=src_mac, dst_mac=dst_mac, contexts=CONTEXTS)
    tail = data[prefix.consumed :]
    assert prefix.packet(tail) == Ipv6Packet.from_bytes(prefix.header + tail)


@given(st.binary(max_size=120), macs, st.one_of(st.none(), macs))
def test_garbage_raises_only_the_typed_error(
    data: bytes, src_mac: bytes, dst_mac: bytes | None
) -> None:
    decoder = LowpanDecoder(contexts=CONTEXTS)
    for candidate in (data, b"\x7a" + data, b"\x7e" + data, b"\xc0" + data):
        try:
            packet = decoder.decode(candidate, src_mac=src_mac, dst_mac=dst_mac)
            if packet is not None and packet.next_header == 17:
                UdpDatagram.from_packet(packet)
        except LowpanDecodeError:
            pass


def test_decompress_header_with_datagram_size() -> None:
    # In a FRAG1 the length fields come from datagram_size, not from the bytes at hand.
    result = decompress_header(
        bytes.fromhex("7e33f30fface"), src_mac=LONG_SRC, dst_mac=LONG_DST, datagram_size=1280
    )
    assert result.consumed == 6
    assert result.header[4:6] == (1240).to_bytes(2, "big")
    assert result.header[44:46] == (1240).to_bytes(2, "big")
    with pytest.raises(LowpanDecodeError, match="smaller"):
        decompress_header(
            bytes.fromhex("7e33f30fface"), src_mac=LONG_SRC, dst_mac=LONG_DST, datagram_size=44
        )


def _general(payload: bytes, src_mac: bytes, dst_mac: bytes) -> UdpDatagram | str | None:
    """What the general path makes of a MAC payload: the datagram, None, or the error."""
    try:
        packet = LowpanDecoder(contexts=CONTEXTS).decode(payload, src_mac=src_mac, dst_mac=dst_mac)
        return None if packet is None else UdpDatagram.in_packet(packet)
    except LowpanDecodeError as e:
        return str(e)


@given(packets(), st.data())
def test_the_udp_frame_fast_path_is_the_general_path_where_it_answers(
    case: tuple[Ipv6Packet, bytes, bytes], data: st.DataObject
) -> None:
    """``decode_udp_frame`` gives the general path's datagram or declines (None): on every
    compressed packet, and on each with one byte changed (a refused checksum, another
    encoding), so nothing it takes would have been refused or read otherwise."""
    packet, src_mac, dst_mac = case
    header, rest = compress(packet, src_mac=src_mac, dst_mac=dst_mac, contexts=CONTEXTS)
    payload = header + rest
    if data.draw(st.booleans()) and payload:
        at = data.draw(st.integers(0, len(payload) - 1))
        payload = (
            payload[:at]
            + bytes((payload[at] ^ data.draw(st.integers(1, 255)),))
            + payload[at + 1 :]
        )
    fast = decode_udp_frame(payload, src_mac, dst_mac)
    if fast is not None:
        assert fast == _general(payload, src_mac, dst_mac)


@given(
    macs,
    macs,
    st.integers(0, 0xEFFF),
    st.integers(0, 0xEFFF),
    st.integers(0, 255),
    st.binary(max_size=80),
)
def test_a_nodes_link_local_datagram_takes_the_udp_frame_fast_path(
    src_mac: bytes, dst_mac: bytes, sport: int, dport: int, hop_limit: int, body: bytes
) -> None:
    """The shape the fast path is for (link-local addresses from the MAC addresses, ports
    outside 0xF0xx, as CoAP's 5683, a well-known hop limit) is taken by it, and is the
    datagram sent; with another hop limit (inline, a byte more) it is declined."""
    datagram = UdpDatagram(link_local(src_mac), sport, link_local(dst_mac), dport, body)
    header, rest = compress(
        datagram.to_packet(hop_limit=hop_limit), src_mac=src_mac, dst_mac=dst_mac
    )
    expected = datagram if hop_limit in (1, 64, 255) else None
    assert decode_udp_frame(header + rest, src_mac, dst_mac) == expected


@given(st.binary(max_size=120), macs, macs)
def test_the_udp_frame_fast_path_on_garbage_declines_or_agrees(
    data: bytes, src_mac: bytes, dst_mac: bytes
) -> None:
    for candidate in (data, b"\x7e\x33\xf0" + data):
        fast = decode_udp_frame(candidate, src_mac, dst_mac)
        if fast is not None:
            assert fast == _general(candidate, src_mac, dst_mac)
