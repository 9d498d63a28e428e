"""Object and resource definitions, and ``Definitions``, the set that holds them.

Definitions are the facts the rest of the model checks against: a value's type and range, which
operations a resource allows, whether it has instances. They come from the built-in set
(``builtin``) and from OMA DDF XML files a user drops in a directory (``ddf``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from .errors import NotFound


class ResourceType(Enum):
    """The LwM2M data types, named as the DDF XML names them."""

    STRING = "String"
    INTEGER = "Integer"
    UNSIGNED = "Unsigned Integer"
    FLOAT = "Float"
    BOOLEAN = "Boolean"
    OPAQUE = "Opaque"
    TIME = "Time"
    OBJLNK = "Objlnk"
    CORELNK = "Corelnk"
    NONE = "none"

    # Each member is its only instance and equal only to itself: the identity hash is the
    # right one, and it is computed in C (Enum's own hashes the name in Python, on every
    # lookup of a codec's encoder for every value encoded).
    __hash__ = object.__hash__


class Operations(Enum):
    """What a resource allows: read, write, both, execute, or nothing (bootstrap only)."""

    NONE = ""
    R = "R"
    W = "W"
    RW = "RW"
    E = "E"

    @property
    def readable(self) -> bool:
        return self in (Operations.R, Operations.RW)

    @property
    def writable(self) -> bool:
        return self in (Operations.W, Operations.RW)

    @property
    def executable(self) -> bool:
        return self is Operations.E


_RANGE_RE = re.compile(
    r"\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(?:\.\.|-|~)\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
    r"\s*(?:[A-Za-z]+)?\s*"
)
"""A bound pair, optionally followed by a unit word ("0..255 bytes"); anything more (a list,
"1-3, 5") is kept as text only."""


@dataclass(frozen=True, slots=True)
class ValueRange:
    """A resource's RangeEnumeration.

    ``low``/``high`` bound the value of a number, or the length of a String or Opaque; either is
    None when the text gives no bound. ``text`` keeps the original wording, which the OMA registry
    also uses for enumerations and prose that no checker can enforce.
    """

    text: str
    low: float | None = None
    high: float | None = None

    @classmethod
    def parse(cls, text: str) -> ValueRange | None:
        """Parse "0..100", "-40..85", "1-255", "0..255 bytes"; None for an empty range."""
        text = text.strip()
        if not text:
            return None
        m = _RANGE_RE.fullmatch(text)
        if not m:
            return cls(text)
        low, high = float(m.group(1)), float(m.group(2))
        if low > high:
            return cls(text)
        return cls(text, low, high)

    def admits(self, number: float) -> bool:
        return (self.low is None or number >= self.low) and (
            self.high is None or number <= self.high
        )


@dataclass(frozen=True, slots=True)
class ResourceDef:
    """One resource of an object."""

    id: int
    name: str
    operations: Operations
    type: ResourceType
    multiple: bool = False
    mandatory: bool = False
    units: str = ""
    range: ValueRange | None = None
    description: str = ""
    plain_float: bool = field(init=False, repr=False, compare=False)
    """Any finite float is a value of it (a Float with no range): a sensor's resource, whose
    every reading ``values.check_value`` takes at once, and a caller that checks many values
    against one definition with no call at all."""

    def __post_init__(self) -> None:
        plain = self.type is ResourceType.FLOAT and self.range is None
        object.__setattr__(self, "plain_float", plain)


@dataclass(frozen=True, slots=True)
class ObjectDef:
    """One object: its identity and its resources by ID."""

    id: int
    name: str
    resources: Mapping[int, ResourceDef]
    version: str = "1.0"
    multiple: bool = True
    mandatory: bool = False
    lwm2m_version: str = "1.0"
    urn: str = ""
    description: str = ""
    readable_ids: frozenset[int] = field(init=False, repr=False, compare=False)
    """The IDs of the resources a Read returns: asked for every resource of every instance
    Read, so known once rather than asked of each resource's operations."""

    def __post_init__(self) -> None:
        readable = frozenset(rid for rid, r in self.resources.items() if r.operations.readable)
        object.__setattr__(self, "readable_ids", readable)

    def resource(self, rid: int) -> ResourceDef:
        """The resource ``rid``; NotFound if this object has none by that ID."""
        try:
            return self.resources[rid]
        except KeyError:
            raise NotFound(f"object {self.id} has no resource {rid}") from None


def default_urn(oid: int, version: str = "1.0") -> str:
    """The OMA registry's URN form: ``oma`` below 1024, ``ext`` up to 10240, ``x`` for vendors;
    a version other than 1.0 is appended (``urn:oma:lwm2m:ext:3303:1.1``)."""
    kind = "oma" if oid < 1024 else "ext" if oid <= 10240 else "x"
    suffix = f":{version}" if version != "1.0" else ""
    return f"urn:oma:lwm2m:{kind}:{oid}{suffix}"


def make_object(
    id: int,
    name: str,
    resources: Iterable[ResourceDef],
    *,
    version: str = "1.0",
    multiple: bool = True,
    mandatory: bool = False,
    lwm2m_version: str = "1.0",
    urn: str = "",
    description: str = "",
) -> ObjectDef:
    """Build an ObjectDef from a list of resources (keyed by their IDs).

    The resource map is read-only, since one definition is shared by every ``Definitions`` and tree.
    """
    return ObjectDef(
        id=id,
        name=name,
        resources=MappingProxyType({r.id: r for r in resources}),
        version=version,
        multiple=multiple,
        mandatory=mandatory,
        lwm2m_version=lwm2m_version,
        urn=urn or default_urn(id, version),
        description=description,
    )


@dataclass(slots=True)
class Definitions:
    """Object definitions by object ID.

    Later additions replace earlier ones, so a user's DDF file can override a built-in
    definition (for example a newer object version).
    """

    objects: dict[int, ObjectDef] = field(default_factory=dict)

    def add(self, obj: ObjectDef) -> None:
        self.objects[obj.id] = obj

    def extend(self, objs: Iterable[ObjectDef]) -> None:
        for obj in objs:
            self.add(obj)

    def get(self, oid: int) -> ObjectDef:
        """The definition of object ``oid``; NotFound if none is known."""
        try:
            return self.objects[oid]
        except KeyError:
            raise NotFound(f"object {oid} is not defined") from None

    def resource(self, oid: int, rid: int) -> ResourceDef:
        """The definition of resource ``rid`` of object ``oid``; NotFound if unknown."""
        return self.get(oid).resource(rid)

    def __contains__(self, oid: object) -> bool:
        return oid in self.objects

    def __iter__(self) -> Iterator[ObjectDef]:
        return iter(self.objects.values())

    def __len__(self) -> int:
        return len(self.objects)
