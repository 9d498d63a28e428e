"""The notification rules without a network or a clock: attributes, the per-observation state
machine, CON/NON choice and the wake-up heap, then the scheduler of ``Observations`` driven
with an injected clock and a recording pipe."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiocoap
import cbor2
import pytest
from aiocoap.numbers.codes import Code
from hypothesis import given, settings
from hypothesis import strategies as st

from bridged.engine.dm import DeviceManagement, Request, reply_message
from bridged.engine.notification import (
    CON_INTERVAL,
    NotificationState,
    Policy,
    Reliability,
    WakeQueue,
    composite_policy,
    effective_attributes,
    policy_for,
)
from bridged.engine.observe import Observations
from bridged.objects.builtin import builtin_definitions
from bridged.objects.linkformat import Attributes
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree

# -- attributes ---------------------------------------------------------------------------------


def test_attributes_are_inherited_resource_from_instance_from_object_then_defaults() -> None:
    attrs = {
        Path((3303,)): Attributes(pmin=10, pmax=600, st=1.0),
        Path((3303, 0)): Attributes(pmin=5),
        Path((3303, 0, 5700)): Attributes(gt=30.0),
    }
    got = effective_attributes(attrs, Path((3303, 0, 5700)), Attributes(pmin=1, pmax=60, epmin=2))
    assert got == Attributes(pmin=5, pmax=600, gt=30.0, st=1.0, epmin=2)
    assert effective_attributes(attrs, Path((3303, 1, 5700))) == Attributes(
        pmin=10, pmax=600, st=1.0
    )
    assert effective_attributes({}, Path((3, 0)), Attributes(pmax=9)) == Attributes(pmax=9)


def test_pmax_below_pmin_or_zero_is_ignored() -> None:
    assert Policy(pmin=10, pmax=5).max_period is None
    assert Policy(pmin=0, pmax=0).max_period is None
    assert Policy(pmin=5, pmax=5).max_period == 5


def test_thresholds_only_for_numbers() -> None:
    a = Attributes(gt=1.0)
    assert policy_for(a, numeric=True).thresholds
    assert not policy_for(a, numeric=False).thresholds


def test_composite_honours_every_path() -> None:
    p = composite_policy([Policy(pmin=1, pmax=50), Policy(pmin=3, pmax=20), Policy(pmin=2)])
    assert (p.pmin, p.pmax, p.numeric) == (3, 20, False)


# -- the state machine --------------------------------------------------------------------------


def test_pmin_coalesces_changes_into_one_notification_with_the_latest_value() -> None:
    s = NotificationState(Policy(pmin=10, numeric=True), now=0.0, value=1.0)
    s.change(1.0)
    assert not s.poll(1.0, 2.0)
    s.change(2.0)
    assert not s.poll(2.0, 3.0)
    assert s.next_wake() == 10.0
    assert s.poll(10.0, 3.0)
    s.sent(10.0, 3.0)
    assert s.next_wake() is None


def test_pmax_notifies_without_change() -> None:
    s = NotificationState(Policy(pmin=1, pmax=30), now=0.0)
    assert s.next_wake() == 30.0
    assert not s.poll(29.9)
    assert s.poll(30.0)
    s.sent(30.0)
    assert s.next_wake() == 60.0


def test_numeric_without_thresholds_notifies_a_different_value_only() -> None:
    s = NotificationState(Policy(numeric=True), now=0.0, value=20)
    s.change(1.0)
    assert not s.poll(1.0, 20)
    s.change(2.0)
    assert s.poll(2.0, 21)


def test_anything_else_notifies_on_every_change() -> None:
    s = NotificationState(Policy(), now=0.0)
    s.change(1.0)
    assert s.poll(1.0)


@pytest.mark.parametrize(
    ("policy", "start", "values", "notified"),
    [
        (Policy(gt=25.0, numeric=True), 20.0, [24.0, 26.0, 27.0, 24.0], [26.0, 24.0]),
        (Policy(lt=10.0, numeric=True), 20.0, [11.0, 9.0, 8.0, 12.0], [9.0, 12.0]),
        (Policy(st=2.0, numeric=True), 20.0, [21.0, 22.0, 23.0, 25.5, 24.0], [22.0, 25.5]),
        (Policy(gt=25.0, st=5.0, numeric=True), 20.0, [26.0, 31.0, 26.5], [26.0, 31.0]),
    ],
)
def test_thresholds_gt_lt_st(
    policy: Policy, start: float, values: list[float], notified: list[float]
) -> None:
    """gt/lt: crossing either way relative to the last value notified; st: a step of at least
    st from it; several: any of them."""
    s = NotificationState(policy, now=0.0, value=start)
    out = []
    for t, v in enumerate(values, start=1):
        s.change(float(t))
        if s.poll(float(t), v):
            s.sent(float(t), v)
            out.append(v)
    assert out == notified


def test_epmin_defers_evaluation_and_epmax_forces_one() -> None:
    s = NotificationState(Policy(epmin=5, epmax=20, numeric=True), now=0.0, value=1)
    s.change(1.0)
    assert not s.poll(1.0, 2)  # within epmin of the last evaluation (the start)
    assert s.next_wake() == 5.0
    assert s.poll(5.0, 2)
    s.sent(5.0, 2)
    assert s.next_wake() == 25.0  # the next forced evaluation
    assert s.sample_due(25.0)
    assert s.poll(25.0, 7)  # a value that moved without a change being reported


def test_a_qualifying_change_stays_pending_until_sent() -> None:
    s = NotificationState(Policy(pmin=10, gt=25.0, numeric=True), now=0.0, value=20.0)
    s.change(1.0)
    assert not s.poll(1.0, 26.0)
    s.change(2.0)
    assert not s.poll(2.0, 24.0)  # crossed back, but the crossing is not forgotten
    assert s.poll(10.0, 24.0)


@dataclass
class Run:
    """A simulated observation: changes at given times, polls at every wake-up and change."""

    policy: Policy
    changes: list[tuple[float, float]]
    sent: list[tuple[float, float]] = field(default_factory=list)

    def play(self, end: float) -> None:
        value = 0.0
        s = NotificationState(self.policy, now=0.0, value=value)
        self.sent.append((0.0, value))
        events = sorted(self.changes)
        i = 0
        now = 0.0
        while True:
            wake = s.next_wake()
            nxt = events[i][0] if i < len(events) else None
            candidates = [t for t in (wake, nxt) if t is not None and t <= end]
            if not candidates:
                return
            now = max(now, min(candidates))
            while i < len(events) and events[i][0] <= now:
                value = events[i][1]
                s.change(now)
                i += 1
            if s.poll(now, value):
                s.sent(now, value)
                self.sent.append((now, value))


policies = st.builds(
    Policy,
    pmin=st.integers(0, 20).map(float),
    pmax=st.one_of(st.none(), st.integers(0, 60).map(float)),
    numeric=st.just(False),
)
changes = st.lists(
    st.tuples(st.integers(1, 200).map(float), st.integers(-50, 50).map(float)), max_size=30
)


@settings(max_examples=300, deadline=None)
@given(policies, changes)
def test_pmin_never_violated_pmax_always_honoured_no_change_lost(
    policy: Policy, events: list[tuple[float, float]]
) -> None:
    end = 300.0
    run = Run(policy, events)
    run.play(end)
    times = [t for t, _ in run.sent]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= policy.pmin for g in gaps), "pmin violated"
    if (pmax := policy.max_period) is not None:
        assert all(g <= pmax for g in gaps), "pmax not honoured"
        assert end - times[-1] < pmax or end - times[-1] == pmax
    for t, _ in events:
        # every change is followed by a notification no later than pmin after the previous one
        after = [s for s in times if s >= t]
        before = max(s for s in times if s < t) if any(s < t for s in times) else 0.0
        deadline = max(t, before + policy.pmin)
        if deadline <= end:
            assert after and after[0] <= deadline, f"change at {t} lost"
    if events and (latest := sorted(events)[-1])[0] + policy.pmin <= end:
        assert run.sent[-1][1] == latest[1], "the last notification is not the latest value"


# -- CON / NON ----------------------------------------------------------------------------------


def test_non_by_default_con_after_silence_and_every_24_hours() -> None:
    r = Reliability(now=0.0, liveness=60.0)
    assert not r.confirmable(1.0, last_con=0.0)
    r.sent(1.0, confirmable=False)
    assert not r.confirmable(30.0, last_con=0.0)  # the server may still answer
    r.sent(30.0, confirmable=False)
    assert r.confirmable(61.0, last_con=0.0)  # silent for a minute after a NON: probe it
    r.sent(61.0, confirmable=True)
    assert not r.confirmable(62.0, last_con=61.0)  # the CON covers the question
    r.sent(62.0, confirmable=False)
    r.heard(100.0)  # the server sent a request
    assert not r.confirmable(150.0, last_con=61.0)
    busy = Reliability(now=0.0)
    for hour in range(25):
        busy.heard(hour * 3600.0)
    assert busy.confirmable(CON_INTERVAL, last_con=0.0)


# -- the heap -----------------------------------------------------------------------------------


def test_wake_queue_replaces_and_discards() -> None:
    q: WakeQueue[str] = WakeQueue()
    q.set("a", 5.0)
    q.set("b", 3.0)
    q.set("a", 1.0)
    q.set("c", 4.0)
    q.discard("c")
    assert q.next_wake() == 1.0
    assert q.pop_due(3.0) == ["a", "b"]
    assert q.pop_due(10.0) == []
    assert len(q) == 0 and q.next_wake() is None


@given(st.lists(st.tuples(st.integers(0, 20), st.one_of(st.none(), st.integers(0, 100)))))
def test_wake_queue_matches_a_dict(ops: list[tuple[int, int | None]]) -> None:
    q: WakeQueue[int] = WakeQueue()
    model: dict[int, float] = {}
    for key, when in ops:
        q.set(key, None if when is None else float(when))
        if when is None:
            model.pop(key, None)
        else:
            model[key] = float(when)
    assert q.next_wake() == (min(model.values()) if model else None)
    assert sorted(q.pop_due(50.0)) == sorted(k for k, t in model.items() if t <= 50.0)


# -- the scheduler, with an injected clock ------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class RecordingPipe:
    """Stands in for aiocoap's pipe: records what the observation machinery adds."""

    def __init__(self, request: aiocoap.Message) -> None:
        self.request = request
        self.responses: list[tuple[aiocoap.Message, bool]] = []

    def add_response(self, message: aiocoap.Message, is_last: bool = False) -> None:
        self.responses.append((message, is_last))

    @property
    def payloads(self) -> list[bytes]:
        return [m.payload for m, _ in self.responses]


