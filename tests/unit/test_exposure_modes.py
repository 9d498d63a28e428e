"""An exposure mode is an object with one interface: nothing outside its factory branches on
which mode it is (DESIGN, Invariants). Branching on the mode's type once scattered one mode's
behaviour over nine places of bridged/app.py, where a new mode or a new operation had to find
them all."""

from __future__ import annotations

import ast
from pathlib import Path

import bridged

FACTORY = "build_exposure"
PACKAGE = Path(bridged.__file__).parent
SOURCES = (PACKAGE, PACKAGE.parent / "objects", PACKAGE.parent / "transports")
"""The installed package's three folders (bridged.objects and bridged.transports live beside)."""


def exposure_classes() -> set[str]:
    """Every class the exposure package defines: the modes and their parts."""
    names = set()
    for source in (PACKAGE / "exposure").glob("*.py"):
        tree = ast.parse(source.read_text(), str(source))
        names |= {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    return names


def type_tests(tree: ast.AST, names: set[str]) -> list[int]:
    """Lines of ``isinstance``/``issubclass`` calls naming one of ``names``, outside the
    factory."""
    found = []

    def visit(node: ast.AST, in_factory: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == FACTORY:
            in_factory = True
        if (
            not in_factory
            and isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("isinstance", "issubclass")
            and len(node.args) == 2
        ):
            named = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
            named |= {n.attr for n in ast.walk(node.args[1]) if isinstance(n, ast.Attribute)}
            if named & names:
                found.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, in_factory)

    visit(tree, False)
    return found


def test_nothing_outside_the_factory_asks_which_mode_it_is() -> None:
    names = exposure_classes()
    assert {"InstancesExposure", "GatewayExposure", "EndpointsExposure"} <= names
    offenders = {
        str(source.relative_to(PACKAGE.parent)): lines
        for root in SOURCES
        for source in sorted(root.rglob("*.py"))
        if (lines := type_tests(ast.parse(source.read_text(), str(source)), names))
    }
    assert offenders == {}


def test_the_guard_sees_a_type_test_outside_the_factory() -> None:
    """The check above would pass on code it cannot read: show it finds what it looks for."""
    code = ast.parse(
        "def build_exposure(e):\n"
        "    return isinstance(e, GatewayExposure)\n"
        "def elsewhere(e):\n"
        "    return isinstance(e, (int, exposure.EndpointsExposure))\n"
    )
    assert type_tests(code, {"GatewayExposure", "EndpointsExposure"}) == [4]
