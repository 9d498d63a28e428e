"""The node health model (bridged/health.py): timeouts, transitions, one deadline timer."""

from __future__ import annotations

import logging

import pytest
from timers import Clock

from bridged.health import (
    BATTERY_LOW,
    BATTERY_NORMAL,
    BATTERY_UNKNOWN,
    DATA_REFUSED,
    LOW_BATTERY,
    LOW_SIGNAL,
    NO_ERROR,
    UNREACHABLE,
    HealthMonitor,
    HealthPolicy,
    NodeHealth,
)
from bridged.objects.paths import Path
from bridged.transports.base import BEARER_IEEE_802154, Heard, NodeState
from bridged.transports.nodes import NodeId

BLE = NodeId("ble", "A4:C1:38:00:00:01")
RADIO = NodeId("802154", "00124b0000000001")


Told = list[tuple[NodeId, NodeHealth, NodeHealth | None]]


def monitor(
    policy: HealthPolicy | None = None, wall: Clock | None = None
) -> tuple[HealthMonitor, Clock, Told]:
    """A monitor on a test clock (``monotonic``); ``wall`` is its wall clock (the same one
    unless given)."""
    clock = Clock(1_000_000.0)
    health = HealthMonitor(policy or HealthPolicy(), clock=wall or clock, monotonic=clock)
    told: Told = []
    health.listen(lambda node, now, before: told.append((node, now, before)))
    return health, clock, told


def test_a_timeout_is_the_nodes_then_the_transports_then_automatic() -> None:
    policy = HealthPolicy(
        minimum=30,
        intervals=10,
        unknown=900,
        transports={"802154": 7200},
        nodes={BLE: 120},
    )
    assert policy.timeout(BLE, 86400, 1) == 120
    assert policy.timeout(RADIO, 300, None) == 7200
    other = NodeId("ble", "A4:C1:38:00:00:02")
    assert policy.timeout(other, 300, 1) == 300  # the transport's expectation first
    assert policy.timeout(other, None, 4) == 40  # ten advertising intervals
    assert policy.timeout(other, None, 1) == 30  # never below the minimum
    assert policy.timeout(other, None, None) == 900


