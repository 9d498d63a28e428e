"""Exponential back-off between retries of a failed BlueZ operation (scan start, connection)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Attempt ``n`` (from 0) waits ``initial * factor**n`` seconds, capped at ``maximum``.

    The cap keeps a gateway retrying forever at a bounded pace: an adapter that comes back after
    an hour is used again within ``maximum`` seconds, without a restart of the daemon.
    """

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        # The exponent is capped so that a long outage cannot overflow the float.
        return min(self.initial * self.factor ** min(max(attempt, 0), 64), self.maximum)
