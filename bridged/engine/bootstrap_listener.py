"""Bootstrap-Server-initiated bootstrap: the gateway listens for its Bootstrap-Server at any time.

LwM2M names four bootstrap modes (Core 1.1 §6.1, the Bootstrap interface); in the Server Initiated
one the client has a Bootstrap-Server account (a /0 instance with Bootstrap-Server = true) and
the Bootstrap-Server, which knows by its own means that the client is reachable, sends the
Bootstrap-Write, Read, Discover and Delete requests without any Bootstrap-Request, and ends with
Bootstrap-Finish; the client then registers with the LwM2M Servers it was given. The
client-initiated session (``bootstrap_client``) serves the Bootstrap-Server only on the socket
its own Bootstrap-Request went out of, so this module keeps a socket of its own open, on
``[bootstrap] server_initiated_port``.

Who is served: the Bootstrap-Server of the account only, as on the NoSec uplink. Over NoSec
(coap://) that is its address and port as the account's URI names them; a request from any
other address or port is dropped unanswered (the ``peers_only`` socket of ``coap``, with the
Bootstrap-Server admitted up front). Over coaps:// the gateway is the DTLS server
(``dtls_listen``) and only a handshake with the account's credentials opens a session: its PSK
identity (/0/x/3) and key (/0/x/5); with raw public keys, the Bootstrap-Server's key /0/x/4;
with certificates, a certificate that /0/x/4 and /0/x/15 accept as they would a server's.

A session works on a staged copy, never on the tree the registrations serve: the objects a
Bootstrap-Server provisions (``ids.HOUSEKEEPING``) with their values, and the other objects'
instances without values so that a Bootstrap-Discover lists them. Bootstrap-Write and Delete
reach the provisioned objects only (4.00 elsewhere). A Bootstrap-Finish that fails the
consistency check is 4.06 and changes nothing the gateway runs with (the Bootstrap-Server may
go on and finish again); an accepted one hands the staged objects to ``on_finish``, which the
client applies as one whole (see ``client.LwM2MClient``). A session the Bootstrap-Server leaves
silent for ``silence`` seconds is forgotten, and the next request starts from the live tree
again. While the client is in a bootstrap of its own, or applying a finished one, requests
are 5.03: one bootstrap at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code

from bridged.objects.ids import HOUSEKEEPING, Security, SecurityMode
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree

from .bootstrap import (
    SECURITY_MODE_NAMES,
    BootstrapAccount,
    BootstrapInterface,
    Staged,
    instance_values,
)
from .coap import admit, create_context
from .credentials import RpkCredentials, X509Credentials
from .dm import handle_request, reply_message
from .nodes import NodeBackend

log = logging.getLogger(__name__)

LISTENING_MODES = frozenset(
    {SecurityMode.NOSEC, SecurityMode.PSK, SecurityMode.RPK, SecurityMode.CERTIFICATE}
)
"""The Bootstrap-Server account's security modes the gateway can listen for."""
ANY_ADDRESS = frozenset({"", "::", "0.0.0.0"})


def listener_problem(mode: int, host: str) -> str | None:
    """Why the gateway cannot listen for a Bootstrap-Server in security ``mode`` on ``host``;
    None when it can."""
    if mode not in LISTENING_MODES:
        name = SECURITY_MODE_NAMES.get(mode, str(mode))
        return (
            f"a Bootstrap-Server-initiated bootstrap is not supported in security mode {name}"
            " (only NoSec, PSK, RPK or Certificate)"
        )
    if mode != SecurityMode.NOSEC and host in ANY_ADDRESS:
        return (
            "a coaps:// Bootstrap-Server-initiated bootstrap needs [gateway] bind_address set"
            " to one address: a DTLS server answers from the address it was reached on only"
            " when bound to it"
        )
    return None


def staged_copy(tree: ObjectTree, provisioned: Iterable[int] = HOUSEKEEPING) -> ObjectTree:
    """A tree with ``tree``'s ``provisioned`` objects and their values, and the other objects'
    instances without values (what a Bootstrap-Discover lists)."""
    keep = frozenset(provisioned)
    copy = ObjectTree(tree.definitions)
    for oid in tree.object_ids():
        copy.add_object(oid)
        for iid in tree.instance_ids(oid):
            values = instance_values(tree, oid, iid) if oid in keep else {}
            copy.create_instance(oid, iid, values.items())
    return copy


