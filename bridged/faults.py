"""The gateway's own faults: what is wrong with the gateway itself, in its /3/0/11 and the log.

A node's health is ``bridged.health``; this is the gateway's: a radio down (the 802.15.4
dongle unplugged, the BlueZ adapter lost), the state database refusing writes (a full disk, a
file system turned read-only), a server that cannot be reached. Each part that knows of one
says so (``raise_fault``) and says when it is over (``clear``); the gateway's /3/0/11 Error
Code lists the codes of the faults present (one resource instance each, 0 alone without any,
as the Core says), a server observing it is notified as they come and go, each start and end
is one log line, and listeners (the event stream, the event log) are told.

Codes (Core /3/0/11: 7 IP connectivity failure, 8 Peripheral malfunction; 16..32 device
specific):

* a radio down is 8: the dongle and the adapter are the gateway's peripherals;
* a server unreachable is 7: the gateway's own IP connectivity toward it failed;
* the state database refusing writes is 17 (the Core's 5 Out of memory is RAM, which a full
  disk is not, and a server must not read it as a memory leak);
* a clock jump is 18: a moment, not a state (``occurred``): it is logged and kept in the
  event log, started and ended at once, as nothing is left to clear. ``ClockWatch`` sees it
  when something happens (a group commit of readings, whose times a jump makes wrong: once
  per commit, not per advert heard), comparing the wall clock with the monotonic one, so no
  timer runs for it.

A deliberate stop ends no fault (``close``): one still present then (the dongle unplugged)
stays raised in the persisted event log, with no "cleared" line, as nothing cleared it. The
next start is given what the log still has raised (``carried``) and takes each as present
until its source speaks: one found again is the same fault, not raised a second time; one
its source clears, or that no source reports any more by the end of the start (``settle``),
is logged cleared then. So every raised line is matched by a cleared one, at the time the
fault was seen gone. A reload that restarts a transport does the same for its radio's fault
(``carry``), and one that removes a transport clears it at ``settle``: nobody has it now.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from bridged.objects.ids import DEVICE_PATH, Device
from bridged.objects.listeners import Listeners
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.transports.base import Transport

from .health import NO_ERROR, UNREACHABLE

log = logging.getLogger(__name__)

PERIPHERAL_MALFUNCTION = 8
STORE_REFUSES_WRITES = 17
CLOCK_JUMPED = 18
RADIO_DOWN = PERIPHERAL_MALFUNCTION
SERVER_UNREACHABLE = UNREACHABLE
"""7 IP connectivity failure: the Core's code, the same as a node's unreachable."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault of the gateway: ``source`` is what has it (``transport.802154``, ``store``,
    ``server coap://...``), ``code`` its /3/0/11 value, ``why`` in a few words."""

    source: str
    code: int
    why: str


FaultListener = Callable[[Fault, bool], None]
"""Told ``(fault, present)`` when a fault starts (True) or ends (False)."""

STORE = "store"
CLOCK = "clock"


def transport_source(name: str) -> str:
    """The source of a transport's radio faults."""
    return f"transport.{name}"


def server_source(uri: str) -> str:
    """The source of the faults of the gateway's registration with the server at ``uri``."""
    return f"server {uri}"


def own_source(source: str) -> bool:
    """Whether a fault log entry's ``source`` is the gateway's own (not a node's)."""
    return source in (STORE, CLOCK) or source.startswith((transport_source(""), server_source("")))


