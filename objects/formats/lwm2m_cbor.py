"""LwM2M CBOR (Content-Format 11544, LwM2M 1.2 Core §7.4.6): nested maps keyed by path IDs.

A payload is one CBOR map whose keys are the IDs of the path from the root down, each level a
map, and whose leaves are the values: ``{3: {0: {0: "Open Mobile Alliance", 9: 100}}}``. A key
may also be an array of IDs that stands for a chain of levels, and a gateway end device's
prefix stands before the object ID, alone or first in an array. The key grammar is

    ID = PREFIX / uint / array [PREFIX] 1*uint

so ``{[3, 0]: {0: "..."}}``, ``{[3, 0, 7]: {0: 3800}}`` and ``{["d01", 3, 0]: {9: 100}}`` are
all legal, and so is any mix of them. Paths are absolute whatever the request's path: a read of
``/3/0/9`` answers ``{[3, 0, 9]: 100}``.

Values carry their CBOR type: Integer, Unsigned Integer and Time are integers (a Time may also
come as tag 1, an epoch time), Float any of float16/32/64, Boolean a CBOR Boolean, String and
Corelnk text, Opaque a byte string, Objlnk the text ``"oid:iid"``. Read-Composite and
Observe-Composite requests carry their paths the same way, each path ending in ``null``.

Decode accepts every legal nesting and compression, definite or indefinite lengths. Encode
writes one canonical form, so that equal reads give equal bytes:

- canonical CBOR (RFC 7049 §3.9): definite lengths, the shortest integers, the shortest float
  that holds the value exactly, map keys sorted length-first;
- one map per level, except that a chain of three or more single-child levels becomes one
  array key (``{[3, 0, 9]: 100}``). Chains of two stay nested: an array key costs its header
  byte exactly as the inner map does, so ``{3: {0: {...}}}`` is as short as ``{[3, 0]: {...}}``
  and readable by decoders that take no arrays at all.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import cbor2

from ..definitions import Definitions, ResourceType
from ..errors import BadRequest, DecodeError, NotAcceptable
from ..paths import Path, is_prefix
from ..values import ObjLnk, Record, Value, check_id, check_type
from . import ContentFormat

Key = int | str | tuple[int | str, ...]
"""A map key as cbor2 gives and takes it: an ID, a prefix, or an array of them."""

_MAX_IDS: Final = 4
_MAX_NESTING: Final = 8
"""Containers a legal payload can nest: the root map, four levels of maps and an array key.
A deeper payload is garbage, and refusing it in the CBOR decoder keeps recursion bounded."""

_MIN_ARRAY_CHAIN: Final = 3
"""The shortest chain of single-child levels that an array key makes smaller (see above)."""


# -- CBOR tags --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Epoch:
    """A value tagged 1 (epoch-based time): only a Time resource takes it."""

    seconds: int


class _TagDecoders(Mapping[int, Callable[[object, bool], object]]):
    """cbor2's ``semantic_decoders`` for every tag number: tag 1 is a Time, any other is bad.

    cbor2 decodes many tags on its own (bignums, decimal fractions, shared references, dates);
    answering for every tag number leaves none of them to it, so a tagged item can never slip
    through as an innocent-looking int or string.
    """

    def __getitem__(self, tag: int) -> Callable[[object, bool], object]:
        return _epoch if tag == 1 else _reject_tag

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _epoch(value: object, immutable: bool) -> _Epoch:
    if type(value) is float and value.is_integer():
        return _Epoch(int(value))
    if type(value) is int:
        return _Epoch(value)
    raise ValueError(f"tag 1 must hold whole seconds, not {value!r}")


def _reject_tag(value: object, immutable: bool) -> object:
    raise ValueError("LwM2M CBOR takes no CBOR tags other than 1 (epoch time)")


_TAGS: Final = _TagDecoders()


def _load(payload: bytes) -> object:
    """Decode exactly one CBOR item that fills ``payload``; DecodeError for anything else."""
    data = bytes(payload)
    stream = io.BytesIO(data)
    decoder = cbor2.CBORDecoder(
        stream,
        semantic_decoders=_TAGS,
        max_depth=_MAX_NESTING,
        allow_duplicate_keys=False,
    )
    try:
        item = decoder.decode()
    except cbor2.CBORDecodeError as e:
        raise DecodeError(f"not valid LwM2M CBOR: {e}") from e
    if stream.tell() != len(data):
        raise DecodeError(f"{len(data) - stream.tell()} bytes left over after the CBOR map")
    return item


# -- paths in maps ----------------------------------------------------------------------------


def _key_path(key: object, at_root: bool) -> tuple[str | None, tuple[int, ...]]:
    """The prefix and IDs one map key names. A prefix may stand only at the root."""
    if key == ():
        raise DecodeError("an empty array is not a map key")
    if type(key) is int:
        return None, (check_id(key),)
    parts: tuple[object, ...] = key if isinstance(key, tuple) else (key,)
    prefix: str | None = None
    if parts and isinstance(parts[0], str):
        if not at_root or not is_prefix(parts[0]):
            raise DecodeError(f"map key {key!r} is not an ID here")
        prefix, parts = parts[0], parts[1:]
        if not parts and isinstance(key, tuple):
            raise DecodeError(f"array key {key!r} names a prefix but no ID")
    ids: list[int] = []
    for part in parts:
        if type(part) is not int:
            raise DecodeError(f"map key {key!r} is not an ID or an array of IDs")
        ids.append(check_id(part))
    return prefix, tuple(ids)


def _flatten(payload: bytes) -> dict[Path, object]:
    """Every leaf of the payload's tree by its path; DecodeError if the tree is malformed."""
    tree = _load(payload)
    if not isinstance(tree, dict):
        raise DecodeError(f"LwM2M CBOR is a map, not {type(tree).__name__}")
    leaves: dict[Path, object] = {}
    _walk(tree, None, (), leaves)
    return leaves


