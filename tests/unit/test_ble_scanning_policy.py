"""The BLE scanner's pure decisions: which adapter, which scanning mode, how long to back off."""

from __future__ import annotations

import pytest

from bridged.transports.ble.adapters import (
    AdapterInfo,
    AdapterNotFound,
    adapters_from_objects,
    select_adapter,
)
from bridged.transports.ble.scanner import choose_mode

OBJECTS = {
    "/org/bluez": {"org.bluez.AgentManager1": {}},
    "/org/bluez/hci1": {
        "org.bluez.Adapter1": {"Address": "5c:f3:70:00:00:01", "Powered": True},
    },
    "/org/bluez/hci0": {
        "org.bluez.Adapter1": {"Address": "00:1A:7D:DA:71:13", "Powered": False},
        "org.bluez.AdvertisementMonitorManager1": {"SupportedMonitorTypes": ["or_patterns"]},
    },
    "/org/bluez/hci0/dev_A4_C1_38_00_00_01": {
        "org.bluez.Device1": {"Address": "A4:C1:38:00:00:01"}
    },
}
HCI0 = AdapterInfo("hci0", "00:1A:7D:DA:71:13", "/org/bluez/hci0", powered=False, passive=True)
HCI1 = AdapterInfo("hci1", "5C:F3:70:00:00:01", "/org/bluez/hci1", powered=True, passive=False)


def test_adapters_from_bluez_objects() -> None:
    assert adapters_from_objects(OBJECTS) == [HCI0, HCI1]


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [("hci0", HCI0), ("hci1", HCI1), ("00:1a:7d:da:71:13", HCI0), ("5C:F3:70:00:00:01", HCI1)],
)
def test_select_by_name_or_mac(wanted: str, expected: AdapterInfo) -> None:
    assert select_adapter([HCI0, HCI1], wanted) == expected


def test_the_default_is_the_first_powered_adapter() -> None:
    assert select_adapter([HCI0, HCI1], None) == HCI1
    with pytest.raises(AdapterNotFound, match="no powered Bluetooth adapter"):
        select_adapter([HCI0], None)


@pytest.mark.parametrize("wanted", ["hci2", "00:00:00:00:00:00"])
def test_a_missing_adapter_is_named_with_those_there_are(wanted: str) -> None:
    with pytest.raises(AdapterNotFound, match=f"{wanted} not found .have: hci0 00:1A"):
        select_adapter([HCI0, HCI1], wanted)


def test_scanning_mode_and_its_reason() -> None:
    assert choose_mode(HCI0, "auto", False) == (
        "passive",
        "BlueZ offers the advertisement monitor on hci0",
    )
    mode, why = choose_mode(HCI1, "auto", False)
    assert mode == "active"
    assert "no advertisement monitor on hci1" in why and "--experimental" in why
    assert choose_mode(HCI1, "passive", False)[0] == "active"
    assert choose_mode(HCI0, "active", False) == ("active", "active scanning is configured")
    assert choose_mode(HCI0, "auto", True) == (
        "active",
        "passive scanning failed to start on hci0",
    )
