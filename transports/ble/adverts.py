"""From a heard advert to node-local records: the one call the BLE transport makes per advert.

``AdvertDecoder.decode`` asks the advert formats (formats.py ``FORMATS``: BTHome v2 service
data under 0xFCD2, Ruuvi RAWv2 manufacturer data under 0x0499, ATC1441 or pvvx service data
under 0x181A, in that order) for the first that decodes the advert, then applies the per-node
memory no stateless format can have, the same for every format, and maps the measurements to
records with ``measurements.RecordMapper``:

* **Replay protection.** An encrypted frame's counter must be above the last one
  accepted from that node: a lower counter, or the same counter on different bytes, is
  ``ReplayedAdvert``. The counter is recorded only after the MIC verified, so forged frames
  cannot push it up, and counters are kept apart from the dedupe memory, so a flood of
  unpaired addresses cannot evict them. A node whose counter restarted (new battery) needs
  ``forget`` (re-pairing does it). Counters live in memory: after a restart the first frame
  sets the mark again.
* **Downgrade refusal.** With a bind key, only encrypted frames are accepted from the node:
  plaintext (of any format) is ``UnencryptedAdvert``.
* **Dedupe.** Nodes repeat each advert several times. An advert whose packet ID (BTHome
  packet ID, Ruuvi measurement sequence, ATC/pvvx counter) equals the last accepted one of that
  node, or is slightly behind it (less than a quarter of the ID's range, i.e. late copies), and
  comes within ``dedupe_window`` seconds of it, is ``DuplicateAdvert``; after the window the
  same ID is new data again.
* **Button counters.** Each BTHome button event that is not a duplicate counts for 3347's 5501
  Digital Input Counter, per node and button, from the gateway's start.

Memory is bounded: the dedupe and button state of at most ``max_nodes`` addresses (least
recently heard dropped first), and the counters of at most ``max_nodes`` keyed nodes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from bridged.objects.values import Record

from . import formats
from .advert_data import AdvertFormat, RawAdvert
from .errors import (
    AdvertDecodeError,
    BindKeyRequired,
    DecryptionFailed,
    DuplicateAdvert,
    MalformedAdvert,
    ReplayedAdvert,
    UnencryptedAdvert,
    UnknownObjectId,
)
from .measurements import Frame, Measurement, RecordMapper

__all__ = [
    "AdvertDecodeError",
    "AdvertDecoder",
    "BindKeyRequired",
    "Decoded",
    "DecryptionFailed",
    "DuplicateAdvert",
    "MalformedAdvert",
    "RawAdvert",
    "ReplayedAdvert",
    "UnencryptedAdvert",
    "UnknownObjectId",
]

DEFAULT_MAX_NODES = 4096
DEFAULT_DEDUPE_WINDOW = 4.0
"""Seconds during which a repeated packet ID is a duplicate; nodes repeat an advert for about
a second, and a sensor that has nothing new for longer may send the same ID again."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """A recognised advert: its format, its records at node-local paths (all at the advert's
    time), whether it was encrypted, its packet ID, and the measurements the records came from
    (what ``bridgectl scan`` shows, unmapped ones such as BTHome text included)."""

    profile: str
    records: tuple[Record, ...]
    encrypted: bool
    packet_id: int | None
    measurements: tuple[Measurement, ...] = ()


@dataclass(slots=True)
class _Seen:
    """Dedupe and button state of one address (mutable, private to the decoder)."""

    packet_id: int | None = None
    time: float = 0.0
    buttons: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Counter:
    """The last accepted encryption counter of a keyed node and the frame that carried it."""

    value: int
    frame: bytes


class AdvertDecoder:
    """Per-gateway advert decoding state: replay counters, packet IDs and button counts per
    address, bounded. Not thread-safe; the transport calls it from its event loop. The formats
    are those registered in ``formats.FORMATS`` when it is made."""

    def __init__(
        self,
        *,
        max_nodes: int = DEFAULT_MAX_NODES,
        dedupe_window: float = DEFAULT_DEDUPE_WINDOW,
    ) -> None:
        self.max_nodes = max_nodes
        self.dedupe_window = dedupe_window
        self._formats: tuple[AdvertFormat, ...] = formats.FORMATS
        self._mapper = RecordMapper()
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        self._counters: OrderedDict[str, _Counter] = OrderedDict()

    def forget(self, address: str) -> None:
        """Drop what is remembered of ``address`` (on pairing, unpairing or a new bind key)."""
        self._seen.pop(address, None)
        self._counters.pop(address, None)

    def decode(self, advert: RawAdvert, bindkey: bytes | None = None) -> Decoded | None:
        """Decode and map ``advert``; None when no registered format recognises it.

        ``bindkey`` is the node's bind key when it has one: encrypted adverts need it, and with
        it plaintext ones are refused. Raises only ``AdvertDecodeError`` subclasses, whose
        ``profile`` names the format that recognised the advert.
        """
        for fmt in self._formats:
            data = fmt.where.find(advert)
            if data is None:
                continue
            try:
                frame = fmt.decode(data, advert.address, bindkey)
                if frame is not None:
                    return self._accept(advert, fmt.name, data, frame, bindkey)
            except AdvertDecodeError as e:
                e.profile = fmt.name
                raise
        return None

    def _check_counter(self, address: str, counter: int, data: bytes) -> None:
        last = self._counters.get(address)
        if last is not None:
            if counter == last.value and data == last.frame:
                raise DuplicateAdvert(f"encrypted frame {counter} from {address} again")
            if counter <= last.value:
                raise ReplayedAdvert(
                    f"encryption counter {counter} from {address} is not above {last.value}"
                )
            self._counters.move_to_end(address)
            last.value, last.frame = counter, data
            return
        self._counters[address] = _Counter(counter, data)
        if len(self._counters) > self.max_nodes:
            self._counters.popitem(last=False)

    def _accept(
        self, advert: RawAdvert, profile: str, data: bytes, frame: Frame, bindkey: bytes | None
    ) -> Decoded:
        if bindkey is not None and not frame.encrypted:
            raise UnencryptedAdvert(
                f"plaintext {profile} advert from {advert.address}, a keyed node"
            )
        if frame.counter is not None:
            self._check_counter(advert.address, frame.counter, data)
        seen = self._seen.get(advert.address)
        if seen is None:
            seen = self._seen[advert.address] = _Seen()
            if len(self._seen) > self.max_nodes:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(advert.address)
        pid = frame.packet_id
        if pid is not None:
            if (
                seen.packet_id is not None
                and advert.time - seen.time <= self.dedupe_window
                and (seen.packet_id - pid) % frame.packet_id_modulus < frame.packet_id_modulus // 4
            ):
                raise DuplicateAdvert(f"packet {pid} from {advert.address} again")
            seen.packet_id, seen.time = pid, advert.time
        counts: list[int] = []
        for m in frame.measurements:
            if m.kind == "button":
                n = len(counts)
                if n == len(seen.buttons):
                    seen.buttons.append(0)
                if m.value != "none":
                    seen.buttons[n] += 1
                counts.append(seen.buttons[n])
        records = self._mapper.records(frame.measurements, advert.time, counts)
        return Decoded(profile, records, frame.encrypted, pid, frame.measurements)
