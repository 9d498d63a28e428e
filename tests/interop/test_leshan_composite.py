"""OMA LwM2M 1.1 interop, the composite operations (OMA-ETS-LightweightM2M-V1_1 int-229, 230, 235,
236, 257 Read-/Write-Composite; int-304, 305, 310 Observe-Composite and its cancel) and int-303 (an
observation cancelled with the Observe option), with the real daemon (instances mode, a
simulated node paired, plain coap://) against Eclipse Leshan 2.0.0-M15's LwM2M server, whose
library sends them all (Leshan M4's demo has no route for any of them).

Every case asserts what Leshan itself decoded: the values of its Read-Composite's answer and of
each Observe-Composite notification, the code of a Write-Composite; and a Write-Composite that
addresses a node's switch is checked where it lands, in the node's own later report.

Leshan M15 refuses a record with a time in a Read-Composite answer and in an Observe-Composite's
first answer ("value should not be timestamped"), and the gateway gives a node's value with the
time the node measured it: the cases that need Leshan to decode such an answer are strict
xfails. It decodes the same records in Observe-Composite notifications.

One daemon serves the module, in file order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from integration.test_daemon import Daemon, running_daemon, until

from bridged.objects.formats import ContentFormat
from peers.leshan_gateway import config
from peers.leshan_m15 import LeshanM15, leshan_m15_fixture  # noqa: F401 (fixture)

pytestmark = pytest.mark.asyncio(loop_scope="module")

EP = "gw-leshan15-composite"
NODE = "sim:0001"
SENML = [ContentFormat.SENML_CBOR, ContentFormat.SENML_JSON]
REFUSES_TIMESTAMPS = pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="Leshan M15 limitation: it refuses a record with a time in a Read-Composite answer and "
    "in an Observe-Composite's first answer ('value should not be timestamped'); the gateway "
    "gives a node's value with the time the node measured it, which Core 1.1 §7.4.5 does not "
    "forbid (OMA_LwM2M_for_Developers#567)",
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(
    tmp_path_factory: pytest.TempPathFactory, leshan_m15: LeshanM15
) -> AsyncIterator[Daemon]:
    """The daemon registered to Leshan M15 with the node paired: Leshan's registration lists
    the node's instances, as a user sees them in its web UI. (The node's first Send follows the
    Update that lists them: Leshan answers 4.04 to a Send naming an instance it was not told
    of, which would make the daemon register again and Leshan cancel a test's request.)"""
    tmp = tmp_path_factory.mktemp("composite")
    async with running_daemon(tmp, config(leshan_m15.uri, tmp, EP)) as daemon:
        await leshan_m15.event(EP, "registered")
        await daemon.call("pair", node=NODE, name="porch")
        instance = (await daemon.upstream(NODE, "/3303/0/5700")).rsplit("/", 1)[0]

        async def listed() -> bool:
            clients = await asyncio.to_thread(leshan_m15.clients)
            links = [c["links"] for c in clients if c["endpoint"] == EP]
            return bool(links) and instance in {link["url"] for link in links[0]}

        await until(listed, timeout=60)
        yield daemon


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def temperature(gateway: Daemon) -> str:
    return await gateway.upstream(NODE, "/3303/0/5700")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def switch(gateway: Daemon) -> str:
    return await gateway.upstream(NODE, "/3311/0/5850")


def a_temperature(value: Any) -> bool:
    """A simulated node's temperature as Leshan decodes it: a Float in the node's range."""
    return isinstance(value, float) and 17.9 <= value <= 24.1


def refused_timestamped(answer: dict[str, Any]) -> bool:
    """Leshan M15 refused the answer for a record with a time (see the xfail cases)."""
    return "value should not be timestamped" in answer.get("failure", "")


async def node_reported(daemon: Daemon, path: str, value: Any, after: float) -> None:
    """The node itself reported ``value`` at ``path`` in a report made after ``after`` (its own
    state, not what the gateway wrote for it)."""

    async def reported() -> bool:
        shown = await daemon.call("node.show", node=NODE)
        assert isinstance(shown, dict)
        return any(
            v["path"] == path and v["value"] == value and v.get("time", 0) > after
            for v in shown["values"]
        )

    await until(reported)


