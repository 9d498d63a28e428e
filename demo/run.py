"""The demo itself: the real daemon among emulated radios, watched from a LwM2M server.

Set-up, in the order a user would meet it: a LwM2M server on 127.0.0.1 (the in-repo test
server), the emulated radios and ``bridged`` configured for them (`emulators.world`), three
802.15.4 nodes on the air that the gateway refuses until ``bridgectl permit-join`` lets them
in, and, where BlueZ can be emulated, a BTHome and a RuuviTag sensor advertising, paired with
``bridgectl pair``. The server observes every node-backed instance it sees registered, and the
nodes' values keep changing (the 802.15.4 nodes' temperatures and switches, the BLE sensors'
adverts), so the screen shows them arrive. ``shutdown`` sends the daemon SIGTERM and waits for
its De-register.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TextIO

import aiocoap
from emulators.lwm2m_node import SWITCH, TEMPERATURE, EmulatedNode
from emulators.world import Daemon, World

from bridged.engine.registration import EventKind
from peers.lwm2m_server import LwM2MTestServer, decode_senml_cbor

from .view import ServerView, node_instances

ENDPOINT = "bridged-demo"
NODES_154 = ("kitchen", "attic", "cellar")
BTHOME = ("A4:C1:38:00:00:01", "balcony")
RUUVI = ("C8:25:2D:8E:01:02", "greenhouse")
TICK = 0.5
"""Seconds between two changes of the emulated nodes' values."""
SENML_CBOR = 112
STEP_TIMEOUT = 30.0
TITLE = "bridged demo: real daemon, emulated radios, local LwM2M server (Ctrl-C stops)"


class DemoFailed(RuntimeError):
    """A step of the demo did not happen (the message says which)."""


@contextlib.contextmanager
def out_of_sight(out: TextIO) -> Iterator[None]:
    """Writes to ``out`` where nobody reads any more (``... | head``: EPIPE; the terminal was
    closed: EIO) go nowhere, and so does all later output to its file descriptor (the
    interpreter's last flush included): the demo still stops everything it started."""
    try:
        yield
    except OSError:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), out.fileno())


class Screen:
    """Where the view goes: redrawn in place on a terminal, line after line otherwise."""

    def __init__(self, view: ServerView, out: TextIO, tty: bool) -> None:
        self.view = view
        self.out = out
        self.tty = tty
        self._dirty = asyncio.Event()

    def lines(self, lines: list[str]) -> None:
        if self.tty:
            self._dirty.set()
            return
        with out_of_sight(self.out):
            for line in lines:
                self.out.write(line + "\n")
            self.out.flush()

    def say(self, text: str) -> None:
        self.lines([self.view.event(text)])

    def finish(self) -> None:
        """The last frame stays on the terminal; what follows is printed line by line."""
        self.draw()
        self.tty = False

    def draw(self) -> None:
        if self.tty:
            with out_of_sight(self.out):
                size = os.get_terminal_size(self.out.fileno())
                page = self.view.render(TITLE, size.lines - 1, size.columns - 1)
                self.out.write("\x1b[H\x1b[2J" + page + "\n")
                self.out.flush()

    async def refresh(self, period: float = 0.25) -> None:
        """Redraw whenever something changed, at most every ``period`` seconds (a terminal)."""
        while self.tty:
            await self._dirty.wait()
            self._dirty.clear()
            self.draw()
            await asyncio.sleep(period)


