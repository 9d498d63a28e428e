"""The RCP host: drives an OpenThread radio co-processor over a serial port, frames in and out.

``Radio`` owns the port and keeps the dongle in the state its ``RadioConfig`` describes; above
it, code sees only raw 802.15.4 frames (PSDUs, each with its 2-byte FCS) and transmit outcomes.

* **The port** is opened with pyserial's ``serial_for_url(..., exclusive=True)``, so a device
  path, ``socket://host:port`` and ``rfc2217://`` all work and no other process can share the
  dongle. Its file descriptor is then read and written on the event loop, non-blocking
  (port_io.py; a port without one, ``rfc2217://``, keeps a reader thread). Writes go under a
  lock, so frames never interleave; everything (HDLC, Spinel, the state) runs in the loop.
* **The pace of reads** (pacing.py): while the line is quiet each frame is read at once;
  while it is busy a timer reads all that came meanwhile, in one wake-up of the loop, first
  every ``pacing.window_for(baudrate)``, then as seldom as the line's measured byte rate lets
  the tty's buffer wait (up to ``pacing.MAX_WINDOW``). A request waiting for the RCP's answer
  is never paced, nor is a line that carried a request within the floor window (exchanges are
  bound by their round trips).
* **Bring-up**: RESET, then wait for the RCP's reset notification (LAST_STATUS RESET_* with
  TID 0; nothing may be set before it), check PROTOCOL_VERSION (major 4) and RCP_API_VERSION,
  read CAPS, NCP_VERSION and HWADDR, then apply the radio state: PHY_ENABLED, PHY_CHAN,
  PHY_TX_POWER, MAC_15_4_PANID, LADDR, SADDR, and MAC_RAW_STREAM_ENABLED (receive on).
* **Requests** carry TIDs 1-15; replies are matched by TID and time out.
* **Faults**: an unsolicited reset while up means the RCP lost its state: the radio state is
  applied again (an in-flight transmit ends ABORTED). A port that fails (read error, EOF, a
  write error, an RCP that stops answering) is closed and reopened with exponential back-off,
  forever, while the daemon runs; ``on_state`` is told of every change, with the reason.
* **Stopping** may come at any moment: while the port opens, during bring-up, during back-off,
  with a frame in flight, while a lost port is being dropped. ``stop()`` returns once the
  port is closed, and a ``start()`` still waiting returns too.
  Waits for the RCP use ``asyncio.timeout``, never ``asyncio.wait_for``: on Python 3.11,
  ``wait_for`` returns the result of a future that completes in the same loop iteration as a
  cancel and drops the cancel, which once left the transport's sender (cancelled by
  ``stop()`` as a transmit outcome came in) waiting for its next frame forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial

from bridged.aio import Backoff, cancel_and_wait

from . import hdlc, spinel
from .pacing import window_for
from .port_io import PortIO, open_io
from .spinel import Command, Prop, SpinelDecodeError, Status

log = logging.getLogger(__name__)

#: The Spinel protocol major version this host speaks (OpenThread's is 4).
PROTOCOL_MAJOR = 4
#: The oldest RCP API whose STREAM_RAW layouts this host knows (OpenThread's minimum too).
MIN_RCP_API_VERSION = 4


@dataclass(frozen=True)
class RadioConfig:
    """What the radio is set to. ``ext_address`` None uses the dongle's own EUI-64 (HWADDR);
    addresses are in EUI-64 (big-endian) order, as Spinel carries them."""

    port: str
    channel: int = 11
    pan_id: int = 0xABCD
    ext_address: bytes | None = None
    short_address: int = 0x0000
    tx_power: int = 0
    baudrate: int = 460800
    reopen_backoff: tuple[float, float] = (0.5, 30.0)
    request_timeout: float = 2.0
    #: CSMA-CA back-offs and every retry of a frame nobody ACKs take far longer than a request.
    transmit_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not 11 <= self.channel <= 26:
            raise ValueError(f"channel must be 11..26, not {self.channel}")
        if not 0 <= self.pan_id <= 0xFFFF or not 0 <= self.short_address <= 0xFFFF:
            raise ValueError("pan_id and short_address are 16-bit values")
        if self.ext_address is not None and len(self.ext_address) != 8:
            raise ValueError("ext_address must be 8 bytes")
        if not -128 <= self.tx_power <= 127:
            raise ValueError(f"tx_power must be -128..127 dBm, not {self.tx_power}")
        low, high = self.reopen_backoff
        if not 0 < low <= high:
            raise ValueError(f"reopen_backoff must be (min, max) with 0 < min <= max: {low, high}")


ReceivedFrame = spinel.RxFrame
"""A frame heard on the air: the PSDU as received (its FCS included) and its metadata, as the
RCP's STREAM_RAW carried them (a reception it reports as failed is counted, not handed on):
the value decoded is handed on, not copied into another per frame."""


class TxStatus(enum.Enum):
    """How a transmit ended."""

    OK = "ok"  # sent; ACKed if it asked for an ACK
    NO_ACK = "no ACK"  # every retry went unacknowledged
    CCA_FAILURE = "channel busy"  # CSMA-CA never found the channel clear
    ABORTED = "aborted"  # the RCP aborted it, or reset, went away or stopped answering
    FAILED = "failed"  # the RCP refused it with another status


_TX_STATUSES = {
    Status.OK: TxStatus.OK,
    Status.NO_ACK: TxStatus.NO_ACK,
    Status.CCA_FAILURE: TxStatus.CCA_FAILURE,
    Status.DROPPED: TxStatus.ABORTED,
    # The RCP's own error codes, as some firmware reports them: ABORT, NO_ACK, CHANNEL_ACCESS.
    spinel.STATUS_STACK_NATIVE_BASE + 11: TxStatus.ABORTED,
    spinel.STATUS_STACK_NATIVE_BASE + 14: TxStatus.NO_ACK,
    spinel.STATUS_STACK_NATIVE_BASE + 15: TxStatus.CCA_FAILURE,
}


@dataclass(frozen=True, slots=True)
class RadioState:
    """Up (frames flow) or down, and why. ``stopped``: down because ``Radio.stop`` closed it,
    on purpose, which is no loss of the dongle (not a fault of the gateway's)."""

    up: bool
    reason: str
    stopped: bool = False


@dataclass(frozen=True, slots=True)
class RadioStats:
    frames_received: int
    rx_errors: int  # receptions the RCP reported as failed
    hdlc_errors: int  # refused HDLC frames (bad FCS, too short, overlong, bad escape)
    spinel_errors: int  # HDLC frames that were not valid Spinel
    unsolicited_resets: int
    connections: int  # successful bring-ups
    reads: int  # serial reads handed to the event loop, each a wake-up of it (pacing.py)


class RadioError(Exception):
    """The RCP refused the bring-up: an incompatible version, a missing capability, an error
    status. The radio reports it as its down reason and tries again after a back-off."""


class _LinkDown(Exception):
    """The connection went away, or the RCP reset (``reset``), while a request waited."""

    def __init__(self, reason: str, *, reset: bool = False) -> None:
        super().__init__(reason)
        self.reset = reset


class Radio:
    """The RCP host. ``on_frame`` and ``on_state`` are called in the event loop's thread."""

    def __init__(
        self,
        config: RadioConfig,
        *,
        on_frame: Callable[[ReceivedFrame], None],
        on_state: Callable[[RadioState], None] | None = None,
    ) -> None:
        self.config = config
        self.on_frame = on_frame
        self.on_state = on_state
        self.state = RadioState(False, "not started")
        #: The dongle's HWADDR once it has been up (empty before).
        self.eui64 = b""
        self.ncp_version = ""
        self.caps: frozenset[int] = frozenset()
        self._decoder = hdlc.FrameDecoder(on_error=self._hdlc_error)
        self._io: PortIO | None = None
        self._opening: asyncio.Future[serial.SerialBase] | None = None
        self._closing: asyncio.Future[None] | None = None
        self._generation = 0
        self._pending: dict[int, asyncio.Future[spinel.Frame]] = {}
        #: The bring-up waits for the RCP's reset notification (an answer without a TID).
        self._resetting = False
        self._next_tid = 1
        self._tids = asyncio.Semaphore(spinel.MAX_TID)
        self._tx_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._attempted = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._received = self._rx_errors = self._spinel_errors = 0
        self._resets = self._connections = self._reads = 0

    @property
    def stats(self) -> RadioStats:
        return RadioStats(
            self._received,
            self._rx_errors,
            sum(self._decoder.errors.values()),
            self._spinel_errors,
            self._resets,
            self._connections,
            self._reads,
        )

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the port and bring the RCP up. Returns after the first attempt, up or not: a
        missing or failing dongle is retried in the background with back-off, never raised."""
        if self._supervisor is not None:
            return
        self._attempted.clear()
        self._supervisor = asyncio.create_task(self._supervise(), name="rcp-radio")
        await self._attempted.wait()

    async def stop(self) -> None:
        """Close the port; the radio stays down until started again. Returns once the port is
        closed, whatever the radio was doing."""
        task, self._supervisor = self._supervisor, None
        await cancel_and_wait(task)
        self._attempted.set()  # a start() waiting for a first attempt that never came
        await self._disconnect("stopped")
        self._set_state(False, "stopped", stopped=True)

    async def transmit(self, psdu: bytes, *, csma: bool = True, max_retries: int = 3) -> TxStatus:
        """Send one PSDU (with room for its 2-byte FCS, which the RCP fills in) on the
        configured channel. One frame is in flight at a time; the RCP does CSMA-CA and up to
        ``max_retries`` retries for a frame that asks for an ACK. A radio that is down, resets
        or stops answering ends the transmit ABORTED.

        A frame with security enabled was secured by the host (link_security.py), its frame
        counter included: it goes as it is, marked processed, so an RCP that can secure frames
        itself neither secures it again with its own key nor rewrites its counter."""
        secured = bool(psdu[:1]) and bool(psdu[0] & 0x08)  # frame control: security enabled
        request = spinel.TxRequest(
            psdu,
            self.config.channel,
            max_frame_retries=max_retries,
            csma_ca=csma,
            header_updated=secured,
            security_processed=secured,
        )
        value = spinel.encode_tx(request)  # refuses a PSDU over 127 bytes before queueing
        async with self._tx_lock:
            if not self.state.up:
                return TxStatus.ABORTED
            generation = self._generation
            try:
                reply = await self._request(
                    Command.PROP_VALUE_SET, Prop.STREAM_RAW, value, self.config.transmit_timeout
                )
            except _LinkDown:
                return TxStatus.ABORTED
            except TimeoutError:
                self._lost(generation, "the RCP gave no transmit outcome")
                return TxStatus.ABORTED
            try:
                prop, status_value = spinel.decode_property(reply.payload)
                if reply.command != Command.PROP_VALUE_IS or prop != Prop.LAST_STATUS:
                    raise SpinelDecodeError(f"command {reply.command}, property {prop}")
                done = spinel.decode_tx_done(status_value)
            except SpinelDecodeError as exc:
                log.warning("unexpected answer to a transmit: %s", exc)
                return TxStatus.FAILED
            outcome = _TX_STATUSES.get(done.status, TxStatus.FAILED)
            if outcome is TxStatus.FAILED:
                log.warning("the RCP refused a transmit: %s", spinel.status_name(done.status))
            return outcome

    # -- the supervisor: open, bring up, serve, and start again -----------------------------------

    async def _supervise(self) -> None:
        backoff = Backoff(*self.config.reopen_backoff)
        failures = 0
        while True:
            try:
                await self._connect()
            except Exception as exc:  # whatever it is, the daemon keeps running and retries
                if not isinstance(exc, (OSError, RadioError, TimeoutError, _LinkDown)):
                    log.exception("bringing up the RCP on %s failed", self.config.port)
                reason = _describe(exc)
                await self._disconnect(reason)
                self._set_state(False, reason)
                self._attempted.set()
                await asyncio.sleep(backoff.delay(failures))
                failures += 1
                continue
            failures = 0
            self._connections += 1
            self._set_state(True, self._up_reason())
            self._attempted.set()
            reason = await self._serve()
            await self._disconnect(reason)
            self._set_state(False, reason)

    async def _connect(self) -> None:
        self._generation += 1
        generation = self._generation
        # Stopped while the thread opens the port, _disconnect waits for it and closes it.
        self._opening = asyncio.ensure_future(asyncio.to_thread(self._open_port))
        port = await asyncio.shield(self._opening)
        self._opening = None
        self._decoder.resync()
        self._io = open_io(
            port,
            window=window_for(self.config.baudrate),
            on_data=functools.partial(self._received_bytes, generation),
            on_lost=functools.partial(self._lost, generation),
            awaiting=self._awaiting,
        )
        await self._bring_up()

    def _open_port(self) -> serial.SerialBase:
        port = serial.serial_for_url(
            self.config.port,
            baudrate=self.config.baudrate,
            write_timeout=self.config.request_timeout,
            exclusive=True,
            do_not_open=True,
        )
        port.open()
        port.reset_input_buffer()
        return port

    async def _serve(self) -> str:
        """Wait while up; re-apply the radio state after each unsolicited reset. Returns why
        the connection has to be dropped."""
        while True:
            kind, detail = await self._events.get()
            if kind == "lost":
                return detail
            self._resets += 1
            self._set_state(False, f"the RCP reset ({detail}): applying the radio state again")
            try:
                await self._configure()
            except _LinkDown as exc:
                if exc.reset:  # reset again meanwhile: its event is queued, start over
                    continue
                return f"applying the radio state after a reset failed: {_describe(exc)}"
            except (RadioError, TimeoutError) as exc:
                return f"applying the radio state after a reset failed: {_describe(exc)}"
            self._set_state(True, self._up_reason())

    async def _disconnect(self, reason: str) -> None:
        """Drop the connection: at once for the state, in the background for what blocks.

        The port stops being read at once; closing it (and ending a reader thread) runs in a
        shielded task, so a cancel (stop() cancelling the supervisor mid-way) cannot leave the
        port open; the next _disconnect, stop()'s, waits for it.
        """
        self._generation += 1  # whatever the old reader or a late write reports is ignored
        self._fail_pending(reason)
        while not self._events.empty():
            self._events.get_nowait()
        opening, self._opening = self._opening, None
        io, self._io = self._io, None
        if io is not None:
            io.detach()
        closing = asyncio.ensure_future(_release(self._closing, opening, io))
        self._closing = closing
        await asyncio.shield(closing)

    def _up_reason(self) -> str:
        return f"up on channel {self.config.channel}, EUI-64 {self.eui64.hex()}"

    def _set_state(self, up: bool, reason: str, *, stopped: bool = False) -> None:
        state = RadioState(up, reason, stopped)
        if state == self.state:
            return
        self.state = state
        if stopped:
            log.info("802.15.4 radio %s", reason)
        else:
            level = log.info if up else log.warning
            level("802.15.4 radio %s: %s", "up" if up else "down", reason)
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception:
                log.exception("on_state callback failed")

    # -- bring-up ---------------------------------------------------------------------------------

    async def _bring_up(self) -> None:
        self._resetting = True
        try:
            await self._write(spinel.encode_frame(spinel.Frame(Command.RESET)))
            async with asyncio.timeout(self.config.request_timeout):
                kind, detail = await self._events.get()
        finally:
            self._resetting = False
        if kind == "lost":
            raise _LinkDown(detail)
        major, minor = await self._get(Prop.PROTOCOL_VERSION, "ii")
        if major != PROTOCOL_MAJOR:
            raise RadioError(f"Spinel protocol {major}.{minor}, this host speaks {PROTOCOL_MAJOR}")
        (api,) = await self._get(Prop.RCP_API_VERSION, "i")
        if api < MIN_RCP_API_VERSION:
            raise RadioError(f"RCP API version {api}, this host needs {MIN_RCP_API_VERSION}")
        (caps,) = await self._get(Prop.CAPS, "D")
        self.caps = frozenset(spinel.iter_caps(caps))
        if spinel.CAP_MAC_RAW not in self.caps:
            raise RadioError("the firmware is not a raw-radio RCP (no MAC_RAW capability)")
        (self.ncp_version,) = await self._get(Prop.NCP_VERSION, "U")
        (self.eui64,) = await self._get(Prop.HWADDR, "E")
        log.info("RCP %s, API %d, EUI-64 %s", self.ncp_version, api, self.eui64.hex())
        await self._configure()

    async def _configure(self) -> None:
        """Apply the whole radio state; after a reset the RCP has forgotten all of it."""
        config = self.config
        await self._set(Prop.PHY_ENABLED, "b", True)
        await self._set(Prop.PHY_CHAN, "C", config.channel)
        try:
            await self._set(Prop.PHY_TX_POWER, "c", config.tx_power)
        except RadioError as exc:  # some RCPs fix their power: not worth staying down for
            log.warning("the RCP kept its own TX power: %s", exc)
        await self._set(Prop.MAC_15_4_PANID, "S", config.pan_id)
        await self._set(Prop.MAC_15_4_LADDR, "E", config.ext_address or self.eui64)
        await self._set(Prop.MAC_15_4_SADDR, "S", config.short_address)
        await self._set(Prop.MAC_RAW_STREAM_ENABLED, "b", True)

    async def _get(self, prop: Prop, signature: str) -> tuple[Any, ...]:
        return await self._property(Command.PROP_VALUE_GET, prop, signature, b"")

    async def _set(self, prop: Prop, signature: str, *values: Any) -> None:
        value = spinel.pack(signature, *values)
        await self._property(Command.PROP_VALUE_SET, prop, signature, value)

    async def _property(
        self, command: Command, prop: Prop, signature: str, value: bytes
    ) -> tuple[Any, ...]:
        """A GET or SET, answered by VALUE_IS of the property, or by LAST_STATUS on failure."""
        reply = await self._request(command, prop, value, self.config.request_timeout)
        try:
            answered, answer = spinel.decode_property(reply.payload)
            if reply.command == Command.PROP_VALUE_IS and answered == prop:
                return spinel.unpack(signature, answer)
            if reply.command == Command.PROP_VALUE_IS and answered == Prop.LAST_STATUS:
                status = spinel.status_name(spinel.unpack_uint(answer)[0])
                raise RadioError(f"{command.name} {prop.name}: {status}")
            raise RadioError(f"{command.name} {prop.name} answered by command {reply.command}")
        except SpinelDecodeError as exc:
            raise RadioError(f"{command.name} {prop.name}: bad answer: {exc}") from None

    async def _request(
        self, command: Command, prop: Prop, value: bytes, timeout: float
    ) -> spinel.Frame:
        async with self._tids:
            tid = self._allocate_tid()
            future: asyncio.Future[spinel.Frame] = asyncio.get_running_loop().create_future()
            self._pending[tid] = future
            if self._io is not None:
                self._io.expect_answer()  # a paced line is read at once again
            try:
                await self._write(spinel.encode_frame(spinel.prop_frame(command, prop, value, tid)))
                async with asyncio.timeout(timeout):
                    return await future
            finally:
                self._pending.pop(tid, None)

    def _allocate_tid(self) -> int:
        # The semaphore keeps at most 15 requests pending, so one of the 15 TIDs is free.
        while True:
            tid = self._next_tid
            self._next_tid = tid % spinel.MAX_TID + 1
            if tid not in self._pending:
                return tid

    async def _write(self, payload: bytes) -> None:
        io = self._io
        if io is None:
            raise _LinkDown("the port is closed")
        data = hdlc.encode_frame(payload)
        generation = self._generation
        timeout = self.config.request_timeout
        async with self._write_lock:
            try:
                async with asyncio.timeout(timeout):
                    await io.write(data)
            except TimeoutError:
                reason = f"write failed: the port took no bytes for {timeout:g} s"
                self._lost(generation, reason)
                raise _LinkDown(reason) from None
            except (OSError, serial.SerialException) as exc:
                self._lost(generation, f"write failed: {exc}")
                raise _LinkDown(str(exc)) from None

    # -- what the RCP sends -----------------------------------------------------------------------

    def _awaiting(self) -> bool:
        """The host waits for an answer of the RCP (a transmit's outcome, a property, the
        reset notification): its bytes are read at once, never paced."""
        return self._resetting or bool(self._pending)

    def _lost(self, generation: int, reason: str) -> None:
        if generation == self._generation:
            self._link_failed(reason)

    def _link_failed(self, reason: str) -> None:
        self._fail_pending(reason)
        self._events.put_nowait(("lost", reason))

    def _fail_pending(self, reason: str, *, reset: bool = False) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(_LinkDown(reason, reset=reset))

    def _hdlc_error(self, error: hdlc.HdlcDecodeError) -> None:
        log.debug("from the RCP: %s", error)

    def _received_bytes(self, generation: int, data: bytes) -> None:
        if generation != self._generation:
            return
        self._reads += 1
        for payload in self._decoder.feed(data):
            try:
                received = spinel.decode_stream_raw(payload)  # a frame heard: nearly all
                if received is not None:
                    self._heard(received)
                    continue
                frame = spinel.decode_frame(payload)
                if frame.tid:
                    self._answer(frame)
                elif frame.command == Command.PROP_VALUE_IS:
                    self._unsolicited(*spinel.decode_property(frame.payload))
            except SpinelDecodeError as exc:
                self._spinel_errors += 1
                log.debug("bad Spinel frame from the RCP: %s", exc)

    def _answer(self, frame: spinel.Frame) -> None:
        future = self._pending.pop(frame.tid, None)
        if future is None or future.done():
            log.debug("answer with TID %d that nobody waits for", frame.tid)
        else:
            future.set_result(frame)

    def _heard(self, received: ReceivedFrame) -> None:
        """A STREAM_RAW from the RCP: a frame heard, handed on, or a failed reception."""
        if received.rx_error:
            self._rx_errors += 1
            return
        self._received += 1
        try:
            self.on_frame(received)
        except Exception:
            log.exception("on_frame callback failed")

    def _unsolicited(self, prop: int, value: bytes) -> None:
        if prop == Prop.STREAM_RAW:
            self._heard(spinel.decode_rx(value))
        elif prop == Prop.LAST_STATUS:
            (status,) = spinel.unpack("i", value)
            if status in spinel.RESET_STATUSES:
                # Whatever waited for an answer will not get one from the RCP before its reset.
                self._fail_pending("the RCP reset", reset=True)
                self._events.put_nowait(("reset", spinel.status_name(status)))
            else:
                log.debug("RCP status %s", spinel.status_name(status))
        else:
            log.debug("unsolicited property %#x from the RCP", prop)


async def _release(
    previous: asyncio.Future[None] | None,
    opening: asyncio.Future[serial.SerialBase] | None,
    io: PortIO | None,
) -> None:
    """Close a dropped connection: wait for an earlier release, for a port still opening (and
    close it), then close the port (ending its reader thread, if it has one)."""
    if previous is not None:
        await previous
    if opening is not None:
        with contextlib.suppress(Exception):  # failing to open left nothing to close
            (await opening).close()
    if io is not None:
        await io.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "the RCP did not answer"
    return str(exc) or type(exc).__name__
