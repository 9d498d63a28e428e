"""BTHome v2: the open advert format for sensors, buttons and device information (bthome.io).

The advert is service data for the 16-bit UUID 0xFCD2. Its first byte is the device
information: bit 0 encrypted, bit 1 the node's MAC follows (6 bytes, least significant first),
bit 2 trigger based (the node sends only when something happens, so it is sleepy), bits 5-7 the
version, which must be 2. Then come objects: an object ID byte and a value whose length and
scaling the ID fixes (little-endian), or for text and raw a length byte and that many bytes.
An unknown ID stops decoding with ``UnknownObjectId``: its length is unknown, so whatever
follows cannot be found.

An encrypted advert is ``info | [MAC] | ciphertext | counter (u32 LE) | MIC (4)``: AES-128-CCM
with the node's 16-byte bind key, a 4-byte tag, no associated data, and the 13-byte nonce
MAC (6, as printed) + UUID 0xFCD2 (LE) + info byte + counter (4, as sent). Replay protection
(the counter must grow) and packet ID dedupe need memory of the node, so they live in
``AdvertDecoder``; this module is stateless. The encoder is the decoder's inverse, for tests,
the BlueZ emulation and the benchmark.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from .advert_data import ServiceData
from .errors import BindKeyRequired, DecryptionFailed, MalformedAdvert, UnknownObjectId
from .measurements import BINARY_KINDS, Frame, Measurement
from .pairing import BINDKEY_LENGTH

UUID16 = 0xFCD2
UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
"""The service data key bleak gives BTHome v2 adverts under."""

ENCRYPTED = 0x01
MAC_INCLUDED = 0x02
TRIGGER_BASED = 0x04
VERSION = 2
PACKET_ID = 0x00

_NONCE_UUID = UUID16.to_bytes(2, "little")
_MIC_LEN = 4
_COUNTER_LEN = 4


class Form(enum.Enum):
    """How an object's value bytes are read."""

    NUMBER = "number"
    BINARY = "binary"
    BUTTON = "button"
    DIMMER = "dimmer"
    TEXT = "text"
    RAW = "raw"
    VERSION = "version"


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """One object ID: what it measures, its length (0: length-prefixed), how to read it."""

    kind: str
    size: int
    signed: bool = False
    factor: float = 1
    unit: str = ""
    form: Form = Form.NUMBER
    decimals: int = 0
    """Digits after the point the factor gives (0.01 -> 2, 0.35 -> 2): ``raw * factor`` is
    rounded to them, so 2506 * 0.01 reads 25.06 and not 25.060000000000002."""


def _num(
    kind: str, size: int, factor: float = 1, unit: str = "", signed: bool = False
) -> ObjectSpec:
    exponent = Decimal(str(factor)).as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return ObjectSpec(kind, size, signed, factor, unit, decimals=decimals)


BUTTON_EVENTS: dict[int, str] = {
    0x00: "none",
    0x01: "press",
    0x02: "double_press",
    0x03: "triple_press",
    0x04: "long_press",
    0x05: "long_double_press",
    0x06: "long_triple_press",
    0x80: "hold_press",
}
_BUTTON_CODES = {name: code for code, name in BUTTON_EVENTS.items()}

DIMMER_NONE, DIMMER_LEFT, DIMMER_RIGHT = 0x00, 0x01, 0x02

