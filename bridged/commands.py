"""Desired state for sleepy nodes: writes and executes kept until the node can take them.

A battery node that sleeps between reports cannot be written to when a server asks. The
server's Write or Execute is answered 2.04 and kept here as a command, in the state database
(so it survives a restart or kill -9), until the node is next reachable: its transport reports
it reachable, or a reading from it arrives (``NodeRegistry.on_awake``). Then the node's commands
are applied in the order they were given.

There is one pending command per node and node-local path: a newer write of the same resource
replaces the older one, which ends ``superseded`` (only the latest desired value matters, and a
node that wakes after a day does not replay a day of changes). Every command ends, and says so
in the log (with NODE and PATH fields) and to the listeners (the daemon streams them,
``bridgectl`` lists ``pending()`` and ``history()``):

``applied``     the node took it; a write is then reported as the node's new values, which is
                when the gateway's tree shows them;
``failed``      the node refused it; ``detail`` holds the node's CoAP code and message;
``expired``     the node was not reachable within the command's time to live (default 24 h);
``superseded``  a newer command for the same path replaced it before it was applied.

A node that falls asleep again while its commands are applied (5.03, 5.04) keeps the rest
pending for its next wake-up: that is not the node refusing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TypeVar

from bridged.aio import cancel_and_wait
from bridged.objects.errors import (
    GatewayTimeout,
    InternalServerError,
    LwM2MError,
    NotFound,
    ServiceUnavailable,
)
from bridged.objects.listeners import Listeners
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.registry import NodeRegistry, StoreUnavailable
from bridged.store.commands import Command, CommandKind, CommandStatus, CommandStore
from bridged.transports.base import Transport
from bridged.transports.nodes import NodeId

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TTL = 24 * 3600.0
"""How long a command waits for its node before it expires."""
DEFAULT_TIMEOUT = 10.0
"""How long a node has to answer one read, write or execute before it counts as 5.04."""
EXPIRY_RECHECK = 3600.0
"""The longest ``CommandQueue.run`` sleeps before it looks at the first expiry again (a wall
clock set back meanwhile would otherwise make an expiry late)."""


CommandListener = Callable[[Command], None]


def transport_of(registry: NodeRegistry, node: NodeId) -> Transport:
    """The transport of a paired ``node``: NotFound if it is not paired, 5.03 if its
    transport is not running."""
    if node not in registry.live:
        raise NotFound(f"node {node} is not paired")
    transport = registry.transports.get(node.transport)
    if transport is None:
        raise ServiceUnavailable(f"transport {node.transport!r} of node {node} is not running")
    return transport


async def call_node(
    registry: NodeRegistry,
    node: NodeId,
    operation: Callable[[Transport], Awaitable[T]],
    timeout: float,
) -> T:
    """Run ``operation`` on ``node``'s transport; 5.04 when the node takes longer than
    ``timeout``. A transport that fails with anything but an ``LwM2MError`` is a 5.00, so a
    server always gets a CoAP answer."""
    transport = transport_of(registry, node)
    try:
        async with asyncio.timeout(timeout):
            return await operation(transport)
    except TimeoutError:
        raise GatewayTimeout(f"node {node} did not answer within {timeout:g} s") from None
    except LwM2MError:
        raise
    except Exception as e:
        log.exception("transport %s failed on node %s", node.transport, node)
        raise InternalServerError(f"transport {node.transport!r} failed: {e}") from e


async def _run(command: Command, transport: Transport) -> None:
    if command.kind is CommandKind.WRITE:
        await transport.write(command.node, command.path, command.records)
    else:
        await transport.execute(command.node, command.path, command.arguments)


@contextlib.contextmanager
def _kept() -> Iterator[None]:
    """A command the state database refuses (a full or read-only file system) is not taken:
    5.03, the server may try again, rather than a 5.00 that looks like a bug."""
    try:
        yield
    except sqlite3.OperationalError as e:
        why = f"the command cannot be kept: the state database refuses it ({e})"
        raise StoreUnavailable(why) from None


class CommandQueue:
    """The desired-state queue, kept in the state database (``CommandStore``), and the applying
    of commands.

    It subscribes to ``registry.on_awake`` while a command waits (``_listen_awake``); a node's
    pending commands are applied by one task
    at a time. ``clock`` gives seconds since the epoch (command times, expiry); ``ttl`` is how
    long a command may wait; ``timeout`` how long the node has to answer each command.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        registry: NodeRegistry,
        *,
        clock: Callable[[], float] = time.time,
        ttl: float = DEFAULT_TTL,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if ttl <= 0 or timeout <= 0:
            raise ValueError("a command's time to live and the node timeout must be positive")
        self.store = CommandStore(conn)
        self.registry = registry
        self._clock = clock
        self.ttl = ttl
        self.timeout = timeout
        self._listeners: Listeners[CommandListener] = Listeners("commands")
        self._tasks: dict[NodeId, asyncio.Task[None]] = {}
        self._waiting = self.store.waiting()
        self._wake = asyncio.Event()
        """Set when a command is kept or ends: ``run`` looks at the first expiry again."""
        self._unawake: Callable[[], None] | None = None
        """What stops ``awake`` being called (``_listen_awake``); None while it is not."""
        self._listen_awake()

    def listen(self, listener: CommandListener) -> None:
        """Call ``listener`` with every command as it ends (and as it is queued)."""
        self._listeners.add(listener)

    # -- queueing ----------------------------------------------------------------------------

    def submit_write(
        self, node: NodeId, path: Path, records: Sequence[Record], *, replace: bool
    ) -> Command:
        """Keep a write of node-local ``records`` under ``path`` for when ``node`` wakes."""
        write = (node, path, CommandKind.WRITE, records, "")
        return self._submit(functools.partial(self.store.add, *write, replace=replace))

    def submit_execute(self, node: NodeId, path: Path, arguments: str) -> Command:
        """Keep an execute of ``path`` with ``arguments`` for when ``node`` wakes."""
        execute = (node, path, CommandKind.EXECUTE, (), arguments)
        return self._submit(functools.partial(self.store.add, *execute, replace=False))

    def _submit(self, add: Callable[..., tuple[Command, list[Command]]]) -> Command:
        """Keep the command ``add`` adds to the store (given its times), and say so."""
        now = self._clock()
        with _kept():
            command, older = add(now=now, expires=now + self.ttl)
        node, path = command.node, command.path
        self._waiting.add(node)
        self._listen_awake()
        self.registry.expect_wake()
        self._wake.set()
        for old in older:
            self._report(
                dataclasses.replace(
                    old,
                    status=CommandStatus.SUPERSEDED,
                    finished=now,
                    detail=f"replaced by command {command.id}",
                )
            )
        log.info(
            "command %d: %s of %s on node %s kept until the node wakes",
            command.id,
            command.kind.value,
            path,
            node,
            extra={"NODE": str(node), "PATH": str(path)},
        )
        self._listeners.notify(lambda listener: listener(command))
        return command

    def ended(
        self,
        node: NodeId,
        path: Path,
        since: float,
        status: CommandStatus,
        records: Sequence[Record],
        detail: str,
    ) -> None:
        """A node's firmware update ended (``bridged.firmware``): keep it in the history as a
        command, and say so as every command's end is said. One the state database refuses
        is only logged: the update's own state (its /5) is kept apart."""
        kind = CommandKind.FIRMWARE
        try:
            command = self.store.ended(
                node,
                path,
                kind,
                records,
                created=since,
                status=status,
                detail=detail,
                now=self._clock(),
            )
        except sqlite3.Error as e:
            log.warning("node %s: its firmware update's end is not kept: %s", node, e)
            return
        self._report(command)

    # -- what bridgectl shows ----------------------------------------------------------------

    def pending(self, node: NodeId | None = None) -> list[Command]:
        """The commands waiting for their node (of ``node`` only, when given), oldest first."""
        return self.store.pending(node)

    def history(self, limit: int = 100) -> list[Command]:
        """The ``limit`` commands that ended most recently, newest first."""
        return self.store.history(limit)

    # -- applying ----------------------------------------------------------------------------

    def awake(self, node: NodeId) -> None:
        """``node`` can be reached now: apply its pending commands (in a task of its own)."""
        # Every report of every node asks: nothing is looked up while no command waits.
        if not self._waiting or node not in self._waiting or node in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(
            self._apply_task(node), name=f"commands-{node}"
        )
        self._tasks[node] = task

    async def _apply_task(self, node: NodeId) -> None:
        try:
            await self.apply(node)
        finally:
            self._tasks.pop(node, None)

    async def apply(self, node: NodeId) -> list[Command]:
        """Apply ``node``'s pending commands in order, until one finds it asleep again;
        returns the commands that ended."""
        ended: list[Command] = []
        for command in self.pending(node):
            if command.expires <= self._clock():
                ended.append(
                    self._finish(command, CommandStatus.EXPIRED, "the node did not wake in time")
                )
                continue
            try:
                await call_node(self.registry, node, functools.partial(_run, command), self.timeout)
            except (ServiceUnavailable, GatewayTimeout) as e:
                log.info(
                    "command %d: node %s out of reach again (%s); kept",
                    command.id,
                    node,
                    e.code_text,
                    extra={"NODE": str(node), "PATH": str(command.path)},
                )
                break
            except LwM2MError as e:
                ended.append(self._finish(command, CommandStatus.FAILED, f"{e.code_text} {e}"))
                continue
            ended.append(self._finish(command, CommandStatus.APPLIED))
            if command.kind is CommandKind.WRITE:
                # The node has the values now: they reach the tree as the node's state.
                self.registry.values(node, [Record(r.path, r.value) for r in command.records])
        if not self.pending(node):
            self._waiting.discard(node)
            self._listen_awake()
        return ended

    def _listen_awake(self) -> None:
        """Be told of the nodes awake (``awake``) while a command waits for one (``_waiting``),
        and only then: the registry calls its awake hooks twice for every report of every node
        (3 k instructions a report, issue 17), and a gateway with no command kept, most of the
        time, has none to call."""
        if self._waiting and self._unawake is None:
            self._unawake = self.registry.on_awake(self.awake)
        elif not self._waiting and self._unawake is not None:
            self._unawake()
            self._unawake = None

    def expire(self) -> list[Command]:
        """End the commands whose time to live is over; returns them."""
        now = self._clock()
        return [
            self._finish(c, CommandStatus.EXPIRED, "the node did not wake in time")
            for c in self.store.due(now)
        ]

    async def run(self, retry: float = 60.0) -> None:
        """Expire each command when its time to live is over, until cancelled: it sleeps until
        the first pending command's expiry (at most ``retry`` seconds after the state database
        refused to expire one), and with no command pending it has no timer at all (a new
        command wakes it)."""
        while True:
            try:
                self.expire()
                due = self.store.next_expiry()
            except sqlite3.Error as e:
                # A full or read-only file system: the commands stay pending; try again later.
                log.warning("commands could not be expired: %s", e)
                due = self._clock() + retry
            self._wake.clear()
            if due is None:
                await self._wake.wait()
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(max(due - self._clock(), 0.0), EXPIRY_RECHECK)):
                    await self._wake.wait()

    async def close(self) -> None:
        """Stop applying (what is not applied stays pending in the database)."""
        tasks = list(self._tasks.values())
        await cancel_and_wait(*tasks)

    # -- internals ---------------------------------------------------------------------------

    def _finish(self, command: Command, status: CommandStatus, detail: str = "") -> Command:
        now = self._clock()
        ended = dataclasses.replace(command, status=status, finished=now, detail=detail)
        self._wake.set()
        if self.store.finish(command, status, detail, now):
            self._report(ended)
        return ended

    def _report(self, command: Command) -> None:
        detail = command.detail
        level = logging.INFO if command.status is CommandStatus.APPLIED else logging.WARNING
        if command.status is CommandStatus.SUPERSEDED:
            level = logging.INFO
        log.log(
            level,
            "command %d: %s of %s on node %s %s%s",
            command.id,
            command.kind.value,
            command.path,
            command.node,
            command.status.value,
            f": {detail}" if detail else "",
            extra={"NODE": str(command.node), "PATH": str(command.path)},
        )
        self._listeners.notify(lambda listener: listener(command))
