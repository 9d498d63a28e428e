"""LinkSecurity (transports/ieee802154/link_security.py): whose frames need a key, the frame
counters both ways, and the 6LoWPAN link with security on both ends."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridged.hosting import transport_host
from bridged.objects.builtin import builtin_definitions
from bridged.transports.base import TransportConfigError
from bridged.transports.ieee802154.errors import (
    AuthenticationError,
    RadioDecodeError,
    ReplayError,
    SecuredFrameError,
    UnsecuredFrameError,
)
from bridged.transports.ieee802154.keys import security_settings
from bridged.transports.ieee802154.link import LowpanLink
from bridged.transports.ieee802154.link_security import (
    MAX_COUNTER,
    RESERVE_WINDOW,
    FrameCounter,
    FrameCounterError,
    LinkSecurity,
    SecuritySettings,
)
from bridged.transports.ieee802154.lowpan import UdpDatagram, link_local
from bridged.transports.ieee802154.mac import (
    MAX_PSDU,
    build_frame,
    crc16_kermit,
    data_frame,
    parse_frame,
)
from bridged.transports.ieee802154.node_events import NodeEvents, split_session
from bridged.transports.ieee802154.security import KeyIdentifier
from bridged.transports.ieee802154.transport import COUNTER_FILE, IEEE802154Transport
from bridged.transports.nodes import NodeId, Secret

KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
OTHER = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
NODE = bytes.fromhex("00124b00aabbccdd")
STRANGER = bytes.fromhex("00124b0000000bad")
GATEWAY = bytes.fromhex("f4ce360000c0ffee")
PAN = 0xFACE


def gateway_side(
    *, network: bytes | None = None, accepted: list[tuple[bytes, int]] | None = None
) -> LinkSecurity:
    settings = SecuritySettings(network_key=Secret(network) if network else None)
    kept = accepted if accepted is not None else []
    return LinkSecurity(settings, FrameCounter(), accepted=lambda p, c: kept.append((p, c)))


def node_side(key: bytes = KEY, start: int = 0) -> LinkSecurity:
    """A node's end: the gateway is its one peer, with the node's key."""
    security = LinkSecurity(SecuritySettings(), FrameCounter(load=lambda: start))
    security.pair(GATEWAY, key)
    return security


def frame_from(sender: LinkSecurity, payload: bytes = b"\x41\x01 plaintext", seq: int = 1) -> bytes:
    return sender.seal(data_frame(seq=seq, src=NODE, dst=GATEWAY, pan_id=PAN, payload=payload))


def opened(security: LinkSecurity, psdu: bytes) -> bytes | None:
    frame = security.open(parse_frame(psdu), psdu)
    return None if frame is None else frame.payload


def test_a_paired_nodes_frames_are_opened_with_its_key_and_its_counters_kept() -> None:
    accepted: list[tuple[bytes, int]] = []
    gateway = gateway_side(accepted=accepted)
    gateway.pair(NODE, KEY)
    node = node_side()
    first, second = frame_from(node), frame_from(node, b"second", seq=2)
    assert b"plaintext" not in first
    assert opened(gateway, first) == b"\x41\x01 plaintext"
    assert opened(gateway, second) == b"second"
    assert accepted == [(NODE, 0), (NODE, 1)]


def test_plaintext_from_a_keyed_node_is_refused_and_from_others_taken() -> None:
    gateway = gateway_side()
    gateway.pair(NODE, KEY)
    plain = build_frame(data_frame(seq=1, src=NODE, dst=GATEWAY, pan_id=PAN, payload=b"forged"))
    with pytest.raises(UnsecuredFrameError):
        opened(gateway, plain)
    other = build_frame(data_frame(seq=1, src=STRANGER, dst=GATEWAY, pan_id=PAN, payload=b"hi"))
    assert opened(gateway, other) == b"hi"


def test_with_a_network_key_every_node_must_secure() -> None:
    gateway = gateway_side(network=OTHER)
    plain = build_frame(data_frame(seq=1, src=STRANGER, dst=GATEWAY, pan_id=PAN, payload=b"x"))
    with pytest.raises(UnsecuredFrameError):
        opened(gateway, plain)
    assert opened(gateway, frame_from(node_side(OTHER), b"joined")) == b"joined"
    # A node paired with a link key of its own uses it, not the network key.
    gateway.pair(NODE, KEY)
    with pytest.raises(AuthenticationError):
        opened(gateway, frame_from(node_side(OTHER, start=5)))
    assert opened(gateway, frame_from(node_side(KEY, start=6), b"own key")) == b"own key"


def test_replays_are_refused_and_a_retransmission_dropped_quietly() -> None:
    gateway = gateway_side()
    gateway.pair(NODE, KEY)
    node = node_side()
    first, second = frame_from(node), frame_from(node, b"second", seq=2)
    assert opened(gateway, first) is not None
    assert opened(gateway, second) is not None
    assert opened(gateway, second) is None  # the same bytes again: its ACK was lost
    with pytest.raises(ReplayError, match="0 is not above 1"):
        opened(gateway, first)
    same_counter = node_side(start=1)
    with pytest.raises(ReplayError):
        opened(gateway, frame_from(same_counter, b"other bytes, counter 1", seq=3))


def test_a_forged_frame_does_not_move_the_counter() -> None:
    gateway = gateway_side()
    gateway.pair(NODE, KEY)
    with pytest.raises(AuthenticationError):
        opened(gateway, frame_from(node_side(OTHER, start=MAX_COUNTER)))
    assert gateway.last_counter(NODE) is None
    assert opened(gateway, frame_from(node_side(start=3))) is not None
    assert gateway.last_counter(NODE) == 3


def test_a_restored_counter_refuses_what_was_taken_before_the_restart() -> None:
    node = node_side()
    old = [frame_from(node, seq=i) for i in range(3)]
    gateway = gateway_side()
    gateway.pair(NODE, KEY)
    gateway.restore(NODE, 2)  # what the last run accepted
    for psdu in old:
        with pytest.raises(ReplayError):
            opened(gateway, psdu)
    assert opened(gateway, frame_from(node, seq=4)) is not None


def test_a_new_key_starts_the_counters_afresh_and_the_same_key_keeps_them() -> None:
    gateway = gateway_side()
    assert not gateway.pair(NODE, KEY)
    opened(gateway, frame_from(node_side(start=40)))
    assert not gateway.pair(NODE, KEY)
    assert gateway.last_counter(NODE) == 40
    assert gateway.pair(NODE, OTHER)
    assert gateway.last_counter(NODE) is None
    assert opened(gateway, frame_from(node_side(OTHER))) is not None


def _network_frame(peer: bytes, counter: int) -> bytes:
    sender = LinkSecurity(
        SecuritySettings(network_key=Secret(KEY)), FrameCounter(load=lambda: counter)
    )
    return sender.seal(data_frame(seq=1, src=peer, dst=GATEWAY, pan_id=PAN, payload=b"x"))


def test_unpaired_counters_are_bounded_and_paired_ones_kept() -> None:
    security = LinkSecurity(SecuritySettings(network_key=Secret(KEY)), FrameCounter(), remembered=2)
    security.pair(NODE, None)  # paired, on the network key
    strangers = [bytes.fromhex(f"00124b00000000{n:02x}") for n in range(5)]
    for counter, peer in enumerate([NODE, *strangers]):
        opened(security, _network_frame(peer, counter))
    assert security.last_counter(NODE) == 0
    assert security.last_counter(strangers[0]) is None  # forgotten
    assert security.last_counter(strangers[-1]) == 5


def test_another_key_identifier_names_no_key() -> None:
    gateway = gateway_side()
    gateway.pair(NODE, KEY)
    sender = LinkSecurity(SecuritySettings(key_id=KeyIdentifier(1, b"", 2)), FrameCounter())
    sender.pair(GATEWAY, KEY)
    with pytest.raises(SecuredFrameError, match="index 2"):
        opened(gateway, frame_from(sender))


def test_a_secured_frame_from_a_node_without_a_key_cannot_be_opened() -> None:
    with pytest.raises(SecuredFrameError, match="no key"):
        opened(gateway_side(), frame_from(node_side()))


# -- the gateway's own counter -------------------------------------------------------------------


def test_the_counter_is_reserved_ahead_and_a_restart_continues_above_it() -> None:
    kept: list[int] = []
    counter = FrameCounter(reserve=kept.append, window=10)
    assert [counter.next() for _ in range(25)] == list(range(25))
    assert kept == [10, 20, 30]
    restarted = FrameCounter(load=lambda: kept[-1], reserve=kept.append, window=10)
    assert restarted.next() == 30  # above every number the last run may have used
    assert kept[-1] == 40


def test_a_counter_that_cannot_be_kept_numbers_nothing() -> None:
    def fail(upto: int) -> None:
        raise OSError(28, "No space left on device")

    counter = FrameCounter(reserve=fail)
    with pytest.raises(FrameCounterError, match="No space"):
        counter.next()
    with pytest.raises(FrameCounterError, match="cannot be read"):
        FrameCounter(load=lambda: int("damaged")).next()
    exhausted = FrameCounter(load=lambda: MAX_COUNTER)
    assert exhausted.next() == MAX_COUNTER
    with pytest.raises(FrameCounterError, match="exhausted"):
        exhausted.next()


def test_the_gateways_frames_to_a_keyed_node_are_secured_and_others_are_not() -> None:
    gateway = gateway_side()
    gateway.pair(NODE, KEY)
    to_node = gateway.seal(data_frame(seq=1, src=GATEWAY, dst=NODE, pan_id=PAN, payload=b"2.04"))
    assert parse_frame(to_node).security is not None
    node = LinkSecurity(SecuritySettings(), FrameCounter())
    node.pair(GATEWAY, KEY)
    assert opened(node, to_node) == b"2.04"
    plain = gateway.seal(data_frame(seq=2, src=GATEWAY, dst=STRANGER, pan_id=PAN, payload=b"x"))
    assert parse_frame(plain).security is None


# -- the link with security on both ends ----------------------------------------------------------


@pytest.mark.parametrize("size", [20, 400])
def test_datagrams_cross_a_secured_link_whole_and_fragmented(size: int) -> None:
    gateway = gateway_side()
    gateway.pair(NODE, KEY)
    gateway_link, node_link = LowpanLink(security=gateway), LowpanLink(security=node_side())
    payload = bytes(range(256)) * 2
    sent = UdpDatagram(link_local(NODE), 5683, link_local(GATEWAY), 5683, payload[:size])
    frames = node_link.send(sent, src_mac=NODE, dst_mac=GATEWAY, pan_id=PAN)
    assert all(parse_frame(f).security is not None and len(f) <= MAX_PSDU for f in frames)
    assert [d for d in map(gateway_link.receive, frames) if d is not None] == [sent]
    answer = sent._replace(src=sent.dst, dst=sent.src, payload=b"\x60\x44")
    (back,) = gateway_link.send(answer, src_mac=GATEWAY, dst_mac=NODE, pan_id=PAN)
    assert node_link.receive(back) == answer


# -- the transport's settings and its counter file -----------------------------------------------


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"network_key": "00" * 15}, "network_key"),
        ({"network_key": KEY.hex(), "network_key_file": "/x"}, "network_key_file"),
        ({"network_key_file": "relative.key"}, "network_key_file"),
        ({"network_key_file": "/nonexistent/network.key"}, "network_key_file"),
        ({"security_level": 4}, "security_level"),
        ({"security_level": True}, "security_level"),
        ({"key_id_mode": 3}, "key_id_mode"),
        ({"key_index": 0}, "key_index"),
        ({"key_source": "00000000"}, "key_source"),
        ({"key_id_mode": 2, "key_source": "0000"}, "key_source"),
    ],
)
def test_security_settings_are_checked(options: dict[str, object], key: str) -> None:
    with pytest.raises(TransportConfigError, match=key) as refused:
        security_settings(options)
    assert KEY.hex() not in str(refused.value)


def test_security_settings_from_the_table(tmp_path: Path) -> None:
    key_file = tmp_path / "network.key"
    key_file.write_text(KEY.hex().upper() + "\n")
    table = {"network_key_file": str(key_file), "security_level": 6, "key_id_mode": 2}
    settings = security_settings({**table, "key_source": "0000face", "key_index": 7})
    assert settings.network_key == Secret(KEY) and settings.level == 6
    assert settings.key_id == KeyIdentifier(2, bytes.fromhex("0000face"), 7)
    assert KEY.hex() not in repr(settings)


def test_the_gateways_counter_is_kept_0600_in_the_state_directory(tmp_path: Path) -> None:
    def transport() -> IEEE802154Transport:
        host = transport_host(builtin_definitions(), tmp_path)
        return IEEE802154Transport({"port": "/dev/null", "network_key": KEY.hex()}, Unheard(), host)

    first = transport().security.counter
    assert [first.next() for _ in range(3)] == [0, 1, 2]
    kept = tmp_path / "transports" / COUNTER_FILE
    assert (kept.stat().st_mode & 0o777, kept.read_text()) == (0o600, f"{RESERVE_WINDOW}\n")
    assert transport().security.counter.next() == RESERVE_WINDOW
    kept.write_text("garbage")
    with pytest.raises(FrameCounterError, match="damaged"):
        transport().security.counter.next()
    with pytest.raises(TransportConfigError, match="state directory"):
        host = transport_host(builtin_definitions())  # lends no files
        IEEE802154Transport({"port": "/dev/null", "network_key": KEY.hex()}, Unheard(), host)


class Unheard:
    """Events nobody hears: the transport above is never started."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"{name} reported by a transport that never started")


