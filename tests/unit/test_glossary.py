"""One meaning per name: the code follows the glossary of docs/architecture.md.

"registry", "endpoint", "device" and "transport" each carried two or three meanings (the node
registry and the object definitions; a LwM2M registration and the CoAP socket toward a server;
the Device object, an end device and a node; a radio adapter and aiocoap's message layer). The
second meanings have names of their own now; this guard keeps their old spellings out of the
code, and keeps the words that stay on the one type they mean where a name is annotated."""

from __future__ import annotations

import ast
from pathlib import Path

import bridged

PACKAGE = Path(bridged.__file__).parent
SOURCES = (PACKAGE, PACKAGE.parent / "objects", PACKAGE.parent / "transports")

RETIRED = {
    "Registry": "Definitions (the object definitions; the node registry is NodeRegistry)",
    "builtin_registry": "builtin_definitions",
    "Endpoint": "Uplink (the CoAP socket toward a server; an endpoint is a registration)",
    "UdpEndpoint": "UdpUplink",
    "DtlsPskEndpoint": "DtlsPskUplink",
    "append_transport": "append_message_interface (a transport is a radio adapter)",
    "append_coap_transport": "append_message_interface",
    "CoapTransportHelper": "MessageInterfaceHelper",
    "devices": "end_devices (a node behind a prefix is an end device)",
    "device_tree": "end_device_tree (device.py's device tree is Linux's)",
}
"""A spelling that had a second meaning, and what that meaning is called now."""

ANNOTATED = {
    "registry": "NodeRegistry",
    "definitions": "Definitions",
    "endpoint": "str",
    "end_devices": "EndDevices",
}
"""A name that keeps one meaning, and the type it has wherever it is annotated."""


def identifiers(tree: ast.AST) -> list[tuple[int, str]]:
    """Every name the code defines or uses: names, attributes, parameters, functions, classes
    and imported names (not strings, comments or docstrings)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.arg):
            found.append((node.lineno, node.arg))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.append((node.lineno, node.name))
        elif isinstance(node, ast.alias):
            found.append((node.lineno, (node.asname or node.name).rsplit(".", 1)[-1]))
    return found


def annotations(tree: ast.AST) -> list[tuple[int, str, str]]:
    """(line, name, the annotation's text) of each annotated parameter, attribute or variable."""
    found: list[tuple[int, str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            found.append((node.lineno, node.arg, ast.unparse(node.annotation)))
        elif isinstance(node, ast.AnnAssign):
            target = node.target
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            found.append((node.lineno, name, ast.unparse(node.annotation)))
    return found


def offences(source: str, name: str = "<test>") -> list[str]:
    tree = ast.parse(source, name)
    found = [
        f"{name}:{line}: {word} -> {RETIRED[word]}"
        for line, word in identifiers(tree)
        if word in RETIRED
    ]
    found += [
        f"{name}:{line}: {word}: {annotation}, not {ANNOTATED[word]}"
        for line, word, annotation in annotations(tree)
        if word in ANNOTATED and ANNOTATED[word] not in annotation
    ]
    return found


def test_each_name_has_one_meaning() -> None:
    found = [
        offence
        for root in SOURCES
        if root.is_dir()
        for source in sorted(root.rglob("*.py"))
        for offence in offences(source.read_text(), str(source.relative_to(root.parent)))
    ]
    assert found == []


def test_the_guard_sees_each_kind_of_second_meaning() -> None:
    source = (
        "from bridged.objects.definitions import Registry\n"
        "def serve(registry: Definitions, endpoint: Uplink) -> None:\n"
        "    tree = ObjectTree(registry)\n"
        "    session.devices.device_tree('dev1')\n"
        "class C:\n"
        "    definitions: NodeRegistry\n"
    )
    assert sorted(offence.split(": ", 1)[1] for offence in offences(source)) == sorted(
        [
            f"Registry -> {RETIRED['Registry']}",
            f"devices -> {RETIRED['devices']}",
            f"device_tree -> {RETIRED['device_tree']}",
            "registry: Definitions, not NodeRegistry",
            "endpoint: Uplink, not str",
            "definitions: NodeRegistry, not Definitions",
        ]
    )
