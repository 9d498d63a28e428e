"""A node's values as one short line for people: ``21.4 °C 48.5 % 3.0 V battery 87 %``.

``bridgectl scan`` shows what each node on the air says before anybody pairs it, so a user can
tell their kitchen sensor from the neighbour's. The records are node-local LwM2M records of any
transport, so the line is built from the IPSO resources alone:

* an instance with 5700 Sensor Value shows the value and its 5701 Sensor Units (UCUM ``Cel``
  as ``°C``, ``%RH`` as ``%``), or its 5751 Sensor Type before the value when it has no unit;
* 5500 Digital Input State shows as ``<5751 type> on|off``, and 3347 Push button as
  ``button <event>`` (its 5750 carries the event type);
* an accelerometer (3313) as ``x/y/z G``; the node's /3/0/9 battery as ``battery N %``;
* anything else (firmware version, the node's clock, ...) is left to ``node show``.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridged.objects.ids import Device, Ipso, IpsoResource
from bridged.objects.values import ObjLnk, Record, Value, to_text

AXES = (IpsoResource.X_VALUE, IpsoResource.Y_VALUE, IpsoResource.Z_VALUE)
SYMBOLS = {"Cel": "°C", "%RH": "%", "Cel/s": "°C/s"}
"""UCUM units that read better as their symbol."""


def value_text(value: Value) -> str:
    """A value as people read it: floats rounded to 3 decimals (``21.4``, ``3.0``, ``0.004``),
    opaque and object links in their text form."""
    if isinstance(value, float):
        return repr(round(value, 3))
    if isinstance(value, (bytes, ObjLnk)):
        return to_text(value)
    return str(value)


def records_text(records: Sequence[Record]) -> str:
    """The values of ``records`` as one line (see the module docstring); empty if none."""
    instances: dict[tuple[int, int], dict[int, Value]] = {}
    for r in records:
        if len(r.path.ids) == 3:
            instances.setdefault((r.path.ids[0], r.path.ids[1]), {})[r.path.ids[2]] = r.value
    parts: list[str] = []
    for (oid, _), res in instances.items():
        if oid == Device.OBJECT:
            if Device.BATTERY_LEVEL in res:
                parts.append(f"battery {value_text(res[Device.BATTERY_LEVEL])} %")
        elif oid == Ipso.PUSH_BUTTON:
            parts.append(f"button {value_text(res.get(IpsoResource.APPLICATION_TYPE, 'event'))}")
        elif oid == Ipso.ACCELEROMETER and any(a in res for a in AXES):
            parts.append("/".join(value_text(res.get(a, "-")) for a in AXES) + " G")
        elif IpsoResource.SENSOR_VALUE in res:
            unit = res.get(IpsoResource.SENSOR_UNITS)
            value = value_text(res[IpsoResource.SENSOR_VALUE])
            if unit:
                unit_text = value_text(unit)
                parts.append(f"{value} {SYMBOLS.get(unit_text, unit_text)}")
            else:
                kind = res.get(IpsoResource.SENSOR_TYPE)
                parts.append(f"{value_text(kind)} {value}" if kind else value)
        elif IpsoResource.DIGITAL_INPUT_STATE in res:
            state = "on" if res[IpsoResource.DIGITAL_INPUT_STATE] else "off"
            parts.append(f"{value_text(res.get(IpsoResource.SENSOR_TYPE, 'input'))} {state}")
    return " ".join(parts)
