"""The real daemon among emulated radios: what ``make demo`` and the daemon's radio tests share.

A `World` is the gateway's surroundings in one place:

* the RCP emulator (`emulators.rcp`) on a pty, with emulated 802.15.4 LwM2M nodes on its air
  (`emulators.lwm2m_node`), added with ``add_node``;
* where dbus-daemon is installed and asked for, BlueZ on a private bus (`emulators.bluez`) with
  one adapter, ``hci0``, on which ``advertise_bthome`` and ``advertise_ruuvi`` put adverts;
* the ``bridged`` daemon itself, a subprocess started by ``start_daemon`` with a configuration
  written for those radios, its state and runtime directories and its log in the work dir;
  `Daemon.ctl` runs ``bridgectl`` against its control socket.

The caller owns the LwM2M server and the work dir; leaving the ``async with`` stops everything
else: the daemon (killed if it still runs), the nodes, bluetoothd, dbus-daemon and the pty.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from bridged.engine.registration import RetryPolicy
from bridged.transports.ble import bthome, ruuvi
from bridged.trial import bridgectl

from .bluez import BluezEmulator, dbus_daemon_missing, private_bus
from .lwm2m_node import EmulatedNode, RadioAir
from .rcp import RcpEmulator

PAN = 0xFACE
ADAPTER = "hci0"
START_TIMEOUT = 30.0
"""Generous: the daemon is a Python process started on a loaded 2-core machine."""

NODE_RETRY = RetryPolicy(count=1, timer=0.3, sequence_delay=0.3, sequence_count=1)
"""The emulated nodes retry a refused Register every ~0.6 s rather than back off for long, so
that a node let in (permit-join, pair) gets in at once; a real node backs off further."""


def node_eui64(index: int) -> bytes:
    """The EUI-64 of emulated node ``index`` (a TI OUI, as a CC2538 node would have)."""
    return bytes.fromhex(f"00124b00000300{index:02x}")


def node_id(node: EmulatedNode) -> str:
    """The node's id as bridgectl takes it: ``802154:<EUI-64>``."""
    return f"802154:{node.eui64.hex()}"


def ble_unavailable() -> str | None:
    """Why BLE adverts cannot be emulated here (None: they can)."""
    missing = dbus_daemon_missing()
    if missing is not None:
        return missing
    try:
        import dbusmock  # noqa: F401
    except ImportError:
        return "python-dbusmock is not installed (pip install -e '.[test]')"
    return None


