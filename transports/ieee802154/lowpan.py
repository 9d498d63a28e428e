"""6LoWPAN: RFC 4944 dispatch, RFC 6282 IPHC and NHC, both ways, and UDP over IPv6.

Decoding turns a MAC payload into an :class:`Ipv6Packet` (fragments go through a
:class:`~.fragment.Reassembler`); :class:`UdpDatagram` checks the UDP checksum over the RFC 8200
pseudo-header. Encoding compresses a packet with the smallest IPHC encoding the addresses,
contexts and MAC addresses allow.

Supported: IPHC with every SAM/DAM mode, stateless and context-based (a context table the
user configures, as 6LoWPAN-ND would otherwise teach it), the multicast DAM modes, every
TF/NH/HLIM encoding, NHC UDP with its port and checksum compressions, uncompressed IPv6
(dispatch 0x41) and LOWPAN_BC0 (skipped). NHC extension headers (RFC 6282 §4.2: Hop-by-Hop,
Routing, Fragment, Destination Options, Mobility) are decoded, not produced: Contiki-NG, RIOT
and Zephyr nodes in a RPL network send the RPL option (RFC 6553) in a compressed Hop-by-Hop
header, and the UDP datagram behind it must still be found and its checksum verified. Their
options are carried, not acted on: the gateway is the datagram's endpoint, not a RPL router.

Refused with :class:`LowpanDecodeError`: MESH headers (the gateway talks to its neighbours, it
does not route a mesh), HC1, NHC EID 7 (IPv6-in-IPv6, which RPL routers use to tunnel a mesh's
traffic to its root; a neighbour talking to the gateway does not), a Routing header with
segments left (it asks the gateway to forward), and a non-atomic IPv6 Fragment header (IPv6
reassembly is not done; 6LoWPAN fragmentation is what nodes use).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from bridged.objects.slotted import quick_init

from .errors import LowpanDecodeError
from .fragment import FRAG1, FRAGN, Reassembler, parse_fragment_header

IPV6_HEADER = 40
UDP_HEADER = 8
UDP = 17
HOP_BY_HOP = 0
ROUTING = 43
FRAGMENT = 44
DESTINATION_OPTIONS = 60
MOBILITY = 135
DISPATCH_IPV6 = 0x41
DISPATCH_BC0 = 0x50

_LINK_LOCAL = b"\xfe\x80" + bytes(6)
_SHORT_IID = b"\x00\x00\x00\xff\xfe\x00"  # RFC 6282 §3.2.2: 0000:00ff:fe00:XXXX
_HOP_LIMITS = (None, 1, 64, 255)
_UNSPECIFIED = bytes(16)
#: The header each NHC extension header ID (RFC 6282 §4.2) stands for; 5 and 6 are reserved.
_EH_BY_EID = {0: HOP_BY_HOP, 1: ROUTING, 2: FRAGMENT, 3: DESTINATION_OPTIONS, 4: MOBILITY}
_EID_IPV6 = 7
#: Extension headers a receiver walks past to find the upper layer (RFC 8200 §4). The Mobility
#: header is not one of them: it ends the chain (its next header is always 59, none).
_WALKED = frozenset((HOP_BY_HOP, ROUTING, FRAGMENT, DESTINATION_OPTIONS))
#: The headers whose options a compressor may strip trailing padding from (RFC 6282 §4.2).
_PADDED = frozenset((HOP_BY_HOP, DESTINATION_OPTIONS))
_FRAGMENT_HEADER = 8


@dataclass(frozen=True)
class Context:
    """One 6LoWPAN context: a prefix of ``length`` bits (RFC 6282 §3.1.1, RFC 6775 §4.2).

    ``compress`` False keeps the context for decoding only (6LoWPAN-ND's C flag).
    """

    prefix: bytes
    length: int = 64
    compress: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.length <= 128 or len(self.prefix) > 16:
            raise ValueError("a context prefix is at most 16 bytes and 128 bits")
        value = int.from_bytes(self.prefix.ljust(16, b"\0"), "big")
        value &= ((1 << self.length) - 1) << (128 - self.length)
        object.__setattr__(self, "prefix", value.to_bytes(16, "big"))

    def apply(self, address: bytes) -> bytes:
        """``address`` with its first ``length`` bits taken from the prefix."""
        keep = (1 << (128 - self.length)) - 1
        value = int.from_bytes(address, "big") & keep | int.from_bytes(self.prefix, "big")
        return value.to_bytes(16, "big")


@quick_init  # every frame makes one (objects/slotted.py)
@dataclass(frozen=True, slots=True)
class Ipv6Packet:
    """An IPv6 packet; ``payload`` is everything after the 40-byte header."""

    src: bytes
    dst: bytes
    next_header: int
    hop_limit: int
    traffic_class: int = 0
    flow_label: int = 0
    payload: bytes = b""

    def to_bytes(self) -> bytes:
        word = 6 << 28 | self.traffic_class << 20 | self.flow_label
        return (
            word.to_bytes(4, "big")
            + len(self.payload).to_bytes(2, "big")
            + bytes((self.next_header, self.hop_limit))
            + self.src
            + self.dst
            + self.payload
        )

    def upper_layer(self) -> tuple[int, int]:
        """The upper-layer protocol and where its header starts in ``payload``, past the
        extension headers (RFC 8200 §4).

        Raises :class:`LowpanDecodeError` for a truncated chain, a Hop-by-Hop header anywhere
        but first, a Routing header with segments left (the gateway does not forward) and a
        fragment of a larger IPv6 packet (an atomic fragment, RFC 6946, holds it whole).
        """
        protocol, offset, payload = self.next_header, 0, self.payload
        while protocol in _WALKED:
            if protocol == HOP_BY_HOP and offset:
                raise LowpanDecodeError("Hop-by-Hop options not right after the IPv6 header")
            if len(payload) < offset + 8:
                raise LowpanDecodeError(f"extension header {protocol} truncated")
            if protocol == FRAGMENT:
                if (payload[offset + 2] << 8 | payload[offset + 3]) & 0xFFF9:
                    raise LowpanDecodeError("an IPv6 fragment: IPv6 reassembly is not done")
                size = _FRAGMENT_HEADER
            else:
                size = (payload[offset + 1] + 1) * 8
                if protocol == ROUTING and payload[offset + 3]:
                    raise LowpanDecodeError("Routing header with segments left")
            protocol, offset = payload[offset], offset + size
            if offset > len(payload):
                raise LowpanDecodeError(f"extension header of {size} bytes truncated")
        return protocol, offset

    @classmethod
    def from_bytes(cls, data: bytes) -> Ipv6Packet:
        if len(data) < IPV6_HEADER:
            raise LowpanDecodeError(f"IPv6 packet of {len(data)} bytes is shorter than its header")
        word = int.from_bytes(data[:4], "big")
        if word >> 28 != 6:
            raise LowpanDecodeError(f"IP version {word >> 28}, not 6")
        length = data[4] << 8 | data[5]
        if length != len(data) - IPV6_HEADER:
            raise LowpanDecodeError(
                f"IPv6 payload length {length} for {len(data) - IPV6_HEADER} bytes of payload"
            )
        return cls(
            src=data[8:24],
            dst=data[24:40],
            next_header=data[6],
            hop_limit=data[7],
            traffic_class=word >> 20 & 0xFF,
            flow_label=word & 0xFFFFF,
            payload=data[IPV6_HEADER:],
        )


def udp_checksum(src: bytes, dst: bytes, udp: bytes) -> int:
    """The UDP checksum field for ``udp`` (header with a zero checksum, and payload).

    Over the RFC 8200 §8.1 pseudo-header. The one's-complement sum of 16-bit words is the
    value of the whole byte string modulo 0xFFFF (2**16 is 1 modulo 0xFFFF), which one C-level
    big-integer operation computes. A result of 0 is sent as 0xFFFF (RFC 768).
    """
    data = src + dst + len(udp).to_bytes(4, "big") + b"\0\0\0\x11" + udp
    if len(data) & 1:
        data += b"\0"
    total = int.from_bytes(data, "big") % 0xFFFF or 0xFFFF
    return 0xFFFF - total or 0xFFFF


def _checksum_holds(src: bytes, dst: bytes, udp: bytes) -> bool:
    """Whether ``udp`` (its checksum field as received) sums to zero with its pseudo-header:
    :func:`udp_checksum`'s one big-integer remainder."""
    data = src + dst + len(udp).to_bytes(4, "big") + b"\0\0\0\x11" + udp
    if len(data) & 1:
        data += b"\0"
    return not int.from_bytes(data, "big") % 0xFFFF


class UdpDatagram(NamedTuple):
    """A UDP datagram between two IPv6 addresses. A named tuple: every datagram received
    makes one, for less than a frozen dataclass set slot by slot (spinel.RxFrame says why)."""

    src: bytes
    src_port: int
    dst: bytes
    dst_port: int
    payload: bytes

    def to_packet(self, *, hop_limit: int = 64) -> Ipv6Packet:
        """The IPv6 packet carrying this datagram, its checksum computed."""
        length = UDP_HEADER + len(self.payload)
        header = self.src_port.to_bytes(2, "big") + self.dst_port.to_bytes(2, "big")
        header += length.to_bytes(2, "big")
        checksum = udp_checksum(self.src, self.dst, header + b"\0\0" + self.payload)
        udp = header + checksum.to_bytes(2, "big") + self.payload
        return Ipv6Packet(self.src, self.dst, UDP, hop_limit, payload=udp)

    @classmethod
    def from_packet(cls, packet: Ipv6Packet) -> UdpDatagram:
        """The datagram in ``packet`` (after any extension headers); its length and checksum
        must be right."""
        datagram = cls.in_packet(packet)
        if datagram is None:
            raise LowpanDecodeError(f"next header {packet.upper_layer()[0]} is not UDP")
        return datagram

    @classmethod
    def in_packet(cls, packet: Ipv6Packet) -> UdpDatagram | None:
        """``from_packet``, but None for a packet whose upper layer is not UDP (ICMPv6, for
        instance): its extension headers are walked once."""
        protocol, offset = packet.upper_layer()
        if protocol != UDP:
            return None
        udp = packet.payload[offset:]
        if len(udp) < UDP_HEADER:
            raise LowpanDecodeError("UDP datagram shorter than its header")
        if (udp[4] << 8 | udp[5]) != len(udp):
            raise LowpanDecodeError("UDP length disagrees with the IPv6 payload length")
        if not (udp[6] or udp[7]):
            raise LowpanDecodeError("UDP checksum 0 is not allowed over IPv6")
        if not _checksum_holds(packet.src, packet.dst, udp):
            raise LowpanDecodeError("UDP checksum mismatch")
        return cls(
            packet.src, udp[0] << 8 | udp[1], packet.dst, udp[2] << 8 | udp[3], udp[UDP_HEADER:]
        )


def iid_from_mac(mac: bytes, *, pan_id: int | None = None) -> bytes:
    """The interface identifier a MAC address stands for (RFC 4944 §6, RFC 6282 §3.2.2).

    An EUI-64 with its U/L bit inverted. A short address gives ``PAN:00ff:fe00:XXXX`` with the
    U/L bit cleared, where IPHC (and most stacks) use a PAN of 0: pass ``pan_id`` only for the
    RFC 4944 form.
    """
    if len(mac) == 8:
        return bytes((mac[0] ^ 0x02,)) + mac[1:]
    if len(mac) != 2:
        raise ValueError(f"a MAC address is 2 or 8 bytes, not {len(mac)}")
    if pan_id is None:
        return _SHORT_IID + mac
    return bytes((pan_id >> 8 & 0xFD, pan_id & 0xFF)) + _SHORT_IID[2:] + mac


def link_local(mac: bytes, *, pan_id: int | None = None) -> bytes:
    """The fe80::/64 address of a MAC address (see :func:`iid_from_mac`)."""
    return _LINK_LOCAL + iid_from_mac(mac, pan_id=pan_id)


def eui64_from_address(address: bytes) -> bytes | None:
    """The EUI-64 an IPv6 address's IID was made from, or None for a short-address IID."""
    if address[10:14] == b"\x00\xff\xfe\x00":
        return None
    return bytes((address[8] ^ 0x02,)) + address[9:16]


def mac_from_address(address: bytes) -> bytes:
    """The MAC address an IPv6 address's IID was made from: the EUI-64, or the 16-bit short
    address of a ``....:00ff:fe00:XXXX`` IID (either form of :func:`iid_from_mac`)."""
    return eui64_from_address(address) or address[14:16]


# --- IPHC addresses -------------------------------------------------------------------------

# Inline bytes per (address compression, mode) for unicast, and per (DAC, DAM) for multicast.
_UNICAST_INLINE = {
    (0, 0): 16, (0, 1): 8, (0, 2): 2, (0, 3): 0, (1, 0): 0, (1, 1): 8, (1, 2): 2, (1, 3): 0
}  # fmt: skip
_MULTICAST_INLINE = {(0, 0): 16, (0, 1): 6, (0, 2): 4, (0, 3): 1, (1, 0): 6}


def _expand(
    inline: bytes, stateful: int, mode: int, multicast: bool, mac: bytes | None, context: Context
) -> bytes:
    """The address that ``inline`` bytes stand for under one (AC, AM, M) encoding."""
    if multicast:
        if stateful:  # ffXX:XXLL:PPPP:PPPP:PPPP:PPPP:XXXX:XXXX (RFC 3306)
            length = min(context.length, 64)
            return b"\xff" + inline[:2] + bytes((length,)) + context.prefix[:8] + inline[2:]
        if mode == 0:
            return inline
        if mode == 1:
            return b"\xff" + inline[:1] + bytes(9) + inline[1:]
        if mode == 2:
            return b"\xff" + inline[:1] + bytes(11) + inline[1:]
        return b"\xff\x02" + bytes(13) + inline
    if mode == 0:
        return inline if not stateful else _UNSPECIFIED
    if mode == 1:
        iid = inline
    elif mode == 2:
        iid = _SHORT_IID + inline
    else:
        if mac is None:
            raise LowpanDecodeError("address elided but the MAC header has no address to use")
        if not stateful:
            return _link_local_of(mac)
        iid = iid_from_mac(mac)
    if not stateful:
        return _LINK_LOCAL + iid
    return context.apply(bytes(8) + iid)


@functools.lru_cache(maxsize=1024)
def _link_local_of(mac: bytes) -> bytes:
    """``link_local(mac)``, kept for the MAC addresses seen last: a frame whose IPHC elides
    both addresses (link-local traffic, nearly every frame on a PAN) derives both from its
    MAC header, and the same few nodes send most of them."""
    return link_local(mac)


def _context(contexts: Mapping[int, Context], cid: int) -> Context:
    context = contexts.get(cid)
    if context is None:
        raise LowpanDecodeError(f"IPHC names context {cid}, which is not configured")
    return context


_NO_CONTEXT = Context(b"", 0)


def _decode_address(
    data: bytes,
    pos: int,
    stateful: int,
    mode: int,
    multicast: bool,
    mac: bytes | None,
    contexts: Mapping[int, Context],
    cid: int,
    *,
    source: bool,
) -> tuple[bytes, int]:
    table = _MULTICAST_INLINE if multicast else _UNICAST_INLINE
    size = table.get((stateful, mode))
    if size is None or (not source and not multicast and stateful and mode == 0):
        raise LowpanDecodeError(
            f"reserved IPHC address mode (M={multicast:d} AC={stateful} AM={mode})"
        )
    end = pos + size
    if len(data) < end:
        raise LowpanDecodeError("IPHC truncated in an address")
    needs_context = stateful and (multicast or mode != 0)
    context = _context(contexts, cid) if needs_context else _NO_CONTEXT
    return _expand(data[pos:end], stateful, mode, multicast, mac, context), end


# --- IPHC decoding --------------------------------------------------------------------------


@quick_init  # every frame makes one (objects/slotted.py)
@dataclass(frozen=True, slots=True)
class Decompressed:
    """What a compressed header stands for: the IPv6 header's fields and the uncompressed
    extension and UDP headers after it (``after``), the IPv6 payload length set.

    ``consumed`` is the length of the compressed header; the bytes after it follow the
    uncompressed headers as they are. ``checksum_elided``: the UDP checksum field is 0 and must
    be computed once the whole datagram is there (RFC 6282 §4.3.2). A datagram in one frame
    becomes its packet from the fields (``packet``); a fragmented one is reassembled from its
    bytes (``header``).
    """

    src: bytes
    dst: bytes
    next_header: int
    hop_limit: int
    traffic_class: int
    flow_label: int
    length: int
    after: bytes
    consumed: int
    checksum_elided: bool = False

    @property
    def header(self) -> bytes:
        """The uncompressed IPv6 header and the headers after it."""
        word = 6 << 28 | self.traffic_class << 20 | self.flow_label
        return (
            word.to_bytes(4, "big")
            + self.length.to_bytes(2, "big")
            + bytes((self.next_header, self.hop_limit))
            + self.src
            + self.dst
            + self.after
        )

    def packet(self, rest: bytes) -> Ipv6Packet:
        """The packet of a datagram in one frame whose bytes after the compressed header are
        ``rest`` (its length is theirs: ``decompress_header`` without a datagram size)."""
        return Ipv6Packet(
            self.src,
            self.dst,
            self.next_header,
            self.hop_limit,
            self.traffic_class,
            self.flow_label,
            self.after + rest,
        )


def decompress_header(
    data: bytes,
    *,
    src_mac: bytes | None,
    dst_mac: bytes | None,
    contexts: Mapping[int, Context] | None = None,
    datagram_size: int | None = None,
) -> Decompressed:
    """Decompress the LOWPAN_IPHC header (and the NHC headers after it) at the start of ``data``.

    ``datagram_size`` is the uncompressed size from a FRAG1 header; without it the datagram is
    this header plus the rest of ``data``. The length fields are set from it.
    """
    contexts = contexts or {}
    if len(data) < 2 or data[0] >> 5 != 0b011:
        raise LowpanDecodeError("not a LOWPAN_IPHC header")
    b0, b1 = data[0], data[1]
    pos = 2
    sci = dci = 0
    if b1 & 0x80:
        if len(data) < 3:
            raise LowpanDecodeError("IPHC truncated in the context identifier")
        sci, dci, pos = data[2] >> 4, data[2] & 0x0F, 3
    tf = b0 >> 3 & 3
    size = (4, 3, 1, 0)[tf]
    if len(data) < pos + size:
        raise LowpanDecodeError("IPHC truncated in traffic class and flow label")
    inline = data[pos : pos + size]
    pos += size
    if tf == 0:
        traffic_class = (inline[0] & 0x3F) << 2 | inline[0] >> 6
        flow_label = (inline[1] & 0x0F) << 16 | inline[2] << 8 | inline[3]
    elif tf == 1:
        traffic_class = inline[0] >> 6
        flow_label = (inline[0] & 0x0F) << 16 | inline[1] << 8 | inline[2]
    elif tf == 2:
        traffic_class = (inline[0] & 0x3F) << 2 | inline[0] >> 6
        flow_label = 0
    else:
        traffic_class = flow_label = 0
    nhc = b0 & 0x04
    next_header = 0
    if not nhc:
        if len(data) <= pos:
            raise LowpanDecodeError("IPHC truncated in the next header")
        next_header, pos = data[pos], pos + 1
    hop_limit = _HOP_LIMITS[b0 & 3]
    if hop_limit is None:
        if len(data) <= pos:
            raise LowpanDecodeError("IPHC truncated in the hop limit")
        hop_limit, pos = data[pos], pos + 1
    src, pos = _decode_address(
        data, pos, b1 >> 6 & 1, b1 >> 4 & 3, False, src_mac, contexts, sci, source=True
    )
    dst, pos = _decode_address(
        data, pos, b1 >> 2 & 1, b1 & 3, bool(b1 & 0x08), dst_mac, contexts, dci, source=False
    )
    extensions = udp = b""
    elided = False
    if nhc:
        next_header, extensions, udp, pos, elided = _decompress_nhc(data, pos)
    headers = len(extensions) + len(udp)
    total = datagram_size if datagram_size is not None else IPV6_HEADER + headers + len(data) - pos
    length = total - IPV6_HEADER
    if length < headers:
        raise LowpanDecodeError(f"datagram size {total} is smaller than its headers")
    if udp:
        udp = udp[:4] + (length - len(extensions)).to_bytes(2, "big") + udp[6:]
    return Decompressed(
        src,
        dst,
        next_header,
        hop_limit,
        traffic_class,
        flow_label,
        length,
        extensions + udp,
        pos,
        elided,
    )


def _decompress_nhc(data: bytes, pos: int) -> tuple[int, bytes, bytes, int, bool]:
    """The chain of NHC headers at ``pos``: NHC extension headers (RFC 6282 §4.2), each with
    its next header inline or compressed in turn, up to an inline next header or NHC UDP.

    Returns the protocol of the first header, the uncompressed extension headers, the UDP
    header (empty if the chain ends with an inline next header), the position after the
    chain, and whether the UDP checksum was elided.
    """
    if len(data) > pos and data[pos] & 0xF0 != 0xE0:  # UDP alone, as nearly every datagram
        udp, pos, elided = _decompress_udp(data, pos)
        return UDP, b"", udp, pos, elided
    # Each entry: an extension header's protocol, its inline next header (None: the next NHC
    # header's protocol), and its bytes after the Next Header field.
    chain: list[tuple[int, int | None, bytes]] = []
    udp = b""
    elided = False
    while True:
        if len(data) <= pos:
            raise LowpanDecodeError("IPHC announces a next header compression but ends")
        nhc = data[pos]
        if nhc & 0xF0 != 0xE0:
            udp, pos, elided = _decompress_udp(data, pos)
            break
        eid = nhc >> 1 & 7
        if eid == _EID_IPV6:
            raise LowpanDecodeError("NHC IPv6 header (IPv6-in-IPv6) is not supported")
        protocol = _EH_BY_EID.get(eid)
        if protocol is None:
            raise LowpanDecodeError(f"reserved NHC extension header ID {eid}")
        pos += 1
        inline_next: int | None = None
        if not nhc & 1:
            if len(data) <= pos:
                raise LowpanDecodeError("NHC extension header truncated in its next header")
            inline_next, pos = data[pos], pos + 1
        body, pos = _extension_body(data, pos, protocol)
        chain.append((protocol, inline_next, body))
        if inline_next is not None:
            break
    protocols = [protocol for protocol, _, _ in chain] + [UDP]
    extensions = b"".join(
        bytes((protocols[i + 1] if inline_next is None else inline_next,)) + body
        for i, (_, inline_next, body) in enumerate(chain)
    )
    return protocols[0], extensions, udp, pos, elided


def _extension_body(data: bytes, pos: int, protocol: int) -> tuple[bytes, int]:
    """The uncompressed bytes after the Next Header field of the NHC extension header whose
    Length field is at ``pos``, and the position after it.

    RFC 6282 §4.2 makes the Length count the octets after it (not 8-octet units after the
    first 8) and lets the compressor drop a trailing Pad1/PadN of Hop-by-Hop and Destination
    Options, which are padded back to a multiple of 8 octets here. The Fragment header has no
    Length field: its Reserved octet and the 6 after it are carried as they are.
    """
    if protocol == FRAGMENT:
        end = pos + _FRAGMENT_HEADER - 1
        if len(data) < end:
            raise LowpanDecodeError("NHC Fragment header truncated")
        return data[pos:end], end
    if len(data) <= pos:
        raise LowpanDecodeError("NHC extension header truncated in its length")
    end = pos + 1 + data[pos]
    if len(data) < end:
        raise LowpanDecodeError(f"NHC extension header of {data[pos]} bytes truncated")
    content = data[pos + 1 : end]
    missing = -(2 + len(content)) % 8
    if missing and protocol not in _PADDED:
        raise LowpanDecodeError(
            f"extension header {protocol} of {2 + len(content)} bytes, not a multiple of 8"
        )
    if missing == 1:
        content += b"\x00"  # Pad1
    elif missing:
        content += bytes((1, missing - 2)) + bytes(missing - 2)  # PadN
    return bytes(((2 + len(content)) // 8 - 1,)) + content, end


def _decompress_udp(data: bytes, pos: int) -> tuple[bytes, int, bool]:
    """NHC UDP (RFC 6282 §4.3.3) to a UDP header with a zero length field."""
    nhc = data[pos]
    if nhc & 0xF8 != 0xF0:
        raise LowpanDecodeError(f"unknown NHC identifier 0x{nhc:02x}")
    pos += 1
    ports = nhc & 3
    elided = bool(nhc & 0x04)
    size = (4, 3, 3, 1)[ports] + (0 if elided else 2)
    if len(data) < pos + size:
        raise LowpanDecodeError("NHC UDP header truncated")
    if ports == 0:
        src_port, dst_port = data[pos] << 8 | data[pos + 1], data[pos + 2] << 8 | data[pos + 3]
        pos += 4
    elif ports == 1:
        src_port, dst_port = data[pos] << 8 | data[pos + 1], 0xF000 | data[pos + 2]
        pos += 3
    elif ports == 2:
        src_port, dst_port = 0xF000 | data[pos], data[pos + 1] << 8 | data[pos + 2]
        pos += 3
    else:
        src_port, dst_port = 0xF0B0 | data[pos] >> 4, 0xF0B0 | data[pos] & 0x0F
        pos += 1
    checksum = b"\0\0"
    if not elided:
        checksum, pos = data[pos : pos + 2], pos + 2
    header = src_port.to_bytes(2, "big") + dst_port.to_bytes(2, "big") + b"\0\0" + checksum
    return header, pos, elided


def _with_udp_checksum(packet: Ipv6Packet) -> Ipv6Packet:
    """``packet`` with the UDP checksum an elided NHC checksum stands for."""
    _, offset = packet.upper_layer()
    before, udp = packet.payload[:offset], packet.payload[offset:]
    if len(udp) < UDP_HEADER:
        raise LowpanDecodeError("UDP datagram shorter than its header")
    checksum = udp_checksum(packet.src, packet.dst, udp[:6] + b"\0\0" + udp[8:])
    return Ipv6Packet(
        packet.src,
        packet.dst,
        packet.next_header,
        packet.hop_limit,
        packet.traffic_class,
        packet.flow_label,
        before + udp[:6] + checksum.to_bytes(2, "big") + udp[8:],
    )


def _packet(raw: bytes, checksum_elided: bool) -> Ipv6Packet:
    packet = Ipv6Packet.from_bytes(raw)
    return _with_udp_checksum(packet) if checksum_elided else packet


def decode_udp_frame(payload: bytes, src_mac: bytes, dst_mac: bytes) -> UdpDatagram | None:
    """The UDP datagram in the MAC payload of the common frame; None for any other payload
    (or one whose UDP checksum is 0 or wrong), which :class:`LowpanDecoder` and
    :meth:`UdpDatagram.in_packet` decode, or refuse, as for every frame.

    The receive path's fast path, for what a node's CoAP message nearly always is: one frame,
    IPHC with the traffic class and flow label elided, a well-known hop limit, both addresses
    link-local and elided (derived from the MAC addresses, stateless, no context), and NHC UDP
    with both ports and the checksum inline (CoAP's 5683 is outside the 0xF0xx ranges the port
    compressions cover). Its datagram is made from the bytes in one go, where the general path
    builds a ``Decompressed`` and an ``Ipv6Packet`` and walks the extension-header chain it
    cannot have. What it returns is what the general path would have
    (tests/unit/test_lowpan.py compares the two under Hypothesis)."""
    # b0 0b011_11_1_HH (TF 3, NHC, HLIM not inline), b1 0x33 (SAM 3, DAM 3, no CID, SAC, M,
    # DAC), NHC UDP 0xF0 (ports and checksum inline): 9 bytes before the UDP payload.
    if len(payload) < 9 or payload[0] | 3 != 0x7F or not payload[0] & 3:
        return None
    if payload[1] != 0x33 or payload[2] != 0xF0 or not (payload[7] or payload[8]):
        return None
    src, dst = _link_local_of(src_mac), _link_local_of(dst_mac)
    udp = payload[3:7] + (len(payload) - 1).to_bytes(2, "big") + payload[7:]
    if not _checksum_holds(src, dst, udp):
        return None
    return UdpDatagram(
        src, payload[3] << 8 | payload[4], dst, payload[5] << 8 | payload[6], payload[9:]
    )


class LowpanDecoder:
    """RFC 4944 dispatch over MAC payloads, with reassembly of fragmented datagrams."""

    def __init__(
        self,
        *,
        contexts: Mapping[int, Context] | None = None,
        reassembler: Reassembler | None = None,
    ) -> None:
        self.contexts: Mapping[int, Context] = dict(contexts or {})
        self.reassembler = reassembler if reassembler is not None else Reassembler()

    def decode(
        self, payload: bytes, *, src_mac: bytes | None, dst_mac: bytes | None
    ) -> Ipv6Packet | None:
        """The IPv6 packet in one MAC payload, or None while a fragmented one is incomplete."""
        pos = 0
        while True:
            if len(payload) <= pos:
                raise LowpanDecodeError("empty 6LoWPAN payload")
            dispatch = payload[pos]
            if dispatch == DISPATCH_BC0:  # a broadcast sequence number for mesh flooding
                pos += 2
                continue
            if dispatch >> 6 == 0b10:
                raise LowpanDecodeError("6LoWPAN mesh headers are not supported")
            break
        if dispatch >> 3 in (FRAG1, FRAGN):
            header = parse_fragment_header(payload[pos:])
            body = payload[pos + header.length :]
            elided = False
            if header.first:
                prefix = self._prefix(body, src_mac, dst_mac, header.size)
                if prefix is None:
                    body = body[1:]
                else:
                    body = prefix.header + body[prefix.consumed :]
                    elided = prefix.checksum_elided
            done = self.reassembler.add(
                src_mac or b"", header.size, header.tag, header.offset, body, checksum_elided=elided
            )
            return None if done is None else _packet(done.datagram, done.checksum_elided)
        prefix = self._prefix(payload[pos:], src_mac, dst_mac, None)
        if prefix is None:
            return _packet(payload[pos + 1 :], False)
        packet = prefix.packet(payload[pos + prefix.consumed :])
        return _with_udp_checksum(packet) if prefix.checksum_elided else packet

    def _prefix(
        self, data: bytes, src_mac: bytes | None, dst_mac: bytes | None, size: int | None
    ) -> Decompressed | None:
        """The compressed header at the start of ``data``; None for an uncompressed IPv6
        packet after its dispatch byte."""
        if not data:
            raise LowpanDecodeError("fragment without a 6LoWPAN header")
        dispatch = data[0]
        if dispatch >> 5 == 0b011:
            return decompress_header(
                data, src_mac=src_mac, dst_mac=dst_mac, contexts=self.contexts, datagram_size=size
            )
        if dispatch == DISPATCH_IPV6:
            return None
        if dispatch >> 6 == 0:
            raise LowpanDecodeError("not a 6LoWPAN frame (NALP dispatch)")
        raise LowpanDecodeError(f"unsupported 6LoWPAN dispatch 0x{dispatch:02x}")


# --- IPHC compression -----------------------------------------------------------------------

_Candidate = tuple[bytes, int, int, int]  # inline bytes, AC, AM, context ID


def _unicast_inline(address: bytes, mode: int) -> bytes:
    return (address, address[8:], address[14:], b"")[mode]


def _multicast_inline(address: bytes, stateful: int, mode: int) -> bytes:
    if stateful:
        return address[1:3] + address[12:]
    return (address, address[1:2] + address[11:], address[1:2] + address[13:], address[15:])[mode]


def _candidates(
    address: bytes, mac: bytes | None, contexts: Mapping[int, Context], source: bool
) -> list[_Candidate]:
    """Every encoding of ``address`` that decodes back to it, stateless ones first."""
    found: list[_Candidate] = []
    multicast = not source and address[0] == 0xFF
    if source and address == _UNSPECIFIED:
        found.append((b"", 1, 0, 0))
    stateful_options = [(0, 0, _NO_CONTEXT)] + [
        (1, cid, ctx) for cid, ctx in sorted(contexts.items()) if ctx.compress
    ]
    for stateful, cid, context in stateful_options:
        modes = ((0,) if stateful else (3, 2, 1)) if multicast else (3, 2, 1)
        for mode in modes:
            if multicast:
                inline = _multicast_inline(address, stateful, mode)
            else:
                if mode == 3 and mac is None:
                    continue
                inline = _unicast_inline(address, mode)
            if _expand(inline, stateful, mode, multicast, mac, context) == address:
                found.append((inline, stateful, mode, cid))
    found.append((address, 0, 0, 0))
    return found


def compress(
    packet: Ipv6Packet,
    *,
    src_mac: bytes | None,
    dst_mac: bytes | None,
    contexts: Mapping[int, Context] | None = None,
) -> tuple[bytes, bytes]:
    """IPHC-compress ``packet``: (compressed header, the bytes that follow it as they are).

    Picks the shortest encoding: elided or shortened traffic class and flow label, a well-known
    hop limit, each address in the fewest inline bits any stateless or configured context
    encoding allows (a context other than 0 costs one more byte), and NHC UDP with compressed
    ports. The UDP checksum stays inline: eliding it needs the upper layer's consent.
    """
    contexts = contexts or {}
    tc, fl = packet.traffic_class, packet.flow_label
    ecn_dscp = bytes(((tc & 3) << 6 | tc >> 2,))
    if not tc and not fl:
        tf, tf_inline = 3, b""
    elif not fl:
        tf, tf_inline = 2, ecn_dscp
    elif not tc >> 2:
        tf, tf_inline = 1, bytes(((tc & 3) << 6 | fl >> 16,)) + (fl & 0xFFFF).to_bytes(2, "big")
    else:
        tf, tf_inline = 0, ecn_dscp + fl.to_bytes(3, "big")
    udp = packet.payload
    use_nhc = (
        packet.next_header == UDP and len(udp) >= UDP_HEADER and (udp[4] << 8 | udp[5]) == len(udp)
    )
    hlim = {1: 1, 64: 2, 255: 3}.get(packet.hop_limit, 0)
    best: tuple[int, _Candidate, _Candidate] | None = None
    for s in _candidates(packet.src, src_mac, contexts, source=True):
        for d in _candidates(packet.dst, dst_mac, contexts, source=False):
            cost = len(s[0]) + len(d[0]) + (1 if s[3] or d[3] else 0)
            if best is None or cost < best[0]:
                best = (cost, s, d)
    assert best is not None  # the inline encodings are always candidates
    _, (s_inline, sac, sam, sci), (d_inline, dac, dam, dci) = best
    multicast = packet.dst[0] == 0xFF
    b0 = 0x60 | tf << 3 | use_nhc << 2 | hlim
    b1 = (bool(sci or dci)) << 7 | sac << 6 | sam << 4 | multicast << 3 | dac << 2 | dam
    out = bytearray((b0, b1))
    if sci or dci:
        out.append(sci << 4 | dci)
    out += tf_inline
    if not use_nhc:
        out.append(packet.next_header)
    if not hlim:
        out.append(packet.hop_limit)
    out += s_inline + d_inline
    if not use_nhc:
        return bytes(out), packet.payload
    src_port, dst_port = udp[0] << 8 | udp[1], udp[2] << 8 | udp[3]
    if src_port >> 4 == 0xF0B and dst_port >> 4 == 0xF0B:
        out += bytes((0xF3, (src_port & 0xF) << 4 | dst_port & 0xF))
    elif dst_port >> 8 == 0xF0:
        out += bytes((0xF1,)) + udp[0:2] + udp[3:4]
    elif src_port >> 8 == 0xF0:
        out += bytes((0xF2,)) + udp[1:2] + udp[2:4]
    else:
        out += bytes((0xF0,)) + udp[0:4]
    out += udp[6:8]
    return bytes(out), udp[UDP_HEADER:]
