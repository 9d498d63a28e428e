"""Queue mode's awake window as a state machine, on a clock the test moves (no waiting)."""

from __future__ import annotations

import pytest
from timers import Clock

from bridged.engine.queue_mode import DEFAULT_WINDOW, QueueModeGate, QueueState


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def gate(self, clock: Clock, window: float = 10.0) -> QueueModeGate:
        return QueueModeGate(
            window,
            clock=clock,
            on_sleep=lambda: self.calls.append("sleep"),
            on_wake=lambda: self.calls.append("wake"),
        )


def test_default_window_is_max_transmit_wait() -> None:
    assert DEFAULT_WINDOW == 93.0
    assert QueueModeGate().window == 93.0


def test_no_window_before_the_server_first_answers() -> None:
    clock, rec = Clock(), Recorder()
    gate = rec.gate(clock)
    clock.now = 5000.0
    gate.tick()
    assert gate.state is QueueState.AWAKE and gate.deadline is None and rec.calls == []


def test_awake_for_the_window_then_sleeping() -> None:
    clock, rec = Clock(), Recorder()
    gate = rec.gate(clock)
    gate.answered()
    assert gate.state is QueueState.AWAKE and not gate.sleeping
    assert gate.deadline == 1010.0
    clock.now = 1009.9
    gate.tick()
    assert gate.state is QueueState.AWAKE and rec.calls == []
    clock.now = 1010.0
    gate.tick()
    gate.tick()
    assert gate.state is QueueState.SLEEPING and gate.sleeping
    assert gate.deadline is None
    assert rec.calls == ["sleep"], "on_sleep once, however often the timer fires"


def test_each_answered_message_restarts_the_window() -> None:
    clock, rec = Clock(), Recorder()
    gate = rec.gate(clock)
    gate.answered()
    clock.now = 1008.0
    gate.answered()
    clock.now = 1015.0
    gate.tick()
    assert gate.state is QueueState.AWAKE and gate.deadline == 1018.0
    assert rec.calls == [], "answers while awake wake nothing"


def test_LightweightM2M_1_1_int_109_something_to_send_while_sleeping_needs_an_update() -> None:
    """LightweightM2M-1.1-int-109 (Behavior in Queue Mode): the Update goes first, and what
    was held is released only once the server has answered it."""
    clock, rec = Clock(), Recorder()
    gate = rec.gate(clock)
    gate.answered()
    clock.now = 1010.0
    gate.tick()
    assert gate.wake() is True, "sleeping: the caller must send an Update"
    assert gate.state is QueueState.WAKING and gate.sleeping
    assert gate.wake() is False, "one Update is enough"
    assert rec.calls == ["sleep"], "nothing released before the server answered"
    clock.now = 1012.0
    gate.answered()
    assert gate.state is QueueState.AWAKE and gate.deadline == 1022.0
    assert rec.calls == ["sleep", "wake"]


def test_wake_while_awake_needs_nothing() -> None:
    clock, rec = Clock(), Recorder()
    gate = rec.gate(clock)
    assert gate.wake() is False
    assert gate.state is QueueState.AWAKE and rec.calls == []


def test_a_message_of_its_own_wakes_a_sleeping_client_without_an_update() -> None:
    """A Send (or a lifetime Update) while sleeping wakes the client by itself."""
    clock, rec = Clock(), Recorder()
    gate = rec.gate(clock)
    gate.answered()
    clock.now = 2000.0
    gate.tick()
    gate.answered()
    assert gate.state is QueueState.AWAKE and rec.calls == ["sleep", "wake"]


@pytest.mark.parametrize("window", [0, -1.0, float("nan")])
def test_window_must_be_positive(window: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        QueueModeGate(window)
