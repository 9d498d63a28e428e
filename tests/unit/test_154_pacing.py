"""The pace of the RCP's reads (pacing.py), against a clock of the test's own: a quiet line's
frames are read at once, a busy line's by one poll per window, the RCP's answers and a line
carrying exchanges never wait, an idle line has nothing armed, and the window never lets the
line fill the tty's buffer."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bridged.transports.ieee802154.pacing import (
    BITS_PER_BYTE,
    COALESCE_WINDOW,
    TTY_BUFFER,
    ReadPacing,
    window_for,
)

W = 0.05


@dataclass
class Line:
    """A serial line carrying one frame at each of ``arrivals`` (seconds), read as
    ``port_io.LoopPort`` reads it with ``ReadPacing``: while watching, the first frame wakes
    the loop; while polling, a timer does. Records each wake-up: when, and how many frames it
    took (0 for a wake-up that only started polling, or a poll that found nothing)."""

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
            pacing.read(now, mid_frame=False, awaiting=self.awaiting)
        return left[len(taken) :]

    def latency(self) -> float:
        """The longest a frame waited on the line before a read took it."""
        worst, arrivals = 0.0, sorted(self.arrivals)
        for at, count in self.wakeups:
            taken, arrivals = arrivals[:count], arrivals[count:]
            worst = max(worst, *(at - t for t in taken), 0.0)
        return worst


def test_a_quiet_line_is_read_at_once() -> None:
    line = Line([0.0, 0.5, 1.0, 1.5])
    line.run(ReadPacing(W))
    assert line.wakeups == [(0.0, 1), (0.5, 1), (1.0, 1), (1.5, 1)]


def test_a_busy_line_is_polled_once_per_window() -> None:
    """100 frames at 1,000 per second: one wake-up per window after the first two (the first
    frame's, the second's that starts polling), one poll that finds the line quiet, and no
    frame waits longer than a window."""
    line = Line([k / 1000 for k in range(100)])
    line.run(ReadPacing(W))
    assert len(line.wakeups) <= 3 + 100 / (W * 1000)
    assert sum(count for _, count in line.wakeups) == 100
    assert line.latency() <= W + 1e-9


def test_at_100_reports_per_second_a_wakeup_takes_five() -> None:
    line = Line([k / 100 for k in range(200)])
    line.run(ReadPacing(W))
    assert len(line.wakeups) <= 3 + 200 / 5
    assert line.latency() <= W + 1e-9


def test_after_a_burst_the_next_frame_is_read_at_once_and_nothing_stays_armed() -> None:
    """A poll that finds the line quiet ends the pace: the loop watches the line again (no
    timer while it stays idle), and the next frame is not delayed."""
    burst = [k / 1000 for k in range(50)]
    line = Line([*burst, 1.0, 2.0])
    line.run(ReadPacing(W))
    assert line.wakeups[-2:] == [(1.0, 1), (2.0, 1)]
    quiet_poll = line.wakeups[-3]
    assert quiet_poll[1] == 0 and quiet_poll[0] < 1.0


def test_an_answer_of_the_rcp_is_never_paced() -> None:
    line = Line([k / 1000 for k in range(100)], awaiting=True)
    line.run(ReadPacing(W))
    assert line.wakeups == [(k / 1000, 1) for k in range(100)]


def test_a_line_that_carries_exchanges_is_read_at_once() -> None:
    """For a window after the host's last request (a transmit: a CON message's ACK, a block),
    every read is at once: the node's next message comes in answer. Those reads do not make
    the line busy either: the first frame after the exchange is read at once."""
    pacing = ReadPacing(W)
    pacing.read(0.0, mid_frame=False, awaiting=False)
    pacing.requested(0.004)
    assert pacing.readable(0.005, awaiting=False) == 0
    pacing.read(0.005, mid_frame=False, awaiting=False)
    assert pacing.readable(0.040, awaiting=False) == 0
    pacing.read(0.040, mid_frame=False, awaiting=False)
    assert pacing.polled(0.050, found=True, awaiting=False) == 0  # back to watching
    assert pacing.readable(0.060, awaiting=False) == 0  # a window after the request
    pacing.read(0.060, mid_frame=False, awaiting=False)
    # Frames close together without an exchange are paced again.
    assert pacing.readable(0.070, awaiting=False) == pytest.approx(W - 0.010)


def test_the_rest_of_a_frame_is_read_at_once() -> None:
    pacing = ReadPacing(W)
    pacing.read(0.0, mid_frame=True, awaiting=False)
    assert pacing.readable(0.001, awaiting=False) == 0
    pacing.read(0.001, mid_frame=False, awaiting=False)
    assert pacing.readable(0.002, awaiting=False) == pytest.approx(W - 0.001)


@pytest.mark.parametrize("baudrate", [9600, 115200, 460800, 1_000_000, 3_000_000])
def test_the_window_never_fills_half_the_tty_buffer(baudrate: int) -> None:
    window = window_for(baudrate)
    assert window <= COALESCE_WINDOW
    assert window * baudrate / BITS_PER_BYTE <= TTY_BUFFER / 2 + 1e-9
