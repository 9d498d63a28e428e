"""What the gateway lends its transports: the contract's ``TransportHost``, built here once,
so that the daemon and whoever else runs a transport (the tests, the benchmarks) hand it the
same object definitions, the same CoAP message layer and the same place for its files, and no
transport reaches into the engine or the store for them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bridged.engine.coap import append_message_interface
from bridged.objects.definitions import Definitions
from bridged.store.files import write_private_file
from bridged.transports.base import TransportHost

TRANSPORT_FILES = "transports"
"""The folder of the state directory that holds the transports' own files."""


@dataclass(frozen=True)
class StateFiles:
    """``TransportFiles`` in ``directory`` (the state directory's ``transports/``)."""

    directory: Path

    def _path(self, name: str) -> Path:
        if not name or name.startswith(".") or "/" in name or "\0" in name:
            raise ValueError(f"{name!r} is not a plain file name")
        return self.directory / name

    def read(self, name: str) -> bytes | None:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        write_private_file(self._path(name), data)


def transport_host(definitions: Definitions, state_dir: Path | None = None) -> TransportHost:
    """The host for transports of a gateway that knows ``definitions`` (built-in and the
    operator's DDF files): the engine's bounded CoAP message layer for their CoAP sides, and,
    with a ``state_dir``, files of their own in its ``transports/`` folder."""
    files = StateFiles(state_dir / TRANSPORT_FILES) if state_dir is not None else None
    return TransportHost(definitions, append_message_interface, files)
