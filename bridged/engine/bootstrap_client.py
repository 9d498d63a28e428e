"""Client-initiated bootstrap: the session with the Bootstrap-Server, over aiocoap.

A ``Bootstrapper`` sends the Bootstrap-Request (``POST {bootstrap-server-uri}/bs?ep=..&pct=..``)
and, once it is answered 2.04, lets the Bootstrap-Server's requests reach the Bootstrap interface
(``bootstrap.BootstrapInterface``) through the client's site until a Bootstrap-Finish is
accepted. A Bootstrap-Server that goes quiet before Finish (nothing for ``finish_timeout``
seconds) fails the attempt, and so does one that refuses or does not answer the request.
Failed attempts back off as the registration does (``RetryPolicy``), and after the last
sequence the bootstrapper goes on at the sequence delay: an unreachable Bootstrap-Server never
stops the daemon.

Every step is a ``BootstrapEvent`` the daemon can report, like the registration events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urlsplit

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code

from bridged.objects.formats import ContentFormat
from bridged.objects.ids import SecurityMode
from bridged.objects.tree import ObjectTree

from .bootstrap import BootstrapInterface, bootstrap_account, stamp_last_bootstrapped
from .credentials import RpkCredentials, X509Credentials
from .dm import handle_request, reply_message
from .nodes import NodeBackend
from .registration import RetryPolicy
from .site import ClientSite

log = logging.getLogger(__name__)


EXCHANGE_LIFETIME = 247.0
"""CoAP's EXCHANGE_LIFETIME (RFC 7252): the default wait for the Bootstrap-Server's next word."""


@dataclass(frozen=True, slots=True)
class BootstrapConfig:
    """A Bootstrap-Server as the configuration names it (its /0 instance, Bootstrap-Server
    = true), and how patiently to bootstrap."""

    uri: str
    psk_identity: bytes | None = None
    """With ``psk_key``, DTLS-PSK to a coaps:// Bootstrap-Server (security mode 0)."""
    psk_key: bytes | None = field(default=None, repr=False)
    x509: X509Credentials | None = None
    """DTLS with certificates to a coaps:// Bootstrap-Server (security mode 2)."""
    rpk: RpkCredentials | None = None
    """DTLS with raw public keys to a coaps:// Bootstrap-Server (security mode 1)."""
    hold_off: int = 0
    """/0/x/11 Client Hold Off Time: seconds to wait before the Bootstrap-Request."""
    finish_timeout: float = EXCHANGE_LIFETIME
    """Give up an attempt when the Bootstrap-Server has sent nothing for this long."""
    request_timeout: float = 93.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    preferred_format: int = ContentFormat.SENML_CBOR
    """Sent as ``pct`` (LwM2M 1.1), and used for a Bootstrap-Read without Accept."""
    server_initiated_port: int | None = None
    """With a port, the gateway also listens there for the Bootstrap-Server at any time
    (Bootstrap-Server-initiated bootstrap: ``bootstrap_listener``); None: it does not."""

    @property
    def security_mode(self) -> int:
        """/0/x/2 of its account."""
        return security_mode(self.psk_key, self.x509, self.rpk)


def security_mode(
    psk_key: bytes | None, x509: X509Credentials | None, rpk: RpkCredentials | None
) -> int:
    """LwM2M security mode (/0/x/2) of configured credentials (a server's or the
    Bootstrap-Server's): 0 for DTLS-PSK, 1 for raw public keys, 2 for certificates, 3 (NoSec)
    for none."""
    if x509 is not None:
        return SecurityMode.CERTIFICATE
    if rpk is not None:
        return SecurityMode.RPK
    return SecurityMode.PSK if psk_key else SecurityMode.NOSEC


class BootstrapState(Enum):
    """Where a bootstrapper stands."""

    IDLE = "idle"
    HOLD_OFF = "hold-off"
    REQUESTING = "requesting"
    SERVING = "serving"
    RETRY_WAIT = "retry-wait"
    FINISHED = "finished"


class BootstrapEventKind(Enum):
    BOOTSTRAP_STARTED = "bootstrap-started"
    BOOTSTRAP_COMPLETE = "bootstrap-complete"
    BOOTSTRAP_FAILURE = "bootstrap-failure"


@dataclass(frozen=True, slots=True)
class BootstrapEvent:
    kind: BootstrapEventKind
    server: str
    state: BootstrapState
    detail: str = ""


def bootstrap_request_query(endpoint: str, preferred_format: int, version: str) -> list[str]:
    """The Bootstrap-Request query: ``ep``, and from LwM2M 1.1 the preferred content format."""
    query = [f"ep={endpoint}"]
    if version != "1.0":
        query.append(f"pct={int(preferred_format)}")
    return query


class BootstrapResource(resource.Resource):
    """The aiocoap side of the Bootstrap interface for one session.

    Only the Bootstrap-Server may bootstrap: once its address is known (from the answer to the
    Bootstrap-Request) a request from anywhere else is 4.01. ``activity`` is set on every
    request, which is how the session tells a busy server from a silent one.
    """

    def __init__(self, interface: BootstrapInterface) -> None:
        super().__init__()
        self.interface = interface
        self.server_remote: object | None = None
        self.activity = asyncio.Event()

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        if self.server_remote is not None and request.remote != self.server_remote:
            return aiocoap.Message(code=Code.UNAUTHORIZED, payload=b"not the Bootstrap-Server")
        reply = handle_request(self.interface.handle, request)
        self.activity.set()
        return reply_message(reply)


