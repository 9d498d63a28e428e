"""Which of what an 802.15.4 node says are readings (transports/ieee802154/sources.py)."""

from __future__ import annotations

from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.transports.ieee802154.sources import NodeSources

VALUE = Path((3303, 0, 5700))
UNITS = Path((3303, 0, 5701))
MAX = Path((3303, 0, 5602))


def test_a_node_without_send_reports_what_changed_in_its_notifications() -> None:
    sources = NodeSources(may_send=False)
    first = sources.snapshot([Record(VALUE, 20.0), Record(UNITS, "Cel")])
    assert (first.readings, len(first.values)) == ([], 2), "a read state is not a reading"
    said = sources.notified([Record(VALUE, 21.0), Record(UNITS, "Cel"), Record(MAX, 21.0)], 5.0)
    assert said.readings == [Record(VALUE, 21.0), Record(MAX, 21.0)]
    assert sources.notified([Record(VALUE, 21.0), Record(UNITS, "Cel")], 6.0).readings == []


def test_a_node_that_sends_chooses_its_readings() -> None:
    sources = NodeSources()
    sources.snapshot([Record(VALUE, 20.0)])
    # It measures 21.0: the notification overtakes its first Send, which wins.
    assert sources.notified([Record(VALUE, 21.0), Record(MAX, 21.0)], 5.0).readings == []
    said = sources.sent([Record(VALUE, 21.0, 1e9)])
    assert said.readings == [Record(MAX, 21.0, 5.0), Record(VALUE, 21.0, 1e9)]
    said = sources.notified([Record(VALUE, 22.0), Record(MAX, 22.0)], 6.0)
    assert (said.readings, said.values) == ([], [Record(VALUE, 22.0), Record(MAX, 22.0)])
    assert sources.sent([Record(VALUE, 22.0, 1e9 + 2)]).readings == [Record(VALUE, 22.0, 1e9 + 2)]


def test_what_a_node_that_may_send_notified_is_a_reading_when_no_send_comes() -> None:
    sources = NodeSources()
    said = sources.notified([Record(VALUE, 21.0)], 5.0)
    assert (said.readings, said.values) == ([], [Record(VALUE, 21.0)]), "shown, held"
    assert sources.release().readings == [Record(VALUE, 21.0, 5.0)]
    assert sources.release().readings == []
