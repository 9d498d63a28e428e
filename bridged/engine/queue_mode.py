"""LwM2M queue mode: when the client is reachable, and what waits while it is not.

A client that registered with queue mode (``Q`` in LwM2M 1.1, ``b=UQ`` in 1.0) promises to be
reachable only for a window after each message it sends; the spec's guidance for that window is
CoAP's MAX_TRANSMIT_WAIT, 93 s. After the window the server treats the client as sleeping and
queues its own requests until the client speaks again. The client's side of the deal is about
its outgoing traffic: while sleeping it holds its notifications, and when something must go out
it first sends a registration Update (which tells the server it is awake again), then releases
what it held. A Send or an Update it sends for its own reasons wakes it the same way.

This gateway is mains-powered, so "sleeping" changes no socket: the socket stays open and a
server request that still arrives is answered. What queue mode changes, and what a server can
observe, is the outgoing traffic: none while sleeping, and an Update before it resumes.

``QueueModeGate`` is the state machine, without I/O and with an injectable clock; the session
drives it (``answered`` when the server answered one of its messages, ``tick`` when the window
may have ended, ``wake`` when something must go out) and does what it says through the
``on_sleep``/``on_wake`` callbacks and ``wake``'s result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 93.0
"""CoAP's MAX_TRANSMIT_WAIT (RFC 7252), the awake window LwM2M suggests for queue mode."""


class QueueState(Enum):
    """Where a queue-mode client stands."""

    AWAKE = "awake"  # within the window after its last message: traffic flows
    SLEEPING = "sleeping"  # the window has passed: outgoing notifications are held
    WAKING = "waking"  # something must go out: the Update that wakes it is on its way


class QueueModeGate:
    """The awake window of one server's session (see the module docstring).

    ``on_sleep`` is called when the window ends (hold outgoing notifications), ``on_wake`` when
    the server has answered a message again (release them). The first window starts when the
    server first answers (the Register): before that the client has promised nothing.
    """

    def __init__(
        self,
        window: float = DEFAULT_WINDOW,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_sleep: Callable[[], None] = lambda: None,
        on_wake: Callable[[], None] = lambda: None,
    ) -> None:
        if not window > 0:
            raise ValueError(f"the queue-mode window must be positive, not {window!r}")
        self.window = window
        self.clock = clock
        self._on_sleep = on_sleep
        self._on_wake = on_wake
        self.state = QueueState.AWAKE
        self._last: float | None = None

    @property
    def deadline(self) -> float | None:
        """When the window ends (on ``clock``'s scale); None when not awake, or before the
        server first answered."""
        if self._last is None or self.state is not QueueState.AWAKE:
            return None
        return self._last + self.window

    @property
    def sleeping(self) -> bool:
        """True when outgoing notifications must be held (asleep, or the Update still out)."""
        return self.state is not QueueState.AWAKE

    def answered(self) -> None:
        """The server answered a message the client sent: awake, and the window starts again."""
        self._last = self.clock()
        if self.state is not QueueState.AWAKE:
            self.state = QueueState.AWAKE
            log.debug("queue mode: awake")
            self._on_wake()

    def tick(self) -> None:
        """Go to sleep if the window has ended; call it at ``deadline`` (early calls are fine)."""
        deadline = self.deadline
        if deadline is not None and self.clock() >= deadline:
            self.state = QueueState.SLEEPING
            log.debug("queue mode: sleeping")
            self._on_sleep()

    def wake(self) -> bool:
        """Something must go out. True when the caller must send an Update first: the client
        was sleeping and no Update is on its way yet. Held traffic is released once the server
        has answered (``answered``)."""
        if self.state is QueueState.SLEEPING:
            self.state = QueueState.WAKING
            return True
        return False
