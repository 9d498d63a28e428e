"""The GATT client side: reading, subscribing to and writing GATT nodes through BlueZ.

The connection discipline comes from what breaks BLE gateways in the field:

* **A slot budget per adapter.** Controllers hold few simultaneous connections (CSR 5, Broadcom
  7); past that, connects fail in ways that look like a dead node. Every connection holds one of
  the adapter's ``slots`` (an ``asyncio.Semaphore``) for as long as it lasts, and waits for one.
* **Connect timeouts of at least 10 s** (BlueZ resolves services on the first connection), and
  retries with exponential back-off; the slot is released while backing off.
* **No idle connections to battery nodes**: a node is connected, read and disconnected on its
  schedule, unless it notifies, in which case the gateway stays connected and subscribes, and
  reconnects (with back-off) when the link drops.
* **Sleepy nodes are connected when they say they are awake.** A node paired as sleepy is
  connectable only in its wake windows, which it opens by advertising (its adverts come through
  ``heard``). Between them every connection attempt fails (le-connection-abort-by-local, or a
  timeout), and retrying with back-off would hold the node's turn and the adapter's slot past
  the next window: so a sleepy node gets one attempt per connection, and its users wait for
  its next advert (``awake``) before they connect; its poll waits for an advert too.
* **Bonding through BlueZ** (``BleakClient.pair``) for nodes that need it.

Values are decoded by `gatt_values` and delivered as node-local records through ``on_records``;
reachability through ``on_state``. A node is always addressed through the BlueZ object of the
adapter that heard it, never by a discovery of its own: a second discovery session from this
process would collide with the continuous scanner (``org.bluez.Error.InProgress``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace

from bleak import BleakClient
from bleak.backends.device import BLEDevice
from bleak.exc import BleakError

from bridged.aio import Backoff, cancel_and_wait
from bridged.objects.errors import GatewayTimeout, ServiceUnavailable
from bridged.objects.values import Record
from bridged.transports.base import NodeState

from .adapters import AdapterNotFound, read_adapters, select_adapter
from .gatt_values import GattDecodeError, decodable, decode, full_uuid
from .scanner import describe

log = logging.getLogger(__name__)

MIN_CONNECT_TIMEOUT = 10.0
DEFAULT_SLOTS = 5
"""The connections most adapters hold at once (CSR chips: 5)."""

RETRY = Backoff(2.0, 60.0)
"""The default pace of connection retries."""

CONNECT_ERRORS = (BleakError, TimeoutError, EOFError, OSError)
"""What a connection attempt raises when the node, the adapter or BlueZ fails it."""


class GattUnreachable(ServiceUnavailable):
    """The node could not be connected, after every retry (5.03 to a server)."""


class GattFailed(GatewayTimeout):
    """The node was connected but the operation failed (5.04 to a server)."""


@dataclass(frozen=True, slots=True)
class GattNode:
    """How to serve one GATT node.

    ``adapter`` is the adapter (name or MAC) that hears it, None for the first powered one.
    ``read`` lists the characteristics read at each poll; empty means every readable one that
    `gatt_values` can decode. A non-empty ``notify`` keeps the node connected and subscribed to
    those characteristics (mains-powered or notifying nodes); otherwise it is polled every
    ``interval`` seconds and left disconnected in between. ``bond`` pairs through BlueZ before
    use, for nodes that refuse unencrypted access. A ``sleepy`` node is connectable only in its
    wake windows, which its adverts announce (module docstring).
    """

    address: str
    adapter: str | None = None
    interval: float = 300.0
    read: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()
    bond: bool = False
    sleepy: bool = False

    @property
    def persistent(self) -> bool:
        return bool(self.notify)


class GattPoller:
    """Serves GATT nodes on their schedules, within each adapter's connection-slot budget.

    ``on_records(address, records)`` receives decoded values; ``on_state(address, state)`` each
    change of reachability. ``retries`` is the number of connection attempts per operation.
    """

    def __init__(
        self,
        on_records: Callable[[str, tuple[Record, ...]], None],
        *,
        on_state: Callable[[str, NodeState], None] | None = None,
        slots: int = DEFAULT_SLOTS,
        connect_timeout: float = 20.0,
        retries: int = 4,
        backoff: Backoff = RETRY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if connect_timeout < MIN_CONNECT_TIMEOUT:
            raise ValueError(
                f"a connect timeout of {connect_timeout:g} s is too short: BlueZ resolves "
                f"services on the first connection (at least {MIN_CONNECT_TIMEOUT:g} s)"
            )
        if slots < 1 or retries < 1:
            raise ValueError("slots and retries must be at least 1")
        self._on_records = on_records
        self._on_state = on_state
        self._slots = slots
        self._connect_timeout = connect_timeout
        self._retries = retries
        self._backoff = backoff
        self._clock = clock
        self._budgets: dict[str, asyncio.Semaphore] = {}
        self._nodes: dict[str, GattNode] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._live: dict[str, BleakClient] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._drop_listeners: dict[str, set[Callable[[], None]]] = {}
        self._reachable: dict[str, bool] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        """What the users of a sleepy node that wait for its next advert wait on."""

    # -- nodes and their schedules -------------------------------------------------------------

    def add(self, node: GattNode) -> None:
        """Serve ``node`` from now on (replacing an earlier description of it)."""
        address = node.address.upper()
        old = self._tasks.pop(address, None)
        if old is not None:
            old.cancel()
        self._nodes[address] = node
        run = self._subscribe if node.persistent else self._poll_forever
        self._tasks[address] = asyncio.create_task(run(node), name=f"gatt-{address}")

    async def remove(self, address: str) -> None:
        """Stop serving a node; its connection, if any, is closed."""
        address = address.upper()
        self._nodes.pop(address, None)
        task = self._tasks.pop(address, None)
        await cancel_and_wait(task)

    async def stop(self) -> None:
        for address in list(self._tasks):
            await self.remove(address)

    async def __aenter__(self) -> GattPoller:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def heard(self, address: str) -> None:
        """The node advertised: it is awake (a sleepy node's wake window is open)."""
        wake = self._wakes.pop(address.upper(), None)
        if wake is not None:
            wake.set()

    async def awake(self, address: str) -> None:
        """Return at the node's next advert (``heard``): a sleepy node can be connected then."""
        await self._wakes.setdefault(address.upper(), asyncio.Event()).wait()

    def sleepy(self, address: str) -> bool:
        """Whether the node is connectable only in its wake windows (``GattNode.sleepy``)."""
        return self._node(address).sleepy

    async def _poll_forever(self, node: GattNode) -> None:
        while True:
            if node.sleepy:
                await self.awake(node.address)
            with contextlib.suppress(GattUnreachable, GattFailed):
                await self.poll(node.address)
            await asyncio.sleep(node.interval)

    async def _subscribe(self, node: GattNode) -> None:
        """Stay connected and subscribed; reconnect with back-off when the link drops."""
        failures = 0
        while True:
            dropped = asyncio.Event()
            try:
                async with self._standing(node, dropped.set) as client:
                    failures = 0
                    # subscribe first, so that no change falls between the read and the
                    # subscription
                    for uuid in node.notify:
                        await self._start_notify(client, node, full_uuid(uuid))
                    self._deliver(node, await self._read_all(client, node))
                    await dropped.wait()
                    log.info("%s: the link dropped; reconnecting", node.address)
            except (GattUnreachable, GattFailed) as e:
                failures += 1
                log.warning("%s: %s", node.address, e)
            self._set_reachable(node, False, "disconnected")
            await asyncio.sleep(self._backoff.delay(failures))

    async def _start_notify(self, client: BleakClient, node: GattNode, uuid: str) -> None:
        try:
            await client.start_notify(uuid, self._notified(node, uuid))
        except CONNECT_ERRORS as e:
            raise GattFailed(f"{node.address}: subscribing to {uuid} failed: {describe(e)}") from e

    def _notified(self, node: GattNode, uuid: str) -> Callable[[object, bytearray], None]:
        def on_value(_char: object, value: bytearray) -> None:
            try:
                records = decode(uuid, bytes(value), self._clock())
            except GattDecodeError as e:
                log.warning("%s: bad notification of %s: %s", node.address, uuid, e)
                return
            self._deliver(node, records)

        return on_value

    # -- operations ----------------------------------------------------------------------------

    async def poll(self, address: str) -> tuple[Record, ...]:
        """Connect, read the node's characteristics, disconnect; deliver and return the records.

        Raises GattUnreachable when every connection attempt failed, GattFailed when a read did.
        """
        node = self._node(address)
        async with self._connection(node) as client:
            records = await self._read_all(client, node)
        self._deliver(node, records)
        return records

    async def read_over(self, client: BleakClient, address: str) -> tuple[Record, ...]:
        """``poll`` over a connection the caller holds (``connection``): a firmware update
        reads the node's new Device Information before it lets the link go, while a sleepy
        node is still awake (a ``poll`` would wait for the caller's turn to end)."""
        node = self._node(address)
        records = await self._read_all(client, node)
        self._deliver(node, records)
        return records

    async def write(self, address: str, char_uuid: str, value: bytes) -> None:
        """Write ``value`` to a characteristic (with response), e.g. an on/off actuator.

        Uses the standing connection of a subscribed node, else connects for the write only.
        """
        node = self._node(address)
        async with self._connection(node) as client:
            await self._write(client, node, char_uuid, value)

    async def pair(self, address: str, adapter: str | None = None) -> tuple[Record, ...]:
        """Bond with the node through BlueZ, then read it; returns (and delivers) its records.

        The node need not be served (``add``) yet: this is what pairing a new node calls
        (``adapter`` is then the one to use). The connection is retried like any; the bonding
        (Device1.Pair) is not: a refusal (wrong passkey, the node not in pairing mode) would
        only repeat, so it is GattFailed at once with BlueZ's reason.
        """
        node = self._nodes.get(address.upper()) or GattNode(address, adapter=adapter)
        async with self._connection(replace(node, bond=False)) as client:
            try:
                await client.pair()
            except CONNECT_ERRORS as e:
                raise GattFailed(f"{node.address}: bonding failed: {describe(e)}") from e
            records = await self._read_all(client, node)
        self._deliver(node, records)
        return records

    @contextlib.asynccontextmanager
    async def connection(
        self, address: str, on_drop: Callable[[], None] | None = None
    ) -> AsyncIterator[BleakClient]:
        """A connection to the node for another protocol over its GATT (SMP firmware update):
        the standing one of a subscribed node, else one of its own, holding one of the
        adapter's slots and retried like any. ``on_drop`` is called if the link drops while
        it is used. GattUnreachable when every attempt failed."""
        listeners = self._drop_listeners.setdefault(address.upper(), set())
        if on_drop is not None:
            listeners.add(on_drop)
        try:
            async with self._connection(self._node(address)) as client:
                yield client
        finally:
            if on_drop is not None:
                listeners.discard(on_drop)

    def _node(self, address: str) -> GattNode:
        return self._nodes.get(address.upper()) or GattNode(address)

    async def _write(self, client: BleakClient, node: GattNode, uuid: str, value: bytes) -> None:
        try:
            await client.write_gatt_char(full_uuid(uuid), value, response=True)
        except CONNECT_ERRORS as e:
            raise GattFailed(f"{node.address}: write to {uuid} failed: {describe(e)}") from e

    async def _read_all(self, client: BleakClient, node: GattNode) -> tuple[Record, ...]:
        wanted = {full_uuid(u) for u in node.read}
        chars = [
            c
            for service in client.services
            for c in service.characteristics
            if (c.uuid in wanted if wanted else decodable(c.uuid) and "read" in c.properties)
        ]
        missing = wanted - {c.uuid for c in chars}
        if missing:
            log.warning("%s: has no characteristic %s", node.address, ", ".join(sorted(missing)))
        records: list[Record] = []
        for char in chars:
            try:
                value = await client.read_gatt_char(char)
            except CONNECT_ERRORS as e:
                raise GattFailed(
                    f"{node.address}: read of {char.uuid} failed: {describe(e)}"
                ) from e
            try:
                records.extend(decode(char.uuid, bytes(value), self._clock()))
            except GattDecodeError as e:
                log.warning("%s: %s", node.address, e)
        return tuple(records)

    # -- connections ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connection(
        self, node: GattNode, *, on_drop: Callable[[], None] | None = None
    ) -> AsyncIterator[BleakClient]:
        """A connected client: a subscribed node's standing connection, shared, else one of
        its own holding one of its adapter's slots, retried with back-off. BlueZ has one link
        per node, which the end of one user would cut for another: so a node's users take
        turns (a poll waits for a firmware update's connection)."""
        key = node.address.upper()
        async with self._turn(key):
            live = self._live.get(key)
            if live is not None and live.is_connected:
                yield live
                return
            async with self._connect(node, self._dropped(key, on_drop)) as client:
                yield client

    @contextlib.asynccontextmanager
    async def _standing(
        self, node: GattNode, on_drop: Callable[[], None]
    ) -> AsyncIterator[BleakClient]:
        """A subscription's connection: it takes the node's turn only to connect, and is
        shared with the node's other users from then on."""
        key = node.address.upper()
        async with contextlib.AsyncExitStack() as stack:
            async with self._turn(key):
                connecting = self._connect(node, self._dropped(key, on_drop))
                client = await stack.enter_async_context(connecting)
                self._live[key] = client
            stack.callback(self._live.pop, key, None)
            yield client

    def _turn(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _dropped(
        self, key: str, on_drop: Callable[[], None] | None
    ) -> Callable[[BleakClient], None]:
        """The disconnected callback of a node's connection: its user's ``on_drop`` and those
        of ``connection``'s users."""

        def dropped(_client: BleakClient) -> None:
            if on_drop is not None:
                on_drop()
            for listener in list(self._drop_listeners.get(key, ())):
                listener()

        return dropped

    @contextlib.asynccontextmanager
    async def _connect(
        self, node: GattNode, dropped: Callable[[BleakClient], None]
    ) -> AsyncIterator[BleakClient]:
        last: BaseException | None = None
        attempts = 1 if node.sleepy else self._retries  # asleep: its next advert, not a retry
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self._backoff.delay(attempt - 1))
            try:
                device, adapter = await self._device(node)
            except (*CONNECT_ERRORS, AdapterNotFound) as e:
                last = e
                continue
            async with self._budget(adapter):
                client = BleakClient(
                    device,
                    disconnected_callback=dropped,
                    timeout=self._connect_timeout,
                    pair=node.bond,
                    bluez={"adapter": adapter},
                )
                try:
                    await client.connect()
                except CONNECT_ERRORS as e:
                    last = e
                    log.info(
                        "%s: connection attempt %d of %d failed: %s",
                        node.address,
                        attempt + 1,
                        attempts,
                        describe(e),
                    )
                    with contextlib.suppress(*CONNECT_ERRORS):
                        await client.disconnect()
                    continue
                self._set_reachable(node, True, "connected")
                try:
                    yield client
                finally:
                    with contextlib.suppress(*CONNECT_ERRORS):
                        await client.disconnect()
                return
        reason = describe(last) if last is not None else "no attempt"
        self._set_reachable(node, False, reason)
        raise GattUnreachable(f"{node.address}: not reachable after {attempts} attempts: {reason}")

    async def _device(self, node: GattNode) -> tuple[BLEDevice, str]:
        """The node as BlueZ knows it on its adapter, without a discovery of our own."""
        adapter = select_adapter(await read_adapters(), node.adapter)
        path = f"{adapter.path}/dev_{node.address.upper().replace(':', '_')}"
        return BLEDevice(node.address.upper(), None, {"path": path, "props": {}}), adapter.name

    def _budget(self, adapter: str) -> asyncio.Semaphore:
        budget = self._budgets.get(adapter)
        if budget is None:
            budget = self._budgets[adapter] = asyncio.Semaphore(self._slots)
        return budget

    def _set_reachable(self, node: GattNode, reachable: bool, reason: str) -> None:
        address = node.address.upper()
        if self._reachable.get(address) == reachable:
            return
        self._reachable[address] = reachable
        log.info("%s: %s (%s)", address, "reachable" if reachable else "unreachable", reason)
        if self._on_state is not None:
            state = NodeState(reachable=reachable, time=self._clock(), sleepy=not node.persistent)
            self._on_state(address, state)

    def _deliver(self, node: GattNode, records: Sequence[Record]) -> None:
        if records:
            self._on_records(node.address.upper(), tuple(records))
