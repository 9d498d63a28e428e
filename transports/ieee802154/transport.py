"""The ``802154`` transport: LwM2M nodes on an IEEE 802.15.4 PAN, through an OpenThread RCP.

The layers, bottom up, each in its own module:

* :mod:`.radio` — the dongle: Spinel over HDLC-lite on a serial port, raw 802.15.4 frames;
* :mod:`.link` — the 6LoWPAN link, sans-I/O: frames in, UDP datagrams out, and back;
* :mod:`.coap_link` — aiocoap's message layer over those datagrams, but for a node's NON
  notification, which :mod:`.coap_notification` decodes and hands to its observation;
* :mod:`.node_server` — the LwM2M server the nodes register with, which reports to the core.

This module wires them and owns the one thing between them that has a pace: the transmit
queue. The RCP takes one frame at a time (it does CSMA and the MAC retries itself), so frames
wait here in order, and a fragmented datagram goes out fragment after fragment.

Configuration (its ``[transport.802154]`` section):

``port``          the dongle's serial port or a pyserial URL (required), e.g. /dev/bridged-rcp
``channel``       802.15.4 channel, 11-26 (default 15)
``pan_id``        the PAN ID, 0-65535 (default 0xface)
``baudrate``      serial speed (default 460800)
``awake_window``  seconds a sleepy node stays reachable after it talks (default 93)
``request_timeout`` seconds to wait for a node's answer (default 10)
``firmware_timeout`` seconds a node's firmware update may take, its wake windows included
                  (default 900); past it, an update still waiting for the node to wake has
                  expired, a push (Block1) still under way has lost the connection (Update
                  Result 4), one the node was working on has failed
``reassembly_timeout`` seconds an incomplete fragmented datagram is kept (default 10)
``coap_ports``    the UDP ports the gateway serves the nodes on, the port of the LwM2M server
                  URI they are given (default [5683]; e.g. 61617, 0xF0B1, which 6LoWPAN
                  compresses best). A datagram to another port is dropped, and logged once per
                  node with the reason.

Link-layer security (IEEE 802.15.4 frame security, AES-CCM*; :mod:`.link_security`):

``network_key``   the PAN's network key, 32 hex digits, or ``network_key_file``: a file that
                  holds them (keep it 0640 root:bridged). Every node must then secure its
                  frames, with the network key or with a link key of its own
``security_level`` the level of the gateway's frames: 5 (ENC-MIC-32, default), 6 (ENC-MIC-64)
                  or 7 (ENC-MIC-128); frames of levels 5-7 are accepted
``key_id_mode``   how frames name their key: 1 (default: ``key_index``) or 2 (``key_source``,
                  8 hex digits, and ``key_index``); ``key_index`` 1-255 (default 1). The
                  gateway's frames carry it, and a node's frames must

A node's link key is its secret ``link`` (``bridgectl pair 802154 <EUI-64> --key
link=<32 hex digits>``): the node's frames must then be secured with it, plaintext ones are
refused. Refused frames count in the node's ``decrypt_failures`` with the reason as its
``problem`` (``bridgectl node show``), until a frame of it is taken again. The frame counter
accepted last from each paired node is kept with the node's session, so that a restarted
gateway takes no old frame; the gateway's own counter (one for all keys) is kept in
``transports/802154-frame-counter`` in the state directory, reserved ahead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import re
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from bridged.aio import cancel_and_wait
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.transports.firmware import FirmwareError, FirmwareUpdater, UpdateResult
from bridged.transports.nodes import NodeId, PairedNode, Secret

from ..base import (
    BEARER_IEEE_802154,
    NodeState,
    Transport,
    TransportConfigError,
    TransportEvents,
    TransportHost,
    check_keys,
    config_number,
)
from .coap_link import LowpanAddress, LowpanMessageInterface, create_link_context
from .errors import (
    AuthenticationError,
    LinkSecurityError,
    MacDecodeError,
    RadioDecodeError,
    ReplayError,
    UnsecuredFrameError,
)
from .firmware import DEFAULT_TIMEOUT as FIRMWARE_TIMEOUT
from .firmware import LowpanUpdater
from .keys import KEY_SETTINGS, security_settings
from .link import LowpanLink
from .link_security import FrameCounter, FrameCounterError, LinkSecurity
from .lowpan import UdpDatagram, link_local, mac_from_address
from .mac import parse_frame
from .node_events import NodeEvents, split_session
from .node_server import DEFAULT_PAN_ID, NodeServer, node_address, remember
from .pairing import LINK_KEY
from .radio import Radio, RadioConfig, RadioState, ReceivedFrame, TxStatus

log = logging.getLogger(__name__)

COAP_PORT = 5683
TRANSMIT_QUEUE = 256
"""Frames waiting for the radio, and datagrams waiting for its first bring-up; beyond it new
ones are dropped, with a warning (CoAP retransmits a confirmable message)."""

_KEYS = {
    "port",
    "channel",
    "pan_id",
    "baudrate",
    "awake_window",
    "request_timeout",
    "firmware_timeout",
    "reassembly_timeout",
    "coap_ports",
    *KEY_SETTINGS,
}
COUNTER_FILE = "802154-frame-counter"
"""The gateway's own frame counter, reserved ahead (``TransportHost.files``)."""


