"""The engine's CoAP contexts: aiocoap with bounded memory and paced Message IDs.

Every aiocoap context the engine makes comes from here (:func:`create_context` for plain UDP,
:func:`append_message_interface` for DTLS), so that aiocoap 0.4.17's hazards are dealt with in
one place, whatever code sends through the context:

* **Memory under load.** aiocoap remembers every request it received for EXCHANGE_LIFETIME
  (247 s), with its response message and one event-loop timer each, so a server reading fast
  makes the process grow without bound (1.4 GiB after 250 s at 2,400 requests/s). Here the
  deduplication state is a :class:`~bridged.engine.dedup.DedupCache`: a 60 s window for CON
  requests, 10 s for NON, encoded responses only, and a hard cap on entries.
* **Message-ID pacing.** aiocoap takes Message IDs from one counter and sends as fast as asked.
  Here IDs come from a :class:`~bridged.engine.pacing.PacerTable`: one sequence shared by all
  peers while it is quiet, a :class:`~bridged.engine.pacing.MessageIdPacer` of its own for a
  peer that sends fast, and a CON or NON that would need an ID still live at the peer is held,
  in order, until one is free. That covers requests (Register, Update, Send) and notifications
  alike, as they all pass through the message manager's first transmission.
* **Notification pace.** aiocoap sends a notification when it is handed one, so a change of
  every observed resource (a group commit) went to the server as one burst of NON
  notifications, most of them dropped at its socket and never sent again. Here notifications
  ask the layer for a turn (:meth:`BoundedMessageManager.turn`): one per round-trip time
  toward each server, on average (RFC 7641 §4.5.1; :class:`~bridged.engine.pacing.
  NotificationPace`), the RTT measured from the server's ACKs to our CONs. One that has to
  wait is called back at its turn and renders then, so it carries the latest state. A turn
  also waits for a free Message ID and for what is held for the peer.
* **Acknowledgements.** aiocoap tells a confirmable message's sender about an RST or a timeout
  (both end the exchange with an error) but not about the ACK. ``watch_ack`` gives a future
  that completes on it, which is what lets store-and-forward move its cursor only once the
  server has a confirmable notification (``_add_exchange`` and ``_remove_exchange`` are wrapped
  for it).
* **RST to a non-confirmable notification.** aiocoap matches an RST only to a confirmable
  message; one answering a NON notification is logged and ignored, so the observation went on
  (RFC 7641 §3.6 says the RST cancels it; OMA int-302). Here a NON notification is remembered
  by (remote, Message ID) for NON_LIFETIME, the Message ID's reservation, and an RST matching
  it ends the observation as aiocoap ends one whose CON notification got an RST. Either way,
  the observation's notifications not sent yet (held for a Message ID, or queued behind
  another CON) are dropped: sent after the RST, they would reach a server that has forgotten
  the token. What was already on the wire when the RST came is beyond recall.
* **Who is served.** aiocoap serves a request from any address. A context made with
  ``peers_only`` (the NoSec socket toward one LwM2M server, or toward the Bootstrap-Server)
  serves requests, and answers pings, only from the addresses its own requests went to
  (Register and Update go to the server, the Bootstrap-Request to the Bootstrap-Server, and
  each answers and sends its requests from that address); anything else is dropped before
  aiocoap sees it, and logged at most every ``REFUSED_LOG_INTERVAL`` seconds. DTLS needs no
  such filter: a session is bound to its peer.
* **Addresses.** aiocoap parses a message's remote address (and may ask the kernel for an
  interface name) several times per message; every received message's address is replaced
  by an equal one that computes those answers once (:mod:`bridged.engine.addresses`).
* **Message format.** A reserved token length (9 to 15) is a format error (RFC 7252 §3): a CON
  gets an RST, anything else is ignored, and nothing above the message layer sees it.

Another hazard is in how aiocoap opens its UDP socket: it sets ``SO_REUSEPORT`` on every
server socket, and Linux then hands a socket bound to port 0 an ephemeral port that another
``SO_REUSEPORT`` socket of the same user already holds (5,000 such binds: about 800 share a
port). Two endpoints on one port receive each other's datagrams, and a server's port can be
taken over by a client. So every context gets a socket of its own without it
(:func:`unshared_socket`): on port 0 an ephemeral port nobody shares, on a fixed port the port
itself, which a second daemon then cannot take (EADDRINUSE) instead of sharing it.

These live in :class:`BoundedMessageManager`, a subclass of aiocoap's ``MessageManager`` that
replaces its deduplication methods (``_deduplicate_message``, ``_store_response_for_duplicates``)
and wraps ``dispatch_message`` (every incoming message), ``_send_initially`` (the one place where
a message is sent for the first time), ``_add_exchange``, ``_remove_exchange`` and
``_retransmit`` (a retransmitted CON is no RTT sample: Karn's algorithm), and wraps
``_process_request`` for the inline answer (a plain Read answered as it arrives: see
:mod:`bridged.engine.serving`). Those are aiocoap internals, pinned like the DTLS transport's:
``tests/unit/test_aiocoap_internals.py`` fails when a release changes one of them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

import aiocoap
from aiocoap import interfaces, resource
from aiocoap.messagemanager import MessageManager
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import ACK, CON, NON, RST
from aiocoap.tokenmanager import TokenManager
from aiocoap.transports.udp6 import MessageInterfaceUDP6
from aiocoap.util.asyncio.getaddrinfo_addrconfig import getaddrinfo_routechecked

from .addresses import cached
from .dedup import DEFAULT_CAPACITY, DEFAULT_CON_WINDOW, DEFAULT_NON_WINDOW, DedupCache
from .pacing import (
    EXCHANGE_LIFETIME,
    MESSAGE_IDS,
    NON_LIFETIME,
    NotificationPace,
    PacerTable,
    Turn,
)
from .serving import AnswerNow, Encoded, ServingContext, piggybacked

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CoapLimits:
    """The bounds every engine context applies (see :mod:`bridged.engine.dedup` and
    :mod:`bridged.engine.pacing` for why these defaults).

    ``held_per_peer`` caps the messages held for Message IDs toward one peer: beyond it a new
    message fails at once (a request with a network error, a notification by ending its
    observation) instead of being queued without end.
    """

    dedup_capacity: int = DEFAULT_CAPACITY
    dedup_con_window: float = DEFAULT_CON_WINDOW
    dedup_non_window: float = DEFAULT_NON_WINDOW
    message_ids: int = MESSAGE_IDS
    con_lifetime: float = EXCHANGE_LIFETIME
    non_lifetime: float = NON_LIFETIME
    held_per_peer: int = 4096


_Held = tuple[aiocoap.Message, Callable[[], None] | None]

PEERS_KEPT = 4
"""How many destinations of its own requests a ``peers_only`` context serves: one server, and
the addresses its name resolved to before (a new one replaces the oldest)."""

MAX_TOKEN_LENGTH = 8
"""Token lengths 9 to 15 are reserved: a message with one is a format error (RFC 7252 §3),
which aiocoap 0.4.17 does not check."""

REFUSED_LOG_INTERVAL = 60.0
"""The least time between two log lines about requests dropped for their source."""

HELD_RETRY = 0.05
"""How soon a waiting notification's turn is looked at again when messages are already held
for the peer."""

PACES_KEPT = 64
"""How many servers' notification paces (their RTT estimates) a message layer keeps, the
least recently used dropped first: a gateway has a few servers, each seen through one or
thousands of its sockets."""


def rtt_sample(sent: tuple[float, float], arrived: float | None, now: float) -> float:
    """A confirmable exchange's round-trip time: from ``sent`` (the wall clock's and the
    monotonic clock's times it went) to the kernel's arrival stamp of its ACK (``arrived``,
    wall clock) where that is consistent, else to ``now`` (monotonic, when the ACK was read).

    The stamp leaves out how long this process was busy before it read the ACK, which is not
    the server's RTT. But it is the wall clock's, which steps (a Raspberry Pi has no RTC, so
    its first NTP sync moves it by hours after the daemon started): a sample from a step
    would space notifications by the step. A stamp is taken only where it lies between the
    send and the read by the monotonic clock, which the process's busy time can only lengthen."""
    wall, mono = sent
    elapsed = max(now - mono, 0.0)
    if arrived is not None and 0.0 <= arrived - wall <= elapsed:
        return arrived - wall
    return elapsed