OBJECTS: dict[int, ObjectSpec] = {
    0x00: _num("packet_id", 1),
    0x01: _num("battery", 1, unit="%"),
    0x02: _num("temperature", 2, 0.01, "Cel", signed=True),
    0x03: _num("humidity", 2, 0.01, "%RH"),
    0x04: _num("pressure", 3, 0.01, "hPa"),
    0x05: _num("illuminance", 3, 0.01, "lx"),
    0x06: _num("mass", 2, 0.01, "kg"),
    0x07: _num("mass", 2, 0.01, "lb"),
    0x08: _num("dew_point", 2, 0.01, "Cel", signed=True),
    0x09: _num("count", 1),
    0x0A: _num("energy", 3, 0.001, "kWh"),
    0x0B: _num("power", 3, 0.01, "W"),
    0x0C: _num("voltage", 2, 0.001, "V"),
    0x0D: _num("pm2.5", 2, unit="ug/m3"),
    0x0E: _num("pm10", 2, unit="ug/m3"),
    **{0x0F + i: ObjectSpec(kind, 1, form=Form.BINARY) for i, kind in enumerate(BINARY_KINDS[:3])},
    0x12: _num("co2", 2, unit="ppm"),
    0x13: _num("voc", 2, unit="ug/m3"),
    0x14: _num("moisture", 2, 0.01, "%"),
    **{0x15 + i: ObjectSpec(kind, 1, form=Form.BINARY) for i, kind in enumerate(BINARY_KINDS[3:])},
    0x2E: _num("humidity", 1, unit="%RH"),
    0x2F: _num("moisture", 1, unit="%"),
    0x3A: ObjectSpec("button", 1, form=Form.BUTTON),
    0x3C: ObjectSpec("dimmer", 2, form=Form.DIMMER),
    0x3D: _num("count", 2),
    0x3E: _num("count", 4),
    0x3F: _num("rotation", 2, 0.1, "deg", signed=True),
    0x40: _num("distance", 2, unit="mm"),
    0x41: _num("distance", 2, 0.1, "m"),
    0x42: _num("duration", 3, 0.001, "s"),
    0x43: _num("current", 2, 0.001, "A"),
    0x44: _num("speed", 2, 0.01, "m/s"),
    0x45: _num("temperature", 2, 0.1, "Cel", signed=True),
    0x46: _num("uv_index", 1, 0.1),
    0x47: _num("volume", 2, 0.1, "L"),
    0x48: _num("volume", 2, unit="mL"),
    0x49: _num("volume_flow_rate", 2, 0.001, "m3/h"),
    0x4A: _num("voltage", 2, 0.1, "V"),
    0x4B: _num("gas", 3, 0.001, "m3"),
    0x4C: _num("gas", 4, 0.001, "m3"),
    0x4D: _num("energy", 4, 0.001, "kWh"),
    0x4E: _num("volume", 4, 0.001, "L"),
    0x4F: _num("water", 4, 0.001, "L"),
    0x50: _num("timestamp", 4),
    0x51: _num("acceleration", 2, 0.001, "m/s2"),
    0x52: _num("gyroscope", 2, 0.001, "deg/s"),
    0x53: ObjectSpec("text", 0, form=Form.TEXT),
    0x54: ObjectSpec("raw", 0, form=Form.RAW),
    0x55: _num("volume_storage", 4, 0.001, "L"),
    0x56: _num("conductivity", 2, unit="uS/cm"),
    0x57: _num("temperature", 1, unit="Cel", signed=True),
    0x58: _num("temperature", 1, 0.35, "Cel", signed=True),
    0x59: _num("count", 1, signed=True),
    0x5A: _num("count", 2, signed=True),
    0x5B: _num("count", 4, signed=True),
    0x5C: _num("power", 4, 0.01, "W", signed=True),
    0x5D: _num("current", 2, 0.001, "A", signed=True),
    0x5E: _num("direction", 2, 0.01, "deg"),
    0x5F: _num("precipitation", 2, 0.1, "mm"),
    0x60: _num("channel", 1),
    0x61: _num("rotational_speed", 2, unit="rpm"),
    0x62: _num("speed", 4, 0.000001, "m/s", signed=True),
    0x63: _num("acceleration", 4, 0.000001, "m/s2", signed=True),
    0x64: _num("light_level", 1),
    0xF0: _num("device_type", 2),
    0xF1: ObjectSpec("firmware_version", 4, form=Form.VERSION),
    0xF2: ObjectSpec("firmware_version", 3, form=Form.VERSION),
}
"""Every object ID of the BTHome v2 format: sensor data, binary sensors, events, text and raw,
and the device information objects (0xF0 device type ID, 0xF1/0xF2 firmware version)."""

ObjectValue = float | int | bool | str | bytes
"""A decoded object value: a number scaled to its unit, a binary state, a button event name,
dimmer steps (left negative), text, raw bytes, or a firmware version "a.b.c[.d]"."""


@dataclass(frozen=True, slots=True)
class BTHomeFrame:
    """One decoded BTHome v2 advert. ``objects`` are (object ID, value) in advert order, the
    packet ID included; ``counter`` is the encryption counter of an encrypted advert; ``mac``
    the address the advert carried itself, if it did."""

    objects: tuple[tuple[int, ObjectValue], ...]
    encrypted: bool = False
    trigger_based: bool = False
    mac: str | None = None
    counter: int | None = None

    @property
    def packet_id(self) -> int | None:
        for oid, value in self.objects:
            if oid == PACKET_ID:
                return int(value)
        return None

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """Every object but the packet ID, as measurements in advert order."""
        return tuple(
            Measurement(OBJECTS[oid].kind, value, OBJECTS[oid].unit)
            for oid, value in self.objects
            if oid != PACKET_ID
        )

    def frame(self) -> Frame:
        return Frame(
            self.measurements, self.packet_id, encrypted=self.encrypted, counter=self.counter
        )


