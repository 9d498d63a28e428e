"""The 6LoWPAN link, sans-I/O: raw 802.15.4 PSDUs in and out, UDP datagrams above.

The transport feeds :meth:`LowpanLink.receive` every PSDU the radio reports and sends the
PSDUs :meth:`LowpanLink.send` returns, one at a time. Everything between (FCS check, link-layer
security, duplicate suppression, dispatch, reassembly, IPHC, NHC, the UDP checksum) happens
here, without I/O, and every refusal is a :class:`RadioDecodeError` subclass naming its layer.

Link-layer security is the link's ``security`` (:mod:`.link_security`: keys, counters); a link
without it takes plaintext frames and refuses secured ones (:class:`SecuredFrameError`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from .errors import RadioDecodeError, SecuredFrameError
from .fragment import DEFAULT_BUDGET, DEFAULT_TIMEOUT, Reassembler, fragment
from .link_security import LinkSecurity
from .lowpan import (
    IPV6_HEADER,
    Context,
    LowpanDecoder,
    UdpDatagram,
    compress,
    decode_udp_frame,
)
from .mac import (
    DuplicateFilter,
    FrameType,
    FrameVersion,
    build_frame,
    data_frame,
    max_payload,
    parse_data_frame,
    parse_frame,
)

__all__ = ["LowpanLink", "RadioDecodeError"]


class LowpanLink:
    """One gateway interface on a PAN: decodes received frames and encodes datagrams to send.

    ``contexts`` is the 6LoWPAN context table (context 0 is usually the PAN's global prefix);
    ``seq`` and ``tag`` are the first MAC sequence number and datagram tag used by :meth:`send`;
    ``security`` opens and secures frames (None: no link-layer security).
    """

    def __init__(
        self,
        *,
        contexts: Mapping[int, Context] | None = None,
        reassembly_budget: int = DEFAULT_BUDGET,
        reassembly_timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        version: FrameVersion = FrameVersion.V2006,
        hop_limit: int = 64,
        seq: int = 0,
        tag: int = 0,
        security: LinkSecurity | None = None,
    ) -> None:
        self.security = security
        self.contexts: Mapping[int, Context] = dict(contexts or {})
        self.reassembler = Reassembler(
            budget=reassembly_budget, timeout=reassembly_timeout, clock=clock
        )
        self.duplicates = DuplicateFilter(clock=clock)
        self.decoder = LowpanDecoder(contexts=self.contexts, reassembler=self.reassembler)
        self.version = version
        self.hop_limit = hop_limit
        self._seq = seq & 0xFF
        self._tag = tag & 0xFFFF

    def receive(self, psdu: bytes) -> UdpDatagram | None:
        """The UDP datagram ``psdu`` completes, or None.

        None for frames that carry no datagram for the layers above: acknowledgements, MAC
        commands and beacons, duplicates, fragments of a datagram still incomplete, and IPv6
        packets other than UDP (ICMPv6, for instance). Raises the layer's
        :class:`RadioDecodeError` for a frame that cannot be decoded, and a
        :class:`LinkSecurityError` for one that link-layer security refuses.

        The common frame (an unsecured data frame from a source that holds no key, carrying a
        datagram in one frame: ``parse_data_frame``, ``decode_udp_frame``) is read from its
        bytes without the general path's objects; every other frame, and every frame the fast
        path declines, takes the general path, which decides what to refuse and why.
        """
        psdu = bytes(psdu)
        common = parse_data_frame(psdu)
        if common is None or (
            self.security is not None and self.security.key_for(common[2]) is not None
        ):
            return self._receive(psdu)
        seq, dst, src, payload = common
        if self.duplicates.is_duplicate(src, seq):
            return None
        datagram = decode_udp_frame(payload, src, dst)
        return datagram if datagram is not None else self._datagram(payload, src, dst)

    def _receive(self, psdu: bytes) -> UdpDatagram | None:
        """``receive``'s general path: any frame, through a :class:`MacFrame`."""
        frame = parse_frame(psdu, fcs=True)
        if frame.frame_type is not FrameType.DATA:
            return None
        if self.security is not None:
            opened = self.security.open(frame, psdu)
            if opened is None:
                return None
            frame = opened
        elif frame.security is not None:
            raise SecuredFrameError(
                f"frame secured at level {frame.security.level}: link-layer keys are not held"
            )
        if (
            frame.seq is not None
            and frame.src is not None
            and self.duplicates.is_duplicate(frame.src, frame.seq)
        ):
            return None
        return self._datagram(frame.payload, frame.src, frame.dst)

    def _datagram(self, payload: bytes, src: bytes | None, dst: bytes | None) -> UdpDatagram | None:
        """The datagram a MAC payload completes (6LoWPAN's general path), or None."""
        packet = self.decoder.decode(payload, src_mac=src, dst_mac=dst)
        return None if packet is None else UdpDatagram.in_packet(packet)

    def send(
        self, datagram: UdpDatagram, *, src_mac: bytes, dst_mac: bytes, pan_id: int
    ) -> list[bytes]:
        """The PSDUs (FCS included) that carry ``datagram``, fragmented if it needs to be, and
        secured when ``dst_mac`` has a key (FrameCounterError when no frame counter can be had:
        nothing is sent)."""
        packet = datagram.to_packet(hop_limit=self.hop_limit)
        header, rest = compress(packet, src_mac=src_mac, dst_mac=dst_mac, contexts=self.contexts)
        aux = self.security.header_for(dst_mac) if self.security is not None else None
        room = max_payload(src=src_mac, dst=dst_mac, version=self.version, security=aux)
        size = IPV6_HEADER + len(packet.payload)
        payloads = fragment(header, rest, size, tag=self._tag, max_payload=room)
        if len(payloads) > 1:
            self._tag = (self._tag + 1) & 0xFFFF
        frames = []
        for payload in payloads:
            frame = data_frame(
                seq=self._seq,
                src=src_mac,
                dst=dst_mac,
                pan_id=pan_id,
                payload=payload,
                version=self.version,
            )
            security = self.security
            frames.append(security.seal(frame) if security is not None else build_frame(frame))
            self._seq = (self._seq + 1) & 0xFF
        return frames
