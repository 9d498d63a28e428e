"""An OpenThread RCP dongle, emulated on the master side of a pty.

The code under test opens the slave side with real pyserial, through a symlink (``link``) the
emulator keeps pointing at its current pty, as udev keeps /dev/serial/by-id/... pointing at a
dongle: ``unplug()`` closes the pty and removes the link, ``replug()`` makes a new pty and
points the link at it.

The emulator runs in the test's event loop (``loop.add_reader`` on the master). It speaks
HDLC-lite and Spinel with the project's own codecs, answers RESET and the property gets and sets
a raw-radio host makes, and keeps the radio state (``channel``, ``pan_id``, ``raw_stream``, ...)
that a reset wipes. On the air side:

* ``inject(psdu, rssi, lqi)`` is a frame heard on the air, delivered as STREAM_RAW when the
  raw stream is on and the channel matches; ``inject_together(psdus)`` writes several at once;
* every transmitted PSDU lands in ``sent`` (and the ``transmissions`` queue) with its
  parameters and outcome. The outcome is, in order: the next of ``queue_outcomes(...)``; else
  ``tx_outcome`` (a ``Status``, or a callable returning one or None); else auto-ACK semantics:
  a frame without AR is sent OK, a frame with AR is ACKed (OK) if its destination is one of
  ``neighbours`` (short addresses as ints, extended ones as EUI-64 bytes), else NO_ACK;
* ``on_transmit(psdu)`` is called for every frame that went on the air (OK or NO_ACK), after
  the RCP reported it, so a test can simulate a node that answers with ``inject``.

``reset()`` is an unsolicited reset, ``send_raw()`` puts arbitrary bytes on the line,
``hold_transmits()``/``release_transmits()`` keep transmit outcomes back, ``silent`` stops all
answers (a hung RCP), and ``wait_until(predicate)`` awaits a condition on the emulator.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bridged.transports.ieee802154 import hdlc, spinel
from bridged.transports.ieee802154.spinel import Command, Frame, Prop, Status

DEFAULT_EUI64 = bytes.fromhex("f4ce360000c0ffee")
NOISE_FLOOR = -100

# What each settable property holds, in Spinel's type signatures.
_SETTABLE = {
    Prop.PHY_ENABLED: "b",
    Prop.PHY_CHAN: "C",
    Prop.PHY_TX_POWER: "c",
    Prop.MAC_15_4_PANID: "S",
    Prop.MAC_15_4_LADDR: "E",
    Prop.MAC_15_4_SADDR: "S",
    Prop.MAC_RAW_STREAM_ENABLED: "b",
    Prop.MAC_PROMISCUOUS_MODE: "C",
}
_ATTRIBUTES = {
    Prop.PHY_ENABLED: "phy_enabled",
    Prop.PHY_CHAN: "channel",
    Prop.PHY_TX_POWER: "tx_power",
    Prop.MAC_15_4_PANID: "pan_id",
    Prop.MAC_15_4_LADDR: "ext_address",
    Prop.MAC_15_4_SADDR: "short_address",
    Prop.MAC_RAW_STREAM_ENABLED: "raw_stream",
    Prop.MAC_PROMISCUOUS_MODE: "promiscuous",
}

Outcome = Status | Callable[[bytes], Status | None] | None


@dataclass(frozen=True)
class SentFrame:
    """A transmit the host asked for: the PSDU, all its parameters, and the outcome reported."""

    psdu: bytes
    request: spinel.TxRequest
    status: Status


def kermit_fcs(data: bytes) -> bytes:
    """The 802.15.4 FCS (CRC-16/KERMIT, LSB first) for the ACKs the emulator makes up."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def ack_request_and_destination(psdu: bytes) -> tuple[bool, int | bytes | None]:
    """Whether a frame asks for an ACK, and its destination address (None if it has none or
    the frame is too short to tell). Enough of the 802.15.4 header for auto-ACK."""
    if len(psdu) < 3:
        return False, None
    fcf = int.from_bytes(psdu[:2], "little")
    ack_request = bool(fcf & 0x20)
    compressed = bool(fcf & 0x40)
    version = (fcf >> 12) & 3
    dst_mode, src_mode = (fcf >> 10) & 3, (fcf >> 14) & 3
    pos = 2 if version == 2 and fcf & 0x100 else 3  # 2015 frames may suppress the sequence
    if version < 2:
        dst_pan = dst_mode != 0
    elif dst_mode and src_mode:  # IEEE 802.15.4-2015 table 7-2
        dst_pan = not (compressed and dst_mode == src_mode == 3)
    else:
        dst_pan = bool(dst_mode) != compressed
    pos += 2 if dst_pan else 0
    size = {2: 2, 3: 8}.get(dst_mode, 0)
    if not size or len(psdu) < pos + size:
        return ack_request, None
    raw = psdu[pos : pos + size]
    return ack_request, int.from_bytes(raw, "little") if size == 2 else raw[::-1]


