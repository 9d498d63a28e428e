"""The ``ble`` transport: the scanner, the advert decoders and the GATT poller, wired to the core.

Node ids are ``ble:AA:BB:CC:DD:EE:FF`` (``node_id`` normalises any spelling of the MAC). The
settings are those of `settings` (``[transport.ble]``).

* **Adverts.** Every advert is decoded (``AdvertDecoder``) and reported as ``heard``, paired or
  not, so that ``bridgectl scan`` lists it with its format and values (none when it could not
  be decoded, e.g. encrypted without a key). A paired node's records become ``readings``,
  and its ``state`` says it is reachable, with the RSSI and the last battery level (/3/0/9)
  it reported. Unpaired adverts never reach ``readings``.
* **Keys.** A node's BTHome bind key is its secret named ``bindkey`` (16 bytes; pairing with
  another length is refused). Adverts that a keyed node's key does not open
  (``DecryptionFailed``), encrypted adverts of a node paired without a key
  (``BindKeyRequired``), plaintext from a keyed node (``UnencryptedAdvert``) and replays
  (``ReplayedAdvert``) are refused: counted in ``decrypt_failures`` (per node, since it was
  paired with its current key), reported in the node's state (``NodeState.decrypt_failures``
  and ``problem``, e.g. "bind key does not decrypt this node's adverts", which ``bridgectl
  nodes`` and ``node show`` print) until an advert is accepted again, and told once per node
  and cause as a warning (a wrong key would otherwise fill the log at the node's advert rate).
  Duplicates (a node repeats each advert) are dropped without a word; malformed adverts are
  counted in ``malformed`` and logged at debug. Encrypted adverts are ``heard`` with
  ``encrypted`` set, so a scan says "encrypted" for a node whose key it does not have.
* **Pairing** (``prepare_pair``, before the node is accepted): its options are checked (the
  core checks its bind key against the declaration in ``pairing.py``), and a GATT node whose
  options say ``bond`` is bonded through BlueZ (Device1.Pair) and read once; a failure is
  ``PairingFailed`` with BlueZ's reason, and the node is not paired.
* **GATT nodes** (profile ``gatt``) are served by the ``GattPoller``: polled every
  ``gatt_interval`` seconds (Device Information, Battery and Environmental Sensing by
  default), or kept connected when their options name characteristics to ``notify``.
  ``read`` polls such a node now. Their reachability is the poller's (connected or not).
* **Firmware.** A GATT node paired with the option ``firmware = "smp"`` runs MCUboot with
  MCUmgr's SMP over GATT: ``firmware_updater`` offers its ``SmpUpdater`` (``smp``), through
  which the core's /5 of the node uploads, tests, resets and confirms an image.
* **Sleepy GATT nodes** (paired with ``--sleepy``) are connectable only in their wake windows,
  which they open by advertising: every advert of a paired GATT node tells the poller it is
  awake (``GattPoller.heard``), and a sleepy node's poll and firmware update connect then.
  Such a node cannot be kept connected: pairing one with characteristics to ``notify`` is
  refused.
* **Actuators.** ``write`` of True/False to a configured actuator resource writes its
  ``on``/``off`` bytes to its characteristic, through the poller (which connects for it);
  the written value then becomes the resource's reading. A node's actuators are among the
  objects reported for it from pairing on, so a server sees them before the first write.
  Any other write, and every
  ``execute``, is 4.05 Method Not Allowed: an advertising sensor cannot be written.
* **Reads of advert-only nodes** answer the last value of each resource under the path, as
  decoded from the node's adverts; 5.03 when none was heard since the start.

The names of nodes are not written anywhere here: /3347's 5750 carries the button event type,
so the exposure decides where a node's name goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridged.objects.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
)
from bridged.objects.ids import BATTERY_PATH
from bridged.objects.paths import Path
from bridged.objects.values import Record
from bridged.transports.base import (
    BEARER_BLUETOOTH,
    Heard,
    NodeState,
    PairingFailed,
    Transport,
    TransportConfigError,
    TransportEvents,
    TransportHost,
)
from bridged.transports.nodes import NodeId, PairedNode, Secret

from .adverts import (
    AdvertDecodeError,
    AdvertDecoder,
    BindKeyRequired,
    DecryptionFailed,
    DuplicateAdvert,
    MalformedAdvert,
    RawAdvert,
    ReplayedAdvert,
    UnencryptedAdvert,
)
from .gatt import GattFailed, GattNode, GattPoller, GattUnreachable
from .pairing import BINDKEY, GATT_PROFILE
from .scanner import Scanner, ScannerState, ScannerStatus
from .settings import (
    Actuator,
    BleSettings,
    normalise_address,
    parse_options,
    parse_settings,
)
from .smp import FIRMWARE_SMP, SmpUpdater

log = logging.getLogger(__name__)

NAME = "ble"

KEY_FAILURES: Mapping[type[AdvertDecodeError], str] = {
    DecryptionFailed: "bind key does not decrypt this node's adverts",
    BindKeyRequired: "encrypted adverts, but paired without a bind key",
    UnencryptedAdvert: "plaintext adverts although it has a bind key: refused",
    ReplayedAdvert: "adverts with old counters (replayed): refused",
}
"""The decrypt failures, and what the node's state and the one warning per node and cause
say about them."""
ENCRYPTED_FAILURES = (BindKeyRequired, DecryptionFailed, ReplayedAdvert)
"""Refusals that mean the advert was encrypted."""


def node_id(address: str) -> NodeId:
    """The node id of a BLE node, from any spelling of its MAC; ValueError if it is not one."""
    return NodeId(NAME, normalise_address(address))


@dataclass(slots=True)
class _Node:
    """What the transport keeps of one paired node (mutable, private)."""

    id: NodeId
    bindkey: bytes | None
    gatt: GattNode | None
    actuators: dict[Path, Actuator]
    updater: SmpUpdater | None = None
    values: dict[Path, Record] = field(default_factory=dict)
    rssi: int | None = None
    warned: set[type[AdvertDecodeError]] = field(default_factory=set)
    problem: str | None = None

    def battery(self) -> int | None:
        record = self.values.get(BATTERY_PATH)
        return record.value if record is not None and isinstance(record.value, int) else None

    def remember(self, records: Sequence[Record]) -> None:
        for r in records:
            self.values[r.path] = r


class BleTransport(Transport):
    """BLE nodes heard through BlueZ (adverts) and read through it (GATT)."""

    name = NAME
    bearer = BEARER_BLUETOOTH

    @classmethod
    def normalise_address(cls, address: str) -> str:
        return normalise_address(address)

    def __init__(
        self,
        config: Mapping[str, Any],
        events: TransportEvents,
        host: TransportHost | None = None,
    ) -> None:
        super().__init__(config, events, host)
        self.settings: BleSettings = parse_settings(config)
        self.decoder = AdvertDecoder()
        self.scanner = Scanner(
            self._advert,
            adapter=self.settings.adapter,
            mode=self.settings.mode,
            on_state=self._scanner_state,
            silence=self.settings.silence,
        )
        self.poller = GattPoller(
            self._gatt_records,
            on_state=self._gatt_state,
            slots=self.settings.gatt_slots,
            connect_timeout=self.settings.connect_timeout,
        )
        self.decrypt_failures: Counter[NodeId] = Counter()
        self.malformed: Counter[NodeId] = Counter()
        self._nodes: dict[str, _Node] = {}
        self._started = False
        self._scan_lost = False
        self._removals: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start scanning and serving GATT nodes; a missing adapter is retried by the scanner,
        never raised."""
        self._started = True
        await self.scanner.start()
        for node in self._nodes.values():
            if node.gatt is not None:
                self.poller.add(node.gatt)

    async def stop(self) -> None:
        self._started = False
        await self.scanner.stop()
        await self.poller.stop()
        for task in list(self._removals):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def scanner_status(self) -> ScannerStatus:
        return self.scanner.status

    # -- pairing -----------------------------------------------------------------------------

    async def prepare_pair(self, node: PairedNode, secrets: Mapping[str, Secret]) -> None:
        """Check the node's bind key and options (``firmware`` needs a GATT node); bond with a
        GATT node that needs it."""
        address = normalise_address(node.id.address)
        options = parse_options(node.options)
        if options.firmware is not None and node.profile != GATT_PROFILE:
            raise ValueError(
                f"firmware {options.firmware} updates a GATT node over its connection: pair "
                f"{node.id} with the profile {GATT_PROFILE}"
            )
        if node.sleepy and options.notify:
            raise ValueError(
                f"{node.id} sleeps, so it cannot be kept connected to notify "
                f"{', '.join(options.notify)}: pair it without --sleepy or without notify"
            )
        if node.profile != GATT_PROFILE or not options.bond:
            return
        try:
            await self.poller.pair(address, self.settings.adapter)
        except (GattUnreachable, GattFailed) as e:
            raise PairingFailed(f"bonding with {node.id} failed: {e}") from None
        log.info("%s bonded through BlueZ", node.id, extra={"NODE": str(node.id)})

    def pair(self, node: PairedNode, secrets: Mapping[str, Secret]) -> None:
        try:
            address = normalise_address(node.id.address)
        except ValueError as e:
            log.error("%s cannot be served: %s", node.id, e)
            return
        secret = secrets.get(BINDKEY.name)
        bindkey = secret.value if secret is not None else None
        try:
            options = parse_options(node.options)
        except TransportConfigError as e:
            log.error("%s: its pairing options are wrong, ignored: %s", node.id, e)
            options = parse_options({})
        actuators = {a.path: a for a in self.settings.actuators.get(address, ())}
        actuators.update((a.path, a) for a in options.actuators)
        gatt = None
        if node.profile == GATT_PROFILE:
            gatt = GattNode(
                address,
                adapter=self.settings.adapter,
                interval=options.interval or self.settings.gatt_interval,
                read=options.read,
                notify=options.notify,
                bond=options.bond,
                sleepy=node.sleepy,
            )
        old = self._nodes.get(address)
        if old is None or old.bindkey != bindkey:
            # a new key (or none): the old key's counters and failures say nothing of the new
            self.decoder.forget(address)
            self.decrypt_failures.pop(node.id, None)
        updater = None
        if gatt is not None and options.firmware == FIRMWARE_SMP:
            updater = SmpUpdater(self.poller, address, timeout=self.settings.firmware_timeout)
        paired = self._nodes[address] = _Node(
            node.id, bindkey, gatt, actuators, updater, old.values if old is not None else {}
        )
        if actuators:
            self._announce(paired)
        if self._started:
            if gatt is not None:
                self.poller.add(gatt)
            elif old is not None and old.gatt is not None:
                self._remove_gatt(address)

    def _announce(self, node: _Node) -> None:
        """Report the node's objects: those of the values it reported and those of its
        actuators. An actuator has no value until it is first written, and a server can only
        write an instance it was shown."""
        objects: dict[int, set[int]] = {}
        for path in (*node.values, *node.actuators):
            objects.setdefault(path.ids[0], set()).add(path.ids[1])
        self.events.objects(node.id, {oid: sorted(iids) for oid, iids in objects.items()})

    def unpair(self, node: NodeId) -> None:
        try:
            address = normalise_address(node.address)
        except ValueError:
            return  # never paired here
        old = self._nodes.pop(address, None)
        self.decoder.forget(address)
        self.decrypt_failures.pop(node, None)
        self.malformed.pop(node, None)
        if old is not None and old.gatt is not None:
            self._remove_gatt(address)

    def _remove_gatt(self, address: str) -> None:
        task = asyncio.get_running_loop().create_task(self.poller.remove(address))
        self._removals.add(task)
        task.add_done_callback(self._removals.discard)

    def firmware_updater(self, node: NodeId) -> SmpUpdater | None:
        """A GATT node paired with ``firmware = "smp"`` is updated over MCUmgr's SMP."""
        try:
            paired = self._paired(node)
        except NotFound:
            return None
        return paired.updater

    # -- adverts -----------------------------------------------------------------------------

    def _advert(self, advert: RawAdvert) -> None:
        node = self._nodes.get(advert.address)
        nid = node.id if node is not None else NodeId(NAME, advert.address)
        if node is not None and node.gatt is not None:
            self.poller.heard(advert.address)  # awake, whatever its advert says
        try:
            decoded = self.decoder.decode(advert, node.bindkey if node is not None else None)
        except DuplicateAdvert:
            return
        except AdvertDecodeError as e:
            encrypted = isinstance(e, ENCRYPTED_FAILURES)
            self.events.heard(
                Heard(nid, advert.time, advert.name, advert.rssi, e.profile, encrypted=encrypted)
            )
            self._refused(nid, node, e, advert)
            return
        records = decoded.records if decoded is not None else ()
        profile = decoded.profile if decoded is not None else None
        encrypted = decoded is not None and decoded.encrypted
        self.events.heard(
            Heard(nid, advert.time, advert.name, advert.rssi, profile, records, encrypted)
        )
        if node is None:
            return
        node.rssi = advert.rssi
        node.problem = None
        node.remember(records)
        if records:
            self.events.readings(node.id, records)
        if node.gatt is None:
            self.events.state(node.id, self._advert_state(node, advert))

    def _advert_state(self, node: _Node, advert: RawAdvert) -> NodeState:
        return NodeState(
            True,
            advert.time,
            rssi=advert.rssi,
            battery=node.battery(),
            decrypt_failures=self.decrypt_failures[node.id],
            problem=node.problem,
        )

    def _refused(
        self, nid: NodeId, node: _Node | None, error: AdvertDecodeError, advert: RawAdvert
    ) -> None:
        if node is None:
            # an unpaired node: shown by scan without values, not worth counting
            log.debug("%s: advert not decoded: %s", nid, error)
            return
        if isinstance(error, MalformedAdvert):
            self.malformed[nid] += 1
            log.debug("%s: malformed advert: %s", nid, error)
            return
        self.decrypt_failures[nid] += 1
        kind = next((k for k in KEY_FAILURES if isinstance(error, k)), type(error))
        node.problem = KEY_FAILURES.get(kind, f"advert refused: {error}")
        node.rssi = advert.rssi
        if node.gatt is None:
            # heard, so in reach; but its data is refused, which the state says
            self.events.state(nid, self._advert_state(node, advert))
        if kind in node.warned:
            log.debug("%s: %s", nid, error)
            return
        node.warned.add(kind)
        log.warning("%s: %s (told once)", nid, node.problem, extra={"NODE": str(nid)})

    def _scanner_state(self, status: ScannerStatus) -> None:
        where = status.adapter or "the first powered adapter"
        log.info("scanner on %s: %s (%s)", where, status.state.value, status.reason)
        condition = f"scanner on {where}: {status.state.value} ({status.reason})"
        if status.state is ScannerState.STOPPED:
            self.radio_stopped(condition)
            return
        lost = status.state is ScannerState.NO_ADAPTER or (
            status.state is ScannerState.RETRYING and bool(status.retry_in)
        )
        self.radio_condition(condition, fault=lost)
        if status.state is ScannerState.SCANNING:
            self._scan_lost = False
        elif lost and not self._scan_lost:
            # Nothing will be heard until scanning is back: advert-only nodes are out of reach
            # (they become reachable again with their next advert).
            self._scan_lost = True
            for node in self._nodes.values():
                if node.gatt is None:
                    self.events.state(node.id, NodeState(False, time.time(), node.rssi))

    # -- GATT --------------------------------------------------------------------------------

    def _gatt_records(self, address: str, records: tuple[Record, ...]) -> None:
        node = self._nodes.get(address)
        if node is None:
            return
        node.remember(records)
        self.events.readings(node.id, records)
        if node.gatt is not None:
            # values just came from the node: it is reachable, and its battery may be new
            self._gatt_state(address, NodeState(True, time.time(), sleepy=not node.gatt.persistent))

    def _gatt_state(self, address: str, state: NodeState) -> None:
        node = self._nodes.get(address)
        if node is None:
            return
        self.events.state(
            node.id,
            NodeState(
                state.reachable,
                state.time,
                rssi=node.rssi,
                battery=node.battery(),
                sleepy=state.sleepy,
            ),
        )

    # -- operations --------------------------------------------------------------------------

    def _paired(self, nid: NodeId) -> _Node:
        try:
            node = self._nodes.get(normalise_address(nid.address))
        except ValueError:
            node = None
        if node is None or nid.transport != NAME:
            raise NotFound(f"{nid} is not a paired BLE node")
        return node

    async def read(self, node: NodeId, path: Path) -> list[Record]:
        paired = self._paired(node)
        if paired.gatt is not None:
            await self.poller.poll(paired.gatt.address)  # delivered into paired.values
        elif not paired.values:
            raise ServiceUnavailable(f"no advert of {node} was decoded yet")
        found = [r for p, r in paired.values.items() if path.contains(p)]
        if not found:
            raise NotFound(f"{node} has no {path}")
        return found

    async def write(self, node: NodeId, path: Path, records: Sequence[Record]) -> None:
        paired = self._paired(node)
        planned: list[tuple[Actuator, bool]] = []
        for r in records:
            actuator = paired.actuators.get(r.path)
            if actuator is None or not path.contains(r.path):
                raise MethodNotAllowed(f"{r.path} of {node} is not writable")
            if not isinstance(r.value, bool):
                raise BadRequest(f"{r.path} of {node} takes true or false, not {r.value!r}")
            planned.append((actuator, r.value))
        if not planned:
            raise MethodNotAllowed(f"{path} of {node} is not writable")
        address = normalise_address(node.address)
        for actuator, on in planned:
            value = actuator.on if on else actuator.off
            await self.poller.write(address, actuator.characteristic, value)
        written = [Record(a.path, on) for a, on in planned]
        paired.remember(written)
        self.events.readings(paired.id, written)

    async def execute(self, node: NodeId, path: Path, arguments: str) -> None:
        self._paired(node)
        raise MethodNotAllowed(f"{path} of {node} is not executable")
