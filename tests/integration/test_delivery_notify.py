"""Store-and-forward to a server without Send: readings from the simulated transport reach the
in-repo LwM2M server as confirmable notifications of its observations, each reading a record
with its original time, in order (issue 4: "notifications otherwise").

A server registered as LwM2M 1.0 gets the readings stored before it observed, and those stored
while it was down; a 1.1 server with Mute Send gets them the same way, and by Send again, from
the same cursor, once it un-mutes. Readings it does not observe in a format with time are
skipped and counted once it has had time to observe them.

Series notifications are told from the observation's own (current-value) notifications by
their type: a series notification is always confirmable, the others are non-confirmable while
the server is heard from, which it is throughout these tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path as FsPath

import aiocoap
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import CON

from bridged.delivery import DeliveryConfig
from integration.test_delivery import gateway, received, registered, until
from peers.lwm2m_server import LwM2MTestServer, decode_timed

ENDPOINT = "gw-nodes"
OBSERVED = {"/3303": 11543, "/3304": 112, "/3311": 110}
"""Temperature in LwM2M JSON, humidity in SenML CBOR, the switch in SenML JSON: every reading
the simulated nodes report, in each format that carries time."""

PATIENT = DeliveryConfig(max_records=64, retry=0.05, max_retry=0.2, poll=0.05, observe_grace=3600.0)
"""Nothing is skipped as unobserved: the server has all the time it needs to observe."""


@dataclass
class Observer:
    """One observation of the server, with every notification it got."""

    path: str
    request: aiocoap.protocol.Request
    notifications: list[aiocoap.Message] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def follow(self) -> None:
        with contextlib.suppress(aiocoap.error.Error):
            async for notification in self.request.observation:
                self.notifications.append(notification)

    def series(self) -> list[tuple[str, float | None, object]]:
        """The records of its confirmable (series) notifications, in arrival order."""
        return [
            (r.name, r.time, r.value)
            for m in self.notifications
            if m.mtype is CON
            for r in decode_timed(bytes(m.payload), int(m.opt.content_format))
        ]


async def observe(server: LwM2MTestServer, paths: dict[str, int]) -> dict[str, Observer]:
    observers = {}
    for path, accept in paths.items():
        request = server.observe(ENDPOINT, path, accept=accept)
        first = await asyncio.wait_for(request.response, 10)
        assert first.code == Code.CONTENT, (path, first)
        observer = Observer(path, request)
        observer.task = asyncio.create_task(observer.follow())
        observers[path] = observer
    return observers


def of(sent: list[tuple[str, float, object]], path: str) -> list[tuple[str, float, object]]:
    return [s for s in sent if s[0].startswith(path + "/")]


def complete(observers: dict[str, Observer], sent: list[tuple[str, float, object]]) -> bool:
    return all(len(o.series()) >= len(of(sent, path)) for path, o in observers.items())


def check_series(observers: dict[str, Observer], sent: list[tuple[str, float, object]]) -> None:
    """Every reading of each observed object arrived once, with its time, in the order stored;
    many per notification."""
    for path, observer in observers.items():
        assert observer.series() == of(sent, path), path
        series = [m for m in observer.notifications if m.mtype is CON]
        assert len(series) <= len(of(sent, path)) // 8 + 1, "many readings per notification"


async def cancel(observers: dict[str, Observer]) -> None:
    for observer in observers.values():
        observer.request.observation.cancel()
        if observer.task is not None:
            observer.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await observer.task


async def test_a_1_0_server_gets_the_backlog_stored_before_it_observed(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    async with gateway(tmp_path, server.uri, version="1.0", config=PATIENT) as gw:
        await registered(server)
        assert server.clients[ENDPOINT].version == "1.0"
        sent = gw.burst(30, time.time() - 1000)  # 180 readings
        await until(lambda: gw.delivery.stats(1).failed_sends == 0 and gw.delivery.backlog(1))
        observers = await observe(server, OBSERVED)
        try:
            await until(lambda: complete(observers, sent))
            check_series(observers, sent)
            await until(lambda: gw.delivery.backlog(1) == 0)
            stats = gw.delivery.stats(1)
            assert (stats.delivered, stats.skipped, stats.sends) == (len(sent), 0, 0)
            assert stats.notifications >= len(OBSERVED)
        finally:
            await cancel(observers)


async def test_a_1_0_server_that_was_down_gets_what_arrived_meanwhile(tmp_path: FsPath) -> None:
    """The server goes down (its socket closes: the gateway's notifications meet ICMP errors and
    its observations end) while readings arrive; back, with the registration, it observes
    again and gets all of them."""
    srv = LwM2MTestServer()
    await srv.start()
    try:
        async with gateway(tmp_path, srv.uri, version="1.0", config=PATIENT) as gw:
            await registered(srv)
            observers = await observe(srv, OBSERVED)
            before = gw.burst(2, time.time() - 2000)
            await until(lambda: complete(observers, before))
            await srv.stop()
            sent = gw.burst(20, time.time() - 1000)
            await until(lambda: gw.delivery.stats(1).failed_notifications >= 1)
            session = gw.client.sessions[0]
            await until(lambda: len(session.observations) == 0)
            await srv.start()  # same port, same registration
            again = await observe(srv, OBSERVED)
            try:
                await until(lambda: complete(again, sent))
                check_series(again, sent)
                await until(lambda: gw.delivery.backlog(1) == 0)
                assert gw.delivery.stats(1).delivered == len(before) + len(sent)
            finally:
                await cancel(again)
    finally:
        await srv.stop()


async def test_mute_send_then_unmute_continues_by_send_without_loss(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    async with gateway(tmp_path, server.uri, mute_send=True, config=PATIENT) as gw:
        await registered(server)
        assert server.clients[ENDPOINT].version == "1.1"
        muted = gw.burst(15, time.time() - 2000)
        observers = await observe(server, OBSERVED)
        try:
            await until(lambda: complete(observers, muted))
            check_series(observers, muted)
            await until(lambda: gw.delivery.backlog(1) == 0)
            assert received(server) == []

            answer = await server.request(ENDPOINT, Code.PUT, "/1/0/23", b"0", content_format=0)
            assert answer.code == Code.CHANGED
            sent = gw.burst(15, time.time() - 1000)
            await until(lambda: len(received(server)) >= len(sent))
            assert [(r.name, r.time, r.value) for r in received(server)] == sent
            check_series(observers, muted)  # nothing more as notifications
            # The server records a Send before its acknowledgement reaches the gateway, so the
            # delivered counter moves a moment after the last record arrives: wait for it, then
            # check it did not count more than was sent.
            total = len(muted) + len(sent)
            await until(lambda: gw.delivery.stats(1).delivered >= total)
            assert gw.delivery.stats(1).delivered == total
        finally:
            await cancel(observers)


async def test_readings_not_observed_with_time_are_skipped_and_counted(
    server: LwM2MTestServer, tmp_path: FsPath
) -> None:
    """Temperature is observed in LwM2M JSON, humidity in TLV (no time: it keeps getting the
    current value only), the light not at all; ``observe_grace`` after registering, the server
    has not observed more, and what it does not observe with time is skipped."""
    config = DeliveryConfig(max_records=64, retry=0.05, max_retry=0.2, poll=0.05, observe_grace=0.5)
    async with gateway(tmp_path, server.uri, version="1.0", config=config) as gw:
        await registered(server)
        observers = await observe(server, {"/3303": 11543, "/3304": 11542})
        try:
            sent = gw.burst(20, time.time() - 1000)
            await until(lambda: gw.delivery.backlog(1) == 0)
            temperatures = of(sent, "/3303")
            assert observers["/3303"].series() == temperatures
            assert [m for m in observers["/3304"].notifications if m.mtype is CON] == []
            stats = gw.delivery.stats(1)
            others = len(sent) - len(temperatures)
            assert (stats.delivered, stats.skipped, stats.unobserved) == (
                len(temperatures),
                others,
                others,
            )
        finally:
            await cancel(observers)
