"""When the RCP's bytes are read: at once while the line is quiet, at a bounded pace while busy.

Every read wakes the event loop, and on a virtual machine the wake-up of an idle process costs
more CPU (150-220 µs measured here) than decoding and storing the reading it carries
(docs/benchmarks.md). A network card has the same problem and Linux's NAPI the answer this
module copies (interrupt moderation): when bytes come often, stop taking a wake-up per frame
and poll at a bounded pace, taking everything buffered at once; when they come rarely, take
each at once.

The decision is kept apart from the I/O (``ReadPacing`` is told the time), so it is tested
with a clock of the test's own; ``port_io.LoopPort`` watches the file descriptor and arms the
timers.
"""

from __future__ import annotations

import math

COALESCE_WINDOW = 0.05
"""Seconds a busy line's bytes wait between paced reads (at most: ``window_for`` shortens it
on a line that would fill the tty's buffer meanwhile, 44 ms at the default 460,800 baud).

Long because only notifications are paced: at 100 reports/s a wake-up takes four to five
reports instead of two with the former 20 ms, measured 0.26-0.37 wake-ups and 371-434 µs of
CPU per record against 0.68-0.72 and 549-588 µs with 20 ms (docs/benchmarks.md), and a
reading is held far longer by the registry's 50 ms group commit and Delivery's 0.5 s linger
anyway. Exchanges are
not slowed: while the host awaits an RCP answer, and for a window after each request it sent
(a node's CON answered, a block of a transfer, a pull's next block), every read is at once
(``ReadPacing.readable``), so the window adapts to the traffic: long while only unsolicited
frames come, none while frames need answers. The first frame of an exchange after a quiet
spell of exchanges waits at most one window, far below a node's ACK timeout (2-3 s)."""

TTY_BUFFER = 4096
"""Bytes the kernel keeps for a tty that nobody reads (n_tty's N_TTY_BUF_SIZE): beyond that a
UART without flow control overruns and frames are lost, so the reads are never paced further
apart than half the time the line takes to fill it (``window_for``)."""

BITS_PER_BYTE = 10
"""A serial byte on the line: 8 data bits, a start bit and a stop bit (8N1)."""


def window_for(baudrate: int) -> float:
    """The pacing window for a line of ``baudrate``: ``COALESCE_WINDOW``, or less on a line so
    fast that it would fill half of ``TTY_BUFFER`` in that time."""
    return min(COALESCE_WINDOW, TTY_BUFFER / 2 * BITS_PER_BYTE / baudrate)


class ReadPacing:
    """The pace of reads. Two modes, as NAPI's: *watching* (the file descriptor wakes the
    loop when bytes come, ``readable``) and *polling* (a timer reads whatever came during a
    window, ``polled``; the descriptor is not watched, so bytes arriving wake nobody).

    Watching, bytes that come at least a window after the previous read, or that complete a
    frame a read left unfinished, or that the host awaits, are read at once. Bytes less than a
    window after the previous read make the line busy: polling starts at the window's end.
    Polling goes on for as long as each poll finds bytes; a poll that finds none (a window
    of quiet) goes back to watching, and so does an exchange (``requested``). Nothing is armed
    while no byte comes: an idle line costs no wake-up.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._last = -math.inf
        self._requested = -math.inf
        self._mid_frame = False

    def requested(self, now: float) -> None:
        """The host sent the RCP a request at ``now``: its answer, and whatever comes within a
        window after it (a node's next message of the exchange), is read at once."""
        self._requested = now

    def read(self, now: float, *, mid_frame: bool, awaiting: bool) -> None:
        """A read at ``now`` took bytes; ``mid_frame``: they ended inside an HDLC frame;
        ``awaiting``: the host waited for an answer in them. A read during an exchange is not
        the line's traffic: a bring-up's dozen exchanges, or a transfer's blocks, do not make
        the notifications after them wait."""
        self._mid_frame = mid_frame
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
        delay to the next poll, or 0 to go back to watching."""
        if found and not self._exchanging(now, awaiting):
            return self.window
        return 0.0

    def _exchanging(self, now: float, awaiting: bool) -> bool:
        return awaiting or now - self._requested < self.window
