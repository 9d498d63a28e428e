"""The kernel's arrival stamp of a datagram: what an ACK's RTT sample is timed by."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from bridged.engine.udp import arrival, stamp_arrivals


@pytest.mark.skipif(sys.platform != "linux", reason="SO_TIMESTAMPNS is Linux's")
def test_a_stamped_socket_gives_each_datagram_its_arrival_time_apart_from_the_rest() -> None:
    receiver = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        receiver.bind(("::1", 0))
        receiver.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        stamp_arrivals(receiver)
        before = time.time()
        sender.sendto(b"x", receiver.getsockname())
        time.sleep(0.05)  # the datagram waits, as it would for a busy event loop
        data, ancdata, _, _ = receiver.recvmsg(64, 1024)
        rest, at = arrival(ancdata)
    finally:
        receiver.close()
        sender.close()
    assert data == b"x"
    assert at is not None and before <= at < before + 0.04, "stamped when it arrived, not read"
    assert [(level, kind) for level, kind, _ in rest] == [
        (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO)
    ], "the stamp is taken out; the rest is left for aiocoap"
