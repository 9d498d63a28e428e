"""The store owns every SQL statement: a table's statements are in one module of
bridged/store/, so that a schema change is one module's and a statement that reads
a table is next to the ones that write it. The commands table's statements once lived in the
queue that applies commands, and the watchdog's write in the gateway's wiring."""

from __future__ import annotations

import ast
from pathlib import Path

import bridged

PACKAGE = Path(bridged.__file__).parent
STORE = PACKAGE / "store"
SOURCES = (PACKAGE, PACKAGE.parent / "objects", PACKAGE.parent / "transports")
EXECUTES = frozenset({"execute", "executemany", "executescript"})


def sql_calls(tree: ast.AST) -> list[int]:
    """Lines that hand a statement written in place (a string) to a database cursor."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in EXECUTES
        and node.args
        and isinstance(node.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp))
        and not (isinstance(node.args[0], ast.Constant) and not isinstance(node.args[0].value, str))
    ]


def test_no_sql_outside_the_store() -> None:
    offenders = {
        str(source): lines
        for root in SOURCES
        if root.is_dir()
        for source in sorted(root.rglob("*.py"))
        if STORE not in source.parents
        if (lines := sql_calls(ast.parse(source.read_text(), str(source))))
    }
    assert offenders == {}


def test_the_guard_sees_a_statement() -> None:
    code = ast.parse(
        "conn.execute('SELECT 1')\n"
        "conn.executemany(f'UPDATE t SET a = {x}', rows)\n"
        "tree.execute(path, '')\n"
        "transport.execute(node, path, arguments)\n"
    )
    assert sql_calls(code) == [1, 2]
