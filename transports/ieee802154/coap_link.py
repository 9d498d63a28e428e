"""CoAP over the 6LoWPAN link: an aiocoap message interface whose datagrams are UDP payloads
carried by the radio, not by a socket.

The nodes on the air are LwM2M clients over CoAP/UDP/6LoWPAN. Toward them the gateway needs
everything a CoAP endpoint does (confirmable retransmission, deduplication, tokens, block-wise,
Observe), which aiocoap already does well above its message layer. So the radio is plugged in
below aiocoap's message manager, like a socket: :class:`LowpanMessageInterface` hands every
outgoing CoAP message to ``send_datagram`` (the link's ``send``, which compresses, fragments and
transmits it) and takes every UDP payload the link reassembled in :meth:`received`. The context
is made by the gateway's CoAP helper (``TransportHost.append_message_interface``), so the
node-facing side has the same bounded deduplication and Message-ID pacing as the server-facing
side.

A node's address is its IPv6 address and UDP port; its EUI-64 (the identity it is paired by)
travels with the address but is not part of its identity as a CoAP peer.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Callable, Iterator
from typing import Any

import aiocoap
from aiocoap import error, interfaces
from aiocoap.numbers.constants import COAP_PORT
from aiocoap.util import hostportsplit

from ..base import MessageInterfaceHelper
from .coap_notification import CoapDecodeError, Notification, decode_notification

log = logging.getLogger(__name__)

BLOCK_SIZE_EXP = 6
"""1024-byte blocks: 6LoWPAN fragmentation carries an IPv6 MTU of 1280 bytes, so a CoAP message
of about 1,152 bytes fits one datagram, and larger payloads go block-wise."""

SendDatagram = Callable[["LowpanAddress", bytes], None]


class LowpanAddress(interfaces.EndpointAddress):
    """A peer on the 6LoWPAN link: IPv6 address and UDP port (and its EUI-64 when known)."""

    scheme = "coap"
    is_multicast = False
    is_multicast_locally = False
    maximum_block_size_exp = BLOCK_SIZE_EXP

    def __init__(
        self,
        interface: LowpanMessageInterface,
        ip: bytes,
        port: int,
        eui64: bytes | None = None,
    ) -> None:
        self.interface = interface
        self.ip = ip
        self.port = port
        self.eui64 = eui64

    def __hash__(self) -> int:
        return hash((self.ip, self.port))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LowpanAddress) and (self.ip, self.port) == (other.ip, other.port)

    def __repr__(self) -> str:
        return f"<LowpanAddress {self.hostinfo}>"

    @property
    def hostinfo(self) -> str:
        return f"[{ipaddress.IPv6Address(self.ip)}]:{self.port}"

    @property
    def hostinfo_local(self) -> str:
        return self.interface.local.hostinfo

    @property
    def uri_base(self) -> str:
        return f"coap://{self.hostinfo}"

    @property
    def uri_base_local(self) -> str:
        return f"coap://{self.hostinfo_local}"

    @property
    def blockwise_key(self) -> tuple[bytes, int]:
        return (self.ip, self.port)

    def as_response_address(self) -> LowpanAddress:
        return self


class LowpanMessageInterface(interfaces.MessageInterface):
    """aiocoap's message interface over a datagram link (see the module docstring)."""

    def __init__(
        self, mman: interfaces.MessageManager, send_datagram: SendDatagram, ip: bytes, port: int
    ) -> None:
        self._mman: interfaces.MessageManager | None = mman
        self._send_datagram = send_datagram
        self.local = LowpanAddress(self, ip, port)
        self._observed: dict[tuple[bytes, bytes, int], Callable[[Notification], None]] = {}
        """The observations whose NON notifications skip the message manager (``observing``),
        by token and the node's IPv6 address and port: a peer's identity as ``LowpanAddress``
        has it, with no address made and hashed per datagram to find one."""

    def received(self, ip: bytes, port: int, payload: bytes, eui64: bytes | None = None) -> None:
        """A UDP payload for our port arrived from ``ip``/``port``; garbage is logged, dropped.
        A NON notification of an observation in ``observing`` goes to it with no address
        made; everything else goes to aiocoap from a ``LowpanAddress``."""
        if self._mman is None:
            return
        if self._observed:
            try:
                notification = decode_notification(payload)
            except CoapDecodeError:
                notification = None  # aiocoap's decode says what it makes of it, as always
            if notification is not None:
                notified = self._observed.get((notification.token, ip, port))
                if notified is not None:
                    notified(notification)
                    return
        remote = LowpanAddress(self, ip, port, eui64)
        try:
            message = aiocoap.Message.decode(payload, remote=remote)
        except error.UnparsableMessage:
            log.info("unparsable CoAP message from %s dropped", remote.hostinfo)
            return
        self._mman.dispatch_message(message)

    @contextlib.contextmanager
    def observing(
        self, token: bytes, remote: LowpanAddress, notified: Callable[[Notification], None]
    ) -> Iterator[None]:
        """While in the ``with``, hand the NON notifications of the observation of ``token``
        at ``remote`` to ``notified`` as they arrive, decoded by ``decode_notification``, not
        by aiocoap nor through its message manager: a NON response needs no ACK and is not
        deduplicated, so all the layers above would do is find the observation
        (notifications.py says what is checked instead). A notification that decoder leaves
        to aiocoap (in blocks, with an ETag) reaches the observation through aiocoap."""
        key = (token, remote.ip, remote.port)
        self._observed[key] = notified
        try:
            yield
        finally:
            if self._observed.get(key) is notified:
                del self._observed[key]

    def unreachable(self, ip: bytes, port: int, reason: Exception) -> None:
        """The link gave up on ``ip``/``port`` (no ACK after the radio's retries): what is in
        flight to it fails now rather than after CoAP's own retransmissions."""
        if self._mman is not None:
            self._mman.dispatch_error(reason, LowpanAddress(self, ip, port))

    def send(self, message: aiocoap.Message) -> None:
        if self._mman is None:
            return
        self._send_datagram(message.remote, message.encode())

    async def recognize_remote(self, remote: object) -> bool:
        return isinstance(remote, LowpanAddress) and remote.interface is self

    async def determine_remote(self, request: aiocoap.Message) -> LowpanAddress | None:
        if request.requested_scheme not in ("coap", None):
            return None
        if request.unresolved_remote is not None:
            host, port = hostportsplit(request.unresolved_remote)
        elif request.opt.uri_host is not None:
            host, port = request.opt.uri_host, request.opt.uri_port
        else:
            raise ValueError("a request to a node needs the node's address")
        try:
            ip = ipaddress.IPv6Address(host.strip("[]")).packed
        except ValueError:
            return None
        if self._mman is None:
            raise error.LibraryShutdown
        return LowpanAddress(self, ip, port or COAP_PORT)

    async def shutdown(self) -> None:
        self._mman = None


async def create_link_context(
    site: Any,
    send_datagram: SendDatagram,
    ip: bytes,
    port: int,
    append_message_interface: MessageInterfaceHelper,
) -> tuple[aiocoap.Context, LowpanMessageInterface]:
    """A CoAP context serving ``site`` on the 6LoWPAN link as ``ip``/``port``, and its message
    interface (to feed it what the link receives), over the message layer
    ``append_message_interface`` adds."""
    context = aiocoap.Context(serversite=site, loggername="coap-lowpan")
    interfaces_made: list[LowpanMessageInterface] = []

    async def make(mman: Any) -> LowpanMessageInterface:
        interface = LowpanMessageInterface(mman, send_datagram, ip, port)
        interfaces_made.append(interface)
        return interface

    await append_message_interface(context, make)
    return context, interfaces_made[0]
