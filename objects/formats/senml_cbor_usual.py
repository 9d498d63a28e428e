"""A SenML CBOR pack that repeats the last one's bytes but for its float values, sans-I/O.

A node notifies one observed object over and over in the same shape: the same records, named
the same, with the same labels, of which only a sensor's value changes (``82 a3 21 66
"/3303/" 00 66 "0/5700" 02 fb <8 bytes> a2 00 66 "0/5701" 03 63 "Cel"``). The general decode
(``SenMLCborCodec.decode``: cbor2, then every record's labels, base fields, name, definition and
value checked) cost such a notification some 70 k instructions, most of the node server's part
of it, to find again what the last notification said.

``UsualPack`` keeps, for one observation, the last pack the general decode took and where its
float values sit (``value_floats``). A pack of the same length whose bytes are the same but for
those values is that pack with other values: CBOR is read front to back, each item's head
saying what follows, so identical bytes up to a float64's head read as the same items, the
8 bytes after an ``fb`` head are a float64 whatever they are, and the identical bytes after it
read on as before. Its records are then the last pack's records with those values, and nothing
else is looked at again. A value is taken so only where the general decode took the float as
it was: under the number label, of a Float resource, with no base value in the pack (which
would be added to it); a value not finite (which the general decode refuses) is a decline.

Every other pack is declined (``decode`` gives None) and goes through the general decode,
which decides what it is and whether it is refused; what that decode takes is learnt in turn
(``learn``). A learnt pack that earns no use before the next one (a node whose packs differ
each time) makes the next learning wait, so that such a node pays for the walk rarely.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from ..definitions import Definitions, ObjectDef, ResourceType
from ..errors import DecodeError
from ..values import Record
from .senml_cbor import DIALECT

_FLOAT64 = 0xFB
_NUMBER, _BASE_VALUE = DIALECT.number, DIALECT.bv
_UNPACK = struct.Struct(">d").unpack_from
_ARGUMENT_BYTES = {24: 1, 25: 2, 26: 4, 27: 8}
"""RFC 8949 §3: the bytes of a head's argument after its first byte, by additional info."""
_SIMPLE_BYTES = {20: 0, 21: 0, 22: 0, 23: 0, 24: 1, 25: 2, 26: 4, 27: 8}
"""Major type 7: false, true, null, undefined, a simple value, and half, single and double
floats, by additional info (the bytes after the head's first byte)."""
MAX_WAIT = 64
"""The most packs a ``UsualPack`` lets go by unlearnt after learnt ones that found no use."""


class CborShapeError(DecodeError):
    """Bytes that end inside a CBOR item, or a head with a reserved additional info (RFC 8949
    §3: 28 to 30)."""


def _head(data: bytes, pos: int) -> tuple[int, int, int]:
    """The major type, argument and end of the definite-length head at ``pos``; an
    indefinite length (additional info 31) is an argument of -1."""
    if pos >= len(data):
        raise CborShapeError("the bytes end before an item")
    first = data[pos]
    major, info = first >> 5, first & 0x1F
    if info < 24:
        return major, info, pos + 1
    if info == 31:
        return major, -1, pos + 1
    size = _ARGUMENT_BYTES.get(info)
    if size is None:
        raise CborShapeError(f"reserved additional info {info}")
    end = pos + 1 + size
    if end > len(data):
        raise CborShapeError("the bytes end inside an item's head")
    return major, int.from_bytes(data[pos + 1 : end], "big"), end


def _scalar(data: bytes, pos: int) -> int | None:
    """The end of the scalar item at ``pos`` (an integer, a byte or text string, a simple
    value or a float), None for anything else (an array, map, tag, an indefinite length)."""
    first = data[pos] if pos < len(data) else None
    if first is not None and first >> 5 == 7:
        size = _SIMPLE_BYTES.get(first & 0x1F)
        if size is None:
            return None
        if pos + 1 + size > len(data):
            raise CborShapeError("the bytes end inside a float")
        return pos + 1 + size
    major, argument, end = _head(data, pos)
    if argument < 0 or major > 3:
        return None
    if major >= 2:  # a string: its bytes follow
        end += argument
        if end > len(data):
            raise CborShapeError("the bytes end inside a string")
    return end