@pytest.fixture
def tree() -> ObjectTree:
    t = ObjectTree(builtin_definitions())
    t.create_instance(1, 0, [(0, 1), (1, 300), (2, 5), (6, False), (7, "U")])
    t.create_instance(3303, 0, [(5700, 20.0)])
    t.create_instance(3303, 1, [(5700, 10.0)])
    return t


@pytest.fixture
async def observations(tree: ObjectTree) -> AsyncIterator[tuple[Observations, Clock]]:
    clock = Clock()
    obs = Observations(DeviceManagement(tree), server_instance=0, clock=clock)
    yield obs, clock
    await obs.close()


async def start(obs: Observations, path: str, token: bytes = b"t1") -> RecordingPipe:
    msg = aiocoap.Message(code=Code.GET, uri_path=[s for s in path.split("/") if s], observe=0)
    msg.token = token
    msg.remote = "server"
    pipe = RecordingPipe(msg)
    task = asyncio.create_task(obs.serve(pipe))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert not task.done()
    return pipe


async def test_server_default_pmin_applies_and_changes_coalesce(
    observations: tuple[Observations, Clock], tree: ObjectTree
) -> None:
    obs, clock = observations
    pipe = await start(obs, "/3303/0/5700")
    assert pipe.payloads == [b"20.0"]
    for v in (21.0, 22.0, 23.0):
        tree.set(Path((3303, 0, 5700)), v)
        obs.step(clock.now)
    assert pipe.payloads == [b"20.0"]  # /1/0/2 says pmin 5
    clock.now = 5.0
    obs.step(clock.now)
    assert pipe.payloads == [b"20.0", b"23.0"]
    numbers = [m.opt.observe for m, _ in pipe.responses]
    assert numbers == sorted(numbers)


