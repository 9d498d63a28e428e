"""The one-line values ``bridgectl scan`` shows for a node heard on the air."""

from __future__ import annotations

from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.summary import records_text, value_text
from bridged.transports.ble.measurements import Measurement, RecordMapper


def mapped(*measurements: Measurement, buttons: tuple[int, ...] = ()) -> tuple[Record, ...]:
    """Records as the BLE decoders map them (transports/ble/measurements.py)."""
    return RecordMapper().records(measurements, 0.0, buttons)


def test_sensor_values_with_their_units() -> None:
    records = mapped(
        Measurement("temperature", 21.4, "Cel"),
        Measurement("humidity", 45, "%RH"),
        Measurement("voltage", 3.0, "V"),
    )
    assert records_text(records) == "21.4 °C 45.0 % 3.0 V"


def test_battery_buttons_binary_and_generic_sensors() -> None:
    records = mapped(
        Measurement("battery", 87, "%"),
        Measurement("button", "long_press"),
        Measurement("door", True),
        Measurement("count", 12),
        buttons=(1,),
    )
    assert records_text(records) == "battery 87 % button long_press door on count 12.0"


def test_ruuvi_acceleration_and_pressure() -> None:
    records = mapped(
        Measurement("pressure", 1000.44, "hPa"),
        Measurement("acceleration_x", 0.004, "G"),
        Measurement("acceleration_y", -0.004, "G"),
        Measurement("acceleration_z", 1.036, "G"),
    )
    assert records_text(records) == "1000.44 hPa 0.004/-0.004/1.036 G"


def test_nothing_to_show() -> None:
    assert records_text(()) == ""
    assert records_text([Record(Path.parse("/3/0/3"), "1.2")]) == ""  # firmware: node show


def test_value_text() -> None:
    assert value_text(21.4567) == "21.457"
    assert value_text(b"\x01\x02") == "AQI="
    assert value_text(7) == "7"