def mac_bytes(address: str) -> bytes:
    """``"AA:BB:CC:DD:EE:FF"`` as 6 bytes in printed order; MalformedAdvert if it is not one."""
    parts = address.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise MalformedAdvert(f"{address!r} is not a Bluetooth address")
    try:
        return bytes.fromhex("".join(parts))
    except ValueError:
        raise MalformedAdvert(f"{address!r} is not a Bluetooth address") from None


def cipher(bindkey: bytes) -> AESCCM:
    """The AES-CCM cipher of a bind key; DecryptionFailed if the key is not 16 bytes."""
    if len(bindkey) != BINDKEY_LENGTH:
        raise DecryptionFailed(f"a BTHome bind key is {BINDKEY_LENGTH} bytes, not {len(bindkey)}")
    return AESCCM(bindkey, tag_length=_MIC_LEN)


def nonce(mac: bytes, info: int, counter: bytes) -> bytes:
    return mac + _NONCE_UUID + bytes((info,)) + counter


def decode(
    data: bytes,
    address: str | None = None,
    bindkey: bytes | AESCCM | None = None,
) -> BTHomeFrame:
    """Decode BTHome v2 service data. ``address`` (the advert's) and ``bindkey`` (or its
    ``cipher``) are needed for encrypted adverts only, ``address`` only when the advert does
    not carry its MAC itself."""
    if not data:
        raise MalformedAdvert("empty BTHome service data")
    info = data[0]
    version = info >> 5
    if version != VERSION:
        raise MalformedAdvert(f"BTHome version {version} in device info 0x{info:02X}, not 2")
    pos = 1
    mac: str | None = None
    if info & MAC_INCLUDED:
        if len(data) < 7:
            raise MalformedAdvert("BTHome advert too short for its MAC")
        mac = ":".join(f"{b:02X}" for b in reversed(data[1:7]))
        pos = 7
    payload = data[pos:]
    counter: int | None = None
    if info & ENCRYPTED:
        if bindkey is None:
            raise BindKeyRequired("encrypted BTHome advert and no bind key")
        if len(payload) < _COUNTER_LEN + _MIC_LEN:
            raise MalformedAdvert("encrypted BTHome advert too short for its counter and MIC")
        source = mac or address
        if source is None:
            raise MalformedAdvert("encrypted BTHome advert without the address of its sender")
        aes = bindkey if isinstance(bindkey, AESCCM) else cipher(bindkey)
        counter_bytes = payload[-8:-4]
        try:
            payload = aes.decrypt(
                nonce(mac_bytes(source), info, counter_bytes),
                payload[:-8] + payload[-4:],
                None,
            )
        except InvalidTag:
            raise DecryptionFailed("BTHome MIC does not verify: wrong bind key?") from None
        counter = int.from_bytes(counter_bytes, "little")
    return BTHomeFrame(
        _objects(payload),
        encrypted=bool(info & ENCRYPTED),
        trigger_based=bool(info & TRIGGER_BASED),
        mac=mac,
        counter=counter,
    )


class BTHomeFormat:
    """BTHome v2 as an advert format (formats.py): all service data under 0xFCD2 is BTHome."""

    name: Final = "bthome"
    where: Final = ServiceData(UUID)

    def decode(self, data: bytes, address: str, bindkey: bytes | None) -> Frame:
        return decode(data, address, bindkey).frame()


BTHOME = BTHomeFormat()


def _objects(payload: bytes) -> tuple[tuple[int, ObjectValue], ...]:
    out: list[tuple[int, ObjectValue]] = []
    pos, end = 0, len(payload)
    while pos < end:
        oid = payload[pos]
        spec = OBJECTS.get(oid)
        if spec is None:
            raise UnknownObjectId(oid)
        pos += 1
        size = spec.size
        if size == 0:
            if pos >= end:
                raise MalformedAdvert(f"BTHome object 0x{oid:02X} lacks its length byte")
            size = payload[pos]
            pos += 1
        if pos + size > end:
            raise MalformedAdvert(f"BTHome object 0x{oid:02X} needs {size} bytes")
        raw = payload[pos : pos + size]
        pos += size
        out.append((oid, _value(oid, spec, raw)))
    return tuple(out)


