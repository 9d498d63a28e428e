"""Time series in notifications: which observations can carry one, and how a series is split.

A server that cannot take Send (LwM2M 1.0, or Mute Send) still gets the readings stored while it
was away when it observes their paths: each reading goes out in a notification of an
observation that covers its path, as a record with the time it was measured, many records per
notification. Only formats whose records carry a time can do that (their codec is ``timed``:
``bridged.objects.formats.carries_time``): SenML JSON and SenML CBOR (``t``), and LwM2M JSON
(``t``, relative to a ``bt`` the encoder leaves out). TLV, text/plain,
opaque and LwM2M CBOR have no time field: a notification in one of them says "this is the value
now", so an old reading sent in it would be taken for the current value (and a stale
temperature may trigger an alarm, or hide one). Those observations keep notifying the current
value and get no series.

Which formats carry a time is said by each format's codec (``timed``, asked through
``objects.formats.carries_time``). Nothing here does I/O: ``bridged.engine.observe`` sends
what these functions decide, and ``bridged.delivery`` bounds its Send batches with
``leading_fit`` too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bridged.objects.paths import Path

T = TypeVar("T")


def covers(observed: Iterable[Path], path: Path) -> bool:
    """Whether an observation of ``observed`` (one path, or a composite's paths) includes
    ``path``."""
    return any(p.contains(path) for p in observed)


def leading_fit(items: Sequence[T], size: Callable[[Sequence[T]], int], max_bytes: int) -> int:
    """How many leading ``items`` fit in ``max_bytes`` as ``size`` measures them (at least one,
    so that an item too large on its own still goes, alone).

    The count shrinks in proportion to the overshoot, so a batch several times too large costs a
    few encodings, not one per item.
    """
    count = len(items)
    while count > 1:
        measured = size(items[:count])
        if measured <= max_bytes:
            break
        count = max(1, min(count - 1, count * max_bytes // measured))
    return count


def split(items: Sequence[T], size: Callable[[Sequence[T]], int], max_bytes: int) -> list[list[T]]:
    """``items`` cut, in order, into consecutive runs that each fit ``max_bytes`` (a run of one
    may exceed it)."""
    runs: list[list[T]] = []
    rest = list(items)
    while rest:
        count = leading_fit(rest, size, max_bytes)
        runs.append(rest[:count])
        rest = rest[count:]
    return runs


@dataclass(frozen=True, slots=True)
class SeriesOutcome:
    """What became of a time series given to ``Observations.notify_series``.

    ``acknowledged``: every notification it took was acknowledged by the server (``False``: one
    was not, see ``detail``, and what came after it was not sent). ``notifications`` counts the
    acknowledged ones. ``uncovered`` are the indexes of the records that no observation able
    to carry time includes: they went nowhere.
    """

    acknowledged: bool
    notifications: int = 0
    uncovered: tuple[int, ...] = ()
    detail: str = ""