class RcpEmulator:
    def __init__(
        self,
        link: Path,
        *,
        eui64: bytes = DEFAULT_EUI64,
        protocol_version: tuple[int, int] = (4, 3),
        api_version: int = 10,
        caps: tuple[int, ...] = (spinel.CAP_CONFIG_RADIO, spinel.CAP_MAC_RAW),
        ncp_version: str = "OPENTHREAD/bridged-test-rcp; EMULATED",
        neighbours: tuple[int | bytes, ...] = (),
    ) -> None:
        self.link = link
        self.eui64 = eui64
        self.protocol_version = protocol_version
        self.api_version = api_version
        self.caps = caps
        self.ncp_version = ncp_version
        self.neighbours: set[int | bytes] = set(neighbours)
        self.tx_outcome: Outcome = None
        self.on_transmit: Callable[[bytes], None] | None = None
        self.silent = False
        self.sent: list[SentFrame] = []
        self.transmissions: asyncio.Queue[SentFrame] = asyncio.Queue()
        #: Every Spinel frame the host sent, in order.
        self.requests: list[Frame] = []
        self.plugged = False
        self._outcomes: collections.deque[Status] = collections.deque()
        self._held: list[bytes] | None = None
        self._decoder = hdlc.FrameDecoder()
        self._master = self._slave = -1
        self._out = bytearray()
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._power_on()

    def _power_on(self) -> None:
        """The state a (re)started RCP is in: radio off, addresses unset."""
        self.phy_enabled = False
        self.channel = 11
        self.tx_power = 0
        self.pan_id = 0xFFFF
        self.ext_address = b"\0" * 8
        self.short_address = 0xFFFE
        self.raw_stream = False
        self.promiscuous = 0

    async def __aenter__(self) -> RcpEmulator:
        self.replug()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unplug()
        for _, future in self._waiters:
            future.cancel()

    # -- the port ---------------------------------------------------------------------------------

    def replug(self) -> None:
        """A new pty, the link pointed at it, the RCP powered on."""
        if self.plugged:
            return
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline until pyserial sets its own
        os.set_blocking(self._master, False)
        temporary = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        temporary.symlink_to(os.ttyname(self._slave))
        temporary.replace(self.link)
        self._decoder.resync()
        self._out.clear()
        self._power_on()
        self.plugged = True
        asyncio.get_running_loop().add_reader(self._master, self._readable)

    def unplug(self) -> None:
        """The dongle is pulled: the host's port fails, and the link disappears."""
        if not self.plugged:
            return
        self.plugged = False
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._master)
        loop.remove_writer(self._master)
        os.close(self._master)
        os.close(self._slave)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        self._power_on()

    def send_raw(self, data: bytes) -> None:
        """Arbitrary bytes on the line (garbage, or frames made by hand)."""
        self._out += data
        self._flush()

    def _send(self, frame: Frame) -> None:
        self.send_raw(hdlc.encode_frame(spinel.encode_frame(frame)))

    def _flush(self) -> None:
        if not self.plugged:
            self._out.clear()
            return
        while self._out:
            try:
                written = os.write(self._master, self._out)
            except BlockingIOError:
                asyncio.get_running_loop().add_writer(self._master, self._flush)
                return
            del self._out[:written]
        asyncio.get_running_loop().remove_writer(self._master)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except OSError:  # EIO: no slave open right now
            return
        for payload in self._decoder.feed(data):
            try:
                frame = spinel.decode_frame(payload)
            except spinel.SpinelDecodeError:
                continue
            self.requests.append(frame)
            if not self.silent:
                self._handle(frame)
        self._wake()

    # -- what the host asks -----------------------------------------------------------------------

    def _status(self, status: int, tid: int) -> None:
        value = spinel.pack_uint(status)
        self._send(spinel.prop_frame(Command.PROP_VALUE_IS, Prop.LAST_STATUS, value, tid))

    def _handle(self, frame: Frame) -> None:
        if frame.command == Command.RESET:
            self._power_on()
            self._status(Status.RESET_SOFTWARE, 0)
            return
        if frame.command not in (Command.PROP_VALUE_GET, Command.PROP_VALUE_SET):
            self._status(Status.INVALID_COMMAND, frame.tid)
            return
        try:
            prop, value = spinel.decode_property(frame.payload)
        except spinel.SpinelDecodeError:
            self._status(Status.PARSE_ERROR, frame.tid)
            return
        if frame.command == Command.PROP_VALUE_SET:
            if prop == Prop.STREAM_RAW:
                self._transmit(value, frame.tid)
                return
            if prop not in _SETTABLE:
                self._status(Status.PROP_NOT_FOUND, frame.tid)
                return
            try:
                (new,) = spinel.unpack(_SETTABLE[Prop(prop)], value)
            except spinel.SpinelDecodeError:
                self._status(Status.PARSE_ERROR, frame.tid)
                return
            if prop == Prop.PHY_CHAN and not 11 <= new <= 26:
                self._status(Status.INVALID_ARGUMENT, frame.tid)
                return
            setattr(self, _ATTRIBUTES[Prop(prop)], new)
        answer = self._value(prop)
        if answer is None:
            self._status(Status.PROP_NOT_FOUND, frame.tid)
        else:
            self._send(spinel.prop_frame(Command.PROP_VALUE_IS, prop, answer, frame.tid))

    def _value(self, prop: int) -> bytes | None:
        if prop in _SETTABLE:
            return spinel.pack(_SETTABLE[Prop(prop)], getattr(self, _ATTRIBUTES[Prop(prop)]))
        values = {
            Prop.PROTOCOL_VERSION: ("ii", *self.protocol_version),
            Prop.NCP_VERSION: ("U", self.ncp_version),
            Prop.CAPS: ("A(i)", list(self.caps)),
            Prop.HWADDR: ("E", self.eui64),
            Prop.RCP_API_VERSION: ("i", self.api_version),
        }
        if prop not in values:
            return None
        signature, *fields = values[Prop(prop)]
        return spinel.pack(signature, *fields)

    # -- the air ----------------------------------------------------------------------------------

    def queue_outcomes(self, *statuses: Status) -> None:
        """The outcomes of the next transmits, one per frame, before any other policy."""
        self._outcomes.extend(statuses)

    def _outcome(self, psdu: bytes) -> Status:
        if self._outcomes:
            return self._outcomes.popleft()
        policy = self.tx_outcome
        if isinstance(policy, Status):
            return policy
        if policy is not None:
            chosen = policy(psdu)
            if chosen is not None:
                return chosen
        ack_request, destination = ack_request_and_destination(psdu)
        if not ack_request or destination in self.neighbours:
            return Status.OK
        return Status.NO_ACK

    def _transmit(self, value: bytes, tid: int) -> None:
        try:
            request = spinel.decode_tx(value)
        except spinel.SpinelDecodeError:
            self._status(Status.PARSE_ERROR, tid)
            return
        if not self.phy_enabled:
            self._status(Status.INVALID_STATE, tid)
            return
        status = self._outcome(request.psdu)
        sent = SentFrame(request.psdu, request, status)
        self.sent.append(sent)
        self.transmissions.put_nowait(sent)
        ack = None
        ack_request, _ = ack_request_and_destination(request.psdu)
        if status == Status.OK and ack_request:
            header = b"\x02\x00" + request.psdu[2:3]
            ack = spinel.RxFrame(header + kermit_fcs(header), -40, NOISE_FLOOR, 0, self.channel)
        done = spinel.encode_tx_done(spinel.TxDone(status, ack=ack))
        reply = spinel.prop_frame(Command.PROP_VALUE_IS, Prop.LAST_STATUS, done, tid)
        encoded = hdlc.encode_frame(spinel.encode_frame(reply))
        if self._held is not None:
            self._held.append(encoded)
        else:
            self.send_raw(encoded)
        if status in (Status.OK, Status.NO_ACK) and self.on_transmit is not None:
            self.on_transmit(request.psdu)

    def hold_transmits(self) -> None:
        """Keep transmit outcomes back (the RCP is busy with CSMA and retries)."""
        if self._held is None:
            self._held = []

    def release_transmits(self) -> None:
        held, self._held = self._held or [], None
        for encoded in held:
            self.send_raw(encoded)

    def inject(
        self, psdu: bytes, rssi: int = -50, lqi: int = 200, *, channel: int | None = None
    ) -> bool:
        """A frame heard on the air (``channel`` None: the one the radio is on). Returns whether
        the RCP passed it to the host: its receiver must be on and on that channel."""
        if not (self.plugged and self.phy_enabled and self.raw_stream):
            return False
        if channel is not None and channel != self.channel:
            return False
        self.send_raw(self._received(psdu, rssi, lqi))
        return True

    def inject_together(self, psdus: list[bytes]) -> bool:
        """Frames heard back to back, written to the line at once: the host reads them in
        one read, as it does a burst of frames buffered while it was not reading."""
        if not (self.plugged and self.phy_enabled and self.raw_stream):
            return False
        self.send_raw(b"".join(self._received(psdu, -50, 200) for psdu in psdus))
        return True

    def _received(self, psdu: bytes, rssi: int, lqi: int) -> bytes:
        """The line's bytes of a frame heard on the air: STREAM_RAW, HDLC-lite framed."""
        timestamp = time.monotonic_ns() // 1000
        received = spinel.RxFrame(psdu, rssi, NOISE_FLOOR, 0, self.channel, lqi, timestamp)
        value = spinel.encode_rx(received)
        frame = spinel.prop_frame(Command.PROP_VALUE_IS, Prop.STREAM_RAW, value)
        return hdlc.encode_frame(spinel.encode_frame(frame))

    def reset(self, status: Status = Status.RESET_WATCHDOG) -> None:
        """An unsolicited reset: the RCP forgets its radio state, and the outcome of a transmit
        it was busy with, and says so with TID 0."""
        self._held = None
        self._power_on()
        self._status(status, 0)

    # -- waiting ----------------------------------------------------------------------------------

    def _wake(self) -> None:
        for predicate, future in self._waiters:
            if not future.done() and predicate():
                future.set_result(None)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Return once ``predicate()`` holds, checked after every frame from the host."""
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            self._waiters.remove(entry)
