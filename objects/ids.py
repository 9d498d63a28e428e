"""The LwM2M vocabulary: every object and resource ID the gateway's code uses, named once.

Why one module: an ID written as a number in several modules is a fact stated several times.
A reader cannot find every use of "the battery level" by searching for ``9``, and a mistyped
``5705`` in one module is a silent defect. Here each ID has one name, grouped by object
(``Device.OBJECT``, ``Device.BATTERY_LEVEL``); the code imports the name, and
``tests/unit/test_vocabulary_guard.py`` fails on an ID literal anywhere else outside the
codecs and the built-in definition tables (``builtin.py``, whose numbers *are* the
definitions).

The numbers are those of the OMA LwM2M registry (Core TS 1.1/1.2 for objects 0-6, the
Gateway TS 1.1 for 25, IPSO Smart Objects for 3200 and up). The IDs here are those the code
uses (and the /5 and /6 ones that firmware update and location work is about to): a new one
is added when code needs it. Instance IDs are not vocabulary (a node's instance
is whatever it is), except the few fixed ones named below (``SINGLE``, ``OBJECT_LEVEL``).

The classes are namespaces, never instantiated: their attributes are plain ``int`` so that
they compare, hash and encode as the numbers they are.
"""

from __future__ import annotations

from typing import Final

from .paths import Path

SINGLE: Final = 0
"""The instance ID of a single-instance object (/3/0, /4/0, /5/0)."""


class Security:
    """/0 LwM2M Security: the server URIs and credentials (Bootstrap-Server only)."""

    OBJECT: Final = 0
    URI: Final = 0
    IS_BOOTSTRAP: Final = 1
    MODE: Final = 2
    IDENTITY: Final = 3
    SERVER_PUBLIC_KEY: Final = 4
    SECRET_KEY: Final = 5
    SSID: Final = 10
    HOLD_OFF: Final = 11
    CERTIFICATE_USAGE: Final = 15


class CertificateUsage:
    """The values of /0/x/15 Certificate Usage (RFC 6698's, as the Core spec takes them)."""

    CA_CONSTRAINT: Final = 0
    SERVICE_CERTIFICATE_CONSTRAINT: Final = 1
    TRUST_ANCHOR_ASSERTION: Final = 2
    DOMAIN_ISSUED_CERTIFICATE: Final = 3
    """The default when /0/x/15 is absent."""


class SecurityMode:
    """The values of /0/x/2 Security Mode."""

    PSK: Final = 0
    RPK: Final = 1
    CERTIFICATE: Final = 2
    NOSEC: Final = 3
    EST: Final = 4


class Server:
    """/1 LwM2M Server: one instance per server account."""

    OBJECT: Final = 1
    SSID: Final = 0
    """Short Server ID (``SSID_RANGE`` below)."""
    LIFETIME: Final = 1
    DEFAULT_PMIN: Final = 2
    DEFAULT_PMAX: Final = 3
    NOTIFICATION_STORING: Final = 6
    BINDING: Final = 7
    UPDATE_TRIGGER: Final = 8
    BOOTSTRAP_TRIGGER: Final = 9
    LAST_BOOTSTRAPPED: Final = 12
    PRIORITY: Final = 13
    BOOTSTRAP_ON_FAILURE: Final = 16
    RETRY_COUNT: Final = 17
    RETRY_TIMER: Final = 18
    SEQUENCE_DELAY: Final = 19
    SEQUENCE_COUNT: Final = 20
    MUTE_SEND: Final = 23


SSID_RANGE: Final = range(1, 65535)
"""The Short Server IDs a server may have (Core TS: 1-65534; 0 and 65535 are reserved)."""


class Acl:
    """/2 LwM2M Access Control: per object instance, which server may do what."""

    OBJECT: Final = 2
    OBJECT_ID: Final = 0
    INSTANCE_ID: Final = 1
    ACL: Final = 2
    OWNER: Final = 3
    OBJECT_LEVEL: Final = 65535
    """The Object Instance ID (resource 1) of the /2 instance that holds an object's Create
    rights."""


class Device:
    """/3 Device: the gateway's own, and each node's (what a node reports of itself)."""

    OBJECT: Final = 3
    MANUFACTURER: Final = 0
    MODEL_NUMBER: Final = 1
    SERIAL_NUMBER: Final = 2
    FIRMWARE_VERSION: Final = 3
    REBOOT: Final = 4
    FACTORY_RESET: Final = 5
    BATTERY_LEVEL: Final = 9
    MEMORY_FREE: Final = 10
    ERROR_CODE: Final = 11
    CURRENT_TIME: Final = 13
    UTC_OFFSET: Final = 14
    TIMEZONE: Final = 15
    SUPPORTED_BINDINGS: Final = 16
    DEVICE_TYPE: Final = 17
    HARDWARE_VERSION: Final = 18
    SOFTWARE_VERSION: Final = 19
    BATTERY_STATUS: Final = 20
    MEMORY_TOTAL: Final = 21


