"""``bridged``: the daemon. ``bridged --config FILE`` runs the gateway until SIGTERM or SIGINT.

* Start: the configuration is loaded and checked (a bad one exits with ``EXIT_CONFIG`` and
  one line naming the file, the key and why; so does a damaged state database or secrets
  file, naming ``bridged --recover``, and a state directory another daemon holds), the
  gateway starts (transports, store, the LwM2M
  client, which registers in the background), the control socket listens, and systemd is told
  READY=1.
* SIGHUP re-reads the configuration and applies what can change while running (see
  ``Gateway.reload``); a configuration that has become bad is refused and the old one kept.
* SIGTERM or SIGINT: STOPPING=1, the control socket closes, the gateway stops delivering
  readings, de-registers from its servers (the node endpoints too), makes every reading durable
  and closes its transports; the exit status is 0. Commands waiting for sleepy nodes stay in
  the state database for the next start.
* A server executing Reboot (/3/0/4) stops the daemon the same way with ``EXIT_RESTART``, so
  that systemd (Restart=on-failure) starts it afresh.

Logs go to the journal, with the structured fields the code passes in ``extra=`` (NODE,
SERVER, PATH, ...), when the daemon runs under systemd (``$JOURNAL_STREAM``) or is asked to
(``--log-target journal``); to stderr otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from bridged.aio import cancel_and_wait

from . import __version__
from .app import DATABASE, SECRETS, Gateway
from .build import check_transports, open_state_dir
from .config import DEFAULT_PATH, Config, ConfigError, load
from .control import ControlServer
from .protocol import SOCKET_NAME
from .service import (
    Notifier,
    StatusUpdates,
    run_watchdog,
    status_line,
    watchdog_interval,
)
from .store.database import DatabaseError
from .store.recovery import recover_database, recover_secrets
from .store.secrets import SecretsFileError

log = logging.getLogger(__name__)

EXIT_CONFIG = 78
"""sysexits' EX_CONFIG: the configuration is wrong (the unit's RestartPreventExitStatus)."""
EXIT_FAILED = 1
EXIT_RESTART = 75
"""sysexits' EX_TEMPFAIL: a server asked for a reboot; systemd restarts the daemon."""
REBOOT_GRACE = 0.5
"""Seconds between a Reboot's 2.04 and the stop that de-registers. Leshan takes a client's
messages on several threads and cancels the requests still open when the client
de-registers: a Deregister right behind the 2.04 was taken first about once in seven runs
(tests/interop/test_leshan_device_management.py), and the server's user saw the Reboot
fail ("Request cancelled") although the gateway had answered it."""

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridged",
        description="LwM2M gateway daemon: exposes BLE and IEEE 802.15.4 sensor nodes "
        "to LwM2M servers.",
        epilog=f"Exit status: 0 stopped by SIGTERM/SIGINT, {EXIT_FAILED} failed, "
        f"{EXIT_CONFIG} bad configuration, {EXIT_RESTART} restart requested by a server.",
    )
    parser.add_argument(
        "-c", "--config", type=Path, default=DEFAULT_PATH, help="configuration file (TOML)"
    )
    parser.add_argument(
        "--log-target",
        choices=("auto", "journal", "stderr"),
        default="auto",
        help="where logs go: the journal under systemd ($JOURNAL_STREAM) with auto",
    )
    parser.add_argument("--check", action="store_true", help="check the configuration and exit")
    parser.add_argument(
        "--recover",
        action="store_true",
        help="keep a damaged state database or secrets file aside, replace it with what can "
        "still be read, and exit (with the daemon stopped)",
    )
    parser.add_argument(
        "--try",
        dest="trial",
        action="store_true",
        help="try the gateway without radios or a server: run it with simulated nodes against "
        "a LwM2M server on this machine, everything in a temp dir, until Ctrl-C",
    )
    parser.add_argument(
        "--seconds", type=float, help="with --try: stop after this many seconds of readings"
    )
    parser.add_argument("--version", action="version", version=f"bridged {__version__}")
    return parser