_PROBLEMS: dict[type, str] = {
    UnsecuredFrameError: "unsecured frames refused: the node is paired with a key",
    AuthenticationError: "its frames do not verify with its key (another key, or forged)",
    ReplayError: "replayed frames refused (a frame counter already taken)",
}
"""What ``bridgectl node show`` says of a node whose frames link-layer security refuses."""


def _number(config: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    return config_number(config.get(key, default), f"802154.{key}", low=low, high=high)


_EUI64 = re.compile(r"[0-9a-f]{2}([:-]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){6}")


def coap_ports(value: object) -> tuple[int, ...]:
    """``[transport.802154] coap_ports``: a non-empty list of distinct UDP ports."""
    ports = value if isinstance(value, list) else None
    if (
        not ports
        or any(isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535 for p in ports)
        or len(set(ports)) != len(ports)
    ):
        raise TransportConfigError(
            f"802154.coap_ports must be a list of distinct UDP ports 1..65535, not {value!r}"
        )
    return tuple(ports)


def normalise_eui64(text: str) -> str:
    """``00:12:4B:00:01:02:03:04``, ``00-12-4b-...`` or ``00124b0001020304`` →
    ``00124b0001020304``, the spelling of the node ids (``eui64.hex()``). One separator
    throughout or none: anything else is ValueError, never a guess."""
    lower = text.strip().lower() if isinstance(text, str) and text.isascii() else ""
    if not _EUI64.fullmatch(lower):
        raise ValueError(f"{text!r} is not an EUI-64 (00:12:4b:00:01:02:03:04 or 16 hex digits)")
    return lower.replace(":", "").replace("-", "")


_SHORT = re.compile(r"(?:0x)?([0-9a-f]{4}):(?:0x)?([0-9a-f]{4})")
NO_SHORT_ADDRESS = (0xFFFE, 0xFFFF)
"""0xfffe: the node has no short address (it sends from its EUI-64); 0xffff: broadcast."""


def normalise_node_address(text: str) -> str:
    """A node's address in the spelling of the node ids: its EUI-64 (``normalise_eui64``), or
    for a node that sends from a 16-bit short address, its PAN ID and short address as four
    hex digits each: ``FACE:0001`` or ``0xface:0x0001`` → ``face:0001`` (see
    ``node_server.node_address``). ValueError naming both forms for anything else."""
    with contextlib.suppress(ValueError):
        return normalise_eui64(text)
    lower = text.strip().lower() if isinstance(text, str) and text.isascii() else ""
    short = _SHORT.fullmatch(lower)
    if short is None or int(short[2], 16) in NO_SHORT_ADDRESS:
        raise ValueError(
            f"{text!r} is not an 802.15.4 node address: an EUI-64 (00:12:4b:00:01:02:03:04) "
            "or a PAN ID and a short address (face:0001)"
        )
    return f"{short[1]}:{short[2]}"


class IEEE802154Transport(Transport):
    """Nodes that speak LwM2M over CoAP/6LoWPAN on one 802.15.4 channel."""

    name = "802154"
    bearer = BEARER_IEEE_802154

    @classmethod
    def normalise_address(cls, address: str) -> str:
        return normalise_node_address(address)

    def __init__(
        self, config: Mapping[str, Any], events: TransportEvents, host: TransportHost
    ) -> None:
        super().__init__(config, events, host)
        self._coap = host.append_message_interface
        check_keys(config, _KEYS, "802154.")
        port = config.get("port")
        if not isinstance(port, str) or not port:
            raise TransportConfigError("802154.port must name the dongle's serial port")
        self.radio_config = RadioConfig(
            port=port,
            channel=int(_number(config, "channel", 15, 11, 26)),
            pan_id=int(_number(config, "pan_id", DEFAULT_PAN_ID, 0, 0xFFFE)),
            baudrate=int(_number(config, "baudrate", 460800, 1200, 4_000_000)),
        )
        self.node_events = NodeEvents(events)
        self.server = NodeServer(
            self.name,
            self.node_events,
            host.definitions,
            awake_window=_number(config, "awake_window", 93, 0.1, 86400),
            request_timeout=_number(config, "request_timeout", 10, 0.1, 600),
            pan_id=self.radio_config.pan_id,
        )
        self.firmware_timeout = _number(config, "firmware_timeout", FIRMWARE_TIMEOUT, 1, 86400)
        self.coap_ports = coap_ports(config.get("coap_ports", [COAP_PORT]))
        self._ports: OrderedDict[tuple[bytes, int], int] = OrderedDict()
        """The port each node last talked to: what the gateway talks to it from."""
        self._dropped: OrderedDict[NodeId, None] = OrderedDict()
        settings = security_settings(config)
        self._files = host.files
        if settings.network_key is not None and self._files is None:
            raise TransportConfigError("802154.network_key needs a state directory")
        counter = FrameCounter(load=self._kept_counter, reserve=self._keep_counter)
        self.security = LinkSecurity(settings, counter, accepted=self._counter_accepted)
        self._paired: set[NodeId] = set()
        self.refused_frames = 0
        """Frames refused by link-layer security, of any source."""
        self._told: OrderedDict[tuple[NodeId, type], None] = OrderedDict()
        # The first MAC sequence number and datagram tag are random (as 802.15.4 has macDSN
        # start): a node keeps the last few sequence numbers it heard from the gateway, and a
        # restarted gateway that began at 0 again had its first frames dropped as duplicates.
        self.link = LowpanLink(
            reassembly_timeout=_number(config, "reassembly_timeout", 10, 1, 600),
            security=self.security,
            seq=random.getrandbits(8),
            tag=random.getrandbits(16),
        )
        self.radio = Radio(self.radio_config, on_frame=self._frame, on_state=self._radio_state)
        self.decode_errors = 0
        self.dropped_frames = 0
        self._interface: LowpanMessageInterface | None = None
        self._context: Any = None
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(TRANSMIT_QUEUE)
        self._early: list[tuple[LowpanAddress, bytes]] = []
        """Datagrams meant before the radio was first up (``_send_datagram``)."""
        self._up = asyncio.Event()
        """Set while the radio is up: the transmit queue waits for it."""
        self._sender: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._context, self._interface = await create_link_context(
            self.server.site, self._send_datagram, bytes(16), self.coap_ports[0], self._coap
        )
        self.server.attach(self._context, self._interface)
        self._sender = asyncio.create_task(self._send_frames(), name="802154-transmit")
        await self.radio.start()

    async def stop(self) -> None:
        await self.server.close()
        await cancel_and_wait(self._sender)
        await self.radio.stop()
        if self._context is not None:
            await self._context.shutdown()

    def resume(self, node: NodeId, session: Mapping[str, Any]) -> None:
        registration, link = split_session(session)
        self.node_events.resume(node, registration, link)
        counter = link.get("counter") if link is not None else None
        if isinstance(counter, int) and not isinstance(counter, bool):
            self.security.restore(self._mac(node), counter)
        if registration is not None:
            self.server.resume(node, registration)

    async def prepare_pair(self, node: PairedNode, secrets: Mapping[str, Secret]) -> None:
        """A node takes one key, its link key (16 bytes), and only by its EUI-64: the nonce of
        its frames is made of it. ValueError otherwise."""
        unknown = sorted(set(secrets) - {LINK_KEY.name})
        if unknown:
            raise ValueError(
                f"an 802.15.4 node takes one key, --key {LINK_KEY.name}=<{2 * LINK_KEY.size} "
                f"hex digits>, not {', '.join(unknown)}"
            )
        key = secrets.get(LINK_KEY.name)
        if key is None:
            return
        LINK_KEY.check(key)
        if len(self._mac(node.id)) != 8:
            raise ValueError("a node with a link key is paired by its EUI-64")
        if self._files is None:
            raise ValueError("link keys need a state directory for the frame counter")

    def pair(self, node: PairedNode, secrets: Mapping[str, Secret]) -> None:
        """The node is let in when it registers; with a link key, only secured by it. A new
        key starts its frame counters afresh (what the old key counted says nothing of it)."""
        self._paired.add(node.id)
        key = secrets.get(LINK_KEY.name)
        if self.security.pair(self._mac(node.id), key.value if key is not None else None):
            self.node_events.rekeyed(node.id)
            self.node_events.link(node.id, None)

    def unpair(self, node: NodeId) -> None:
        self._paired.discard(node)
        self.security.unpair(self._mac(node))
        self.node_events.forget(node)
        self.server.forget(node)

    def _mac(self, node: NodeId) -> bytes:
        """The MAC address ``node`` sends from (``node_address`` the other way)."""
        return bytes.fromhex(node.address.rpartition(":")[2])

    def _node(self, mac: bytes) -> NodeId:
        return NodeId(self.name, node_address(mac, self.radio_config.pan_id))

    # -- frame counters ----------------------------------------------------------------------

    def _counter_accepted(self, peer: bytes, counter: int) -> None:
        """Kept with the node's session, durably before the frame is acted on."""
        self.node_events.link(self._node(peer), {"counter": counter})

    def _kept_counter(self) -> int | None:
        data = self._files.read(COUNTER_FILE) if self._files is not None else None
        if data is None:
            return None
        try:
            return int(data.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise ValueError(
                f"transports/{COUNTER_FILE} in the state directory is damaged: restore it, or "
                "give every node new keys"
            ) from None

    def _keep_counter(self, upto: int) -> None:
        if self._files is None:
            raise OSError("no state directory to keep the frame counter in")
        self._files.write(COUNTER_FILE, f"{upto}\n".encode("ascii"))

    # -- operations --------------------------------------------------------------------------

    def firmware_updater(self, node: NodeId) -> FirmwareUpdater | None:
        """Every node is a LwM2M client with a /5 of its own (``firmware.LowpanUpdater``)."""
        return LowpanUpdater(self.server, self._base_uri, timeout=self.firmware_timeout)

    def _base_uri(self) -> str:
        """``coap://`` and the gateway's address and first port on the node link."""
        own = self.radio_config.ext_address or getattr(self.radio, "eui64", None)
        if not own:
            raise FirmwareError(UpdateResult.UPDATE_FAILED, "the radio is not up")
        return f"coap://[{ipaddress.IPv6Address(link_local(own))}]:{self.coap_ports[0]}"

    async def read(self, node: NodeId, path: Path) -> list[Record]:
        return await self.server.read(node, path)

    async def write(self, node: NodeId, path: Path, records: Sequence[Record]) -> None:
        await self.server.write(node, path, records)

    async def execute(self, node: NodeId, path: Path, arguments: str) -> None:
        await self.server.execute(node, path, arguments)

    # -- the air -----------------------------------------------------------------------------

    def _frame(self, frame: ReceivedFrame) -> None:
        try:
            datagram = self.link.receive(frame.psdu)
        except LinkSecurityError as e:
            self._refused(frame.psdu, e)
            return
        except RadioDecodeError as e:
            self.decode_errors += 1
            log.debug("frame dropped: %s", e)
            return
        if datagram is None or self._interface is None:
            return
        src, src_port = datagram.src, datagram.src_port
        if datagram.dst_port not in self.coap_ports:
            self._not_served(src, datagram.dst_port)
            return
        remember(self._ports, (src, src_port), datagram.dst_port)
        node = self.server.node_at(src)
        self.node_events.accepted(node)
        self.server.link_quality(node, frame.rssi, frame.lqi)
        self._interface.received(src, src_port, datagram.payload)

    def _send_datagram(self, remote: LowpanAddress, payload: bytes) -> None:
        """Queue ``payload`` for ``remote``, in the order the gateway meant it.

        What the gateway sends before the radio is up waits for it, bounded by
        ``TRANSMIT_QUEUE``, rather than being dropped: the radio comes up in the background
        (``start`` attaches the node server first, and a missing dongle is retried with
        back-off), while the gateway already speaks, e.g. the Observe requests of the
        registrations it resumed. Dropped, those waited for CoAP's retransmission (2 s at the
        soonest), and a lost non-confirmable message never came: a user expects what the
        gateway said to go out as soon as the radio can, in order. Until the radio's first
        bring-up the gateway has no address to send from, so the datagram waits whole
        (``_early``); after it, its frames wait in the transmit queue (``_send_frames``)."""
        own = self.radio_config.ext_address or getattr(self.radio, "eui64", None)
        if not own:
            if len(self._early) < TRANSMIT_QUEUE:
                self._early.append((remote, payload))
                return
            self.dropped_frames += 1
            log.warning(
                "radio not up yet, %d datagrams wait: one to %s dropped",
                len(self._early),
                remote.hostinfo,
            )
            return
        dst_mac = mac_from_address(remote.ip)  # unicast, to an EUI-64 or a short address
        port = self._ports.get((remote.ip, remote.port), self.coap_ports[0])
        datagram = UdpDatagram(link_local(own), port, remote.ip, remote.port, payload)
        try:
            frames = self.link.send(
                datagram, src_mac=own, dst_mac=dst_mac, pan_id=self.radio_config.pan_id
            )
        except (FrameCounterError, ValueError) as e:
            log.error("a datagram to %s is not sent: %s", remote.hostinfo, e)
            return
        for psdu in frames:
            try:
                self._queue.put_nowait(psdu)
            except asyncio.QueueFull:
                self.dropped_frames += 1
                log.warning("transmit queue full: a frame to %s dropped", remote.hostinfo)
                return

    def _refused(self, psdu: bytes, error: LinkSecurityError) -> None:
        """A frame refused by link-layer security: counted; for a paired node, counted as its
        own and said once per node and cause (a forger would otherwise fill the log)."""
        self.refused_frames += 1
        try:
            source = parse_frame(psdu).src
        except MacDecodeError:
            source = None
        node = self._node(source) if source is not None else None
        if node is None or node not in self._paired:
            log.debug("frame from %s refused: %s", node or "an unknown source", error)
            return
        problem = _PROBLEMS.get(type(error), f"secured frames not opened: {error}")
        self.node_events.refuse(node, problem)
        if (node, type(error)) in self._told:
            return
        remember(self._told, (node, type(error)), None)
        log.warning(
            "node %s: a frame refused by link-layer security: %s (said once)",
            node,
            error,
            extra={"NODE": str(node)},
        )

    def _not_served(self, src: bytes, port: int) -> None:
        """A datagram from ``src`` to a port the gateway does not serve: dropped, and said
        once per node."""
        node = self.server.node_at(src)
        if node in self._dropped:
            return
        remember(self._dropped, node, None)
        log.warning(
            "node %s sends to UDP port %d, which the gateway does not serve "
            "([transport.802154] coap_ports = %s): its datagrams are dropped (logged once)",
            node,
            port,
            list(self.coap_ports),
            extra={"NODE": str(node)},
        )

    async def _send_frames(self) -> None:
        """Transmit the queued frames one by one. A frame waits while the radio is down (the
        queue bounds how many do) rather than being aborted unseen."""
        while True:
            psdu = await self._queue.get()
            await self._up.wait()
            status = await self.radio.transmit(psdu)
            if status is not TxStatus.OK:
                log.debug("frame not delivered: %s", status.name)

    def _radio_state(self, state: RadioState) -> None:
        # (the radio logs the change itself)
        if state.up:
            self._up.set()
            early, self._early = self._early, []
            for remote, payload in early:
                self._send_datagram(remote, payload)
        else:
            self._up.clear()
        if state.stopped:
            self.radio_stopped(f"radio {state.reason}")
            return
        self.radio_condition(
            f"radio {'up' if state.up else 'down'}: {state.reason}", fault=not state.up
        )
        if not state.up:
            # Nothing reaches a node while the radio is down: none is reachable (each is again
            # when it is next heard, its registration kept for when the radio is back).
            now = time.time()
            for node, registration in self.server.registrations.items():
                self.node_events.state(node, NodeState(False, now, sleepy=registration.queue))
