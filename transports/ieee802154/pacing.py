"""When the RCP's bytes are read: at once while the line is quiet, at a bounded pace while busy.

Every read wakes the event loop, and on a virtual machine the wake-up of an idle process costs
more CPU (180-300 µs measured here) than decoding and storing the reading it carries
(docs/benchmarks.md). A network card has the same problem and Linux's NAPI the answer this
module copies (interrupt moderation): when bytes come often, stop taking a wake-up per frame
and poll, taking everything buffered at once, at a pace set by the line's measured byte rate
(the slower the line, the longer a poll waits, up to ``MAX_WINDOW``) and never slower than the
tty's buffer allows; when they come rarely, take each at once.

The decision is kept apart from the I/O (``ReadPacing`` is told the time), so it is tested
with a clock of the test's own; ``port_io.LoopPort`` watches the file descriptor and arms the
timers.
"""

from __future__ import annotations

import math

COALESCE_WINDOW = 0.05
"""Seconds between the first paced reads of a busy spell, at most (``window_for`` shortens it on
a line so fast that it would fill half of ``TTY_BUFFER`` meanwhile: 44 ms at the default
460,800 baud). It is the *floor*: the window a busy spell starts with, knowing nothing of the
line's rate yet, and the one a poll that found the buffer filling (``SHORTEN_FILL``) goes back
to at once; from then on each poll measures the rate and sets the next window
(``ReadPacing.polled``), up to ``MAX_WINDOW``.

It is also how long after a request the line counts as carrying an exchange (every read is at
once, ``ReadPacing.readable``): a node's CON answered, a block of a transfer, a pull's next
block come in answer within it, so the window adapts to the traffic: long while only
unsolicited frames come, none while frames need answers. The first frame of an exchange after a
quiet spell of exchanges waits at most one window, far below a node's ACK timeout (2-3 s)."""

MAX_WINDOW = 0.25
"""The longest a paced read is put off, whatever the rate: the most a reading waits on the line.

How the windows combine: a reading waits on the line for at most this, then at most the
registry's group commit (50 ms) before it is durable, then at most Delivery's linger (0.5 s)
before its Send goes: at most 0.8 s from the node's frame to its Send, against 0.6 s with the
floor alone. Only the first reading of a Delivery batch can wait that long: the linger starts
at its commit, and the readings after it wait less. At 100 reports/s a poll then takes some
twenty-five reports instead of four or five (docs/benchmarks.md)."""

TTY_BUFFER = 4096
"""Bytes n_tty keeps for a tty that nobody reads (``N_TTY_BUF_SIZE``; ``FIONREAD``, pyserial's
``in_waiting``, never says more). The pace keeps it from filling, because what the kernel does
beyond it depends on the port, and is not always harmless:

* a pty (the RCP emulator, a relay's pty): once the pty's own buffer is full too, the writer's
  ``write`` blocks, or fails with EAGAIN when non-blocking, until the reader makes room: the
  writer slows, nothing is lost;
* a USB dongle (CDC-ACM, as the nRF52840's; a USB-serial bridge in front of the radio chip is
  alike): once n_tty is nearly full it throttles the driver, which stops asking the device for
  data (its IN transfers are NAKed); the bytes wait in the dongle, whose firmware (or bridge)
  drops frames once its own few KiB of buffer are full: loss, in the dongle;
* a UART: its interrupt handler drains the chip's FIFO into the tty's flip buffers whatever n_tty
  says (640 KiB per port on current kernels, 64 KiB on old ones), where the bytes wait for room
  in n_tty; with RTS/CTS the throttle also deasserts RTS and the RCP holds its bytes. Without
  flow control and past the flip buffers' limit, the driver counts an overrun: loss.

So a window never lets the line fill more than ``TARGET_FILL`` of this at the rate the last poll
measured, and the floor window no more than half of it even at the baud rate's full speed."""

TARGET_FILL = 0.5
"""The fraction of ``TTY_BUFFER`` the measured rate fills in a window: the rate may double
within a window before n_tty is full (a hundred nodes reporting at random moments hardly vary
by a tenth from one window to the next)."""

