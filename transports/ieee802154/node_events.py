"""What the 802.15.4 transport reports of a node, put together from its two sources.

The core keeps one session and one state per node; here two parts of the transport have a say
in each:

* **The session** is the node server's registration of the node (``NodeServer`` keeps it, so
  that the node need not register again after a restart) and the link's last frame counter
  accepted from it (``LinkSecurity``: so that a restart cannot take an old frame again). Both
  go into the one session the core keeps: the registration's keys, and ``link`` for the link's
  part. A session kept before the link had a part (a registration alone) reads the same.
* **The state** is the node server's (reachable, link quality, sleepy) with the link's count
  of the node's frames refused by link-layer security (``decrypt_failures``) and, until a frame
  of the node is taken again, why (``problem``). A restarted gateway knows of none until a
  frame is refused again; a state of a node out of reach (the radio down, the node asleep)
  saying none is no word of its frames, which the health model does not take for one.

The node server hears a node at every message, a state each. One that says nothing new is not
passed on: the node reachable again within ``SAME_REPORT`` of the state last passed on, with
all else the same but its link quality (the RSSI and LQI of one frame, passed on with the next
state that is). The core takes what is heard of a node within that second as one report, and
a node's readings say it was heard whatever its state.

``NodeEvents`` is what the node server reports through: the core's ``TransportEvents`` with
those two added, everything else passed on as it is.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from bridged.objects.values import Record
from bridged.transports.nodes import NodeId

from ..base import SAME_REPORT, Heard, NodeState, TransportEvents

LINK = "link"
"""The session key of the link's part."""


def split_session(
    session: Mapping[str, Any],
) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
    """A kept session as (the registration, the link's part), each None when it has none."""
    registration = {k: v for k, v in session.items() if k != LINK}
    link = session.get(LINK)
    return registration or None, link if isinstance(link, Mapping) else None


def _nothing_new(
    told: NodeState,
    time: float,
    sleepy: bool,
    expect: float | None,
    battery: int | None,
    decrypt_failures: int,
    problem: str | None,
) -> bool:
    """Whether a reachable node's state of these fields says nothing ``told`` did not (module
    docstring); given field by field, so that ``NodeEvents.reached`` asks without building
    the state."""
    return (
        told.reachable
        and told.time <= time < told.time + SAME_REPORT
        and sleepy == told.sleepy
        and expect == told.expect
        and battery == told.battery
        and decrypt_failures == told.decrypt_failures
        and problem == told.problem
    )


