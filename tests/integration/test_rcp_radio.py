"""The RCP host against the emulated dongle, with real pyserial on a pty.

Every test opens the port through the link the emulator keeps pointing at its pty, as a
/dev/serial/by-id/ path points at a dongle, so unplugging and replugging are real: the port
fails under pyserial, the path disappears, and a new pty appears behind the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import serial
from emulators.rcp import DEFAULT_EUI64, NOISE_FLOOR, RcpEmulator

from bridged.transports.ieee802154 import hdlc, spinel
from bridged.transports.ieee802154 import radio as radio_module
from bridged.transports.ieee802154.port_io import LoopPort, ThreadPort, open_io
from bridged.transports.ieee802154.radio import (
    Radio,
    RadioConfig,
    RadioState,
    ReceivedFrame,
    TxStatus,
)
from bridged.transports.ieee802154.spinel import Command, Prop, Status

TIMEOUT = 10.0
NODE_SHORT = 0x0001
NODE_EUI64 = bytes.fromhex("00124b0001020304")

# Data frames, 2006, PAN 0x1234 compressed, from the gateway (short 0x0000); FCS slot zeroed.
TO_NODE_SHORT = bytes.fromhex("61982a341201000000") + b"hello" + b"\0\0"
TO_STRANGER = bytes.fromhex("61982b341202000000") + b"hello" + b"\0\0"
TO_NODE_EXT = bytes.fromhex("61dc2c3412") + NODE_EUI64[::-1] + DEFAULT_EUI64[::-1] + b"hi\0\0"
BROADCAST = bytes.fromhex("41982d3412ffff0000") + b"all" + b"\0\0"
FROM_NODE = bytes.fromhex("618807341200000100") + b"reading" + b"\x12\x34"


@dataclass
class Host:
    radio: Radio
    frames: asyncio.Queue[ReceivedFrame] = field(default_factory=asyncio.Queue)
    states: asyncio.Queue[RadioState] = field(default_factory=asyncio.Queue)

    async def frame(self) -> ReceivedFrame:
        return await asyncio.wait_for(self.frames.get(), TIMEOUT)

    async def state(self, up: bool) -> RadioState:
        """The next reported state that is up (or down)."""
        while True:
            state = await asyncio.wait_for(self.states.get(), TIMEOUT)
            if state.up == up:
                return state


def config(port: Path, **overrides: object) -> RadioConfig:
    settings: dict[str, object] = {
        "channel": 15,
        "pan_id": 0x1234,
        "short_address": 0x0000,
        "tx_power": 4,
        "reopen_backoff": (0.02, 0.2),
    }
    settings.update(overrides)
    return RadioConfig(str(port), **settings)  # type: ignore[arg-type]


@pytest.fixture
async def rcp(tmp_path: Path) -> AsyncIterator[RcpEmulator]:
    async with RcpEmulator(tmp_path / "ttyRCP", neighbours=(NODE_SHORT, NODE_EUI64)) as emulator:
        yield emulator


async def started(rcp: RcpEmulator, **overrides: object) -> Host:
    host = Host(Radio(config(rcp.link, **overrides), on_frame=lambda f: None))
    host.radio.on_frame = host.frames.put_nowait
    host.radio.on_state = host.states.put_nowait
    await host.radio.start()
    return host


@pytest.fixture
async def host(rcp: RcpEmulator) -> AsyncIterator[Host]:
    host = await started(rcp)
    await host.state(up=True)
    yield host
    await host.radio.stop()


def resets_sent(rcp: RcpEmulator) -> int:
    return sum(1 for frame in rcp.requests if frame.command == Command.RESET)


def assert_configured(rcp: RcpEmulator) -> None:
    assert rcp.phy_enabled
    assert (rcp.channel, rcp.pan_id, rcp.short_address, rcp.tx_power) == (15, 0x1234, 0, 4)
    assert rcp.ext_address == DEFAULT_EUI64
    assert rcp.raw_stream


async def test_bring_up(rcp: RcpEmulator, host: Host) -> None:
    assert host.radio.state.up
    assert host.radio.eui64 == DEFAULT_EUI64
    assert host.radio.ncp_version.startswith("OPENTHREAD/")
    assert spinel.CAP_MAC_RAW in host.radio.caps
    assert_configured(rcp)
    # RESET comes first, and nothing is set before the RCP said it had reset.
    assert rcp.requests[0].command == Command.RESET
    asked = [frame.prop for frame in rcp.requests[1:]]
    assert asked[:5] == [
        Prop.PROTOCOL_VERSION,
        Prop.RCP_API_VERSION,
        Prop.CAPS,
        Prop.NCP_VERSION,
        Prop.HWADDR,
    ]
    assert asked[-1] == Prop.MAC_RAW_STREAM_ENABLED
    assert {frame.tid for frame in rcp.requests[1:]} <= set(range(1, 16))


async def test_a_tty_is_read_and_written_on_the_event_loop(
    rcp: RcpEmulator, host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No reader thread (it woke, then woke the loop, per read) and no blocking write in a
    worker thread (two more wake-ups per transmit): the file descriptor is the loop's, and
    nothing is armed while the line is idle."""

    def blocking_write(port: serial.Serial, data: bytes) -> int:
        raise AssertionError("a blocking pyserial write")

    monkeypatch.setattr(serial.Serial, "write", blocking_write)
    assert not reader_threads()
    assert await host.radio.transmit(TO_NODE_SHORT) is TxStatus.OK
    assert rcp.inject(FROM_NODE)
    assert (await host.frame()).psdu == FROM_NODE
    io = host.radio._io
    assert isinstance(io, LoopPort) and io._poll is None
    await host.radio.stop()
    assert_released(rcp)


