"""What a BLE node measures, and where each measurement lives in the node's LwM2M objects.

Every advert decoder (BTHome, Ruuvi, ATC/pvvx) turns bytes into ``Measurement``s: a kind
("temperature"), a value in the unit the format defines, and that unit. ``TARGETS`` is the one
table that places a kind in the node-local object tree; ``RecordMapper`` applies it. The rules:

* A measurement object (3301 Illuminance, 3303 Temperature, 3304 Humidity, 3315 Barometer,
  3316 Voltage, 3317 Current, 3328 Power, 3331 Energy) gets its value in 5700 Sensor Value (a
  Float) and the unit in 5701 Sensor Units, SenML/UCUM style ("Cel", "%RH", "hPa", "lx", "V").
* Pressure goes to 3315 Barometer in hPa, not 3323 Pressure: every format here carries the
  air pressure around the sensor (BTHome 0x04 in hPa, Ruuvi in Pa, converted), which is what a
  barometer reports; 3323 is for pressures of a process (pipes, tanks).
* A kind with no IPSO object among the built-in ones (CO2, PM2.5, count, distance, ...) goes to
  3300 Generic Sensor: 5700 the value, 5701 the unit, and the kind in 5751 Sensor Type. 5751
  rather than 5750 Application Type, because 5750 carries the node's name in the ``instances``
  exposure (so a server user can tell which node an instance is); a reading there would
  overwrite it.
* A binary sensor (door, motion, window, battery low, ...) goes to 3200 Digital Input: 5500
  the state, the kind in 5751 Sensor Type.
* A button event goes to 3347 Push button: 5500 Digital Input State is True for a press of any
  kind and False for "none", 5501 Digital Input Counter counts the node's events of that button
  (kept by the caller, see ``AdvertDecoder``), and the event type ("press", "double_press",
  "long_press", ...) goes to 5750, the one text resource 3347 has. The exposure modes never
  write the node's name there (bridged/exposure/mirror.py, ``NODE_DATA_5750``).
* A dimmer event has no IPSO object: 3300 with the steps signed by direction (left negative).
* Battery % is the node's Device object: /3/0/9 Battery Level; firmware version /3/0/3, the
  BTHome device type ID /3/0/17 (as text), the node's clock (BTHome timestamp) /3/0/13.
  The exposure decides how a node's /3 appears upstream. /3 is single-instance: a second
  battery in one advert is not mapped.
* Ruuvi's acceleration X, Y and Z share one 3313 Accelerometer instance (5702..5704, in G).
* Several measurements of one kind get instances 0, 1, ... in the order they come; kinds that
  share an object (everything in 3300 or 3200) get the next free instance in order of first
  appearance. Nodes send the same set of objects in every advert, so the numbering is stable.
* BTHome text and raw objects have no resource in the built-in objects: they are decoded (and
  shown by ``bridgectl scan``) but not mapped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from bridged.objects.ids import SINGLE, Device, Ipso, IpsoResource
from bridged.objects.paths import Path
from bridged.objects.values import Record, Value

MeasuredValue = float | int | bool | str | bytes


@dataclass(frozen=True, slots=True)
class Measurement:
    """One value a node reported: ``kind`` names what it is, ``unit`` is SenML/UCUM style
    ("Cel", "%RH", "hPa") or empty for a count or a state."""

    kind: str
    value: MeasuredValue
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Frame:
    """What a stateless advert decoder returns: the measurements, the frame's own sequence
    number (BTHome packet ID, Ruuvi measurement sequence, ATC/pvvx counter) for dedupe, and
    for a frame that was encrypted its encryption counter, which must grow from frame to frame
    (replay protection, kept by ``AdvertDecoder``)."""

    measurements: tuple[Measurement, ...]
    packet_id: int | None = None
    packet_id_modulus: int = 256
    encrypted: bool = False
    counter: int | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """Where a kind goes: the object, the resource that takes the value, and for kinds that
    fill one instance together (accelerometer axes) the name of that group."""

    object_id: int
    resource_id: int = IpsoResource.SENSOR_VALUE
    group: str | None = None


BINARY_KINDS = (
    "binary",
    "power_on",
    "opening",
    "battery_low",
    "battery_charging",
    "carbon_monoxide",
    "cold",
    "connectivity",
    "door",
    "garage_door",
    "gas_detected",
    "heat",
    "light_detected",
    "lock",
    "moisture_detected",
    "motion",
    "moving",
    "occupancy",
    "plug",
    "presence",
    "problem",
    "running",
    "safety",
    "smoke",
    "sound",
    "tamper",
    "vibration",
    "window",
)
"""BTHome's binary sensors (object IDs 0x0F..0x2D), in object ID order."""

UNMAPPED_KINDS = frozenset({"text", "raw"})
"""Decoded but with no resource to go to (see the module docstring)."""

TARGETS: dict[str, Target] = {
    "temperature": Target(Ipso.TEMPERATURE),
    "humidity": Target(Ipso.HUMIDITY),
    "pressure": Target(Ipso.BAROMETER),
    "illuminance": Target(Ipso.ILLUMINANCE),
    "voltage": Target(Ipso.VOLTAGE),
    "current": Target(Ipso.CURRENT),
    "power": Target(Ipso.POWER),
    "energy": Target(Ipso.ENERGY),
    "battery": Target(Device.OBJECT, Device.BATTERY_LEVEL),
    "firmware_version": Target(Device.OBJECT, Device.FIRMWARE_VERSION),
    "timestamp": Target(Device.OBJECT, Device.CURRENT_TIME),
    "device_type": Target(Device.OBJECT, Device.DEVICE_TYPE),
    "button": Target(Ipso.PUSH_BUTTON, IpsoResource.DIGITAL_INPUT_STATE),
    "acceleration_x": Target(Ipso.ACCELEROMETER, IpsoResource.X_VALUE, "acceleration"),
    "acceleration_y": Target(Ipso.ACCELEROMETER, IpsoResource.Y_VALUE, "acceleration"),
    "acceleration_z": Target(Ipso.ACCELEROMETER, IpsoResource.Z_VALUE, "acceleration"),
    **{kind: Target(Ipso.DIGITAL_INPUT, IpsoResource.DIGITAL_INPUT_STATE) for kind in BINARY_KINDS},
}
"""Kinds with an object of their own; every other mapped kind goes to 3300 Generic Sensor."""

