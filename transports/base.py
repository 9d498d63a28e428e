"""The contract between the gateway's core and a radio adapter (a transport).

A transport speaks its radio and describes what it hears in LwM2M terms, so the core never sees
radio details: a node is a ``NodeId`` (``transport:address``), its data are ``Record``s at
node-local paths (a BTHome temperature is the node's ``/3303/0/5700``), and the objects it has
are a map of object ID to instance IDs. Adding a radio is adding a subpackage with a
``Transport`` subclass and one entry point in the ``bridged.transports`` group; the core imports
it only when the configuration names it, so a gateway without Bluetooth never imports bleak.

Two directions:

* **Transport → core**, through the ``TransportEvents`` the core hands to the transport:
  ``heard`` for every node on the air (paired or not: scans use it), ``admit`` when an
  unpaired node asks to join (the core answers, as a permit-join window is open or not),
  ``readings`` and ``objects`` for paired nodes, ``state`` for reachability and link quality.
  ``readings`` are only what the node measured and reported (an advert, a Send, a changed
  value it notified): each is stored and delivered upstream once, with the node's time. What
  the gateway merely read from the node (an observation's first answer, unchanged metadata, a
  resource a node that reports by Send also notifies) goes to ``values``: it refreshes what
  the gateway shows of the node and is never a reading.
  These are plain calls, never awaited: the core queues and batches, the radio loop never blocks.
* **Core → transport**: ``read``, ``write`` and ``execute`` on a paired node, which raise the
  ``LwM2MError`` a server should see (``ServiceUnavailable`` 5.03 for a node out of reach,
  ``GatewayTimeout`` 5.04 for one that did not answer, or the node's own error code);
  ``pair``/``unpair`` tell the transport which nodes to accept.

What a transport's nodes take when they are paired (keys, yes/no options) it declares in a
``Pairing`` (``transports/pairing.py``), registered in the ``bridged.pairing`` entry-point
group: ``bridgectl pair`` offers it and the core checks every pairing against it.

Besides the events, the core lends each transport a ``TransportHost``: the object definitions
the gateway knows (so an object taught by a DDF file is understood by the transport too), the
gateway's CoAP message layer, and small files of its own in the state directory. Together with
the node values of ``transports/nodes.py`` that is all a transport needs of the core: nothing
under transports/ imports the store or the engine (``tests/unit/test_transport_imports.py``
checks it).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, ClassVar, Protocol

from bridged.objects.definitions import Definitions
from bridged.objects.listeners import Listeners
from bridged.objects.paths import Path
from bridged.objects.slotted import quick_init
from bridged.objects.values import Record
from bridged.transports.firmware import FirmwareUpdater
from bridged.transports.nodes import NodeId, PairedNode, Secret

ENTRY_POINT_GROUP = "bridged.transports"

BEARER_BLUETOOTH = 22
BEARER_IEEE_802154 = 23
"""LwM2M /4/x/0 Network Bearer values of the radios (Connectivity Monitoring: 22 Bluetooth
network, 23 IEEE 802.15.4 network): what a transport gives as its ``bearer``."""


@quick_init  # each report makes one (objects/slotted.py)
@dataclass(frozen=True, slots=True)
class Heard:
    """A node on the air, paired or not: what ``bridgectl scan`` lists.

    ``profile`` is the recognised format (``bthome``, ``ruuvi``, ``lwm2m``, ...) or None;
    ``records`` are the values decoded from what was heard, at node-local paths (empty when the
    payload could not be decoded, e.g. encrypted without a key). ``encrypted`` says the payload
    was encrypted, so a scan can tell "encrypted" from "nothing to decode".
    """

    node: NodeId
    time: float
    name: str | None = None
    rssi: int | None = None
    profile: str | None = None
    records: tuple[Record, ...] = ()
    encrypted: bool = False


SAME_REPORT = 1.0
"""Seconds within which what is heard of a node is one report (an advert is heard, changes the
node's state and brings readings, each told apart): the node health model measures intervals
between reports (bridged/health.py), and a transport need not say a node is still there more
often."""


@quick_init  # each report makes one (objects/slotted.py)
@dataclass(frozen=True, slots=True)
class NodeState:
    """Reachability and link quality of a paired node, as the transport last knew them.

    ``decrypt_failures`` counts what the node sent that its keys did not open (since it was
    paired with them); ``problem`` says, in a few words, why its data is refused right now
    (e.g. its bind key does not decrypt its adverts), None while its data is accepted (a state
    of a node out of reach, ``reachable`` False, says nothing of it: bridged/health.py).
    ``expect`` is, when the transport knows it, within how many seconds the node must be heard
    again or be taken for gone (an 802.15.4 node's LwM2M registration lifetime): the node
    health model's automatic timeout (bridged/health.py).
    """

    reachable: bool
    time: float
    rssi: int | None = None
    lqi: int | None = None
    battery: int | None = None
    sleepy: bool = False
    decrypt_failures: int = 0
    problem: str | None = None
    expect: float | None = None


class TransportEvents(Protocol):
    """What a transport reports to the core (implemented by the node registry)."""

    def heard(self, heard: Heard) -> None: ...

    def readings(self, node: NodeId, records: Sequence[Record]) -> None: ...

    def values(self, node: NodeId, records: Sequence[Record]) -> None: ...

    def session(self, node: NodeId, session: Mapping[str, Any] | None) -> None:
        """Keep ``session`` (JSON-able) for a paired node across restarts, durably before this
        returns; None forgets it. A restarted gateway hands it back through
        ``Transport.resume``. For what the transport must not lose when the gateway restarts
        (an 802.15.4 node's LwM2M registration)."""
        ...

    async def durable(self) -> None:
        """Return once every reading reported so far is durable (kill -9 cannot lose them):
        what a transport awaits before it acknowledges readings to the node (an 802.15.4
        Send's 2.04). It raises a LwM2MError (5.03) when they cannot be made durable, which the
        node should be told."""
        ...

    def objects(self, node: NodeId, objects: Mapping[int, Sequence[int]]) -> None: ...

    def state(self, node: NodeId, state: NodeState) -> None: ...

    def admit(self, heard: Heard) -> bool:
        """An unpaired node asks to join (an 802.15.4 node registering). True when a
        permit-join window is open: the core has then paired it, and ``pair`` was called."""
        ...


class MessageInterfaceHelper(Protocol):
    """Add a message interface to an aiocoap ``context``: ``create_interface`` is given the
    message manager and returns the message interface (see
    ``transports/ieee802154/coap_link.py``). The gateway's helper puts its bounded message
    manager below, so a transport's own CoAP side has the same bounded deduplication and
    Message-ID pacing as the gateway's server-facing side."""

    def __call__(
        self, context: Any, create_interface: Callable[[Any], Awaitable[Any]]
    ) -> Awaitable[Any]: ...


class TransportFiles(Protocol):
    """Small files a transport keeps across restarts, beside the gateway's state (e.g. the
    802.15.4 transport's frame counter, which is the transport's, not any one node's). A name
    is a plain file name, begun with the transport's name; a file is mode 0600 and replaced
    whole, so a crash leaves the old content or the new. Both raise OSError."""

    def read(self, name: str) -> bytes | None:
        """The file's content; None when it was never written."""
        ...

    def write(self, name: str, data: bytes) -> None:
        """Replace the file with ``data``, durably before this returns."""
        ...


@dataclass(frozen=True, slots=True)
class TransportHost:
    """What the gateway lends a transport besides the events, so that a transport needs nothing
    from the gateway's internals: ``definitions``, every object the gateway knows (built-in and
    the operator's DDF files), so a node's objects are decoded the same as the gateway's own;
    ``append_message_interface``, the gateway's CoAP message layer for a transport that speaks CoAP
    to its nodes; ``files``, where it may keep small files of its own (None when the gateway
    has no state directory to lend, as in tests that need none)."""

    definitions: Definitions
    append_message_interface: MessageInterfaceHelper
    files: TransportFiles | None = None


class TransportConfigError(ValueError):
    """A transport's configuration section is wrong; the message names the key and why."""


class PairingFailed(Exception):
    """The radio could not do what pairing a node needs (e.g. bonding); the message says why."""


def check_keys(config: Mapping[str, Any], known: Iterable[str], prefix: str) -> None:
    """TransportConfigError naming the first key of ``config`` that is not one of ``known``
    (``prefix`` is where the table sits, e.g. ``"ble."``), so a misspelt key is not ignored."""
    known = frozenset(known)
    for key in config:
        if key not in known:
            raise TransportConfigError(
                f"{prefix}{key} is not a setting (known: {', '.join(sorted(known))})"
            )


def config_number(
    value: object,
    name: str,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    above: bool = False,
) -> float:
    """``value`` as a float if it is a number in range (``above``: strictly above ``low``);
    else TransportConfigError naming ``name`` and the range. Booleans are not numbers here,
    though Python's ``bool`` is an ``int``."""
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if number is None or number < low or (above and number <= low) or number > high:
        if high < math.inf:
            bound = f"from {low:g} to {high:g}"
        else:
            bound = f"> {low:g}" if above else f">= {low:g}"
        raise TransportConfigError(f"{name} must be a number {bound}, not {value!r}")
    return float(number)


class Transport(abc.ABC):
    """One radio adapter. ``name`` is the transport part of its nodes' ids and its entry-point
    name; ``config`` is its section of the configuration file."""

    name: ClassVar[str]
    bearer: ClassVar[int | None] = None
    """The /4/x/0 Network Bearer its nodes are reached over (``BEARER_*``), shown as each
    node's /4/0/0 where the exposure mode shows it; None when no value of LwM2M's list fits."""

    def __init__(
        self,
        config: Mapping[str, Any],
        events: TransportEvents,
        host: TransportHost | None = None,
    ) -> None:
        self.config = config
        self.events = events
        self.host = host
        """What the gateway lends (``TransportHost``); None for a transport built outside a
        gateway, which then needs none of it (a transport that does requires it)."""
        self.condition: str | None = None
        """What the radio is doing now, for ``bridgectl status`` (``radio down: ...``): a
        transport that started may still have no dongle or adapter to use."""
        self.fault: str | None = None
        """What keeps the radio from working now (the dongle unplugged, the adapter lost), None
        while it works: one of the gateway's own faults (its /3/0/11), set through
        ``radio_condition``."""
        self.fault_listeners: Listeners[Callable[[Transport], None]] = Listeners("radio faults")
        """Told when ``fault`` changes (the gateway shows it upstream and logs it)."""

    def radio_condition(self, condition: str, *, fault: bool) -> None:
        """Say what the radio is doing now (``condition``, shown by ``bridgectl status``), and
        whether it is a fault: nothing can be heard or sent until it is over. A radio closed
        by ``stop`` says ``radio_stopped`` instead."""
        self.condition = condition
        before, self.fault = self.fault, condition if fault else None
        if self.fault != before:
            self.fault_listeners.notify(lambda tell: tell(self))

    def radio_stopped(self, condition: str) -> None:
        """Say the radio was closed by ``stop``: the one way a transport tells a stop from a
        loss. A deliberate stop (systemctl stop, a reload) is no fault of the gateway's (its
        /3/0/11, its Event Log) and takes no node out of reach; whatever fault the radio had
        ends with it, as the radio does."""
        self.radio_condition(condition, fault=False)

    @classmethod
    def normalise_address(cls, address: str) -> str:
        """``address`` in the one spelling this transport's node ids use, so one node always
        has one id whatever way a user typed it; ValueError naming the expected form for
        anything that is not an address of this transport. By default addresses are taken as
        given."""
        return address

    async def prepare_pair(self, node: PairedNode, secrets: Mapping[str, Secret]) -> None:
        """What the radio must do before ``node`` is accepted, run when a user pairs it
        (``pair`` follows when this returns): e.g. bond with a node that needs it. ValueError
        for keys or options the node cannot have, PairingFailed when the radio could not do it.
        Nothing by default."""
        return None

    def resume(self, node: NodeId, session: Mapping[str, Any]) -> None:
        """What this transport kept of a paired node (``TransportEvents.session``), handed
        back before ``start`` when the gateway starts again. Nothing by default."""
        return None

    def firmware_updater(self, node: NodeId) -> FirmwareUpdater | None:
        """How this transport updates ``node``'s firmware (``transports/firmware.py``), None
        when it cannot: the core then shows the node no /5. None by default."""
        return None

    @abc.abstractmethod
    async def start(self) -> None:
        """Open the radio and start listening. Radio faults later are recovered inside the
        transport (reopen with back-off) and reported through ``state``, never raised here."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Close the radio; no events are reported after this returns."""

    @abc.abstractmethod
    def pair(self, node: PairedNode, secrets: Mapping[str, Secret]) -> None:
        """Accept ``node`` from now on, with its keys (bind key, link key)."""

    @abc.abstractmethod
    def unpair(self, node: NodeId) -> None:
        """Stop accepting ``node``; its data no longer reaches the core."""

    @abc.abstractmethod
    async def read(self, node: NodeId, path: Path) -> list[Record]:
        """Read ``path`` from the node itself."""

    @abc.abstractmethod
    async def write(self, node: NodeId, path: Path, records: Sequence[Record]) -> None:
        """Write ``records`` under ``path`` to the node."""

    @abc.abstractmethod
    async def execute(self, node: NodeId, path: Path, arguments: str) -> None:
        """Execute ``path`` on the node with the LwM2M argument text."""


class UnknownTransport(LookupError):
    """The configuration names a transport that is not installed."""


class TransportLoadError(UnknownTransport):
    """The configuration names a transport that is installed but whose module cannot be
    imported, as python-can reports an interface plug-in that fails to load: one message, not
    the import's traceback."""


def normalise_node(node: NodeId) -> NodeId:
    """``node`` with its address in its transport's spelling (``Transport.normalise_address``):
    ``ble:a4-c1-38-00-11-22`` is ``ble:A4:C1:38:00:11:22``. ValueError for an address the
    transport cannot have, UnknownTransport for a transport that is not installed."""
    address = transport_class(node.transport).normalise_address(node.address)
    return node if address == node.address else NodeId(node.transport, address)


def transport_class(name: str) -> type[Transport]:
    """Import the transport registered as ``name`` in the ``bridged.transports`` group;
    UnknownTransport when none is, TransportLoadError when its module fails to import."""
    found = metadata.entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not found:
        known = sorted(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))
        raise UnknownTransport(
            f"no transport named {name!r} is installed (known: {', '.join(known) or 'none'})"
        )
    entry_point = next(iter(found))
    try:
        cls = entry_point.load()
    except Exception as e:
        # Whatever importing it raised (a library missing, a broken install): one line naming
        # the transport and the cause, which the daemon shows as a configuration error.
        raise TransportLoadError(
            f"transport {name!r} is installed but cannot be loaded "
            f"({entry_point.value}): {type(e).__name__}: {e}"
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, Transport)):
        raise UnknownTransport(f"entry point {name!r} is not a Transport subclass")
    return cls
