"""What the core and every transport say about a node: its id, its pairing, its keys.

These are the contract's values (``transports/base.py`` is the rest of it): a transport gets
them from the core and reports with them, and the store keeps them. They live here, beside the
contract, so that a transport needs nothing from the store or the engine, and the store imports
them from the contract rather than the other way round.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_TRANSPORT = re.compile(r"[a-z][a-z0-9_]*")
_SPACE = re.compile(r"\s")
"""What str.isspace calls a space (the same Unicode category), found without a Python loop
over the address: a start parses every paired node's id."""


class NodeIdError(ValueError):
    """A node id that is not ``transport:address``."""


@dataclass(frozen=True, slots=True, order=True)
class NodeId:
    """``transport:address``, e.g. ``ble:A4:C1:38:00:11:22`` or ``802154:00124b0001020304``.

    The address is the transport's own spelling; each transport normalises it (case, separators)
    before making the id, so one node always has one id.
    """

    transport: str
    address: str
    _hash: int = field(init=False, repr=False, compare=False)
    """Worked out once: a node id keys a dozen lookups for each report a node makes (the
    registry's, the node health's, the exposure's), and the dataclass's own hash builds and
    hashes a tuple each time."""

    def __post_init__(self) -> None:
        if not _TRANSPORT.fullmatch(self.transport) and not self.transport.isdigit():
            raise NodeIdError(f"{self.transport!r} is not a transport name")
        if not self.address or _SPACE.search(self.address):
            raise NodeIdError(f"{self.address!r} is not a node address")
        object.__setattr__(self, "_hash", hash((self.transport, self.address)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[NodeId], tuple[str, str]]:
        """Unpickled by building it again: a string's hash is its process's own."""
        return NodeId, (self.transport, self.address)

    @classmethod
    def parse(cls, text: str) -> NodeId:
        transport, sep, address = text.partition(":")
        if not sep:
            raise NodeIdError(f"{text!r} is not a node id (transport:address)")
        # One string per transport name, not one per node id (a start parses thousands).
        return cls(sys.intern(transport), address)

    def __str__(self) -> str:
        return f"{self.transport}:{self.address}"


@dataclass(frozen=True, slots=True)
class PairedNode:
    """A node the gateway accepts. ``profile`` says how its data is read (a format name such as
    ``bthome`` or ``lwm2m``); ``options`` holds transport-specific settings that are not
    secret (secrets live in the secrets file)."""

    id: NodeId
    name: str
    profile: str
    sleepy: bool = False
    paired_at: float = 0.0
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Secret:
    """Key bytes that do not print."""

    value: bytes

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    @classmethod
    def from_hex(cls, text: str, size: int | None = None) -> Secret:
        """Parse a key given as hex (``--bindkey``); ValueError says what is wrong without
        echoing the key."""
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ValueError("the key is not hexadecimal") from None
        if size is not None and len(raw) != size:
            raise ValueError(
                f"the key must be {size} bytes ({2 * size} hex digits), not {len(raw)}"
            )
        return cls(raw)
