"""Which of what an 802.15.4 node says are its readings, and which only refresh the mirror.

A node tells the gateway its values in two ways: its LwM2M Send (``POST /dp``), and the
notifications of the observations the gateway keeps on its objects. If both became readings,
every value would reach the server twice (with two times), and every notification of an
object would drag its unchanged metadata (units, ranges, the application type) along as
readings too. So, for one node:

* the records of a Send are readings, each with the time the node gave it: the node chose
  to report them;
* once a node has used Send, it is the node that decides what its readings are: its
  notifications only refresh what the gateway shows of it (``values``), never readings;
* a node that does not Send (LwM2M 1.0 has none) reports by notifying: the resources whose
  value changed since the gateway last knew it are readings, the unchanged ones nothing;
* the first answer of an observation is the state the gateway read, not a report: values.

A node is known to use Send from its first Send on; ``sends`` is remembered with its
registration, so this holds across a gateway restart. Until then, a node that can Send (it
registered as LwM2M 1.1 or later) may notify a value just before it Sends it: the readings of
its notifications are held for ``HOLD`` seconds (``held``, with the time they arrived), and a
Send within that time that carries the same value replaces them, with the node's own time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bridged.objects.paths import Path
from bridged.objects.values import Record, Value


@dataclass
class Sorted:
    """What a message from a node amounts to: its readings and the values it only shows."""

    readings: list[Record] = field(default_factory=list)
    values: list[Record] = field(default_factory=list)


_UNKNOWN = object()
"""What no value is equal to: a resource the node never said."""

HOLD = 2.0
"""Seconds a notified reading of a node that can Send waits for that Send: the probe saw the
Send follow the notification by ~18 ms; CoAP's first retransmission comes after 2-3 s."""


@dataclass
class NodeSources:
    """The rule of the module docstring for one node; ``known`` is what it last said."""

    sends: bool = False
    may_send: bool = True
    """The node registered as LwM2M 1.1 or later (1.0 has no Send)."""
    known: dict[Path, Value] = field(default_factory=dict)
    held: list[Record] = field(default_factory=list)
    """Readings of notifications waiting for a Send that may carry them (module docstring)."""

    def sent(self, records: Sequence[Record]) -> Sorted:
        """A Send: all readings, and what was held but for the values it carries itself."""
        carried = {(r.path, r.value) for r in records}
        held = [r for r in self.release().readings if (r.path, r.value) not in carried]
        self.sends = True
        self._learn(records)
        return Sorted(readings=held + list(records))

    def snapshot(self, records: Sequence[Record]) -> Sorted:
        """An observation's first answer: the node's state as read, all values."""
        self._learn(records)
        return Sorted(values=list(records))

    def notified(self, records: Sequence[Record], now: float) -> Sorted:
        """A notification at ``now``: the changed resources, readings unless the node Sends
        (held, and shown as values meanwhile, if it may)."""
        known = self.known.get
        changed = [r for r in records if known(r.path, _UNKNOWN) != r.value]  # one lookup each
        self._learn(changed)
        if self.sends:
            return Sorted(values=changed)
        if self.may_send:
            self.held.extend(
                r if r.time is not None else Record(r.path, r.value, now) for r in changed
            )
            return Sorted(values=changed)  # shown now, a reading when released
        return Sorted(readings=changed)

    def release(self) -> Sorted:
        """The held readings, now (no Send came for them)."""
        held, self.held = self.held, []
        return Sorted(readings=held)

    def _learn(self, records: Sequence[Record]) -> None:
        for r in records:
            self.known[r.path] = r.value
