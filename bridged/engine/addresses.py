"""UDP peer addresses whose text and multicast checks are computed once per address.

aiocoap 0.4.17 asks a message's remote address for its text and whether it is multicast
several times per message: it names the task that renders every request, and the one that
sends every request, by the message's ``repr``, and checks ``is_multicast`` (and, for an
answer, ``is_multicast_locally``) on the way out. Each of those parses the address with
``ipaddress``, and the text of an address received with its local address asks the kernel for
the interface's name (a socket, an ioctl and a close). For a server reading one resource that
was a quarter of the gateway's CPU per request. The answers depend only on the address, so
:class:`Address` (the same address, the same equality and hash) computes them once per
address, in a bounded cache.
"""

from __future__ import annotations

import functools

from aiocoap import interfaces
from aiocoap.transports.udp6 import UDP6EndpointAddress

CACHED_ADDRESSES = 1024
"""Distinct addresses whose answers are kept (a gateway talks to a handful of servers)."""


@functools.lru_cache(maxsize=CACHED_ADDRESSES)
def _facts(sockaddr: tuple[object, ...], pktinfo: bytes | None) -> tuple[str, bool, bool]:
    """aiocoap's own ``repr``, ``is_multicast`` and ``is_multicast_locally`` of the address."""
    plain = object.__new__(UDP6EndpointAddress)
    plain.sockaddr, plain.pktinfo = sockaddr, pktinfo
    text = repr(plain)
    locally = plain.is_multicast_locally if pktinfo is not None else False
    return text, plain.is_multicast, locally


class Address(UDP6EndpointAddress):
    """A ``UDP6EndpointAddress`` whose text and multicast checks come from the cache."""

    def __repr__(self) -> str:
        return _facts(self.sockaddr, self.pktinfo)[0]

    @property
    def is_multicast(self) -> bool:
        return _facts(self.sockaddr, self.pktinfo)[1]

    @property
    def is_multicast_locally(self) -> bool:
        return _facts(self.sockaddr, self.pktinfo)[2]


def cached(remote: interfaces.EndpointAddress) -> interfaces.EndpointAddress:
    """``remote`` made an :class:`Address` when it is a plain UDP one (a received message's,
    made for that message alone: its class is changed in place, as an Address holds nothing
    more); anything else as it is."""
    if type(remote) is UDP6EndpointAddress:
        remote.__class__ = Address
    return remote