async def notifications_meanwhile(leshan_m15: LeshanM15, after: int) -> list[dict[str, Any]]:
    """Leshan's notifications from event ``after`` on, taken while an observation of /1/0/7
    with pmax=1 notifies twice: long enough for a change made before to be notified."""
    keeper = "/1/0/7"
    attributes = await leshan_m15.write_attributes(EP, keeper, pmin=0, pmax=1)
    assert attributes.get("code") == "2.04", attributes
    assert (await leshan_m15.observe(EP, keeper, ContentFormat.TLV)).get("code") == "2.05"
    index = after
    for _ in range(2):
        index, _ = await leshan_m15.event(
            EP, "notification", after=index, match=lambda e: e.get("path") == keeper
        )
        index += 1
    return [e for e in leshan_m15.events(EP)[after:] if e["event"] == "notification"]


@pytest.mark.parametrize("fmt", SENML, ids=lambda f: f.name)
async def test_LightweightM2M_1_1_int_229_read_composite(
    gateway: Daemon, leshan_m15: LeshanM15, fmt: ContentFormat
) -> None:
    """int-229: Leshan's Read-Composite (FETCH, the paths in ``fmt``) of the gateway's /3/0/0
    Manufacturer, /1/0/1 Lifetime and /1/0/7 Binding: one answer in ``fmt`` that Leshan
    decodes into the three values, each of its type."""
    answer = await leshan_m15.read_composite(EP, ["/3/0/0", "/1/0/1", "/1/0/7"], fmt)
    assert answer.get("code") == "2.05", answer
    values = answer["values"]
    assert isinstance(values.pop("/3/0/0"), str), values
    assert values == {"/1/0/1": 120, "/1/0/7": "U"}, answer


@REFUSES_TIMESTAMPS
@pytest.mark.parametrize("fmt", SENML, ids=lambda f: f.name)
async def test_LightweightM2M_1_1_int_229_read_composite_with_a_node_value(
    gateway: Daemon, leshan_m15: LeshanM15, temperature: str, fmt: ContentFormat
) -> None:
    """int-229 across the gateway and a node: /3/0/0 and the node's temperature in one
    Read-Composite; Leshan decodes a string and a Float of the node's range."""
    answer = await leshan_m15.read_composite(EP, ["/3/0/0", temperature], fmt)
    assert not refused_timestamped(answer), answer
    assert answer.get("code") == "2.05", answer
    assert isinstance(answer["values"]["/3/0/0"], str), answer
    assert a_temperature(answer["values"][temperature]), answer


@REFUSES_TIMESTAMPS
async def test_LightweightM2M_1_1_int_235_read_composite_of_the_root(
    gateway: Daemon, leshan_m15: LeshanM15, temperature: str
) -> None:
    """int-235: Read-Composite of the root path ``/``: every object the gateway serves a server,
    the Device object's and the node's values among them."""
    answer = await leshan_m15.read_composite(EP, ["/"], ContentFormat.SENML_CBOR)
    assert not refused_timestamped(answer), answer
    assert answer.get("code") == "2.05", answer
    assert isinstance(answer["values"]["/3/0/0"], str), answer
    assert a_temperature(answer["values"][temperature]), answer
    assert not any(p.startswith("/0/") for p in answer["values"]), "the Security object"


async def test_LightweightM2M_1_1_int_236_read_composite_partial_presence(
    gateway: Daemon, leshan_m15: LeshanM15
) -> None:
    """int-236 (Read-Composite, partial presence): a Read-Composite naming an instance that
    does not exist answers 2.05 with what exists; Leshan decodes the two present values."""
    answer = await leshan_m15.read_composite(
        EP, ["/3/0/0", "/1/99/1", "/1/0/1"], ContentFormat.SENML_CBOR
    )
    assert answer.get("code") == "2.05", answer
    assert set(answer["values"]) == {"/3/0/0", "/1/0/1"}, answer


