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
  "long_press", ...) goes to 5750, the one text resource 3347 has. The glue that exposes a node
  must not also write the node's name there for 3347 instances.
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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bridged.objects.paths import Path
from bridged.objects.values import Record, Value

DEVICE = 3
DIGITAL_INPUT = 3200
GENERIC_SENSOR = 3300
ACCELEROMETER = 3313
PUSH_BUTTON = 3347

DIGITAL_INPUT_STATE = 5500
DIGITAL_INPUT_COUNTER = 5501
SENSOR_VALUE = 5700
SENSOR_UNITS = 5701
APPLICATION_TYPE = 5750
SENSOR_TYPE = 5751

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
    """What a stateless advert decoder returns: the measurements and the frame's own sequence
    number (BTHome packet ID, Ruuvi measurement sequence, ATC/pvvx counter) for dedupe."""

    measurements: tuple[Measurement, ...]
    packet_id: int | None = None
    packet_id_modulus: int = 256


@dataclass(frozen=True, slots=True)
class Target:
    """Where a kind goes: the object, the resource that takes the value, and for kinds that
    fill one instance together (accelerometer axes) the name of that group."""

    object_id: int
    resource_id: int = SENSOR_VALUE
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
    "temperature": Target(3303),
    "humidity": Target(3304),
    "pressure": Target(3315),
    "illuminance": Target(3301),
    "voltage": Target(3316),
    "current": Target(3317),
    "power": Target(3328),
    "energy": Target(3331),
    "battery": Target(DEVICE, 9),
    "firmware_version": Target(DEVICE, 3),
    "timestamp": Target(DEVICE, 13),
    "device_type": Target(DEVICE, 17),
    "button": Target(PUSH_BUTTON, DIGITAL_INPUT_STATE),
    "acceleration_x": Target(ACCELEROMETER, 5702, "acceleration"),
    "acceleration_y": Target(ACCELEROMETER, 5703, "acceleration"),
    "acceleration_z": Target(ACCELEROMETER, 5704, "acceleration"),
    **{kind: Target(DIGITAL_INPUT, DIGITAL_INPUT_STATE) for kind in BINARY_KINDS},
}
"""Kinds with an object of their own; every other mapped kind goes to 3300 Generic Sensor."""

GENERIC = Target(GENERIC_SENSOR)


def target(kind: str) -> Target | None:
    """Where ``kind`` goes, or None for a kind that is not mapped."""
    if kind in UNMAPPED_KINDS:
        return None
    return TARGETS.get(kind, GENERIC)


def _number(m: Measurement) -> float:
    """A Sensor Value is a Float: the decoders give numbers for every kind mapped to one."""
    if isinstance(m.value, (str, bytes)):
        raise TypeError(f"{m.kind} measurement {m.value!r} is not a number")
    return float(m.value)


class RecordMapper:
    """Turns a node's measurements into node-local records, by ``TARGETS``.

    Holds only a cache of the paths it has built (a handful per kind of node), because building
    and validating a ``Path`` costs more than the rest of the mapping.
    """

    def __init__(self) -> None:
        self._paths: dict[tuple[int, int, int], Path] = {}

    def _path(self, oid: int, iid: int, rid: int) -> Path:
        key = (oid, iid, rid)
        path = self._paths.get(key)
        if path is None:
            path = self._paths[key] = Path(key)
        return path

    def records(
        self,
        measurements: Iterable[Measurement],
        time: float | None = None,
        button_counts: Sequence[int] = (),
    ) -> tuple[Record, ...]:
        """The records of ``measurements``, all at ``time``.

        ``button_counts[n]`` is the event count of the n-th button in the advert (5501); a
        button without one gets no counter.
        """
        out: list[Record] = []
        device_done: set[int] = set()
        occurrences: dict[tuple[int, str, int], int] = {}
        instances: dict[tuple[int, str, int], int] = {}
        next_free: dict[int, int] = {}
        units_done: set[tuple[int, int]] = set()
        buttons = 0

        def emit(oid: int, iid: int, rid: int, value: Value) -> None:
            out.append(Record(self._path(oid, iid, rid), value, time))

        for m in measurements:
            t = target(m.kind)
            if t is None:
                continue
            oid, rid = t.object_id, t.resource_id
            if oid == DEVICE:
                if rid not in device_done:
                    device_done.add(rid)
                    value = str(m.value) if rid == 17 else m.value
                    emit(oid, 0, rid, value)
                continue
            group = t.group or m.kind
            key = (oid, group, rid)
            n = occurrences.get(key, 0)
            occurrences[key] = n + 1
            iid = instances.get((oid, group, n))
            if iid is None:
                iid = next_free.get(oid, 0)
                next_free[oid] = iid + 1
                instances[(oid, group, n)] = iid
            if oid == PUSH_BUTTON:
                emit(oid, iid, DIGITAL_INPUT_STATE, m.value != "none")
                emit(oid, iid, APPLICATION_TYPE, str(m.value))
                if buttons < len(button_counts):
                    emit(oid, iid, DIGITAL_INPUT_COUNTER, button_counts[buttons])
                buttons += 1
            elif oid == DIGITAL_INPUT:
                emit(oid, iid, rid, bool(m.value))
                emit(oid, iid, SENSOR_TYPE, m.kind)
            else:
                emit(oid, iid, rid, _number(m))
                if m.unit and (oid, iid) not in units_done:
                    units_done.add((oid, iid))
                    emit(oid, iid, SENSOR_UNITS, m.unit)
                if oid == GENERIC_SENSOR:
                    emit(oid, iid, SENSOR_TYPE, m.kind)
        return tuple(out)