def provisioned_of(tree: ObjectTree, provisioned: Iterable[int] = HOUSEKEEPING) -> Staged:
    """The instances of ``provisioned`` objects in ``tree``, with their values."""
    return {
        (oid, iid): instance_values(tree, oid, iid)
        for oid in provisioned
        if tree.has(Path((oid,)))
        for iid in tree.instance_ids(oid)
    }


class ServerInitiatedResource(resource.Resource):
    """The site of the listening socket: the Bootstrap interface on a staged copy of ``tree``
    (see the module docstring)."""

    def __init__(
        self,
        tree: ObjectTree,
        *,
        on_finish: Callable[[Staged], None],
        busy: Callable[[], bool],
        silence: float,
        supported_modes: Iterable[int],
        preferred_format: int,
        nodes: NodeBackend | None = None,
    ) -> None:
        super().__init__()
        self.tree = tree
        self.on_finish = on_finish
        self.busy = busy
        self.silence = silence
        self.supported_modes = frozenset(supported_modes)
        self.preferred_format = preferred_format
        self.nodes = nodes
        self._interface: BootstrapInterface | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        if self.busy():
            return aiocoap.Message(
                code=Code.SERVICE_UNAVAILABLE, payload=b"a bootstrap is already under way"
            )
        interface = self._interface
        if interface is None:
            log.info(
                "bootstrap server %s: server-initiated bootstrap started", request.remote.hostinfo
            )
            interface = self._interface = BootstrapInterface(
                staged_copy(self.tree),
                supported_modes=self.supported_modes,
                preferred_format=self.preferred_format,
                nodes=self.nodes,
                confined=True,
            )
        reply = handle_request(interface.handle, request)
        self._forget()
        if interface.finished:
            log.info(
                "bootstrap server %s: server-initiated bootstrap finished", request.remote.hostinfo
            )
            self.on_finish(provisioned_of(interface.tree))
        else:
            self._interface = interface
            self._timer = asyncio.get_running_loop().call_later(self.silence, self._silent)
        return reply_message(reply)

    def _silent(self) -> None:
        log.warning(
            "server-initiated bootstrap: no Bootstrap-Finish, the Bootstrap-Server was silent"
            " for %g s; what it wrote is dropped",
            self.silence,
        )
        self._forget()

    def _forget(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._interface = None

    def close(self) -> None:
        """Drop an unfinished session (the listener is closing)."""
        self._forget()


async def open_listener(
    tree: ObjectTree,
    account: BootstrapAccount,
    bind: tuple[str, int],
    site: Any,
    keys: RpkCredentials | X509Credentials | None = None,
) -> aiocoap.Context:
    """The socket on ``bind`` that serves ``site`` to the Bootstrap-Server of ``account`` only
    (``keys``: the account's raw public keys or certificates, for modes 1 and 2); ValueError
    when its security mode cannot be listened for (``listener_problem``) or its keys are
    missing."""
    problem = listener_problem(account.security_mode, bind[0])
    if problem is not None:
        raise ValueError(problem)
    if account.security_mode == SecurityMode.RPK:
        if not isinstance(keys, RpkCredentials):
            raise ValueError("a raw public key listener needs the account's keys")
        # imported here, as the DTLS listeners are: our tinydtls binding loads cryptography
        # (9 MB), which a gateway without keys goes without (test_daemon_footprint)
        from .dtls_listen import rpk_listener

        return await rpk_listener(site, bind, keys)
    if account.security_mode == SecurityMode.CERTIFICATE:
        if not isinstance(keys, X509Credentials):
            raise ValueError("a certificate listener needs the account's certificates")
        # imported here: pyOpenSSL is in the dtls extra, which a gateway may go without
        from .dtls_openssl import x509_listener

        return await x509_listener(site, bind, keys, urlsplit(account.uri).hostname or "")
    if account.security_mode == SecurityMode.PSK:
        instance = Path((Security.OBJECT, account.iid))
        identity = tree.get(instance.child(Security.IDENTITY))
        key = tree.get(instance.child(Security.SECRET_KEY))
        if not isinstance(identity, bytes) or not isinstance(key, bytes) or not key:
            raise ValueError(f"the Bootstrap-Server account {instance} has no PSK")
        from .dtls_listen import psk_listener

        return await psk_listener(site, bind, identity, key)
    context = await create_context(site, bind, peers_only=True, loggername="bootstrap-listener")
    try:
        await admit(context, account.uri)
    except BaseException:
        await context.shutdown()
        raise
    return context
