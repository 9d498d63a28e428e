"""The Write-Attributes a server set, by path, as a tree: what a DELETE drops costs its subtree.

A server's attributes (pmin, pmax, gt, lt, st) are kept per path for the device management and
its observations. A DELETE of an instance drops the attributes at it and below it, and a
Discover shows those of the paths one level below its target (LwM2M Core §5.4.1). Scanning
every path with attributes for either made each delete linear in all attributes the server ever
wrote, and deleting n nodes' instances quadratic; here each path with attributes is linked to
its parent, up to the root, so both cost what the path holds.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import TypeVar, overload

from bridged.objects.linkformat import Attributes
from bridged.objects.paths import ROOT, Path

T = TypeVar("T")


def _above(path: Path) -> Path | None:
    """The path ``path`` hangs from in the tree: its parent; an end device's root hangs from
    the bare root, which contains every path (``Path.contains``); the bare root from none."""
    if path.ids:
        return path.parent
    return None if path.prefix is None else ROOT


class AttributeMap(MutableMapping[Path, Attributes]):
    """Attributes by path, with each path's children that have attributes at or below them."""

    def __init__(self) -> None:
        self._own: dict[Path, Attributes] = {}
        self._below: dict[Path, set[Path]] = {}
        """A path -> its children with attributes at or below them (kept only while some)."""

    def __getitem__(self, path: Path) -> Attributes:
        return self._own[path]

    @overload
    def get(self, path: Path, /) -> Attributes | None: ...
    @overload
    def get(self, path: Path, /, default: Attributes | T) -> Attributes | T: ...

    def get(self, path: Path, /, default: object = None) -> object:
        # The mixin's goes through __getitem__ and an exception for every miss; observations
        # ask along each path's chain for every policy they compute.
        return self._own.get(path, default)

    def __contains__(self, path: object) -> bool:
        return path in self._own

    def __setitem__(self, path: Path, attributes: Attributes) -> None:
        if path not in self._own:
            self._link(path)
        self._own[path] = attributes

    def __delitem__(self, path: Path) -> None:
        del self._own[path]
        self._unlink(path)

    def __iter__(self) -> Iterator[Path]:
        return iter(self._own)

    def __len__(self) -> int:
        return len(self._own)

    def children(self, path: Path) -> dict[Path, Attributes]:
        """The attributes of the paths one level below ``path`` that have some."""
        own = self._own
        return {c: own[c] for c in self._below.get(path, ()) if c in own}

    def forget(self, path: Path) -> None:
        """Drop the attributes of ``path`` and of every path below it."""
        stack = [path]
        while stack:
            p = stack.pop()
            self._own.pop(p, None)
            stack.extend(self._below.pop(p, ()))
        self._unlink(path)

    def _link(self, path: Path) -> None:
        child, parent = path, _above(path)
        while parent is not None:
            children = self._below.setdefault(parent, set())
            if child in children:
                return  # linked from here up already
            children.add(child)
            child, parent = parent, _above(parent)

    def _unlink(self, path: Path) -> None:
        """Unlink ``path`` from its parent, and each ancestor left without attributes at or
        below it from its own."""
        child, parent = path, _above(path)
        while parent is not None and child not in self._own and not self._below.get(child):
            children = self._below.get(parent)
            if children is None:
                return
            children.discard(child)
            if children:
                return
            del self._below[parent]
            child, parent = parent, _above(parent)
