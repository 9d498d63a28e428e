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
registration, so this holds across a gateway restart. Until then a node that measures a value
may notify it just before it Sends it: a value of its first Send that a notification already
made a reading is not a second one.
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


@dataclass
class NodeSources:
    """The rule of the module docstring for one node; ``known`` is what it last said."""

    sends: bool = False
    known: dict[Path, Value] = field(default_factory=dict)
    notified_readings: dict[Path, Value] = field(default_factory=dict)
    """Readings taken from notifications before the node was known to Send."""

    def sent(self, records: Sequence[Record]) -> Sorted:
        """A Send: readings, but for what a notification reported just before the first."""
        before = self.notified_readings
        readings = [r for r in records if r.path not in before or before.pop(r.path) != r.value]
        self.sends = True
        self.notified_readings = {}
        self._learn(records)
        return Sorted(readings=readings)

    def snapshot(self, records: Sequence[Record]) -> Sorted:
        """An observation's first answer: the node's state as read, all values."""
        self._learn(records)
        return Sorted(values=list(records))

    def notified(self, records: Sequence[Record]) -> Sorted:
        """A notification: the changed resources, readings unless the node Sends them."""
        changed = [r for r in records if r.path not in self.known or self.known[r.path] != r.value]
        self._learn(changed)
        if self.sends:
            return Sorted(values=changed)
        self.notified_readings.update((r.path, r.value) for r in changed)
        return Sorted(readings=changed)

    def _learn(self, records: Sequence[Record]) -> None:
        for r in records:
            self.known[r.path] = r.value