async def test_hold_keeps_the_latest_state_and_release_sends_it(
    observations: tuple[Observations, Clock], tree: ObjectTree
) -> None:
    obs, clock = observations
    pipe = await start(obs, "/3303/1")
    woken: list[bool] = []
    obs.on_held = lambda: woken.append(True)
    obs.hold()
    clock.now = 10.0
    tree.set(Path((3303, 1, 5700)), 11.0)
    obs.step(clock.now)
    tree.set(Path((3303, 1, 5700)), 12.0)
    obs.step(clock.now)
    assert len(pipe.responses) == 1 and obs.held and woken
    obs.release()
    obs.step(clock.now)
    assert len(pipe.responses) == 2
    assert [r[2] for r in cbor2.loads(pipe.responses[1][0].payload)] == [12.0]


async def test_deleted_instance_ends_the_observation_with_not_found(
    observations: tuple[Observations, Clock], tree: ObjectTree
) -> None:
    obs, clock = observations
    pipe = await start(obs, "/3303/1/5700")
    tree.delete_instance(3303, 1)
    obs.step(clock.now)
    last, is_last = pipe.responses[-1]
    assert (last.code, is_last) == (Code.NOT_FOUND, True)
    assert len(obs) == 0


async def test_write_attributes_of_an_instance_reach_its_resource_observation(
    observations: tuple[Observations, Clock], tree: ObjectTree
) -> None:
    obs, clock = observations
    pipe = await start(obs, "/3303/0/5700")
    obs.dm.handle(Request(Code.PUT, ["3303", "0"], ["pmax=2", "pmin=0"]))
    obs.attributes_changed()
    clock.now = 2.0
    obs.step(clock.now)
    assert pipe.payloads == [b"20.0", b"20.0"]


