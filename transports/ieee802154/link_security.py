"""Link-layer security of one 802.15.4 interface, sans-I/O: whose frames need a key, which key,
and the frame counters in both directions.

* **Keys.** A peer (a MAC address) paired with a link key uses it; any other peer uses the
  network key when there is one. A peer with a key must secure its frames: its plaintext
  frames are :class:`UnsecuredFrameError`, so a radio that only knows a paired node's address
  cannot speak in its name. Without any key for a peer, its secured frames are
  :class:`SecuredFrameError` and its plaintext frames are taken as they are.
* **What is accepted**: the levels that encrypt and authenticate (5-7), under the key
  identifier of the settings (the gateway names its keys one way, and its nodes use that
  name), from an extended source address (the nonce needs the EUI-64).
* **Incoming frame counters** must go up strictly per peer, checked only once the MIC verified
  (a forged frame cannot push a counter up). A lower counter, or the same counter on other
  bytes, is :class:`ReplayError`; the same frame byte for byte is a MAC retransmission (its ACK
  was lost) and is dropped without a word. ``accepted`` is told each counter accepted from a
  paired peer, to keep it across restarts (``restore`` hands it back); counters of unpaired
  peers live in memory, the least recently heard forgotten first past ``remembered``.
* **The gateway's own frames** are numbered by one :class:`FrameCounter` for every key and
  peer, so no nonce ever repeats under a key however the keys are shared; it reserves its
  numbers ahead (``reserve``), so that a restart continues above every number it may have
  used, and refuses to number a frame it could not reserve.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from bridged.transports.nodes import Secret

from .errors import ReplayError, SecuredFrameError, UnsecuredFrameError
from .mac import BROADCAST, MacFrame, SecurityHeader, build_frame
from .security import ENC_MIC_LEVELS, KeyIdentifier, seal, unseal

MAX_COUNTER = 0xFFFFFFFF
"""The last frame counter: a key that reached it must be replaced (the standard's rule)."""
RESERVE_WINDOW = 4096
"""How many frame counters the gateway reserves at a time: one durable write per window."""
REMEMBERED = 4096
"""How many unpaired peers' counters are kept."""


DEFAULT_KEY_ID = KeyIdentifier(1, b"", 1)
"""Key identifier mode 1, key index 1: how the gateway names its key unless told otherwise."""


class FrameCounterError(Exception):
    """The gateway cannot number another secured frame: its reservation could not be written,
    or the counter is exhausted. The frame is not sent (a repeated number would repeat a
    nonce)."""


class FrameCounter:
    """The gateway's own frame counter, reserved ahead (module docstring).

    ``load`` gives the reservation kept by the last run (None: there was none), once, at the
    first frame; every number below it may have been used, so counting starts there.
    ``reserve(upto)`` must make ``upto`` durable before it returns (OSError otherwise)."""

    def __init__(
        self,
        load: Callable[[], int | None] = lambda: None,
        reserve: Callable[[int], None] = lambda upto: None,
        window: int = RESERVE_WINDOW,
    ) -> None:
        self._load = load
        self._reserve = reserve
        self.window = window
        self._next: int | None = None
        self._reserved = 0

    @property
    def next_value(self) -> int | None:
        """The number the next frame gets (None before the first)."""
        return self._next

    def next(self) -> int:
        if self._next is None:
            try:
                start = self._load() or 0
            except (OSError, ValueError) as e:
                raise FrameCounterError(f"the kept frame counter cannot be read: {e}") from e
            self._next = self._reserved = start
        value = self._next
        if value > MAX_COUNTER:
            raise FrameCounterError("the frame counter is exhausted: the keys must be replaced")
        if value >= self._reserved:
            upto = min(value + self.window, MAX_COUNTER + 1)
            try:
                self._reserve(upto)
            except OSError as e:
                raise FrameCounterError(f"the frame counter cannot be kept: {e}") from e
            self._reserved = upto
        self._next = value + 1
        return value


@dataclass(frozen=True)
class SecuritySettings:
    """How the gateway secures its frames: ``level`` (5-7), the key identifier its keys are
    named by, and the PAN's network key (None: only paired nodes' link keys)."""

    level: int = 5
    key_id: KeyIdentifier = DEFAULT_KEY_ID
    network_key: Secret | None = None

    def __post_init__(self) -> None:
        if self.level not in ENC_MIC_LEVELS:
            raise ValueError(f"security level {self.level} is not 5, 6 or 7 (ENC-MIC)")


@dataclass
class _Last:
    """The last counter accepted from a peer, and the frame that carried it."""

    counter: int
    psdu: bytes = b""


class LinkSecurity:
    """The keys and counters of one interface (module docstring)."""

    def __init__(
        self,
        settings: SecuritySettings,
        counter: FrameCounter,
        *,
        accepted: Callable[[bytes, int], None] = lambda peer, counter: None,
        remembered: int = REMEMBERED,
    ) -> None:
        self.settings = settings
        self.counter = counter
        self.accepted = accepted
        self.remembered = remembered
        self._paired: dict[bytes, bytes | None] = {}
        """Paired peers and their link keys (None: the network key)."""
        self._last: dict[bytes, _Last] = {}
        """Counters of paired peers: kept as long as they are paired."""
        self._heard: OrderedDict[bytes, _Last] = OrderedDict()
        """Counters of other peers, least recently heard first."""

    # -- peers -------------------------------------------------------------------------------

    def pair(self, peer: bytes, key: bytes | None) -> bool:
        """``peer`` is paired, with its link ``key`` (None: it uses the network key, if any).
        True when this replaced another key: the counters of the old key said nothing of the
        new one, and are forgotten."""
        rekeyed = peer in self._paired and self._paired[peer] != key
        self._paired[peer] = key
        last = self._heard.pop(peer, None)
        if rekeyed:
            self._last.pop(peer, None)
        elif last is not None and peer not in self._last:
            self._last[peer] = last
        return rekeyed

    def unpair(self, peer: bytes) -> None:
        self._paired.pop(peer, None)
        self._last.pop(peer, None)

    def restore(self, peer: bytes, counter: int) -> None:
        """The last counter accepted from a paired ``peer`` before the gateway restarted."""
        if peer in self._paired:
            known = self._last.get(peer)
            if known is None or known.counter < counter:
                self._last[peer] = _Last(counter)

    def last_counter(self, peer: bytes) -> int | None:
        last = self._last.get(peer) or self._heard.get(peer)
        return None if last is None else last.counter

    def key_for(self, peer: bytes | None) -> bytes | None:
        """The key of frames to and from ``peer``: its link key, else the network key."""
        key = self._paired.get(peer) if peer is not None else None
        if key is not None:
            return key
        network = self.settings.network_key
        return network.value if network is not None else None

    # -- frames ------------------------------------------------------------------------------

    def open(self, frame: MacFrame, psdu: bytes) -> MacFrame | None:
        """``frame`` (parsed from ``psdu``) as the layers above may take it: opened if secured,
        as it is if its source needs no key; None for a retransmission of the last frame.
        Raises the :class:`LinkSecurityError` that says why it is refused."""
        key = self.key_for(frame.src)
        security = frame.security
        if security is None:
            if key is not None:
                raise UnsecuredFrameError("a plaintext frame from a source that holds a key")
            return frame
        if key is None:
            raise SecuredFrameError(
                f"frame secured at level {security.level}: no key is held for its source"
            )
        if security.level not in ENC_MIC_LEVELS:
            raise SecuredFrameError(f"security level {security.level} is not accepted (5-7)")
        if KeyIdentifier.of(security) != self.settings.key_id:
            raise SecuredFrameError(
                f"key identifier mode {security.key_id_mode} index {security.key_index} "
                "names no key of the gateway"
            )
        assert frame.src is not None  # the key was found by it
        opened = unseal(frame, psdu, key)
        counter = security.frame_counter
        assert counter is not None  # unseal refuses suppression
        last = self._last.get(frame.src) or self._heard.get(frame.src)
        if last is not None and counter <= last.counter:
            if counter == last.counter and psdu == last.psdu:
                return None
            raise ReplayError(f"frame counter {counter} is not above {last.counter}")
        self._record(frame.src, counter, psdu)
        return opened

    def _record(self, peer: bytes, counter: int, psdu: bytes) -> None:
        if peer in self._paired:
            self._last[peer] = _Last(counter, psdu)
            self.accepted(peer, counter)
            return
        self._heard.pop(peer, None)
        self._heard[peer] = _Last(counter, psdu)
        while len(self._heard) > self.remembered:
            self._heard.popitem(last=False)

    def header_for(self, peer: bytes) -> SecurityHeader | None:
        """The auxiliary security header frames to ``peer`` carry (counter 0: a template for
        the room it takes), None when they go in the clear."""
        if self.key_for(None if peer == BROADCAST else peer) is None:
            return None
        return self.settings.key_id.header(self.settings.level, 0)

    def seal(self, frame: MacFrame) -> bytes:
        """The PSDU of ``frame`` (plaintext, from the gateway's EUI-64), secured under the key
        of its destination with the next frame counter, or in the clear when it has none.
        FrameCounterError when no counter can be had."""
        assert frame.dst is not None
        key = self.key_for(None if frame.dst == BROADCAST else frame.dst)
        if key is None:
            return build_frame(frame)
        header = self.settings.key_id.header(self.settings.level, self.counter.next())
        return seal(replace(frame, security=header), key)
