"""The RCP's serial port on the event loop: reads at ``ReadPacing``'s pace, writes that never
block, no thread.

pyserial opens and configures the port (termios for a dongle, a socket for ``socket://``);
from then on its file descriptor is used directly, non-blocking: ``loop.add_reader`` (or, on a
busy line, a timer at the pace of its byte rate, pacing.py) for reads, ``os.write`` for writes,
with ``loop.add_writer`` only while the kernel's output buffer is full. Each read or transmit
so costs the loop's own wake-up and nothing more: a reader thread cost its own and the loop's
per read, and a write through a worker thread two per frame (docs/benchmarks.md).

A port without a file descriptor (``rfc2217://``, whose pyserial backend reads its socket in a
thread of its own) keeps a reader thread (``ThreadPort``), read as it comes, unpaced.

Either calls ``on_data`` with the bytes read and ``on_lost`` with the reason once the port
fails (a read or write error such as EIO or ENXIO of an unplugged dongle, a hang-up); both in
the event loop's thread, and neither after ``detach``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from typing import Protocol

import serial

from . import hdlc
from .pacing import ReadPacing

# A read takes everything buffered, up to this (a tty hands out at most its 4 KiB buffer per
# read; the bound keeps a line that never stops from holding the loop).
_READ_SIZE = 65536
# How long a read blocks in the reader thread of a port whose read cannot be cancelled: the
# bound on how long closing such a port waits.
_READ_TIMEOUT = 0.1


class PortIO(Protocol):
    """What the radio does with an open port."""

    def expect_answer(self) -> None:
        """A request goes to the RCP: read its answer, and what follows it, at once."""

    async def write(self, data: bytes) -> None:
        """Write all of ``data`` (raises OSError or pyserial's SerialException on failure)."""

    def detach(self) -> None:
        """Stop reading and writing at once: no callback comes after it."""

    async def close(self) -> None:
        """Detach and close the port."""


def open_io(
    port: serial.SerialBase,
    *,
    window: float,
    on_data: Callable[[bytes], None],
    on_lost: Callable[[str], None],
    awaiting: Callable[[], bool],
) -> PortIO:
    """The I/O of an open ``port``: on the loop where it has a file descriptor, its busy line
    polled at first (and whenever it fills fast) every ``window`` seconds (``pacing.window_for``,
    the floor), then at the pace its byte rate allows (``pacing.ReadPacing``)."""
    try:
        fd = port.fileno()
    except (AttributeError, OSError, serial.SerialException):
        return ThreadPort(port, on_data=on_data, on_lost=on_lost)
    return LoopPort(port, fd, window=window, on_data=on_data, on_lost=on_lost, awaiting=awaiting)


class PortClosedError(OSError):
    """The port was detached while a write waited (the radio dropped the connection)."""


class LoopPort:
    """A port whose file descriptor the event loop watches."""

    def __init__(
        self,
        port: serial.SerialBase,
        fd: int,
        *,
        window: float,
        on_data: Callable[[bytes], None],
        on_lost: Callable[[str], None],
        awaiting: Callable[[], bool],
    ) -> None:
        self._port = port
        self._fd = fd
        self._on_data = on_data
        self._on_lost = on_lost
        self._awaiting = awaiting
        self._loop = asyncio.get_running_loop()
        self.pacing = ReadPacing(window)
        self._watching = False
        self._poll: asyncio.TimerHandle | None = None
        self._out = bytearray()
        self._drained: asyncio.Future[None] | None = None
        self._detached = False
        os.set_blocking(fd, False)
        self._watch()

    # -- reads ------------------------------------------------------------------------------------

    def _watch(self) -> None:
        if not self._watching:
            self._loop.add_reader(self._fd, self._readable)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching:
            self._loop.remove_reader(self._fd)
            self._watching = False

    def _readable(self) -> None:
        delay = self.pacing.readable(self._loop.time(), awaiting=self._awaiting())
        if delay:
            self._unwatch()
            self._poll = self._loop.call_later(delay, self._polled)
        else:
            self._read(readable=True)

    def _polled(self) -> None:
        self._poll = None
        found = self._read(readable=False)
        if self._detached:
            return
        delay = self.pacing.polled(self._loop.time(), found=found, awaiting=self._awaiting())
        if delay:
            self._poll = self._loop.call_later(delay, self._polled)
        else:
            self._watch()

    def _read(self, *, readable: bool) -> bool:
        """Take everything buffered to ``on_data``; False if there was nothing.

        A tty configured by pyserial (VMIN 0) reads nothing, not EAGAIN, once it is empty, and
        a hung-up one (a USB dongle pulled) nothing too, though the loop sees it readable: so
        ``readable`` (the loop said so) with nothing to read is a hang-up, as pyserial has it."""
        chunks: list[bytes] = []
        failure = ""
        try:
            while sum(map(len, chunks)) < _READ_SIZE:
                chunk = os.read(self._fd, _READ_SIZE)
                if not chunk:
                    if readable and not chunks:
                        failure = "read failed: the port hung up (readable, but no data)"
                    break
                chunks.append(chunk)
        except BlockingIOError:
            pass
        except OSError as exc:
            failure = f"read failed: {exc}"
        if chunks:
            data = b"".join(chunks)
            self.pacing.read(
                self._loop.time(),
                size=len(data),
                mid_frame=data[-1] != hdlc.FLAG,
                awaiting=self._awaiting(),
            )
            self._on_data(data)
        if failure and not self._detached:
            self._fail(failure)
        return bool(chunks)

    def expect_answer(self) -> None:
        self.pacing.requested(self._loop.time())
        if self._poll is not None:  # polling: watch again, so the answer is read as it comes
            self._poll.cancel()
            self._poll = None
            self._watch()

    # -- writes -----------------------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        if self._detached:
            raise PortClosedError("the port is closed")
        if not self._out:
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                written = 0
            if written == len(data):
                return
            data = data[written:]
        self._out += data
        if self._drained is None:
            self._drained = self._loop.create_future()
            self._loop.add_writer(self._fd, self._writable)
        # Shielded: a cancelled writer's bytes still go whole, never a frame cut in two.
        await asyncio.shield(self._drained)

    def _writable(self) -> None:
        try:
            written = os.write(self._fd, self._out)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(f"write failed: {exc}")
            return
        del self._out[:written]
        if not self._out and self._drained is not None:
            self._loop.remove_writer(self._fd)
            self._drained.set_result(None)
            self._drained = None

    # -- the end ----------------------------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        self.detach()
        self._on_lost(reason)

    def detach(self) -> None:
        if self._detached:
            return
        self._detached = True
        self._unwatch()
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        if self._drained is not None:
            self._loop.remove_writer(self._fd)
            if not self._drained.done():
                self._drained.set_exception(PortClosedError("the port is closed"))
            self._drained.exception()  # retrieved: a writer cancelled meanwhile never will
            self._drained = None
        self._out.clear()

    async def close(self) -> None:
        self.detach()
        with contextlib.suppress(Exception):
            self._port.close()


class ThreadPort:
    """A port without a file descriptor: a thread reads it (blocking, or every
    ``_READ_TIMEOUT`` where the backend cannot cancel a read) and writes go through a worker
    thread."""

    def __init__(
        self,
        port: serial.SerialBase,
        *,
        on_data: Callable[[bytes], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self._port = port
        self._on_data = on_data
        self._on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self._stop = threading.Event()
        port.timeout = None if hasattr(port, "cancel_read") else _READ_TIMEOUT
        self._thread = threading.Thread(
            target=self._run, name=f"rcp-reader-{port.name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        port = self._port
        try:
            while not self._stop.is_set():
                data = port.read(port.in_waiting or 1)
                if data:
                    data += port.read(port.in_waiting)
                    self._loop.call_soon_threadsafe(self._deliver, data)
        except Exception as exc:  # pyserial raises SerialException, OSError or, once closed, more
            if not self._stop.is_set():
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                    self._loop.call_soon_threadsafe(self._lost, f"read failed: {exc}")

    def _deliver(self, data: bytes) -> None:
        if not self._stop.is_set():
            self._on_data(data)

    def _lost(self, reason: str) -> None:
        if not self._stop.is_set():
            self._on_lost(reason)

    def expect_answer(self) -> None:
        """Reads are never paced here."""

    async def write(self, data: bytes) -> None:
        if self._stop.is_set():
            raise PortClosedError("the port is closed")
        await asyncio.to_thread(self._port.write, data)

    def detach(self) -> None:
        self._stop.set()
        cancel = getattr(self._port, "cancel_read", None)
        if cancel is not None:
            with contextlib.suppress(Exception):
                cancel()

    async def close(self) -> None:
        self.detach()
        await asyncio.to_thread(self._thread.join)
        with contextlib.suppress(Exception):
            self._port.close()
