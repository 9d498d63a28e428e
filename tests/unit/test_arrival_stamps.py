"""The kernel's arrival stamp of a datagram: what an ACK's RTT sample is timed by."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from bridged.engine.coap import rtt_sample
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


def test_an_ack_is_timed_by_its_stamp_when_the_stamp_is_consistent() -> None:
    """Sent at wall 1000.0 / monotonic 50.0; the ACK arrived 0.02 s later and was read when
    the busy loop got to it, 0.3 s after the send: the sample is the server's 0.02 s."""
    assert rtt_sample((1000.0, 50.0), 1000.02, 50.3) == pytest.approx(0.02)


@pytest.mark.parametrize("step", [3600.0, -3600.0, 0.5])
def test_a_wall_clock_step_between_send_and_ack_does_not_become_an_rtt(step: float) -> None:
    """A Raspberry Pi has no RTC: its first NTP sync steps the wall clock by hours while the
    daemon runs. An ACK stamped after such a step (or any stamp outside the send and the read
    by the monotonic clock) is timed by the monotonic clock, not spaced by the step."""
    sent, read_at = (1000.0, 50.0), 50.3
    assert rtt_sample(sent, 1000.02 + step, read_at) == pytest.approx(0.3)


def test_an_ack_without_a_stamp_is_timed_when_it_was_read() -> None:
    assert rtt_sample((1000.0, 50.0), None, 50.3) == pytest.approx(0.3)
