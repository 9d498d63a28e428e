"""systemd integration: readiness, status and the watchdog (sd_notify).

Under ``Type=notify`` systemd waits for ``READY=1``, shows the last ``STATUS=`` line in
``systemctl status``, and, with ``WatchdogSec=``, kills and restarts a daemon that stops sending
``WATCHDOG=1``. The watchdog ping must prove that the daemon works, not only that the process
lives, so it is sent from a health check (``run_watchdog``): the event loop woke on time, the
node registry's group commit is running and the state database took a write. A failed check
withholds the ping; systemd then restarts the daemon.

Messages go through python-systemd's ``systemd.daemon.notify`` when it is installed, else
straight to ``$NOTIFY_SOCKET`` (the protocol is one datagram of ``KEY=value`` lines). Outside
systemd (no ``$NOTIFY_SOCKET``) nothing is sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

STATUS_INTERVAL = 5.0
"""Seconds a count the STATUS= line shows waits after it moved before the line is sent
(``StatusUpdates.drifted``): at most one line per interval while readings flow."""

STATUS_SETTLE = 1.0
"""Seconds a change of the status waits for the changes that follow it before ``STATUS=`` is
sent (``StatusUpdates``)."""


def _socket_notify(message: str, environ: Mapping[str, str]) -> bool:
    """The notify protocol without libsystemd: one datagram to ``$NOTIFY_SOCKET`` (a path,
    or ``@name`` for an abstract socket).

    A message that is only a ``STATUS=`` line is sent without waiting: the daemon sends from
    its event loop, and a manager that does not read its socket for a while would otherwise
    stop the whole daemon in ``sendto`` (a full socket blocks the sender). Such a line is
    dropped instead (the next one says more); the other messages (READY=1, WATCHDOG=1,
    STOPPING=1) are rare and each matters, so they wait."""
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    flags = socket.MSG_DONTWAIT if message.startswith("STATUS=") and "\n" not in message else 0
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(message.encode(), flags, address)
    except BlockingIOError:
        log.debug("sd_notify socket full: status line dropped")
        return False
    except OSError as e:
        log.warning("sd_notify to %s failed: %s", environ.get("NOTIFY_SOCKET"), e)
        return False
    return True


def _sender(environ: Mapping[str, str]) -> Callable[[str], bool]:
    if environ is os.environ:
        try:
            from systemd import daemon  # python-systemd, the sd_notify of libsystemd
        except ImportError:
            pass
        else:
            return lambda message: bool(daemon.notify(message))
    return lambda message: _socket_notify(message, environ)


class Notifier:
    """Sends sd_notify messages when running under systemd; a no-op otherwise.

    ``environ`` other than ``os.environ`` (tests) always uses the socket path directly, since
    libsystemd reads the real environment."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self.enabled = bool(self.environ.get("NOTIFY_SOCKET"))
        self._send = _sender(self.environ)
        self._status: str | None = None
        self._ready = False

    def notify(self, *fields: str) -> bool:
        if not self.enabled:
            return False
        return self._send("\n".join(fields))

    def ready(self, status: str) -> None:
        self._status = status
        self._ready = True
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        """Send ``STATUS=`` when it differs from the last one sent; before READY=1 the status
        goes with it."""
        if self._ready and status != self._status:
            self._status = status
            self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping: de-registering")

    def reloading(self) -> None:
        self.notify("RELOADING=1")