class GatewayFaults:
    """The faults present now, shown in ``tree``'s /3/0/11 (see the module docstring).

    ``carried`` are the faults the persisted log still has raised from the previous run."""

    def __init__(self, tree: ObjectTree, carried: Iterable[Fault] = ()) -> None:
        self.tree = tree
        self.present: dict[str, Fault] = {f.source: f for f in carried}
        self._carried = dict(self.present)
        """Carried faults whose source has not spoken yet in this run."""
        self._closed = False
        self._listeners: Listeners[FaultListener] = Listeners("gateway faults")
        if self.present:
            self._show()

    def listen(self, listener: FaultListener) -> Callable[[], None]:
        return self._listeners.add(listener)

    def raise_fault(self, source: str, code: int, why: str) -> None:
        """``source`` has a fault now. One it has already with the same code is the same fault
        (a dongle unplugged is first a failed read, then a port that cannot be opened), the one
        carried from the previous run too: its new ``why`` is logged, not raised again."""
        if self._closed:
            return
        self._carried.pop(source, None)
        fault = Fault(source, code, why)
        current = self.present.get(source)
        if current is not None and current.code == code:
            if current != fault:
                self.present[source] = fault
                log.warning("gateway fault goes on: %s: %s (error code %d)", source, why, code)
            return
        if current is not None:
            self.clear(source)  # another fault: the one before is over
        self.present[source] = fault
        log.error("gateway fault: %s: %s (error code %d)", source, why, code)
        self._show()
        self._listeners.notify(lambda tell: tell(fault, True))

    def clear(self, source: str) -> None:
        """``source``'s fault, if it had one, is over."""
        if self._closed:
            return
        self._carried.pop(source, None)
        fault = self.present.pop(source, None)
        if fault is None:
            return
        log.warning("gateway fault over: %s (was: %s)", source, fault.why)
        self._show()
        self._listeners.notify(lambda tell: tell(fault, False))

    def settle(self, reporting: Collection[str]) -> None:
        """The start is over: the sources that can tell have told whether their fault is still
        there. A carried fault not found again is over, unless its source is in ``reporting``
        (one that tells later: a server, by its registration's outcome)."""
        for source in [s for s in self._carried if s not in reporting]:
            self.clear(source)

    def carry(self, source: str) -> None:
        """``source`` is stopped deliberately to start again (a transport a reload restarts):
        its fault, if it has one, stays present and is carried, as across a stop, until its
        source speaks or ``settle``."""
        fault = self.present.get(source)
        if fault is not None and not self._closed:
            self._carried[source] = fault

    def close(self) -> None:
        """A deliberate stop: what is present stays so in the log, since a stop cures nothing
        (see the module docstring); nothing is raised or cleared any more."""
        if self.present:
            log.info(
                "stopping with gateway fault(s) present, kept raised for the next start: %s",
                ", ".join(sorted(self.present)),
            )
        self._closed = True

    def occurred(self, source: str, code: int, why: str) -> None:
        """A fault that is a moment (a clock jump): logged, started and ended at once."""
        fault = Fault(source, code, why)
        log.error("gateway fault: %s: %s (error code %d)", source, why, code)
        self._listeners.notify(lambda tell: tell(fault, True))
        self._listeners.notify(lambda tell: tell(fault, False))

    def store_problem(self, problem: str | None) -> None:
        """The registry's word on the state database (``NodeRegistry.on_store_problem``): why
        it refuses writes, or None once it takes them again."""
        if problem is None:
            self.clear(STORE)
        else:
            self.raise_fault(STORE, STORE_REFUSES_WRITES, problem)

    def radio(self, transport: Transport) -> None:
        """A transport's radio went down or came back (one of its ``fault_listeners``)."""
        source = transport_source(transport.name)
        if transport.fault is None:
            self.clear(source)
        else:
            self.raise_fault(source, RADIO_DOWN, transport.fault)

    @property
    def codes(self) -> tuple[int, ...]:
        """/3/0/11's values: the codes present, each once, in order; ``(0,)`` without any."""
        return tuple(sorted({f.code for f in self.present.values()})) or (NO_ERROR,)

    def _show(self) -> None:
        path = Path((*DEVICE_PATH.ids, Device.ERROR_CODE), self.tree.prefix)
        if self.tree.has(DEVICE_PATH):
            self.tree.set(path, dict(enumerate(self.codes)))


JUMP_THRESHOLD = 30.0
"""Seconds the wall clock may move against the monotonic one before it is a jump (NTP slews
small errors; it steps large ones)."""


class ClockWatch:
    """Sees the wall clock jump (see the module docstring) when ``check`` is called."""

    def __init__(
        self,
        faults: GatewayFaults,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        threshold: float = JUMP_THRESHOLD,
    ) -> None:
        self.faults = faults
        self._clock = clock
        self._monotonic = monotonic
        self.threshold = threshold
        self._offset = clock() - monotonic()

    def check(self, *_: object) -> None:
        """Look at the clock (its arguments, a registry hook's, are not looked at)."""
        offset = self._clock() - self._monotonic()
        jump, self._offset = offset - self._offset, offset
        if abs(jump) >= self.threshold:
            self.faults.occurred(CLOCK, CLOCK_JUMPED, f"the clock jumped by {jump:+.0f} s")