class Connectivity:
    """/4 Connectivity Monitoring."""

    OBJECT: Final = 4
    NETWORK_BEARER: Final = 0
    AVAILABLE_BEARERS: Final = 1
    RADIO_SIGNAL_STRENGTH: Final = 2
    LINK_QUALITY: Final = 3
    IP_ADDRESSES: Final = 4
    ROUTER_IP_ADDRESSES: Final = 5


class FirmwareUpdate:
    """/5 Firmware Update."""

    OBJECT: Final = 5
    PACKAGE: Final = 0
    PACKAGE_URI: Final = 1
    UPDATE: Final = 2
    STATE: Final = 3
    UPDATE_RESULT: Final = 5
    PKG_NAME: Final = 6
    PKG_VERSION: Final = 7
    PROTOCOL_SUPPORT: Final = 8
    DELIVERY_METHOD: Final = 9


class Location:
    """/6 Location."""

    OBJECT: Final = 6


class EventLog:
    """/20 Event Log (LwM2M 1.2): the gateway's record of faults, starting and ending."""

    OBJECT: Final = 20
    LOG_CLASS: Final = 4010
    LOG_STATUS: Final = 4013
    LOG_DATA: Final = 4014
    LOG_DATA_FORMAT: Final = 4015


OSCORE: Final = 21
"""/21 OSCORE: provisioned by the Bootstrap-Server, never visible to a server."""
COSE: Final = 23
"""/23 LwM2M COSE (EDHOC keys): provisioned by the Bootstrap-Server, never visible to a
server."""


BOOTSTRAP_ONLY: Final = frozenset({Security.OBJECT, OSCORE, COSE})
"""Objects only the Bootstrap-Server may see: never in Register or Update, and 4.01 to a
LwM2M Server that asks for them."""

HOUSEKEEPING: Final = frozenset({*BOOTSTRAP_ONLY, Server.OBJECT, Acl.OBJECT})
"""A LwM2M client's own business with its servers, what the Bootstrap-Server provisions:
Bootstrap-Delete of ``/`` clears them; a node's are never shown upstream nor observed."""


class LwM2MGateway:
    """/25 LwM2M Gateway (Gateway TS 1.1, object version 2.0): the gateway's view of its end
    devices, which pairing and unpairing change; servers only read it."""

    OBJECT: Final = 25
    DEVICE_ID: Final = 0
    PREFIX: Final = 1
    IOT_DEVICE_OBJECTS: Final = 3


class Ipso:
    """IPSO Smart Object IDs (3200 and up: the objects nodes are shown as)."""

    FIRST: Final = 3200
    """Objects from here up are IPSO objects; below are the LwM2M core objects."""
    DIGITAL_INPUT: Final = 3200
    GENERIC_SENSOR: Final = 3300
    ILLUMINANCE: Final = 3301
    TEMPERATURE: Final = 3303
    HUMIDITY: Final = 3304
    LIGHT_CONTROL: Final = 3311
    ACCELEROMETER: Final = 3313
    BAROMETER: Final = 3315
    VOLTAGE: Final = 3316
    CURRENT: Final = 3317
    POWER: Final = 3328
    ENERGY: Final = 3331
    PUSH_BUTTON: Final = 3347


class IpsoResource:
    """IPSO reusable resource IDs, the same in every IPSO object that has them."""

    DIGITAL_INPUT_STATE: Final = 5500
    DIGITAL_INPUT_COUNTER: Final = 5501
    SENSOR_VALUE: Final = 5700
    SENSOR_UNITS: Final = 5701
    X_VALUE: Final = 5702
    Y_VALUE: Final = 5703
    Z_VALUE: Final = 5704
    APPLICATION_TYPE: Final = 5750
    SENSOR_TYPE: Final = 5751
    ON_OFF: Final = 5850


BATTERY_PATH: Final = Path((Device.OBJECT, SINGLE, Device.BATTERY_LEVEL))
"""/3/0/9 Battery Level (%), where a node reports its battery."""
DEVICE_PATH: Final = Path((Device.OBJECT, SINGLE))
"""/3/0, the one Device instance."""