async def test_configured_extended_address_wins_over_hwaddr(rcp: RcpEmulator) -> None:
    own = bytes.fromhex("0200000000000001")
    host = await started(rcp, ext_address=own)
    try:
        await host.state(up=True)
        assert rcp.ext_address == own
        assert host.radio.eui64 == DEFAULT_EUI64
    finally:
        await host.radio.stop()


async def test_receive_with_metadata(rcp: RcpEmulator, host: Host) -> None:
    assert rcp.inject(FROM_NODE, rssi=-61, lqi=180)
    frame = await host.frame()
    assert frame.psdu == FROM_NODE
    assert (frame.rssi, frame.lqi, frame.channel, frame.noise_floor) == (-61, 180, 15, NOISE_FLOOR)
    assert frame.timestamp_us is not None and frame.timestamp_us > 0
    # A frame on another channel never reaches the host.
    assert not rcp.inject(FROM_NODE, channel=20)
    assert rcp.inject(FROM_NODE[:-2] + b"\x00\x00", rssi=-90, lqi=20)
    assert (await host.frame()).rssi == -90
    assert host.radio.stats.frames_received == 2


async def test_transmit_outcomes(rcp: RcpEmulator, host: Host) -> None:
    radio = host.radio
    assert await radio.transmit(TO_NODE_SHORT) is TxStatus.OK
    assert await radio.transmit(TO_NODE_EXT) is TxStatus.OK
    assert await radio.transmit(TO_STRANGER) is TxStatus.NO_ACK
    assert await radio.transmit(BROADCAST) is TxStatus.OK
    sent = rcp.sent[0]
    assert sent.psdu == TO_NODE_SHORT
    assert (sent.request.channel, sent.request.max_frame_retries, sent.request.csma_ca) == (
        15,
        3,
        True,
    )
    assert [s.status for s in rcp.sent] == [Status.OK, Status.OK, Status.NO_ACK, Status.OK]

    rcp.tx_outcome = Status.CCA_FAILURE
    assert await radio.transmit(TO_NODE_SHORT) is TxStatus.CCA_FAILURE
    rcp.tx_outcome = lambda psdu: Status.NO_ACK if psdu[2] == 0x2A else None
    assert await radio.transmit(TO_NODE_SHORT) is TxStatus.NO_ACK
    assert await radio.transmit(TO_NODE_EXT) is TxStatus.OK
    rcp.queue_outcomes(Status.OK, spinel.STATUS_STACK_NATIVE_BASE + 11, Status.INVALID_ARGUMENT)
    assert await radio.transmit(TO_NODE_SHORT) is TxStatus.OK
    assert await radio.transmit(TO_NODE_SHORT) is TxStatus.ABORTED
    assert await radio.transmit(TO_NODE_SHORT) is TxStatus.FAILED

    assert await radio.transmit(BROADCAST, csma=False, max_retries=0) is TxStatus.OK
    assert (rcp.sent[-1].request.csma_ca, rcp.sent[-1].request.max_frame_retries) == (False, 0)
    with pytest.raises(ValueError):
        await radio.transmit(bytes(128))


