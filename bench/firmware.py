"""Firmware transfer to an 802.15.4 node: bytes/s over the emulated radio against the air's
rate, and the gateway's CPU time per transferred kB.

The real daemon (a process of its own, so its CPU time is its own) drives the RCP emulator on a
pty (tests/emulators/rcp.py) with an emulated LwM2M node on its air (tests/emulators/
lwm2m_node.py), which pulls the image from the gateway over 6LoWPAN (coap:// Block2, at its own
pace) or has it pushed (Block1). The in-repo LwM2M server (tests/peers/lwm2m_server.py) is
there for the daemon to register with. Each run is ``bridgectl node update NODE FILE``; the
transfer is timed from the gateway's first frame to the node once it took the file (nothing
goes on the air during the upload from bridgectl) to the node holding the whole image (its own
/5 Downloaded), so it counts the gateway's reads of the node's /5/0/9 and /5/0/8 first too.

The RCP emulator does **not** model airtime: a frame is "on the air" as soon as the host's
Spinel request is read from the pty, and a node's answer is injected at once. So the measured
rate is what the host side (daemon, serial line, 6LoWPAN, CoAP) and the emulated node manage
with no radio in the way, and the air's limit is computed from the frames the transfer really
put on the air, both ways: each at 250 kbit/s (O-QPSK, 32 us a byte, 6 bytes of preamble, SFD
and PHR), after a mean CSMA-CA backoff (3.5 unit periods of 320 us, a CCA of 128 us and the
192 us turnaround), with its ACK (192 us turnaround and an 11-byte ACK frame) when it asks
for one, and the interframe spacing (640 us after a frame over 18 bytes, 192 us otherwise):
the figures bench/radio.py's 145 frames/s of 127 bytes come from. ``air`` is the image's bytes
over that time: what a real radio would allow with this same traffic and nothing else on the
channel, the ceiling; ``of air`` is the measured rate against it.

Left out: retransmissions and lost frames (the emulated air loses none), other traffic on the
channel, the node's own processing and flash-writing time, link-layer security (off here), and
the bytes the daemon takes from bridgectl before the transfer (a local socket).

    .venv/bin/python bench/firmware.py [--sizes 8192,32768] [--deliveries pull,push]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path as FilePath

HERE = FilePath(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "tests"))

from emulators.lwm2m_node import EmulatedNode  # noqa: E402
from emulators.mcuboot import image  # noqa: E402
from emulators.rcp import ack_request_and_destination  # noqa: E402
from emulators.world import World, node_eui64  # noqa: E402

from peers.lwm2m_server import LwM2MTestServer  # noqa: E402

INDEX = 7
NODE = f"802154:{node_eui64(INDEX).hex()}"
DELIVERY = {"pull": 0, "push": 1}
"""The node's /5/0/9 Delivery Method for each way the image reaches it."""
DOWNLOADED = 2
TIMEOUT = 120.0
"""Seconds a transfer may take before the run is given up."""

US_PER_BYTE = 32.0
"""250 kbit/s."""
PHY_HEADER = 6
"""Preamble (4), SFD (1), PHR (1)."""
CSMA_US = 3.5 * 320 + 128 + 192
"""A mean initial backoff (macMinBE 3), the CCA, the RX-to-TX turnaround."""
ACK_US = 192 + (PHY_HEADER + 5) * US_PER_BYTE
"""The turnaround and the ACK frame."""
LIFS_US, SIFS_US, MAX_SIFS_FRAME = 640, 192, 18


