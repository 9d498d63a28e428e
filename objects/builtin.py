"""The objects the gateway knows without any DDF file: the LwM2M core objects and IPSO sensors.

The facts (IDs, operations, types, flags, units, ranges) are those of the OMA LwM2M registry
for the object versions an LwM2M 1.1 gateway speaks: Security, Server and Device 1.1, LwM2M
Gateway 2.0 (whose resource 2 was removed), Event Log 2.1 (LwM2M 1.2's, where the gateway
keeps its fault log), and the current IPSO sensor and actuator objects.
They live here as Python rather than as bundled XML so the daemon starts without parsing
anything and a reviewer can read a definition in one place. A user's DDF directory is loaded
over these (``Definitions.add`` replaces) to add objects or to change a version.
"""

from __future__ import annotations

from .definitions import (
    Definitions,
    ObjectDef,
    Operations,
    ResourceDef,
    ResourceType,
    ValueRange,
    make_object,
)
from .ids import SSID_RANGE

__all__ = ["builtin_definitions", "builtin_objects"]

R = Operations.R
W = Operations.W
RW = Operations.RW
E = Operations.E
BOOTSTRAP = Operations.NONE
"""No operation from a LwM2M Server: only the Bootstrap-Server writes these resources."""

STRING = ResourceType.STRING
INTEGER = ResourceType.INTEGER
UNSIGNED = ResourceType.UNSIGNED
FLOAT = ResourceType.FLOAT
BOOLEAN = ResourceType.BOOLEAN
OPAQUE = ResourceType.OPAQUE
TIME = ResourceType.TIME
OBJLNK = ResourceType.OBJLNK
CORELNK = ResourceType.CORELNK
NONE = ResourceType.NONE

PERIOD = "0..2147483647"
"""The Server object's periods in seconds. The OMA registry states no range, but a negative period
means nothing and client stacks hold these in 32 bits: a server that writes one out of range
gets 4.00 rather than a client that sends ``lt=-101`` in every Update."""
SHORT_SERVER_ID = f"{SSID_RANGE.start}..{SSID_RANGE.stop - 1}"
"""/0/x/10 and /1/x/0, from the vocabulary's one statement of the range."""

LIFETIME = "1..2147483647"
"""As ``PERIOD``, and at least 1 s: Server 1.1 gives 0 no meaning (1.2 later made it
"infinite"), and the Bootstrap consistency check has always wanted a positive lifetime."""


def _r(
    id: int,
    name: str,
    operations: Operations,
    type: ResourceType,
    *,
    multiple: bool = False,
    mandatory: bool = False,
    units: str = "",
    range: str = "",
) -> ResourceDef:
    """One resource, in the order and wording of the DDF's Item fields, so each fits a line."""
    return ResourceDef(
        id=id,
        name=name,
        operations=operations,
        type=type,
        multiple=multiple,
        mandatory=mandatory,
        units=units,
        range=ValueRange.parse(range),
    )


def _measurement(*extra: ResourceDef) -> list[ResourceDef]:
    """The resources every IPSO measurement object shares (value, units, min/max, quality),
    plus the object's own ``extra`` ones."""
    return [
        _r(5518, "Timestamp", R, TIME),
        _r(5601, "Min Measured Value", R, FLOAT),
        _r(5602, "Max Measured Value", R, FLOAT),
        _r(5603, "Min Range Value", R, FLOAT),
        _r(5604, "Max Range Value", R, FLOAT),
        _r(5605, "Reset Min and Max Measured Values", E, NONE),
        _r(5700, "Sensor Value", R, FLOAT, mandatory=True),
        _r(5701, "Sensor Units", R, STRING),
        _r(5750, "Application Type", RW, STRING),
        _r(6042, "Measurement Quality Indicator", R, INTEGER, range="0..23"),
        _r(6049, "Measurement Quality Level", R, INTEGER, range="0..100"),
        _r(6050, "Fractional Timestamp", R, FLOAT, units="s", range="0..1"),
        *extra,
    ]


_CALIBRATION = _r(5821, "Current Calibration", RW, FLOAT)
"""Of the electrical and pressure measurements (3316, 3317, 3323, 3328)."""


