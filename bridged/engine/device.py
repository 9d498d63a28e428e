"""The gateway's own Device (/3) and Connectivity Monitoring (/4) objects, filled from the machine.

The module has two halves so that the rules can be tested without a machine:

* ``read_machine_facts`` does all the I/O. It reads small text files under a root directory
  (``/`` on the gateway, a fake tree in tests) into a frozen ``MachineFacts``. A fact it cannot
  read is left unknown rather than raised, because a file missing on some board must never stop
  the daemon from registering.
* The pure functions (``device_resources``, ``status_resources``, ``connectivity_resources``)
  turn facts into resource values: which source wins, which addresses a server sees, which
  bearer code applies. ``install_device_objects`` puts those values in a tree, and makes the
  ones that change while the daemon runs computed when read (see ``ObjectTree.compute``): the
  clock, the free memory and all of /4/0 are current whenever a server reads
  them or is notified of them, and nothing runs to keep them so while nobody asks.

Where each fact comes from, and why:

* Manufacturer, model and hardware version: the device tree first (ARM boards such as the
  Raspberry Pi, where DMI does not exist), then DMI (PCs), then "unknown". On a Pi the model
  text ends in " Rev 1.4": the model number is the part before it, the hardware version the
  part after. The manufacturer is named from the vendor prefix of the board's first
  ``compatible`` string ("raspberrypi" is Raspberry Pi Ltd; other vendors keep their prefix).
* Serial Number: the SoC serial from the device tree, a hardware identity that survives an OS
  reinstall. Without one it is a keyed hash of /etc/machine-id, never the ID itself, because
  machine-id(5) asks that the ID not be exposed on the network. DMI's product serial is not
  used: it is readable by root only.
* Memory Free and Memory Total: MemAvailable (the kernel's estimate of what can still be
  allocated without swapping, which is what "free" means to an operator) and MemTotal from
  /proc/meminfo. Its "kB" are KiB; the OMA registry counts kilobytes of 1000 bytes, so they are
  converted.
* Timezone: the /etc/localtime symlink (what the C library and timedatectl use), then
  /etc/timezone, then the TZ variable; only a name the time zone database knows is taken. The
  UTC offset is that zone's offset at the time the facts were read (at start-up). A server or
  the operator may set both; what they set stands.
* Network: files only, so one reader serves the gateway and the tests alike. The interfaces come
  from /sys/class/net; IPv4 addresses from /proc/net/fib_trie (the only file listing them: the
  SIOCGIFADDR ioctl gives one address per interface and cannot read a test root); IPv6
  addresses from /proc/net/if_inet6; default routers from /proc/net/route and
  /proc/net/ipv6_route; the Wi-Fi signal from /proc/net/wireless, the wireless-extensions view
  that cfg80211 keeps (Raspberry Pi OS and Debian kernels enable it).

Power sources (/3/0/6-8) are left out: a gateway on a mains adapter cannot measure them.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import MappingProxyType
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from bridged import __version__
from bridged.objects.ids import Connectivity, Device
from bridged.objects.paths import Path as LwM2MPath
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Value

__all__ = [
    "BEARER_ETHERNET",
    "BEARER_WLAN",
    "DefaultRoute",
    "MachineFacts",
    "NetInterface",
    "ResourceValues",
    "WirelessLink",
    "connectivity_resources",
    "device_resources",
    "install_device_objects",
    "read_machine_facts",
    "read_memory_available",
    "status_resources",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ResourceValues = dict[int, Value | dict[int, Value]]
"""Resource values of one instance by resource ID, as ``ObjectTree.create_instance`` takes them
(a multi-instance resource is a ``{riid: value}`` dict)."""

BEARER_WLAN = 21
BEARER_ETHERNET = 41
"""Network Bearer codes of /4/x/0 (21-40 wireless, 41-50 wireline). Ethernet is also the
fallback when no interface has a known bearer, since a gateway without routes is most often
one whose cable is out."""

FACTS_MAX_AGE = 1.0
"""How old, in seconds, the machine facts behind a computed value may be, so that one Read of
/4/0, or of /3/0 and /4/0 together, reads the machine once rather than once per resource."""

UNKNOWN = "unknown"
DEVICE_TYPE = "gateway"
NO_ERROR = 0

ARPHRD_ETHER = 1
"""The /sys/class/net/*/type of Ethernet links, Wi-Fi included (which ``wireless`` tells apart)."""

RTF_UP = 0x1
RTF_GATEWAY = 0x2
RTF_UP_GATEWAY = RTF_UP | RTF_GATEWAY
"""The route flags of a route through a router that is in use."""
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40

_DT_VENDORS: Mapping[str, str] = MappingProxyType({"raspberrypi": "Raspberry Pi Ltd"})
"""Device-tree vendor prefixes whose company name differs from the prefix."""

_DMI_PLACEHOLDERS = frozenset(
    {
        "",
        "default string",
        "not applicable",
        "not specified",
        "none",
        "o.e.m.",
        "system manufacturer",
        "system product name",
        "system version",
        "to be filled by o.e.m.",
    }
)
"""What firmware vendors leave in DMI fields they did not fill: no better than unknown."""

_SERIAL_APP_ID = b"bridged: LwM2M Device serial number"
"""What is hashed with the machine ID as key (as sd_id128_get_machine_app_specific does), so
the serial is stable for the machine but reveals nothing of its ID."""


# -- facts -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetInterface:
    """One network interface, as /sys/class/net shows it."""

    name: str
    arp_type: int | None = None
    """The link type (ARPHRD_*); None when unreadable."""
    wireless: bool = False
    up: bool = False
    """The operational state is "up" (a carrier, or an associated Wi-Fi link)."""
    physical: bool = False
    """Backed by a device: not a bridge, VLAN, tunnel or dummy."""


@dataclass(frozen=True, slots=True)
class DefaultRoute:
    """A default route: the router it goes through and on which interface."""

    interface: str
    gateway: IPAddress
    metric: int = 0


@dataclass(frozen=True, slots=True)
class WirelessLink:
    """The radio state of one Wi-Fi interface, from /proc/net/wireless."""

    interface: str
    quality: int
    """Link quality on the driver's scale (0..70 for cfg80211 drivers)."""
    level: int
    """Signal level in dBm."""


@dataclass(frozen=True, slots=True)
class MachineFacts:
    """Everything read from the machine at one moment; None or empty where it was unknown."""

    time: int
    """When the facts were read, in seconds since the epoch."""
    dt_model: str | None = None
    dt_compatible: tuple[str, ...] = ()
    dt_serial: str | None = None
    dmi_vendor: str | None = None
    dmi_product: str | None = None
    dmi_version: str | None = None
    machine_id: str | None = None
    os_name: str | None = None
    kernel: str | None = None
    python_version: str | None = None
    aiocoap_version: str | None = None
    mem_total_kib: int | None = None
    mem_available_kib: int | None = None
    timezone: str | None = None
    """An IANA time zone name."""
    utc_offset: int | None = None
    """The offset from UTC of ``timezone`` at ``time``, in seconds."""
    interfaces: tuple[NetInterface, ...] = ()
    addresses: tuple[IPAddress, ...] = ()
    """Every local address, loopback and link-local ones included."""
    default_routes: tuple[DefaultRoute, ...] = ()
    wireless: tuple[WirelessLink, ...] = ()


# -- facts to resource values (pure) ---------------------------------------------------------


def device_resources(facts: MachineFacts, *, binding: str = "U") -> ResourceValues:
    """Every /3/0 value: what identifies the gateway, then ``status_resources``.

    ``binding`` is the Supported Binding and Modes text ("U", or "UQ" with queue mode).
    Optional resources whose fact is unknown are left out rather than filled with a guess.
    """
    manufacturer, model, hardware = _identity(facts)
    values: ResourceValues = {
        Device.MANUFACTURER: manufacturer,
        Device.MODEL_NUMBER: model,
        Device.FIRMWARE_VERSION: __version__,
        Device.SUPPORTED_BINDINGS: binding,
        Device.DEVICE_TYPE: DEVICE_TYPE,
        Device.SOFTWARE_VERSION: _software_version(facts),
    }
    serial = _serial_number(facts)
    if serial is not None:
        values[Device.SERIAL_NUMBER] = serial
    if hardware is not None:
        values[Device.HARDWARE_VERSION] = hardware
    if facts.mem_total_kib is not None:
        values[Device.MEMORY_TOTAL] = _kilobytes(facts.mem_total_kib)
    values.update(status_resources(facts))
    return values


def status_resources(facts: MachineFacts) -> ResourceValues:
    """The /3/0 values that change while the daemon runs: memory, errors, time and zone."""
    values: ResourceValues = {Device.ERROR_CODE: {0: NO_ERROR}, Device.CURRENT_TIME: facts.time}
    memory_free = _memory_free(facts.mem_available_kib)
    if memory_free is not None:
        values[Device.MEMORY_FREE] = memory_free
    if facts.utc_offset is not None:
        values[Device.UTC_OFFSET] = _utc_offset_text(facts.utc_offset)
    if facts.timezone is not None:
        values[Device.TIMEZONE] = facts.timezone
    return values


def connectivity_resources(facts: MachineFacts) -> ResourceValues:
    """Every /4/0 value (all of them can change, as links come and go).

    Radio Signal Strength is mandatory: on a wired bearer, or a Wi-Fi one whose radio state is
    unreadable, it is 0, and so is Link Quality. IP Addresses leave out loopback and link-local
    addresses, which a server cannot reach; Router IP Addresses keep an IPv6 router's
    link-local address (router advertisements give no other), without its zone.
    """
    link = _bearer_interface(facts)
    bearer = (None if link is None else _bearer(link)) or BEARER_ETHERNET
    available = {bearer} | {
        b for i in facts.interfaces if i.up and i.physical and (b := _bearer(i)) is not None
    }
    radio = next((w for w in facts.wireless if link is not None and w.interface == link.name), None)
    addresses = sorted(
        {a for a in facts.addresses if not (a.is_loopback or a.is_link_local)},
        key=lambda a: (a.version, int(a)),
    )
    routers = dict.fromkeys(str(r.gateway) for r in _by_preference(facts.default_routes))
    return {
        Connectivity.NETWORK_BEARER: bearer,
        Connectivity.AVAILABLE_BEARERS: dict(enumerate(sorted(available))),
        Connectivity.RADIO_SIGNAL_STRENGTH: 0 if radio is None else radio.level,
        Connectivity.LINK_QUALITY: 0 if radio is None else radio.quality,
        Connectivity.IP_ADDRESSES: dict(enumerate(str(a) for a in addresses)),
        Connectivity.ROUTER_IP_ADDRESSES: dict(enumerate(routers)),
    }


def _identity(facts: MachineFacts) -> tuple[str, str, str | None]:
    """Manufacturer, model number and hardware version: device tree, then DMI, then unknown."""
    model: str | None = None
    hardware: str | None = None
    if facts.dt_model:
        model, _, revision = facts.dt_model.partition(" Rev ")
        hardware = revision.strip() or None
    vendor: str | None = None
    if facts.dt_compatible:
        prefix = facts.dt_compatible[0].partition(",")[0]
        vendor = _DT_VENDORS.get(prefix, prefix) or None
    return (
        vendor or _dmi(facts.dmi_vendor) or UNKNOWN,
        model or _dmi(facts.dmi_product) or UNKNOWN,
        hardware or _dmi(facts.dmi_version),
    )


def _dmi(text: str | None) -> str | None:
    if text is None or text.strip().lower() in _DMI_PLACEHOLDERS:
        return None
    return text.strip()


def _serial_number(facts: MachineFacts) -> str | None:
    if facts.dt_serial:
        return facts.dt_serial
    if facts.machine_id:
        digest = hmac.new(facts.machine_id.encode(), _SERIAL_APP_ID, hashlib.sha256)
        return digest.hexdigest()[:32]
    return None


def _software_version(facts: MachineFacts) -> str:
    """What runs under the daemon (whose own version is the Firmware Version)."""
    parts = [
        facts.os_name,
        facts.kernel and f"Linux {facts.kernel}",
        facts.python_version and f"Python {facts.python_version}",
        facts.aiocoap_version and f"aiocoap {facts.aiocoap_version}",
    ]
    return ", ".join(p for p in parts if p) or UNKNOWN


def _kilobytes(kib: int) -> int:
    return kib * 1024 // 1000


def _memory_free(available_kib: int | None) -> int | None:
    """Memory Free (/3/0/10) of MemAvailable; None when unknown."""
    return None if available_kib is None else _kilobytes(available_kib)


def _utc_offset_text(seconds: int) -> str:
    """ISO 8601 offset text: 3600 is "+01:00", -12600 is "-03:30"."""
    sign = "-" if seconds < 0 else "+"
    minutes = abs(seconds) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _bearer(interface: NetInterface) -> int | None:
    if interface.wireless:
        return BEARER_WLAN
    if interface.arp_type == ARPHRD_ETHER:
        return BEARER_ETHERNET
    return None


def _by_preference(routes: tuple[DefaultRoute, ...]) -> list[DefaultRoute]:
    """IPv4 routes first (the two families' metrics are not comparable), then by metric."""
    return sorted(routes, key=lambda r: (r.gateway.version, r.metric))


def _bearer_interface(facts: MachineFacts) -> NetInterface | None:
    """The interface that carries the LwM2M traffic.

    It is the interface of the preferred default route. When that one has no bearer code (a VPN
    tunnel, a PPP link) or there is no route, the first up physical interface stands in, as the
    link the traffic most likely leaves on.
    """
    by_name = {i.name: i for i in facts.interfaces}
    for route in _by_preference(facts.default_routes):
        interface = by_name.get(route.interface)
        if interface is not None and _bearer(interface) is not None:
            return interface
    return next(
        (i for i in facts.interfaces if i.up and i.physical and _bearer(i) is not None), None
    )


# -- the tree --------------------------------------------------------------------------------


def install_device_objects(
    tree: ObjectTree,
    facts: MachineFacts,
    *,
    on_reboot: Callable[[], None],
    on_factory_reset: Callable[[], None] | None = None,
    binding: str = "U",
    machine: Callable[[], MachineFacts] | None = None,
    memory: Callable[[], int | None] | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """Create /3/0 and /4/0 from ``facts`` and route the Device's executable resources.

    Current Time is ``clock()`` when read. /4/0 comes, when read, from ``machine()``
    (``read_machine_facts`` on the gateway; by default ``facts`` again, a machine that never
    changes), and Memory Free from ``memory()``, the MemAvailable KiB
    (``read_memory_available`` on the gateway, one file rather than all the facts a Read of
    /3/0 does not need; by default ``machine()``'s), each called at most once a
    ``FACTS_MAX_AGE``. Current Time is writable by a server, but the gateway's clock is the
    system's (kept by NTP): the next read shows it again.

    ``on_reboot`` runs when a server executes /3/0/4 and ``on_factory_reset`` (when given) on
    /3/0/5. They run while the request is being answered, so they must only schedule the
    restart and return, or the server never sees its 2.04.
    """
    tree.create_instance(Device.OBJECT, 0, device_resources(facts, binding=binding).items())
    tree.create_instance(Connectivity.OBJECT, 0, connectivity_resources(facts).items())
    recent: _Recent[MachineFacts] = _Recent(machine or (lambda: facts), facts)
    available: Callable[[], int | None] = (
        _Recent(memory, facts.mem_available_kib)
        if memory is not None
        else lambda: recent().mem_available_kib
    )
    device = LwM2MPath((Device.OBJECT, 0), tree.prefix)
    tree.compute(device.child(Device.CURRENT_TIME), lambda: int(clock()))
    if tree.has(device.child(Device.MEMORY_FREE)):
        tree.compute(device.child(Device.MEMORY_FREE), lambda: _memory_free(available()))
    connectivity = LwM2MPath((Connectivity.OBJECT, 0), tree.prefix)
    for rid in connectivity_resources(facts):
        tree.compute(connectivity.child(rid), partial(_connectivity, recent, rid))
    tree.on_execute(Device.OBJECT, Device.REBOOT, lambda _path, _arguments: on_reboot())
    if on_factory_reset is not None:
        tree.on_execute(
            Device.OBJECT, Device.FACTORY_RESET, lambda _path, _arguments: on_factory_reset()
        )


T = TypeVar("T")


class _Recent(Generic[T]):
    """What ``read()`` gives, read again when asked for and older than ``FACTS_MAX_AGE``."""

    def __init__(self, read: Callable[[], T], first: T) -> None:
        self._read = read
        self._facts = first
        self._at = time.monotonic()

    def __call__(self) -> T:
        if time.monotonic() - self._at >= FACTS_MAX_AGE:
            self._facts, self._at = self._read(), time.monotonic()
        return self._facts


def _connectivity(recent: _Recent[MachineFacts], rid: int) -> Value | dict[int, Value] | None:
    return connectivity_resources(recent()).get(rid)


# -- reading the machine (I/O) ---------------------------------------------------------------


def read_machine_facts(
    root: Path = Path("/"), *, environ: Mapping[str, str] | None = None
) -> MachineFacts:
    """Read the facts from the files under ``root``; never raises for a missing or odd file.

    ``environ`` (the process environment when None) supplies TZ, the last source of the time
    zone. The Python and aiocoap versions are those of the running process, whatever the root.
    """
    now = int(time.time())
    env = os.environ if environ is None else environ
    dt = root / "proc/device-tree"
    dmi = root / "sys/class/dmi/id"
    meminfo = _meminfo(root / "proc/meminfo")
    timezone = _timezone(root, env)
    return MachineFacts(
        time=now,
        dt_model=_read_text(dt / "model"),
        dt_compatible=_read_strings(dt / "compatible"),
        dt_serial=_read_text(dt / "serial-number"),
        dmi_vendor=_read_text(dmi / "sys_vendor"),
        dmi_product=_read_text(dmi / "product_name"),
        dmi_version=_read_text(dmi / "product_version"),
        machine_id=_machine_id(root / "etc/machine-id"),
        os_name=_os_name(root),
        kernel=_read_text(root / "proc/sys/kernel/osrelease"),
        python_version=platform.python_version(),
        aiocoap_version=_package_version("aiocoap"),
        mem_total_kib=meminfo.get("MemTotal"),
        mem_available_kib=_available(meminfo),
        timezone=timezone,
        utc_offset=None if timezone is None else _utc_offset(timezone, now),
        interfaces=_interfaces(root / "sys/class/net"),
        addresses=(*_ipv4_addresses(root), *_ipv6_addresses(root)),
        default_routes=(*_ipv4_default_routes(root), *_ipv6_default_routes(root)),
        wireless=_wireless(root),
    )


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _read_text(path: Path) -> str | None:
    """A one-value file's text, without the NUL that ends device-tree strings; None if empty."""
    data = _read_bytes(path)
    if data is None:
        return None
    text = data.decode("utf-8", "replace").strip("\0 \t\r\n")
    return text or None


def _read_strings(path: Path) -> tuple[str, ...]:
    """A device-tree string list (NUL-separated)."""
    data = _read_bytes(path)
    if data is None:
        return ()
    return tuple(s for s in data.decode("utf-8", "replace").split("\0") if s.strip())


def _lines(path: Path) -> list[str]:
    text = _read_text(path)
    return [] if text is None else text.splitlines()


def _machine_id(path: Path) -> str | None:
    """The machine ID when it is one (32 hex digits; "uninitialized" on a first boot is not)."""
    text = _read_text(path)
    if text is None or len(text) != 32 or not all(c in "0123456789abcdef" for c in text):
        return None
    return text


def _os_name(root: Path) -> str | None:
    """PRETTY_NAME of os-release, from /etc or else /usr/lib as os-release(5) says."""
    for path in (root / "etc/os-release", root / "usr/lib/os-release"):
        for line in _lines(path):
            key, sep, value = line.partition("=")
            if sep and key.strip() == "PRETTY_NAME":
                return value.strip().strip("\"'") or None
    return None


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def read_memory_available(root: Path = Path("/")) -> int | None:
    """The machine's MemAvailable (MemFree on a kernel without it) in KiB, from
    /proc/meminfo under ``root`` alone: what Memory Free needs of the facts. None if unknown."""
    return _available(_meminfo(root / "proc/meminfo"))


def _available(meminfo: Mapping[str, int]) -> int | None:
    return meminfo.get("MemAvailable", meminfo.get("MemFree"))


def _meminfo(path: Path) -> dict[str, int]:
    """/proc/meminfo's "Name:  123 kB" lines as {name: KiB}; malformed lines are skipped."""
    out: dict[str, int] = {}
    for line in _lines(path):
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if sep and fields and fields[0].isdigit():
            out[name.strip()] = int(fields[0])
    return out


def _timezone(root: Path, environ: Mapping[str, str]) -> str | None:
    candidates: list[str | None] = []
    try:
        target = os.readlink(root / "etc/localtime")
    except OSError:
        pass
    else:
        candidates.append(target.partition("zoneinfo/")[2])
    candidates.append(_read_text(root / "etc/timezone"))
    candidates.append(environ.get("TZ", "").removeprefix(":"))
    return next((c for c in candidates if c and _zone(c) is not None), None)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # unknown name, not a key, unreadable data
        return None


def _utc_offset(timezone: str, now: int) -> int | None:
    zone = _zone(timezone)
    offset = None if zone is None else datetime.fromtimestamp(now, zone).utcoffset()
    return None if offset is None else int(offset.total_seconds())


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def _interfaces(base: Path) -> tuple[NetInterface, ...]:
    try:
        entries = sorted(p for p in base.iterdir() if p.is_dir())
    except OSError:
        return ()
    return tuple(
        NetInterface(
            name=d.name,
            arp_type=_read_int(d / "type"),
            wireless=os.path.exists(d / "wireless") or os.path.exists(d / "phy80211"),
            up=_read_text(d / "operstate") == "up",
            physical=os.path.exists(d / "device"),
        )
        for d in entries
    )


def _ipv4_addresses(root: Path) -> list[ipaddress.IPv4Address]:
    """The local addresses of /proc/net/fib_trie: a "|-- address" line followed by "/32 host
    LOCAL" (the other kinds below an address are broadcast and network routes)."""
    out: list[ipaddress.IPv4Address] = []
    last = ""
    for line in _lines(root / "proc/net/fib_trie"):
        text = line.strip()
        if text.startswith("|-- "):
            last = text[4:]
        elif text == "/32 host LOCAL":
            try:
                out.append(ipaddress.IPv4Address(last))
            except ValueError:
                pass
    return out


def _ipv6_addresses(root: Path) -> list[ipaddress.IPv6Address]:
    """/proc/net/if_inet6 (address, index, prefix length, scope, flags, name), leaving out
    addresses still in, or failed by, duplicate address detection: they cannot be used."""
    out: list[ipaddress.IPv6Address] = []
    for line in _lines(root / "proc/net/if_inet6"):
        fields = line.split()
        if len(fields) != 6:
            continue
        try:
            address, flags = ipaddress.IPv6Address(int(fields[0], 16)), int(fields[4], 16)
        except ValueError:
            continue
        if not flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED):
            out.append(address)
    return out


def _ipv4_default_routes(root: Path) -> list[DefaultRoute]:
    """/proc/net/route's default routes. Addresses are printed as the hex of a 32-bit host
    integer holding the address's network-order bytes, hence the host byte order."""
    out: list[DefaultRoute] = []
    for line in _lines(root / "proc/net/route")[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination, gateway, flags, mask = (int(fields[i], 16) for i in (1, 2, 3, 7))
            metric = int(fields[6])
            address = ipaddress.IPv4Address(gateway.to_bytes(4, sys.byteorder))
        except (ValueError, OverflowError):
            continue
        if destination == 0 and mask == 0 and flags & RTF_UP_GATEWAY == RTF_UP_GATEWAY:
            out.append(DefaultRoute(fields[0], address, metric))
    return out


def _ipv6_default_routes(root: Path) -> list[DefaultRoute]:
    """/proc/net/ipv6_route's default routes (destination, its prefix length, source, its
    prefix length, next hop, metric, reference count, use, flags, interface; all hex)."""
    out: list[DefaultRoute] = []
    for line in _lines(root / "proc/net/ipv6_route"):
        fields = line.split()
        if len(fields) != 10:
            continue
        try:
            prefix_length, metric, flags = (int(fields[i], 16) for i in (1, 5, 8))
            gateway = ipaddress.IPv6Address(int(fields[4], 16))
        except ValueError:
            continue
        if prefix_length == 0 and flags & RTF_UP_GATEWAY == RTF_UP_GATEWAY:
            out.append(DefaultRoute(fields[9], gateway, metric))
    return out


def _wireless(root: Path) -> tuple[WirelessLink, ...]:
    """/proc/net/wireless: two header lines, then "name: status link level noise ..." with
    numbers written like "70." and the level in dBm."""
    out: list[WirelessLink] = []
    for line in _lines(root / "proc/net/wireless")[2:]:
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or len(fields) < 3:
            continue
        try:
            quality, level = int(float(fields[1])), int(float(fields[2]))
        except (ValueError, OverflowError):
            continue
        out.append(WirelessLink(name.strip(), quality, level))
    return tuple(out)