async def test_on_transmit_lets_a_node_answer(rcp: RcpEmulator, host: Host) -> None:
    rcp.on_transmit = lambda psdu: rcp.inject(FROM_NODE) and None
    assert await host.radio.transmit(TO_NODE_SHORT) is TxStatus.OK
    assert (await host.frame()).psdu == FROM_NODE


async def test_one_frame_in_flight(rcp: RcpEmulator, host: Host) -> None:
    rcp.hold_transmits()
    first = asyncio.create_task(host.radio.transmit(TO_NODE_SHORT))
    second = asyncio.create_task(host.radio.transmit(BROADCAST))
    await rcp.wait_until(lambda: len(rcp.sent) == 1)
    # A round trip through the host: the second transmit, had it been written, is in by now.
    assert rcp.inject(FROM_NODE)
    await host.frame()
    assert [s.psdu for s in rcp.sent] == [TO_NODE_SHORT]
    assert not first.done() and not second.done()
    rcp.release_transmits()
    assert await asyncio.wait_for(first, TIMEOUT) is TxStatus.OK
    assert await asyncio.wait_for(second, TIMEOUT) is TxStatus.OK
    assert [s.psdu for s in rcp.sent] == [TO_NODE_SHORT, BROADCAST]


async def test_unsolicited_reset_reapplies_the_radio_state(rcp: RcpEmulator, host: Host) -> None:
    rcp.hold_transmits()
    in_flight = asyncio.create_task(host.radio.transmit(TO_NODE_SHORT))
    await rcp.wait_until(lambda: len(rcp.sent) == 1)
    rcp.reset(Status.RESET_WATCHDOG)
    assert await asyncio.wait_for(in_flight, TIMEOUT) is TxStatus.ABORTED
    down = await host.state(up=False)
    assert "RESET_WATCHDOG" in down.reason
    await host.state(up=True)
    assert_configured(rcp)
    assert resets_sent(rcp) == 1  # re-applied, not reset again
    assert host.radio.stats.unsolicited_resets == 1
    assert rcp.inject(FROM_NODE)
    assert (await host.frame()).psdu == FROM_NODE
    assert await host.radio.transmit(TO_NODE_SHORT) is TxStatus.OK


async def test_reset_while_reapplying_starts_over(rcp: RcpEmulator, host: Host) -> None:
    before = len(rcp.requests)
    rcp.reset()
    # Reset again as soon as the host has begun applying the state.
    await rcp.wait_until(lambda: len(rcp.requests) > before)
    rcp.reset(Status.RESET_POWER_ON)
    await rcp.wait_until(lambda: rcp.raw_stream)
    while not host.radio.state.up or host.radio.stats.unsolicited_resets < 2:
        await host.state(up=True)
    assert_configured(rcp)
    assert resets_sent(rcp) == 1
    assert host.radio.stats.connections == 1


async def test_unplug_then_replug_recovers(rcp: RcpEmulator, host: Host) -> None:
    rcp.unplug()
    lost = await host.state(up=False)
    assert "read failed" in lost.reason
    assert await host.radio.transmit(TO_NODE_SHORT) is TxStatus.ABORTED
    # Reopening fails while the port is gone; the radio keeps trying with back-off.
    missing = await host.state(up=False)
    assert "could not open port" in missing.reason
    rcp.replug()
    await host.state(up=True)
    assert resets_sent(rcp) == 2
    assert_configured(rcp)
    assert rcp.inject(FROM_NODE)
    assert (await host.frame()).psdu == FROM_NODE
    assert await host.radio.transmit(TO_NODE_SHORT) is TxStatus.OK
    assert host.radio.stats.connections == 2


async def test_missing_port_at_start_is_retried(rcp: RcpEmulator) -> None:
    rcp.unplug()
    host = await started(rcp)
    try:
        assert not host.radio.state.up
        assert host.radio.state.reason
        rcp.replug()
        await host.state(up=True)
        assert_configured(rcp)
    finally:
        await host.radio.stop()
    assert host.radio.state == RadioState(False, "stopped", stopped=True)


