"""The ``[transport.ble]`` section and the per-node options (transports/ble/settings.py)."""

from __future__ import annotations

from typing import Any

import pytest

from bridged.objects.paths import Path
from bridged.transports.base import TransportConfigError
from bridged.transports.ble.settings import (
    Actuator,
    BleSettings,
    NodeOptions,
    normalise_address,
    parse_options,
    parse_settings,
)
from bridged.transports.ble.transport import node_id

NODE = "C4:7C:8D:6A:00:01"
SWITCH = "0000ffe1-0000-1000-8000-00805f9b34fb"


def test_defaults() -> None:
    assert parse_settings({}) == BleSettings()
    assert parse_options({}) == NodeOptions()


def test_every_setting() -> None:
    settings = parse_settings(
        {
            "adapter": "00:1a:7d:da:71:13",
            "mode": "passive",
            "silence": 30,
            "gatt_slots": 2,
            "gatt_interval": 60.5,
            "connect_timeout": 10,
            "firmware_timeout": 7200,
            "actuators": [
                {"node": "c4-7c-8d-6a-00-01", "path": "/3311/0/5850", "characteristic": "ffe1"},
                {
                    "node": "C47C8D6A0001",
                    "path": "/3342/0/5500",
                    "characteristic": SWITCH.upper(),
                    "on": "AA55",
                    "off": "5500",
                },
            ],
        }
    )
    assert settings == BleSettings(
        adapter="00:1A:7D:DA:71:13",
        mode="passive",
        silence=30.0,
        gatt_slots=2,
        gatt_interval=60.5,
        connect_timeout=10.0,
        firmware_timeout=7200.0,
        actuators={
            "C4:7C:8D:6A:00:01": (
                Actuator(Path.parse("/3311/0/5850"), SWITCH),
                Actuator(Path.parse("/3342/0/5500"), SWITCH, b"\xaa\x55", b"\x55\x00"),
            )
        },
    )
    assert parse_settings({"adapter": "hci1"}).adapter == "hci1"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"adaptor": "hci0"}, r"ble\.adaptor is not a setting"),
        ({"adapter": "usb0"}, r"ble\.adapter must be an adapter name \(hci0\) or MAC"),
        ({"adapter": 0}, r"ble\.adapter must be a name or a MAC"),
        ({"mode": "aggressive"}, r"ble\.mode must be one of auto, active, passive"),
        ({"silence": 0}, r"ble\.silence must be a number > 0"),
        ({"silence": "90"}, r"ble\.silence must be a number"),
        ({"gatt_slots": 0}, r"ble\.gatt_slots must be an integer >= 1"),
        ({"gatt_slots": 2.5}, r"ble\.gatt_slots must be an integer"),
        ({"gatt_slots": True}, r"ble\.gatt_slots must be an integer"),
        ({"gatt_interval": -1}, r"ble\.gatt_interval must be a number > 0"),
        ({"connect_timeout": 5}, r"ble\.connect_timeout must be a number >= 10"),
        ({"firmware_timeout": 0}, r"ble\.firmware_timeout must be a number > 0"),
        ({"actuators": {"node": "x"}}, r"ble\.actuators must be a list of tables"),
        ({"actuators": ["x"]}, r"ble\.actuators\[0\] must be a table"),
        (
            {"actuators": [{"node": "nope", "path": "/3311/0/5850", "characteristic": "ffe1"}]},
            r"ble\.actuators\[0\]\.node: 'nope' is not a Bluetooth address",
        ),
        (
            {"actuators": [{"node": NODE, "path": "/3311/0", "characteristic": "1"}]},
            r"ble\.actuators\[0\]\.path must name a resource",
        ),
        (
            {"actuators": [{"node": NODE, "path": "3311/x", "characteristic": "1"}]},
            r"ble\.actuators\[0\]\.path: ",
        ),
        (
            {"actuators": [{"node": "C4:7C:8D:6A:00:01", "path": "/3311/0/5850"}]},
            r"ble\.actuators\[0\]\.characteristic must be a characteristic UUID",
        ),
        (
            {
                "actuators": [
                    {
                        "node": "C4:7C:8D:6A:00:01",
                        "path": "/3311/0/5850",
                        "characteristic": "ffe1",
                        "on": "zz",
                    }
                ]
            },
            r"ble\.actuators\[0\]\.on must be the bytes to write, in hex",
        ),
        (
            {
                "actuators": [
                    {
                        "node": "C4:7C:8D:6A:00:01",
                        "path": "/3311/0/5850",
                        "characteristic": "ffe1",
                        "colour": "red",
                    }
                ]
            },
            r"ble\.actuators\[0\]\.colour is not a setting",
        ),
    ],
)
def test_bad_settings_name_the_key_and_why(config: dict[str, Any], message: str) -> None:
    with pytest.raises(TransportConfigError, match=message):
        parse_settings(config)


def test_node_options() -> None:
    options = parse_options(
        {
            "interval": 5,
            "read": ["2a19", "2A6E"],
            "notify": ["2a6e"],
            "bond": True,
            "actuators": [{"path": "/3311/0/5850", "characteristic": "ffe1"}],
            "firmware": "smp",
        }
    )
    assert options == NodeOptions(
        interval=5.0,
        read=("00002a19-0000-1000-8000-00805f9b34fb", "00002a6e-0000-1000-8000-00805f9b34fb"),
        notify=("00002a6e-0000-1000-8000-00805f9b34fb",),
        bond=True,
        actuators=(Actuator(Path.parse("/3311/0/5850"), SWITCH),),
        firmware="smp",
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"intervall": 5}, r"options\.intervall is not a setting"),
        ({"interval": 0}, r"options\.interval must be a number > 0"),
        ({"read": "2a19"}, r"options\.read must be a list of characteristic UUIDs"),
        ({"notify": ["temperature"]}, r"options\.notify\[0\] must be a characteristic UUID"),
        ({"bond": "yes"}, r"options\.bond must be true or false"),
        ({"firmware": "dfu"}, r"options\.firmware must be one of smp, not 'dfu'"),
        ({"actuators": [{"node": "C4:7C:8D:6A:00:01"}]}, r"options\.actuators\[0\]\.node is not"),
    ],
)
def test_bad_options_name_the_key_and_why(options: dict[str, Any], message: str) -> None:
    with pytest.raises(TransportConfigError, match=message):
        parse_options(options)


@pytest.mark.parametrize(
    "text", ["a4:c1:38:0a:0b:0c", "A4-C1-38-0A-0B-0C", "a4c1380a0b0c", " A4:C1:38:0A:0B:0C "]
)
def test_addresses_are_normalised(text: str) -> None:
    assert normalise_address(text) == "A4:C1:38:0A:0B:0C"
    assert str(node_id(text)) == "ble:A4:C1:38:0A:0B:0C"


@pytest.mark.parametrize("text", ["", "A4:C1:38:0A:0B", "A4:C1:38-0A:0B:0C", "G4:C1:38:0A:0B:0C"])
def test_other_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a Bluetooth address"):
        normalise_address(text)