def server_of(remote: interfaces.EndpointAddress) -> Hashable:
    """The server ``remote`` names, whichever local socket it is seen through: the address
    notifications are paced toward (in the endpoints mode every endpoint's socket notifies the
    same server, and the burst is one for the server's socket however many sockets send it)."""
    sockaddr = getattr(remote, "sockaddr", None)
    return sockaddr[:2] if isinstance(sockaddr, tuple) else remote


class BoundedMessageManager(MessageManager):
    """aiocoap's UDP message layer with a bounded deduplication cache and Message-ID pacing."""

    def __init__(
        self,
        token_manager: TokenManager,
        limits: CoapLimits,
        clock: Callable[[], float] = time.monotonic,
        *,
        peers_only: bool = False,
        answer: AnswerNow | None = None,
        address: Callable[[interfaces.EndpointAddress], interfaces.EndpointAddress] = cached,
    ) -> None:
        super().__init__(token_manager)
        self.limits = limits
        self.address = address
        """Makes every remote address this layer sees (received, failed, requested) the one
        kind whose equality its tables rely on: :func:`~bridged.engine.addresses.cached`, or
        a shared engine's address that tells its sockets apart (``bridged.engine.sockets``)."""
        self.answer = answer
        """The site's inline answer (``bridged.engine.serving``), if it has one."""
        self.clock = clock
        self.peers_only = peers_only
        # by local socket (the remote's message interface): the peers each socket serves, the
        # latest last (``_peers_of``): one peer itself, more in a tuple (a shared engine has
        # thousands of sockets of one peer each: a tuple of one was 48 bytes each, issue 17)
        self._peers: dict[
            object, interfaces.EndpointAddress | tuple[interfaces.EndpointAddress, ...]
        ] = {}
        self._admitted: set[interfaces.EndpointAddress] = set()
        self.refused = 0
        """Requests dropped because they came from elsewhere than a peer (``peers_only``)."""
        self._refused_logged: tuple[float, int] | None = None  # when, and the count then
        self.dedup: DedupCache[tuple[interfaces.EndpointAddress, int]] = DedupCache(
            limits.dedup_capacity, limits.dedup_con_window, limits.dedup_non_window
        )
        self.pacers: PacerTable[interfaces.EndpointAddress] = PacerTable(limits.message_ids)
        self._held: dict[interfaces.EndpointAddress, deque[_Held]] = {}
        self._wakeups: dict[interfaces.EndpointAddress, asyncio.TimerHandle] = {}
        # Acknowledgements watched: by message until it is sent, then by (remote, Message ID).
        self._unsent_acks: dict[int, tuple[aiocoap.Message, asyncio.Future[None]]] = {}
        self._acks: dict[tuple[interfaces.EndpointAddress, int], asyncio.Future[None]] = {}
        # NON notifications sent, by (remote, Message ID): until when an RST may answer each,
        # and what ends its observation then (see the module docstring)
        self._notifications: OrderedDict[
            tuple[interfaces.EndpointAddress, int], tuple[float, Callable[[], None]]
        ] = OrderedDict()
        # The notification pace, by server (``server_of``): its RTT estimate and next turn,
        # the notifications waiting for a turn, in the order they first asked, and the timer
        # of the next turn; CONs in flight by (remote, Message ID): when each was first sent
        # (``time.time()``: the kernel's arrival stamps are on its scale).
        self.paces: OrderedDict[Hashable, NotificationPace] = OrderedDict()
        self._turns: dict[
            Hashable, dict[Hashable, tuple[interfaces.EndpointAddress, Callable[[Turn], None]]]
        ] = {}
        self._turn_timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._con_sent: dict[tuple[interfaces.EndpointAddress, int], tuple[float, float]] = {}
        """A CON in flight -> when it went, by the wall clock (``received_at``'s) and by
        ``clock``."""
        self.received_at: float | None = None
        """When the datagram being dispatched arrived, by the kernel's stamp (``time.time()``'s
        scale), if its socket gives one (``bridged.engine.udp.stamp_arrivals``): an ACK's RTT
        sample is then not lengthened by the time this process's loop took to read it."""

    @property
    def held(self) -> int:
        """Messages waiting for a Message ID, over all peers."""
        return sum(len(q) for q in self._held.values())

    # -- who is served ------------------------------------------------------------------------

    def dispatch_message(self, message: aiocoap.Message) -> None:
        message.remote = self.address(message.remote)
        # A request, or a ping (an empty CON), is served only from a peer.
        asks = message.code.is_request() or message.code is Code.EMPTY
        if asks and message.mtype in (CON, NON) and not self.serves(message.remote):
            self._refuse(message)
            return
        if len(message.token) > MAX_TOKEN_LENGTH:
            self._reject_malformed(message, f"a {len(message.token)}-byte token")
            return
        super().dispatch_message(message)

    def _reject_malformed(self, message: aiocoap.Message, why: str) -> None:
        """A message format error (RFC 7252 §3, §4.2-4.3): a CON gets an RST, the rest is
        ignored; either way nothing above this layer sees it."""
        self.log.info(
            "Message from %s with %s: %s",
            message.remote,
            why,
            "reset" if message.mtype is CON else "ignored",
        )
        if message.mtype is CON:
            rst = aiocoap.Message(code=Code.EMPTY)
            rst.mtype, rst.mid = RST, message.mid
            rst.remote = message.remote.as_response_address()
            self._send_via_transport(rst)

    def serves(self, remote: interfaces.EndpointAddress) -> bool:
        """Whether requests from ``remote`` are served here (on the socket it came to)."""
        if not self.peers_only:
            return True
        remote = self.address(remote)
        return remote in self._peers_of(remote.interface) or remote in self._admitted

    def _peers_of(self, interface: object) -> tuple[interfaces.EndpointAddress, ...]:
        """The peers the socket ``interface`` serves, the latest last."""
        peers = self._peers.get(interface, ())
        return peers if isinstance(peers, tuple) else (peers,)

    def admit(self, remote: interfaces.EndpointAddress) -> None:
        """Serve requests from ``remote`` for good, though no request of this socket went
        there: the Bootstrap-Server a server-initiated bootstrap listens for."""
        self._admitted.add(self.address(remote))

    def _refuse(self, message: aiocoap.Message) -> None:
        """Count a request dropped for its source; log it, at most every
        ``REFUSED_LOG_INTERVAL``, with how many were dropped since the last line."""
        self.refused += 1
        now = self.clock()
        logged = self._refused_logged
        if logged is None or now - logged[0] >= REFUSED_LOG_INTERVAL:
            since = self.refused - (logged[1] if logged else 0)
            self.log.warning(
                "Dropped %d request(s) from addresses other than the server's (the last from"
                " %s); this socket serves only %s",
                since,
                message.remote,
                ", ".join(map(str, [*self._peers_of(message.remote.interface), *self._admitted]))
                or "the server, once it has contacted it",
            )
            self._refused_logged = (now, self.refused)

    def _remember_peer(self, message: aiocoap.Message) -> None:
        if self.peers_only and message.code.is_request():
            remote, interface = message.remote, message.remote.interface
            peers = self._peers_of(interface)
            if peers[-1:] != (remote,):
                kept = (*(p for p in peers if p != remote), remote)[-PEERS_KEPT:]
                self._peers[interface] = kept if len(kept) > 1 else remote

    # -- the inline answer --------------------------------------------------------------

    def _process_request(self, request: aiocoap.Message) -> None:
        if request.mtype is not CON or not self._answer_now(request):
            super()._process_request(request)

    def _answer_now(self, request: aiocoap.Message) -> bool:
        """Answer the confirmable ``request`` with the site's response at once, piggybacked,
        encoded once (``bridged.engine.serving``); False: it takes aiocoap's general path."""
        answer = self.answer
        if (
            answer is None
            or request.opt.no_response is not None
            or (request.token, request.remote) in self.token_manager.incoming_requests
        ):
            return False
        try:
            response = answer(request)
        except Exception:
            # A fault in the inline answer is not the request's: the general path answers it
            # (aiocoap turns an exception there into 5.00).
            self.log.exception("answering %r at once", request)
            return False
        if response is None:
            return False
        remote = request.remote.as_response_address()
        data = piggybacked(response, request)
        self.dedup.answer((remote, request.mid), data)
        self._send_via_transport(Encoded(remote, data))
        return True

    # -- deduplication -----------------------------------------------------------------------

    def _deduplicate_message(self, message: aiocoap.Message) -> bool:
        """True if ``message`` is a duplicate; a duplicate CON gets the stored response again."""
        key = (message.remote, message.mid)
        seen = self.dedup.check(key, message.mtype is CON, self.clock())
        if seen is None:
            return False
        if message.mtype is CON and seen.response is not None:
            self.log.info("Duplicate CON received, sending old response again")
            self._send_via_transport(Encoded(message.remote.as_response_address(), seen.response))
        else:
            self.log.info("Duplicate %s received, ignoring it", message.mtype)
        return True

    def _store_response_for_duplicates(self, message: aiocoap.Message) -> None:
        # Only an ACK or RST carries the Message ID of the request it answers; a CON or NON of
        # ours has an ID from our own sequence, which may equal some request's by chance.
        if message.mtype in (ACK, RST):
            self.dedup.answer((message.remote, message.mid), message.encode())

    # -- Message-ID pacing -------------------------------------------------------------------

    def _send_initially(
        self, message: aiocoap.Message, messageerror_monitor: Callable[[], None] | None = None
    ) -> None:
        self._remember_peer(message)
        if message.mtype not in (CON, NON) or message.remote.is_multicast:
            super()._send_initially(message, messageerror_monitor)
            return
        remote = message.remote
        queue = self._held.get(remote)
        if queue is None and self._take_id(message):
            self._transmit(message, messageerror_monitor)
            return
        if queue is None:
            queue = self._held[remote] = deque()
        if len(queue) >= self.limits.held_per_peer:
            self.log.warning(
                "%d messages to %s are waiting for a Message ID; failing this one",
                len(queue),
                remote,
            )
            if messageerror_monitor is not None:
                messageerror_monitor()
            return
        queue.append((message, messageerror_monitor))
        self._schedule_release(remote)

    def _transmit(self, message: aiocoap.Message, monitor: Callable[[], None] | None) -> None:
        """Send a CON or NON that has its Message ID, remembering a NON notification."""
        if message.mtype is NON and monitor is not None and message.opt.observe is not None:
            now = self.clock()
            notifications = self._notifications
            while notifications and (
                next(iter(notifications.values()))[0] <= now
                or len(notifications) >= self.limits.dedup_capacity
            ):
                notifications.popitem(last=False)
            key = (message.remote, message.mid)
            notifications.pop(key, None)
            notifications[key] = (now + self.limits.non_lifetime, monitor)
        super()._send_initially(message, monitor)

    def _take_id(self, message: aiocoap.Message) -> bool:
        """Give ``message`` its peer's next Message ID; False if none is free yet."""
        lifetime = self.limits.con_lifetime if message.mtype is CON else self.limits.non_lifetime
        now = self.clock()
        mid = self.pacers.pacer(message.remote, now).take(now, lifetime)
        if mid is None:
            return False
        message.mid = mid
        return True

    def _schedule_release(self, remote: interfaces.EndpointAddress) -> None:
        if remote in self._wakeups:
            return
        now = self.clock()
        delay = max(0.0, self.pacers.pacer(remote, now).ready_at(now) - now)
        self._wakeups[remote] = self.loop.call_later(delay, self._release, remote)

    def _release(self, remote: interfaces.EndpointAddress) -> None:
        """Send what was held for ``remote``, in order, as far as Message IDs allow."""
        self._wakeups.pop(remote, None)
        queue = self._held.get(remote)
        if queue is None or self._active_exchanges is None:
            return
        while queue:
            message, monitor = queue[0]
            if message.mtype is CON and remote in self._backlogs:
                # One CON in flight per peer (NSTART=1): aiocoap's backlog sends it when the
                # current exchange ends, through _send_initially, so its ID is taken then.
                queue.popleft()
                self._backlogs[remote].append((message, monitor))
                continue
            if not self._take_id(message):
                self._schedule_release(remote)
                return
            queue.popleft()
            self._transmit(message, monitor)
        del self._held[remote]

    def _drop_held(self, remote: interfaces.EndpointAddress) -> None:
        self._held.pop(remote, None)
        wakeup = self._wakeups.pop(remote, None)
        if wakeup is not None:
            wakeup.cancel()

    def _drop_waiting(
        self, remote: interfaces.EndpointAddress, monitor: Callable[[], None]
    ) -> None:
        """Forget the messages to ``remote`` not sent yet (held for a Message ID, or in
        aiocoap's backlog of CONs) that ``monitor`` watches: an RST ended what they belong to.

        aiocoap gives every message of one response pipe (an observation's notifications) the
        same monitor, so these are the notifications of the observation the RST cancelled;
        sent later, they would reach a server that has forgotten the token (RFC 7641 §3.6)."""
        for waiting in (self._held.get(remote), self._backlogs.get(remote)):
            if waiting:
                kept = [entry for entry in waiting if entry[1] is not monitor]
                waiting.clear()
                waiting.extend(kept)
        if remote in self._held and not self._held[remote]:
            self._drop_held(remote)

    # -- the notification pace ----------------------------------------------------------------

    def turn(
        self, remote: interfaces.EndpointAddress, waiter: Hashable, go: Callable[[Turn], None]
    ) -> Turn:
        """Whether a notification to ``remote`` may go now (see
        :class:`~bridged.engine.pacing.NotificationPace`): ``NON`` or ``CON`` (the turn is
        taken: send it now, confirmable for ``CON``), or ``WAIT``.

        A ``waiter`` told to wait is called back, ``go(turn)``, when its turn comes: once,
        however often it asked meanwhile, in the order the waiters first asked, one turn per
        call. It renders what it sends then, so a notification that waited carries the latest
        state, and waiting costs one entry per observation, never a queue of stale messages.
        A turn also waits for a free Message ID (:mod:`bridged.engine.pacing`) and for the
        messages already held for the peer, so that notifications do not pile up below."""
        server = server_of(remote)
        waiting = self._turns.get(server)
        if not waiting:
            now = self.clock()
            if self._turn_delay(server, remote, now) <= 0:
                return self._pace(server).take(now, con_in_flight=remote in self._backlogs)
            if waiting is None:
                waiting = self._turns[server] = {}
        if waiter not in waiting:
            waiting[waiter] = (remote, go)
        self._arm_turns(server)
        return Turn.WAIT

    def withdraw(self, remote: interfaces.EndpointAddress, waiter: Hashable) -> None:
        """Forget ``waiter``'s wait for a turn (its observation ended)."""
        waiting = self._turns.get(server_of(remote))
        if waiting:
            waiting.pop(waiter, None)

    def _turn_delay(
        self, server: Hashable, remote: interfaces.EndpointAddress, now: float
    ) -> float:
        pace = self.paces.get(server)
        ready = now if pace is None else pace.ready_at(now)
        ready = max(ready, self.pacers.pacer(remote, now).ready_at(now))
        if remote in self._held:
            return max(ready - now, HELD_RETRY)
        return ready - now

    def _pace(self, server: Hashable) -> NotificationPace:
        paces = self.paces
        pace = paces.get(server)
        if pace is not None:
            paces.move_to_end(server)
            return pace
        pace = paces[server] = NotificationPace()
        if len(paces) > PACES_KEPT:
            oldest = next(iter(paces))
            if oldest not in self._turns:
                del paces[oldest]
        return pace

    def _arm_turns(self, server: Hashable) -> None:
        waiting = self._turns.get(server)
        if server in self._turn_timers or not waiting:
            return
        remote, _ = next(iter(waiting.values()))
        delay = max(0.0, self._turn_delay(server, remote, self.clock()))
        self._turn_timers[server] = self.loop.call_later(delay, self._next_turns, server)

    def _next_turns(self, server: Hashable) -> None:
        """Give the waiting notifications to ``server`` their turns, as far as the pace allows
        now; then wait for the next."""
        self._turn_timers.pop(server, None)
        waiting = self._turns.get(server)
        while waiting:
            waiter, (remote, go) = next(iter(waiting.items()))
            now = self.clock()
            if self._turn_delay(server, remote, now) > 0:
                self._arm_turns(server)
                return
            del waiting[waiter]
            turn = self._pace(server).take(now, burst=True, con_in_flight=remote in self._backlogs)
            try:
                go(turn)
            except Exception:
                # One waiter's fault must not stop the turns of the others.
                self.log.exception("notification turn for %s", remote)
        if waiting is not None and self._turns.get(server) is waiting:
            del self._turns[server]

    def _measured(self, remote: interfaces.EndpointAddress, rtt: float) -> None:
        """A confirmable exchange with ``remote`` took ``rtt``: the pace follows it at once."""
        server = server_of(remote)
        self._pace(server).measured(self.clock(), rtt)
        timer = self._turn_timers.pop(server, None)
        if timer is not None:
            timer.cancel()
            self._arm_turns(server)

    def _retransmit(self, message: aiocoap.Message, timeout: float, counter: int) -> None:
        # Karn's algorithm: the ACK of a retransmitted CON may answer any of its copies, so it
        # is no RTT sample.
        self._con_sent.pop((message.remote, message.mid), None)
        super()._retransmit(message, timeout, counter)

    async def fill_or_recognize_remote(self, message: aiocoap.Message) -> bool:
        # The remote a request goes to, as aiocoap keys it in the token layer's table: the
        # same kind as the remote its response comes from (``address``).
        found: bool = await super().fill_or_recognize_remote(message)
        if found:
            message.remote = self.address(message.remote)
        return found

    def dispatch_error(self, error: Exception, remote: interfaces.EndpointAddress) -> None:
        # The token manager has failed every exchange with the remote: nothing held is wanted.
        remote = self.address(remote)
        super().dispatch_error(error, remote)
        self._drop_held(remote)
        for key in [k for k in self._con_sent if k[0] == remote]:
            del self._con_sent[key]
        for key in [k for k in self._notifications if k[0] == remote]:
            del self._notifications[key]

    # -- acknowledgements --------------------------------------------------------------------

    def watch_ack(self, message: aiocoap.Message) -> asyncio.Future[None]:
        """A future that completes when the peer acknowledges ``message``, a confirmable
        message about to be sent (a notification given to its observation's pipe).

        It never completes otherwise: an RST or a timeout ends the exchange (and with it the
        observation) without an ACK, so the caller waits for either; cancelling the future stops
        the watch.
        """
        future: asyncio.Future[None] = self.loop.create_future()
        self._unsent_acks[id(message)] = (message, future)
        future.add_done_callback(lambda f: self._unwatch(id(message), f))
        return future

    def _unwatch(self, message_id: int, future: asyncio.Future[None]) -> None:
        entry = self._unsent_acks.get(message_id)
        if entry is not None and entry[1] is future:
            del self._unsent_acks[message_id]
        for key in [k for k, f in self._acks.items() if f is future]:
            del self._acks[key]

    def _add_exchange(
        self, message: aiocoap.Message, messageerror_monitor: Callable[[], None]
    ) -> None:
        super()._add_exchange(message, messageerror_monitor)
        self._con_sent[(message.remote, message.mid)] = (time.time(), self.clock())
        entry = self._unsent_acks.pop(id(message), None)
        if entry is not None and entry[0] is message and not entry[1].done():
            self._acks[(message.remote, message.mid)] = entry[1]

    def _remove_exchange(self, message: aiocoap.Message) -> None:
        key = (message.remote, message.mid)
        exchange = self._active_exchanges is not None and key in self._active_exchanges
        if message.mtype is RST and exchange:
            assert self._active_exchanges is not None
            # aiocoap sends the backlog on right after this: not what the RST ended.
            self._drop_waiting(message.remote, self._active_exchanges[key][0])
        if message.mtype is RST and not exchange:
            entry = self._notifications.pop(key, None)
            if entry is not None and entry[0] > self.clock():
                self.log.info(
                    "RST from %s to notification %d: ending its observation",
                    message.remote,
                    message.mid,
                )
                self._drop_waiting(message.remote, entry[1])
                entry[1]()
                return
        sent = self._con_sent.pop(key, None)
        if sent is not None and exchange and message.mtype is ACK:
            self._measured(message.remote, rtt_sample(sent, self.received_at, self.clock()))
        future = self._acks.pop(key, None)
        if future is not None and not future.done() and exchange and message.mtype is ACK:
            future.set_result(None)
        super()._remove_exchange(message)

    def close_interface(self, interface: object, error: Exception) -> None:
        """End everything going on with the peers of one local socket, ``interface``, about
        to close while the others stay open (a shared engine's, ``bridged.engine.sockets``):
        its requests fail with ``error``, its peers' requests (observations) end, its
        exchanges stop retransmitting, and what was held, watched or kept for it is
        forgotten. What ``shutdown`` does for the whole layer, for one socket."""
        on = [
            *(remote for _, remote in self.token_manager.incoming_requests),
            *(remote for _, remote in self.token_manager.outgoing_requests),
            *(remote for remote, _ in self._active_exchanges or ()),
            *self._backlogs,
            *self._held,
        ]
        for remote in {r for r in on if r.interface is interface}:
            self.dispatch_error(error, remote)
        self._peers.pop(interface, None)
        self._admitted = {r for r in self._admitted if r.interface is not interface}

    async def shutdown(self) -> None:
        for remote in list(self._held):
            self._drop_held(remote)
        for timer in self._turn_timers.values():
            timer.cancel()
        self._turn_timers.clear()
        self._turns.clear()
        self._con_sent.clear()
        self.dedup.clear()
        self._notifications.clear()
        await super().shutdown()