async def write_attributes(obs: Observations, path: str, *query: str) -> RecordingPipe:
    """A Write-Attributes as the server sends it, through ``render_to_pipe``."""
    msg = aiocoap.Message(code=Code.PUT, uri_path=[s for s in path.split("/") if s])
    msg.opt.uri_query = query
    msg.remote = "server"
    pipe = RecordingPipe(msg)

    async def render(p: RecordingPipe) -> None:
        p.add_response(reply_message(obs.dm.handle(Request.of(p.request))), is_last=True)

    await obs.render_to_pipe(pipe, render)  # type: ignore[arg-type]
    return pipe


async def test_write_attributes_re_evaluates_only_the_observations_at_and_below_its_path(
    observations: tuple[Observations, Clock], tree: ObjectTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One write per node must not touch every observation (O(n^2) over n nodes).
    obs, clock = observations
    for i in range(2, 40):
        tree.create_instance(3303, i, [(5700, float(i))])
    pipes = {i: await start(obs, f"/3303/{i}/5700", bytes([i])) for i in range(40)}
    server = await start(obs, "/1/0", b"server")
    obs.step(clock.now)
    polled: list[NotificationState] = []
    poll = NotificationState.poll

    def counting(state: NotificationState, now: float, value: object = None) -> bool:
        polled.append(state)
        return poll(state, now, value)

    monkeypatch.setattr(NotificationState, "poll", counting)
    reply = await write_attributes(obs, "/3303/7/5700", "pmin=0", "pmax=2")
    assert reply.responses[0][0].code == Code.CHANGED
    obs.step(clock.now)
    assert len(polled) == 1
    clock.now = 2.0
    obs.step(clock.now)
    assert [i for i, p in pipes.items() if len(p.payloads) > 1] == [7]

    polled.clear()
    await write_attributes(obs, "/3303", "pmin=0", "pmax=1")
    obs.step(clock.now)
    assert len(polled) == 40  # every /3303 observation, not the one of /1/0
    clock.now = 3.0
    obs.step(clock.now)
    assert all(len(p.payloads) >= 2 for p in pipes.values()) and len(server.payloads) == 1


async def test_a_failing_pipe_ends_one_observation_not_the_others(
    observations: tuple[Observations, Clock], tree: ObjectTree
) -> None:
    obs, clock = observations
    broken = await start(obs, "/3303/0/5700", b"t1")
    healthy = await start(obs, "/3303/0/5700", b"t2")

    def fail(message: aiocoap.Message, is_last: bool = False) -> None:
        raise TypeError("'bool' object is not iterable")

    broken.add_response = fail  # type: ignore[method-assign]
    clock.now = 5.0
    tree.set(Path((3303, 0, 5700)), 30.0)
    obs.step(clock.now)
    assert healthy.payloads[-1] == b"30.0"
    assert len(obs) == 1


async def test_a_thousand_observations_are_one_heap(
    observations: tuple[Observations, Clock], tree: ObjectTree
) -> None:
    obs, clock = observations
    obs.dm.handle(Request(Code.PUT, ["3303"], ["pmin=0", "pmax=60"]))
    pipes = [await start(obs, "/3303/0/5700", str(i).encode()) for i in range(1000)]
    assert len(obs) == 1000
    tree.set(Path((3303, 0, 5700)), 25.0)
    obs.step(clock.now)
    assert all(p.payloads[-1] == b"25.0" for p in pipes)
    assert len(obs._queue) == 1000
    tasks = [t for t in asyncio.all_tasks() if t.get_name() == "lwm2m-notifications"]
    assert len(tasks) == 1
