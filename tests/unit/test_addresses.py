"""The engine's UDP addresses (bridged.engine.addresses) answer as aiocoap's own do."""

from __future__ import annotations

import socket
import struct

import pytest
from aiocoap.transports.udp6 import UDP6EndpointAddress

from bridged.engine.addresses import Address, cached


class Interface:
    """What an address holds a weak reference to (aiocoap's message interface)."""


def pktinfo(address: str, index: int) -> bytes:
    return socket.inet_pton(socket.AF_INET6, address) + struct.pack("I", index)


@pytest.mark.parametrize(
    ("sockaddr", "local"),
    [
        (("::ffff:127.0.0.1", 5683, 0, 0), None),
        (("::ffff:127.0.0.1", 5683, 0, 0), pktinfo("::ffff:127.0.0.1", 1)),
        (("::ffff:224.0.1.187", 5683, 0, 0), pktinfo("::ffff:224.0.1.187", 1)),
        (("ff02::fd", 5683, 0, 1), pktinfo("ff02::fd", 1)),
        (("ff::1", 5683, 0, 0), None),  # 00ff::1, not multicast
        (("2001:db8::1", 61616, 0, 0), pktinfo("2001:db8::2", 1)),
    ],
)
def test_an_address_answers_as_aiocoaps_own_and_is_equal_to_it(
    sockaddr: tuple[str, int, int, int], local: bytes | None
) -> None:
    interface = Interface()
    plain = UDP6EndpointAddress(sockaddr, interface, pktinfo=local)
    mine = cached(UDP6EndpointAddress(sockaddr, interface, pktinfo=local))
    assert type(mine) is Address and type(plain) is UDP6EndpointAddress
    assert mine == plain and hash(mine) == hash(plain) and mine.interface is interface
    assert repr(mine) == repr(plain)
    assert mine.is_multicast == plain.is_multicast
    if local is not None:  # what aiocoap asks of a received message's address only
        assert mine.is_multicast_locally == plain.is_multicast_locally
        assert mine.as_response_address() == plain.as_response_address()


def test_anything_but_a_plain_udp_address_is_left_as_it_is() -> None:
    address = Address(("::1", 5683, 0, 0), Interface())
    assert cached(address) is address