def _walk(
    node: dict[object, object], prefix: str | None, ids: tuple[int, ...], out: dict[Path, object]
) -> None:
    at_root = prefix is None and not ids
    for key, value in node.items():
        key_prefix, key_ids = _key_path(key, at_root)
        path_prefix = key_prefix if at_root else prefix
        path_ids = ids + key_ids
        if len(path_ids) > _MAX_IDS:
            raise DecodeError(f"key {key!r} reaches deeper than a resource instance")
        if isinstance(value, dict):
            if len(path_ids) == _MAX_IDS:
                raise DecodeError(f"a map below resource instance {path_ids}")
            _walk(value, path_prefix, path_ids, out)
            continue
        path = Path(path_ids, path_prefix)
        if path in out:
            raise DecodeError(f"{path} appears twice")
        out[path] = value


def _tree(leaves: Iterable[tuple[Path, object]]) -> dict[Key, object]:
    """Nest leaves by path in canonical form (see the module docstring).

    A path that cannot nest, because a leaf already stands above it or in its place (a composite
    request that names both /3 and /3/0), goes into the root map under its whole path as an
    array key, which the grammar allows and which no nested key can collide with.
    """
    root: dict[Key, object] = {}
    for path, leaf in leaves:
        keys: tuple[int | str, ...] = (
            (path.prefix, *path.ids) if path.prefix is not None else path.ids
        )
        node = root
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            if keys[-1] not in node:
                node[keys[-1]] = leaf
                continue
        root[keys] = leaf
    return _compact(root)


def _compact(node: dict[Key, object]) -> dict[Key, object]:
    """Fold each chain of at least ``_MIN_ARRAY_CHAIN`` single-child levels into an array key."""
    out: dict[Key, object] = {}
    for key, value in node.items():
        chain: list[int | str] = list(key) if isinstance(key, tuple) else [key]
        while isinstance(value, dict) and len(value) == 1:
            ((inner, value),) = value.items()
            chain.append(inner)  # only the root holds array keys, so ``inner`` is an ID
        if isinstance(value, dict):
            value = _compact(value)
        if isinstance(key, tuple) or len(chain) >= _MIN_ARRAY_CHAIN:
            out[tuple(chain)] = value
        else:
            for inner in reversed(chain[1:]):
                value = {inner: value}
            out[chain[0]] = value
    return out


def _dump(tree: dict[Key, object]) -> bytes:
    return cbor2.dumps(tree, canonical=True)


# -- values -----------------------------------------------------------------------------------


def _cbor_value(value: Value) -> object:
    """What a value is in CBOR: itself, except an Objlnk, which is its ``oid:iid`` text."""
    return str(value) if isinstance(value, ObjLnk) else value


def _typed(definitions: Definitions, path: Path, raw: object) -> Value:
    """The leaf at ``path`` as its resource's Python type; NotFound or BadRequest if it is not.

    A multi-instance resource holds a map of resource instances, and a single one holds its
    value directly, as the contract has resource-instance records for exactly the former.
    """
    ids = path.ids
    if len(ids) < 3:
        raise DecodeError(f"{path} holds a value where a map is needed")
    rdef = definitions.resource(ids[0], ids[2])
    if rdef.multiple != (len(ids) == _MAX_IDS):
        kind = "multi-instance" if rdef.multiple else "single-instance"
        raise BadRequest(f"{path}: resource {rdef.id} ({rdef.name}) is {kind}")
    if isinstance(raw, _Epoch):
        if rdef.type is not ResourceType.TIME:
            raise BadRequest(f"{path}: an epoch time (tag 1) for a {rdef.type.value}")
        return check_type(rdef, raw.seconds)
    if rdef.type is ResourceType.OBJLNK and isinstance(raw, str):
        if not raw.isascii():
            raise DecodeError(f"{path}: {raw!r} is not an object link (oid:iid)")
        return ObjLnk.parse(raw)
    return check_type(rdef, raw)


# -- the codec --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LwM2MCborCodec:
    """LwM2M CBOR for reads, writes and composite requests. Time is not carried."""

    content_format: ContentFormat = ContentFormat.LWM2M_CBOR
    timed = False

    def encode(self, records: Sequence[Record], base: Path, definitions: Definitions) -> bytes:
        return _dump(_tree((r.path, _cbor_value(r.value)) for r in records))

    def decode(self, payload: bytes, base: Path, definitions: Definitions) -> list[Record]:
        leaves = _flatten(payload)
        for path in leaves:
            if not base.contains(path):
                raise BadRequest(f"{path} is outside {base}")
        records = [Record(path, _typed(definitions, path, raw)) for path, raw in leaves.items()]
        records.sort(key=lambda r: r.path.sort_key())
        return records

    def encode_paths(self, paths: Sequence[Path]) -> bytes:
        unique = sorted(set(paths), key=Path.sort_key)
        if any(not p.ids and p.prefix is None for p in unique):
            raise NotAcceptable("LwM2M CBOR cannot name the root as a path")
        return _dump(_tree((p, None) for p in unique))

    def decode_paths(self, payload: bytes) -> list[Path]:
        leaves = _flatten(payload)
        for path, leaf in leaves.items():
            if leaf is not None:
                raise DecodeError(f"{path} holds {leaf!r}; a path list holds only null")
        return sorted(leaves, key=Path.sort_key)


CODEC = LwM2MCborCodec()