async def test_a_silent_node_becomes_unavailable_and_available_when_heard(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health, clock, told = monitor(HealthPolicy(minimum=1, nodes={BLE: 60}))
    health.add(BLE)
    assert told[-1][1].available and told[-1][2] is None
    health.heard(Heard(BLE, clock.now, rssi=-70))
    clock.now += 59
    health.expire()  # early: nobody is due
    assert health.health(BLE).available  # type: ignore[union-attr]
    clock.now += 2
    with caplog.at_level(logging.WARNING, "bridged.health"):
        health.expire()
    node, now, before = told[-1]
    assert (node, now.available, before and before.available) == (BLE, False, True)
    assert now.errors == (UNREACHABLE,)
    assert "node ble:A4:C1:38:00:00:01 is unavailable: not heard for 60 s" in caplog.text
    health.heard(Heard(BLE, clock.now, rssi=-70))
    assert told[-1][1].available and told[-1][1].errors == (NO_ERROR,)


async def test_one_timer_at_the_earliest_deadline_and_none_when_nothing_is_due() -> None:
    health, clock, _ = monitor(HealthPolicy(minimum=1, transports={"ble": 60, "802154": 100}))
    assert health.armed is None
    start = clock.now
    health.add(RADIO)
    assert health.armed == start + 100
    health.add(BLE)
    assert health.armed == start + 60
    clock.now += 10
    health.heard(Heard(BLE, clock.now))
    assert health.armed == start + 60  # a report moves no timer
    clock.now = start + 60
    health.expire()  # fires early for BLE, which was heard since: armed for the next
    assert health.armed == start + 70
    clock.now = start + 100
    health.expire()
    assert not health.health(BLE).available and not health.health(RADIO).available  # type: ignore[union-attr]
    assert health.armed is None  # every node unavailable: nothing to wait for
    health.remove(BLE)
    health.remove(RADIO)
    assert health.armed is None


async def test_the_advertising_interval_sets_an_advert_nodes_timeout() -> None:
    health, clock, told = monitor(HealthPolicy(minimum=5, intervals=10, unknown=900))
    health.add(BLE)
    assert told[-1][1].timeout == 900
    for step in (3.0, 2.0, 4.0):
        clock.now += step
        health.heard(Heard(BLE, clock.now))
    assert health.health(BLE).timeout == 20  # type: ignore[union-attr]
    armed = health.armed
    assert armed is not None and armed <= clock.now + 20  # early is harmless: it re-arms


async def test_a_registration_lifetime_is_a_radio_nodes_timeout() -> None:
    health, clock, _ = monitor(HealthPolicy(minimum=5))
    health.add(RADIO)
    health.state(RADIO, NodeState(True, clock.now, rssi=-60, lqi=200, sleepy=True, expect=300))
    assert health.health(RADIO).timeout == 300  # type: ignore[union-attr]
    # asleep is not unavailable
    health.state(RADIO, NodeState(False, clock.now + 90, sleepy=True))
    assert health.health(RADIO).available  # type: ignore[union-attr]


async def test_battery_signal_and_refused_frames_are_error_codes() -> None:
    health, clock, told = monitor(HealthPolicy(low_battery=20, low_signal=-90))
    health.add(BLE, battery=80)
    assert told[-1][1].battery_status == BATTERY_NORMAL
    health.state(BLE, NodeState(True, clock.now, rssi=-95, battery=15, decrypt_failures=2))
    now = health.health(BLE)
    assert now is not None
    assert now.errors == (LOW_BATTERY, LOW_SIGNAL) and now.battery_status == BATTERY_LOW
    health.state(BLE, NodeState(True, clock.now, rssi=-60, battery=15, problem="bad key"))
    assert health.health(BLE).errors == (LOW_BATTERY, DATA_REFUSED)  # type: ignore[union-attr]
    assert NodeHealth().battery_status == BATTERY_UNKNOWN


async def test_refused_frames_end_only_with_the_node_heard_again() -> None:
    """Out of reach (its scanner lost, its radio down, asleep) a node says nothing of its
    frames: the refusal shown stays until it is heard with its data taken."""
    health, clock, _ = monitor()
    health.add(BLE)
    health.state(BLE, NodeState(True, clock.now, problem="bad key"))
    health.state(BLE, NodeState(False, clock.now, rssi=-60))
    assert health.health(BLE).errors == (DATA_REFUSED,)  # type: ignore[union-attr]
    health.state(BLE, NodeState(True, clock.now, rssi=-60))
    assert health.health(BLE).errors == (NO_ERROR,)  # type: ignore[union-attr]


def test_the_resources_a_node_shows_upstream() -> None:
    health = NodeHealth(
        available=False, rssi=-71, lqi=180, battery=10, low_battery=True, bearer=BEARER_IEEE_802154
    )
    assert health.resources() == {
        Path((3, 0, 11)): {0: UNREACHABLE, 1: LOW_BATTERY},
        Path((3, 0, 20)): BATTERY_LOW,
        Path((4, 0, 0)): BEARER_IEEE_802154,
        Path((4, 0, 1)): {0: BEARER_IEEE_802154},
        Path((4, 0, 2)): -71,
        Path((4, 0, 3)): 180,
    }


async def test_a_wall_clock_that_jumps_makes_no_node_unavailable() -> None:
    wall = Clock(1_000_000.0)
    health, clock, _ = monitor(HealthPolicy(minimum=1, nodes={BLE: 60}), wall=wall)
    health.add(BLE)
    health.heard(Heard(BLE, wall.now))
    wall.now += 3600  # NTP sets the clock of a Pi that has no RTC
    clock.now += 10
    health.expire()
    assert health.health(BLE).available  # type: ignore[union-attr]


async def test_what_one_advert_brings_is_one_report_not_an_interval() -> None:
    health, clock, _ = monitor(HealthPolicy(minimum=1, intervals=10, unknown=900))
    health.add(BLE)
    for _ in range(3):
        clock.now += 5
        health.heard(Heard(BLE, clock.now, rssi=-70))  # the advert heard
        clock.now += 0.001
        health.state(BLE, NodeState(True, clock.now, rssi=-70, battery=80))  # its state
        health.update(BLE, clock.now, battery=80)  # its readings
    assert health.health(BLE).timeout == pytest.approx(50, abs=0.1)  # type: ignore[union-attr]


async def test_an_rssi_that_wanders_by_a_few_db_is_no_news() -> None:
    health, clock, told = monitor(HealthPolicy(low_signal=-90, nodes={BLE: 60}))
    health.add(BLE)
    for rssi in (-70, -71, -69, -72, -70):
        clock.now += 5
        health.heard(Heard(BLE, clock.now, rssi=rssi))
    assert [now.rssi for _, now, _ in told] == [None, -70]
    health.heard(Heard(BLE, clock.now, rssi=-74))  # moved 4 dB
    health.heard(Heard(BLE, clock.now, rssi=-89))
    health.heard(Heard(BLE, clock.now, rssi=-90))  # crossed the low-signal line by 1 dB
    assert [now.rssi for _, now, _ in told][2:] == [-74, -89, -90]
    assert told[-1][1].errors == (LOW_SIGNAL,)


async def test_when_a_node_was_last_heard_is_current_without_a_change_of_health() -> None:
    health, clock, told = monitor(HealthPolicy(nodes={BLE: 60}))
    health.add(BLE)
    health.heard(Heard(BLE, clock.now, rssi=-70))
    for _ in range(3):
        clock.now += 5
        health.heard(Heard(BLE, clock.now, rssi=-70))
    health.heard(Heard(BLE, clock.now - 7, rssi=-70))  # an older report arriving late
    assert len(told) == 2  # added, then its first RSSI: nothing else was news
    now = health.health(BLE)
    assert now is not None and now.last_heard == clock.now


async def test_a_new_policy_sets_each_nodes_timeout_when_it_is_next_heard() -> None:
    """A reload replaces the policy: the timeout a node was given is worked out again (it is
    kept between reports, issue 17), for a node whose inputs did not change as well."""
    health, clock, _ = monitor(HealthPolicy(minimum=5, unknown=900))
    health.add(BLE)
    health.heard(Heard(BLE, clock.now))
    assert health.health(BLE).timeout == 900  # type: ignore[union-attr]
    health.policy = HealthPolicy(minimum=5, unknown=600, transports={"ble": 300})
    clock.now += 0.5  # the same report: no interval measured, nothing else changed
    health.heard(Heard(BLE, clock.now))
    assert health.health(BLE).timeout == 300  # type: ignore[union-attr]
    armed = health.armed
    assert armed is not None and armed <= clock.now + 300
