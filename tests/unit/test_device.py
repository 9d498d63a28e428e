"""The gateway's /3 Device and /4 Connectivity Monitoring objects, from fake machine roots."""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import pytest

from bridged import __version__
from bridged.engine import device
from bridged.engine.device import (
    BEARER_ETHERNET,
    BEARER_WLAN,
    DefaultRoute,
    MachineFacts,
    NetInterface,
    WirelessLink,
    connectivity_resources,
    device_resources,
    install_device_objects,
    read_machine_facts,
    read_memory_available,
)
from bridged.objects.builtin import builtin_definitions
from bridged.objects.paths import Path as LwM2MPath
from bridged.objects.tree import ObjectTree

MACHINE_ID = "0123456789abcdef0123456789abcdef"
GARBAGE = b"\xff\xfe garbage: 1 2 3 4 5 6 7 8 9 10 zz.\n|-- x\n/32 host LOCAL\n" * 3
MEMINFO = "MemTotal:        3884096 kB\nMemFree:          201000 kB\nMemAvailable:    2000000 kB\n"


def write(root: Path, name: str, content: str | bytes) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def route_hex(address: str) -> str:
    """An IPv4 address as /proc/net/route prints it (a host-order 32-bit integer)."""
    return f"{int.from_bytes(ipaddress.IPv4Address(address).packed, sys.byteorder):08X}"


def route_file(*rows: tuple[str, str, str, str, int, str]) -> str:
    """/proc/net/route with rows of (interface, destination, gateway, flags, metric, mask)."""
    header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    lines = [
        f"{i}\t{route_hex(d)}\t{route_hex(g)}\t{f}\t0\t0\t{m}\t{route_hex(k)}\t0\t0\t0\n"
        for i, d, g, f, m, k in rows
    ]
    return header + "".join(lines)


def fib_trie(*local: str) -> str:
    """/proc/net/fib_trie with loopback, the given local addresses, and broadcast entries."""
    body = "".join(
        f"     +-- {a}/24 2 0 2\n        |-- {a}\n           /32 host LOCAL\n"
        f"        |-- {a.rsplit('.', 1)[0]}.255\n           /32 link BROADCAST\n"
        for a in local
    )
    table = (
        "  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n"
        "     +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.0\n           /8 host LOCAL\n"
        "        |-- 127.0.0.1\n           /32 host LOCAL\n" + body
    )
    return f"Main:\n{table}Local:\n{table}"


def net_interface(
    root: Path,
    name: str,
    *,
    arp_type: int = 1,
    up: bool = True,
    physical: bool = True,
    wireless: bool = False,
) -> None:
    base = root / "sys/class/net" / name
    write(root, f"sys/class/net/{name}/type", f"{arp_type}\n")
    write(root, f"sys/class/net/{name}/operstate", "up\n" if up else "down\n")
    if physical:
        (base / "device").mkdir()
    if wireless:
        (base / "wireless").mkdir()