class NodeEvents:
    """The core's events, with each node's session and state put together (module docstring)."""

    def __init__(self, events: TransportEvents, clock: Callable[[], float] = time.time) -> None:
        self.events = events
        self._clock = clock
        self._registrations: dict[NodeId, Mapping[str, Any]] = {}
        self._links: dict[NodeId, Mapping[str, Any]] = {}
        self._states: dict[NodeId, NodeState] = {}
        self.refused: Counter[NodeId] = Counter()
        """Frames of each paired node refused by link-layer security, since it was paired
        with its current key."""
        self._problems: dict[NodeId, str] = {}
        self._told: dict[NodeId, NodeState] = {}
        """The state of each node last passed on to the core."""
        self._again: dict[NodeId, tuple[float, int | None, int | None]] = {}
        """The time and link quality of each node heard since its state in ``_states``,
        saying nothing new (``reached``): that state with them is the node server's latest."""

    # -- sessions ----------------------------------------------------------------------------

    def resume(
        self, node: NodeId, registration: Mapping[str, Any] | None, link: Mapping[str, Any] | None
    ) -> None:
        """Take up the two parts of a kept session (``split_session``)."""
        if registration is not None:
            self._registrations[node] = registration
        if link is not None:
            self._links[node] = link

    def session(self, node: NodeId, session: Mapping[str, Any] | None) -> None:
        """The node server's part (its registration, or None once the node de-registered)."""
        if session is None:
            self._registrations.pop(node, None)
        else:
            self._registrations[node] = session
        self._keep(node)

    def link(self, node: NodeId, state: Mapping[str, Any] | None) -> None:
        """The link's part (None: nothing to keep, e.g. a new key's counters start afresh)."""
        if state is None:
            self._links.pop(node, None)
        else:
            self._links[node] = state
        self._keep(node)

    def _keep(self, node: NodeId) -> None:
        registration, link = self._registrations.get(node), self._links.get(node)
        if registration is None and link is None:
            self.events.session(node, None)
        else:
            self.events.session(node, {**(registration or {}), **({LINK: link} if link else {})})

    def forget(self, node: NodeId) -> None:
        """The node was unpaired: the core dropped its session; nothing of it is kept here."""
        self._registrations.pop(node, None)
        self._links.pop(node, None)
        self._states.pop(node, None)
        self._again.pop(node, None)
        self._told.pop(node, None)
        self.refused.pop(node, None)
        self._problems.pop(node, None)

    # -- state -------------------------------------------------------------------------------

    def state(self, node: NodeId, state: NodeState) -> None:
        self._states[node] = state
        self._again.pop(node, None)
        refused, problem = self.refused.get(node, 0), self._problems.get(node)
        if refused != state.decrypt_failures or problem != state.problem:
            # a new state only when the link has a say
            state = replace(state, decrypt_failures=refused, problem=problem)
        told = self._told.get(node)
        if (
            told is not None
            and state.reachable
            and _nothing_new(
                told, state.time, state.sleepy, state.expect, state.battery, refused, problem
            )
        ):
            return
        self._told[node] = state
        self.events.state(node, state)

    def reached(
        self,
        node: NodeId,
        time: float,
        rssi: int | None,
        lqi: int | None,
        sleepy: bool,
        expect: float | None,
    ) -> None:
        """The node server heard ``node`` at ``time`` (with the link quality of its frame):
        as ``state`` of a reachable state with these fields, but the state is only built when
        it says something new. The node server hears a node at every message, and nearly all
        say nothing new: a ``NodeState`` built for each, nine fields set one by one, cost a
        notification more than the check alone."""
        told = self._told.get(node)
        if told is not None and _nothing_new(
            told,
            time,
            sleepy,
            expect,
            None,
            self.refused.get(node, 0) if self.refused else 0,
            self._problems.get(node) if self._problems else None,
        ):
            self._again[node] = (time, rssi, lqi)
            return
        self.state(node, NodeState(True, time, rssi, lqi, sleepy=sleepy, expect=expect))

    def _latest(self, node: NodeId) -> NodeState | None:
        """The node server's latest state of ``node``: its last, with the time and link
        quality of a node heard since (``reached``)."""
        state = self._states.get(node)
        again = self._again.pop(node, None)
        if state is not None and again is not None:
            time, rssi, lqi = again
            state = self._states[node] = replace(state, time=time, rssi=rssi, lqi=lqi)
        return state

    def refuse(self, node: NodeId, problem: str) -> None:
        """A frame of paired ``node`` was refused by link-layer security, for ``problem``: a
        refused frame says nothing of whether the node is there, so the rest of its state is
        as the node server last said."""
        self.refused[node] += 1
        self._problems[node] = problem
        self.state(node, self._latest(node) or NodeState(False, self._clock()))

    def accepted(self, node: NodeId) -> None:
        """A datagram of ``node`` got through the link: whatever was refused before is over."""
        if self._problems.pop(node, None) is not None and (state := self._latest(node)):
            self.state(node, state)

    def rekeyed(self, node: NodeId) -> None:
        """The node has a new key: what its old key refused says nothing of the new one."""
        self.refused.pop(node, None)
        self._problems.pop(node, None)

    # -- the rest, as it is --------------------------------------------------------------------

    def heard(self, heard: Heard) -> None:
        self.events.heard(heard)

    def readings(self, node: NodeId, records: Sequence[Record]) -> None:
        self.events.readings(node, records)

    def values(self, node: NodeId, records: Sequence[Record]) -> None:
        self.events.values(node, records)

    async def durable(self) -> None:
        await self.events.durable()

    def objects(self, node: NodeId, objects: Mapping[int, Sequence[int]]) -> None:
        self.events.objects(node, objects)

    def admit(self, heard: Heard) -> bool:
        return self.events.admit(heard)
