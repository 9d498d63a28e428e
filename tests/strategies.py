"""Hypothesis strategies shared by the codec tests: generated definitions and reads.

A generated read is (definitions, base, records): random object definitions, a base
path at some level, and the records a read of that base would return, in path order. Every
codec's round-trip property is ``decode(encode(records)) == records`` over these.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from bridged.objects.definitions import (
    Definitions,
    ObjectDef,
    Operations,
    ResourceDef,
    ResourceType,
    make_object,
)
from bridged.objects.paths import Level, Path
from bridged.objects.values import INT64_MAX, INT64_MIN, UINT64_MAX, ObjLnk, Record, Value

VALUE_TYPES = [t for t in ResourceType if t is not ResourceType.NONE]

ids = st.integers(min_value=0, max_value=65534)
small_ids = st.integers(min_value=0, max_value=300)
prefixes = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)


def values_of(rtype: ResourceType) -> st.SearchStrategy[Value]:
    """Values of one LwM2M type, over its whole domain (finite floats only)."""
    if rtype in (ResourceType.STRING, ResourceType.CORELNK):
        return st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
    if rtype is ResourceType.INTEGER or rtype is ResourceType.TIME:
        return st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
    if rtype is ResourceType.UNSIGNED:
        return st.integers(min_value=0, max_value=UINT64_MAX)
    if rtype is ResourceType.FLOAT:
        return st.floats(allow_nan=False, allow_infinity=False)
    if rtype is ResourceType.BOOLEAN:
        return st.booleans()
    if rtype is ResourceType.OPAQUE:
        return st.binary(max_size=40)
    if rtype is ResourceType.OBJLNK:
        return st.builds(ObjLnk, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
    raise AssertionError(rtype)


@st.composite
def resource_defs(draw: st.DrawFn, rid: int) -> ResourceDef:
    return ResourceDef(
        id=rid,
        name=f"Resource {rid}",
        operations=Operations.RW,
        type=draw(st.sampled_from(VALUE_TYPES)),
        multiple=draw(st.booleans()),
    )


@st.composite
def object_defs(draw: st.DrawFn, oid: int) -> ObjectDef:
    rids = draw(st.lists(small_ids, min_size=1, max_size=6, unique=True))
    return make_object(oid, f"Object {oid}", [draw(resource_defs(r)) for r in rids])


@st.composite
def definition_sets(draw: st.DrawFn) -> Definitions:
    reg = Definitions()
    for oid in draw(st.lists(ids, min_size=1, max_size=3, unique=True)):
        reg.add(draw(object_defs(oid)))
    return reg


@dataclass(frozen=True)
class Read:
    definitions: Definitions
    base: Path
    records: list[Record]


def _records_of_instance(
    draw: st.DrawFn, obj: ObjectDef, base: Path, rids: list[int]
) -> list[Record]:
    out: list[Record] = []
    for rid in sorted(rids):
        rdef = obj.resources[rid]
        rpath = base.child(rid)
        if rdef.multiple:
            riids = draw(st.lists(small_ids, min_size=1, max_size=3, unique=True))
            out.extend(Record(rpath.child(ri), draw(values_of(rdef.type))) for ri in sorted(riids))
        else:
            out.append(Record(rpath, draw(values_of(rdef.type))))
    return out


@st.composite
def reads(
    draw: st.DrawFn,
    levels: tuple[Level, ...] = (Level.OBJECT, Level.INSTANCE, Level.RESOURCE),
    with_prefix: bool = False,
) -> Read:
    """A read at one of ``levels`` (object, instance, resource or resource instance)."""
    definitions = draw(definition_sets())
    obj = draw(st.sampled_from(sorted(definitions, key=lambda o: o.id)))
    prefix = draw(prefixes) if with_prefix else None
    level = draw(st.sampled_from(levels))
    opath = Path((obj.id,), prefix)
    records: list[Record] = []
    if level is Level.OBJECT:
        for iid in sorted(draw(st.lists(small_ids, min_size=1, max_size=3, unique=True))):
            rids = draw(st.lists(st.sampled_from(sorted(obj.resources)), min_size=1, unique=True))
            records += _records_of_instance(draw, obj, opath.child(iid), rids)
        return Read(definitions, opath, records)
    ipath = opath.child(draw(small_ids))
    if level is Level.INSTANCE:
        rids = draw(st.lists(st.sampled_from(sorted(obj.resources)), min_size=1, unique=True))
        return Read(definitions, ipath, _records_of_instance(draw, obj, ipath, rids))
    rid = draw(st.sampled_from(sorted(obj.resources)))
    rdef = obj.resources[rid]
    rpath = ipath.child(rid)
    if level is Level.RESOURCE:
        return Read(definitions, rpath, _records_of_instance(draw, obj, ipath, [rid]))
    # Resource-instance level needs a multi-instance resource; fall back to the resource.
    if not rdef.multiple:
        return Read(definitions, rpath, [Record(rpath, draw(values_of(rdef.type)))])
    ripath = rpath.child(draw(small_ids))
    return Read(definitions, ripath, [Record(ripath, draw(values_of(rdef.type)))])


@st.composite
def single_values(draw: st.DrawFn, types: tuple[ResourceType, ...] = tuple(VALUE_TYPES)) -> Read:
    """One value at a resource or resource-instance path: what text/plain and opaque carry."""
    rtype = draw(st.sampled_from(types))
    multiple = draw(st.booleans())
    rid = draw(small_ids)
    oid = draw(ids)
    definitions = Definitions()
    definitions.add(
        make_object(oid, "Object", [ResourceDef(rid, "R", Operations.RW, rtype, multiple)])
    )
    path = Path((oid, draw(small_ids), rid))
    if multiple:
        path = path.child(draw(small_ids))
    return Read(definitions, path, [Record(path, draw(values_of(rtype)))])


@st.composite
def composite_reads(draw: st.DrawFn, with_prefix: bool = False) -> Read:
    """Records from several objects at once, under the root: a Read-Composite answer."""
    definitions = draw(definition_sets())
    records: list[Record] = []
    for obj in sorted(definitions, key=lambda o: o.id):
        prefix = draw(st.one_of(st.none(), prefixes)) if with_prefix else None
        iid = draw(small_ids)
        rids = draw(st.lists(st.sampled_from(sorted(obj.resources)), min_size=1, unique=True))
        records += _records_of_instance(draw, obj, Path((obj.id, iid), prefix), rids)
    records.sort(key=lambda r: r.path.sort_key())
    return Read(definitions, Path(), records)


def timed(read: Read, times: list[float]) -> Read:
    """The same read with a time on each record (for the formats that carry time)."""
    recs = [Record(r.path, r.value, t) for r, t in zip(read.records, times, strict=True)]
    return Read(read.definitions, read.base, recs)
