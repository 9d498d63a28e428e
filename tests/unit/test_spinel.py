"""Spinel: the draft's test vectors, the RCP's STREAM_RAW layouts, and garbage.

Vectors from the Spinel protocol draft (draft-rquattle-spinel-unified, appendix "Test
Vectors"; the same text is OpenThread's doc/spinel-protocol-src/spinel-test-vectors.md):
packed unsigned integers, the reset command and notification, the scan beacon (an
``Cct(ESSc)t(iCUd)`` value), fetching on-mesh networks and removing one (``6``).

The STREAM_RAW layouts are those OpenThread's RCP and host exchange: receive ``d c c S
t(CCX) t(i)`` (19 bytes of metadata after the PSDU), transmit ``d C C C b b b b L L C c``,
transmit done ``i b b`` + the ACK in the receive layout. Those vectors are hand-assembled
field by field from that layout.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.transports.ieee802154 import spinel
from bridged.transports.ieee802154.spinel import (
    Command,
    Frame,
    Prop,
    RxFrame,
    SpinelDecodeError,
    Status,
    TxDone,
    TxRequest,
)

PACKED = [
    (0, "00"),
    (1, "01"),
    (127, "7f"),
    (128, "8001"),
    (129, "8101"),
    (1337, "b90a"),
    (16383, "ff7f"),
    (16384, "808001"),
    (16385, "818001"),
    (2097151, "ffff7f"),
]


@pytest.mark.parametrize(("value", "wire"), PACKED)
def test_packed_uint_vectors(value: int, wire: str) -> None:
    assert spinel.pack_uint(value) == bytes.fromhex(wire)
    assert spinel.unpack_uint(bytes.fromhex(wire)) == (value, len(wire) // 2)


def test_packed_uint_limits() -> None:
    with pytest.raises(ValueError):
        spinel.pack_uint(2097152)
    with pytest.raises(SpinelDecodeError, match="three bytes"):
        spinel.unpack_uint(bytes.fromhex("ffffff01"))
    with pytest.raises(SpinelDecodeError, match="cut short"):
        spinel.unpack_uint(bytes.fromhex("ff"))


def test_reset_command_and_notification() -> None:
    assert spinel.encode_frame(Frame(Command.RESET)) == bytes.fromhex("8001")
    notification = spinel.decode_frame(bytes.fromhex("80060072"))
    assert notification == Frame(Command.PROP_VALUE_IS, b"\x00\x72", tid=0)
    assert notification.prop == Prop.LAST_STATUS
    assert spinel.unpack("i", notification.value) == (Status.RESET_SOFTWARE,)
    assert Status.RESET_SOFTWARE in spinel.RESET_STATUSES


SCAN_BEACON = bytes.fromhex(
    "80 07 33 0F C4 0D 00 B6 40 D4 8C E9 38 F9 52 FF FF D2 04 00"
    "13 00 03 20 73 70 69 6E 65 6C 00 08 00 DE AD 00 BE EF 00 CA FE"
)


def test_scan_beacon_vector() -> None:
    frame = spinel.decode_frame(SCAN_BEACON)
    assert (frame.tid, frame.command, frame.prop) == (0, Command.PROP_VALUE_INSERTED, 51)
    values = spinel.unpack("Cct(ESSc)t(iCUd)", frame.value)
    assert values == (
        15,
        -60,
        (bytes.fromhex("B640D48CE938F952"), 0xFFFF, 0x04D2, 0),
        (3, 0x20, "spinel", bytes.fromhex("DEAD00BEEF00CAFE")),
    )
    assert (
        spinel.prop_frame(Command.PROP_VALUE_INSERTED, 51, spinel.pack("Cct(ESSc)t(iCUd)", *values))
        == frame
    )
    assert spinel.encode_frame(frame) == SCAN_BEACON


def test_get_and_remove_vectors() -> None:
    get = spinel.prop_frame(Command.PROP_VALUE_GET, 90, tid=4)
    assert spinel.encode_frame(get) == bytes.fromhex("84025A")
    prefix = bytes.fromhex("20010DB8000300000000000000000000")
    remove = spinel.prop_frame(Command.PROP_VALUE_REMOVE, 90, spinel.pack("6", prefix), tid=6)
    assert spinel.encode_frame(remove) == bytes.fromhex("86055A") + prefix
    removed = spinel.decode_frame(bytes.fromhex("86085A") + prefix)
    assert (removed.tid, removed.command, spinel.unpack("6", removed.value)) == (6, 8, (prefix,))


def test_struct_fields_appended_by_newer_firmware_are_skipped() -> None:
    # The draft's example: Lt(ESU)t(6D) decodes as Lt(ES)t(6D).
    eui, ip6 = bytes(range(8)), bytes(range(16))
    wire = spinel.pack("Lt(ESU)t(6D)", 7, (eui, 5, "extra"), (ip6, b"tail"))
    assert spinel.unpack("Lt(ES)t(6D)", wire) == (7, (eui, 5), (ip6, b"tail"))
    assert spinel.unpack("Ldd", wire)[0] == 7


def test_header_flag_bits_and_iid() -> None:
    assert spinel.decode_frame(bytes.fromhex("b502")) == Frame(2, b"", tid=5, iid=3)
    for header in (0x00, 0x40, 0xC0):
        with pytest.raises(SpinelDecodeError, match="flag"):
            spinel.decode_frame(bytes((header, 1)))
    with pytest.raises(SpinelDecodeError):
        spinel.decode_frame(b"")


def test_boolean_is_strict() -> None:
    assert spinel.unpack("bb", b"\x00\x01") == (False, True)
    with pytest.raises(SpinelDecodeError, match="boolean"):
        spinel.unpack("b", b"\x02")


def test_caps_and_versions() -> None:
    caps = spinel.pack("A(i)", [spinel.CAP_CONFIG_RADIO, spinel.CAP_MAC_RAW])
    assert caps == bytes.fromhex("228104")
    assert list(spinel.iter_caps(caps)) == [34, 513]
    assert spinel.unpack("ii", spinel.pack("ii", 4, 3)) == (4, 3)
    assert spinel.unpack("U", b"OPENTHREAD/1.0\0") == ("OPENTHREAD/1.0",)


def test_status_names() -> None:
    assert spinel.status_name(17) == "NO_ACK"
    assert spinel.status_name(125) == "RESET_125"
    assert spinel.status_name(0x4000 + 11) == "STACK_NATIVE_11"
    assert spinel.status_name(9999) == "STATUS_9999"


# -- STREAM_RAW -------------------------------------------------------------------------------

# A received 5-byte ACK on channel 15, RSSI -45, noise floor -100, LQI 200, at t=1,000,000 µs.
ACK_PSDU = bytes.fromhex("020005d87c")
RX_VALUE = bytes.fromhex(
    "0500"
    "020005d87c"  # d: length 5, PSDU (with its FCS)
    "d3"  # c: RSSI -45
    "9c"  # c: noise floor -100
    "0000"  # S: flags
    "0a00"
    "0f"
    "c8"
    "40420f0000000000"  # t(CCX): channel 15, LQI 200, timestamp 1e6
    "0100"
    "00"  # t(i): receive error 0
)


def test_receive_vector() -> None:
    frame = spinel.decode_rx(RX_VALUE)
    assert frame == RxFrame(ACK_PSDU, -45, -100, 0, 15, 200, 1_000_000, 0)
    assert len(RX_VALUE) - 2 - len(ACK_PSDU) == 19
    assert spinel.encode_rx(frame) == RX_VALUE


def test_receive_with_secured_ack_metadata_and_unknown_tail() -> None:
    frame = RxFrame(ACK_PSDU, -45, -100, spinel.RxFlag.ACKED_SEC, 15, 200, 5, 0, 2, 0x01020304)
    wire = spinel.encode_rx(frame)
    assert wire.endswith(bytes.fromhex("05000204030201"))
    assert spinel.decode_rx(wire + b"\x01\x00\xff") == frame


def test_receive_without_timestamp_or_vendor_struct() -> None:
    wire = bytes.fromhex("0500020005d87cd39c000002000fc8")
    assert spinel.decode_rx(wire) == RxFrame(ACK_PSDU, -45, -100, 0, 15, 200, None, 0)


@pytest.mark.parametrize("cut", range(len(RX_VALUE) - 3))
def test_receive_cut_short(cut: int) -> None:
    with pytest.raises(SpinelDecodeError):
        spinel.decode_rx(RX_VALUE[:cut])


TX_VALUE = bytes.fromhex(
    "0500"
    "4188010000"  # d: PSDU
    "0f"  # C: channel 15
    "04"  # C: max CSMA backoffs
    "03"  # C: max frame retries
    "01"  # b: CSMA-CA on
    "00"
    "00"
    "00"  # b: header updated, retransmission, security processed
    "00000000"
    "00000000"  # L: TX delay, L: TX delay base time
    "0f"  # C: RX channel after TX done
)


def test_transmit_vector() -> None:
    request = TxRequest(bytes.fromhex("4188010000"), 15)
    assert spinel.encode_tx(request) == TX_VALUE
    assert spinel.decode_tx(TX_VALUE) == TxRequest(request.psdu, 15, rx_channel_after_tx_done=15)
    assert spinel.encode_tx(TxRequest(request.psdu, 15, tx_power=-4)) == TX_VALUE + b"\xfc"


def test_transmit_parameters_may_be_left_off() -> None:
    # An older host sends the frame and the channel only (or no more than CSMA-CA).
    assert spinel.decode_tx(TX_VALUE[:8]) == TxRequest(bytes.fromhex("4188010000"), 15)
    short = spinel.decode_tx(TX_VALUE[:12])
    assert (short.max_csma_backoffs, short.max_frame_retries, short.csma_ca) == (4, 3, True)
    with pytest.raises(SpinelDecodeError):
        spinel.decode_tx(TX_VALUE[:7])
    with pytest.raises(ValueError):
        spinel.encode_tx(TxRequest(bytes(128), 11))


def test_transmit_done() -> None:
    assert spinel.decode_tx_done(b"\x11") == TxDone(Status.NO_ACK)
    assert spinel.decode_tx_done(bytes.fromhex("120000")) == TxDone(Status.CCA_FAILURE)
    done = TxDone(Status.OK, True, False, spinel.decode_rx(RX_VALUE))
    assert spinel.encode_tx_done(done) == b"\x00\x01\x00" + RX_VALUE
    assert spinel.decode_tx_done(spinel.encode_tx_done(done)) == done
    # OK without an ACK (a broadcast): the RCP sends an empty frame.
    assert spinel.decode_tx_done(spinel.encode_tx_done(TxDone(Status.OK))) == TxDone(Status.OK)


# -- properties of the codecs -----------------------------------------------------------------

psdus = st.binary(min_size=1, max_size=127)
rx_frames = st.builds(
    RxFrame,
    psdus,
    st.integers(-128, 127),
    st.integers(-128, 127),
    st.integers(0, 0xFFFF),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 2**64 - 1),
    st.integers(0, spinel.MAX_PACKED_UINT),
    st.none(),  # no ACK key and counter: encode_rx writes the MAC struct only with them
    st.none(),
)
tx_requests = st.builds(
    TxRequest,
    psdus,
    st.integers(11, 26),
    st.integers(0, 255),
    st.integers(0, 255),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.none() | st.integers(-128, 127),
)


@given(st.integers(0, spinel.MAX_PACKED_UINT))
def test_packed_uint_round_trip(value: int) -> None:
    wire = spinel.pack_uint(value)
    assert spinel.unpack_uint(wire) == (value, len(wire))


@given(st.integers(0, 15), st.integers(0, 3), st.integers(0, 2000), st.binary(max_size=40))
def test_frame_round_trip(tid: int, iid: int, command: int, payload: bytes) -> None:
    frame = Frame(command, payload, tid, iid)
    assert spinel.decode_frame(spinel.encode_frame(frame)) == frame


@given(rx_frames)
def test_receive_round_trip(frame: RxFrame) -> None:
    assert spinel.decode_rx(spinel.encode_rx(frame)) == frame


@given(tx_requests)
def test_transmit_round_trip(request: TxRequest) -> None:
    assert spinel.decode_tx(spinel.encode_tx(request)) == request


@given(st.binary(max_size=200))
def test_garbage_raises_only_the_typed_error(data: bytes) -> None:
    for decode in (
        spinel.decode_frame,
        spinel.decode_rx,
        spinel.decode_tx,
        spinel.decode_tx_done,
        spinel.decode_property,
        lambda d: spinel.unpack("Cct(ESSc)t(iCUd)", d),
        lambda d: spinel.unpack("ibSLXlsxE6dA(t(iU))", d),
        lambda d: list(spinel.iter_caps(d)),
    ):
        try:
            decode(data)
        except SpinelDecodeError:
            pass


def _general(data: bytes) -> RxFrame | str | None:
    """What the radio's general path makes of a Spinel frame: the STREAM_RAW PROP_VALUE_IS
    with TID 0 as an RxFrame, None for another frame, the error for bytes it refuses."""
    try:
        frame = spinel.decode_frame(data)
        if frame.tid or frame.command != spinel.Command.PROP_VALUE_IS:
            return None
        prop, value = spinel.decode_property(frame.payload)
        return spinel.decode_rx(value) if prop == spinel.Prop.STREAM_RAW else None
    except SpinelDecodeError as e:
        return str(e)


def _fast(data: bytes) -> RxFrame | str | None:
    try:
        return spinel.decode_stream_raw(data)
    except SpinelDecodeError as e:
        return str(e)


@given(rx_frames, st.integers(0, 15), st.integers(0, 3), st.binary(max_size=8), st.data())
def test_the_stream_raw_fast_path_is_the_general_path_where_it_answers(
    rx: RxFrame, tid: int, iid: int, tail: bytes, data: st.DataObject
) -> None:
    """``decode_stream_raw`` gives the general path's frame, or its error, or declines (None):
    on STREAM_RAW frames of every TID and interface, with fields appended, cut short, and on
    other properties and commands; the frame the RCP sends per frame heard takes it."""
    command = data.draw(st.sampled_from([spinel.Command.PROP_VALUE_IS, spinel.Command.RESET]))
    prop = data.draw(st.sampled_from([spinel.Prop.STREAM_RAW, spinel.Prop.LAST_STATUS]))
    wire = spinel.encode_frame(spinel.prop_frame(command, prop, spinel.encode_rx(rx) + tail, tid))
    wire = bytes((wire[0] | iid << 4,)) + wire[1:]
    wire = wire[: data.draw(st.integers(0, len(wire)))]
    fast = _fast(wire) if wire else None
    if fast is not None:
        assert fast == _general(wire)
    common = (command, prop, tid, iid) == (
        spinel.Command.PROP_VALUE_IS,
        spinel.Prop.STREAM_RAW,
        0,
        0,
    )
    if common and fast is not None and not isinstance(fast, str):
        assert fast == spinel.decode_rx(spinel.encode_rx(rx))


def test_a_frame_heard_takes_the_stream_raw_fast_path() -> None:
    rx = RxFrame(bytes(range(20)), -62, -98, 0, 11, 220, 1_000_000)
    wire = spinel.encode_frame(
        spinel.prop_frame(
            spinel.Command.PROP_VALUE_IS, spinel.Prop.STREAM_RAW, spinel.encode_rx(rx)
        )
    )
    assert spinel.decode_stream_raw(wire) == rx


@given(st.binary(max_size=120))
def test_the_stream_raw_fast_path_on_garbage_declines_or_agrees(data: bytes) -> None:
    for candidate in (data, b"\x80\x06\x71" + data):
        fast = _fast(candidate)
        if fast is not None:
            assert fast == _general(candidate)
