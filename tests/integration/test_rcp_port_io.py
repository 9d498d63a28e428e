"""The RCP's port on the event loop (port_io.py) against a real pty: a write larger than the
kernel takes at once waits for room (``add_writer``) and arrives whole and in order, a
cancelled writer's bytes still go whole, and a write to a port whose other side is gone
fails as a dongle pulled mid-write does."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import Iterator

import pytest
import serial

from bridged.transports.ieee802154.port_io import LoopPort, open_io

TIMEOUT = 10.0


@pytest.fixture
def pty() -> Iterator[tuple[int, serial.SerialBase]]:
    """A pty: its master (non-blocking, the test's) and its slave opened by pyserial."""
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    port = serial.serial_for_url(os.ttyname(slave), baudrate=460800, do_not_open=True)
    port.open()
    try:
        yield master, port
    finally:
        port.close()
        os.close(slave)
        with contextlib.suppress(OSError):  # closed by the test already
            os.close(master)


def loop_port(port: serial.SerialBase, lost: list[str]) -> LoopPort:
    io = open_io(
        port, window=0.05, on_data=lambda data: None, on_lost=lost.append, awaiting=lambda: False
    )
    assert isinstance(io, LoopPort)
    return io


async def waiting_for_room(io: LoopPort, data: bytes) -> asyncio.Task[None]:
    """A task writing ``data``, returned once it wrote what the pty took and waits for room."""
    writing = asyncio.create_task(io.write(data))
    while io._drained is None:
        await asyncio.sleep(0)  # one turn of the loop: the task runs its first step
    return writing


async def drain(master: int, into: bytearray, size: int) -> None:
    """Read the master as the dongle would, until ``size`` bytes came."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def readable() -> None:
        into.extend(os.read(master, 65536))
        if len(into) >= size and not done.done():
            done.set_result(None)

    loop.add_reader(master, readable)
    try:
        await asyncio.wait_for(done, TIMEOUT)
    finally:
        loop.remove_reader(master)


async def test_a_write_beyond_the_ttys_room_waits_and_arrives_whole(
    pty: tuple[int, serial.SerialBase],
) -> None:
    master, port = pty
    lost: list[str] = []
    io = loop_port(port, lost)
    data = bytes(k % 251 for k in range(300_000))  # far more than a pty buffers
    received = bytearray()
    try:
        reading = asyncio.create_task(drain(master, received, len(data)))
        await asyncio.wait_for(io.write(data), TIMEOUT)
        await reading
    finally:
        await io.close()
    assert bytes(received) == data and not lost


async def test_a_cancelled_writer_still_sends_its_bytes_whole(
    pty: tuple[int, serial.SerialBase],
) -> None:
    """A frame is never cut in two: the rest of a cancelled write goes before the next."""
    master, port = pty
    lost: list[str] = []
    io = loop_port(port, lost)
    first, second = b"\x01" * 200_000, b"\x02" * 1000
    received = bytearray()
    try:
        writing = await waiting_for_room(io, first)
        writing.cancel()
        reading = asyncio.create_task(drain(master, received, len(first) + len(second)))
        await asyncio.wait_for(io.write(second), TIMEOUT)
        await reading
    finally:
        await io.close()
    assert bytes(received) == first + second and not lost


async def test_a_write_to_a_port_whose_other_side_is_gone_fails(
    pty: tuple[int, serial.SerialBase],
) -> None:
    """Gone while a write waits for room: the port is lost (once), the waiting writer fails,
    and a write after that fails at once."""
    master, port = pty
    lost: list[str] = []
    io = loop_port(port, lost)
    try:
        writing = await waiting_for_room(io, b"~frame~" * 50_000)
        os.close(master)
        with pytest.raises(OSError):
            await asyncio.wait_for(writing, TIMEOUT)
        # Whichever side noticed first (the hang-up is readable too): one loss, told once.
        assert len(lost) == 1 and lost[0].startswith(("read failed: ", "write failed: "))
        with pytest.raises(OSError):
            await io.write(b"~frame~")
    finally:
        await io.close()