@pytest.fixture
def pi_root(tmp_path: Path) -> Path:
    """A Raspberry Pi on Wi-Fi, with Ethernet also up."""
    write(tmp_path, "proc/device-tree/model", b"Raspberry Pi 4 Model B Rev 1.4\0")
    write(tmp_path, "proc/device-tree/compatible", b"raspberrypi,4-model-b\0brcm,bcm2711\0")
    write(tmp_path, "proc/device-tree/serial-number", b"10000000abcdef12\0")
    write(tmp_path, "etc/machine-id", MACHINE_ID + "\n")
    write(tmp_path, "usr/lib/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    write(tmp_path, "proc/sys/kernel/osrelease", "6.6.51+rpt-rpi-v8\n")
    write(tmp_path, "proc/meminfo", MEMINFO)
    write(tmp_path, "etc/timezone", "Europe/Berlin\n")
    net_interface(tmp_path, "lo", arp_type=772, up=False, physical=False)
    net_interface(tmp_path, "eth0")
    net_interface(tmp_path, "wlan0", wireless=True)
    write(
        tmp_path,
        "proc/net/route",
        route_file(
            ("wlan0", "0.0.0.0", "192.168.1.1", "0003", 600, "0.0.0.0"),
            ("wlan0", "192.168.1.0", "0.0.0.0", "0001", 600, "255.255.255.0"),
            ("eth0", "0.0.0.0", "10.0.0.1", "0003", 700, "0.0.0.0"),
        ),
    )
    write(tmp_path, "proc/net/fib_trie", fib_trie("192.168.1.23", "10.0.0.5"))
    write(
        tmp_path,
        "proc/net/if_inet6",
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "fe80000000000000021122fffe334455 03 40 20 80    wlan0\n"
        "20010db8000000000000000000000023 03 40 00 00    wlan0\n"
        "20010db8000000000000000000000099 03 40 00 40    wlan0\n",
    )
    write(
        tmp_path,
        "proc/net/ipv6_route",
        "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
        "fe800000000000000000000000000001 00000400 00000001 00000000 00000003    wlan0\n"
        "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
        "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n",
    )
    write(
        tmp_path,
        "proc/net/wireless",
        "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n"
        " face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n"
        " wlan0: 0000   58.  -52.  -256        0      0      0      0      0        0\n",
    )
    return tmp_path


@pytest.fixture
def pc_root(tmp_path: Path) -> Path:
    """A PC on Ethernet: DMI, a machine ID, and a zone from the /etc/localtime symlink."""
    write(tmp_path, "sys/class/dmi/id/sys_vendor", "LENOVO\n")
    write(tmp_path, "sys/class/dmi/id/product_name", "ThinkCentre M720q\n")
    write(tmp_path, "sys/class/dmi/id/product_version", "To Be Filled By O.E.M.\n")
    write(tmp_path, "etc/machine-id", MACHINE_ID + "\n")
    write(tmp_path, "proc/meminfo", MEMINFO)
    (tmp_path / "etc/localtime").symlink_to("../usr/share/zoneinfo/America/St_Johns")
    net_interface(tmp_path, "enp1s0")
    net_interface(tmp_path, "docker0", physical=False)
    write(tmp_path, "sys/class/net/bonding_masters", "\n")
    write(
        tmp_path,
        "proc/net/route",
        route_file(("enp1s0", "0.0.0.0", "192.0.2.1", "0003", 100, "0.0.0.0")),
    )
    write(tmp_path, "proc/net/fib_trie", fib_trie("192.0.2.10", "172.17.0.1"))
    return tmp_path


def tree_with(
    facts: MachineFacts,
    calls: list[str] | None = None,
    *,
    binding: str = "U",
    factory_reset: bool = False,
) -> ObjectTree:
    """A tree holding the gateway's objects; executed callbacks are recorded in ``calls``."""
    tree = ObjectTree(builtin_definitions())
    record = [] if calls is None else calls
    install_device_objects(
        tree,
        facts,
        on_reboot=lambda: record.append("reboot"),
        on_factory_reset=(lambda: record.append("factory reset")) if factory_reset else None,
        binding=binding,
    )
    return tree


def value(tree: ObjectTree, text: str) -> object:
    return tree.get(LwM2MPath.parse(text))


def test_firmware_version_is_the_changelog_version() -> None:
    """/3/0/3 has one source, the top entry of packaging/debian/changelog (setup.py), which the
    .deb's Version and ``bridged --version`` show too (tests/packaging/test_deb.py bumps it)."""
    changelog = Path(__file__).parents[2] / "packaging" / "debian" / "changelog"
    latest = re.findall(r"^bridged \(([^)]*)\)", changelog.read_text(), re.MULTILINE)[0]
    assert device_resources(MachineFacts(time=0))[3] == __version__ == latest


def test_raspberry_pi_device(pi_root: Path) -> None:
    facts = read_machine_facts(pi_root, environ={"TZ": "Asia/Tokyo"})
    tree = tree_with(facts)
    offset = datetime.fromtimestamp(facts.time, ZoneInfo("Europe/Berlin")).utcoffset()
    assert offset is not None
    hours = int(offset.total_seconds()) // 3600
    assert value(tree, "/3/0/0") == "Raspberry Pi Ltd"
    assert value(tree, "/3/0/1") == "Raspberry Pi 4 Model B"
    assert value(tree, "/3/0/2") == "10000000abcdef12"
    assert value(tree, "/3/0/3") == __version__
    assert value(tree, "/3/0/10") == 2000000 * 1024 // 1000
    assert value(tree, "/3/0/11") == {0: 0}
    # the current time is the clock's at the read: a second may turn after the facts were read
    assert facts.time <= cast(int, value(tree, "/3/0/13")) <= time.time()
    assert value(tree, "/3/0/14") == f"+{hours:02d}:00"
    assert value(tree, "/3/0/15") == "Europe/Berlin"
    assert value(tree, "/3/0/16") == "U"
    assert value(tree, "/3/0/17") == "gateway"
    assert value(tree, "/3/0/18") == "1.4"
    software = value(tree, "/3/0/19")
    assert isinstance(software, str)
    assert software.startswith("Debian GNU/Linux 12 (bookworm), Linux 6.6.51+rpt-rpi-v8, Python ")
    assert value(tree, "/3/0/21") == 3884096 * 1024 // 1000


def test_raspberry_pi_connectivity(pi_root: Path) -> None:
    tree = tree_with(read_machine_facts(pi_root, environ={}))
    assert value(tree, "/4/0/0") == BEARER_WLAN
    assert value(tree, "/4/0/1") == {0: BEARER_WLAN, 1: BEARER_ETHERNET}
    assert value(tree, "/4/0/2") == -52
    assert value(tree, "/4/0/3") == 58
    # Loopback, link-local and tentative addresses are left out; each address once.
    assert value(tree, "/4/0/4") == {0: "10.0.0.5", 1: "192.168.1.23", 2: "2001:db8::23"}
    assert value(tree, "/4/0/5") == {0: "192.168.1.1", 1: "10.0.0.1", 2: "fe80::1"}


def test_pc_with_dmi(pc_root: Path) -> None:
    facts = read_machine_facts(pc_root, environ={"TZ": "Asia/Tokyo"})
    tree = tree_with(facts, binding="UQ")
    assert value(tree, "/3/0/0") == "LENOVO"
    assert value(tree, "/3/0/1") == "ThinkCentre M720q"
    serial = value(tree, "/3/0/2")
    assert isinstance(serial, str) and len(serial) == 32
    assert MACHINE_ID not in serial and serial[:8] not in MACHINE_ID
    assert not tree.has(LwM2MPath.parse("/3/0/18"))  # a DMI placeholder is no version
    assert value(tree, "/3/0/15") == "America/St_Johns"
    assert value(tree, "/3/0/14") in ("-03:30", "-02:30")
    assert value(tree, "/3/0/16") == "UQ"
    assert value(tree, "/4/0/0") == BEARER_ETHERNET
    assert value(tree, "/4/0/1") == {0: BEARER_ETHERNET}  # docker0 is no device
    assert value(tree, "/4/0/2") == 0
    assert value(tree, "/4/0/4") == {0: "172.17.0.1", 1: "192.0.2.10"}
    assert value(tree, "/4/0/5") == {0: "192.0.2.1"}


def test_empty_root_falls_back(tmp_path: Path) -> None:
    facts = read_machine_facts(tmp_path, environ={})
    tree = tree_with(facts)
    assert value(tree, "/3/0/0") == "unknown"
    assert value(tree, "/3/0/1") == "unknown"
    assert value(tree, "/3/0/3") == __version__
    assert value(tree, "/3/0/11") == {0: 0}
    for rid in (2, 10, 14, 15, 18, 21):
        assert not tree.has(LwM2MPath((3, 0, rid)))
    assert value(tree, "/4/0/0") == BEARER_ETHERNET
    assert value(tree, "/4/0/1") == {0: BEARER_ETHERNET}
    assert value(tree, "/4/0/2") == 0
    assert value(tree, "/4/0/4") == {}
    assert value(tree, "/4/0/5") == {}


def test_timezone_from_tz_when_no_file(tmp_path: Path) -> None:
    assert read_machine_facts(tmp_path, environ={"TZ": ":Asia/Tokyo"}).timezone == "Asia/Tokyo"
    assert read_machine_facts(tmp_path, environ={"TZ": "CET-1CEST"}).timezone is None
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/localtime").symlink_to("/usr/share/zoneinfo/Not/AZone")
    write(tmp_path, "etc/timezone", "Asia/Kolkata\n")
    facts = read_machine_facts(tmp_path, environ={})
    assert (facts.timezone, facts.utc_offset) == ("Asia/Kolkata", 19800)


def test_garbage_files_do_not_raise(pi_root: Path) -> None:
    for name in (
        "proc/meminfo",
        "proc/net/route",
        "proc/net/fib_trie",
        "proc/net/if_inet6",
        "proc/net/ipv6_route",
        "proc/net/wireless",
        "etc/machine-id",
        "sys/class/net/eth0/type",
    ):
        write(pi_root, name, GARBAGE)
    (pi_root / "etc/timezone").unlink()
    (pi_root / "etc/timezone").mkdir()
    facts = read_machine_facts(pi_root, environ={"TZ": "../../etc/passwd"})
    assert facts.mem_total_kib is None and facts.machine_id is None and facts.timezone is None
    assert facts.addresses == () and facts.default_routes == ()
    tree_with(facts)


def test_reboot_and_factory_reset_execute_callbacks(tmp_path: Path) -> None:
    calls: list[str] = []
    tree = tree_with(read_machine_facts(tmp_path, environ={}), calls, factory_reset=True)
    tree.execute(LwM2MPath.parse("/3/0/4"))
    assert calls == ["reboot"]
    tree.execute(LwM2MPath.parse("/3/0/5"), "ignored")
    assert calls == ["reboot", "factory reset"]


def test_server_reads_the_whole_device() -> None:
    facts = MachineFacts(time=1_700_000_000, dt_model="Raspberry Pi 5 Model B Rev 1.0")
    tree = tree_with(facts)
    paths = {str(r.path) for r in tree.read(LwM2MPath.parse("/3/0"))}
    assert {"/3/0/0", "/3/0/1", "/3/0/11/0", "/3/0/13", "/3/0/16", "/3/0/18"} <= paths


def test_changing_values_are_computed_when_read_and_report_no_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(device, "FACTS_MAX_AGE", 0.0)
    wlan = NetInterface("wlan0", arp_type=1, wireless=True, up=True, physical=True)
    eth = NetInterface("eth0", arp_type=1, up=True, physical=True)
    before = MachineFacts(
        time=1_700_000_000,
        mem_total_kib=1000,
        mem_available_kib=500,
        interfaces=(wlan,),
        addresses=(ipaddress.IPv4Address("192.168.1.23"),),
        default_routes=(DefaultRoute("wlan0", ipaddress.IPv4Address("192.168.1.1")),),
        wireless=(WirelessLink("wlan0", 58, -52),),
    )
    machine = [before]
    tree = ObjectTree(builtin_definitions())
    install_device_objects(tree, before, on_reboot=lambda: None, machine=lambda: machine[0])
    changed: list[str] = []
    tree.subscribe(lambda path: changed.append(str(path)))
    assert value(tree, "/4/0/0") == BEARER_WLAN
    machine[0] = MachineFacts(
        time=1_700_000_010,
        mem_total_kib=1000,
        mem_available_kib=400,
        interfaces=(eth, wlan),
        addresses=(ipaddress.IPv4Address("10.0.0.5"),),
        default_routes=(DefaultRoute("eth0", ipaddress.IPv4Address("10.0.0.1")),),
    )
    assert value(tree, "/3/0/10") == 409
    assert value(tree, "/4/0/0") == BEARER_ETHERNET
    assert value(tree, "/4/0/1") == {0: BEARER_WLAN, 1: BEARER_ETHERNET}
    assert value(tree, "/4/0/4") == {0: "10.0.0.5"}
    assert (value(tree, "/4/0/2"), value(tree, "/4/0/3")) == (0, 0)
    records = {str(r.path): r.value for r in tree.read(LwM2MPath.parse("/4/0"))}
    assert records["/4/0/5/0"] == "10.0.0.1"
    assert changed == [], "a computed value changes all the time: no change is reported"


def test_the_machine_is_read_once_per_facts_max_age() -> None:
    facts = MachineFacts(time=1_700_000_000, mem_available_kib=500)
    reads: list[int] = []
    tree = ObjectTree(builtin_definitions())

    def machine() -> MachineFacts:
        reads.append(1)
        return facts

    install_device_objects(tree, facts, on_reboot=lambda: None, machine=machine)
    tree.read(LwM2MPath.parse("/4/0"))
    tree.read(LwM2MPath.parse("/3/0"))
    assert len(reads) <= 1


def test_memory_free_is_read_from_meminfo_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Read of /3/0 reads /proc/meminfo for Memory Free, not every fact of the machine
    (interfaces, routes, addresses: /4/0's), which cost a Read of /3/0 most of a millisecond
    each FACTS_MAX_AGE."""
    monkeypatch.setattr(device, "FACTS_MAX_AGE", 0.0)
    write(tmp_path, "proc/meminfo", MEMINFO)
    assert read_memory_available(tmp_path) == 2000000
    facts = MachineFacts(time=1_700_000_000, mem_available_kib=500)
    machine_reads: list[int] = []

    def machine() -> MachineFacts:
        machine_reads.append(1)
        return facts

    tree = ObjectTree(builtin_definitions())
    install_device_objects(
        tree,
        facts,
        on_reboot=lambda: None,
        machine=machine,
        memory=lambda: read_memory_available(tmp_path),
    )
    assert value(tree, "/3/0/10") == 2000000 * 1024 // 1000
    write(tmp_path, "proc/meminfo", MEMINFO.replace("2000000", "1000000"))
    records = {str(r.path): r.value for r in tree.read(LwM2MPath.parse("/3/0"))}
    assert records["/3/0/10"] == 1000000 * 1024 // 1000
    assert machine_reads == []
    write(tmp_path, "proc/meminfo", "MemTotal: 1 kB\nMemFree: 7 kB\n")  # an old kernel's
    assert read_memory_available(tmp_path) == 7
    assert value(tree, "/3/0/10") == 7 * 1024 // 1000
    write(tmp_path, "proc/meminfo", GARBAGE)
    assert read_memory_available(tmp_path) is None
    assert value(tree, "/3/0/10") == 7 * 1024 // 1000, "unknown: the last value stays"


def test_current_time_is_the_clock_even_after_a_server_write() -> None:
    now = [1_700_000_000.5]
    tree = ObjectTree(builtin_definitions())
    facts = MachineFacts(time=1)
    install_device_objects(tree, facts, on_reboot=lambda: None, clock=lambda: now[0])
    assert value(tree, "/3/0/13") == 1_700_000_000
    tree.set(LwM2MPath.parse("/3/0/13"), 5)
    now[0] += 60
    assert value(tree, "/3/0/13") == 1_700_000_060


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "+00:00"), (3600, "+01:00"), (19800, "+05:30"), (-12600, "-03:30"), (-36000, "-10:00")],
)
def test_utc_offset_text(seconds: int, text: str) -> None:
    assert device_resources(MachineFacts(time=0, utc_offset=seconds))[14] == text


def test_a_tunnel_default_route_reports_the_link_under_it() -> None:
    facts = MachineFacts(
        time=0,
        interfaces=(
            NetInterface("tun0", arp_type=65534, up=True),
            NetInterface("wlan0", arp_type=1, wireless=True, up=True, physical=True),
        ),
        default_routes=(DefaultRoute("tun0", ipaddress.IPv4Address("10.8.0.1")),),
        wireless=(WirelessLink("wlan0", 40, -70),),
    )
    values = connectivity_resources(facts)
    assert (values[0], values[2], values[3]) == (BEARER_WLAN, -70, 40)
    assert values[5] == {0: "10.8.0.1"}


def test_device_tree_board_of_another_vendor() -> None:
    facts = MachineFacts(
        time=0,
        dt_model="FriendlyElec NanoPi R4S",
        dt_compatible=("friendlyarm,nanopi-r4s", "rockchip,rk3399"),
        dmi_vendor="ignored",
    )
    values = device_resources(facts)
    assert (values[0], values[1]) == ("friendlyarm", "FriendlyElec NanoPi R4S")
    assert 18 not in values


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="needs a Linux /proc")
def test_the_real_machine() -> None:
    tree = tree_with(read_machine_facts())
    total = value(tree, "/3/0/21")
    assert isinstance(total, int) and total > 0
