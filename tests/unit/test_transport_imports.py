"""Transports depend on the contract only: what they import of the gateway is the contract
(``bridged.transports``: ``base.py``, ``nodes.py``), the object model (``bridged.objects``) and
the asyncio helpers every layer shares (``bridged.aio``, a leaf), never the store, the engine or
the rest of the core, so a new transport can be written, and an old one kept, without knowing
the gateway's internals."""

from __future__ import annotations

import ast
from pathlib import Path

TRANSPORTS = Path(__file__).resolve().parents[2] / "transports"
ALLOWED = ("bridged.objects", "bridged.transports", "bridged.aio")
AIO = TRANSPORTS.parent / "bridged" / "aio.py"


def package_of(path: Path) -> str:
    """The package a file under transports/ is in, as installed (``bridged.transports...``)."""
    parts = path.relative_to(TRANSPORTS.parent).parent.parts
    return ".".join(("bridged", *parts))


def imported(source: str, package: str) -> list[tuple[int, str]]:
    """Every module ``source`` (a module of ``package``) imports, at any depth (imports inside
    functions too), relative imports resolved, each with its line."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(filter(None, [*base, name]))
            out.append((node.lineno, name))
    return out


def internal(name: str) -> bool:
    return name.partition(".")[0] == "bridged" and not name.startswith(ALLOWED)


def test_no_transport_imports_the_store_the_engine_or_the_core() -> None:
    files = sorted(TRANSPORTS.rglob("*.py"))
    assert len(files) > 20  # the walk sees the transports
    found = [
        f"{path.relative_to(TRANSPORTS.parent)}:{line}: {name}"
        for path in files
        for line, name in imported(path.read_text(), package_of(path))
        if internal(name)
    ]
    assert not found, "transports import gateway internals:\n" + "\n".join(found)


def test_the_walk_finds_internal_imports_however_written() -> None:
    source = (
        "from ..base import Transport\n"
        "import bridged.store.nodes\n"
        "def later():\n"
        "    from ...engine.coap import append_message_interface\n"
    )
    names = [name for _, name in imported(source, "bridged.transports.ieee802154")]
    assert names == ["bridged.transports.base", "bridged.store.nodes", "bridged.engine.coap"]
    assert [internal(n) for n in names] == [False, True, True]


def test_the_shared_helpers_import_nothing_of_the_gateway() -> None:
    """What transports may import beside the contract stays a leaf: it cannot pull the core in."""
    names = [name for _, name in imported(AIO.read_text(), "bridged")]
    assert names and not [n for n in names if n.partition(".")[0] == "bridged"]
