"""LwM2M paths: /O, /O/I, /O/I/R and /O/I/R/RI, with an optional gateway prefix.

A path is a value (hashable, ordered) so that it can key observations, attributes and the
tree. The prefix is the LwM2M Gateway's end-device prefix (``/dev3/3303/0/5700``): it is the
first segment and is never all digits, so it cannot be mistaken for an object ID.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from .errors import PathError

MAX_ID = 65534
"""IDs are 16-bit; 65535 is reserved."""

PARSED = 1024
"""Texts whose parsed path is kept (``Path.parse``); all are forgotten when that many are
kept, which bounds the memory whatever names come."""

_PREFIX_RE = re.compile(r"[A-Za-z0-9_.~-]*[A-Za-z_.~-][A-Za-z0-9_.~-]*")


class Level(IntEnum):
    """How deep a path reaches."""

    ROOT = 0
    OBJECT = 1
    INSTANCE = 2
    RESOURCE = 3
    RESOURCE_INSTANCE = 4


@dataclass(frozen=True, slots=True)
class Path:
    """A parsed LwM2M path. ``ids`` holds 0 to 4 IDs; ``prefix`` the end-device prefix."""

    ids: tuple[int, ...] = ()
    prefix: str | None = None

    def __post_init__(self) -> None:
        if len(self.ids) > 4:
            raise PathError(f"a path has at most 4 IDs, got {len(self.ids)}")
        for i in self.ids:
            if type(i) is not int or not 0 <= i <= MAX_ID:
                raise PathError(f"path ID {i!r} is outside 0..{MAX_ID}")
        if self.prefix is not None and not is_prefix(self.prefix):
            raise PathError(f"{self.prefix!r} is not a valid end-device prefix")

    @classmethod
    def parse(cls, text: str) -> Path:
        """Parse ``/3/0/1``, ``3/0/1``, ``/`` or ``/dev3/3303/0``; raise PathError if invalid.

        The paths parsed last are kept (``PARSED``): a node names the same few resources in
        every report, and a path is a value, so the one parsed before is the answer."""
        if not isinstance(text, str):
            raise PathError(f"a path must be text, not {type(text).__name__}")
        path = _parsed.get(text)
        if path is not None:
            return path
        body = text[1:] if text.startswith("/") else text
        if body.endswith("/"):
            body = body[:-1]
        path = cls.from_segments(body.split("/")) if body else ROOT
        if len(_parsed) >= PARSED:
            _parsed.clear()
        _parsed[text] = path
        return path

    @classmethod
    def from_segments(cls, segments: Sequence[str]) -> Path:
        """Build a path from URI-Path segments, as CoAP delivers them."""
        prefix: str | None = None
        rest: Sequence[str] = segments
        if rest and not rest[0].isdigit():
            prefix, rest = rest[0], rest[1:]
        ids: list[int] = []
        for seg in rest:
            if not seg.isascii() or not seg.isdigit() or (len(seg) > 1 and seg[0] == "0"):
                raise PathError(f"path segment {seg!r} is not an ID")
            ids.append(int(seg))
        return cls(tuple(ids), prefix)

    @classmethod
    def derived(cls, ids: tuple[int, ...], prefix: str | None = None) -> Path:
        """A path of ``ids`` taken from paths already validated (a parent's, a mapping's), at
        most 4 of them: built without checking them again, as the hot path of every reading
        builds several."""
        path = _new(cls)
        _set_ids(path, ids)
        _set_prefix(path, prefix)
        return path

    @property
    def level(self) -> Level:
        # An index, not ``Level(n)``: the enum's lookup costs a call per use, and every
        # reading asks several times.
        return _LEVELS[len(self.ids)]

    @property
    def object_id(self) -> int | None:
        return self.ids[0] if len(self.ids) > 0 else None

    @property
    def instance_id(self) -> int | None:
        return self.ids[1] if len(self.ids) > 1 else None

    @property
    def resource_id(self) -> int | None:
        return self.ids[2] if len(self.ids) > 2 else None

    @property
    def resource_instance_id(self) -> int | None:
        return self.ids[3] if len(self.ids) > 3 else None

    def child(self, id_: int) -> Path:
        """The path one level down."""
        return Path((*self.ids, id_), self.prefix)

    @property
    def parent(self) -> Path:
        """The path one level up (the root's parent is the root)."""
        return Path.derived(self.ids[:-1], self.prefix)

    def truncate(self, level: Level) -> Path:
        """This path cut to ``level`` IDs."""
        return Path.derived(self.ids[: int(level)], self.prefix)

    def contains(self, other: Path) -> bool:
        """True if ``other`` is this path or below it.

        The bare root ``/`` contains every path, end-device paths included, because composite
        operations address the gateway and its end devices together; ``/dev0`` contains only
        paths with that prefix.
        """
        if self.prefix is None:
            if not self.ids:
                return True
            if other.prefix is not None:
                return False
        elif other.prefix != self.prefix:
            return False
        return other.ids[: len(self.ids)] == self.ids

    def without_prefix(self) -> Path:
        return Path.derived(self.ids) if self.prefix is not None else self

    def with_prefix(self, prefix: str | None) -> Path:
        return Path(self.ids, prefix)

    def segments(self) -> list[str]:
        """URI-Path segments for CoAP."""
        segs = [str(i) for i in self.ids]
        return [self.prefix, *segs] if self.prefix is not None else segs

    def sort_key(self) -> tuple[str, tuple[int, ...]]:
        return (self.prefix or "", self.ids)

    def __hash__(self) -> int:
        # The IDs' hash for a path without a prefix (nearly every path hashed: a node's known
        # values are keyed by its reading's path, one hash a reading), not that of a tuple made
        # of both fields with the prefix's None: no tuple is made. A Python call still, which a
        # cached hash (a slot more on every path, against the memory goal) or a tuple base
        # (every field read a descriptor's call, a dozen a reading) would have avoided at more
        # cost than it saves. Equal paths hash the same: the dataclass's __eq__ compares both.
        ids = self.ids
        return hash(ids) if self.prefix is None else hash((ids, self.prefix))

    def __lt__(self, other: Path) -> bool:
        return self.sort_key() < other.sort_key()

    def __str__(self) -> str:
        # One formatting of the IDs (ints, validated): every stored reading and every record
        # of a Send is named so, and a join of their str() took twice the instructions.
        text = _TEXT[len(self.ids)] % self.ids
        if self.prefix is None:
            return text
        return f"/{self.prefix}{text}" if self.ids else f"/{self.prefix}"

    def __repr__(self) -> str:
        return f"Path({str(self)!r})"


_TEXT = ("/", "/%d", "/%d/%d", "/%d/%d/%d", "/%d/%d/%d/%d")
"""``Path.__str__``'s format for each number of IDs."""

ROOT = Path()
_parsed: dict[str, Path] = {}
_new = object.__new__
# The slots' own setters, which a frozen dataclass's __setattr__ does not guard: what
# ``Path.derived`` sets a path's fields with, without looking their names up per path.
_set_ids = Path.__dict__["ids"].__set__
_set_prefix = Path.__dict__["prefix"].__set__
_LEVELS = tuple(Level)


def is_prefix(segment: str) -> bool:
    """True if ``segment`` can be an end-device prefix: URI-safe and not all digits."""
    return bool(_PREFIX_RE.fullmatch(segment))


def parse_paths(texts: Iterable[str]) -> list[Path]:
    """Parse several paths, as a composite request lists them."""
    return [Path.parse(t) for t in texts]
