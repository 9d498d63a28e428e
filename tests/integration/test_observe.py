"""Information reporting end to end: a real client observed by the in-repo test server over
loopback, and by libcoap's coap-client (OMA LwM2M 1.1 int-301..306 and friends).

Notification attributes are given in whole seconds, so the tests that need a pmin or pmax wait
for it; they use one or two seconds and assert only order and content, never timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiocoap
import cbor2
import pytest
from aiocoap import resource
from aiocoap.numbers.codes import Code

from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.coap import BoundedMessageManager
from bridged.engine.registration import RetryPolicy
from bridged.engine.sockets import SharedEngine
from bridged.engine.udp import guard_stale_icmp_errors
from bridged.objects.builtin import builtin_definitions
from bridged.objects.formats import ContentFormat
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from peers.gateway import client_port
from peers.lwm2m_server import LwM2MTestServer

TEMPERATURE = Path((3303, 0, 5700))
TIMEOUT = 10.0


@pytest.fixture(params=["own context"])
async def client(
    request: pytest.FixtureRequest, server: LwM2MTestServer
) -> AsyncIterator[LwM2MClient]:
    """The client on a context of its own, or (parametrized ``"shared engine"``) on a socket
    of the endpoints mode's shared engine, which reads and writes its sockets itself."""
    engine = SharedEngine() if request.param == "shared engine" else None
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(3, 0, [(0, "ACME"), (16, "U")])
    tree.create_instance(3303, 0, [(5700, 21.5), (5750, "kitchen")])
    tree.create_instance(3303, 1, [(5700, 19.0)])
    c = LwM2MClient(
        tree,
        "gw-1",
        ServerConfig(uri=server.uri, request_timeout=3.0, retry=RetryPolicy(2, 0.05, 0.1, 1)),
        bind=("127.0.0.1", 0),
        **({} if engine is None else {"udp": engine.open}),
    )
    await c.start()
    await server.next_event("register")
    yield c
    await c.stop()
    if engine is not None:
        await engine.shutdown()


class Notifications:
    """The notifications of one observation as they arrive, the first response included."""

    def __init__(self, request: aiocoap.protocol.Request) -> None:
        self.request = request
        self.queue: asyncio.Queue[aiocoap.Message] = asyncio.Queue()
        self.ended: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
        assert request.observation is not None
        request.observation.register_callback(self.queue.put_nowait, _suppress_deprecation=True)
        request.observation.register_errback(self._end, _suppress_deprecation=True)

    def _end(self, e: Exception) -> None:
        if not self.ended.done():
            self.ended.set_result(e)

    async def first(self) -> aiocoap.Message:
        async with asyncio.timeout(TIMEOUT):
            return await self.request.response

    async def next(self, timeout: float = TIMEOUT) -> aiocoap.Message:
        async with asyncio.timeout(timeout):
            return await self.queue.get()

    async def until(self, payload: bytes) -> aiocoap.Message:
        """Skip notifications until one carries ``payload``."""
        while (m := await self.next()).payload != payload:
            pass
        return m

    def cancel(self) -> None:
        assert self.request.observation is not None
        self.request.observation.cancel()


def observe(server: LwM2MTestServer, path: str, **kwargs: object) -> Notifications:
    return Notifications(server.observe("gw-1", path, **kwargs))  # type: ignore[arg-type]


async def write_attributes(server: LwM2MTestServer, path: str, *query: str) -> None:
    response = await server.request("gw-1", Code.PUT, path, query=query)
    assert response.code == Code.CHANGED, response


async def observation_count(client: LwM2MClient, count: int) -> None:
    async with asyncio.timeout(TIMEOUT):
        while len(client.sessions[0].observations) != count:
            await asyncio.sleep(0.01)