async def append_message_interface(
    context: aiocoap.Context,
    create_interface: Callable[[BoundedMessageManager], Awaitable[Any]],
    limits: CoapLimits | None = None,
    *,
    peers_only: bool = False,
    address: Callable[[interfaces.EndpointAddress], interfaces.EndpointAddress] = cached,
) -> BoundedMessageManager:
    """Add a message interface to ``context`` over a :class:`BoundedMessageManager`
    (``peers_only``: see the module docstring; ``address``: the manager's).

    The counterpart of aiocoap's ``Context._append_tokenmanaged_messagemanaged_transport``, with
    the bounded message manager in place of aiocoap's.
    """
    tman = TokenManager(context)
    answer: AnswerNow | None = getattr(context, "answer_now", None)
    mman = BoundedMessageManager(
        tman, limits or CoapLimits(), peers_only=peers_only, answer=answer, address=address
    )
    mman.message_interface = await create_interface(mman)
    tman.token_interface = mman
    context.request_interfaces.append(tman)
    return mman


async def create_context(
    site: resource.Site | interfaces.Resource | None,
    bind: tuple[str, int] = ("::", 0),
    *,
    limits: CoapLimits | None = None,
    loggername: str = "coap-server",
    peers_only: bool = False,
) -> aiocoap.Context:
    """A CoAP-over-UDP context serving ``site`` on ``bind`` (behind the option check of
    ``bridged.engine.options``), with the engine's bounds;
    ``peers_only``: only to the addresses its own requests go to (see the module docstring).

    Only the UDP transport is opened: aiocoap's default set would also listen for TCP and
    WebSocket on the CoAP ports, which a gateway must not expose. The port, fixed or ephemeral,
    is shared with no other socket (see the module docstring).
    """
    loop = asyncio.get_running_loop()
    context = ServingContext(site, loop=loop, loggername=loggername)

    async def udp(mman: BoundedMessageManager) -> MessageInterfaceUDP6:
        sock = await unshared_socket(bind[0], bind[1])
        try:
            return await MessageInterfaceUDP6._create_transport_endpoint(
                sock, mman, context.log, loop
            )
        except BaseException:
            sock.close()
            raise

    await append_message_interface(context, udp, limits, peers_only=peers_only)
    return context