class StatusUpdates:
    """``STATUS=`` after the gateway's summary may have changed, and only then: the one owner
    of when the line is worked out (an idle daemon works it out never; the watchdog's ping does
    not, see ``run_watchdog``).

    Changes come in bursts (every node endpoint's registration at a start in the endpoints
    mode, every command queued and ended), and each line is the summary of the whole gateway,
    worked out over all its nodes: one line per change was quadratic in the nodes at such a
    start, and a datagram each. So a change (``changed``) sends the line ``settle`` seconds
    later, the summary when the burst settled; the counts that move with every reading
    (``drifted``: readings waiting and dropped, nodes reachable) wait up to ``interval``.
    ``settle`` is at most ``interval`` (a ValueError otherwise): so an armed line is always
    due within ``interval``, which ``drifted`` relies on."""

    def __init__(
        self,
        notifier: Notifier,
        status: Callable[[], str],
        settle: float = STATUS_SETTLE,
        interval: float = STATUS_INTERVAL,
    ) -> None:
        if settle > interval:
            raise ValueError(f"the settle ({settle} s) is longer than the interval ({interval} s)")
        self._notifier = notifier
        self._status = status
        self._settle = settle
        self._interval = interval
        self._handle: asyncio.TimerHandle | None = None

    def changed(self) -> None:
        """Something the line says changed (an event: a registration, a pairing, a command)."""
        self._within(self._settle)

    def drifted(self) -> None:
        """A count the line shows moved (a reading stored or delivered, a node heard).

        Under systemd this is told with every report's news: while a line is armed it returns
        at once, without reading the loop's clock, since an armed line is due within
        ``interval`` already (whether armed by a drift or by a change: settle <= interval)."""
        if self._handle is None:
            self._within(self._interval)

    def _within(self, delay: float) -> None:
        """Send the line ``delay`` seconds from now, or sooner when it is due sooner already."""
        if not self._notifier.enabled:
            return
        loop = asyncio.get_running_loop()
        at = loop.time() + delay
        if self._handle is not None:
            if self._handle.when() <= at:
                return
            self._handle.cancel()
        self._handle = loop.call_at(at, self._send)

    def _send(self) -> None:
        self._handle = None
        self._notifier.status(self._status())

    def close(self) -> None:
        """Nothing more to send (the daemon stops)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between two pings: half of ``$WATCHDOG_USEC``, or None when systemd does not
    watch this process (no or bad ``$WATCHDOG_USEC``, or ``$WATCHDOG_PID`` is another's)."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(usec) / 2e6


def loop_lag_problem(lag: float, limit: float) -> str | None:
    """The event loop woke ``lag`` seconds late: a problem once beyond ``limit``."""
    if lag > limit:
        return f"the event loop is {lag:.2f} s late"
    return None


async def run_watchdog(
    notifier: Notifier,
    interval: float,
    health: Callable[[], list[str]],
    *,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Ping ``WATCHDOG=1`` every ``interval`` seconds while healthy (see the module docstring).

    The ping is the one wake-up an idle daemon has, so it does the health check and nothing
    else: ``STATUS=`` is ``StatusUpdates``' (it is sent when the summary changed, and working
    the summary out at each ping was most of the ping's CPU, a few SQLite reads among it).

    A loop that wakes more than ``interval`` late counts as unhealthy: by then systemd's
    timeout is close, and something is blocking the loop."""
    failing: list[str] = []
    while True:
        before = clock()
        await asyncio.sleep(interval)
        problems = health()
        late = loop_lag_problem(clock() - before - interval, interval)
        if late is not None:
            problems.append(late)
        if not problems:
            notifier.notify("WATCHDOG=1")
            if failing:
                log.info("health check passes again")
        elif problems != failing:
            log.error("health check fails, watchdog ping withheld: %s", "; ".join(problems))
        failing = problems


def status_line(status: Mapping[str, Any]) -> str:
    """The one-line summary of ``Gateway.status()`` that ``systemctl status`` shows: the
    registration, the nodes, the node endpoints (endpoints mode), the readings waiting for
    each server (``/`` between servers) and the commands waiting for sleepy nodes."""
    servers = status.get("servers", [])
    registered = [s for s in servers if s.get("registered")]
    if status.get("lwm2m") == "stopped":
        lwm2m = "LwM2M stopped"
    elif servers and len(registered) == len(servers):
        lwm2m = "registered to " + ", ".join(s["uri"] for s in registered)
    elif registered:
        lwm2m = f"registered to {len(registered)}/{len(servers)} servers"
    elif servers:
        first = servers[0]
        lwm2m = f"LwM2M {first.get('state', 'starting')} ({first['uri']})"
    else:
        lwm2m = "LwM2M bootstrapping"
    nodes = status.get("nodes", {})
    parts = [lwm2m, f"{nodes.get('paired', 0)} nodes paired, {nodes.get('reachable', 0)} reachable"]
    endpoints = status.get("endpoints")
    if endpoints:
        registered = endpoints["states"].get("registered", 0)
        parts.append(f"{registered}/{endpoints['nodes']} node endpoints registered")
    backlog = [s["delivery"]["backlog"] for s in servers if s.get("delivery")]
    if backlog:
        dropped = status.get("readings", {}).get("dropped", 0)
        waiting = "/".join(str(n) for n in backlog)
        parts.append(f"readings {waiting} waiting, {dropped} dropped")
    problem = status.get("readings", {}).get("problem")
    if problem:
        parts.append(f"storing fails: {problem}")
    pending = status.get("commands", {}).get("pending", 0)
    if pending:
        parts.append(f"{pending} commands pending")
    return "; ".join(parts)
