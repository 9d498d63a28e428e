"""``quick_init`` (objects/slotted.py): the same instances as the dataclass's own ``__init__``,
made through the slots' setters."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from bridged.objects.slotted import quick_init
from bridged.transports.base import Heard, NodeState
from bridged.transports.nodes import NodeId


@dataclasses.dataclass(frozen=True, slots=True)
class Plain:
    a: int
    b: str = "b"
    c: tuple[int, ...] = ()


Quick = quick_init(
    dataclasses.make_dataclass(
        "Quick", [("a", int), ("b", str, "b"), ("c", tuple, ())], frozen=True, slots=True
    )
)


def test_it_makes_what_the_dataclass_makes_and_stays_frozen() -> None:
    def shape(cls: type) -> list[tuple[str, object]]:
        return [(p.name, p.default) for p in inspect.signature(cls.__init__).parameters.values()]

    assert shape(Quick) == shape(Plain)
    made = Quick(1, c=(2,))
    assert (made.a, made.b, made.c) == (1, "b", (2,))
    assert made == Quick(1, "b", (2,)) and hash(made) == hash(Quick(1, "b", (2,)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.a = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Quick()  # type: ignore[call-arg]


def test_the_transport_contracts_values_are_made_as_before() -> None:
    node = NodeId("sim", "0001")
    state = NodeState(True, 1.0, rssi=-60, expect=300.0)
    assert dataclasses.asdict(state) == {
        "reachable": True,
        "time": 1.0,
        "rssi": -60,
        "lqi": None,
        "battery": None,
        "sleepy": False,
        "decrypt_failures": 0,
        "problem": None,
        "expect": 300.0,
    }
    assert Heard(node, 2.0, rssi=-70) == Heard(node, 2.0, None, -70, None, (), False)


def test_a_class_it_would_not_make_whole_is_refused() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = dataclasses.field(default_factory=list)

    for cls in (Checked, Factory):
        with pytest.raises(TypeError):
            quick_init(cls)
