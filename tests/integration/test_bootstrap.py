"""Bootstrap end to end: the client bootstraps from the in-repo Bootstrap-Server over loopback,
registers with the provisioned server, keeps what it was given across restarts, and falls back
to bootstrapping when it has to (OMA LwM2M 1.1 int-0, 4, 6, 7, 8, 9)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pathlib
import stat
from collections.abc import AsyncIterator

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code

from bridged.engine.bootstrap_client import BootstrapConfig, BootstrapEvent, BootstrapEventKind
from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.provisioning import FILE_NAME, ProvisioningStore
from bridged.engine.registration import EventKind, RegistrationEvent, RetryPolicy
from bridged.objects.builtin import builtin_definitions
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from peers.bootstrap_server import BootstrapTestServer, enabler_version, security, server
from peers.lwm2m_server import LwM2MTestServer

FAST_RETRY = RetryPolicy(count=2, timer=0.05, sequence_delay=0.1, sequence_count=1)


@pytest.fixture
async def bs() -> AsyncIterator[BootstrapTestServer]:
    async with BootstrapTestServer() as srv:
        yield srv


@pytest.fixture
async def dm_server() -> AsyncIterator[LwM2MTestServer]:
    async with LwM2MTestServer() as srv:
        yield srv


def gateway_tree() -> ObjectTree:
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(3, 0, [(0, "ACME"), (16, "U")])
    tree.create_instance(3303, 0, [(5700, 21.5)])
    return tree


class Clients:
    """Makes clients and stops every one of them at the end of the test."""

    def __init__(self) -> None:
        self.started: list[LwM2MClient] = []
        self.events: asyncio.Queue[BootstrapEvent] = asyncio.Queue()
        self.registrations: asyncio.Queue[RegistrationEvent] = asyncio.Queue()

    async def start(
        self,
        bootstrap_uri: str,
        state_dir: pathlib.Path | None = None,
        server_config: ServerConfig | None = None,
        **bootstrap: object,
    ) -> LwM2MClient:
        config = BootstrapConfig(
            uri=bootstrap_uri,
            request_timeout=3.0,
            retry=FAST_RETRY,
            **bootstrap,  # type: ignore[arg-type]
        )
        client = LwM2MClient(
            gateway_tree(),
            "gw-1",
            server_config,
            bind=("127.0.0.1", 0),
            bootstrap=config,
            state_dir=state_dir,
            on_event=self.registrations.put_nowait,
            on_bootstrap_event=self.events.put_nowait,
        )
        await client.start()
        self.started.append(client)
        return client

    async def next_event(self, kind: BootstrapEventKind, timeout: float = 10.0) -> BootstrapEvent:
        async with asyncio.timeout(timeout):
            while (event := await self.events.get()).kind is not kind:
                pass
        return event

    async def registered(self, timeout: float = 10.0) -> None:
        """Wait until a client has its Register answered."""
        async with asyncio.timeout(timeout):
            while (await self.registrations.get()).kind is not EventKind.REGISTRATION_COMPLETE:
                pass


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    made = Clients()
    yield made
    for client in made.started:
        await client.stop()


async def test_LightweightM2M_1_1_int_0_client_initiated_bootstrap_then_register(
    bs: BootstrapTestServer,
    dm_server: LwM2MTestServer,
    clients: Clients,
    tmp_path: pathlib.Path,
) -> None:
    """LightweightM2M-1.1-int-0: Bootstrap-Request with ep and pct, provisioning, Finish, then a
    Register at the provisioned server; the configuration is saved, readable by its owner only."""
    await clients.start(bs.uri, tmp_path)
    request = await bs.next_request()
    assert request.query == {"ep": "gw-1", "pct": "112"}
    await bs.provision(request, dm_server.uri)
    await clients.next_event(BootstrapEventKind.BOOTSTRAP_COMPLETE)
    register = await dm_server.next_event("register")
    assert register.endpoint == "gw-1" and register.query["lt"] == "300"
    state = tmp_path / FILE_NAME
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


async def test_LightweightM2M_1_1_int_6_bootstrap_sequence(
    bs: BootstrapTestServer, dm_server: LwM2MTestServer, clients: Clients
) -> None:
    """LightweightM2M-1.1-int-6: Discover, Read, Delete, Write and Finish in one session."""
    client = await clients.start(bs.uri)
    request = await bs.next_request()
    discovered = await bs.discover(request)
    assert discovered.code == Code.CONTENT
    assert enabler_version(discovered.payload) == "1.1"
    links = discovered.payload.decode()
    assert f'</0/0>;uri="{bs.uri}"' in links, "the Bootstrap-Server account has no ssid"
    assert "</3/0>" in links and "</3303/0>" in links

    assert (await bs.delete(request)).code == Code.DELETED
    response = await bs.write(request, "/0/1", security(1, dm_server.uri, ssid=7))
    assert response.code == Code.CHANGED
    assert (await bs.write(request, "/1/1", server(1, 7, lifetime=120))).code == Code.CHANGED
    read = await bs.read(request, "/1/1/1")
    assert (read.code, read.opt.content_format) == (Code.CONTENT, 110)
    assert b"120" in read.payload

    links = (await bs.discover(request, "/0")).payload.decode()
    assert f'</0/1>;ssid=7;uri="{dm_server.uri}"' in links
    assert "</1/1>;ssid=7" in (await bs.discover(request, "/1")).payload.decode()

    assert (await bs.finish(request)).code == Code.CHANGED
    register = await dm_server.next_event("register")
    assert register.query["lt"] == "120"
    assert [s.registrar.target.uri for s in client.sessions] == [dm_server.uri]


async def test_LightweightM2M_1_1_int_4_bootstrap_delete(
    bs: BootstrapTestServer, clients: Clients
) -> None:
    """LightweightM2M-1.1-int-4: Delete / removes the servers' configuration but keeps the
    Bootstrap-Server account and the Device object."""
    await clients.start(bs.uri)
    request = await bs.next_request()
    await bs.write(request, "/0/5", security(5, "coap://127.0.0.1:9", ssid=9))
    await bs.write(request, "/1/5", server(5, 9))
    assert (await bs.delete(request)).code == Code.DELETED
    links = (await bs.discover(request)).payload.decode()
    assert "</0/0>" in links and "</0/5>" not in links and "</1/5>" not in links
    assert "</3/0>" in links
    assert (await bs.delete(request, "/0/0")).code == Code.BAD_REQUEST
    assert (await bs.delete(request, "/3/0")).code == Code.BAD_REQUEST


async def test_LightweightM2M_1_1_int_8_bootstrap_read(
    bs: BootstrapTestServer, dm_server: LwM2MTestServer, clients: Clients
) -> None:
    """LightweightM2M-1.1-int-8: /1 reads, /0 and other objects do not."""
    await clients.start(bs.uri)
    request = await bs.next_request()
    await bs.write(request, "/1/1", server(1, 7, lifetime=600))
    response = await bs.read(request, "/1")
    assert response.code == Code.CONTENT
    records = json.loads(response.payload)
    assert records[0]["bn"] == "/1/" and {"n": "1/1", "v": 600} in records
    assert (await bs.read(request, "/0")).code == Code.UNAUTHORIZED
    assert (await bs.read(request, "/3/0")).code == Code.UNAUTHORIZED
    assert (await bs.read(request, "/1/9")).code == Code.NOT_FOUND


async def test_LightweightM2M_1_1_int_9_inconsistent_finish_is_refused(
    bs: BootstrapTestServer, dm_server: LwM2MTestServer, clients: Clients
) -> None:
    """LightweightM2M-1.1-int-9: Finish without a complete server account is 4.06 with a
    diagnostic, the session goes on, and a consistent Finish then succeeds."""
    await clients.start(bs.uri)
    request = await bs.next_request()
    await bs.write(request, "/0/1", security(1, dm_server.uri, ssid=7))
    refused = await bs.finish(request)
    assert refused.code == Code.NOT_ACCEPTABLE
    assert b"no Server instance has Short Server ID 7" in refused.payload
    await bs.write(request, "/1/1", server(1, 7))
    assert (await bs.finish(request)).code == Code.CHANGED
    await dm_server.next_event("register")


async def test_restart_registers_without_bootstrapping(
    bs: BootstrapTestServer,
    dm_server: LwM2MTestServer,
    clients: Clients,
    tmp_path: pathlib.Path,
) -> None:
    """What a bootstrap provisioned survives a restart: the second start registers at once and
    the Bootstrap-Server hears nothing."""
    first = await clients.start(bs.uri, tmp_path)
    await bs.provision(await bs.next_request(), dm_server.uri)
    await clients.registered()
    await first.stop()
    clients.started.remove(first)
    await dm_server.next_event("deregister")

    second = await clients.start(bs.uri, tmp_path)
    register = await dm_server.next_event("register")
    assert register.endpoint == "gw-1"
    assert bs.requests.empty()
    assert [s.registrar.target.uri for s in second.sessions] == [dm_server.uri]


async def test_corrupt_state_file_falls_back_to_bootstrap(
    bs: BootstrapTestServer,
    dm_server: LwM2MTestServer,
    clients: Clients,
    tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A truncated state file is named in the log, kept aside, and the client bootstraps."""
    state = tmp_path / FILE_NAME
    state.write_bytes(b"\xa3fformat\x01")
    with caplog.at_level(logging.ERROR, logger="bridged.engine.provisioning"):
        await clients.start(bs.uri, tmp_path)
    assert str(state) in caplog.text
    kept = [p for p in tmp_path.iterdir() if p.name.startswith(f"{FILE_NAME}.bad-")]
    assert [p.read_bytes() for p in kept] == [b"\xa3fformat\x01"]
    await bs.provision(await bs.next_request(), dm_server.uri)
    await dm_server.next_event("register")
    assert state.exists() and os.path.getsize(state) > 10