async def test_LightweightM2M_1_1_int_230_257_write_composite(
    gateway: Daemon, leshan_m15: LeshanM15, switch: str
) -> None:
    """int-230/257: Leshan's Write-Composite (iPATCH) of the node's switch and the gateway's
    /3/0/15 Timezone, in SenML CBOR then SenML JSON: 2.04; Leshan's Read-Composite decodes the
    timezone as written, and the node's own next report carries the switch it was given."""
    for fmt, on, zone in ((SENML[0], True, "Europe/Paris"), (SENML[1], False, "Asia/Tokyo")):
        written = await leshan_m15.write_composite(EP, {switch: on, "/3/0/15": zone}, fmt)
        assert written.get("code") == "2.04", written
        written_at = time.time()
        read = await leshan_m15.read_composite(EP, ["/3/0/15"], fmt)
        assert read.get("values") == {"/3/0/15": zone}, read
        await node_reported(gateway, "/3311/0/5850", on, written_at)


COMPOSITE = ["/3/0/15", "/1/0/1"]
"""What the Observe-Composite cases observe: the gateway's Timezone and the server's Lifetime."""


async def test_LightweightM2M_1_1_int_304_310_observe_composite(
    gateway: Daemon, leshan_m15: LeshanM15
) -> None:
    """int-304/310: Leshan's Observe-Composite of /3/0/15 and /1/0/1 (SenML CBOR): the first
    answer decodes both; when Leshan's Write-Composite changes the timezone, Leshan gets a
    notification of the composite observation that decodes the new timezone with the
    lifetime."""
    before = len(leshan_m15.events(EP))
    answer = await leshan_m15.observe_composite(EP, COMPOSITE, ContentFormat.SENML_CBOR)
    assert answer.get("code") == "2.05", answer
    assert answer["values"]["/1/0/1"] == 120 and isinstance(answer["values"]["/3/0/15"], str)
    written = await leshan_m15.write_composite(EP, {"/3/0/15": "UTC"}, ContentFormat.SENML_CBOR)
    assert written.get("code") == "2.04", written
    _, note = await leshan_m15.event(
        EP,
        "notification",
        after=before,
        match=lambda e: e.get("paths") == COMPOSITE and e["values"].get("/3/0/15") == "UTC",
    )
    assert note["code"] == "2.05" and note["values"]["/1/0/1"] == 120, note


@REFUSES_TIMESTAMPS
async def test_LightweightM2M_1_1_int_304_observe_composite_of_a_node(
    gateway: Daemon, leshan_m15: LeshanM15, temperature: str, switch: str
) -> None:
    """int-304 of a node: Leshan decodes the answer to its Observe-Composite of the node's
    temperature and switch."""
    answer = await leshan_m15.observe_composite(EP, [temperature, switch], SENML[0])
    assert not refused_timestamped(answer), answer
    assert answer.get("code") == "2.05", answer
    assert a_temperature(answer["values"][temperature]) and answer["values"][switch] in (
        True,
        False,
    ), answer


async def test_LightweightM2M_1_1_int_310_305_observe_composite_of_a_node_notifies(
    gateway: Daemon, leshan_m15: LeshanM15, temperature: str, switch: str
) -> None:
    """int-310/305 of a node: whatever Leshan M15 made of the first answer (it refuses its
    time, int-304 above), its composite observation of the node's temperature and switch
    stands, and it decodes the notifications: the node's switch, changed by Leshan's
    Write-Composite and reported by the node, off then on, each with a temperature. Cancelled
    actively, the observation notifies no more."""
    paths = [temperature, switch]
    answer = await leshan_m15.observe_composite(EP, paths, SENML[0])
    assert answer.get("code") == "2.05" or refused_timestamped(answer), answer
    index = len(leshan_m15.events(EP))
    for on in (False, True):
        written = await leshan_m15.write_composite(EP, {switch: on}, SENML[0])
        assert written.get("code") == "2.04", written
        index, note = await leshan_m15.event(
            EP,
            "notification",
            after=index,
            match=lambda e, on=on: e.get("paths") == paths and e["values"].get(switch) is on,
        )
        assert note["code"] == "2.05" and a_temperature(note["values"].get(temperature)), note
    cancelled = await leshan_m15.cancel_composite(EP, paths)
    assert cancelled.get("code") == "2.05" or refused_timestamped(cancelled), cancelled
    after = len(leshan_m15.events(EP))
    late = [e for e in await notifications_meanwhile(leshan_m15, after) if e.get("paths") == paths]
    assert not late, f"notifications after the cancel: {late}"