class _PriorityFormatter(logging.Formatter):
    """stderr read by journald without python-systemd: ``<N>`` gives each line its level."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def setup_logging(target: str, level: str) -> str:
    """Install the log handler for ``target``; returns the target used."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    under_systemd = bool(os.environ.get("JOURNAL_STREAM"))
    journal = target == "journal" or (target == "auto" and under_systemd)
    handler: logging.Handler
    used = "stderr"
    if journal:
        try:
            from systemd.journal import JournalHandler
        except ImportError:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(_PriorityFormatter("%(name)s: %(message)s"))
            used = "stderr with priorities"
        else:
            handler = JournalHandler(SYSLOG_IDENTIFIER="bridged")
            used = "journal"
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    return used


class Daemon:
    """The gateway, its control socket and systemd notification, run until a signal."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.exit_code = 0
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Future[None]] = set()

    def _later(self, code: int) -> None:
        """Stop with ``code`` once the current request is answered (a Reboot's 2.04) and the
        server has had the answer (``REBOOT_GRACE``)."""
        asyncio.get_running_loop().call_later(REBOOT_GRACE, self.request_stop, code)

    def request_stop(self, code: int = 0) -> None:
        self.exit_code = code
        self._stop.set()

    async def run(self) -> int:
        notifier = Notifier()
        loop = asyncio.get_running_loop()
        gateway: Gateway | None = None

        def status() -> str:
            assert gateway is not None
            return status_line(gateway.status())

        updates = StatusUpdates(notifier, status)

        def changed() -> None:
            if gateway is not None and gateway.running:
                updates.changed()

        def drifted() -> None:
            if gateway is not None and gateway.running:
                updates.drifted()

        gateway = Gateway(
            self.config,
            on_reboot=lambda: self._later(EXIT_RESTART),
            on_change=changed,
            on_drift=drifted,
        )
        control = ControlServer(gateway, self.config.gateway.runtime_dir / SOCKET_NAME)
        watchdog: asyncio.Task[None] | None = None
        try:
            await gateway.start()
            await control.start()
            loop.add_signal_handler(signal.SIGTERM, self.request_stop)
            loop.add_signal_handler(signal.SIGINT, self.request_stop)
            loop.add_signal_handler(
                signal.SIGHUP, lambda: self._track(self.reload(gateway, notifier))
            )
            notifier.ready(status())
            interval = watchdog_interval(os.environ, os.getpid())
            if interval is not None:
                watchdog = asyncio.create_task(
                    run_watchdog(notifier, interval, gateway.health), name="watchdog"
                )
            await self._stop.wait()
            log.info("stopping")
            notifier.stopping()
        finally:
            updates.close()
            await cancel_and_wait(watchdog)
            await control.stop()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await gateway.stop()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        log.info("stopped")
        return self.exit_code

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task that is kept until it ends (and awaited at the stop)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self, gateway: Gateway, notifier: Notifier) -> None:
        """SIGHUP: read the file again and apply it, or keep the running one if it is bad."""
        notifier.reloading()
        try:
            config = load(self.config.path)
            await gateway.reload(config)
        except ConfigError as e:
            log.error("reload refused, the running configuration stays: %s", e)
        else:
            self.config = config
        notifier.notify("READY=1", f"STATUS={status_line(gateway.status())}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.seconds is not None and not args.trial:
        parser.error("--seconds goes with --try")
    if args.trial:
        from . import trial  # aiocoap's server side and the trial's own output

        return trial.main(args.seconds)
    try:
        # The same checks as --check before anything is created: a bad file starts nothing.
        config = load(args.config)
        check_transports(config)
    except ConfigError as e:
        print(f"bridged: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        print(f"bridged: {args.config}: configuration is valid")
        return 0
    if args.recover:
        return recover(config)
    setup_logging(args.log_target, config.log_level)
    try:
        return asyncio.run(Daemon(config).run())
    except (ConfigError, DatabaseError, SecretsFileError) as e:
        # Nothing a restart can fix: one line that says what to do, and no restart loop.
        print(f"bridged: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as e:
        log.critical("bridged failed: %s", e, exc_info=True)
        print(f"bridged: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED


def recover(config: Config) -> int:
    """``--recover``: see bridged/store/recovery.py. Refused while a daemon holds the state
    directory."""
    state_dir = config.gateway.state_dir
    try:
        lock = open_state_dir(config)
    except ConfigError as e:
        print(f"bridged: {e}; stop it first", file=sys.stderr)
        return EXIT_CONFIG
    try:
        for line in recover_database(state_dir / DATABASE) + recover_secrets(state_dir / SECRETS):
            print(f"bridged: {line}")
    finally:
        os.close(lock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
