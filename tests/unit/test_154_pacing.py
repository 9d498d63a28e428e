"""The pace of the RCP's reads (pacing.py), against a clock of the test's own: a quiet line's
frames are read at once, a busy line's by one poll per window, the window set by the byte rate
the polls measure and never letting the line fill the tty's buffer, the RCP's answers and a
line carrying exchanges never wait, an idle line has nothing armed."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from bridged.transports.ieee802154.pacing import (
    BITS_PER_BYTE,
    COALESCE_WINDOW,
    MAX_WINDOW,
    SHORTEN_FILL,
    TARGET_FILL,
    TTY_BUFFER,
    ReadPacing,
    window_for,
)

W = window_for(460800)
FRAME = 100
"""Bytes of a report on the line (a NON notification's frame in Spinel and HDLC)."""


@dataclass
class Line:
    """A serial line carrying one frame of ``FRAME`` bytes at each of ``arrivals`` (seconds),
    read as ``port_io.LoopPort`` reads it with ``ReadPacing``: while watching, the first frame
    wakes the loop; while polling, a timer does. Records each wake-up: when, and how many frames
    it took (0 for a wake-up that only started polling, or a poll that found nothing)."""

    arrivals: list[float]
    awaiting: bool = False
    wakeups: list[tuple[float, int]] = field(default_factory=list)

    def run(self, pacing: ReadPacing) -> None:
        now, left, poll_at = 0.0, sorted(self.arrivals), None
        while left or poll_at is not None:
            if poll_at is None:  # watching: the next frame wakes the loop
                now = max(now, left[0])
                delay = pacing.readable(now, awaiting=self.awaiting)
                if delay:
                    poll_at = now + delay
                    self.wakeups.append((now, 0))
                    continue
                left = self._take(pacing, now, left)
            else:
                now, poll_at = poll_at, None
                before = len(left)
                left = self._take(pacing, now, left)
                found = len(left) < before
                delay = pacing.polled(now, found=found, awaiting=self.awaiting)
                if delay:
                    poll_at = now + delay

    def _take(self, pacing: ReadPacing, now: float, left: list[float]) -> list[float]:
        taken = [t for t in left if t <= now]
        self.wakeups.append((now, len(taken)))
        if taken:
            pacing.read(now, size=len(taken) * FRAME, mid_frame=False, awaiting=self.awaiting)
        return left[len(taken) :]

    def latency(self) -> float:
        """The longest a frame waited on the line before a read took it."""
        worst, arrivals = 0.0, sorted(self.arrivals)
        for at, count in self.wakeups:
            taken, arrivals = arrivals[:count], arrivals[count:]
            worst = max(worst, *(at - t for t in taken), 0.0)
        return worst

    def fullest(self) -> int:
        """The most bytes a read found buffered."""
        return max(count for _, count in self.wakeups) * FRAME


def test_a_quiet_line_is_read_at_once() -> None:
    line = Line([0.0, 0.5, 1.0, 1.5])
    line.run(ReadPacing(W))
    assert line.wakeups == [(0.0, 1), (0.5, 1), (1.0, 1), (1.5, 1)]


def test_at_100_reports_per_second_a_poll_takes_a_fifth_of_a_second() -> None:
    """10 kB/s: after the first polls measured the rate, a window is as long as the rate takes
    to fill half the buffer, capped by the latency bound: some twenty reports a wake-up (four or
    five with the floor window alone), no report waits longer than ``MAX_WINDOW``, and the
    buffer holds about half of its bytes at a poll, never so many that the next window is cut
    to the floor (whole frames make each poll's measure a little off)."""
    line = Line([k / 100 for k in range(1000)])
    line.run(ReadPacing(W))
    assert len(line.wakeups) <= 10 + 1000 / 15
    assert line.latency() <= MAX_WINDOW + 1e-9
    assert line.fullest() < SHORTEN_FILL * TTY_BUFFER


def test_a_slow_busy_line_is_polled_at_the_latency_bound() -> None:
    line = Line([k / 25 for k in range(250)])
    pacing = ReadPacing(W)
    line.run(pacing)
    polls = [at for at, count in line.wakeups if count]
    assert max(b - a for a, b in itertools.pairwise(polls)) == pytest.approx(MAX_WINDOW)
    assert line.latency() <= MAX_WINDOW + 1e-9


def test_a_faster_rate_shortens_the_window_and_a_slower_one_lengthens_it() -> None:
    """At 1,000 reports a second (100 kB/s) the buffer would be half full in 20 ms: below the
    floor, so the floor it is; back at 100 a second the windows grow again."""
    slow = [k / 100 for k in range(300)]
    fast = [3 + k / 1000 for k in range(1000)]
    again = [4 + k / 100 for k in range(300)]
    pacing = ReadPacing(W)
    windows: list[tuple[float, float]] = []
    polled = pacing.polled

    def recorded(now: float, *, found: bool, awaiting: bool) -> float:
        windows.append((now, polled(now, found=found, awaiting=awaiting)))
        return windows[-1][1]

    pacing.polled = recorded  # type: ignore[method-assign]
    line = Line([*slow, *fast, *again])
    line.run(pacing)
    slow_windows = [w for at, w in windows if 1 < at < 3]
    fast_windows = [w for at, w in windows if 3.3 < at < 4]
    again_windows = [w for at, w in windows if 5 < at < 7]
    assert min(slow_windows) > 0.15
    assert fast_windows and max(fast_windows) == pytest.approx(W)
    assert min(again_windows) > 0.15
    assert line.latency() <= MAX_WINDOW + 1e-9


def test_a_poll_that_finds_the_buffer_filling_shortens_the_next_window_at_once() -> None:
    """A burst between two polls: the poll that finds more than ``SHORTEN_FILL`` of the buffer
    sets the floor window, whatever rate it measured over its long window."""
    pacing = ReadPacing(W)
    pacing.read(0.0, size=FRAME, mid_frame=False, awaiting=False)
    assert pacing.readable(0.01, awaiting=False) == pytest.approx(W - 0.01)
    pacing.read(W, size=FRAME, mid_frame=False, awaiting=False)
    assert pacing.polled(W, found=True, awaiting=False) == MAX_WINDOW
    burst = int(SHORTEN_FILL * TTY_BUFFER) + 1
    pacing.read(W + MAX_WINDOW, size=burst, mid_frame=False, awaiting=False)
    by_rate = TARGET_FILL * TTY_BUFFER * MAX_WINDOW / burst
    assert by_rate > 3 * W  # the rate it measured alone would keep a long window ...
    assert pacing.polled(W + MAX_WINDOW, found=True, awaiting=False) == W  # ... yet the floor
    # The next poll measures the rate again: 40 kB/s fills half the buffer in 51 ms.
    pacing.read(2 * W + MAX_WINDOW, size=int(40_000 * W), mid_frame=False, awaiting=False)
    assert pacing.polled(2 * W + MAX_WINDOW, found=True, awaiting=False) == pytest.approx(
        TARGET_FILL * TTY_BUFFER / 40_000, rel=0.01
    )


def test_after_a_burst_the_next_frame_is_read_at_once_and_nothing_stays_armed() -> None:
    """A poll that finds the line quiet ends the pace: the loop watches the line again (no
    timer while it stays idle), the next frame is not delayed, and the next busy spell starts
    at the floor window (its rate is not known yet)."""
    burst = [k / 1000 for k in range(500)]
    line = Line([*burst, 2.0, 3.0])
    pacing = ReadPacing(W)
    line.run(pacing)
    assert line.wakeups[-2:] == [(2.0, 1), (3.0, 1)]
    quiet_poll = line.wakeups[-3]
    assert quiet_poll[1] == 0 and quiet_poll[0] < 2.0
    assert pacing.window == W
    assert pacing.readable(3.001, awaiting=False) == pytest.approx(W - 0.001)


def test_an_answer_of_the_rcp_is_never_paced() -> None:
    line = Line([k / 1000 for k in range(100)], awaiting=True)
    line.run(ReadPacing(W))
    assert line.wakeups == [(k / 1000, 1) for k in range(100)]


def test_a_line_that_carries_exchanges_is_read_at_once() -> None:
    """For a floor window after the host's last request (a transmit: a CON message's ACK, a
    block), every read is at once, however long the rate's window: the node's next message
    comes in answer. Those reads do not make the line busy either: the first frame after the
    exchange is read at once."""
    pacing = ReadPacing(W)
    pacing.read(0.0, size=FRAME, mid_frame=False, awaiting=False)
    pacing.read(W, size=FRAME, mid_frame=False, awaiting=False)
    assert pacing.polled(W, found=True, awaiting=False) == MAX_WINDOW  # a slow, busy line
    pacing.requested(0.050)  # a request in between: the port watches the line again
    assert pacing.readable(0.051, awaiting=False) == 0
    pacing.read(0.051, size=FRAME, mid_frame=False, awaiting=False)
    assert pacing.readable(0.080, awaiting=False) == 0
    pacing.read(0.080, size=FRAME, mid_frame=False, awaiting=False)
    assert pacing.polled(0.085, found=True, awaiting=False) == 0  # back to watching
    # Frames close together without an exchange are paced again, at the rate's window.
    assert pacing.readable(0.100, awaiting=False) == pytest.approx(W + MAX_WINDOW - 0.100)


def test_a_poll_after_an_exchange_measures_the_bytes_since_the_exchange_read() -> None:
    """An exchange's read empties the buffer: the next poll's bytes came since, not since the
    poll before, and the rate it measures is theirs."""
    pacing = ReadPacing(W)
    pacing.read(0.0, size=FRAME, mid_frame=False, awaiting=False)
    pacing.requested(0.1)
    pacing.read(0.19, size=FRAME, mid_frame=False, awaiting=True)  # the answer
    pacing.read(0.2, size=1000, mid_frame=False, awaiting=False)  # 100 kB/s since it
    assert pacing.polled(0.2, found=True, awaiting=False) == W


def test_the_rest_of_a_frame_is_read_at_once() -> None:
    pacing = ReadPacing(W)
    pacing.read(0.0, size=FRAME, mid_frame=True, awaiting=False)
    assert pacing.readable(0.001, awaiting=False) == 0
    pacing.read(0.001, size=FRAME, mid_frame=False, awaiting=False)
    assert pacing.readable(0.002, awaiting=False) == pytest.approx(W - 0.001)


@pytest.mark.parametrize("baudrate", [9600, 115200, 460800, 1_000_000, 3_000_000])
def test_the_floor_window_never_fills_half_the_tty_buffer(baudrate: int) -> None:
    window = window_for(baudrate)
    assert window <= COALESCE_WINDOW
    assert window * baudrate / BITS_PER_BYTE <= TTY_BUFFER / 2 + 1e-9


@pytest.mark.parametrize("rate", [500, 5_000, 20_000, 46_080])
def test_a_window_never_fills_more_than_the_target_at_the_rate_measured(rate: int) -> None:
    """Bytes per second as a poll measured them: the next window lets that rate fill at most
    ``TARGET_FILL`` of the buffer (or the floor's half at the baud rate's full speed)."""
    pacing = ReadPacing(W)
    pacing.read(0.0, size=FRAME, mid_frame=False, awaiting=False)
    pacing.read(W, size=int(rate * W), mid_frame=False, awaiting=False)
    window = pacing.polled(W, found=True, awaiting=False)
    assert W <= window <= MAX_WINDOW
    assert window * rate <= max(TARGET_FILL * TTY_BUFFER, W * 46_080) * 1.01
