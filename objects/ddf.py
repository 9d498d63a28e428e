"""Object definitions from OMA DDF XML files, as the OMA LwM2M registry publishes them.

A user drops DDF files in a directory to teach the gateway objects it has no built-in
definition for, or a newer version of one it has. Both schema variants are read (LWM2M.xsd and
LWM2M-v1_1.xsd, which adds ObjectVersion and LWM2MVersion).

The files come from outside the daemon, so parsing is defensive: a document type declaration
is refused before expat expands anything (no entity expansion, no external fetches), and every
problem is a ``DefinitionError`` naming the file and the object or resource at fault, so that
one bad file stops start-up with a message that says what to fix instead of a traceback.

Leniency follows meaning: whitespace and letter case around keywords ("unsigned  integer",
"r w", " Single ") are forgiven because they cannot mean anything else; an unknown type,
a missing ID or a duplicate resource is an error because any guess could be wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from xml.etree.ElementTree import Element, TreeBuilder
from xml.parsers import expat

from .definitions import (
    ObjectDef,
    Operations,
    ResourceDef,
    ResourceType,
    ValueRange,
    make_object,
)
from .paths import MAX_ID

MAX_DDF_SIZE = 4 * 1024 * 1024
"""Bytes a DDF file may have; the largest OMA registry object file is about 35 KB."""

_ID_RE = re.compile(r"[0-9]{1,5}")
_VERSION_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}")
_TYPES: Mapping[str, ResourceType] = MappingProxyType(
    {t.value.lower(): t for t in ResourceType} | {"": ResourceType.NONE}
)
_OPERATIONS: Mapping[str, Operations] = MappingProxyType(
    {
        "": Operations.NONE,
        "R": Operations.R,
        "W": Operations.W,
        "RW": Operations.RW,
        "WR": Operations.RW,
        "E": Operations.E,
    }
)


class DefinitionError(ValueError):
    """A DDF document that does not define objects as the LwM2M schema says.

    The message starts with the source (the file name) and the object or resource at fault.
    """


def parse_ddf(data: bytes, source: str = "<bytes>") -> list[ObjectDef]:
    """The objects a DDF document defines, in document order.

    ``source`` names the document in error messages. An ``<Object>`` of ObjectType
    "CommonResources" (the OMA registry's reusable-resource list) defines no object and is skipped.
    """
    root = _parse_xml(data, source)
    if _local(root.tag) != "LWM2M":
        raise DefinitionError(f"{source}: root element is <{root.tag}>, not <LWM2M>")
    objects: list[ObjectDef] = []
    seen: set[int] = set()
    for elem in root:
        if _local(elem.tag) != "Object" or elem.get("ObjectType") == "CommonResources":
            continue
        obj = _object(elem, source)
        if obj.id in seen:
            raise DefinitionError(f"{source}: object {obj.id} is defined twice")
        seen.add(obj.id)
        objects.append(obj)
    return objects


def load_ddf_file(path: str | PathLike[str]) -> list[ObjectDef]:
    """The objects defined in the DDF file at ``path``."""
    source = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_DDF_SIZE + 1)
    except OSError as e:
        raise DefinitionError(f"{source}: cannot read: {e.strerror or e}") from e
    return parse_ddf(data, source)


def load_ddf_dir(directory: str | PathLike[str]) -> list[ObjectDef]:
    """The objects defined in every ``*.xml`` file of ``directory``, files in name order.

    Two files defining the same object ID is an error rather than "last one wins", because
    which one the user meant depends on a file-name order they never chose.
    """
    root = Path(directory)
    if not root.is_dir():
        raise DefinitionError(f"{root}: not a directory")
    objects: list[ObjectDef] = []
    origin: dict[int, Path] = {}
    for path in sorted(p for p in root.glob("*.xml") if p.is_file()):
        for obj in load_ddf_file(path):
            if obj.id in origin:
                raise DefinitionError(
                    f"{path}: object {obj.id} is also defined in {origin[obj.id]}"
                )
            origin[obj.id] = path
            objects.append(obj)
    return objects


def _parse_xml(data: bytes, source: str) -> Element:
    """Parse ``data`` into an element tree with expat, refusing any document type declaration.

    Without a DTD there are no entities to expand (billion laughs) and nothing external to
    fetch, so the only references left are the five predefined ones.
    """
    if len(data) > MAX_DDF_SIZE:
        raise DefinitionError(f"{source}: larger than {MAX_DDF_SIZE} bytes")
    builder = TreeBuilder()
    parser = expat.ParserCreate()

    def refuse_dtd(*_: object) -> None:
        raise DefinitionError(f"{source}: DOCTYPE and ENTITY declarations are not allowed")

    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except DefinitionError:
        raise
    except expat.ExpatError as e:
        reason = expat.ErrorString(e.code) if e.code is not None else str(e)
        raise DefinitionError(f"{source}: not well-formed XML: {reason} (line {e.lineno})") from e
    except (LookupError, ValueError) as e:
        # An XML declaration naming an encoding that Python lacks or expat cannot use
        # (multi-byte codecs such as Shift_JIS).
        raise DefinitionError(f"{source}: cannot decode: {e}") from e
    return builder.close()


def _local(tag: str) -> str:
    """A tag without its namespace, so a file that declares a default namespace still reads."""
    return tag.rpartition("}")[2].rpartition(":")[2]


def _fields(elem: Element, fail: Callable[[str], DefinitionError]) -> dict[str, Element]:
    """The child elements by local name. The schema allows each once; a second is ambiguous."""
    out: dict[str, Element] = {}
    for child in elem:
        name = _local(child.tag)
        if name in out:
            raise fail(f"{name} appears twice")
        out[name] = child
    return out


def _text(elem: Element | None) -> str:
    """An element's text, stripped; "" for an absent element."""
    return "".join(elem.itertext()).strip() if elem is not None else ""


def _words(elem: Element | None) -> str:
    """An element's text with runs of whitespace made one space ("LWM2M  Server URI")."""
    return " ".join(_text(elem).split())


def _id(text: str, fail: Callable[[str], DefinitionError], what: str) -> int:
    """A decimal ID in 0..65534; ASCII digits only, as ``int`` would also take other scripts'."""
    text = text.strip()
    if not _ID_RE.fullmatch(text) or int(text) > MAX_ID:
        raise fail(f"{what} {text[:20]!r} is not an ID in 0..{MAX_ID}")
    return int(text)


def _choice(
    fields: dict[str, Element], name: str, yes: str, no: str, fail: Callable[[str], DefinitionError]
) -> bool:
    """A required two-valued field such as MultipleInstances (Multiple/Single)."""
    if name not in fields:
        raise fail(f"{name} is missing")
    text = _words(fields[name])
    if text.lower() == yes.lower():
        return True
    if text.lower() == no.lower():
        return False
    raise fail(f"{name} {text!r} is neither {yes!r} nor {no!r}")


def _version(fields: dict[str, Element], name: str, fail: Callable[[str], DefinitionError]) -> str:
    """ObjectVersion or LWM2MVersion: "major.minor", "1.0" when absent or empty (LWM2M.xsd)."""
    text = _words(fields.get(name))
    if not text:
        return "1.0"
    if not _VERSION_RE.fullmatch(text):
        raise fail(f"{name} {text!r} is not a version like '1.0'")
    return text


def _object(elem: Element, source: str) -> ObjectDef:
    oid_text = _text(next((c for c in elem if _local(c.tag) == "ObjectID"), None))

    def fail(message: str) -> DefinitionError:
        where = f"object {oid_text[:20]}" if oid_text else "<Object>"
        return DefinitionError(f"{source}: {where}: {message}")

    fields = _fields(elem, fail)

    if "ObjectID" not in fields:
        raise fail("ObjectID is missing")
    oid = _id(oid_text, fail, "ObjectID")
    name = _words(fields.get("Name"))
    if not name:
        raise fail("Name is missing or empty")
    if "Resources" not in fields:
        raise fail("Resources is missing")
    resources: dict[int, ResourceDef] = {}
    for item in fields["Resources"]:
        if _local(item.tag) != "Item":
            continue
        res = _resource(item, source, oid)
        if res.id in resources:
            raise fail(f"resource {res.id} is defined twice")
        resources[res.id] = res
    return make_object(
        oid,
        name,
        resources.values(),
        version=_version(fields, "ObjectVersion", fail),
        multiple=_choice(fields, "MultipleInstances", "Multiple", "Single", fail),
        mandatory=_choice(fields, "Mandatory", "Mandatory", "Optional", fail),
        lwm2m_version=_version(fields, "LWM2MVersion", fail),
        urn=_words(fields.get("ObjectURN")),
        description=_text(fields.get("Description1")),
    )


def _resource(item: Element, source: str, oid: int) -> ResourceDef:
    rid_text = (item.get("ID") or "").strip()

    def fail(message: str) -> DefinitionError:
        where = f"resource {rid_text[:20]}" if rid_text else "<Item>"
        return DefinitionError(f"{source}: object {oid}, {where}: {message}")

    if not rid_text:
        raise fail("the ID attribute is missing")
    rid = _id(rid_text, fail, "ID")
    fields = _fields(item, fail)
    name = _words(fields.get("Name"))
    if not name:
        raise fail("Name is missing or empty")
    return ResourceDef(
        id=rid,
        name=name,
        operations=_operations(fields, fail),
        type=_type(fields, fail),
        multiple=_choice(fields, "MultipleInstances", "Multiple", "Single", fail),
        mandatory=_choice(fields, "Mandatory", "Mandatory", "Optional", fail),
        units=_words(fields.get("Units")),
        range=ValueRange.parse(_words(fields.get("RangeEnumeration"))),
        description=_text(fields.get("Description")),
    )


def _operations(fields: dict[str, Element], fail: Callable[[str], DefinitionError]) -> Operations:
    """Operations: "", R, W, RW or E, in any case and spacing ("r w", "WR")."""
    if "Operations" not in fields:
        raise fail("Operations is missing")
    text = _text(fields["Operations"])
    ops = _OPERATIONS.get("".join(text.upper().split()))
    if ops is None:
        raise fail(f"Operations {text!r} is not one of '', R, W, RW, E")
    return ops


def _type(fields: dict[str, Element], fail: Callable[[str], DefinitionError]) -> ResourceType:
    """Type, any case and spacing; empty or "none" means the resource carries no value.

    The OMA registry leaves Type empty on executable resources, and on a few others that have no
    value to read either (10482 resource 5), so an empty Type is NONE whatever the operations.
    """
    if "Type" not in fields:
        raise fail("Type is missing")
    text = _words(fields["Type"])
    rtype = _TYPES.get(text.lower())
    if rtype is None:
        raise fail(f"Type {text!r} is not a LwM2M type")
    return rtype
