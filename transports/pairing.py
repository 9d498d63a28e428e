"""What a transport takes when a node is paired: its keys and its options.

A transport declares them here, in a ``Pairing`` it registers in the ``bridged.pairing``
entry-point group under its name (beside its ``bridged.transports`` entry point), so that:

* ``bridgectl pair`` offers them (``--bindkey HEX``, ``--bond``, ``--key NAME=HEX``) and says
  what is wrong with a value before anything reaches the daemon, with no edit of bridgectl;
* the gateway checks the keys of every pairing against the same declaration (a BLE bind key is
  16 bytes), whether the transport runs or not.

The declaration lives in a module of its own, importing nothing but this contract, because
bridgectl reads it: it must not load the radio libraries (bleak, serial) to show its help.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import ClassVar

from bridged.transports.nodes import Secret

PAIRING_GROUP = "bridged.pairing"
HEX_DIGITS = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class PairingKey:
    """A key the transport takes: the secret ``name`` of ``size`` bytes, given as hex with
    ``--key NAME=HEX``, and with ``option`` also as ``--NAME HEX`` (and the control socket's
    param ``NAME``). ``label`` names it in messages (``a bind key``)."""

    name: str
    size: int
    help: str
    label: str = "a key"
    option: bool = False
    takes_hex: ClassVar[bool] = True

    def check_hex(self, text: str) -> str:
        """``text`` as the key's lower-case hex digits; ValueError saying what is wrong without
        ever repeating the key."""
        digits = text.strip().lower()
        if len(digits) != 2 * self.size or not set(digits) <= HEX_DIGITS:
            raise ValueError(
                f"{self.label} is {self.size} bytes ({2 * self.size} hex digits); "
                f"this one has {len(digits)} characters"
                + ("" if set(digits) <= HEX_DIGITS else ", not all hex")
            )
        return digits

    def check(self, secret: Secret) -> None:
        """ValueError for a key of the wrong length (the message never repeats it)."""
        if len(secret.value) != self.size:
            raise ValueError(
                f"{self.label} is {self.size} bytes ({2 * self.size} hex digits), "
                f"not {len(secret.value)}"
            )


@dataclass(frozen=True, slots=True)
class PairingFlag:
    """An option of the node kept in its pairing options: yes/no, ``--NAME``, kept as
    ``NAME: true``; or, with ``choices``, one of them, ``--NAME CHOICE``, kept as
    ``NAME: "CHOICE"`` (``--firmware smp``). Given, the node's profile is ``profile`` unless
    the user names another."""

    name: str
    help: str
    profile: str = ""
    choices: tuple[str, ...] = ()
    takes_hex: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class Pairing:
    """Everything a transport takes when one of its nodes is paired."""

    keys: tuple[PairingKey, ...] = ()
    flags: tuple[PairingFlag, ...] = ()

    def check(self, secrets: Mapping[str, Secret]) -> None:
        """ValueError for a declared key of the wrong length. A key the transport does not
        declare is kept as given: the transport has no use for it, but it is the user's."""
        for key in self.keys:
            secret = secrets.get(key.name)
            if secret is not None:
                key.check(secret)


NO_PAIRING = Pairing()


@cache
def installed() -> dict[str, Pairing]:
    """The declarations of the installed transports, by transport name. One that cannot be
    loaded (its package broken, or not importable where bridgectl runs from a source tree) is
    left out: bridgectl then offers only the options every transport takes, and the daemon
    reports the broken transport itself when the configuration uses it."""
    found = {}
    for entry_point in metadata.entry_points(group=PAIRING_GROUP):
        try:
            pairing = entry_point.load()
        except Exception:  # whatever a broken plug-in raises on import
            continue
        if isinstance(pairing, Pairing):
            found[entry_point.name] = pairing
    return found


def pairing(transport: str) -> Pairing:
    """What ``transport`` declares; nothing for a transport that declares nothing."""
    return installed().get(transport, NO_PAIRING)