def _value(oid: int, spec: ObjectSpec, raw: bytes) -> ObjectValue:
    form = spec.form
    if form is Form.NUMBER:
        n = int.from_bytes(raw, "little", signed=spec.signed)
        if spec.factor == 1:
            if spec.kind == "battery" and n > 100:
                raise MalformedAdvert(f"BTHome battery {n} % is outside 0..100")
            return n
        return round(n * spec.factor, spec.decimals)
    if form is Form.BINARY:
        if raw[0] > 1:
            raise MalformedAdvert(f"BTHome binary object 0x{oid:02X} is {raw[0]}, not 0 or 1")
        return raw[0] == 1
    if form is Form.BUTTON:
        event = BUTTON_EVENTS.get(raw[0])
        if event is None:
            raise MalformedAdvert(f"unknown BTHome button event 0x{raw[0]:02X}")
        return event
    if form is Form.DIMMER:
        direction, steps = raw[0], raw[1]
        if direction == DIMMER_LEFT:
            return -steps
        if direction == DIMMER_RIGHT:
            return steps
        if direction == DIMMER_NONE:
            return 0
        raise MalformedAdvert(f"unknown BTHome dimmer event 0x{direction:02X}")
    if form is Form.TEXT:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedAdvert("BTHome text object is not UTF-8") from None
    if form is Form.RAW:
        return bytes(raw)
    return ".".join(str(b) for b in reversed(raw))  # Form.VERSION: most significant last


def encode(
    objects: Iterable[tuple[int, ObjectValue]],
    *,
    bindkey: bytes | None = None,
    address: str | None = None,
    counter: int = 0,
    mac_included: bool = False,
    trigger_based: bool = False,
) -> bytes:
    """BTHome v2 service data for ``objects`` (values as ``decode`` gives them), encrypted
    with ``bindkey`` and ``counter`` when a key is given. ``address`` is the node's MAC: in the
    advert when ``mac_included``, and in the nonce of an encrypted advert. ValueError for a
    value the object cannot carry."""
    info = VERSION << 5
    if bindkey is not None:
        info |= ENCRYPTED
    if mac_included:
        info |= MAC_INCLUDED
    if trigger_based:
        info |= TRIGGER_BASED
    body = b"".join(_encode_object(oid, value) for oid, value in objects)
    head = bytes((info,))
    if mac_included or bindkey is not None:
        if address is None:
            raise ValueError("a MAC in the advert or encryption needs the node's address")
        mac = mac_bytes(address)
        if mac_included:
            head += mac[::-1]
        if bindkey is not None:
            counter_bytes = counter.to_bytes(_COUNTER_LEN, "little")
            sealed = cipher(bindkey).encrypt(nonce(mac, info, counter_bytes), body, None)
            body = sealed[:-_MIC_LEN] + counter_bytes + sealed[-_MIC_LEN:]
    return head + body


def _encode_object(oid: int, value: ObjectValue) -> bytes:
    spec = OBJECTS.get(oid)
    if spec is None:
        raise ValueError(f"unknown BTHome object ID 0x{oid:02X}")
    form = spec.form
    head = bytes((oid,))
    try:
        if form is Form.NUMBER:
            if isinstance(value, (str, bytes)):
                raise ValueError(f"object 0x{oid:02X} takes a number, not {value!r}")
            n = round(value / spec.factor)
            return head + n.to_bytes(spec.size, "little", signed=spec.signed)
        if form is Form.BINARY:
            return head + bytes((1 if value else 0,))
        if form is Form.BUTTON:
            return head + bytes((_BUTTON_CODES[str(value)],))
        if form is Form.DIMMER:
            if not isinstance(value, int):
                raise ValueError(f"dimmer steps must be an int, not {value!r}")
            event = DIMMER_NONE if value == 0 else DIMMER_LEFT if value < 0 else DIMMER_RIGHT
            return head + bytes((event, abs(value)))
        if form is Form.TEXT or form is Form.RAW:
            if isinstance(value, str):
                raw = value.encode("utf-8")
            elif isinstance(value, bytes):
                raw = value
            else:
                raise ValueError(f"object 0x{oid:02X} takes text or bytes, not {value!r}")
            return head + bytes((len(raw),)) + raw
        parts = [int(p) for p in str(value).split(".")]
        if len(parts) != spec.size:
            raise ValueError(f"object 0x{oid:02X} takes a {spec.size}-part version")
        return head + bytes(reversed(parts))
    except (OverflowError, KeyError, TypeError) as e:
        raise ValueError(f"object 0x{oid:02X} cannot carry {value!r}") from e