async def test_incompatible_rcp_stays_down_until_it_is_replaced(rcp: RcpEmulator) -> None:
    rcp.api_version = 3
    host = await started(rcp)
    try:
        assert not host.radio.state.up
        assert "RCP API version 3" in host.radio.state.reason
        rcp.api_version = 10  # a reflashed dongle
        await host.state(up=True)
    finally:
        await host.radio.stop()


async def test_an_rcp_that_stops_answering_is_reopened(rcp: RcpEmulator) -> None:
    host = await started(rcp, transmit_timeout=0.5)
    try:
        await host.state(up=True)
        rcp.silent = True
        assert await host.radio.transmit(TO_NODE_SHORT) is TxStatus.ABORTED
        down = await host.state(up=False)
        assert "transmit outcome" in down.reason
        rcp.silent = False
        await host.state(up=True)
        assert resets_sent(rcp) >= 2
    finally:
        await host.radio.stop()


async def test_garbage_on_the_line_is_survived(rcp: RcpEmulator, host: Host) -> None:
    good = hdlc.encode_frame(
        spinel.encode_frame(
            spinel.prop_frame(
                Command.PROP_VALUE_IS,
                Prop.STREAM_RAW,
                spinel.encode_rx(spinel.RxFrame(FROM_NODE, -70, -100, 0, 15, 99, 1)),
            )
        )
    )
    rcp.send_raw(b"\x00\xffnoise\x7e\x12\x34\x56\x7e" + bytes(range(256)))
    rcp.send_raw(good[:-3] + b"\x00" + good[-2:])  # a bad FCS
    rcp.send_raw(hdlc.encode_frame(b"\x01\x06\x71"))  # not a Spinel header
    rcp.send_raw(hdlc.encode_frame(spinel.encode_frame(spinel.prop_frame(6, 0x71, b"\x05"))))
    rcp.send_raw(good)
    frame = await host.frame()
    assert (frame.psdu, frame.lqi) == (FROM_NODE, 99)
    stats = host.radio.stats
    assert stats.hdlc_errors >= 2
    assert stats.spinel_errors == 2
    assert host.radio.state.up
    assert await host.radio.transmit(TO_NODE_SHORT) is TxStatus.OK


# -- the pace of reads (pacing.py) -------------------------------------------------------------


def numbered(count: int, size: int = 127) -> list[bytes]:
    """``count`` distinct PSDUs of ``size`` bytes from the node, numbered in their payload."""
    return [
        FROM_NODE[:9] + k.to_bytes(4, "big") + bytes(size - 15) + b"\x12\x34" for k in range(count)
    ]


async def frames(host: Host, count: int) -> list[bytes]:
    return [(await host.frame()).psdu for _ in range(count)]


async def test_a_burst_beyond_the_ttys_buffer_loses_no_frame(rcp: RcpEmulator, host: Host) -> None:
    """2,000 frames of 127 bytes written as fast as the pty takes them, about 300 KiB, far
    more than the tty buffer the pace is bounded by: every frame the emulator produced is
    decoded, in order."""
    sent = numbered(2000)
    for psdu in sent:
        assert rcp.inject(psdu)
    assert await frames(host, len(sent)) == sent
    stats = host.radio.stats
    assert (stats.frames_received, stats.hdlc_errors, stats.spinel_errors) == (len(sent), 0, 0)


async def test_a_busy_line_is_read_at_a_bounded_pace(rcp: RcpEmulator, host: Host) -> None:
    """A frame every 5 ms (the emulator's own pace, not a wait for the host): the reader
    hands several to the loop per read (it handed each over alone, its first byte apart)."""
    sent = numbered(100)
    reads = host.radio.stats.reads
    for psdu in sent:
        assert rcp.inject(psdu)
        await asyncio.sleep(0.005)
    assert await frames(host, len(sent)) == sent
    assert host.radio.stats.reads - reads <= len(sent) / 2


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0.001)


