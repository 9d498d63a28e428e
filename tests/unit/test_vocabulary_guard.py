"""No LwM2M ID literal outside the vocabulary (``objects/ids.py``): an object or resource ID
the code uses is named once and imported, so a reader finds every use of "the battery level"
by its name and a mistyped ID cannot hide in one module.

The walk reads the AST of every module of bridged/, objects/, transports/ and demo/ and
reports ``file:line`` for:

1. **Path-like text**: a string literal (docstrings and comments are prose, not read) that
   is a LwM2M path (``"/3/0/9"``, ``"/25"``), or an f-string whose literal part starts one
   (``f"/3/0/{rid}"``).
2. **Integers where IDs go**, a small set of places where an integer can only be an object or
   resource ID (instance IDs — position 1 of a path — are not vocabulary and are not read):
   - the object (first) and resource (third) element of a tuple literal given to a call
     named ``Path`` / ``LwM2MPath`` (``Path((3, 0, 9))``);
   - the object ID (and resource ID) argument of the object model's calls that take one
     (``ID_ARGUMENTS``: ``tree.instance_ids(2)``, ``definitions.resource(3, 9)``);
   - a keyword argument named for an ID (``object_id=3``, ``rid=9``);
   - a comparison (``==``, ``!=``, ``in``, ``not in``) of an ID expression — a name or
     attribute called ``object_id``/``resource_id``/``oid``/``rid``, or ``ids[0]``/``ids[2]``
     of a path, or ``ids[:n]`` against a tuple — with integer literals.
3. **A module's own ID constant**: a module-level ``NAME = <int>`` whose name the same
   module then uses in one of the places of rule 2 (``DEVICE = 3`` ... ``Path((DEVICE, 0))``),
   i.e. an ID restated under a local name.

The rules look only at positions that are IDs by construction, so an integer elsewhere (a
port, a length, a CoAP code) is never reported. Files not walked are ``EXEMPT``, each with
its reason.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_control import params_error

ROOT = Path(__file__).resolve().parents[2]
WALKED = ("bridged", "objects", "transports", "demo")

EXEMPT = {
    "objects/ids.py": "the vocabulary itself: where the IDs are named",
    "objects/builtin.py": "the built-in definition tables: each ID there is the definition",
    "objects/formats": "the codecs: wire formats, their IDs are whatever the payload says",
    "transports/ble/bthome.py": "a BTHome decoder: its 'object IDs' are BTHome's, not LwM2M's",
}

PATH_TEXT = re.compile(r"/\d+(/\d+){0,3}/?")
PATH_START = re.compile(r"/\d+(/\d+)*/")
PATH_CALLS = {"Path", "LwM2MPath"}
ID_NAMES = {"object_id", "resource_id", "oid", "rid"}
ID_ARGUMENTS: dict[str, tuple[int, ...]] = {
    "instance_ids": (0,),
    "free_instance_id": (0,),
    "add_object": (0,),
    "remove_object": (0,),
    "delete_instance": (0,),
    "governing": (0,),
    "constrain": (0, 1),
    "on_execute": (0, 1),
    "resource": (0, 1),
    "create_instance": (0,),
    "Target": (0, 1),
}
"""Calls whose argument at each position is an object (or resource) ID."""
RESOURCE_PAIRS = {"create_instance": 2}
"""Calls whose argument at that position lists ``(resource ID, value)`` pairs."""
ID_POSITIONS_IN_PATH = (0, 2)


def exempt(relative: str) -> bool:
    return any(relative == e or relative.startswith(e + "/") for e in EXEMPT)


def walked_files() -> list[Path]:
    return sorted(
        path
        for top in WALKED
        for path in (ROOT / top).rglob("*.py")
        if not exempt(path.relative_to(ROOT).as_posix())
    )


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            for i, statement in enumerate(body):
                # The first statement's string, and the attribute docstrings after assignments.
                if (
                    isinstance(statement, ast.Expr)
                    and isinstance(statement.value, ast.Constant)
                    and isinstance(statement.value.value, str)
                    and (i == 0 or isinstance(body[i - 1], (ast.Assign, ast.AnnAssign)))
                ):
                    out.add(id(statement.value))
    return out


def _path_ids(node: ast.expr, positions: tuple[int, ...]) -> Iterator[ast.expr]:
    """The elements of a tuple literal at ID positions."""
    if isinstance(node, (ast.Tuple, ast.List)):
        for i, element in enumerate(node.elts):
            if isinstance(element, ast.Starred):
                return
            if i in positions:
                yield element


def _id_expression(node: ast.expr) -> tuple[int, ...] | None:
    """The ID positions ``node`` stands for: () for a single ID, the positions of a slice of a
    path's ``ids``; None when it is no ID expression."""
    if _name(node) in ID_NAMES:
        return ()
    if isinstance(node, ast.Attribute) and node.attr == "ids":
        return ID_POSITIONS_IN_PATH
    if isinstance(node, ast.Subscript) and _name(node.value) == "ids":
        index = node.slice
        if isinstance(index, ast.Constant) and index.value in ID_POSITIONS_IN_PATH:
            return ()
        if isinstance(index, ast.Slice) and index.lower is None and index.step is None:
            return ID_POSITIONS_IN_PATH
    return None


