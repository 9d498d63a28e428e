"""NHC extension headers (RFC 6282 §4.2): hand-derived vectors, refusals, properties.

RFC 6282 publishes no vectors for them, so each vector below is derived from the RFC text, with
the derivation next to it:

* The NHC octet is ``1110 EID(3) NH``: EID 0 Hop-by-Hop, 1 Routing, 2 Fragment, 3 Destination
  Options, 4 Mobility, 5-6 reserved, 7 IPv6 header; NH=1 means the header's Next Header field
  is elided and the next header is NHC-encoded too, NH=0 that the Next Header octet is inline.
* The header then follows as it is, except that its Length octet counts the octets after it
  (RFC 8200's Hdr Ext Len counts 8-octet units after the first 8), and a trailing Pad1/PadN of
  Hop-by-Hop and Destination Options may be left off: the decompressor pads back to a multiple
  of 8 octets. The Fragment header has no Length field (its second octet is Reserved).

Every vector uses IPHC ``7e 33``: TF elided, NH=1 (next header NHC-encoded), hop limit 64,
source and destination link-local and elided (SAM=DAM=11), derived from the MAC addresses.
The RPL option is RFC 6553's: type 0x63, length 4, flags, RPLInstanceID, SenderRank.

UDP checksums: fe80::200:5eef:1022:1100 -> fe80::200:5eef:10aa:bbcc, UDP length 13, payload
"hello": 5683 -> 5683 sums to 0xe322, 0xf0b1 -> 0xf0b2 to 0x2e24 (RFC 8200 §8.1: the
pseudo-header has the addresses and the upper-layer length; the extension headers are not in
it, so one checksum serves every chain below).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.transports.ieee802154.errors import LowpanDecodeError
from bridged.transports.ieee802154.fragment import fragment
from bridged.transports.ieee802154.link import LowpanLink
from bridged.transports.ieee802154.lowpan import (
    Ipv6Packet,
    LowpanDecoder,
    UdpDatagram,
    link_local,
    udp_checksum,
)
from bridged.transports.ieee802154.mac import build_frame, data_frame

MAC_SRC = bytes.fromhex("00005eef10221100")
MAC_DST = bytes.fromhex("00005eef10aabbcc")
SRC, DST = link_local(MAC_SRC), link_local(MAC_DST)
IPHC = "7e33"
RPL = "6304001e0200"  # RPL option: type 0x63, 4 data octets: flags 0, instance 0x1e, rank 0x200
UDP_COAP = "16331633000de322"  # 5683 -> 5683, length 13, checksum 0xe322
UDP_F0B = "f0b1f0b2000d2e24"  # 0xf0b1 -> 0xf0b2, length 13, checksum 0x2e24
HELLO = b"hello"

# (name, compressed bytes after IPHC, IPv6 next header, uncompressed extension headers + UDP)
VECTORS = [
    (
        # e1 = 1110 000 1: Hop-by-Hop, next header NHC. Length 06: the RPL option's 6 octets,
        # 2 + 6 = 8 so no padding; Hdr Ext Len 0. Next Header 17 from the NHC UDP after it.
        "RPL Hop-by-Hop, NHC UDP",
        "e106" + RPL + "f016331633e322",
        0,
        "1100" + RPL + UDP_COAP,
    ),
    (
        # Length 04: option 1e 02 abcd (type 0x1e: skip if unknown). 2 + 4 = 6: the PadN of
        # the two missing octets (01 00) was left off and comes back.
        "Hop-by-Hop, trailing PadN elided",
        "e1041e02abcd" + "f016331633e322",
        0,
        "11001e02abcd0100" + UDP_COAP,
    ),
    (
        # e7 = 1110 011 1: Destination Options. 2 + 5 = 7: one Pad1 (00) comes back.
        "Destination Options, trailing Pad1 elided",
        "e7051e03aabbcc" + "f016331633e322",
        60,
        "11001e03aabbcc00" + UDP_COAP,
    ),
    (
        # Padding the compressor kept is kept: 2 + 6 = 8 already.
        "Hop-by-Hop, padding carried",
        "e1061e02abcd0100" + "f016331633e322",
        0,
        "11001e02abcd0100" + UDP_COAP,
    ),
    (
        # e5 = 1110 010 1: Fragment. No Length field: Reserved 00, offset 0 and M 0 (0000),
        # Identification 12345678, as they are: an atomic fragment (RFC 6946).
        "atomic Fragment header",
        "e5000000" + "12345678" + "f016331633e322",
        44,
        "1100000012345678" + UDP_COAP,
    ),
    (
        # e3 = 1110 001 1: Routing. Length 06: type 3 (RFC 6554 source route), segments left
        # 0, CmprI/CmprE/Pad/reserved 0. 2 + 6 = 8: Hdr Ext Len 0.
        "RPL source routing header, nothing left",
        "e306030000000000" + "f016331633e322",
        43,
        "1100030000000000" + UDP_COAP,
    ),
    (
        # A chain: Hop-by-Hop (NH=1) -> Destination Options (NH=1) -> NHC UDP f3 (both ports
        # 0xf0bX: 1 -> 2). Each elided Next Header is the protocol of the header after it.
        "Hop-by-Hop, Destination Options, NHC UDP with compressed ports",
        "e106" + RPL + "e7041e02abcd" + "f3122e24",
        0,
        "3c00" + RPL + "11001e02abcd0100" + UDP_F0B,
    ),
    (
        # e6 = 1110 011 0: Destination Options, Next Header inline (11 = UDP): the chain ends
        # and the UDP header follows uncompressed.
        "Destination Options, next header inline",
        "e611041e02abcd" + UDP_COAP,
        60,
        "11001e02abcd0100" + UDP_COAP,
    ),
    (
        # f7 = 11110 1 11: checksum elided, ports 0xf0bX: the checksum (0x2e24) is computed
        # over the whole datagram once the extension header is out of the way.
        "Hop-by-Hop, NHC UDP with elided checksum",
        "e106" + RPL + "f712",
        0,
        "1100" + RPL + UDP_F0B,
    ),
]


def decode(compressed: bytes) -> Ipv6Packet:
    packet = LowpanDecoder().decode(compressed, src_mac=MAC_SRC, dst_mac=MAC_DST)
    assert packet is not None
    return packet


def test_udp_checksums_of_the_vectors() -> None:
    udp = bytes.fromhex(UDP_COAP)
    assert udp_checksum(SRC, DST, udp[:6] + b"\0\0" + HELLO) == 0xE322
    udp = bytes.fromhex(UDP_F0B)
    assert udp_checksum(SRC, DST, udp[:6] + b"\0\0" + HELLO) == 0x2E24


@pytest.mark.parametrize(
    ("nhc", "next_header", "uncompressed"), [pytest.param(*row[1:], id=row[0]) for row in VECTORS]
)
def test_hand_derived_vectors(nhc: str, next_header: int, uncompressed: str) -> None:
    packet = decode(bytes.fromhex(IPHC + nhc) + HELLO)
    assert packet == Ipv6Packet(
        SRC, DST, next_header, 64, payload=bytes.fromhex(uncompressed) + HELLO
    )
    datagram = UdpDatagram.from_packet(packet)  # walks the extension headers, checks the sum
    assert datagram.payload == HELLO
    assert (datagram.src, datagram.dst) == (SRC, DST)


def test_the_link_delivers_the_datagram_behind_the_rpl_option() -> None:
    # A Contiki-NG-style frame: RPL option in a compressed Hop-by-Hop header, then NHC UDP.
    payload = bytes.fromhex(IPHC + VECTORS[0][1]) + HELLO
    psdu = build_frame(data_frame(seq=1, src=MAC_SRC, dst=MAC_DST, pan_id=0xABCD, payload=payload))
    datagram = LowpanLink().receive(psdu)
    assert datagram == UdpDatagram(SRC, 5683, DST, 5683, HELLO)


def test_extension_headers_in_a_fragmented_datagram() -> None:
    # FRAG1 carries the compressed headers; the datagram size counts them uncompressed.
    body = bytes(range(200))
    udp = bytes.fromhex("16331633") + (8 + len(body)).to_bytes(2, "big")
    udp += udp_checksum(SRC, DST, udp + b"\0\0" + body).to_bytes(2, "big")
    header = bytes.fromhex(IPHC + "e106" + RPL + "f016331633") + udp[6:8]
    size = 40 + 8 + len(udp) + len(body)
    payloads = fragment(header, body, size, tag=7, max_payload=80)
    assert len(payloads) > 1
    decoder = LowpanDecoder()
    results = [decoder.decode(p, src_mac=MAC_SRC, dst_mac=MAC_DST) for p in payloads]
    packet = results[-1]
    assert results[:-1] == [None] * (len(payloads) - 1) and packet is not None
    assert packet.payload == bytes.fromhex("1100" + RPL) + udp + body
    assert UdpDatagram.from_packet(packet).payload == body


def test_headers_that_end_the_chain_are_not_udp() -> None:
    # e0 = Hop-by-Hop, next header inline: 3a (ICMPv6), then an echo request as it is.
    packet = decode(bytes.fromhex(IPHC + "e03a06" + RPL + "80000000"))
    assert (packet.next_header, packet.upper_layer()) == (0, (58, 8))
    # e8 = 1110 100 0: Mobility, next header inline 3b (none); MH type 5, checksum 0.
    packet = decode(bytes.fromhex(IPHC + "e83b06050000000000"))
    assert packet.payload == bytes.fromhex("3b00050000000000")
    assert packet.upper_layer() == (135, 0)
    frame = data_frame(
        seq=2, src=MAC_SRC, dst=MAC_DST, pan_id=1, payload=bytes.fromhex(IPHC + "e83b06") + bytes(6)
    )
    assert LowpanLink().receive(build_frame(frame)) is None


@pytest.mark.parametrize(
    ("nhc", "match"),
    [
        ("ea00", "reserved NHC extension header ID 5"),  # 1110 101 0
        ("ed00", "reserved NHC extension header ID 6"),  # 1110 110 1
        ("ef7e33", "IPv6-in-IPv6"),  # 1110 111 1
        ("e1", "truncated in its length"),
        ("e1066304", "of 6 bytes truncated"),
        ("e106" + RPL, "ends"),  # NH=1 and nothing after
        ("e0", "truncated in its next header"),
        ("e5000000", "Fragment header truncated"),
        ("e30403000000f016331633e322", "not a multiple of 8"),  # Routing of 6 octets
        ("e106" + RPL + "00", "unknown NHC identifier 0x00"),
    ],
)
def test_refused_compressed_headers(nhc: str, match: str) -> None:
    with pytest.raises(LowpanDecodeError, match=match):
        decode(bytes.fromhex(IPHC + nhc))


@pytest.mark.parametrize(
    ("nhc", "match"),
    [
        ("e306030100000000" + "f016331633e322", "segments left"),
        ("e5000001" + "12345678" + "f016331633e322", "IPv6 fragment"),  # M=1
        ("e5000100" + "12345678" + "f016331633e322", "IPv6 fragment"),  # offset 32
        ("e7041e02abcd" + "e106" + RPL + "f016331633e322", "Hop-by-Hop options not right"),
    ],
)
def test_refused_extension_header_chains(nhc: str, match: str) -> None:
    packet = decode(bytes.fromhex(IPHC + nhc) + HELLO)
    with pytest.raises(LowpanDecodeError, match=match):
        UdpDatagram.from_packet(packet)


# --- properties -----------------------------------------------------------------------------

_EID = {0: 0, 43: 1, 44: 2, 60: 3}


@st.composite
def options(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """Options of a Hop-by-Hop or Destination Options header: (as sent, padded as received).

    The compressor may leave off the trailing padding, or send it; the receiver sees it.
    """
    body = b"".join(
        bytes((draw(st.integers(2, 0x3F)), len(data))) + data
        for data in draw(st.lists(st.binary(max_size=12), max_size=4))
    )
    missing = -(2 + len(body)) % 8
    pad = bytes((1, missing - 2)) + bytes(missing - 2) if missing > 1 else bytes(missing)
    sent = body + pad if draw(st.booleans()) else body
    return sent, body + pad


@st.composite
def extension(draw: st.DrawFn, protocol: int) -> tuple[bytes, bytes]:
    """One extension header: (compressed bytes after the Length/Next Header fields, the
    uncompressed bytes after its Next Header field)."""
    if protocol == 44:
        reserved_and_id = draw(st.binary(min_size=1, max_size=1)) + b"\0\0"
        rest = reserved_and_id + draw(st.binary(min_size=4, max_size=4))
        return rest, rest
    if protocol == 43:
        words = draw(st.integers(0, 3))
        data = bytes((draw(st.integers(0, 255)), 0)) + draw(
            st.binary(min_size=4 + 8 * words, max_size=4 + 8 * words)
        )
        return bytes((len(data),)) + data, bytes((words,)) + data
    sent, received = draw(options())
    return bytes((len(sent),)) + sent, bytes(((2 + len(received)) // 8 - 1,)) + received


@st.composite
def chains(draw: st.DrawFn) -> tuple[bytes, Ipv6Packet, UdpDatagram]:
    """IPHC, a chain of NHC extension headers and a UDP datagram, compressed, with the packet
    they stand for. One header may carry its Next Header inline: the chain's rest then follows
    uncompressed; otherwise NHC UDP ends it."""
    protocols = draw(st.lists(st.sampled_from([43, 44, 60]), max_size=4))
    if draw(st.booleans()) or not protocols:
        protocols.insert(0, 0)
    ports = draw(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)))
    datagram = UdpDatagram(SRC, ports[0], DST, ports[1], draw(st.binary(max_size=40)))
    udp = datagram.to_packet().payload
    inline_at = draw(st.integers(0, len(protocols)))
    compressed = bytes.fromhex(IPHC)
    uncompressed = b""
    for i, protocol in enumerate(protocols):
        following = protocols[i + 1] if i + 1 < len(protocols) else 17
        sent, received = draw(extension(protocol))
        header = bytes((following,)) + received
        if i < inline_at:
            compressed += bytes((0xE1 | _EID[protocol] << 1,)) + sent
        elif i == inline_at:
            compressed += bytes((0xE0 | _EID[protocol] << 1, following)) + sent
        else:
            compressed += header
        uncompressed += header
    if inline_at < len(protocols):
        compressed += udp
    else:
        compressed += b"\xf0" + udp[:4] + udp[6:]
    return compressed, Ipv6Packet(SRC, DST, protocols[0], 64, payload=uncompressed + udp), datagram


@given(chains())
def test_chains_decode_to_the_packet_they_stand_for(
    case: tuple[bytes, Ipv6Packet, UdpDatagram],
) -> None:
    compressed, expected, datagram = case
    packet = decode(compressed)
    assert packet == expected
    assert UdpDatagram.from_packet(packet) == datagram


@given(st.binary(max_size=60), st.binary(max_size=3))
def test_garbage_after_an_extension_header_raises_only_the_typed_error(
    data: bytes, first: bytes
) -> None:
    decoder = LowpanDecoder()
    for nhc in (0xE0, 0xE1, 0xE3, 0xE5, 0xE7, 0xE8, *first):
        try:
            packet = decoder.decode(
                bytes.fromhex(IPHC) + bytes((nhc | 0xE0,)) + data, src_mac=MAC_SRC, dst_mac=None
            )
            if packet is not None:
                UdpDatagram.from_packet(packet)
        except LowpanDecodeError:
            pass
