"""What the core and every transport say about a node: its id, its pairing, its keys.

These are the contract's values (``transports/base.py`` is the rest of it): a transport gets
them from the core and reports with them, and the store keeps them. They live here, beside the
contract, so that a transport needs nothing from the store or the engine, and the store imports
them from the contract rather than the other way round.
"""

from __future__ import annotations

import re
import sys
from collections import namedtuple
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

_TRANSPORT = re.compile(r"[a-z][a-z0-9_]*")
_SPACE = re.compile(r"\s")
"""What str.isspace calls a space (the same Unicode category), found without a Python loop
over the address: a start parses every paired node's id."""


class NodeIdError(ValueError):
    """A node id that is not ``transport:address``."""


_FIELDS = namedtuple("_FIELDS", ("transport", "address"))
"""Where ``NodeId`` reads its fields from: a named tuple's field getter (``_tuplegetter``, the
tuple's item in C), which works on any tuple."""


class NodeId(tuple[str, str]):
    """``transport:address``, e.g. ``ble:A4:C1:38:00:11:22`` or ``802154:00124b0001020304``.

    The address is the transport's own spelling; each transport normalises it (case, separators)
    before making the id, so one node always has one id.

    A node id is the tuple ``(transport, address)``, so that hashing it, comparing it and its
    order (transport, then address) are the tuple's, in C: a node id keys the lookups of each
    report a node makes (the registry's, the node health's, the exposure's), where a
    dataclass's ``__hash__`` (even returning a hash worked out once) and ``__eq__`` were a
    Python call each, the ``__eq__`` at every lookup by an equal id that is another object.
    It takes what the dataclass's three slots took (two items; no hash kept). As a tuple, it
    equals the tuple of its fields, so it keys only dicts of node ids; it is formatted with
    ``str`` or an f-string, never ``"%s" % node`` (a tuple is ``%``'s arguments).
    """

    __slots__ = ()

    if TYPE_CHECKING:

        @property
        def transport(self) -> str: ...

        @property
        def address(self) -> str: ...

    else:
        transport = _FIELDS.transport
        address = _FIELDS.address

    def __new__(cls, transport: str, address: str) -> NodeId:
        if not _TRANSPORT.fullmatch(transport) and not transport.isdigit():
            raise NodeIdError(f"{transport!r} is not a transport name")
        if not address or _SPACE.search(address):
            raise NodeIdError(f"{address!r} is not a node address")
        return tuple.__new__(cls, (transport, address))

    def __reduce__(self) -> tuple[type[NodeId], tuple[str, str]]:
        """Copied and unpickled by building it again (its checks, and the tuple's hash of this
        process's strings)."""
        return NodeId, (self.transport, self.address)

    def __repr__(self) -> str:
        return f"NodeId(transport={self.transport!r}, address={self.address!r})"

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
