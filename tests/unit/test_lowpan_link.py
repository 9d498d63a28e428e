"""LowpanLink: PSDUs to UDP datagrams and back, through every layer, without I/O."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.transports.ieee802154.errors import (
    LowpanDecodeError,
    MacDecodeError,
    RadioDecodeError,
    SecuredFrameError,
)
from bridged.transports.ieee802154.link import LowpanLink
from bridged.transports.ieee802154.lowpan import Context, UdpDatagram, link_local
from bridged.transports.ieee802154.mac import (
    MAX_PSDU,
    FrameType,
    FrameVersion,
    MacFrame,
    build_ack,
    build_frame,
    crc16_kermit,
    data_frame,
    parse_frame,
)

GATEWAY = bytes.fromhex("00124b0001020304")
NODE = bytes.fromhex("00124b00aabbccdd")
PAN = 0xABCD


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def datagram(size: int, src_mac: bytes = NODE, dst_mac: bytes = GATEWAY) -> UdpDatagram:
    payload = random.Random(size).randbytes(size)
    return UdpDatagram(link_local(src_mac), 5683, link_local(dst_mac), 5683, payload)


@pytest.mark.parametrize("version", list(FrameVersion))
@pytest.mark.parametrize(("src_mac", "dst_mac"), [(NODE, GATEWAY), (b"\x00\x05", b"\x00\x01")])
def test_small_datagram_round_trip(version: FrameVersion, src_mac: bytes, dst_mac: bytes) -> None:
    node, gateway = LowpanLink(version=version), LowpanLink()
    sent = datagram(40, src_mac, dst_mac)
    frames = node.send(sent, src_mac=src_mac, dst_mac=dst_mac, pan_id=PAN)
    assert len(frames) == 1
    frame = parse_frame(frames[0])
    assert (frame.frame_type, frame.pan_id, frame.ack_request) == (FrameType.DATA, PAN, True)
    # Link-local addresses derived from the MAC addresses are elided entirely.
    assert frame.payload[:2] == b"\x7e\x33"
    assert gateway.receive(frames[0]) == sent


def test_1280_byte_datagram_out_of_order_with_a_lost_fragment() -> None:
    clock = Clock()
    node, gateway = LowpanLink(), LowpanLink(clock=clock, reassembly_timeout=2.0)
    sent = datagram(1280 - 48)
    frames = node.send(sent, src_mac=NODE, dst_mac=GATEWAY, pan_id=PAN)
    assert len(frames) > 10 and all(len(f) <= MAX_PSDU for f in frames)
    order = frames[1:]
    random.Random(5).shuffle(order)
    received = [gateway.receive(f) for f in order[:-1]]  # FRAG1 and one FRAGN lost
    assert received == [None] * len(received)
    clock.now += 2.5
    gateway.reassembler.expire()
    assert gateway.reassembler.counters.timed_out == 1
    # The sender tries again with a new tag and new sequence numbers; the order is shuffled.
    retry = node.send(sent, src_mac=NODE, dst_mac=GATEWAY, pan_id=PAN)
    random.Random(6).shuffle(retry)
    results = [gateway.receive(f) for f in retry]
    assert [r for r in results if r is not None] == [sent]


def test_duplicates_are_suppressed() -> None:
    node, gateway = LowpanLink(), LowpanLink()
    (psdu,) = node.send(datagram(10), src_mac=NODE, dst_mac=GATEWAY, pan_id=PAN)
    assert gateway.receive(psdu) is not None
    assert gateway.receive(psdu) is None  # a retransmission whose ACK was lost


def test_sequence_numbers_and_tags_advance() -> None:
    node = LowpanLink(seq=254, tag=0xFFFF)
    frames = node.send(datagram(300), src_mac=NODE, dst_mac=GATEWAY, pan_id=PAN)
    seqs = [parse_frame(f).seq for f in frames]
    assert seqs == [(254 + i) % 256 for i in range(len(frames))]
    more = node.send(datagram(300), src_mac=NODE, dst_mac=GATEWAY, pan_id=PAN)
    assert parse_frame(more[0]).payload[2:4] == b"\x00\x00"  # the tag wrapped to 0


def test_context_compression_on_the_air() -> None:
    contexts = {0: Context(bytes.fromhex("fd000db800000000"))}
    node, gateway = LowpanLink(contexts=contexts), LowpanLink(contexts=contexts)
    sent = UdpDatagram(
        bytes.fromhex("fd000db800000000") + bytes.fromhex("02124b00aabbccdd"),
        61616,
        bytes.fromhex("fd000db800000000000000fffe000001"),
        61617,
        b"x",
    )
    (psdu,) = node.send(sent, src_mac=NODE, dst_mac=b"\x00\x01", pan_id=PAN)
    assert parse_frame(psdu).payload[:3] == b"\x7e\x77\xf3"  # SAC/DAC=1, both elided, 4-bit ports
    assert gateway.receive(psdu) == sent


def test_frames_without_datagrams() -> None:
    gateway = LowpanLink()
    assert gateway.receive(build_ack(3)) is None
    command = MacFrame(FrameType.COMMAND, 1, dst=b"\xff\xff", dst_pan=PAN, payload=b"\x07")
    assert gateway.receive(build_frame(command)) is None
    icmp = data_frame(seq=2, src=NODE, dst=GATEWAY, pan_id=PAN, payload=bytes.fromhex("7a333a80"))
    assert gateway.receive(build_frame(icmp)) is None  # ICMPv6, not for the UDP layers


def test_errors_name_their_layer() -> None:
    gateway = LowpanLink()
    (psdu,) = LowpanLink().send(datagram(10), src_mac=NODE, dst_mac=GATEWAY, pan_id=PAN)
    with pytest.raises(MacDecodeError, match="FCS"):
        gateway.receive(psdu[:-1] + bytes((psdu[-1] ^ 0xFF,)))
    mesh = data_frame(seq=9, src=NODE, dst=GATEWAY, pan_id=PAN, payload=b"\x80\x01\x02\x03\x04")
    with pytest.raises(LowpanDecodeError, match="mesh"):
        gateway.receive(build_frame(mesh))
    frame = parse_frame(psdu)
    tampered = replace(frame, seq=10, payload=frame.payload[:-1] + b"!")
    with pytest.raises(LowpanDecodeError, match="checksum"):
        gateway.receive(build_frame(tampered))


def test_secured_frames_are_refused() -> None:
    from bridged.transports.ieee802154.mac import SecurityHeader

    secured = data_frame(seq=1, src=NODE, dst=GATEWAY, pan_id=PAN, payload=b"ciphertextMIC!")
    secured = replace(secured, security=SecurityHeader(5, 1, 42, b"", 1))
    with pytest.raises(SecuredFrameError):
        LowpanLink().receive(build_frame(secured))


@given(st.binary(max_size=130), st.booleans())
def test_garbage_raises_only_radio_decode_errors(data: bytes, with_fcs: bool) -> None:
    psdu = data + crc16_kermit(data).to_bytes(2, "little") if with_fcs else data
    try:
        LowpanLink().receive(psdu)
    except RadioDecodeError:
        pass


@given(st.binary(max_size=100))
def test_garbage_in_a_valid_data_frame_raises_only_radio_decode_errors(payload: bytes) -> None:
    frame = data_frame(seq=1, src=NODE, dst=GATEWAY, pan_id=PAN, payload=payload)
    try:
        LowpanLink().receive(build_frame(frame))
    except RadioDecodeError:
        pass