class Bootstrapper:
    """Bootstraps ``tree`` from the Bootstrap-Server account it holds; ``run()`` returns once a
    Bootstrap-Finish has been accepted."""

    def __init__(
        self,
        context: aiocoap.Context,
        site: ClientSite,
        tree: ObjectTree,
        endpoint: str,
        config: BootstrapConfig,
        *,
        supported_modes: Iterable[int] = (SecurityMode.NOSEC,),
        version: str = "1.1",
        on_event: Callable[[BootstrapEvent], None] = lambda e: None,
        nodes: NodeBackend | None = None,
    ) -> None:
        self.context = context
        self.site = site
        self.tree = tree
        self.endpoint = endpoint
        self.config = config
        self.supported_modes = frozenset(supported_modes)
        self.version = version
        self._on_event = on_event
        self.nodes = nodes
        self.state = BootstrapState.IDLE
        self._server = config.uri

    async def run(self) -> None:
        """Bootstrap, retrying with back-off until a Bootstrap-Finish is accepted."""
        first = True
        while True:
            for delay in self.config.retry.delays():
                if await self._attempt(hold_off=first):
                    return
                first = False
                self._set(BootstrapState.RETRY_WAIT)
                await asyncio.sleep(delay)
            pause = self.config.retry.sequence_delay
            self._emit(
                BootstrapEventKind.BOOTSTRAP_FAILURE,
                f"attempts exhausted; next sequence in {pause:g} s",
            )
            await asyncio.sleep(pause)

    # -- internals ---------------------------------------------------------------------------

    def _set(self, state: BootstrapState) -> None:
        if state is not self.state:
            log.debug("bootstrap %s: %s -> %s", self._server, self.state.value, state.value)
            self.state = state

    def _emit(self, kind: BootstrapEventKind, detail: str = "") -> None:
        failure = kind is BootstrapEventKind.BOOTSTRAP_FAILURE
        log.log(
            logging.WARNING if failure else logging.INFO,
            "bootstrap server %s: %s %s",
            self._server,
            kind.value,
            detail,
            extra={"SERVER": self._server, "BOOTSTRAP_EVENT": kind.value},
        )
        self._on_event(BootstrapEvent(kind, self._server, self.state, detail))

    async def _attempt(self, *, hold_off: bool) -> bool:
        account = bootstrap_account(self.tree)
        if account is None or not account.uri:
            self._emit(BootstrapEventKind.BOOTSTRAP_FAILURE, "no Bootstrap-Server account in /0")
            return False
        self._server = account.uri
        if hold_off and account.hold_off:
            self._set(BootstrapState.HOLD_OFF)
            await asyncio.sleep(account.hold_off)
        interface = BootstrapInterface(
            self.tree,
            supported_modes=self.supported_modes,
            preferred_format=self.config.preferred_format,
            version=self.version,
            nodes=self.nodes,
        )
        served = BootstrapResource(interface)
        # The diversion is in place before the request goes out: the Bootstrap-Server may send
        # its first request as soon as it has answered.
        undo = self.site.divert(lambda request: True, served)
        try:
            self._set(BootstrapState.REQUESTING)
            self._emit(BootstrapEventKind.BOOTSTRAP_STARTED, f"endpoint {self.endpoint}")
            answer = await self._request(account.uri)
            if answer is None:
                return False
            if answer.code != Code.CHANGED:
                self._emit(
                    BootstrapEventKind.BOOTSTRAP_FAILURE,
                    f"Bootstrap-Request refused: {answer.code} {bytes(answer.payload)[:80]!r}",
                )
                return False
            served.server_remote = answer.remote
            self._set(BootstrapState.SERVING)
            while not interface.finished:
                served.activity.clear()
                try:
                    async with asyncio.timeout(self.config.finish_timeout):
                        await served.activity.wait()
                except TimeoutError:
                    self._emit(
                        BootstrapEventKind.BOOTSTRAP_FAILURE,
                        f"no Bootstrap-Finish: the server was silent for "
                        f"{self.config.finish_timeout:g} s",
                    )
                    return False
        finally:
            undo()
        stamp_last_bootstrapped(self.tree, int(time.time()))
        self._set(BootstrapState.FINISHED)
        self._emit(BootstrapEventKind.BOOTSTRAP_COMPLETE)
        return True

    async def _request(self, uri: str) -> aiocoap.Message | None:
        """Send the Bootstrap-Request; None (and a failure event) when it is not answered."""
        split = urlsplit(uri)
        base = [s for s in split.path.split("/") if s]
        msg = aiocoap.Message(
            code=Code.POST, uri=f"{split.scheme}://{split.netloc}/" + "/".join([*base, "bs"])
        )
        msg.opt.uri_query = (
            *(q for q in split.query.split("&") if q),
            *bootstrap_request_query(self.endpoint, self.config.preferred_format, self.version),
        )
        try:
            async with asyncio.timeout(self.config.request_timeout):
                return await self.context.request(msg).response
        except (aiocoap.error.Error, TimeoutError, OSError) as e:
            self._emit(BootstrapEventKind.BOOTSTRAP_FAILURE, f"no answer: {type(e).__name__} {e}")
            return None
