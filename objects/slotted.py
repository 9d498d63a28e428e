"""A quicker ``__init__`` for the frozen, slotted dataclasses every report makes several of.

A frozen dataclass's own ``__init__`` sets each field through ``object.__setattr__`` by name
(its class's ``__setattr__`` refuses), which looks the name up along the class's MRO for every
field of every instance: a transport's ``NodeState`` (nine fields) cost a microsecond to make,
and each report makes a ``Heard`` and a ``NodeState``.
``quick_init`` gives such a class an ``__init__`` of the same signature that sets each field
through its slot's own setter, found once, as ``Record`` does by hand.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """Replace the ``__init__`` of ``cls`` (a ``@dataclass(frozen=True, slots=True)`` whose
    fields are all set by ``__init__``, with plain defaults, and no ``__post_init__``) by one
    that sets its slots directly."""
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__: quick_init would skip it")
    scope: dict[str, Any] = {}
    params, lines = [], []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: quick_init takes plain fields only")
        scope[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            scope[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        lines.append(f"    _set_{f.name}(self, {f.name})")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(lines) + "\n"
    exec(source, scope)  # as dataclasses makes its own __init__
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    type.__setattr__(cls, "__init__", init)
    return cls