def airtime_us(psdu: bytes) -> float:
    """The time ``psdu`` keeps a 250 kbit/s channel busy (the module docstring's model)."""
    acked, _ = ack_request_and_destination(psdu)
    ifs = LIFS_US if len(psdu) > MAX_SIFS_FRAME else SIFS_US
    return CSMA_US + (PHY_HEADER + len(psdu)) * US_PER_BYTE + (ACK_US if acked else 0) + ifs


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid``."""
    fields = FilePath(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    delivery: str
    size: int
    seconds: float
    cpu: float
    frames: int
    air_seconds: float

    @property
    def rate(self) -> float:
        return self.size / self.seconds

    @property
    def air_rate(self) -> float:
        return self.size / self.air_seconds


class FirstFrame:
    """When the gateway transmits its first frame from now on, and the daemon's CPU time then:
    the start of the transfer, taken as it happens (bridgectl's events come later). Nothing
    goes on the air while bridgectl uploads the file to the daemon."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start: float | None = None
        self.cpu = 0.0
        self._inner: Callable[[bytes], None] | None = None

    def wrap(self, inner: Callable[[bytes], None]) -> Callable[[bytes], None]:
        self._inner = inner

        def on_transmit(psdu: bytes) -> None:
            if self.start is None:
                self.start, self.cpu = time.monotonic(), cpu_seconds(self.pid)
            inner(psdu)

        return on_transmit

    def unwrap(self) -> Callable[[bytes], None]:
        assert self._inner is not None
        return self._inner


def frames_on_air(world: World) -> list[bytes]:
    """Every PSDU so far: the gateway's transmits and what the nodes put on the air."""
    assert world.air is not None
    return [s.psdu for s in world.rcp.sent] + [
        p for sent in world.air.injected.values() for p in sent
    ]


async def transfer(
    world: World, pid: int, node: EmulatedNode, delivery: str, size: int, workdir: FilePath
) -> Run:
    """One ``bridgectl node update`` of a ``size``-byte image, timed (module docstring)."""
    before = len(frames_on_air(world))
    first = FirstFrame(pid)
    world.rcp.on_transmit = first.wrap(world.rcp.on_transmit)
    package = image((9, size % 100, 0, 1), size)
    file = workdir / f"fw-{delivery}-{size}.bin"
    file.write_bytes(package)
    assert world.daemon is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridged.cli",
        "--socket",
        str(world.daemon.socket),
        "--json",
        "node",
        "update",
        NODE,
        str(file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    mark = len(node.firmware_states)  # the node's states from this update on
    while json.loads(await proc.stdout.readline())["state"] != "updating":
        pass
    while first.start is None:  # the gateway's first frame to the node for the update
        await asyncio.sleep(0.005)
    start, cpu = first.start, first.cpu
    deadline = start + TIMEOUT
    # Downloaded among its states since the update began, not only the last two: a node that
    # got the image before this loop first looked may have run the update and rebooted.
    while DOWNLOADED not in node.firmware_states[mark:] or len(node.package) != len(package):
        if time.monotonic() > deadline or proc.stdout.at_eof():
            if proc.returncode is None:
                proc.kill()
            _, err = await proc.communicate()
            raise SystemExit(f"{delivery} {size} B: the node did not get it: {err.decode()}")
        await asyncio.sleep(0.005)
    seconds, cpu = time.monotonic() - start, cpu_seconds(pid) - cpu
    frames = frames_on_air(world)[before:]
    world.rcp.on_transmit = first.unwrap()
    _, err = await proc.communicate()
    if proc.returncode != 0 or node.firmware != package:
        raise SystemExit(f"the update failed: {err.decode().strip()}")
    air = sum(airtime_us(p) for p in frames) / 1e6
    return Run(delivery, len(package), seconds, cpu, len(frames), air)


async def bench(sizes: list[int], deliveries: list[str]) -> list[Run]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-fw-") as tmp:
        for delivery in deliveries:
            workdir = FilePath(tmp) / delivery
            workdir.mkdir()
            async with LwM2MTestServer() as server, World(workdir) as world:
                daemon = await world.start_daemon(server.uri, endpoint="bench-fw")
                await daemon.ctl_json("pair", NODE)
                node = await world.add_node(INDEX, "bench", firmware_delivery=DELIVERY[delivery])
                await asyncio.wait_for(node.registered.wait(), 30)
                for size in sizes:
                    run = await transfer(world, daemon.proc.pid, node, delivery, size, workdir)
                    runs.append(run)
                    print(f"  {delivery} {size} B: {run.seconds:.1f} s", file=sys.stderr)
    return runs


def table(runs: list[Run]) -> None:
    print(
        "| delivery | image bytes | seconds | bytes/s | frames | air bytes/s (250 kbit/s) "
        "| of air | gateway CPU ms/kB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        print(
            f"| {r.delivery} | {r.size:,} | {r.seconds:.2f} | {r.rate:,.0f} | {r.frames:,} "
            f"| {r.air_rate:,.0f} | {100 * r.rate / r.air_rate:.0f} % "
            f"| {1000 * r.cpu / (r.size / 1024):.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="8192,32768", help="image sizes, bytes")
    parser.add_argument("--deliveries", default="pull,push", help="pull, push or both")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    deliveries = args.deliveries.split(",")
    table(asyncio.run(bench(sizes, deliveries)))


if __name__ == "__main__":
    main()