async def test_LightweightM2M_1_1_int_7_fallback_to_bootstrap(
    bs: BootstrapTestServer, dm_server: LwM2MTestServer, clients: Clients
) -> None:
    """LightweightM2M-1.1-int-7: registration with the configured server fails for good, so the
    client bootstraps (/1/x/16 defaults to true) and registers where it is told."""
    dead = ServerConfig(uri="coap://127.0.0.1:9", request_timeout=1.0, retry=FAST_RETRY)
    await clients.start(bs.uri, server_config=dead)
    request = await bs.next_request()
    await bs.provision(request, dm_server.uri)
    await dm_server.next_event("register")


async def test_silent_bootstrap_server_is_retried(
    bs: BootstrapTestServer, clients: Clients
) -> None:
    """A Bootstrap-Server that never sends Finish fails the attempt, and the client asks again."""
    await clients.start(bs.uri, finish_timeout=0.3)
    await bs.next_request()
    failure = await clients.next_event(BootstrapEventKind.BOOTSTRAP_FAILURE)
    assert "no Bootstrap-Finish" in failure.detail
    await bs.next_request()


async def test_unreachable_bootstrap_server_does_not_stop_the_client(clients: Clients) -> None:
    """No Bootstrap-Server at the address: failures are reported and the client keeps trying."""
    await clients.start("coap://127.0.0.1:9")
    for _ in range(2):
        await clients.next_event(BootstrapEventKind.BOOTSTRAP_STARTED)
        await clients.next_event(BootstrapEventKind.BOOTSTRAP_FAILURE)


