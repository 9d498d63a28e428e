"""OMA LwM2M 1.1 interop, Registration (OMA-ETS-LightweightM2M-V1_1 int-101 .. int-107), against
Eclipse Leshan 2.0.0-M4 with the real daemon (instances mode, simulated nodes behind it).

Every assertion is on what Leshan decoded and reports: its REGISTRATION / UPDATED /
DEREGISTRATION events and its client list. One daemon serves the module's cases, in file order
(each case leaves the registration as the next one expects it).

Not run here: int-105 Discarded Register Update needs a server that drops a registration on
request; Leshan's demo API has no such call. int-108/109 (queue mode) need a server that holds
requests for a sleeping client; Leshan M4 does, but the daemon's queue mode is proven against the
in-repo server (tests/integration/test_queue_mode.py).
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from integration.test_daemon import Daemon

from peers.leshan import Event, EventStream, Leshan, leshan_events
from peers.leshan_gateway import link_urls, registered_daemon

pytest_plugins = ["peers.fixtures"]
pytestmark = pytest.mark.asyncio(loop_scope="module")

EP = "gw-leshan-registration"
LIFETIME = 120


events = leshan_events("module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(
    tmp_path_factory: pytest.TempPathFactory, leshan: Leshan, events: EventStream
) -> AsyncIterator[tuple[Daemon, Event]]:
    tmp = tmp_path_factory.mktemp("reg")
    async with registered_daemon(tmp, leshan, events, EP, lifetime=LIFETIME) as running:
        yield running


async def test_LightweightM2M_1_1_int_101_initial_registration(
    gateway: tuple[Daemon, Event], leshan: Leshan
) -> None:
    """int-101: Leshan registers the endpoint as LwM2M 1.1, UDP binding, with the configured
    lifetime and the gateway's objects; the Security object /0 is never listed (Core 6.2.1)."""
    _, registration = gateway
    data = registration.data
    assert (data["lwM2mVersion"], data["lifetime"], data["bindingMode"]) == ("1.1", LIFETIME, "U")
    urls = link_urls(registration)
    assert {"/1/0", "/3/0", "/4/0"} <= urls
    assert not any(url == "/0" or url.startswith("/0/") for url in urls)
    listed = await leshan.client(EP)
    assert listed is not None and listed["registrationId"] == data["registrationId"]


async def test_LightweightM2M_1_1_int_102_registration_update_with_the_paired_nodes_objects(
    gateway: tuple[Daemon, Event], events: EventStream
) -> None:
    """int-102: pairing a node adds its objects as gateway instances; Leshan takes the Update
    and now lists them."""
    daemon, _ = gateway
    await daemon.call("pair", node="sim:0001", name="porch")
    update = await events.next("UPDATED", endpoint=EP)
    objects = {url.split("/")[1] for url in link_urls(update)}
    assert {"3303", "3304", "3311"} <= objects


async def test_LightweightM2M_1_1_int_104_registration_update_trigger(
    gateway: tuple[Daemon, Event], leshan: Leshan, events: EventStream
) -> None:
    """int-104: Leshan executes /1/0/8 Registration Update Trigger; the client answers 2.04
    and sends an Update, which Leshan reports."""
    events.drain("UPDATED")
    answer = await leshan.execute(EP, "/1/0/8")
    assert answer.code == "2.04", answer.raw
    await events.next("UPDATED", endpoint=EP)


async def test_LightweightM2M_1_1_int_107_extending_the_lifetime_and_updates_by_lifetime(
    gateway: tuple[Daemon, Event], leshan: Leshan, events: EventStream
) -> None:
    """int-107: Leshan writes /1/0/1 Lifetime; the client sends an Update carrying it (lt=), and
    from then on Updates before that lifetime runs out, unasked (Core 6.2.2)."""
    events.drain("UPDATED")
    written = await leshan.write_value(EP, "/1/0/1", 6, "TLV")
    assert written.code == "2.04", written.raw
    changed = await events.next("UPDATED", endpoint=EP)
    assert changed.data["registration"]["lifetime"] == 6
    assert changed.data["update"]["lifeTimeInSec"] == 6
    # Nothing is asked now: the next Update is the client's own, before 6 s have passed.
    again = await events.next("UPDATED", endpoint=EP, timeout=20)
    assert again.data["registration"]["lifetime"] == 6
    assert (await leshan.read(EP, "/1/0/1", "TEXT")).value == 6
    assert (await leshan.write_value(EP, "/1/0/1", LIFETIME, "TLV")).code == "2.04"
    restored = await events.next(
        "UPDATED", endpoint=EP, match=lambda d: d["registration"]["lifetime"] == LIFETIME
    )
    assert restored.data["update"]["lifeTimeInSec"] == LIFETIME


async def test_LightweightM2M_1_1_int_103_deregistration_on_sigterm(
    gateway: tuple[Daemon, Event], leshan: Leshan, events: EventStream
) -> None:
    """int-103: SIGTERM (systemctl stop) de-registers: Leshan reports the De-register and no
    longer lists the client; the daemon exits 0."""
    daemon, registration = gateway
    daemon.proc.send_signal(signal.SIGTERM)
    gone = await events.next("DEREGISTRATION", endpoint=EP)
    assert gone.data["registrationId"] == registration.data["registrationId"]
    assert await daemon.wait() == 0
    assert await leshan.client(EP) is None
