"""The 802.15.4 node states passed on to the core (transports/ieee802154/node_events.py): the
node server hears a node at every message; a state that says nothing new within a second of
the one passed on is not passed on again."""

from __future__ import annotations

import dataclasses
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.transports.base import SAME_REPORT, NodeState, TransportEvents
from bridged.transports.ieee802154.node_events import NodeEvents
from bridged.transports.nodes import NodeId

NODE = NodeId("802154", "00124b0000000001")


class Told:
    """The core's side: the states it was told."""

    def __init__(self) -> None:
        self.states: list[NodeState] = []

    def state(self, node: NodeId, state: NodeState) -> None:
        self.states.append(state)


def events() -> tuple[NodeEvents, Told]:
    told = Told()
    return NodeEvents(cast(TransportEvents, told)), told


def heard(at: float, rssi: int = -60) -> NodeState:
    return NodeState(True, at, rssi=rssi, lqi=200, expect=300.0)


def test_a_node_heard_again_within_a_second_is_told_once_then_again_after_it() -> None:
    node_events, told = events()
    for at, rssi in [(100.0, -60), (100.3, -61), (100.9, -59), (100.0 + SAME_REPORT, -58)]:
        node_events.state(NODE, heard(at, rssi))
    assert [(s.time, s.rssi) for s in told.states] == [(100.0, -60), (101.0, -58)]


CHANGED: dict[str, object] = {
    "reachable": False,
    "battery": 80,
    "sleepy": True,
    "expect": 600.0,
}


@pytest.mark.parametrize(
    "name", [f.name for f in dataclasses.fields(NodeState) if f.name not in ("time", "rssi", "lqi")]
)
def test_any_change_but_the_link_quality_is_told_at_once(name: str) -> None:
    """Every field of a state but its time and a frame's link quality is news (a field added
    to NodeState is checked here too)."""
    node_events, told = events()
    node_events.state(NODE, heard(100.0))
    if name in ("decrypt_failures", "problem"):  # the link's say
        node_events.refuse(NODE, "its frames do not verify with its key")
        assert len(told.states) == 2
        node_events.accepted(NODE)  # a frame of it taken again: its problem is over
    else:
        node_events.state(NODE, dataclasses.replace(heard(100.1), **{name: CHANGED[name]}))
        assert len(told.states) == 2
        node_events.state(NODE, heard(100.2))
    assert len(told.states) == 3, "back as it was: news again"


def test_a_forgotten_node_is_told_anew() -> None:
    node_events, told = events()
    node_events.state(NODE, heard(100.0))
    node_events.forget(NODE)
    node_events.state(NODE, heard(100.1))
    assert len(told.states) == 2


def reached_state(at: float, rssi: int, sleepy: bool, expect: float) -> NodeState:
    return NodeState(True, at, rssi=rssi, lqi=200, sleepy=sleepy, expect=expect)


STEPS = st.one_of(
    st.tuples(
        st.just("reached"),
        st.sampled_from([0.0, 0.2, 0.9, SAME_REPORT, 3.0]),
        st.integers(-90, -40),
        st.booleans(),
        st.sampled_from([300.0, 600.0]),
    ),
    st.tuples(st.sampled_from(["refuse", "accepted", "rekeyed", "forget", "gone"])),
)


@given(st.lists(STEPS, max_size=30))
def test_reached_tells_what_a_state_built_each_time_tells(steps: list[tuple[object, ...]]) -> None:
    """``reached`` (the node server's every message, a state built only when it says something
    new) tells the core the states that building one at every message did, in the same order,
    with refused frames and a node forgotten between them."""
    at = 100.0
    fast_told, built_told = Told(), Told()
    fast = NodeEvents(cast(TransportEvents, fast_told), clock=lambda: at)
    built = NodeEvents(cast(TransportEvents, built_told), clock=lambda: at)
    for step in steps:
        kind = step[0]
        if kind == "reached":
            _, later, rssi, sleepy, expect = step
            assert isinstance(later, float) and isinstance(rssi, int)
            assert isinstance(sleepy, bool) and isinstance(expect, float)
            at += later
            fast.reached(NODE, at, rssi, 200, sleepy, expect)
            built.state(NODE, reached_state(at, rssi, sleepy, expect))
        elif kind == "refuse":
            fast.refuse(NODE, "its frames do not verify with its key")
            built.refuse(NODE, "its frames do not verify with its key")
        elif kind == "gone":
            fast.state(NODE, NodeState(False, at))
            built.state(NODE, NodeState(False, at))
        else:
            getattr(fast, str(kind))(NODE)
            getattr(built, str(kind))(NODE)
        assert fast_told.states == built_told.states