async def test_LightweightM2M_1_1_int_305_cancel_observe_composite(
    gateway: Daemon, leshan_m15: LeshanM15
) -> None:
    """int-305: Leshan cancels its composite observation actively (the same FETCH with
    Observe=1): the client answers it (2.05, the values), and then notifies no more, though the
    timezone changes. The observation is made here, not taken over from int-304/310 above: a
    test does not rest on what an earlier one left standing."""
    zone = await leshan_m15.write_composite(EP, {"/3/0/15": "UTC"}, ContentFormat.SENML_CBOR)
    assert zone.get("code") == "2.04", zone
    answer = await leshan_m15.observe_composite(EP, COMPOSITE, ContentFormat.SENML_CBOR)
    assert answer.get("code") == "2.05", answer
    cancelled = await leshan_m15.cancel_composite(EP, COMPOSITE)
    assert cancelled.get("code") == "2.05", cancelled
    assert cancelled["values"] == {"/3/0/15": "UTC", "/1/0/1": 120}, cancelled
    after = len(leshan_m15.events(EP))
    zone = {"/3/0/15": "Europe/Berlin"}
    written = await leshan_m15.write_composite(EP, zone, ContentFormat.SENML_CBOR)
    assert written.get("code") == "2.04", written
    meanwhile = await notifications_meanwhile(leshan_m15, after)
    late = [e for e in meanwhile if e.get("paths") == COMPOSITE]
    assert not late, f"notifications after the cancel: {late}"


async def test_LightweightM2M_1_1_int_303_cancel_with_the_observe_option(
    gateway: Daemon, leshan_m15: LeshanM15
) -> None:
    """int-303: Leshan observes /3/0/15 (text), then cancels actively (the same GET with
    Observe=1): the client answers it with the value, and notifies no more of it, though
    Leshan's Write-Composite changes it."""
    path = "/3/0/15"
    zone = await leshan_m15.write_composite(EP, {path: "Europe/Berlin"}, ContentFormat.SENML_JSON)
    assert zone.get("code") == "2.04", zone
    observed = await leshan_m15.observe(EP, path, ContentFormat.TEXT)
    assert observed.get("values") == {path: "Europe/Berlin"}, observed
    cancelled = await leshan_m15.cancel(EP, path)
    assert cancelled.get("code") == "2.05", cancelled
    assert cancelled["values"] == {path: "Europe/Berlin"}, cancelled
    after = len(leshan_m15.events(EP))
    written = await leshan_m15.write_composite(EP, {path: "UTC"}, ContentFormat.SENML_JSON)
    assert written.get("code") == "2.04", written
    late = [e for e in await notifications_meanwhile(leshan_m15, after) if e.get("path") == path]
    assert not late, f"notifications after the cancel: {late}"


async def test_every_case_ran_on_the_one_registration(
    gateway: Daemon, leshan_m15: LeshanM15
) -> None:
    """Last in file order: the cases above ran on the registration the module began with.
    Leshan saw one Register of the gateway and no de-registration: the node's first Send came
    after the Update that listed its instance (one that beat it got 4.04, the daemon registered
    again, and Leshan cancelled the request of whichever case was under way)."""
    kinds = [e["event"] for e in await asyncio.to_thread(leshan_m15.events, EP)]
    assert kinds.count("registered") == 1 and "deregistered" not in kinds, kinds