class Demo:
    def __init__(self, server: LwM2MTestServer, world: World, screen: Screen) -> None:
        self.server = server
        self.world = world
        self.screen = screen
        self.view = screen.view
        self.daemon: Daemon | None = None
        self.registered = asyncio.Event()
        self.deregistered = asyncio.Event()
        self._observing: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def _task(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def run(self, seconds: float | None, ble_missing: str | None) -> None:
        """Set everything up, then show live values for ``seconds`` (None: until cancelled)."""
        say = self.screen.say
        self._task(self.screen.refresh(), "screen")
        self._task(self._watch_server(), "server-events")
        say(f"LwM2M server listening on {self.server.uri}")
        self.daemon = await self.world.start_daemon(self.server.uri, endpoint=ENDPOINT)
        say(f"bridged started (pid {self.daemon.proc.pid}) with an emulated 802.15.4 radio dongle")
        say(f"BLE left out: {ble_missing}" if ble_missing else "BLE: BlueZ emulated on hci0")
        await self._wait(self.registered, "the gateway's Register")

        nodes = [await self.world.add_node(i + 1, name) for i, name in enumerate(NODES_154)]
        say(f"{len(nodes)} 802.15.4 nodes on the air ({', '.join(NODES_154)}), not paired yet")
        await self._until(lambda: all(refused(n) for n in nodes), "the nodes' first Registers")
        say("the gateway refused their Registers with 4.03 Forbidden: nobody let them in")
        await self.ctl("permit-join", "30")
        for node in nodes:
            await self._wait(node.registered, f"802.15.4 node {node.name} to join")
        say(f"{', '.join(NODES_154)} joined: the gateway accepted their Registers")
        await self.ctl("permit-join", "0")
        self._task(self._drive_154(nodes), "802.15.4 values")

        if self.world.bluez is not None:
            await self._pair_ble()
        say("live: the server observes the nodes' instances; values change as nodes report")
        if seconds is None:
            await asyncio.Future()
        else:
            await asyncio.sleep(seconds)

    async def ctl(self, *args: str) -> str:
        """Run bridgectl as a user would and show the command and its answer (on the same line
        when it is one line)."""
        assert self.daemon is not None
        code, out, err = await self.daemon.ctl(*args)
        answer = (out if code == 0 else err).strip()
        command = f"$ bridgectl {' '.join(args)}"
        lines = answer.splitlines()
        if len(lines) == 1:
            self.screen.lines([self.view.event(f"{command}  ->  {lines[0]}")])
        else:
            self.screen.lines(
                [self.view.event(command)] + [self.view.event(f"    {line}") for line in lines]
            )
        if code != 0:
            raise DemoFailed(f"bridgectl {' '.join(args)} failed ({code}): {answer}")
        return out

    async def _pair_ble(self) -> None:
        """Advertise until the daemon's scan hears both sensors, then pair them by address."""
        heard: set[str] = set()
        self._task(self._drive_ble(heard), "BLE adverts")
        await self._until(lambda: len(heard) == 2, "the daemon's BLE scan to hear the sensors")
        for address, name in (BTHOME, RUUVI):
            await self.ctl("pair", "ble", address, "--name", name)

    async def _until(self, condition: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                while not condition():
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise DemoFailed(f"timed out waiting for {what}") from None

    async def _wait(self, event: asyncio.Event, what: str) -> None:
        try:
            await asyncio.wait_for(event.wait(), STEP_TIMEOUT)
        except TimeoutError:
            raise DemoFailed(f"timed out waiting for {what}") from None

    # -- what the nodes do ---------------------------------------------------------------------

    async def _drive_154(self, nodes: list[EmulatedNode]) -> None:
        tick = 0
        while True:
            await asyncio.sleep(TICK)
            tick += 1
            for i, node in enumerate(nodes):
                node.tree.set(TEMPERATURE, round(19 + 3 * math.sin(tick / 6 + 2 * i), 2))
            if tick % 8 == 0:
                node = nodes[tick // 8 % len(nodes)]
                node.tree.set(SWITCH, not node.tree.get(SWITCH))

    async def _drive_ble(self, heard: set[str]) -> None:
        packet = 0
        while True:
            packet += 1
            wave = math.sin(packet / 5)
            if await self.world.advertise_bthome(
                BTHOME[0], BTHOME[1], packet, round(14 + 4 * wave, 2), round(60 - 8 * wave, 1)
            ):
                heard.add(BTHOME[0])
            if await self.world.advertise_ruuvi(
                RUUVI[0], packet, 24 + 2 * wave, 71 + 5 * wave, 1009 + wave
            ):
                heard.add(RUUVI[0])
            await asyncio.sleep(2 * TICK)

    # -- what the server sees ------------------------------------------------------------------

    async def _watch_server(self) -> None:
        while True:
            event = await self.server.events.get()
            links = event.payload.decode(errors="replace")
            if event.kind == "register" and event.code.is_successful():
                self.screen.lines([self.view.registered_as(event.endpoint, event.query, links)])
                self.registered.set()
            elif event.kind == "update":
                self.screen.lines([self.view.updated(event.endpoint, links)])
            elif event.kind == "deregister":
                self.screen.lines([self.view.deregistered(event.endpoint)])
                self.deregistered.set()
                continue
            else:
                continue
            self._observe_all()

    def _observe_all(self) -> None:
        wanted = node_instances(self.view.objects)
        for path in list(self._observing):
            if path not in wanted:
                self._observing.pop(path).cancel()
        for path in wanted:
            if path not in self._observing or self._observing[path].done():
                self._observing[path] = asyncio.create_task(self._observe(path), name=path)

    async def _observe(self, path: str) -> None:
        request = self.server.observe(ENDPOINT, path, accept=SENML_CBOR)
        try:
            response = await request.response
            if not response.code.is_successful():
                self.screen.say(f"server: observe {path}: {response.code}")
                return
            self._notified(response)
            async for notification in request.observation:
                self._notified(notification)
        except aiocoap.error.Error:
            pass  # the observation ended (the instance went away, or the gateway stopped)
        finally:
            request.observation.cancel()

    def _notified(self, message: aiocoap.Message) -> None:
        try:
            records = decode_senml_cbor(bytes(message.payload))
        except (ValueError, KeyError, TypeError, AttributeError, StopIteration):
            return
        self.screen.lines(self.view.notified((r.name, r.value) for r in records))

    # -- the end -------------------------------------------------------------------------------

    async def shutdown(self) -> int:
        """Stop the nodes' drivers, SIGTERM the daemon and wait for its De-register; returns
        the daemon's exit status (0 when it was never started)."""
        for task in [t for t in self._tasks if t.get_name() != "server-events"]:
            task.cancel()
        status = 0
        if self.daemon is not None:
            self.screen.say("stopping: SIGTERM to bridged")
            status = await self.daemon.stop()
            if self.registered.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.deregistered.wait(), 5)
            self.screen.say(f"bridged exited with status {status}")
        for task in [*self._tasks, *self._observing.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._observing.values(), return_exceptions=True)
        self.screen.finish()
        return status


def refused(node: EmulatedNode) -> bool:
    """Whether the gateway answered one of the node's Registers with 4.03."""
    return any(e.kind is EventKind.REGISTRATION_FAILURE and "4.03" in e.detail for e in node.events)


def log_tail(daemon: Daemon | None, lines: int = 15) -> list[str]:
    """The end of the daemon's log, shown when something went wrong."""
    if daemon is None or not daemon.log.exists():
        return []
    return daemon.log.read_text(errors="replace").splitlines()[-lines:]
