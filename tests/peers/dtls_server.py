"""A DTLS-PSK LwM2M server stand-in that sends requests into the client's own DTLS session.

LwM2M servers reach a client only through the session the client opened when it registered (same
5-tuple), so a test peer must be able to address requests to the remote an incoming Register came
from. aiocoap's ``tinydtls_server`` transport plays the DTLS server side, but as shipped it cannot
do that, and :class:`_PeerTransport` changes the two things in the way:

* ``recognize_remote`` accepts only plain-UDP addresses, so a request addressed to a DTLS remote
  falls through to ``determine_remote``, which ignores ``coaps`` and the request fails with
  ``NoRequestInterface``. Here a remote is recognised while its session is still in the pool.
* ``create_server`` binds to the requested port plus the CoAP-to-CoAPS default port offset (1),
  which makes ephemeral ports (port 0) unusable. Here the port is used as given.

The registration interface is only as deep as the tests need: Register (``POST /rd?ep=...``)
answers 2.01 with a fresh Location-Path, Update (``POST`` to that location) answers 2.04 and
De-register (``DELETE``) answers 2.02.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiocoap import Code, Context, Message, credentials, interfaces, resource
from aiocoap.protocol import Request
from aiocoap.transports.tinydtls_server import MessageInterfaceTinyDTLSServer, _AddressDTLS


@dataclass(frozen=True)
class Registration:
    """One Register or Update as the server saw it, with the session it arrived on."""

    endpoint: str
    location: tuple[str, ...]
    query: tuple[str, ...]
    payload: bytes
    remote: interfaces.EndpointAddress


class _PeerTransport(MessageInterfaceTinyDTLSServer):  # type: ignore[misc]
    """tinydtls_server that binds the port it is given and can send into existing sessions."""

    @classmethod
    async def create_server(
        cls,
        bind: tuple[str, int],
        ctx: interfaces.MessageManager,
        log: Any,
        loop: asyncio.AbstractEventLoop,
        server_credentials: credentials.CredentialsMap,
    ) -> _PeerTransport:
        self = cls(ctx, log, loop)
        self._pool = await self._serversocket.create(bind, log, loop, self)
        self._pool._server_credentials = server_credentials
        return self

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.sent: list[Message] = []
        self._expected: list[tuple[Callable[[Message], bool], asyncio.Future[Message]]] = []

    def send(self, message: Message) -> None:
        self.sent.append(message)
        for predicate, future in self._expected:
            if not future.done() and predicate(message):
                future.set_result(message)
        self._expected = [(p, f) for p, f in self._expected if not f.done()]
        super().send(message)

    def expect_sent(self, predicate: Callable[[Message], bool]) -> asyncio.Future[Message]:
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._expected.append((predicate, future))
        return future

    async def recognize_remote(self, remote: interfaces.EndpointAddress) -> bool:
        return (
            isinstance(remote, _AddressDTLS)
            and remote._protocol is self._pool
            and self._pool._connections.get(remote._underlying_address.address) is remote
        )

    @property
    def port(self) -> int:
        """The UDP port actually bound (differs from the requested one when that was 0)."""
        sockname = self._pool._transport.get_extra_info("sockname")
        return int(sockname[1])


def _query_value(query: tuple[str, ...], name: str) -> str | None:
    prefix = name + "="
    return next((item[len(prefix) :] for item in query if item.startswith(prefix)), None)


class _RegistrationResource(resource.Resource):  # type: ignore[misc]
    """The Location-Path handed out by a Register: takes Updates and the De-register."""

    def __init__(self, server: DtlsPskServer, endpoint: str, location: tuple[str, ...]) -> None:
        super().__init__()
        self._server = server
        self._endpoint = endpoint
        self._location = location

    async def render_post(self, request: Message) -> Message:
        self._server._record(self._server.updates, request, self._endpoint, self._location)
        return Message(code=Code.CHANGED)

    async def render_delete(self, request: Message) -> Message:
        self._server._site.remove_resource(self._location)
        return Message(code=Code.DELETED)


class _RegistrationDirectory(resource.Resource):  # type: ignore[misc]
    """``/rd``: every Register gets a new location, as a real server's directory would."""

    def __init__(self, server: DtlsPskServer) -> None:
        super().__init__()
        self._server = server
        self._ids: Iterator[int] = itertools.count(1)

    async def render_post(self, request: Message) -> Message:
        endpoint = _query_value(tuple(request.opt.uri_query), "ep")
        if endpoint is None:
            return Message(code=Code.BAD_REQUEST, payload=b"ep missing")
        location = ("rd", f"r{next(self._ids)}")
        self._server._site.add_resource(
            location, _RegistrationResource(self._server, endpoint, location)
        )
        self._server._record(self._server.registrations, request, endpoint, location)
        return Message(code=Code.CREATED, location_path=location)