@settings(max_examples=300)
@given(data=st.binary(max_size=127), position=st.integers(0, 126), flip=st.integers(1, 255))
def test_whatever_the_air_brings_a_secured_link_says_a_typed_error(
    data: bytes, position: int, flip: int
) -> None:
    """Random bytes, and a valid secured frame with any byte changed (its FCS made to fit):
    a RadioDecodeError or nothing, never another exception, never the datagram."""
    gateway = LowpanLink(security=gateway_side(network=OTHER))
    gateway.security.pair(NODE, KEY)  # type: ignore[union-attr]
    sent = UdpDatagram(link_local(NODE), 5683, link_local(GATEWAY), 5683, b"reading")
    (valid,) = LowpanLink(security=node_side()).send(
        sent, src_mac=NODE, dst_mac=GATEWAY, pan_id=PAN
    )
    body = bytearray(valid[:-2])
    body[position % len(body)] ^= flip
    for psdu in (data, bytes(body) + crc16_kermit(bytes(body)).to_bytes(2, "little")):
        try:
            assert gateway.receive(psdu) != sent
        except RadioDecodeError:
            pass


class Sessions:
    """The core's end of the sessions: what was last kept of each node."""

    def __init__(self) -> None:
        self.kept: dict[NodeId, Mapping[str, Any] | None] = {}

    def session(self, node: NodeId, session: Mapping[str, Any] | None) -> None:
        self.kept[node] = session


def test_a_nodes_session_is_its_registration_and_its_links_counter() -> None:
    sessions = Sessions()
    events = NodeEvents(sessions)  # type: ignore[arg-type]
    node = NodeId("802154", NODE.hex())
    registration = {"endpoint": "kitchen", "location": "1"}
    events.session(node, registration)
    events.link(node, {"counter": 7})
    assert sessions.kept[node] == {**registration, "link": {"counter": 7}}
    assert split_session(sessions.kept[node] or {}) == (registration, {"counter": 7})
    events.session(node, None)  # it de-registered: the counter stays kept
    assert sessions.kept[node] == {"link": {"counter": 7}}
    assert split_session({"link": {"counter": 7}}) == (None, {"counter": 7})
    events.link(node, None)
    assert sessions.kept[node] is None
    assert split_session(registration) == (registration, None)  # kept before links had a part