def _compared(positions: tuple[int, ...], other: ast.expr) -> Iterator[ast.expr]:
    if positions:
        yield from _path_ids(other, positions)
        if isinstance(other, (ast.Tuple, ast.List, ast.Set)):
            for element in other.elts:
                yield from _path_ids(element, positions)
    elif isinstance(other, (ast.Tuple, ast.List, ast.Set)):
        yield from other.elts
    else:
        yield other


def id_places(tree: ast.AST) -> Iterator[ast.expr]:
    """Every expression in a place that only an object or resource ID can fill (rule 2)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called = _name(node.func)
            if called in PATH_CALLS and node.args:
                yield from _path_ids(node.args[0], ID_POSITIONS_IN_PATH)
            for i in ID_ARGUMENTS.get(called or "", ()):
                if i < len(node.args):
                    yield node.args[i]
            pairs = RESOURCE_PAIRS.get(called or "")
            if pairs is not None and pairs < len(node.args):
                argument = node.args[pairs]
                if isinstance(argument, (ast.Tuple, ast.List)):
                    for pair in argument.elts:
                        yield from _path_ids(pair, (0,))
            for keyword in node.keywords:
                if keyword.arg in ID_NAMES:
                    yield keyword.value
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
                if not isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)):
                    continue
                for one, other in ((left, right), (right, left)):
                    positions = _id_expression(one)
                    if positions is not None:
                        yield from _compared(positions, other)


def _is_int(node: ast.expr) -> bool:
    return (isinstance(node, ast.Constant) and type(node.value) is int) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant)
    )


def findings(source: str) -> list[tuple[int, str]]:
    """(line, what) for each ID literal in ``source``."""
    tree = ast.parse(source)
    out: list[tuple[int, str]] = []
    prose = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            first = node.values[0] if node.values else None
            if isinstance(first, ast.Constant) and PATH_START.match(str(first.value)):
                out.append((node.lineno, f"path text f{first.value!r}..."))
            prose.update(id(v) for v in node.values)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in prose
            and PATH_TEXT.fullmatch(node.value)
        ):
            out.append((node.lineno, f"path text {node.value!r}"))
    places = list(id_places(tree))
    out += [(p.lineno, f"ID literal {ast.unparse(p)}") for p in places if _is_int(p)]
    used = {p.id for p in places if isinstance(p, ast.Name)}
    assert isinstance(tree, ast.Module)
    for statement in tree.body:
        for name, value in _constants(statement):
            if _is_int(value) and (name in used or (name, _int(value)) in VOCABULARY):
                out.append((statement.lineno, f"ID constant {name} restated here"))
    return sorted(set(out))


def _constants(statement: ast.stmt) -> Iterator[tuple[str, ast.expr]]:
    """(name, value) of each module-level assignment, ``A, B = 1, 2`` included."""
    if isinstance(statement, ast.Assign):
        targets, value = statement.targets, statement.value
    elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
        targets, value = [statement.target], statement.value
    else:
        return
    for target in targets:
        if isinstance(target, ast.Name):
            yield target.id, value
        elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
            for name, element in zip(target.elts, value.elts, strict=False):
                if isinstance(name, ast.Name):
                    yield name.id, element


def _int(node: ast.expr) -> int:
    value = ast.literal_eval(node)
    assert isinstance(value, int)
    return value


SPOKEN = {"Acl": ("ACCESS_CONTROL",), "LwM2MGateway": ("GATEWAY",)}
"""How code spells the objects whose vocabulary class has a shorter or longer name."""


def _vocabulary() -> set[tuple[str, int]]:
    """(name, ID) of every name in the vocabulary, prefixed with its object's name too
    (``BATTERY_LEVEL`` and ``DEVICE_BATTERY_LEVEL``); ``OBJECT`` as the object's name
    (``DEVICE``, ``GATEWAY_OBJECT``)."""
    from bridged.objects import ids

    out: set[tuple[str, int]] = set()
    for group_name, group in vars(ids).items():
        if isinstance(group, type) and group.__module__ == ids.__name__:
            uppers = {re.sub(r"(?<!^)(?=[A-Z])", "_", group_name).upper()}
            uppers |= set(SPOKEN.get(group_name, ()))
            for name, value in vars(group).items():
                if isinstance(value, int) and name.isupper():
                    for upper in uppers:
                        if name == "OBJECT":
                            out |= {(upper, value), (f"{upper}_OBJECT", value)}
                        else:
                            out |= {(name, value), (f"{upper}_{name}", value)}
        elif isinstance(group, int) and group_name.isupper() and group_name != "SINGLE":
            out.add((group_name, group))
    return out


VOCABULARY = _vocabulary()


def test_no_lwm2m_id_literal_outside_the_vocabulary() -> None:
    files = walked_files()
    assert len(files) > 80  # the walk sees the packages
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in files
        for line, what in findings(path.read_text())
    ]
    assert not found, "LwM2M IDs written as literals (name them in objects/ids.py):\n" + "\n".join(
        found
    )


def test_every_exempt_entry_exists() -> None:
    for relative in EXEMPT:
        assert (ROOT / relative).exists(), relative


def test_the_walk_finds_each_kind_of_literal() -> None:
    source = '''
"""A docstring mentions /3/0/9 and "/3/0/9"; prose is not read."""
DEVICE = 3
PORT = 5683
BATTERY = Path((3, 0, 9))
a = "/3/0/9"
b = f"/3/0/{rid}"
c = LwM2MPath((DEVICE, 0))
if path.ids[0] == 25 or record.path.ids[:2] == (5, 0) or rid in (9, 11):
    tree.instance_ids(2)
Record(Path((oid, 0, 5700)), 1)
lookup(object_id=1)
fine = (path.ids[1] == 0, len(ids) == 3, port == 5683, "/dev3", "a/1", Path((X, 0, Y)))
'''
    lines = {line: what for line, what in findings(source)}
    assert lines == {
        3: "ID constant DEVICE restated here",
        5: "ID literal 9",
        6: "path text '/3/0/9'",
        7: "path text f'/3/0/'...",
        9: "ID literal 9",  # the last of line 9's four
        10: "ID literal 2",
        11: "ID literal 5700",
        12: "ID literal 1",
    }
    assert sorted(what for line, what in findings(source) if line == 9) == [
        "ID literal 11",
        "ID literal 25",
        "ID literal 5",
        "ID literal 9",
    ]
    assert sorted(what for line, what in findings(source) if line == 5) == [
        "ID literal 3",
        "ID literal 9",
    ]


def test_the_walk_finds_restated_names_and_instance_values() -> None:
    source = (
        "GATEWAY_OBJECT, MUTE_SEND = 25, 23\n"
        "UNRELATED = 25\n"
        "tree.create_instance(FIRMWARE, 0, [(1, ''), (STATE, 0)])\n"
        "if path.ids == (3, 0) or path.ids[::2] == (A, 7):\n"
        "    pass\n"
    )
    assert findings(source) == [
        (1, "ID constant GATEWAY_OBJECT restated here"),
        (1, "ID constant MUTE_SEND restated here"),
        (3, "ID literal 1"),
        (4, "ID literal 3"),
    ]


# -- one place for each domain rule -----------------------------------------------------------


def test_the_bind_key_length_has_one_owner() -> None:
    """The BLE pairing declaration (which bridgectl and the gateway check a key against) and
    the BTHome cipher both take the length from ``ble/pairing.BINDKEY_LENGTH``."""
    from bridged.transports.ble import bthome, pairing

    assert pairing.BINDKEY.size == pairing.BINDKEY_LENGTH
    assert bthome.BINDKEY_LENGTH is pairing.BINDKEY_LENGTH
    assert pairing.BINDKEY.check_hex("ab" * pairing.BINDKEY_LENGTH)
    with pytest.raises(ValueError, match=f"{pairing.BINDKEY_LENGTH} bytes"):
        pairing.BINDKEY.check_hex("ab" * (pairing.BINDKEY_LENGTH - 1))
    bthome.cipher(bytes(pairing.BINDKEY_LENGTH))
    with pytest.raises(Exception, match=f"{pairing.BINDKEY_LENGTH} bytes"):
        bthome.cipher(bytes(pairing.BINDKEY_LENGTH // 2))


def test_the_short_server_id_range_has_one_owner() -> None:
    """The built-in /0 and /1 definitions, the access check and the control socket say the
    same range, from ``ids.SSID_RANGE``."""
    from bridged.control import ProtocolError
    from bridged.engine.access import check_server_id
    from bridged.objects.builtin import builtin_definitions
    from bridged.objects.ids import SSID_RANGE, Security, Server

    definitions = builtin_definitions()
    for oid, rid in ((Server.OBJECT, Server.SSID), (Security.OBJECT, Security.SSID)):
        bounds = definitions.resource(oid, rid).range
        assert bounds is not None
        assert (bounds.low, bounds.high) == (SSID_RANGE.start, SSID_RANGE.stop - 1)
    for ssid in (0, SSID_RANGE.stop):
        with pytest.raises(ValueError) as refused:
            check_server_id(ssid)
        error = params_error({"server": ssid}, "server")
        assert isinstance(error, ProtocolError)
        assert error.message == f"params.server: {refused.value}"


def test_format_capabilities_are_said_by_each_codec() -> None:
    """What a format can carry is its codec's to say, and nowhere else: it is composite when
    its codec carries path lists, it carries time when its codec says ``timed``, and the
    engine asks through ``objects.formats`` (no restated format sets)."""
    from bridged.engine import observe, series
    from bridged.objects import formats

    for cf in formats.ContentFormat:
        if cf.module is None:
            continue
        codec = formats.codec_for(cf)
        assert isinstance(codec, formats.CompositeCodec) is hasattr(codec, "encode_paths"), cf
        assert formats.carries_time(cf) is codec.timed, cf
    assert not hasattr(series, "TIMED_FORMATS") and not hasattr(formats, "COMPOSITE_FORMATS")
    assert observe.carries_time is formats.carries_time