class DtlsPskServer:
    """An LwM2M server on 127.0.0.1 that accepts one PSK identity and talks back to its clients.

    Registers and Updates are queued (``registrations``, ``updates``) so tests await them instead
    of sleeping; :meth:`request` sends a request to a registered client over its own session.
    """

    def __init__(self, context: Context, transport: _PeerTransport, site: resource.Site) -> None:
        self.context = context
        self._transport = transport
        self._site = site
        self.registrations: asyncio.Queue[Registration] = asyncio.Queue()
        self.updates: asyncio.Queue[Registration] = asyncio.Queue()
        site.add_resource(("rd",), _RegistrationDirectory(self))

    @classmethod
    async def start(
        cls, identity: bytes, key: bytes, *, host: str = "127.0.0.1", port: int = 0
    ) -> DtlsPskServer:
        """Listen on ``host:port`` (0: an ephemeral port) for clients using ``identity``/``key``."""
        server_credentials = credentials.CredentialsMap()
        server_credentials[":client"] = credentials.DTLS(psk=key, client_identity=identity)
        site = resource.Site()
        context = Context(
            serversite=site, loggername="dtls-test-server", server_credentials=server_credentials
        )
        loop = asyncio.get_running_loop()
        transports: list[_PeerTransport] = []

        async def create(mman: interfaces.MessageManager) -> _PeerTransport:
            transport = await _PeerTransport.create_server(
                (host, port), mman, context.log, loop, server_credentials
            )
            transports.append(transport)
            return transport

        await context._append_tokenmanaged_messagemanaged_transport(create)
        return cls(context, transports[0], site)

    @property
    def port(self) -> int:
        return self._transport.port

    def serve(self, path: tuple[str, ...], served: resource.Resource) -> None:
        """Also serve ``served`` at ``path`` (a firmware package, say) to the clients."""
        self._site.add_resource(path, served)

    @property
    def sent(self) -> list[Message]:
        """Every message the server sent, in order: shows how requests were split into blocks."""
        return self._transport.sent

    def expect_sent(self, predicate: Callable[[Message], bool]) -> asyncio.Future[Message]:
        """A future for the next message the server sends that matches ``predicate``.

        Lets a test wait for the server's side of an exchange (an ACK, a RST) without sleeping.
        """
        return self._transport.expect_sent(predicate)

    @property
    def uri(self) -> str:
        """The Server URI a client puts in /0/x/0 to reach this server."""
        return f"coaps://127.0.0.1:{self.port}"

    def _record(
        self,
        queue: asyncio.Queue[Registration],
        request: Message,
        endpoint: str,
        location: tuple[str, ...],
    ) -> None:
        queue.put_nowait(
            Registration(
                endpoint=endpoint,
                location=location,
                query=tuple(request.opt.uri_query),
                payload=request.payload,
                remote=request.remote,
            )
        )

    def request(self, registration: Registration, message: Message) -> Request:
        """Send ``message`` to the client of ``registration`` over the session it registered on."""
        message.remote = registration.remote
        return self.context.request(message)

    async def shutdown(self) -> None:
        """Close the socket without a close_notify, as a crashing or restarting server would."""
        await self.context.shutdown()