async def test_an_answer_of_the_rcp_is_not_paced(
    rcp: RcpEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an hour-long window, a busy line is polled once an hour: a transmit watches the
    line again, its outcome comes at once with the frame that came meanwhile, and stopping
    ends the wait for the poll too. (The host's last request is set back each time: a line
    that carried an exchange within the window is read at once.)"""
    monkeypatch.setattr(radio_module, "window_for", lambda baudrate: 3600.0)
    host = await started(rcp)
    try:
        await host.state(up=True)
        io = host.radio._io
        assert isinstance(io, LoopPort)
        io.pacing.requested(-math.inf)
        first, second, third = numbered(3)
        assert rcp.inject(first)  # quiet (the bring-up's reads were exchanges): read at once
        assert await frames(host, 1) == [first]
        assert rcp.inject(second)  # less than a window after the first: busy
        await until(lambda: io._poll is not None)
        assert await asyncio.wait_for(host.radio.transmit(TO_NODE_SHORT), TIMEOUT) is TxStatus.OK
        assert await frames(host, 1) == [second]
        io.pacing.requested(-math.inf)
        assert rcp.inject(third)  # busy still: polled in an hour
        await until(lambda: io._poll is not None)
    finally:
        await asyncio.wait_for(host.radio.stop(), TIMEOUT)
    assert_released(rcp)


@contextlib.asynccontextmanager
async def tcp_to_pty(path: Path) -> AsyncIterator[int]:
    """A TCP port on 127.0.0.1 relaying bytes to and from the pty at ``path``, as ser2net
    serves a dongle on another machine: a dongle unplugged closes the connection. Yields the
    port number."""
    loop = asyncio.get_running_loop()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)

        def readable() -> None:
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                return
            except OSError:  # EIO: the pty is gone
                data = b""
            if data:
                writer.write(data)
            else:  # readable with nothing to read: hung up
                loop.remove_reader(fd)
                writer.close()

        loop.add_reader(fd, readable)
        try:
            while data := await reader.read(4096):
                os.write(fd, data)
        finally:
            loop.remove_reader(fd)
            os.close(fd)
            writer.close()

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_serial_url(rcp: RcpEmulator) -> None:
    async with tcp_to_pty(rcp.link) as port:
        host = Host(Radio(RadioConfig(f"socket://127.0.0.1:{port}"), on_frame=lambda f: None))
        host.radio.on_frame = host.frames.put_nowait
        host.radio.on_state = host.states.put_nowait
        await host.radio.start()
        try:
            await host.state(up=True)
            assert rcp.raw_stream and rcp.channel == 11
            assert rcp.inject(FROM_NODE)
            assert (await host.frame()).psdu == FROM_NODE
            assert await host.radio.transmit(BROADCAST) is TxStatus.OK
        finally:
            await host.radio.stop()


async def test_a_serial_url_whose_connection_closes_goes_down(rcp: RcpEmulator) -> None:
    """The socket of ``socket://`` is read on the loop too: the relay closing it (its dongle
    unplugged) is a hang-up (readable, nothing to read), the radio's fault as a tty's EIO is."""
    async with tcp_to_pty(rcp.link) as port:
        host = Host(Radio(config(f"socket://127.0.0.1:{port}"), on_frame=lambda f: None))
        host.radio.on_state = host.states.put_nowait
        await host.radio.start()
        try:
            await host.state(up=True)
            assert isinstance(host.radio._io, LoopPort)
            rcp.unplug()
            lost = await host.state(up=False)
            assert lost.reason == "read failed: the port hung up (readable, but no data)"
        finally:
            await host.radio.stop()


async def test_a_port_without_a_file_descriptor_is_read_by_a_thread() -> None:
    """pyserial's loop:// (as rfc2217://) has no file descriptor for the loop to watch: a
    reader thread hands what it reads to the loop, writes go through a worker thread, and
    closing ends the thread."""
    port = serial.serial_for_url("loop://", do_not_open=True)
    port.open()
    received: asyncio.Queue[bytes] = asyncio.Queue()
    lost: list[str] = []
    io = open_io(
        port, window=3600.0, on_data=received.put_nowait, on_lost=lost.append, awaiting=bool
    )
    assert isinstance(io, ThreadPort) and reader_threads()
    await io.write(b"~echo~")
    echoed = b""
    while echoed != b"~echo~":
        echoed += await asyncio.wait_for(received.get(), TIMEOUT)
    await asyncio.wait_for(io.close(), TIMEOUT)
    assert not reader_threads() and not port.is_open and not lost


# -- stopping at awkward moments ----------------------------------------------------------------


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rcp-reader")]


def assert_released(rcp: RcpEmulator) -> None:
    """The radio let go of the dongle: no reader thread, and the port opens exclusively."""
    assert not reader_threads()
    serial.serial_for_url(str(rcp.link), exclusive=True).close()


async def test_a_transmit_cancelled_as_its_outcome_arrives_is_cancelled(
    rcp: RcpEmulator, host: Host
) -> None:
    # The outcome, then a received frame whose on_frame cancels the transmit: when the
    # transmit has not woken up to its outcome by then, the cancel must win. A transmit that
    # returned its outcome anyway would swallow the cancel (Python 3.11's asyncio.wait_for
    # does): the transport's sender would go on to wait for its next frame, and its stop()
    # with it, forever. The pty may hand the two frames over in one read or two; an attempt
    # where the transmit was already done before the cancel proves nothing and is repeated.
    outcome = spinel.encode_tx_done(spinel.TxDone(Status.OK))
    heard = spinel.prop_frame(
        Command.PROP_VALUE_IS,
        Prop.STREAM_RAW,
        spinel.encode_rx(spinel.RxFrame(FROM_NODE, -70, -100, 0, 15, 99, 1)),
    )
    rcp.hold_transmits()
    for _ in range(20):
        host.radio.on_frame = host.frames.put_nowait
        transmit = asyncio.create_task(host.radio.transmit(TO_NODE_SHORT))
        await asyncio.wait_for(rcp.transmissions.get(), TIMEOUT)
        # A round trip through the host: the transmit is done writing and waits for its outcome.
        assert rcp.inject(FROM_NODE)
        await host.frame()
        tid = rcp.requests[-1].tid
        reply = spinel.prop_frame(Command.PROP_VALUE_IS, Prop.LAST_STATUS, outcome, tid)
        raced: list[bool] = []

        def cancel(task: asyncio.Task[TxStatus], raced: list[bool], _: ReceivedFrame) -> None:
            raced.append(not task.done())
            task.cancel()

        host.radio.on_frame = functools.partial(cancel, transmit, raced)
        rcp.send_raw(b"".join(hdlc.encode_frame(spinel.encode_frame(f)) for f in (reply, heard)))
        done, _ = await asyncio.wait([transmit], timeout=TIMEOUT)
        assert done and raced
        if raced[0]:
            assert transmit.cancelled(), f"the cancel was swallowed: {transmit.result()}"
            break
    else:
        pytest.fail("the outcome never arrived before the transmit woke up")
    assert host.radio.state.up


async def test_stop_during_bring_up_ends_start(rcp: RcpEmulator) -> None:
    rcp.silent = True  # the RCP never answers the reset: start() waits for the first attempt
    host = Host(Radio(config(rcp.link, request_timeout=30), on_frame=lambda f: None))
    start = asyncio.create_task(host.radio.start())
    await rcp.wait_until(lambda: resets_sent(rcp) == 1)
    await asyncio.wait_for(host.radio.stop(), TIMEOUT)
    await asyncio.wait_for(start, TIMEOUT)
    assert host.radio.state == RadioState(False, "stopped", stopped=True)
    assert_released(rcp)


async def test_stop_while_the_port_opens_closes_it(rcp: RcpEmulator) -> None:
    # Stopped at each of the first loop iterations of a start: while the thread opens the
    # port, as the reader starts, as the reset goes out.
    for iterations in range(8):
        radio = Radio(config(rcp.link), on_frame=lambda f: None)
        start = asyncio.create_task(radio.start())
        for _ in range(iterations):
            await asyncio.sleep(0)
        await asyncio.wait_for(radio.stop(), TIMEOUT)
        await asyncio.wait_for(start, TIMEOUT)
        assert_released(rcp)


async def test_stop_while_a_lost_port_is_being_dropped(rcp: RcpEmulator) -> None:
    # The port vanishes; stop() lands while the radio joins the reader and closes the port,
    # or during the back-off after it: whichever, stop() returns and nothing is left open.
    for iterations in (0, 1, 2, 3, 5, 8, 13, 21):
        host = await started(rcp)
        await host.state(up=True)
        rcp.hold_transmits()
        in_flight = asyncio.create_task(host.radio.transmit(TO_NODE_SHORT))
        await rcp.wait_until(lambda: bool(rcp.sent))
        rcp.unplug()
        for _ in range(iterations):
            await asyncio.sleep(0)
        await asyncio.wait_for(host.radio.stop(), TIMEOUT)
        assert await asyncio.wait_for(in_flight, TIMEOUT) is TxStatus.ABORTED
        assert not reader_threads()
        rcp.replug()
        rcp.sent.clear()
        assert_released(rcp)