async def test_refused_bootstrap_request_is_a_failure(clients: Clients) -> None:
    async with BootstrapTestServer(answer=Code.BAD_REQUEST) as refusing:
        await clients.start(refusing.uri)
        failure = await clients.next_event(BootstrapEventKind.BOOTSTRAP_FAILURE)
        assert "refused" in failure.detail and "4.00" in failure.detail


async def test_only_the_bootstrap_server_may_bootstrap(
    bs: BootstrapTestServer, dm_server: LwM2MTestServer, clients: Clients
) -> None:
    """While bootstrapping, a request from another address is not served: the bootstrap
    socket serves the Bootstrap-Server's address only, and drops it unanswered."""
    await clients.start(bs.uri)
    request = await bs.next_request()
    assert dm_server.context is not None
    msg = Message(code=Code.DELETE, uri_path=("0",))
    msg.remote = request.remote
    response = asyncio.ensure_future(dm_server.context.request(msg).response)
    done, _ = await asyncio.wait([response], timeout=3)
    assert not done
    response.cancel()


def _state_with_dead_server(state_dir: pathlib.Path, **server_extra: int | bool) -> None:
    """A saved configuration whose only server does not answer, retrying fast (/1/x/17-20)."""
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(0, 0, [(0, "coap://127.0.0.1:9"), (1, False), (2, 3), (10, 4)])
    values: list[tuple[int, int | bool | str]] = [(0, 4), (1, 60), (6, False), (7, "U")]
    values += [(17, 1), (18, 0), (19, 0), (20, 1)]
    values += [(int(k.removeprefix("r")), v) for k, v in server_extra.items()]
    tree.create_instance(1, 0, values)
    ProvisioningStore(state_dir).save(tree)


async def test_no_fallback_when_bootstrap_on_registration_failure_is_false(
    bs: BootstrapTestServer, clients: Clients, tmp_path: pathlib.Path
) -> None:
    """/1/x/16 = false: the client keeps trying its server and never asks for a bootstrap."""
    _state_with_dead_server(tmp_path, r16=False)
    await clients.start(bs.uri, tmp_path)
    sequences = 0
    async with asyncio.timeout(10):
        while sequences < 3:
            event = await clients.registrations.get()
            if event.kind is EventKind.REGISTRATION_FAILURE and event.state.value == "retry-wait":
                sequences += 1
    assert bs.requests.empty()


async def test_provisioned_retry_resources_lead_to_fallback(
    bs: BootstrapTestServer, dm_server: LwM2MTestServer, clients: Clients, tmp_path: pathlib.Path
) -> None:
    """A loaded configuration retries as its /1/x/17-20 say, then falls back to bootstrap."""
    _state_with_dead_server(tmp_path)
    await clients.start(bs.uri, tmp_path)
    await bs.provision(await bs.next_request(), dm_server.uri)
    await clients.registered()
    loaded = ObjectTree(builtin_definitions())
    assert ProvisioningStore(tmp_path).load(loaded)
    assert loaded.get(Path.parse("/0/1/0")) == dm_server.uri, "the new configuration is saved"


async def test_bootstrap_request_trigger(
    bs: BootstrapTestServer, dm_server: LwM2MTestServer, clients: Clients
) -> None:
    """Executing /1/x/9 makes the client de-register and bootstrap again."""
    await clients.start(bs.uri)
    await bs.provision(await bs.next_request(), dm_server.uri)
    await clients.registered()
    response = await dm_server.request("gw-1", Code.POST, "/1/1/9")
    assert response.code == Code.CHANGED
    await dm_server.next_event("deregister")
    await bs.provision(await bs.next_request(), dm_server.uri, ssid=8)
    await clients.registered()