SHORTEN_FILL = 0.75
"""A poll that took more than this fraction of ``TTY_BUFFER`` found the rate risen by half or
more within one window: the next window is the floor at once, and the polls after it measure
the new rate. The bytes a poll takes are at least what n_tty held at its start (a read loop
that drains it may take more the flip buffers refilled meanwhile), so the check errs short."""

BITS_PER_BYTE = 10
"""A serial byte on the line: 8 data bits, a start bit and a stop bit (8N1)."""


def window_for(baudrate: int) -> float:
    """The floor window for a line of ``baudrate``: ``COALESCE_WINDOW``, or less on a line so
    fast that it would fill half of ``TTY_BUFFER`` in that time."""
    return min(COALESCE_WINDOW, TTY_BUFFER / 2 * BITS_PER_BYTE / baudrate)


class ReadPacing:
    """The pace of reads. Two modes, as NAPI's: *watching* (the file descriptor wakes the
    loop when bytes come, ``readable``) and *polling* (a timer reads whatever came during a
    window, ``polled``; the descriptor is not watched, so bytes arriving wake nobody).

    Watching, bytes that come at least a window after the previous read, or that complete a
    frame a read left unfinished, or that the host awaits, are read at once. Bytes less than a
    window after the previous read make the line busy: polling starts at the window's end.
    Polling goes on for as long as each poll finds bytes, each window set by the rate the poll
    before measured (``polled``); a poll that finds none (a window of quiet) goes back to
    watching with the floor window (the next busy spell's rate is not known), and an exchange
    (``requested``) goes back to watching too, keeping the window. Nothing is armed while no
    byte comes: an idle line costs no wake-up.
    """

    def __init__(self, floor: float, ceiling: float = MAX_WINDOW) -> None:
        self.floor = floor
        self.ceiling = max(floor, ceiling)
        self.window = floor
        """The window running now: the floor, or what the last poll's rate set."""
        self._last = -math.inf
        self._requested = -math.inf
        self._mid_frame = False
        self._drained = -math.inf
        """When a read last emptied the buffer: what a poll takes came since."""
        self._fill = 0.0
        """The fraction of ``TTY_BUFFER`` the last read took."""
        self._span = 0.0
        """Seconds the last read's bytes took to come: since the read before."""

    def requested(self, now: float) -> None:
        """The host sent the RCP a request at ``now``: its answer, and whatever comes within a
        floor window after it (a node's next message of the exchange), is read at once."""
        self._requested = now

    def read(self, now: float, *, size: int, mid_frame: bool, awaiting: bool) -> None:
        """A read at ``now`` took ``size`` bytes; ``mid_frame``: they ended inside an HDLC
        frame; ``awaiting``: the host waited for an answer in them. A read during an exchange
        is not the line's traffic: a bring-up's dozen exchanges, or a transfer's blocks, do not
        make the notifications after them wait."""
        self._mid_frame = mid_frame
        self._fill = size / TTY_BUFFER
        self._span = now - self._drained
        self._drained = now
        if not self._exchanging(now, awaiting):
            self._last = now

    def readable(self, now: float, *, awaiting: bool) -> float:
        """Watching, bytes are ready at ``now``; ``awaiting``: the host waits for an answer of
        the RCP (a transmit's outcome, a property). Returns 0 to read them at once, or the
        delay to the first poll (stop watching until then)."""
        if self._mid_frame or self._exchanging(now, awaiting) or now - self._last >= self.window:
            return 0.0
        return self._last + self.window - now

    def polled(self, now: float, *, found: bool, awaiting: bool) -> float:
        """A poll at ``now`` ran; ``found``: it took bytes (``read`` was told). Returns the
        delay to the next poll, or 0 to go back to watching.

        The next window is the one in which the rate this poll measured (its bytes over the
        time since the read before) fills ``TARGET_FILL`` of the buffer, within the floor and
        the ceiling; the floor at once if the poll found more than ``SHORTEN_FILL``."""
        if not found:  # quiet: the next busy spell's rate is not known yet
            self.window = self.floor
            return 0.0
        if self._exchanging(now, awaiting):
            return 0.0
        if self._fill > SHORTEN_FILL:
            self.window = self.floor
        else:
            self.window = min(self.ceiling, max(self.floor, TARGET_FILL * self._span / self._fill))
        return self.window

    def _exchanging(self, now: float, awaiting: bool) -> bool:
        return awaiting or now - self._requested < self.floor