GENERIC = Target(Ipso.GENERIC_SENSOR)


def target(kind: str) -> Target | None:
    """Where ``kind`` goes, or None for a kind that is not mapped."""
    if kind in UNMAPPED_KINDS:
        return None
    return TARGETS.get(kind, GENERIC)


_AS_IS, _FLOAT, _BOOL, _TEXT, _PRESSED, _COUNT = range(6)
"""How a plan step turns a measurement's value into a record value."""

_Step: TypeAlias = tuple[int, Path, int] | Record
"""A value step (measurement index or button ordinal, path, conversion), or a constant record
(a unit or a sensor type), built once."""

_MAX_PLANS = 1024


def _float(kind: str, value: MeasuredValue) -> float:
    """A Sensor Value is a Float: the decoders give numbers for every kind mapped to one."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{kind} measurement {value!r} is not a number")
    return float(value)


class RecordMapper:
    """Turns a node's measurements into node-local records, by ``TARGETS``.

    A node sends the same kinds in every advert, so the mapping is worked out once per
    sequence of (kind, unit) and kept as a plan: the paths to write, and the constant records
    (units, sensor types) ready-made. Constant records carry no time (they describe the
    sensor, they are not a reading of it); values carry the advert's.
    """

    def __init__(self) -> None:
        self._plans: dict[tuple[tuple[str, str], ...], tuple[_Step, ...]] = {}

    def records(
        self,
        measurements: Sequence[Measurement],
        time: float | None = None,
        button_counts: Sequence[int] = (),
    ) -> tuple[Record, ...]:
        """The records of ``measurements``, values at ``time``.

        ``button_counts[n]`` is the event count of the n-th button in the advert (5501); a
        button without one gets no counter.
        """
        layout = tuple((m.kind, m.unit) for m in measurements)
        plan = self._plans.get(layout)
        if plan is None:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            plan = self._plans[layout] = _plan(layout)
        out: list[Record] = []
        for step in plan:
            if isinstance(step, Record):
                out.append(step)
                continue
            index, path, conversion = step
            if conversion == _COUNT:
                if index < len(button_counts):
                    out.append(Record(path, button_counts[index], time))
                continue
            m = measurements[index]
            value: Value
            if conversion == _FLOAT:
                value = _float(m.kind, m.value)
            elif conversion == _BOOL:
                value = bool(m.value)
            elif conversion == _TEXT:
                value = str(m.value)
            elif conversion == _PRESSED:
                value = m.value != "none"
            else:
                value = m.value
            out.append(Record(path, value, time))
        return tuple(out)


def _plan(layout: Sequence[tuple[str, str]]) -> tuple[_Step, ...]:
    """The steps that map measurements of these (kind, unit)s, by the rules of the module."""
    steps: list[_Step] = []
    device_done: set[int] = set()
    occurrences: dict[tuple[int, str, int], int] = {}
    instances: dict[tuple[int, str, int], int] = {}
    next_free: dict[int, int] = {}
    units_done: set[tuple[int, int]] = set()
    buttons = 0

    for index, (kind, unit) in enumerate(layout):
        t = target(kind)
        if t is None:
            continue
        oid, rid = t.object_id, t.resource_id
        if oid == Device.OBJECT:
            if rid not in device_done:
                device_done.add(rid)
                conversion = _TEXT if rid == Device.DEVICE_TYPE else _AS_IS
                steps.append((index, Path((oid, SINGLE, rid)), conversion))
            continue
        group = t.group or kind
        key = (oid, group, rid)
        n = occurrences.get(key, 0)
        occurrences[key] = n + 1
        iid = instances.get((oid, group, n))
        if iid is None:
            iid = next_free.get(oid, 0)
            next_free[oid] = iid + 1
            instances[(oid, group, n)] = iid
        if oid == Ipso.PUSH_BUTTON:
            steps.append((index, Path((oid, iid, IpsoResource.DIGITAL_INPUT_STATE)), _PRESSED))
            steps.append((index, Path((oid, iid, IpsoResource.APPLICATION_TYPE)), _TEXT))
            steps.append((buttons, Path((oid, iid, IpsoResource.DIGITAL_INPUT_COUNTER)), _COUNT))
            buttons += 1
        elif oid == Ipso.DIGITAL_INPUT:
            steps.append((index, Path((oid, iid, rid)), _BOOL))
            steps.append(Record(Path((oid, iid, IpsoResource.SENSOR_TYPE)), kind))
        else:
            steps.append((index, Path((oid, iid, rid)), _FLOAT))
            if unit and (oid, iid) not in units_done:
                units_done.add((oid, iid))
                steps.append(Record(Path((oid, iid, IpsoResource.SENSOR_UNITS)), unit))
            if oid == Ipso.GENERIC_SENSOR:
                steps.append(Record(Path((oid, iid, IpsoResource.SENSOR_TYPE)), kind))
    return tuple(steps)
