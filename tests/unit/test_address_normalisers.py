"""The address normalisers behind ``bridgectl pair TRANSPORT ADDRESS``: each transport turns
any spelling a user may type into the one its node ids use, and refuses everything else with a
ValueError naming the expected form, never a wrong id."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.store.nodes import NodeId
from bridged.transports.base import UnknownTransport, normalise_node
from bridged.transports.ble.transport import BleTransport
from bridged.transports.ieee802154.transport import IEEE802154Transport
from bridged.transports.simulated import SimulatedTransport

HEX = "0123456789abcdefABCDEF"


@pytest.mark.parametrize(
    "text",
    [
        "A4:C1:38:0A:0B:0C",
        "a4:c1:38:0a:0b:0c",
        "a4-c1-38-0a-0b-0c",
        "A4C1380A0B0C",
        " a4c1380a0b0c ",
    ],
)
def test_ble_addresses_are_upper_case_with_colons(text: str) -> None:
    assert BleTransport.normalise_address(text) == "A4:C1:38:0A:0B:0C"


@pytest.mark.parametrize(
    "text",
    [
        "00:12:4b:00:01:02:03:04",
        "00:12:4B:00:01:02:03:04",
        "00-12-4b-00-01-02-03-04",
        "00124b0001020304",
        "00124B0001020304",
    ],
)
def test_eui64s_are_16_lower_case_hex_digits(text: str) -> None:
    # the spelling of the node ids of transports/ieee802154/node_server.py (eui64.hex())
    assert IEEE802154Transport.normalise_address(text) == bytes.fromhex("00124b0001020304").hex()


@pytest.mark.parametrize(
    ("cls", "text"),
    [
        (BleTransport, "A4:C1:38:0A:0B"),  # five bytes
        (BleTransport, "A4:C1:38:0A:0B:0C:0D"),
        (BleTransport, "A4:C1-38:0A:0B:0C"),  # mixed separators
        (BleTransport, "A4:C1:38:0A:0B:0G"),
        (BleTransport, "A4C:138:0A0:B0C"),
        (BleTransport, ""),
        (IEEE802154Transport, "00:12:4b:00:01:02:03"),
        (IEEE802154Transport, "00:124b:00:01:02:03:04"),
        (IEEE802154Transport, "00:12-4b:00:01:02:03:04"),
        (IEEE802154Transport, "A4:C1:38:0A:0B:0C"),  # a MAC is not an EUI-64
        (IEEE802154Transport, "00124b000102030g"),
        (IEEE802154Transport, "face:ffff"),  # broadcast, not a node's short address
        (IEEE802154Transport, "face:fffe"),  # "no short address"
        (IEEE802154Transport, "face:001"),
    ],
)
def test_malformed_addresses_are_refused(cls: type[BleTransport], text: str) -> None:
    with pytest.raises(ValueError, match="is not"):
        cls.normalise_address(text)


def test_the_default_takes_addresses_as_given() -> None:
    assert SimulatedTransport.normalise_address("0001") == "0001"
    assert normalise_node(NodeId("sim", "0001")) == NodeId("sim", "0001")


def test_normalise_node_asks_the_nodes_transport() -> None:
    assert normalise_node(NodeId("ble", "a4-c1-38-0a-0b-0c")) == NodeId("ble", "A4:C1:38:0A:0B:0C")
    assert normalise_node(NodeId("802154", "00:12:4B:00:01:02:03:04")) == NodeId(
        "802154", "00124b0001020304"
    )
    with pytest.raises(ValueError):
        normalise_node(NodeId("ble", "kitchen"))
    with pytest.raises(UnknownTransport):
        normalise_node(NodeId("zigbee", "1"))


def _digits(text: str) -> str:
    return re.sub("[:-]", "", text.strip()).lower()


def refused_or_those_digits_ble(text: str) -> None:
    try:
        address = BleTransport.normalise_address(text)
    except ValueError:
        return
    assert re.fullmatch(r"[0-9A-F]{2}(:[0-9A-F]{2}){5}", address)
    assert address.replace(":", "").lower() == _digits(text)


@given(st.text(max_size=30))
def test_ble_garbage_is_refused_or_means_those_digits(text: str) -> None:
    refused_or_those_digits_ble(text)


@given(st.text(alphabet=HEX + ":- gx\u212a\ufb00", max_size=30))
def test_ble_near_misses_are_refused_or_mean_those_digits(text: str) -> None:
    refused_or_those_digits_ble(text)


def refused_or_those_digits_eui64(text: str) -> None:
    try:
        address = IEEE802154Transport.normalise_address(text)
    except ValueError:
        return
    assert re.fullmatch(r"[0-9a-f]{16}", address)
    assert address == _digits(text)


@given(st.text(max_size=40))
def test_eui64_garbage_is_refused_or_means_those_digits(text: str) -> None:
    refused_or_those_digits_eui64(text)


@given(st.text(alphabet=HEX + ":- gx\u212a\ufb00", max_size=40))
def test_eui64_near_misses_are_refused_or_mean_those_digits(text: str) -> None:
    refused_or_those_digits_eui64(text)


def test_look_alike_characters_are_refused() -> None:
    # U+FB00 "ﬀ" upper-cases to "FF": accepting it would make an id of letters never typed
    with pytest.raises(ValueError):
        BleTransport.normalise_address("A4:C1:38:0A:0B:\ufb00")


@given(st.binary(min_size=6, max_size=6), st.sampled_from(["", ":", "-"]), st.booleans())
def test_every_spelling_of_a_mac_is_one_id(raw: bytes, sep: str, upper: bool) -> None:
    text = sep.join(f"{b:02x}" for b in raw)
    text = text.upper() if upper else text
    assert BleTransport.normalise_address(text) == ":".join(f"{b:02X}" for b in raw)


@given(st.binary(min_size=8, max_size=8), st.sampled_from(["", ":", "-"]), st.booleans())
def test_every_spelling_of_an_eui64_is_one_id(raw: bytes, sep: str, upper: bool) -> None:
    text = sep.join(f"{b:02x}" for b in raw)
    text = text.upper() if upper else text
    assert IEEE802154Transport.normalise_address(text) == raw.hex()