def ruuvi_rawv2(
    temperature: float, humidity: float, pressure: float, sequence: int, mac: str
) -> bytes:
    """Ruuvi RAWv2 manufacturer data (without the company ID) as a RuuviTag sends it: °C, %RH,
    hPa; acceleration, battery and TX power fixed."""
    fields = struct.pack(
        ">BhHHhhhHBH",
        ruuvi.FORMAT,
        round(temperature / 0.005),
        round(humidity / 0.0025),
        round(pressure * 100) - 50_000,
        0,
        0,
        1000,
        ((2900 - 1600) << 5) | ((4 + 40) // 2),
        0,
        sequence & 0xFFFF,
    )
    return fields + bytes.fromhex(mac.replace(":", ""))


@dataclass
class Daemon:
    """A running ``bridged`` subprocess."""

    proc: asyncio.subprocess.Process
    socket: Path
    log: Path

    async def ctl(self, *args: str, timeout: float = 30.0) -> tuple[int, str, str]:
        """Run ``bridgectl ARGS`` against this daemon: exit status, stdout, stderr."""
        return await bridgectl(self.socket, *args, timeout=timeout)

    async def ctl_json(self, *args: str) -> Any:
        """``bridgectl --json ARGS``, decoded; RuntimeError with its message when it fails."""
        code, out, err = await self.ctl("--json", *args)
        if code != 0:
            raise RuntimeError(f"bridgectl {' '.join(args)}: exit {code}: {err.strip()}")
        return json.loads(out)

    async def upstream(self, node: str, local: str, timeout: float = START_TIMEOUT) -> str:
        """The upstream path of ``node``'s ``local`` path, once ``node show`` shows it."""
        async with asyncio.timeout(timeout):
            while True:
                shown = await self.ctl_json("node", "show", node)
                found = [v["upstream"] for v in shown["values"] if v["path"] == local]
                if found and found[0]:
                    return str(found[0])
                await asyncio.sleep(0.1)

    async def ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the control socket answers (the daemon is up)."""
        async with asyncio.timeout(timeout):
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"bridged exited with {self.proc.returncode}")
                code, _, _ = await self.ctl("status")
                if code == 0:
                    return
                await asyncio.sleep(0.1)

    async def stop(self, timeout: float = START_TIMEOUT) -> int:
        """SIGTERM (the daemon de-registers and flushes), then its exit status; killed if it
        does not exit within ``timeout``."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        assert self.proc.returncode is not None
        return self.proc.returncode


class World:
    """The emulated radios and the daemon among them (see the module docstring)."""

    def __init__(self, workdir: Path, *, ble: bool = False, radio_options: str = "") -> None:
        self.workdir = workdir
        self.want_ble = ble
        self.radio_options = radio_options
        """More lines of the daemon's ``[transport.802154]`` table (e.g. its network key)."""
        self.rcp = RcpEmulator(workdir / "ttyRCP")
        self.air: RadioAir | None = None
        self.bluez: BluezEmulator | None = None
        self.bus: str | None = None
        self.daemon: Daemon | None = None
        self.nodes: list[EmulatedNode] = []
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> World:
        try:
            await self._stack.enter_async_context(self.rcp)
            self.air = RadioAir(self.rcp, PAN)
            self._stack.push_async_callback(self._stop_nodes)
            if self.want_ble:
                await self._start_ble()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _start_ble(self) -> None:
        bus_dir = self.workdir / "dbus"
        bus_dir.mkdir()
        self.bus = self._stack.enter_context(private_bus(bus_dir))
        bluez = BluezEmulator(self.bus, self.workdir)
        await bluez.start()
        self._stack.push_async_callback(bluez.stop)
        await bluez.add_adapter(ADAPTER, monitor=False)
        self.bluez = bluez

    async def _stop_nodes(self) -> None:
        for node in self.nodes:
            await node.stop(deregister=False)

    # -- the daemon ----------------------------------------------------------------------------

    def config(
        self,
        server_uri: str,
        *,
        endpoint: str,
        level: str = "info",
        gateway: str = "",
        radio: str = "",
        nodes: str = "",
        ble: str = "",
        more_servers: Sequence[str] = (),
    ) -> str:
        """The daemon's configuration: the server, the radios of this world, dirs in workdir;
        ``gateway``, ``radio`` and ``nodes``, more lines of its [gateway], [transport.802154]
        and [nodes] tables (``exposure = "gateway"``, ``awake_window = 2``,
        ``firmware_timeout = 60``); ``ble``, more lines of its [transport.ble] table
        (``firmware_timeout = 3``); ``more_servers``, the URIs of more servers it registers
        with (Short Server IDs 2, 3...)."""
        ble = f'\n[transport.ble]\nadapter = "{ADAPTER}"\n{ble}\n' if self.bluez is not None else ""
        more = "".join(
            f'\n[[server]]\nuri = "{uri}"\nshort_server_id = {i}\nrequest_timeout = 5\n'
            "retry_timer = 0.2\nretry_sequence_delay = 1\n"
            for i, uri in enumerate(more_servers, start=2)
        )
        return f"""[gateway]
endpoint = "{endpoint}"
state_dir = "{self.workdir / "state"}"
runtime_dir = "{self.workdir / "run"}"
bind_address = "127.0.0.1"
{gateway}

[[server]]
uri = "{server_uri}"
lifetime = 120
request_timeout = 5
retry_timer = 0.2
retry_sequence_delay = 1
{more}
[log]
level = "{level}"

[nodes]
{nodes}

[transport.802154]
port = "{self.rcp.link}"
pan_id = {PAN}
request_timeout = 5
{self.radio_options}
{radio}
{ble}"""

    async def start_daemon(
        self,
        server_uri: str,
        *,
        endpoint: str,
        more_servers: Sequence[str] = (),
        radio_up: bool = True,
        **options: str,
    ) -> Daemon:
        """Start ``bridged`` for this world (``options`` as ``config`` takes them) and wait until
        its control socket answers and (``radio_up``) its 802.15.4 radio is up. Stopped (killed
        if still running) when the world closes."""
        path = self.workdir / "bridged.toml"
        path.write_text(
            self.config(server_uri, endpoint=endpoint, more_servers=more_servers, **options)
        )
        env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "NOTIFY_SOCKET")}
        if self.bus is not None:
            env["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus
        log = self.workdir / "bridged.log"
        with log.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bridged.daemon",
                "--config",
                str(path),
                env=env,
                start_new_session=True,  # Ctrl-C reaches the caller, which stops it in order
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
            )
        daemon = Daemon(proc, self.workdir / "run" / "control.sock", log)
        self._stack.push_async_callback(self._kill, proc)
        self.daemon = daemon
        await daemon.ready()
        if radio_up:
            await self.rcp.wait_until(lambda: self.rcp.raw_stream, timeout=START_TIMEOUT)
        return daemon

    @staticmethod
    async def _kill(proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    # -- the nodes -----------------------------------------------------------------------------

    async def add_node(
        self, index: int, name: str, *, link_key: bytes | None = None, **kwargs: Any
    ) -> EmulatedNode:
        """An 802.15.4 node on the air: it starts registering with the gateway at once, its
        frames secured with ``link_key`` if it has one."""
        assert self.air is not None
        kwargs.setdefault("retry", NODE_RETRY)
        node = EmulatedNode(node_eui64(index), name, **kwargs)
        self.nodes.append(node)
        await self.air.add(node, key=link_key)
        return node

    async def advertise_bthome(
        self, address: str, name: str, packet: int, temperature: float, humidity: float
    ) -> bool:
        """One BTHome v2 advert (plain): packet id, battery, temperature, humidity."""
        assert self.bluez is not None
        objects: list[tuple[int, bthome.ObjectValue]] = [
            (0x00, packet & 0xFF),
            (0x01, 87),
            (0x02, temperature),
            (0x03, humidity),
        ]
        data = bthome.encode(objects)
        return await self.bluez.advertise(
            address, name=name, rssi=-58, service_data={"fcd2": data}, adapter=ADAPTER
        )

    async def advertise_ruuvi(
        self, address: str, sequence: int, temperature: float, humidity: float, pressure: float
    ) -> bool:
        """One RuuviTag RAWv2 advert."""
        assert self.bluez is not None
        data = ruuvi_rawv2(temperature, humidity, pressure, sequence, address)
        return await self.bluez.advertise(
            address,
            name=f"Ruuvi {address[-5:].replace(':', '')}",
            rssi=-71,
            manufacturer_data={ruuvi.COMPANY_ID: data},
            adapter=ADAPTER,
        )