async def test_LightweightM2M_1_1_int_301_observe_a_resource(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-301: Observe of a resource, notified on change, with a growing
    Observe number and the first response's format."""
    n = observe(server, "/3303/0/5700")
    first = await n.first()
    assert (first.code, first.payload) == (Code.CONTENT, b"21.5") and first.opt.observe is not None
    assert first.opt.content_format == ContentFormat.TEXT
    client.tree.set(TEMPERATURE, 22.0)
    note = await n.next()
    assert (note.code, note.payload) == (Code.CONTENT, b"22.0")
    assert note.opt.observe > first.opt.observe
    assert note.mtype == aiocoap.NON
    client.tree.set(TEMPERATURE, 23.0)
    later = await n.next()
    assert later.payload == b"23.0" and later.opt.observe > note.opt.observe


async def test_LightweightM2M_1_1_int_302_observe_an_instance_and_an_object(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-302: Observe of an object instance and of an object; any change
    under them notifies, in the format the observation asked for."""
    inst = observe(server, "/3303/0", accept=ContentFormat.SENML_JSON)
    obj = observe(server, "/3303", accept=ContentFormat.SENML_CBOR)
    assert (await inst.first()).opt.content_format == ContentFormat.SENML_JSON
    assert (await obj.first()).opt.content_format == ContentFormat.SENML_CBOR
    client.tree.set(Path((3303, 0, 5750)), "hall")
    note = await inst.next()
    assert note.opt.content_format == ContentFormat.SENML_JSON and b"hall" in note.payload
    note = await obj.next()
    assert note.opt.content_format == ContentFormat.SENML_CBOR
    assert "hall" in [r.get(3) for r in cbor2.loads(note.payload)]
    client.tree.set(Path((3303, 1, 5700)), 5.0)
    assert 5.0 in [r.get(2) for r in cbor2.loads((await obj.next()).payload)]


async def test_observe_a_resource_instance(client: LwM2MClient, server: LwM2MTestServer) -> None:
    """Observe of a resource instance (/3/0/11/0, an error code)."""
    client.tree.set(Path((3, 0, 11)), {0: 0})
    n = observe(server, "/3/0/11/0")
    assert (await n.first()).payload == b"0"
    client.tree.set(Path((3, 0, 11, 0)), 3)
    assert (await n.next()).payload == b"3"


async def test_LightweightM2M_1_1_int_303_pmin_coalesces_changes(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-303: with pmin=1, three changes right after the observation
    started make one notification, carrying the last value."""
    await write_attributes(server, "/3303/0/5700", "pmin=1")
    n = observe(server, "/3303/0/5700")
    await n.first()
    for v in (22.0, 23.0, 24.0):
        client.tree.set(TEMPERATURE, v)
    assert (await n.next()).payload == b"24.0"
    client.tree.set(TEMPERATURE, 25.0)
    assert (await n.next()).payload == b"25.0"


async def test_LightweightM2M_1_1_int_304_pmax_notifies_without_change(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-304: pmax=1 on the instance (inherited by the resource) sends
    notifications of an unchanged value."""
    await write_attributes(server, "/3303/0", "pmax=1")
    n = observe(server, "/3303/0/5700")
    first = await n.first()
    again = await n.next()
    assert again.payload == first.payload == b"21.5"
    assert (await n.next()).opt.observe > again.opt.observe


async def test_LightweightM2M_1_1_int_305_gt_lt_st(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-305/306: gt, lt and st. Values that do not cross a threshold or
    step far enough are not notified: the next notification is the one that does."""
    await write_attributes(server, "/3303/0/5700", "gt=25", "lt=10")
    n = observe(server, "/3303/0/5700")
    await n.first()
    client.tree.set(TEMPERATURE, 24.0)  # below gt, above lt: nothing
    client.tree.set(TEMPERATURE, 26.0)  # crosses gt upward
    assert (await n.next()).payload == b"26.0"
    client.tree.set(TEMPERATURE, 12.0)  # crosses gt downward
    assert (await n.next()).payload == b"12.0"
    client.tree.set(TEMPERATURE, 11.0)
    client.tree.set(TEMPERATURE, 9.0)  # crosses lt
    assert (await n.next()).payload == b"9.0"
    n.cancel()

    await write_attributes(server, "/3303/0/5700", "gt", "lt", "st=2")
    s = observe(server, "/3303/0/5700")
    assert (await s.first()).payload == b"9.0"
    client.tree.set(TEMPERATURE, 10.0)
    client.tree.set(TEMPERATURE, 10.5)
    client.tree.set(TEMPERATURE, 11.5)  # 2.5 from the last value notified
    assert (await s.next()).payload == b"11.5"


async def test_LightweightM2M_1_1_int_307_cancel_with_observe_1(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-307: a GET with Observe=1 cancels the observation and is answered
    as a Read."""
    n = observe(server, "/3303/0/5700")
    await n.first()
    await observation_count(client, 1)
    response = await server.request("gw-1", Code.GET, "/3303/0/5700", observe=1)
    assert (response.code, response.payload, response.opt.observe) == (Code.CONTENT, b"21.5", None)
    await observation_count(client, 0)


async def test_LightweightM2M_1_1_int_309_cancel_by_rst_to_a_notification(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-309: the server answers confirmable notifications with RST; the
    first one that gets it ends the observation (with liveness 0, every notification after a
    NON is a CON). The RST to a NON is tested on its own below."""
    client.sessions[0].observations.liveness = 0.0
    server.reset = lambda message: message.mtype == aiocoap.CON
    n = observe(server, "/3303/0/5700")
    assert (await n.first()).payload == b"21.5"
    await observation_count(client, 1)
    v = 0.0
    async with asyncio.timeout(TIMEOUT):
        while not server.resets:
            v += 1.0
            client.tree.set(TEMPERATURE, v)
            while not server.resets and n.queue.empty():
                await asyncio.sleep(0.01)
            while not n.queue.empty():
                assert n.queue.get_nowait().mtype == aiocoap.NON
    await observation_count(client, 0)


async def test_confirmable_notification_after_silence(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """After a NON, a server silent for ``liveness`` gets the next notification as a CON."""
    client.sessions[0].observations.liveness = 0.0
    n = observe(server, "/3303/0/5700")
    await n.first()
    client.tree.set(TEMPERATURE, 1.0)
    first = await n.next()
    client.tree.set(TEMPERATURE, 2.0)
    second = await n.next()
    assert {first.mtype, second.mtype} == {aiocoap.NON, aiocoap.CON}


async def test_LightweightM2M_1_1_int_308_observe_composite(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-308: Observe-Composite (FETCH, SenML CBOR paths) notifies all
    its paths when one of them changes."""
    paths = cbor2.dumps([{0: "/3303/0/5700"}, {0: "/3303/1/5700"}])
    n = Notifications(
        server.observe(
            "gw-1",
            "/",
            code=Code.FETCH,
            payload=paths,
            content_format=ContentFormat.SENML_CBOR,
            accept=ContentFormat.SENML_CBOR,
        )
    )
    first = await n.first()
    assert first.code == Code.CONTENT and first.opt.observe is not None
    assert [r[2] for r in cbor2.loads(first.payload)] == [21.5, 19.0]
    client.tree.set(Path((3303, 1, 5700)), 18.0)
    note = await n.next()
    assert note.opt.content_format == ContentFormat.SENML_CBOR
    assert [r[2] for r in cbor2.loads(note.payload)] == [21.5, 18.0]


async def test_deleting_the_observed_instance_ends_with_not_found(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """An observation of a path that is deleted ends with 4.04."""
    n = observe(server, "/3303/1/5700")
    await n.first()
    response = await server.request("gw-1", Code.DELETE, "/3303/1")
    assert response.code == Code.DELETED
    last = await n.next()
    assert (last.code, last.opt.observe) == (Code.NOT_FOUND, None)
    await observation_count(client, 0)


async def test_hold_and_release_for_queue_mode(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """Held notifications are not sent; release sends the latest state."""
    observations = client.sessions[0].observations
    n = observe(server, "/3303/0/5700")
    await n.first()
    observations.hold()
    client.tree.set(TEMPERATURE, 30.0)
    client.tree.set(TEMPERATURE, 31.0)
    await asyncio.sleep(0.05)
    assert n.queue.empty()
    observations.release()
    assert (await n.next()).payload == b"31.0"


async def test_libcoap_coap_client_observes(client: LwM2MClient, server: LwM2MTestServer) -> None:
    """An independent CoAP implementation (libcoap's coap-client -s), from the server's address
    and port, observes a resource and gets notifications with growing Observe numbers."""
    from peers.libcoap import CoapClient, CoapClientMissing

    try:
        coap = CoapClient(bind=("127.0.0.1", server.port))
    except CoapClientMissing as e:
        pytest.skip(str(e))
    uri = f"coap://127.0.0.1:{client_port(client)}/3303/0/5700"
    async with coap.observe(uri, duration=20) as observation:
        first = await observation.next()
        assert (first.code, first.payload) == ("2.05", b"21.5")
        numbers = [first.observe]
        for v in (22.0, 23.0):
            client.tree.set(TEMPERATURE, v)
            note = await observation.next()
            assert (note.code, note.payload) == ("2.05", str(v).encode())
            numbers.append(note.observe)
    assert None not in numbers and numbers == sorted(numbers)  # type: ignore[type-var]


@pytest.fixture
def any_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's socket serves any address, as it did before it served only its server's:
    the stale ICMP hazard needs a second peer on it."""
    monkeypatch.setattr(BoundedMessageManager, "serves", lambda self, remote: True)


async def _observer_gone_then_change(client: LwM2MClient, server: LwM2MTestServer) -> Notifications:
    """The issue's sequence: another peer observes with a CON request and goes away (its
    socket closes), then the server observes; one change then notifies the departed peer first
    (an ICMP port-unreachable comes back) and the server right after, in the same pass."""
    gone = await aiocoap.Context.create_client_context(transports=["udp6"])
    request = aiocoap.Message(
        code=Code.GET, uri=f"coap://127.0.0.1:{client_port(client)}/3303/0/5700", observe=0
    )
    async with asyncio.timeout(TIMEOUT):
        await gone.request(request).response
    await gone.shutdown()
    n = observe(server, "/3303/0/5700")
    await n.first()
    await observation_count(client, 2)
    client.tree.set(TEMPERATURE, 30.0)
    return n


@pytest.mark.usefixtures("any_source")
async def test_aiocoap_hazard_reproduced_without_the_guard(
    client: LwM2MClient,
    server: LwM2MTestServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without the guard the stale ICMP error of the departed peer is blamed on the server:
    aiocoap ends the server's observation while delivering its notification, with
    ``TypeError: 'bool' object is not iterable``, and nothing more is notified (the server is
    not told: it just stops hearing)."""
    await client.stop()
    monkeypatch.setattr("bridged.engine.uplink.guard_stale_icmp_errors", lambda context: 0)
    await client.start()
    await server.next_event("register")
    await _observer_gone_then_change(client, server)
    await observation_count(client, 0)  # the server's observation too, though it is fine
    assert "'bool' object is not iterable" in caplog.text


@pytest.mark.usefixtures("any_source")
@pytest.mark.parametrize("client", ["own context", "shared engine"], indirect=True)
async def test_notifications_keep_flowing_after_another_observer_went_away(
    client: LwM2MClient, server: LwM2MTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With the guard the departed peer's error reaches only its own observation: the server's
    observation gets this notification and the next ones."""
    n = await _observer_gone_then_change(client, server)
    assert (await n.next()).payload == b"30.0"
    await observation_count(client, 1)
    for v in (31.0, 32.0, 33.0):
        client.tree.set(TEMPERATURE, v)
        assert (await n.next()).payload == str(v).encode()
    assert "not iterable" not in caplog.text


def test_the_guard_covers_the_udp_transport() -> None:
    async def scenario() -> int:
        site = resource.Site()
        context = await aiocoap.Context.create_server_context(
            site, bind=("127.0.0.1", 0), transports=["udp6"]
        )
        try:
            return guard_stale_icmp_errors(context)
        finally:
            await context.shutdown()

    assert asyncio.run(scenario()) == 1


async def test_a_new_observation_fires_its_pmax_while_the_scheduler_sleeps_without_deadline(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-301/304: an observation without pmax leaves the scheduler with
    nothing to wake for; a new observation with pmax=1 must still get its pmax notification
    (the scheduler wakes when the set of observations changes)."""
    await write_attributes(server, "/3303/0/5700", "pmax=1")
    quiet = observe(server, "/3303/1/5700")
    await quiet.first()
    await observation_count(client, 1)
    n = observe(server, "/3303/0/5700")
    first = await n.first()
    again = await n.next()
    assert again.payload == first.payload == b"21.5"
    assert again.opt.observe > first.opt.observe


async def test_a_short_pmax_added_next_to_a_long_one_fires_at_its_own_period(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """A pmax=1 observation added while the scheduler sleeps toward a pmax=60 one is notified
    at its own period, not after the long one's (the wait here is far below 60 s)."""
    await write_attributes(server, "/3303/1/5700", "pmax=60")
    await write_attributes(server, "/3303/0/5700", "pmax=1")
    slow = observe(server, "/3303/1/5700")
    await slow.first()
    await observation_count(client, 1)
    n = observe(server, "/3303/0/5700")
    await n.first()
    assert (await n.next(timeout=TIMEOUT)).payload == b"21.5"
    assert slow.queue.empty()


async def test_LightweightM2M_1_1_int_302_rst_to_a_non_notification_ends_that_observation(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """RFC 7641 §3.6: a server that answers a non-confirmable notification with an RST has
    cancelled that observation (matched by the notification's Message ID). No notification
    with its token arrives after the RST, while another observation keeps notifying."""
    control = observe(server, "/3303/0/5700")
    await control.first()
    forgotten = observe(server, "/3303/0", accept=ContentFormat.SENML_CBOR)
    token = (await forgotten.first()).token
    await observation_count(client, 2)
    server.reset = lambda message: message.token == token
    client.tree.set(TEMPERATURE, 1.0)
    assert (await control.next()).payload == b"1.0"
    await observation_count(client, 1)
    assert [m.mtype for m in server.resets] == [aiocoap.NON]
    for v in (2.0, 3.0, 4.0):
        client.tree.set(TEMPERATURE, v)
        assert (await control.next()).payload == str(v).encode()
    assert len(server.resets) == 1 and forgotten.queue.empty()


async def test_observations_past_the_bound_are_answered_as_reads(
    server: LwM2MTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """``max_observations``: past the bound an Observe gets its 2.05 without the Observe
    option (RFC 7641 §4.1: the server knows it does not observe), logged once; changes then
    notify the observations within the bound only."""
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(3303, 0, [(5700, 21.5)])
    tree.create_instance(3303, 1, [(5700, 19.0)])
    config = ServerConfig(uri=server.uri, request_timeout=3.0, max_observations=2)
    client = LwM2MClient(tree, "gw-1", config, bind=("127.0.0.1", 0))
    await client.start()
    try:
        await server.next_event("register")
        kept = [observe(server, "/3303/0/5700"), observe(server, "/3303/1/5700")]
        for n in kept:
            assert (await n.first()).opt.observe is not None
        await observation_count(client, 2)
        for path in ("/3303/0", "/3303/1"):
            declined = await server.observe("gw-1", path).response
            assert (declined.code, declined.opt.observe) == (Code.CONTENT, None)
        assert len(client.sessions[0].observations) == 2
        tree.set(TEMPERATURE, 30.0)
        assert (await kept[0].next()).payload == b"30.0"
        declines = [r for r in caplog.records if "max_observations" in r.getMessage()]
        assert len(declines) == 1
    finally:
        await client.stop()


async def discover(server: LwM2MTestServer, path: str) -> aiocoap.Message:
    return await server.request("gw-1", Code.GET, path, accept=ContentFormat.LINK_FORMAT)


async def test_LightweightM2M_1_1_int_260_261_discover_reports_inherited_attributes(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LightweightM2M-1.1-int-260 F / int-261 C (LwM2M Core §5.4.1): a Discover of a resource
    reports the attributes that apply to it, inherited from its object and instance; one of an
    instance reports the instance's own and its resources' own; one of an object its own."""
    client.tree.set(Path((3, 0, 11)), {0: 0})
    await write_attributes(server, "/3", "pmin=10", "pmax=200")
    await write_attributes(server, "/3/0", "pmax=320")
    await write_attributes(server, "/3/0/16", "pmin=5")
    resource = await discover(server, "/3/0/11")
    assert resource.code == Code.CONTENT
    assert resource.payload.decode().split(",") == [
        "</3/0/11>;dim=1;pmin=10;pmax=320",
        "</3/0/11/0>",
    ]
    inherited = (await discover(server, "/3/0/16")).payload.decode()
    assert inherited == "</3/0/16>;pmin=5;pmax=320"
    instance = (await discover(server, "/3/0")).payload.decode().split(",")
    assert instance[0] == "</3/0>;pmax=320"
    assert "</3/0/16>;pmin=5" in instance and "</3/0/11>;dim=1" in instance
    obj = (await discover(server, "/3")).payload.decode().split(",")
    assert obj[0].startswith("</3>") and obj[0].endswith(";pmin=10;pmax=200")
    assert "</3/0/16>" in obj


async def test_discover_of_a_resource_instance_is_method_not_allowed(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """LwM2M Core's response codes: Discover addresses an object, instance or resource; one of
    a resource instance is 4.05."""
    client.tree.set(Path((3, 0, 11)), {0: 0})
    answer = await discover(server, "/3/0/11/0")
    assert answer.code == Code.METHOD_NOT_ALLOWED


async def test_a_deleted_instance_takes_its_attributes_along_and_leaves_the_others(
    client: LwM2MClient, server: LwM2MTestServer
) -> None:
    """A DELETE drops the Write-Attributes of the instance and its resources, as the server's
    Discover shows: an instance created again with the same ID starts bare, while the other
    instance and the object keep theirs."""
    await write_attributes(server, "/3303", "pmax=90")
    await write_attributes(server, "/3303/0", "pmax=60")
    await write_attributes(server, "/3303/0/5700", "pmin=5")
    await write_attributes(server, "/3303/1/5700", "pmin=7")
    response = await server.request("gw-1", Code.DELETE, "/3303/0")
    assert response.code == Code.DELETED
    client.tree.create_instance(3303, 0, [(5700, 18.0)])
    again = (await discover(server, "/3303/0")).payload.decode().split(",")
    assert again == ["</3303/0>", "</3303/0/5700>"]
    assert (await discover(server, "/3303/0/5700")).payload.decode() == "</3303/0/5700>;pmax=90"
    kept = (await discover(server, "/3303/1")).payload.decode().split(",")
    assert kept == ["</3303/1>", "</3303/1/5700>;pmin=7"]
    assert (await discover(server, "/3303")).payload.decode().startswith("</3303>;ver=1.1;pmax=90")
