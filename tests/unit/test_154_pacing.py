"""The RCP reader's pace (pacing.py), against a clock of the test's own: a quiet line's frames
are read at once, a busy line's every window, the RCP's answers never wait, and the window
never lets the line fill the tty's buffer."""

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

W = 0.02


@dataclass
class Line:
    """A serial line carrying one frame at each of ``arrivals`` (seconds), read by a reader
    that follows ``ReadPacing``: a read blocks until a frame comes unless one is buffered,
    and takes everything buffered. Records when each read happened and what it took."""

    arrivals: list[float]
    awaiting: bool = False
    reads: list[tuple[float, int]] = field(default_factory=list)

    def run(self, pacing: ReadPacing) -> None:
        now, left = 0.0, sorted(self.arrivals)
        while left:
            buffered = left[0] <= now
            now = max(now, left[0])  # a blocking read returns with the first frame
            taken = [t for t in left if t <= now]
            left = left[len(taken) :]
            self.reads.append((now, len(taken)))
            now += pacing.after_read(
                now, buffered=buffered, ends_frame=True, awaiting=self.awaiting
            )

    def latency(self) -> float:
        """The longest a frame waited on the line before a read took it."""
        worst, arrivals = 0.0, sorted(self.arrivals)
        for at, count in self.reads:
            taken, arrivals = arrivals[:count], arrivals[count:]
            worst = max(worst, *(at - t for t in taken))
        return worst


def test_a_quiet_line_is_read_at_once() -> None:
    line = Line([0.0, 0.5, 1.0, 1.5])
    line.run(ReadPacing(W))
    assert line.reads == [(0.0, 1), (0.5, 1), (1.0, 1), (1.5, 1)]


def test_a_busy_line_is_read_once_per_window() -> None:
    """100 frames at 1,000 per second: one read per window after the first two, and no frame
    waits longer than a window."""
    line = Line([k / 1000 for k in range(100)])
    line.run(ReadPacing(W))
    assert len(line.reads) <= 2 + 100 / (W * 1000)
    assert sum(count for _, count in line.reads) == 100
    assert line.latency() <= W + 1e-9


def test_at_100_reports_per_second_a_read_takes_two() -> None:
    line = Line([k / 100 for k in range(200)])
    line.run(ReadPacing(W))
    assert len(line.reads) <= 2 + 200 / 2
    assert line.latency() <= W + 1e-9


def test_after_a_burst_the_next_frame_is_read_at_once() -> None:
    """A wait the line stayed quiet through ends the pace: the next frame is not delayed."""
    burst = [k / 1000 for k in range(50)]
    line = Line([*burst, 1.0, 2.0])
    line.run(ReadPacing(W))
    assert line.reads[-2:] == [(1.0, 1), (2.0, 1)]


def test_an_answer_of_the_rcp_is_never_paced() -> None:
    line = Line([k / 1000 for k in range(100)], awaiting=True)
    line.run(ReadPacing(W))
    assert line.reads == [(k / 1000, 1) for k in range(100)]


def test_a_line_that_carries_exchanges_is_read_at_once() -> None:
    """For a window after the host's last request (a transmit: a CON message's ACK, a block),
    every read is at once: the node's next message comes in answer."""
    pacing = ReadPacing(W)
    pacing.after_read(0.0, buffered=False, ends_frame=True, awaiting=False)
    pacing.requested = 0.004
    assert pacing.after_read(0.005, buffered=False, ends_frame=True, awaiting=False) == 0
    assert pacing.after_read(0.020, buffered=True, ends_frame=True, awaiting=False) == 0
    # A window after it, frames close together are paced again.
    assert pacing.after_read(0.030, buffered=False, ends_frame=True, awaiting=False) == 0
    assert pacing.after_read(0.035, buffered=False, ends_frame=True, awaiting=False) == W


def test_the_rest_of_a_frame_is_read_at_once() -> None:
    pacing = ReadPacing(W)
    assert pacing.after_read(0.0, buffered=False, ends_frame=True, awaiting=False) == 0
    # Busy now; a read that ends inside a frame is followed by another at once, whatever the pace.
    assert pacing.after_read(0.005, buffered=False, ends_frame=False, awaiting=False) == 0
    assert pacing.after_read(0.006, buffered=True, ends_frame=True, awaiting=False) == W


@pytest.mark.parametrize("baudrate", [9600, 115200, 460800, 1_000_000, 3_000_000])
def test_the_window_never_fills_half_the_tty_buffer(baudrate: int) -> None:
    window = window_for(baudrate)
    assert window <= COALESCE_WINDOW
    assert window * baudrate / BITS_PER_BYTE <= TTY_BUFFER / 2 + 1e-9
