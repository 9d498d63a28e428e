"""CoRE Link Format (RFC 6690) and the three places LwM2M uses it.

The general part parses and formats links: ``</3/0>;pmin=10;title="a, b",</3/1>``. The LwM2M
part builds the object list of Register and Update, the answer to a Discover, and reads the
notification attributes of Write-Attributes (whose query items use the same names and number
forms as Discover's link attributes, hence the shared ``Attributes``).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

from .definitions import ObjectDef
from .errors import BadRequest, DecodeError
from .formats import announced_formats
from .ids import BOOTSTRAP_ONLY
from .paths import Level, Path
from .values import INT64_MAX

# -- RFC 6690 ---------------------------------------------------------------------------------

_URI_CHARS: Final = r"A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%"
_PARMNAME_CHARS: Final = r"A-Za-z0-9!#$&+\-.^_`|~"
_PTOKEN_CHARS: Final = r"A-Za-z0-9!#$%&'()*+\-./:<=>?@\[\]^_`{|}~"
"""RFC 6690 §2: a link's URI-Reference, an attribute's parmname (RFC 5987) and a ptoken."""

_TARGET_RE: Final = re.compile(f"[{_URI_CHARS}]*")
_PARMNAME_RE: Final = re.compile(f"[{_PARMNAME_CHARS}]+")
_PTOKEN_RE: Final = re.compile(f"[{_PTOKEN_CHARS}]+")
_LINK_RE: Final = re.compile(f"<([{_URI_CHARS}]*)>")
_PARAM_RE: Final = re.compile(
    f';([{_PARMNAME_CHARS}]+)(?:=(?:"((?:[^"\\\\]|\\\\.)*)"|([{_PTOKEN_CHARS}]+)))?', re.DOTALL
)
_QUOTED_PAIR_RE: Final = re.compile(r"\\(.)", re.DOTALL)

QUOTED_ATTRIBUTES: Final = frozenset({"anchor", "if", "rel", "rev", "rt", "title"})
"""Attributes written as quoted strings even when a token would do, as RFC 6690's examples and
LwM2M servers expect (``rt="oma.lwm2m"``). Others are quoted only when they must be."""


@dataclass(frozen=True, slots=True)
class Link:
    """One link: a target URI and its attributes in order; a valueless attribute has None.

    Values are unescaped text: whether the wire form was a quoted string or a token is a matter
    of formatting (``format_links``), not of meaning.
    """

    target: str
    attributes: tuple[tuple[str, str | None], ...] = ()

    def __post_init__(self) -> None:
        if not _TARGET_RE.fullmatch(self.target):
            raise ValueError(f"{self.target!r} is not a URI reference")
        for name, _ in self.attributes:
            if not _PARMNAME_RE.fullmatch(name):
                raise ValueError(f"{name!r} is not a link attribute name")


def parse_links(text: str) -> list[Link]:
    """Parse a link-format document; DecodeError (4.00) if it does not follow RFC 6690.

    The grammar has no whitespace, so none is accepted; quoted values may hold anything,
    commas and semicolons included, with ``\\`` escaping the next character.
    """
    if not text:
        return []
    links: list[Link] = []
    pos = 0
    while True:
        link = _LINK_RE.match(text, pos)
        if link is None:
            raise DecodeError(f"a link must start with <URI> at offset {pos} of {text[:60]!r}")
        pos = link.end()
        attributes: list[tuple[str, str | None]] = []
        while param := _PARAM_RE.match(text, pos):
            name, quoted, token = param.groups()
            value = token if quoted is None else _QUOTED_PAIR_RE.sub(r"\1", quoted)
            attributes.append((name, value))
            pos = param.end()
        links.append(Link(link.group(1), tuple(attributes)))
        if pos == len(text):
            return links
        if text[pos] != ",":
            raise DecodeError(f"unexpected {text[pos]!r} at offset {pos} of {text[:60]!r}")
        pos += 1


def format_links(links: Iterable[Link], *, quoted: frozenset[str] = QUOTED_ATTRIBUTES) -> str:
    """The link-format text of ``links``. Names in ``quoted`` always get a quoted string;
    other values only when they are not a token (empty, or holding a space, comma, ...).

    Written into one UTF-8 buffer, link by link: a join (or a StringIO) holds every link's
    text as an object of its own until the end, 3.4 MB for the 0.5 MB object list of a
    Register with 10,000 nodes; this holds the buffer and the result, 1.1 MB."""
    out = bytearray()
    separator = ""
    for link in links:
        out += f"{separator}<{link.target}>".encode()
        for name, value in link.attributes:
            out += _attribute(name, value, quoted).encode()
        separator = ","
    return out.decode()


def _attribute(name: str, value: str | None, quoted: frozenset[str]) -> str:
    if value is None:
        return f";{name}"
    if name in quoted or not _PTOKEN_RE.fullmatch(value):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f';{name}="{escaped}"'
    return f";{name}={value}"


# -- notification attributes ------------------------------------------------------------------

_INTEGER_ATTRIBUTES: Final = ("pmin", "pmax", "epmin", "epmax")
_FLOAT_ATTRIBUTES: Final = ("gt", "lt", "st")
_INTEGER_RE: Final = re.compile(r"[0-9]{1,19}")
_FLOAT_RE: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Attributes:
    """The notification attributes of one path (LwM2M 1.1 Core §5.1.2); None where not set.

    A Write-Attributes request may also name an attribute without a value, which removes it:
    ``unset`` holds those names, and ``updated`` applies such a request to stored attributes.
    """

    pmin: int | None = None
    pmax: int | None = None
    gt: float | None = None
    lt: float | None = None
    st: float | None = None
    epmin: int | None = None
    epmax: int | None = None
    unset: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in _INTEGER_ATTRIBUTES:
            value = getattr(self, name)
            if value is not None and (type(value) is not int or not 0 <= value <= INT64_MAX):
                raise BadRequest(f"{name} must be a non-negative integer, not {value!r}")
        for name in _FLOAT_ATTRIBUTES:
            value = getattr(self, name)
            if value is not None and (type(value) is not float or not math.isfinite(value)):
                raise BadRequest(f"{name} must be a finite number, not {value!r}")
        if self.st is not None and self.st < 0:
            raise BadRequest(f"st must not be negative, not {self.st!r}")
        for name in self.unset:
            if name not in ATTRIBUTE_NAMES:
                raise BadRequest(f"{name!r} is not a notification attribute")
            if getattr(self, name) is not None:
                raise BadRequest(f"{name} is both set and unset")

    def updated(self, change: Attributes) -> Attributes:
        """These attributes after a Write-Attributes of ``change``: its values replace ours,
        its unset names clear ours, and the rest stay."""
        values: dict[str, Any] = {name: getattr(self, name) for name in ATTRIBUTE_NAMES}
        for name in ATTRIBUTE_NAMES:
            new = getattr(change, name)
            if new is not None or name in change.unset:
                values[name] = new
        return Attributes(**values)

    def pairs(self) -> tuple[tuple[str, str | None], ...]:
        """The attributes as (name, value text) in the order LwM2M lists them; None is unset."""
        out: list[tuple[str, str | None]] = []
        for name in ATTRIBUTE_NAMES:
            value = getattr(self, name)
            if value is not None:
                out.append((name, _number(value)))
            elif name in self.unset:
                out.append((name, None))
        return tuple(out)


ATTRIBUTE_NAMES: Final = tuple(f.name for f in fields(Attributes) if f.name != "unset")
"""The names Write-Attributes accepts, in the order Discover lists them."""


def _number(value: float) -> str:
    """A number as the shortest text that reads back the same: ``50``, ``42.2``, ``4.2e+21``."""
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return repr(value)


def parse_attributes(query: Sequence[str]) -> Attributes:
    """The attributes of Write-Attributes query items (``pmin=10``, ``gt=20.5``, ``pmax``).

    A bare name unsets that attribute. Unknown names, repeated names and values that are not
    numbers of the right kind are BadRequest (4.00).
    """
    values: dict[str, Any] = {}
    unset: set[str] = set()
    for item in query:
        name, sep, text = item.partition("=")
        if name not in ATTRIBUTE_NAMES:
            raise BadRequest(f"{name!r} is not a notification attribute")
        if name in values or name in unset:
            raise BadRequest(f"{name} is given twice")
        if not sep:
            unset.add(name)
        elif name in _INTEGER_ATTRIBUTES and _INTEGER_RE.fullmatch(text):
            values[name] = int(text)
        elif name in _FLOAT_ATTRIBUTES and _FLOAT_RE.fullmatch(text):
            values[name] = float(text)
        else:
            raise BadRequest(f"{item!r}: {name} takes a number, not {text!r}")
    return Attributes(**values, unset=frozenset(unset))


def format_attributes(attributes: Attributes) -> list[str]:
    """The Write-Attributes query items of ``attributes``; ``parse_attributes`` inverts it."""
    return [name if text is None else f"{name}={text}" for name, text in attributes.pairs()]


# -- Register and Update ----------------------------------------------------------------------

ObjectEntry = tuple[ObjectDef | tuple[int, str], Iterable[int]]
"""An object to register, as its definition or (object ID, version), and its instance IDs."""


def object_links(
    objects: Iterable[ObjectEntry], *, alternate_path: str = "/", lwm2m_version: str | None = None
) -> Iterator[Link]:
    """The object list of Register and Update: ``</1>;ver=1.1,</1/0>,</3/0>,</5>``.

    Objects come in ID order, each with ``</oid>`` when it has no instances or a version other
    than 1.0, then ``</oid/iid>`` per instance. ``ver`` goes on the object link only: servers
    refuse it elsewhere. Security, OSCORE and /23 are left out whatever the caller passes. The
    same list, formatted alone, is an end device's object list in the Gateway object (/25).

    Toward a server of ``lwm2m_version``, an object version that needs a later LwM2M version
    (an ``ObjectDef``'s ``lwm2m_version``: Server 1.1 and Device 1.1 need LwM2M 1.1) is
    announced as the first version of its major, which such a server knows: within a major
    version, OMA object versions only add optional resources, so it reads the newer one.
    """
    root = _alternate_root(alternate_path)
    # Objects in order, each one's instances sorted only when its turn comes: a sorted copy
    # of every object's list at once was 0.3 MB of each Register with 10,000 nodes.
    for oid, obj_version, unsorted in sorted(_entries(objects, lwm2m_version), key=_first):
        if oid in BOOTSTRAP_ONLY:
            continue
        iids = sorted(unsorted)
        if obj_version != "1.0" or not iids:
            ver = (("ver", obj_version),) if obj_version != "1.0" else ()
            yield Link(f"{root}/{oid}", ver)
        for iid in iids:
            yield Link(f"{root}/{oid}/{iid}")


def registration_links(
    objects: Iterable[ObjectEntry],
    *,
    version: str = "1.1",
    content_formats: Sequence[int] | None = None,
    alternate_path: str = "/",
) -> str:
    """The payload of a Register or Update: ``</>;rt="oma.lwm2m";ct="112 110 60",</1/0>,...``.

    The root link names the alternate path and the content formats (``ct``: one number as a
    token, several as a quoted list; by default those ``version`` can take, see
    ``announced_formats``), then come the ``object_links`` as a server of ``version`` knows
    them. ``version`` is the LwM2M version registered with: 1.0 servers expect ``ver`` quoted,
    later ones a token.
    """
    if content_formats is None:
        content_formats = announced_formats(version)
    root_attributes: list[tuple[str, str | None]] = [("rt", "oma.lwm2m")]
    if content_formats:
        root_attributes.append(("ct", " ".join(str(int(cf)) for cf in content_formats)))
    root = Link(_alternate_root(alternate_path) or "/", tuple(root_attributes))
    quoted = QUOTED_ATTRIBUTES | {"ver"} if version == "1.0" else QUOTED_ATTRIBUTES
    # One link at a time: a gateway with 10,000 nodes has 30,000 instance links, and a list
    # of them was 4 MB of its peak memory for each Register.
    links = object_links(objects, alternate_path=alternate_path, lwm2m_version=version)
    return format_links(itertools.chain((root,), links), quoted=quoted)


def _alternate_root(alternate_path: str) -> str:
    """The alternate path as the start of link targets ("" for "/"); ValueError if invalid:
    it must be absolute and, so as not to pass for an object, have no all-digit segment."""
    if not alternate_path.startswith("/") or any(s.isdigit() for s in alternate_path.split("/")):
        raise ValueError(f"{alternate_path!r} is not an alternate path")
    return alternate_path.rstrip("/")


def _entries(
    objects: Iterable[ObjectEntry], lwm2m_version: str | None
) -> Iterable[tuple[int, str, Iterable[int]]]:
    for obj, iids in objects:
        if isinstance(obj, ObjectDef):
            oid, obj_version = obj.id, announced_version(obj, lwm2m_version)
        else:
            oid, obj_version = obj
        yield oid, obj_version, iids


def _first(entry: tuple[int, str, Iterable[int]]) -> int:
    return entry[0]


def announced_version(obj: ObjectDef, lwm2m_version: str | None) -> str:
    """The version of ``obj`` shown to a server of ``lwm2m_version`` (None: any), in Register
    and Discover alike: one that needs a later LwM2M version is shown as the first version of
    its major, which such a server knows (``object_links``)."""
    if lwm2m_version is not None and _numbers(obj.lwm2m_version) > _numbers(lwm2m_version):
        return f"{obj.version.split('.')[0]}.0"
    return obj.version


def _numbers(version: str) -> tuple[int, ...]:
    """Version "1.1" as (1, 1), so that versions compare as numbers ("1.10" after "1.9")."""
    return tuple(int(n) for n in version.split(".") if n.isdigit())


# -- Discover ---------------------------------------------------------------------------------

_DEFAULT_DEPTH: Final = {Level.OBJECT: 2, Level.INSTANCE: 1, Level.RESOURCE: 1}
"""How far below its target a Discover reaches by default (LwM2M 1.1 Core §5.4.1): an object
lists its instances and their resources, an instance its resources, a resource its instances."""


def discover_links(
    base: Path,
    paths: Iterable[Path],
    *,
    dims: Mapping[Path, int] | None = None,
    attributes: Mapping[Path, Attributes] | None = None,
    object_version: str = "1.0",
    depth: int | None = None,
) -> str:
    """The answer to a Discover of ``base`` (an object, instance or resource).

    ``paths`` are the instances, resources and resource instances that exist (any superset
    will do: what is outside ``base`` or deeper than ``depth``, LwM2M 1.2's query, is left
    out). ``dims`` gives the number of instances of each multi-instance resource, and
    ``attributes`` the attributes set on each path. The object link carries ``ver`` when
    ``object_version`` is not 1.0. Links never show the gateway prefix: the server asked
    through it, and the end device's own view has none.
    """
    if base.level not in _DEFAULT_DEPTH:
        raise BadRequest(f"Discover needs an object, instance or resource, not {base}")
    reach = min(base.level + (_DEFAULT_DEPTH[base.level] if depth is None else depth), 4)
    selected = {p for p in paths if base.contains(p) and p.level <= reach} | {base}
    dims = dims or {}
    attributes = attributes or {}
    links: list[Link] = []
    for path in sorted(selected, key=Path.sort_key):
        pairs: list[tuple[str, str | None]] = []
        if path.level is Level.OBJECT and object_version != "1.0":
            pairs.append(("ver", object_version))
        if path in dims:
            pairs.append(("dim", str(dims[path])))
        if path in attributes:
            pairs.extend(attributes[path].pairs())
        links.append(Link(str(path.without_prefix()), tuple(pairs)))
    return format_links(links)