def value_floats(payload: bytes) -> list[tuple[int, int]] | None:
    """Where a SenML CBOR pack's float64 values are: (record index, offset of the 8 bytes)
    of each record whose number label (2) holds one. None for a pack of another shape than
    an array of maps of scalar labels and values (definite lengths, no tags) exactly filling
    ``payload``, or one with a base value (which every later value is added to);
    :class:`CborShapeError` for bytes that are not CBOR."""
    major, count, pos = _head(payload, 0)
    if major != 4 or count < 0:
        return None
    floats: list[tuple[int, int]] = []
    for index in range(count):
        major, fields, pos = _head(payload, pos)
        if major != 5 or fields < 0:
            return None
        for _ in range(fields):
            key_start = pos
            after_key = _scalar(payload, pos)
            if after_key is None:
                return None
            value_start = after_key
            pos_after = _scalar(payload, value_start)
            if pos_after is None:
                return None
            key_major = payload[key_start] >> 5
            if key_major <= 1:  # an integer label
                _, argument, _ = _head(payload, key_start)
                label = argument if key_major == 0 else -1 - argument
                if label == _BASE_VALUE:
                    return None
                if label == _NUMBER and payload[value_start] == _FLOAT64:
                    floats.append((index, value_start + 1))
            pos = pos_after
    return floats if pos == len(payload) else None


class UsualPack:
    """The last SenML CBOR pack of one observation the general decode took (with
    ``definitions``), and the records of the next ones that repeat it but for its float values
    (module docstring). One per observation: the records' names are inside its base path
    because the general decode found them so."""

    __slots__ = (
        "_backoff",
        "_fixed",
        "_floats",
        "_objects",
        "_records",
        "_size",
        "_used",
        "_wait",
        "definitions",
    )

    def __init__(self, definitions: Definitions) -> None:
        self.definitions = definitions
        self._size = -1
        self._fixed: tuple[tuple[int, bytes], ...] = ()
        """Each run of bytes a repeat has as the learnt pack had it, and where it starts."""
        self._floats: tuple[tuple[int, int], ...] = ()
        self._records: list[Record] = []
        self._objects: tuple[tuple[int, ObjectDef], ...] = ()
        """The definition of each object whose Float resources the values are checked
        against, as they were when learnt."""
        self._used = False
        self._wait = 0
        self._backoff = 0

    def decode(self, payload: bytes) -> list[Record] | None:
        """The records of ``payload`` if it repeats the learnt pack but for its float values,
        as the general decode would give them; None otherwise."""
        if len(payload) != self._size:
            return None
        for start, run in self._fixed:
            if not payload.startswith(run, start):
                return None
        objects = self.definitions.objects
        for oid, odef in self._objects:
            if objects.get(oid) is not odef:
                return None
        records = self._records.copy()
        for index, offset in self._floats:
            value = _UNPACK(payload, offset)[0]
            if value - value != 0.0:  # not finite: the general decode refuses it
                return None
            record = records[index]
            records[index] = Record(record.path, value, record.time)
        self._used = True
        return records

    def learn(self, payload: bytes, records: Sequence[Record]) -> None:
        """``records`` are what the general decode made of ``payload``: the pack to repeat
        from now on (but see the module docstring on learning that waits)."""
        if self._wait:
            self._wait -= 1
            return
        if self._size >= 0 and not self._used:
            self._backoff = min(2 * self._backoff or 1, MAX_WAIT)
            self._wait = self._backoff
        elif self._used:
            self._backoff = 0
        self._used = False
        self._size = -1  # nothing learnt unless all below holds
        try:
            found = value_floats(payload)
        except CborShapeError:
            return
        if found is None:
            return
        floats: list[tuple[int, int]] = []
        objects: dict[int, ObjectDef] = {}
        for index, offset in found:
            if index >= len(records):
                return
            path, value = records[index].path, records[index].value
            odef = self.definitions.objects.get(path.ids[0])
            rdef = odef.resources.get(path.ids[2]) if odef is not None else None
            if (
                odef is None
                or rdef is None
                or rdef.type is not ResourceType.FLOAT
                or type(value) is not float
            ):
                continue  # a value the general decode checks: not repeated here
            if value != _UNPACK(payload, offset)[0]:
                return  # not the record its map made: nothing is taken from this pack
            floats.append((index, offset))
            objects[path.ids[0]] = odef
        if not floats:
            return
        fixed, start = [], 0
        for _, offset in floats:
            fixed.append((start, payload[start:offset]))
            start = offset + 8
        fixed.append((start, payload[start:]))
        self._fixed = tuple((at, run) for at, run in fixed if run)
        self._floats = tuple(floats)
        self._records = list(records)
        self._objects = tuple(objects.items())
        self._size = len(payload)