_OBJECTS: tuple[ObjectDef, ...] = (
    make_object(
        0,
        "LWM2M Security",
        [
            _r(0, "LWM2M Server URI", BOOTSTRAP, STRING, mandatory=True, range="0..255 bytes"),
            _r(1, "Bootstrap-Server", BOOTSTRAP, BOOLEAN, mandatory=True),
            _r(2, "Security Mode", BOOTSTRAP, INTEGER, mandatory=True, range="0..4"),
            _r(3, "Public Key or Identity", BOOTSTRAP, OPAQUE, mandatory=True),
            _r(4, "Server Public Key", BOOTSTRAP, OPAQUE, mandatory=True),
            _r(5, "Secret Key", BOOTSTRAP, OPAQUE, mandatory=True),
            _r(6, "SMS Security Mode", BOOTSTRAP, INTEGER, range="0..255"),
            _r(7, "SMS Binding Key Parameters", BOOTSTRAP, OPAQUE, range="6"),
            _r(8, "SMS Binding Secret Key(s)", BOOTSTRAP, OPAQUE, range="16,32,48"),
            _r(9, "LwM2M Server SMS Number", BOOTSTRAP, STRING),
            _r(10, "Short Server ID", BOOTSTRAP, INTEGER, range=SHORT_SERVER_ID),
            _r(11, "Client Hold Off Time", BOOTSTRAP, INTEGER, units="s"),
            _r(12, "Bootstrap-Server Account Timeout", BOOTSTRAP, INTEGER, units="s"),
            _r(13, "Matching Type", BOOTSTRAP, UNSIGNED, units="s", range="0..3"),
            _r(14, "SNI", BOOTSTRAP, STRING),
            _r(15, "Certificate Usage", BOOTSTRAP, UNSIGNED, units="s", range="0..3"),
            _r(16, "DTLS/TLS Ciphersuite", BOOTSTRAP, UNSIGNED, multiple=True),
            _r(17, "OSCORE Security Mode", BOOTSTRAP, OBJLNK),
        ],
        version="1.1",
        lwm2m_version="1.1",
        mandatory=True,
        urn="urn:oma:lwm2m:oma:0:1.1",
    ),
    make_object(
        1,
        "LwM2M Server",
        [
            _r(0, "Short Server ID", R, INTEGER, mandatory=True, range=SHORT_SERVER_ID),
            _r(1, "Lifetime", RW, INTEGER, mandatory=True, units="s", range=LIFETIME),
            _r(2, "Default Minimum Period", RW, INTEGER, units="s", range=PERIOD),
            _r(3, "Default Maximum Period", RW, INTEGER, units="s", range=PERIOD),
            _r(4, "Disable", E, NONE),
            _r(5, "Disable Timeout", RW, INTEGER, units="s", range=PERIOD),
            _r(6, "Notification Storing When Disabled or Offline", RW, BOOLEAN, mandatory=True),
            _r(7, "Binding", RW, STRING, mandatory=True),
            _r(8, "Registration Update Trigger", E, NONE, mandatory=True),
            _r(9, "Bootstrap-Request Trigger", E, NONE),
            _r(10, "APN Link", RW, OBJLNK),
            _r(11, "TLS-DTLS Alert Code", R, UNSIGNED, range="0..255"),
            _r(12, "Last Bootstrapped", R, TIME),
            _r(13, "Registration Priority Order", BOOTSTRAP, UNSIGNED),
            _r(14, "Initial Registration Delay Timer", BOOTSTRAP, UNSIGNED, units="s"),
            _r(15, "Registration Failure Block", BOOTSTRAP, BOOLEAN),
            _r(16, "Bootstrap on Registration Failure", BOOTSTRAP, BOOLEAN),
            _r(17, "Communication Retry Count", BOOTSTRAP, UNSIGNED),
            _r(18, "Communication Retry Timer", BOOTSTRAP, UNSIGNED, units="s"),
            _r(19, "Communication Sequence Delay Timer", BOOTSTRAP, UNSIGNED),
            _r(20, "Communication Sequence Retry Count", BOOTSTRAP, UNSIGNED),
            _r(21, "Trigger", RW, BOOLEAN),
            _r(22, "Preferred Transport", RW, STRING),
            _r(23, "Mute Send", RW, BOOLEAN),
        ],
        version="1.1",
        lwm2m_version="1.1",
        mandatory=True,
        urn="urn:oma:lwm2m:oma:1:1.1",
    ),
    make_object(
        2,
        "LwM2M Access Control",
        [
            _r(0, "Object ID", R, INTEGER, mandatory=True, range="1..65534"),
            _r(1, "Object Instance ID", R, INTEGER, mandatory=True, range="0..65535"),
            _r(2, "ACL", RW, INTEGER, multiple=True, range="0..31"),
            _r(3, "Access Control Owner", RW, INTEGER, mandatory=True, range="0..65535"),
        ],
        version="1.1",
        lwm2m_version="1.0",
        urn="urn:oma:lwm2m:oma:2:1.1",
    ),
    make_object(
        3,
        "Device",
        [
            _r(0, "Manufacturer", R, STRING),
            _r(1, "Model Number", R, STRING),
            _r(2, "Serial Number", R, STRING),
            _r(3, "Firmware Version", R, STRING),
            _r(4, "Reboot", E, NONE, mandatory=True),
            _r(5, "Factory Reset", E, NONE),
            _r(6, "Available Power Sources", R, INTEGER, multiple=True, range="0..7"),
            _r(7, "Power Source Voltage", R, INTEGER, multiple=True),
            _r(8, "Power Source Current", R, INTEGER, multiple=True),
            _r(9, "Battery Level", R, INTEGER, units="%", range="0..100"),
            _r(10, "Memory Free", R, INTEGER),
            _r(11, "Error Code", R, INTEGER, multiple=True, mandatory=True, range="0..32"),
            _r(12, "Reset Error Code", E, NONE),
            _r(13, "Current Time", RW, TIME),
            _r(14, "UTC Offset", RW, STRING),
            _r(15, "Timezone", RW, STRING),
            _r(16, "Supported Binding and Modes", R, STRING, mandatory=True),
            _r(17, "Device Type", R, STRING),
            _r(18, "Hardware Version", R, STRING),
            _r(19, "Software Version", R, STRING),
            _r(20, "Battery Status", R, INTEGER, range="0..6"),
            _r(21, "Memory Total", R, INTEGER),
            _r(22, "ExtDevInfo", R, OBJLNK, multiple=True),
        ],
        version="1.1",
        lwm2m_version="1.1",
        multiple=False,
        mandatory=True,
        urn="urn:oma:lwm2m:oma:3:1.1",
    ),
    make_object(
        4,
        "Connectivity Monitoring",
        [
            _r(0, "Network Bearer", R, INTEGER, mandatory=True, range="0-50"),
            _r(
                1,
                "Available Network Bearer",
                R,
                INTEGER,
                multiple=True,
                mandatory=True,
                range="0-50",
            ),
            _r(2, "Radio Signal Strength", R, INTEGER, mandatory=True, units="dBm"),
            _r(3, "Link Quality", R, INTEGER),
            _r(4, "IP Addresses", R, STRING, multiple=True, mandatory=True),
            _r(5, "Router IP Addresses", R, STRING, multiple=True),
            _r(6, "Link Utilization", R, INTEGER, units="%", range="0-100"),
            _r(7, "APN", R, STRING, multiple=True),
            _r(8, "Cell ID", R, INTEGER),
            _r(9, "SMNC", R, INTEGER, units="%", range="0-999"),
            _r(10, "SMCC", R, INTEGER, range="0-999"),
            _r(11, "SignalSNR", R, INTEGER, units="dB"),
        ],
        version="1.1",
        lwm2m_version="1.0",
        multiple=False,
        urn="urn:oma:lwm2m:oma:4:1.1",
    ),
    make_object(
        5,
        "Firmware Update",
        [
            _r(0, "Package", W, OPAQUE, mandatory=True),
            _r(1, "Package URI", RW, STRING, mandatory=True, range="0..255"),
            _r(2, "Update", E, NONE, mandatory=True),
            _r(3, "State", R, INTEGER, mandatory=True, range="0..3"),
            _r(5, "Update Result", R, INTEGER, mandatory=True, range="0..11"),
            _r(6, "PkgName", R, STRING, range="0..255"),
            _r(7, "PkgVersion", R, STRING, range="0..255"),
            _r(8, "Firmware Update Protocol Support", R, INTEGER, multiple=True, range="0..5"),
            _r(9, "Firmware Update Delivery Method", R, INTEGER, mandatory=True, range="0..2"),
            _r(10, "Cancel", E, NONE),
            _r(11, "Severity", RW, INTEGER, range="0..2"),
            _r(12, "Last State Change Time", R, TIME),
            _r(13, "Maximum Defer Period", RW, UNSIGNED, units="s"),
        ],
        version="1.1",
        lwm2m_version="1.1",
        multiple=False,
        urn="urn:oma:lwm2m:oma:5:1.1",
    ),
    make_object(
        20,
        "Event Log",
        [
            _r(4010, "LogClass", RW, INTEGER, range="0..255"),
            _r(4011, "LogStart", E, NONE),
            _r(4012, "LogStop", E, NONE),
            _r(4013, "LogStatus", R, INTEGER, range="0..255"),
            _r(4014, "LogData", R, OPAQUE, mandatory=True),
            _r(4015, "LogDataFormat", RW, INTEGER, range="0..255"),
            _r(4016, "LogDataIncremental", BOOTSTRAP, OPAQUE),
            _r(4017, "LogDataIncrementalMinimumSendInterval", RW, UNSIGNED),
        ],
        version="2.1",
        lwm2m_version="1.1",
        urn="urn:oma:lwm2m:oma:20:2.1",
    ),
    make_object(
        25,
        "LwM2M Gateway",
        [
            _r(0, "Device ID", R, STRING, mandatory=True),
            _r(1, "Prefix", R, STRING, mandatory=True),
            _r(3, "IoT Device Objects", R, CORELNK, mandatory=True),
        ],
        version="2.0",
        lwm2m_version="1.1",
        urn="urn:oma:lwm2m:oma:25:2.0",
    ),
    make_object(
        3200,
        "Digital Input",
        [
            _r(5500, "Digital Input State", R, BOOLEAN, mandatory=True),
            _r(5501, "Digital Input Counter", R, INTEGER),
            _r(5502, "Digital Input Polarity", RW, BOOLEAN),
            _r(5503, "Digital Input Debounce", RW, INTEGER, units="ms"),
            _r(5504, "Digital Input Edge Selection", RW, INTEGER, range="1..3"),
            _r(5505, "Digital Input Counter Reset", E, NONE),
            _r(5518, "Timestamp", R, TIME),
            _r(5750, "Application Type", RW, STRING),
            _r(5751, "Sensor Type", R, STRING),
            _r(6050, "Fractional Timestamp", R, FLOAT, units="s", range="0..1"),
        ],
        version="1.1",
        lwm2m_version="1.0",
        urn="urn:oma:lwm2m:ext:3200:1.1",
    ),
    make_object(
        3201,
        "Digital Output",
        [
            _r(5518, "Timestamp", R, TIME),
            _r(5550, "Digital Output State", RW, BOOLEAN, mandatory=True),
            _r(5551, "Digital Output Polarity", RW, BOOLEAN),
            _r(5750, "Application Type", RW, STRING),
            _r(6050, "Fractional Timestamp", R, FLOAT, units="s", range="0..1"),
        ],
        version="1.1",
        lwm2m_version="1.0",
        urn="urn:oma:lwm2m:ext:3201:1.1",
    ),
    make_object(
        3300,
        "Generic Sensor",
        _measurement(_r(5751, "Sensor Type", R, STRING)),
        version="1.1",
        lwm2m_version="1.0",
        urn="urn:oma:lwm2m:ext:3300:1.1",
    ),
    make_object(
        3301,
        "Illuminance",
        _measurement(),
        version="1.1",
        lwm2m_version="1.0",
        urn="urn:oma:lwm2m:ext:3301:1.1",
    ),
    make_object(
        3303,
        "Temperature",
        _measurement(),
        version="1.1",
        lwm2m_version="1.0",
        urn="urn:oma:lwm2m:ext:3303:1.1",
    ),
    make_object(
        3304,
        "Humidity",
        _measurement(),
        version="1.1",
        lwm2m_version="1.0",
        urn="urn:oma:lwm2m:ext:3304:1.1",
    ),
    make_object(
        3311,
        "Light Control",
        [
            _r(5701, "Sensor Units", R, STRING),
            _r(5706, "Colour", RW, STRING),
            _r(5750, "Application Type", RW, STRING),
            _r(5805, "Cumulative active power", R, FLOAT, units="Wh"),
            _r(5820, "Power factor", R, FLOAT),
            _r(5850, "On/Off", RW, BOOLEAN, mandatory=True),
            _r(5851, "Dimmer", RW, INTEGER, units="/100", range="0..100"),
            _r(5852, "On time", RW, INTEGER, units="s"),
        ],
        version="1.0",
        lwm2m_version="1.0",
    ),
    make_object(
        3313,
        "Accelerometer",
        [
            _r(5518, "Timestamp", R, TIME),
            _r(5603, "Min Range Value", R, FLOAT),
            _r(5604, "Max Range Value", R, FLOAT),
            _r(5701, "Sensor Units", R, STRING),
            _r(5702, "X Value", R, FLOAT, mandatory=True),
            _r(5703, "Y Value", R, FLOAT),
            _r(5704, "Z Value", R, FLOAT),
            _r(5750, "Application Type", RW, STRING),
            _r(6042, "Measurement Quality Indicator", R, INTEGER, range="0..23"),
            _r(6049, "Measurement Quality Level", R, INTEGER, range="0..100"),
            _r(6050, "Fractional Timestamp", R, FLOAT, units="s", range="0..1"),
        ],
        version="1.1",
        lwm2m_version="1.0",
        urn="urn:oma:lwm2m:ext:3313:1.1",
    ),
    make_object(
        3315,
        "Barometer",
        _measurement(),
        version="1.1",
        lwm2m_version="1.0",
        urn="urn:oma:lwm2m:ext:3315:1.1",
    ),
    make_object(
        3316,
        "Voltage",
        _measurement(_CALIBRATION),
        version="1.1",
        lwm2m_version="1.0",
        urn="urn:oma:lwm2m:ext:3316:1.1",
    ),
    make_object(
        3317,
        "Current",
        _measurement(_CALIBRATION),
        version="1.1",
        lwm2m_version="1.0",
        urn="urn:oma:lwm2m:ext:3317:1.1",
    ),
    make_object(
        3323,
        "Pressure",
        _measurement(_CALIBRATION),
        version="1.1",
        lwm2m_version="1.0",
        urn="urn:oma:lwm2m:ext:3323:1.1",
    ),
    make_object(
        3328,
        "Power",
        _measurement(_CALIBRATION),
        version="1.1",
        lwm2m_version="1.0",
        urn="urn:oma:lwm2m:ext:3328:1.1",
    ),
    make_object(
        3331,
        "Energy",
        [
            _r(5518, "Timestamp", R, TIME),
            _r(5700, "Sensor Value", R, FLOAT, mandatory=True),
            _r(5701, "Sensor Units", R, STRING),
            _r(5750, "Application Type", RW, STRING),
            _r(5822, "Reset Cumulative energy", E, NONE),
            _r(6042, "Measurement Quality Indicator", R, INTEGER, range="0..23"),
            _r(6049, "Measurement Quality Level", R, INTEGER, range="0..100"),
            _r(6050, "Fractional Timestamp", R, FLOAT, units="s", range="0..1"),
        ],
        version="1.1",
        lwm2m_version="1.0",
        urn="urn:oma:lwm2m:ext:3331:1.1",
    ),
    make_object(
        3342,
        "On/Off switch",
        [
            _r(5500, "Digital Input State", R, BOOLEAN, mandatory=True),
            _r(5501, "Digital Input Counter", R, INTEGER),
            _r(5518, "Timestamp", R, TIME),
            _r(5750, "Application Type", RW, STRING),
            _r(5852, "On time", RW, INTEGER, units="s"),
            _r(5854, "Off Time", RW, INTEGER, units="s"),
            _r(6050, "Fractional Timestamp", R, FLOAT, units="s", range="0..1"),
        ],
        version="1.1",
        lwm2m_version="1.0",
        urn="urn:oma:lwm2m:ext:3342:1.1",
    ),
    make_object(
        3347,
        "Push button",
        [
            _r(5500, "Digital Input State", R, BOOLEAN, mandatory=True),
            _r(5501, "Digital Input Counter", R, INTEGER),
            _r(5518, "Timestamp", R, TIME),
            _r(5750, "Application Type", RW, STRING),
            _r(6050, "Fractional Timestamp", R, FLOAT, units="s", range="0..1"),
        ],
        version="1.1",
        lwm2m_version="1.0",
        urn="urn:oma:lwm2m:ext:3347:1.1",
    ),
)


def builtin_objects() -> tuple[ObjectDef, ...]:
    """The built-in definitions, in object ID order. The tuple and its items are immutable."""
    return _OBJECTS


def builtin_definitions() -> Definitions:
    """A new ``Definitions`` holding the built-in ones, for the caller to extend or override."""
    definitions = Definitions()
    definitions.extend(_OBJECTS)
    return definitions