async def unshared_socket(host: str, port: int = 0) -> socket.socket:
    """A UDP socket (IPv6, IPv4-mapped too) bound to ``host`` on ``port`` (0: an ephemeral
    port) that no other socket holds: aiocoap's own binding minus ``SO_REUSEPORT``.

    ``host`` is resolved as aiocoap resolves a bind address; a name that does not resolve
    raises aiocoap's ``ResolutionError`` as aiocoap does, and running out of file descriptors
    or ports raises the ``OSError``.
    """
    loop = asyncio.get_running_loop()
    try:
        address = await anext(getaddrinfo_routechecked(loop, log, host, port))
    except (socket.gaierror, StopAsyncIteration) as e:
        raise aiocoap.error.ResolutionError(f"No local bindable address found for {host}") from e
    sock = socket.socket(family=socket.AF_INET6, type=socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def notification_turns(context: aiocoap.Context) -> BoundedMessageManager | None:
    """The message layer of ``context`` (an engine context has one: UDP or DTLS), whose
    ``turn`` paces notifications, or None for a context without one."""
    managers = message_managers(context)
    return managers[0] if managers else None


def ack_watch(
    context: aiocoap.Context,
) -> Callable[[aiocoap.Message], asyncio.Future[None]] | None:
    """``BoundedMessageManager.watch_ack`` of ``context``'s message layer, or None for a context
    without one."""
    managers = message_managers(context)
    return managers[0].watch_ack if managers else None


async def admit(context: aiocoap.Context, uri: str) -> None:
    """Make every ``peers_only`` socket of ``context`` serve the address ``uri`` names (host
    and port, resolved as aiocoap resolves a request's URI)."""
    for mman in message_managers(context):
        remote = await mman.message_interface.determine_remote(
            aiocoap.Message(code=Code.GET, uri=uri)
        )
        if remote is None:
            raise aiocoap.error.ResolutionError(f"{uri} does not name a CoAP-over-UDP address")
        mman.admit(remote)


def message_managers(context: aiocoap.Context) -> list[BoundedMessageManager]:
    """The bounded message managers of ``context`` (to read their cache and pacing state)."""
    return [
        tman.token_interface
        for tman in context.request_interfaces
        if isinstance(getattr(tman, "token_interface", None), BoundedMessageManager)
    ]
