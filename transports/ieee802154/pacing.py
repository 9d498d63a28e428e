"""When the RCP reader reads: at once while the line is quiet, at a bounded pace while it is busy.

Every read the reader thread hands to the event loop wakes the loop, and on a virtual machine
the wake-up of an idle process costs more CPU (150-220 µs measured here) than decoding and
storing the reading it carries (docs/benchmarks.md). A network card has the same problem and
Linux's NAPI the answer this module copies (interrupt moderation): when bytes come often, stop
taking a wake-up per frame and read at a bounded pace, taking everything buffered at once;
when they come rarely, take each at once.

The decision is kept apart from the I/O (``ReadPacing`` is told the time), so it is tested
with a clock of the test's own; ``radio.Radio`` does the reads and the waits.
"""

from __future__ import annotations

import math

COALESCE_WINDOW = 0.02
"""Seconds the reader waits before it reads again when bytes came less than that after its
previous read: at 100 reports/s a wake-up carries two reports instead of one, at 1,000 twenty.
A reading is delayed by at most this, well inside the registry's 50 ms group commit and
Delivery's linger, which hold it longer anyway; a node's CoAP exchange waits at most this
per frame, far below its ACK timeout (2-3 s). Waits for the RCP's own answers are never
paced (``ReadPacing.after_read``)."""

TTY_BUFFER = 4096
"""Bytes the kernel keeps for a tty that nobody reads (n_tty's N_TTY_BUF_SIZE): beyond that a
UART without flow control overruns and frames are lost, so the reader never waits longer than
half the time the line takes to fill it (``window_for``)."""

BITS_PER_BYTE = 10
"""A serial byte on the line: 8 data bits, a start bit and a stop bit (8N1)."""


def window_for(baudrate: int) -> float:
    """The pacing window for a line of ``baudrate``: ``COALESCE_WINDOW``, or less on a line so
    fast that it would fill half of ``TTY_BUFFER`` in that time."""
    return min(COALESCE_WINDOW, TTY_BUFFER / 2 * BITS_PER_BYTE / baudrate)


class ReadPacing:
    """The reader's pace. After each read that returned bytes, ``after_read`` says how long to
    wait before the next one: 0 (read at once, which blocks until bytes come when none are
    buffered, so a quiet line costs no timer), or ``window`` while the line is busy."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._last = -math.inf
        self._waited = False
        self._carried = False
        self.requested = -math.inf
        """When the host last sent the RCP a request (set by the host's thread: a float is
        replaced whole). A line that carries exchanges is read at once for a window after
        each: a CoAP request answered through the RCP (a CON Send's ACK, a block of an
        update) is a transmit, each of which would otherwise wake a waiting reader, one more
        wake-up than a read at once, and the node's next message would wait for the pace."""

    def after_read(self, now: float, *, buffered: bool, ends_frame: bool, awaiting: bool) -> float:
        """A read returned bytes at ``now``. ``buffered``: they were waiting when it began (it
        did not block); ``ends_frame``: they end on an HDLC flag (the rest of a frame still
        on the line is read at once, whatever the pace); ``awaiting``: the host waited for an
        answer of the RCP (a transmit's outcome, a property) when the read returned: such a
        read is followed by another at once, and is not the line's traffic (a bring-up's
        dozen exchanges do not make the line busy).

        Busy is a wait that bytes came during (the first read after it found them buffered),
        or a frame that ended less than ``window`` after the previous one. A wait the line
        stayed quiet through is followed by a read that blocks, and the next frame, a window
        or more after the last, is taken at once: back to quiet.
        """
        if awaiting or now - self.requested < self.window:
            return 0.0
        if self._waited:  # the first read after a wait: did the line carry bytes meanwhile?
            self._waited = False
            self._carried = buffered
        if not ends_frame:
            return 0.0
        busy = self._carried or now - self._last < self.window
        self._carried = False
        self._last = now
        self._waited = busy
        return self.window if self._waited else 0.0
