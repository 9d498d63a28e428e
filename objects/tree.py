"""The instance tree: objects, instances, resources and resource instances with their values.

The tree is what a LwM2M server sees of this client (or of one end device, when it carries a
gateway prefix). It enforces the definitions: values are typed and range-checked, server
operations are checked against each resource's operations (a write to a read-only resource is
4.05, an unknown path 4.04), and every change is reported to the listeners that watch it
(``ObjectTree.subscribe``) so the engine can notify observers and knows when the registration's
object list must be sent again.

Two kinds of callers use it. The device side (the daemon, a transport) calls ``set`` and
``create_instance`` freely; the server side goes through ``read``/``write``/``execute``/
``create``/``delete``, which apply the operation rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import FunctionType, MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from .definitions import Definitions, ObjectDef, ResourceDef
from .errors import BadRequest, MethodNotAllowed, NotFound
from .ids import DEVICE_PATH
from .listeners import Listeners
from .paths import Level, Path
from .values import Record, Value, check_value

Listener = Callable[[Path], None]
"""Called with the path that changed: a resource or resource-instance path for a new value,
an instance path when an instance is created or deleted."""

ExecuteHandler = Callable[[Path, str], None]
"""Runs an executable resource: called with the resource path and the argument text."""

_ResourceSlot = Value | dict[int, Value]

Constraint = Callable[[Value], None]
"""Refuses (BadRequest) a value its definition admits but the client cannot take."""

Computed = Callable[[], _ResourceSlot | None]
"""Gives a computed resource's value when it is read (see ``ObjectTree.compute``)."""

_ComputedResources = tuple[tuple[Path, Computed], ...]
"""An instance's computed resources: each one's path and what computes it."""

_isfinite = math.isfinite

_NO_HOOKS: Mapping[Any, Any] = MappingProxyType({})
"""What a tree's executors, computed values and constraints start as: most trees (an end
device's, one per node) never have any, and an empty dict each was 2 MB of a gateway with
10,000 nodes. A hook's registration makes the tree a map of its own (``_with``)."""

EVERY = -1
"""What a listener watches that is told of every value change (``ObjectTree.subscribe``): no
object has this ID."""

_WATCHING: dict[tuple[int, ...], tuple[int, ...]] = {(): ()}
"""One tuple for all equal ``ObjectTree._watching`` (every node endpoint's tree has its
client's), up to ``WATCHING_SHARED`` of them: the first are the listeners' that every tree
has; the observations' come and go in any number and mix, and are kept by their tree only."""
WATCHING_SHARED = 256


def _watching(objects: Iterable[int]) -> tuple[int, ...]:
    """The watched objects ``objects`` (with repeats: one per watcher) as a tuple, shared
    while ``_WATCHING`` has room."""
    key = tuple(sorted(objects))
    shared = _WATCHING.get(key)
    if shared is not None:
        return shared
    if len(_WATCHING) < WATCHING_SHARED:
        _WATCHING[key] = key
    return key


_NO_TIMES: dict[Any, float] = {}
"""What a tree's times of measurement start as, for every tree: never written, only read and
popped from while empty (``set`` gives the tree a dict of its own at the first time)."""


_SHARED_HOOKS: dict[frozenset[tuple[Any, Any]], Mapping[Any, Any]] = {}
"""One map for all equal maps of module-level functions (every node endpoint's client checks
its /1/x/7 Binding with ``check_binding``: a dict each was 2 MB of 10,000 endpoints). Such
functions are as few as the code has, so none is ever dropped."""


_HOOK_KEYS: dict[Any, Any] = {}
"""One key of a hook (an object and resource or instance ID) for all equal ones: every node
endpoint's client executes /1/x/8 with a bound method of its own, and its key was a tuple each
(56 bytes of each of 10,000 endpoints, issue 17). As few as the hooks the code registers."""


class _OneHook(Mapping[Any, Any]):
    """A map of one hook that is not shared (a node endpoint's client's /1/x/8 executor, a
    bound method): 48 bytes where a dict of one entry is 224 (issue 17)."""

    __slots__ = ("_hook", "_key")

    def __init__(self, key: object, hook: object) -> None:
        self._key = key
        self._hook = hook

    def get(self, key: object, default: Any = None) -> Any:
        """As a dict's, without a lookup through ``__getitem__``."""
        return self._hook if key == self._key else default

    def __contains__(self, key: object) -> bool:
        return key == self._key

    def __getitem__(self, key: object) -> Any:
        if key != self._key:
            raise KeyError(key)
        return self._hook

    def __iter__(self) -> Iterator[Any]:
        return iter((self._key,))

    def __len__(self) -> int:
        return 1


def _with(hooks: Mapping[Any, Any], key: object, hook: object) -> Mapping[Any, Any]:
    """``hooks`` with ``key`` set to ``hook``, as a new map: hooks are registered while a
    tree is set up, a few times, so the copy costs nothing that matters. A map of
    module-level functions only is shared (``_SHARED_HOOKS``); a map of one other hook is a
    ``_OneHook``. The key is one for all equal keys (``_HOOK_KEYS``)."""
    key = _HOOK_KEYS.setdefault(key, key)
    new = {**hooks, key: hook}
    if all(isinstance(h, FunctionType) and "<locals>" not in h.__qualname__ for h in new.values()):
        return _SHARED_HOOKS.setdefault(frozenset(new.items()), new)  # never changed: copied
    return _OneHook(key, hook) if len(new) == 1 else new


def _same(held: object, new: object) -> bool:
    """Whether ``new`` is ``held`` for every reader of the tree, its encodings included:
    equal values of one type, and a float's sign too (0.0 == -0.0, but not in any format)."""
    if type(held) is not type(new):
        return False
    if isinstance(held, dict):
        assert isinstance(new, dict)
        return held.keys() == new.keys() and all(_same(held[k], new[k]) for k in held)
    if isinstance(held, float):
        assert isinstance(new, float)
        return held == new and math.copysign(1.0, held) == math.copysign(1.0, new)
    return held == new


_ResourceShape = tuple[int, tuple[int, ...] | None]
_InstanceShape = tuple[int, tuple[_ResourceShape, ...]]
_ObjectShape = tuple[int, tuple[_InstanceShape, ...]]
_Shape = tuple[_ObjectShape, ...]
"""A tree's objects, instances, resources and resource instances (None: single-instance),
without their values."""

_SHAPES: dict[_Shape, _Shape] = {}
"""One shape for all equal ones: the end devices of one kind of node have the same. The
distinct shapes are as many as the kinds of node, so none is ever dropped."""


@dataclass(frozen=True, slots=True)
class Change:
    """How the tree has changed since it was made: ``values`` counts value writes,
    ``structure`` counts instances created and deleted (what a registration Update carries)."""

    values: int
    structure: int


KEPT_READS = 64
"""How many instances' reads a tree keeps (``InstanceRead``) at most: the few a server reads
over and over (/3/0, a node's instance) stay, and a Read of every instance of a large tree
does not keep a copy of it."""


class InstanceRead:
    """What a Read of one instance answers: its readable records in path order, kept by the
    tree while nothing under the instance changes (``ObjectTree.instance_read``), and what
    content formats made of them (``encoded``, by Content-Format number), kept with them.

    A server reads the same instance over and over (/3/0, a node's latest values), and most of
    its values change seldom or never: building a path and a record per value, and encoding
    them again, was most of what such a Read cost. A codec's output is a function of the
    records, the instance path and the definitions alone, so the bytes are those the codec
    gives the records now. Nothing may change ``records`` or a kept encoding."""

    __slots__ = ("encoded", "records")

    def __init__(self, records: tuple[Record, ...]) -> None:
        self.records = records
        self.encoded: dict[int, bytes] = {}


@dataclass(frozen=True, slots=True)
class FrozenTree:
    """A tree's content in a few tuples (``ObjectTree.frozen``): its shape, shared by every
    tree of that shape, and its values in the shape's order. A dict per object and per
    instance was about 1.5 KB of each end device, and most end devices are only looked at
    when a server reads them or their node reports."""

    shape: _Shape
    values: tuple[Value, ...]
    changed_values: int
    changed_structure: int
    """The tree's ``change`` (two ints: a ``Change`` each was 0.5 MB of 10,000 end devices)."""


class ObjectTree:
    """Objects → instances → resources, checked against the object definitions."""

    __slots__ = (
        "_computed",
        "_constraints",
        "_executors",
        "_listeners",
        "_objects",
        "_reads",
        "_resting",
        "_structure",
        "_times",
        "_values",
        "_watching",
        "definitions",
        "prefix",
    )

    def __init__(self, definitions: Definitions, prefix: str | None = None) -> None:
        self.definitions = definitions
        self.prefix = prefix
        self._objects: dict[int, dict[int, dict[int, _ResourceSlot]]] = {}
        self._reads: dict[tuple[int, int], InstanceRead] | None = None
        """The instances' kept reads; None until one is kept (most trees are never read)."""
        self._times: dict[tuple[int, ...], float] = _NO_TIMES
        """Each value's time of measurement, by its path's IDs (every path in a tree has its
        prefix): a tuple's hash and equality are the interpreter's own, where a ``Path``'s
        are Python calls, and a node's reading comes with a path made anew (its upstream
        path), which its key was compared with, a call more, at every reading. The shared
        empty dict until the first (most trees have none: an end device's, a quiet node
        endpoint's, 64 bytes each, issue 17)."""
        self._listeners: Listeners[Listener] = Listeners("object tree changes")
        self._watching: tuple[int, ...] = ()
        """The objects whose value changes the listeners are told of (``subscribe``), once per
        listener that watches each (``EVERY``: all of them); a shared tuple (``_watching``),
        as a set or a count each was memory per tree, and its ``in`` as cheap for the few."""
        self._executors: Mapping[tuple[int, int], ExecuteHandler] = _NO_HOOKS
        self._computed: Mapping[tuple[int, int], _ComputedResources] = _NO_HOOKS
        """By instance (object and instance ID), as a Read asks for an instance's."""
        self._constraints: Mapping[tuple[int, int], Constraint] = _NO_HOOKS
        self._values = 0
        self._structure = 0
        self._resting: FrozenTree | None = None
        """The objects while the tree is at rest (``rest``); ``_objects`` is then unset."""

    # -- a compact copy -----------------------------------------------------------------------

    def frozen(self) -> FrozenTree | None:
        """The tree's content as a ``FrozenTree``, or None when it holds what one does not
        keep: a time of measurement, or an executor, computed value or constraint."""
        if self._times or self._executors or self._computed or self._constraints:
            return None
        return self._freeze()

    def _freeze(self) -> FrozenTree:
        """The objects, instances and values as a ``FrozenTree`` (hooks and times not)."""
        values: list[Value] = []
        shape: list[_ObjectShape] = []
        for oid, instances in self._objects.items():
            shaped_instances: list[_InstanceShape] = []
            for iid, resources in instances.items():
                shaped_resources: list[_ResourceShape] = []
                for rid, slot in resources.items():
                    if isinstance(slot, dict):
                        shaped_resources.append((rid, tuple(slot)))
                        values.extend(slot.values())
                    else:
                        shaped_resources.append((rid, None))
                        values.append(slot)
                shaped_instances.append((iid, tuple(shaped_resources)))
            shape.append((oid, tuple(shaped_instances)))
        key = tuple(shape)
        return FrozenTree(
            _SHAPES.setdefault(key, key), tuple(values), self._values, self._structure
        )

    @classmethod
    def thawed(cls, definitions: Definitions, prefix: str | None, frozen: FrozenTree) -> ObjectTree:
        """A tree (with no listeners) holding what ``frozen`` holds: what it was made from
        answers and changes as this one does."""
        tree = cls(definitions, prefix)
        tree._thaw(frozen)
        return tree

    def _thaw(self, frozen: FrozenTree) -> None:
        """Hold what ``frozen`` holds as objects, instances and resources again."""
        values = iter(frozen.values)
        self._objects = {
            oid: {
                iid: {
                    rid: next(values) if riids is None else {ri: next(values) for ri in riids}
                    for rid, riids in resources
                }
                for iid, resources in instances
            }
            for oid, instances in frozen.shape
        }
        self._values, self._structure = frozen.changed_values, frozen.changed_structure

    # -- at rest -----------------------------------------------------------------------------

    def rest(self) -> None:
        """Hold the objects as a ``FrozenTree`` until the tree is next used, which thaws them
        (``__getattr__``): for a tree that is seldom used but must stay the one object its
        users hold (a node endpoint's: its client, sessions and observations keep it). Its
        listeners, hooks and times of measurement stay as they are; its kept reads go."""
        if self._resting is None:
            self._resting = self._freeze()
            self._reads = None
            del self._objects

    @property
    def resting(self) -> bool:
        """Whether the objects are held frozen (``rest``) now."""
        return self._resting is not None

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any attribute name

        def __getattr__(self, name: str) -> Any:
            """Called only for an attribute that is not set: the objects of a tree at rest, thawed
            on first use, whatever the use (so no caller needs to know it rested)."""
            frozen = self._resting if name == "_objects" else None
            if frozen is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            self._resting = None
            self._thaw(frozen)
            return self._objects

    # -- observation of changes -------------------------------------------------------------

    def subscribe(self, listener: Listener, values: Iterable[int] = (EVERY,)) -> Callable[[], None]:
        """Call ``listener`` on every change of the structure (objects and instances created
        and deleted) and on every value change of the objects ``values`` (``EVERY``, the
        default: of all); returns the function that unsubscribes it. A listener that raises is
        logged, and the others are still told (``Listeners``).

        A listener is told *at least* that: a value change of an object somebody watches is
        told to every listener, which ignores what it does not need, as it did before; a
        value change of an object nobody watches (a node's reading that no server observes,
        nearly every change) is told to nobody, and its path is not even built (``put``).
        Nearly every listener needs a few objects' values (the client's registration, the
        observations' observed paths, access control's /2), and each reading paid a call of
        each of them, and of ``Listeners``, to find that out."""
        self.watch(*values)
        stop = self._listeners.add(listener)

        def unsubscribe() -> None:
            stop()
            self.unwatch(*values)

        return unsubscribe

    def unsubscribe(self, listener: Listener, values: Iterable[int] = (EVERY,)) -> None:
        """Stop calling ``listener`` (one equal to it, subscribed with these ``values``): for a
        subscriber that keeps no function to unsubscribe, as every node endpoint's client (48
        bytes each, issue 17)."""
        if listener in self._listeners:
            self._listeners.discard(listener)
            self.unwatch(*values)

    def watch(self, *objects: int) -> None:
        """Tell the listeners of the value changes of ``objects`` too (``EVERY``: of all), for
        a listener whose interest moves (an observation made): once ``unwatch`` for each."""
        if objects:
            self._watching = _watching((*self._watching, *objects))

    def unwatch(self, *objects: int) -> None:
        """Undo one ``watch`` of each of ``objects`` (one not watched is ignored)."""
        if objects:
            rest = list(self._watching)
            for oid in objects:
                if oid in rest:
                    rest.remove(oid)
            self._watching = _watching(rest)

    def watched(self, oid: int) -> bool:
        """Whether a value change of object ``oid`` is told to the listeners (``subscribe``)."""
        watching = self._watching
        return EVERY in watching or oid in watching

    @property
    def change(self) -> Change:
        return Change(self._values, self._structure)

    def _changed(self, path: Path, structural: bool = False) -> None:
        if structural:
            self._structure += 1
        else:
            self._values += 1
        if self._reads:
            self._forget(path.ids)
        if structural or self.watched(path.ids[0]):
            self._listeners.call(path)

    def _forget(self, ids: tuple[int, ...]) -> None:
        """Drop the kept reads of the instances at or under the path of ``ids``."""
        reads = self._reads
        if not reads:
            return
        if len(ids) >= 2:
            reads.pop((ids[0], ids[1]), None)
        elif ids:
            for key in [key for key in reads if key[0] == ids[0]]:
                del reads[key]
        else:
            reads.clear()

    # -- structure ---------------------------------------------------------------------------

    def add_object(self, oid: int) -> None:
        """Make object ``oid`` present (with no instances yet); it must be defined."""
        self.definitions.get(oid)
        if oid not in self._objects:
            self._objects[oid] = {}
            self._changed(self._path((oid,)), structural=True)

    def object_ids(self) -> list[int]:
        return sorted(self._objects)

    def instance_ids(self, oid: int) -> list[int]:
        """The instance IDs of object ``oid`` in order; NotFound if the object is absent."""
        return sorted(self._object(oid))

    def free_instance_id(self, oid: int) -> int:
        """The lowest instance ID object ``oid`` does not use: the one a Create takes."""
        taken = self._objects.get(oid, {})
        return next(i for i in range(len(taken) + 1) if i not in taken)

    def has(self, path: Path) -> bool:
        """True if ``path`` exists in the tree: ``_locate``'s walk without its NotFound, whose
        message a start built for each of the 20,000 instances it checked before creating
        them (issue 17)."""
        if path.prefix != self.prefix:
            return False
        node: object = self._objects
        for i in path.ids:
            if not isinstance(node, dict) or i not in node:
                return False  # a single-instance resource has no resource instances
            node = node[i]
        return True

    def create_instance(
        self,
        oid: int,
        iid: int | None = None,
        values: Iterable[tuple[int, Value | dict[int, Value]]] = (),
    ) -> Path:
        """Create an instance (the lowest free ID when ``iid`` is None) with resource values.

        ``values`` are (resource ID, value) pairs; a multi-instance resource takes a
        ``{riid: value}`` dict. The object is added if absent. Returns the instance path.
        """
        odef = self.definitions.get(oid)
        instances = self._objects.get(oid, {})
        if iid is None:
            iid = self.free_instance_id(oid)
        if iid in instances:
            raise BadRequest(f"instance {self._path((oid, iid))} already exists")
        if not odef.multiple and instances:
            raise BadRequest(f"object {oid} ({odef.name}) is single-instance")
        resources: dict[int, _ResourceSlot] = {}
        for rid, value in values:
            resources[rid] = self._checked_slot(odef, rid, value)
        self._objects.setdefault(oid, {})[iid] = resources
        path = self._path((oid, iid))
        self._changed(path, structural=True)
        return path

    def delete_instance(self, oid: int, iid: int) -> None:
        instances = self._object(oid)
        if iid not in instances:
            raise NotFound(f"{self._path((oid, iid))} does not exist")
        del instances[iid]
        inst = self._path((oid, iid))
        for key in [key for key in self._times if key[:2] == inst.ids]:
            del self._times[key]
        self._changed(inst, structural=True)

    def remove_object(self, oid: int) -> None:
        """Remove object ``oid`` and all its instances (no-op when absent)."""
        if self._objects.pop(oid, None) is not None:
            obj = self._path((oid,))
            for key in [key for key in self._times if key[0] == oid]:
                del self._times[key]
            self._changed(obj, structural=True)

    # -- device-side access ------------------------------------------------------------------

    def set(self, path: Path, value: Value | dict[int, Value], time: float | None = None) -> None:
        """Set a resource (or resource instance) value from the device side.

        No operation check applies: the device may set read-only resources. The value is
        type- and range-checked; ``time`` records when it was measured (None: now)."""
        ids = path.ids
        if len(ids) < 3 or path.prefix != self.prefix:
            self._resource_ids(path)  # raises what is wrong with it
        self.put(ids, value, time, path)

    def put(
        self,
        ids: tuple[int, ...],
        value: Value | dict[int, Value],
        time: float | None = None,
        path: Path | None = None,
    ) -> None:
        """``set`` of the resource (or resource instance) of this tree's at ``ids``, 3 or 4 of
        them (a mapping's, checked by it: ``PathMap.placed``), whose ``Path`` is ``path`` or
        built only when a listener is told of it (``subscribe``). Every reading a node
        reports comes here, with one call: the lookups that find it are made inline (their
        checks' errors, when they fail), and a value change nobody watches tells nobody."""
        oid, iid, rid = ids[0], ids[1], ids[2]
        try:
            odef, resources = self.definitions.objects[oid], self._objects[oid][iid]
        except KeyError:
            odef, resources = self.definitions.get(oid), self._instance(oid, iid)
        if len(ids) == 4:
            rdef = odef.resource(rid)
            if not rdef.multiple:
                raise BadRequest(f"{self._path(ids)}: resource {rid} has no instances")
            slot = resources.setdefault(rid, {})
            assert isinstance(slot, dict)
            slot[ids[3]] = self._checked(oid, rdef, value)
        else:
            single = odef.resources.get(rid)
            if single is None or single.multiple or (oid, rid) in self._constraints:
                resources[rid] = self._checked_slot(odef, rid, value)
            elif type(value) is float and single.plain_float and _isfinite(value):
                # A sensor's reading, nearly every value set here: any finite float is a value
                # of it (``ResourceDef.plain_float``), taken with no call at all.
                resources[rid] = value
            else:  # a reading's resource: its value checked with no call more than that
                if isinstance(value, dict):
                    raise BadRequest(f"resource {rid} ({single.name}) is single-instance")
                resources[rid] = check_value(single, value)
        if time is None:
            self._times.pop(ids, None)
        elif self._times is _NO_TIMES:
            self._times = {ids: time}
        else:
            self._times[ids] = time
        self._values += 1  # ``_changed``, inline
        if self._reads:
            self._forget(ids)
        watching = self._watching  # ``watched``, inline
        if EVERY in watching or oid in watching:
            self._listeners.call(Path.derived(ids, self.prefix) if path is None else path)

    def remove(self, path: Path) -> None:
        """Remove a resource or resource-instance value from the device side (no-op if absent),
        for a fact that is no longer known."""
        oid, iid, rid = self._resource_ids(path)
        resources = self._instance(oid, iid)
        slot = resources.get(rid)
        if path.level is Level.RESOURCE_INSTANCE:
            if not isinstance(slot, dict) or path.ids[3] not in slot:
                return
            del slot[path.ids[3]]
        elif rid in resources:
            del resources[rid]
        else:
            return
        ids = path.ids
        for key in [key for key in self._times if key[: len(ids)] == ids]:
            del self._times[key]
        self._changed(path)

    def constrain(self, oid: int, rid: int, check: Constraint) -> None:
        """Check every value of resource ``rid`` of object ``oid`` with ``check`` as well, from
        a server's Write or Create and from the device side alike: for a rule the definitions
        cannot state, such as the letters of a /1 Binding, whose values the OMA registry leaves to
        the Core specification."""
        self.definitions.resource(oid, rid)
        self._constraints = _with(self._constraints, (oid, rid), check)

    def compute(self, path: Path, value: Computed) -> None:
        """Give the resource at ``path`` the value of ``value()`` whenever it is read (``read``,
        ``get``), for a value that changes with time, such as a clock or the free memory: it is
        current whenever a server reads it or is notified of it, and nothing runs to keep it
        so while nobody looks. Such a value reports no change (it changes all the time), so an
        observation of it notifies at its pmax. ``value`` returns None when it does not know:
        the last value stays. The resource must exist; a Write of it stands until the next
        read, as the value is then the computed one again.
        """
        oid, iid, _ = self._resource_ids(path)
        self._locate(path)
        target = path.truncate(Level.RESOURCE)
        others = tuple(c for c in self._computed.get((oid, iid), ()) if c[0] != target)
        self._computed = _with(self._computed, (oid, iid), (*others, (target, value)))

    def _recompute(self, path: Path) -> None:
        """Bring the computed resources at, under or above ``path`` up to date, silently. A
        value that is not the one the tree holds drops its instance's kept read."""
        computed = self._computed
        if not computed or path.prefix != self.prefix:
            return
        ids = path.ids
        if len(ids) >= 2:
            found = computed.get((ids[0], ids[1]))
            groups: Iterable[_ComputedResources] = () if found is None else (found,)
        else:
            groups = [group for key, group in computed.items() if not ids or key[0] == ids[0]]
        times = self._times
        for group in groups:
            for target, compute in group:
                oid, iid, rid = target.ids
                if len(ids) >= 3 and rid != ids[2]:
                    continue
                resources = self._objects.get(oid, {}).get(iid)
                if resources is None or rid not in resources:
                    continue  # gone since (a deleted instance, a removed value)
                value = compute()
                if value is None:
                    continue
                held, timed = resources[rid], bool(times) and target.ids in times
                if _same(held, value) and not timed:
                    continue  # what the tree holds, checked when it went in
                slot = self._checked_slot(self.definitions.get(oid), rid, value)
                if _same(held, slot) and not timed:
                    continue  # the same once checked (an int for a Float: a float)
                resources[rid] = slot
                times.pop(target.ids, None)  # no time of measurement: it is now
                self._forget(target.ids)

    def get(self, path: Path) -> Value | dict[int, Value]:
        """The value at a resource or resource-instance path; NotFound if absent."""
        self._recompute(path)
        node = self._locate(path)
        if path.level < Level.RESOURCE:
            raise BadRequest(f"{path} is not a resource")
        return dict(node) if isinstance(node, dict) else cast(Value, node)

    def on_execute(self, oid: int, rid: int, handler: ExecuteHandler) -> None:
        """Run ``handler`` when a server executes resource ``rid`` of any instance of ``oid``.

        An executable resource is present (listed by Discover, executable) only once it has a
        handler; executing one without a handler is 4.04.
        """
        if not self.definitions.resource(oid, rid).operations.executable:
            raise BadRequest(f"resource /{oid}/x/{rid} is not executable")
        self._executors = _with(self._executors, (oid, rid), handler)

    # -- server operations -------------------------------------------------------------------

    def read(self, path: Path) -> list[Record]:
        """Server Read: the readable values at or under ``path``, in path order.

        Reading a resource that is not readable is 4.05; an absent path is 4.04. An instance
        that ``instance_read`` keeps is answered from what it keeps.
        """
        if path.level >= Level.RESOURCE:
            self._locate(path.truncate(Level.INSTANCE))
            rdef = self.definitions.resource(path.ids[0], path.ids[2])
            if not rdef.operations.readable:
                raise MethodNotAllowed(f"{path} ({rdef.name}) is not readable")
        elif len(path.ids) == 2:
            # A Read of every end device's instance (``read_node``) keeps none.
            kept, _ = self._kept_read(path)
            return list(self._instance_records(path) if kept is None else kept.records)
        self._recompute(path)
        node = self._locate(path)
        out: list[Record] = []
        self._collect(path, node, out)
        return out

    def instance_read(self, path: Path) -> InstanceRead:
        """A server's Read of instance ``path`` (4.04 when absent), kept while nothing under
        the instance changes (``InstanceRead``): what ``read`` answers, with what codecs
        made of it. At most ``KEPT_READS`` instances are kept; the first kept goes first."""
        if len(path.ids) != 2:
            raise BadRequest(f"{path} is not an instance path")
        kept, key = self._kept_read(path)
        if kept is None:
            kept = InstanceRead(self._instance_records(path))
            reads = self._reads
            if reads is None:
                reads = self._reads = {}
            elif len(reads) >= KEPT_READS:
                del reads[next(iter(reads))]
            reads[key] = kept
        return kept

    def _kept_read(self, path: Path) -> tuple[InstanceRead | None, tuple[int, int]]:
        """The kept read of instance ``path`` (None if none) with its key, once its computed
        values are brought up to date (which drops it when one changed)."""
        self._recompute(path)
        self._check_prefix(path)
        key = (path.ids[0], path.ids[1])
        reads = self._reads
        return (None if reads is None else reads.get(key)), key

    def _instance_records(self, path: Path) -> tuple[Record, ...]:
        """The records of a Read of instance ``path``, built."""
        out: list[Record] = []
        self._collect(path, self._instance(path.ids[0], path.ids[1]), out)
        return tuple(out)

    def write(self, path: Path, records: Sequence[Record], *, replace: bool) -> None:
        """Server Write on an instance, resource or resource instance.

        ``replace`` (PUT) replaces the target: at instance level, writable resources absent
        from ``records`` are removed; at resource level a multi-instance resource keeps only
        the given instances. Otherwise (POST) it is a partial update. Everything is checked
        before anything changes, so a rejected write leaves the tree as it was.
        """
        if path.level < Level.INSTANCE:
            raise MethodNotAllowed(f"write on {path}: target an instance or a resource")
        oid, iid = path.ids[0], path.ids[1]
        odef = self.definitions.get(oid)
        resources = self._instance(oid, iid)
        staged = self._stage(odef, path, records)
        if replace and path.level is Level.INSTANCE:
            for rid in [r for r in resources if odef.resource(r).operations.writable]:
                if rid not in staged and not odef.resource(rid).mandatory:
                    del resources[rid]
        merge = not replace or path.level is Level.RESOURCE_INSTANCE
        self._forget(path.ids)  # a replace with no records still removed resources
        for rid, slot in staged.items():
            existing = resources.get(rid)
            if merge and isinstance(slot, dict) and isinstance(existing, dict):
                existing.update(slot)
            else:
                resources[rid] = slot
        for rec in records:
            self._times.pop(rec.path.ids, None)
            self._changed(rec.path.with_prefix(self.prefix))

    def create(self, path: Path, records: Sequence[Record], *, iid: int | None = None) -> Path:
        """Server Create on an object path: a new instance from ``records``.

        The records' instance ID, when they carry one, is the new instance's ID, else ``iid``,
        else the lowest free ID. Returns the new instance path. An instance without all its
        object's mandatory resources (but the executable ones, which hold no value) is 4.00
        (LwM2M Create: "Mandatory Resources are not specified"): a read-only one, a sensor
        value, a server cannot give, and nothing would ever set it in an instance the device
        did not make itself.
        """
        if path.level is not Level.OBJECT:
            raise MethodNotAllowed(f"create on {path}: target an object")
        oid = path.ids[0]
        odef = self.definitions.get(oid)
        iids = {r.path.ids[1] for r in records if len(r.path.ids) > 1}
        if len(iids) > 1:
            raise BadRequest("create carries one instance at a time")
        iid = iids.pop() if iids else iid
        staged = self._stage(odef, None, records)
        missing = [
            r
            for r in odef.resources.values()
            if r.mandatory and not r.operations.executable and r.id not in staged
        ]
        if missing:
            names = ", ".join(f"{r.id} ({r.name})" for r in missing)
            raise BadRequest(f"create on {path}: mandatory resources missing: {names}")
        return self.create_instance(oid, iid, staged.items())

    def delete(self, path: Path) -> None:
        """Server Delete of an object instance (the Device instance /3/0 cannot go)."""
        if path.level is not Level.INSTANCE:
            raise MethodNotAllowed(f"delete on {path}: target an instance")
        if path.ids == DEVICE_PATH.ids:
            raise MethodNotAllowed("/3/0 cannot be deleted")
        self.delete_instance(path.ids[0], path.ids[1])

    def execute(self, path: Path, arguments: str = "") -> None:
        """Server Execute on a resource: 4.05 unless it is executable, 4.04 when absent."""
        if path.level is not Level.RESOURCE:
            raise MethodNotAllowed(f"execute on {path}: target a resource")
        oid, iid, rid = path.ids
        rdef = self.definitions.resource(oid, rid)
        self._instance(oid, iid)
        if not rdef.operations.executable:
            raise MethodNotAllowed(f"{path} ({rdef.name}) is not executable")
        handler = self._executors.get((oid, rid))
        if handler is None:
            raise NotFound(f"{path} ({rdef.name}) is not implemented here")
        handler(path, arguments)

    # -- iteration ---------------------------------------------------------------------------

    def instances(self, within: Path | None = None) -> Iterator[Path]:
        """Every instance path at or under ``within`` (the whole tree when None), in order:
        the registration's object list, an object's instances for its Discover. Only what
        ``within`` holds is visited, so that a Discover of one instance among thousands is
        not a pass over them all; NotFound when ``within`` does not exist."""
        if within is None:
            within = self._path(())
        node = self._locate(within)
        if within.level is Level.INSTANCE:
            yield within
        elif within.level is Level.OBJECT:
            assert isinstance(node, dict)
            yield from (within.child(iid) for iid in sorted(node))
        elif within.level is Level.ROOT:
            for oid in sorted(self._objects):
                yield from self.instances(within.child(oid))

    def objects(self) -> Iterator[tuple[ObjectDef, list[int]]]:
        """Each present object's definition with its instance IDs, in order."""
        for oid in sorted(self._objects):
            yield self.definitions.get(oid), sorted(self._objects[oid])

    def resource_paths(self, path: Path) -> list[Path]:
        """The resource and resource-instance paths at or under ``path`` (for Discover)."""
        node = self._locate(path)
        out: list[Path] = []
        self._walk_paths(path, node, out)
        return out

    # -- internals ---------------------------------------------------------------------------

    def _path(self, ids: tuple[int, ...]) -> Path:
        return Path(ids, self.prefix)

    def _object(self, oid: int) -> dict[int, dict[int, _ResourceSlot]]:
        try:
            return self._objects[oid]
        except KeyError:
            raise NotFound(f"{self._path((oid,))} does not exist") from None

    def _instance(self, oid: int, iid: int) -> dict[int, _ResourceSlot]:
        try:
            return self._objects[oid][iid]
        except KeyError:
            self._object(oid)  # NotFound naming the object, when it is the object that is absent
            raise NotFound(f"{self._path((oid, iid))} does not exist") from None

    def _resource_ids(self, path: Path) -> tuple[int, int, int]:
        ids = path.ids
        if len(ids) < 3:
            raise BadRequest(f"{path} is not a resource path")
        self._check_prefix(path)
        return ids[0], ids[1], ids[2]

    def _check_prefix(self, path: Path) -> None:
        if path.prefix != self.prefix:
            raise NotFound(f"{path} is not in this tree")

    def _locate(self, path: Path) -> object:
        """The node at ``path``: the objects map, an object, an instance, a slot or a value."""
        self._check_prefix(path)
        node: object = self._objects
        for depth, i in enumerate(path.ids):
            assert isinstance(node, dict)
            if i not in node:
                raise NotFound(f"{path.truncate(Level(depth + 1))} does not exist")
            node = node[i]
            if depth == 2 and not isinstance(node, dict) and len(path.ids) == 4:
                raise NotFound(f"{path}: resource {i} has no instances")
        return node

    def _checked_slot(self, odef: ObjectDef, rid: int, value: object) -> _ResourceSlot:
        rdef = odef.resource(rid)
        if rdef.multiple:
            if not isinstance(value, dict):
                raise BadRequest(f"resource {rid} ({rdef.name}) takes resource instances")
            return {int(ri): self._checked(odef.id, rdef, v) for ri, v in value.items()}
        if isinstance(value, dict):
            raise BadRequest(f"resource {rid} ({rdef.name}) is single-instance")
        return self._checked(odef.id, rdef, value)

    def _checked(self, oid: int, rdef: ResourceDef, value: object) -> Value:
        """``value`` checked against its definition and the resource's ``constrain`` check."""
        checked = check_value(rdef, value)
        constraint = self._constraints.get((oid, rdef.id))
        if constraint is not None:
            constraint(checked)
        return checked

    def _stage(
        self, odef: ObjectDef, target: Path | None, records: Sequence[Record]
    ) -> dict[int, _ResourceSlot]:
        """Check records for a write or create and group them by resource ID."""
        staged: dict[int, _ResourceSlot] = {}
        for rec in records:
            p = rec.path
            if target is not None and not target.without_prefix().contains(p.without_prefix()):
                raise BadRequest(f"{p} is outside the target {target}")
            if p.level < Level.RESOURCE or p.ids[0] != odef.id:
                raise BadRequest(f"{p} is not a resource of object {odef.id}")
            rdef: ResourceDef = odef.resource(p.ids[2])
            if not rdef.operations.writable:
                raise MethodNotAllowed(f"{p} ({rdef.name}) is not writable")
            value = self._checked(odef.id, rdef, rec.value)
            if p.level is Level.RESOURCE_INSTANCE:
                if not rdef.multiple:
                    raise BadRequest(f"{p}: resource {rdef.id} has no instances")
                slot = staged.setdefault(rdef.id, {})
                assert isinstance(slot, dict)
                slot[p.ids[3]] = value
            elif rdef.multiple:
                raise BadRequest(f"{p} ({rdef.name}) takes resource instances")
            else:
                staged[rdef.id] = value
        return staged

    def _collect(self, path: Path, node: object, out: list[Record]) -> None:
        # The tree's keys are IDs checked when they went in: the paths under ``path`` are
        # built without checking them again (``Path.derived``), as every Read builds one per
        # value it answers.
        level = path.level
        ids, prefix = path.ids, path.prefix
        if level >= Level.RESOURCE and not isinstance(node, dict):
            out.append(Record(path, cast(Value, node), self._times.get(ids)))
            return
        if level == Level.RESOURCE:
            assert isinstance(node, dict)
            for ri in sorted(node):
                rip = Path.derived((*ids, ri), prefix)
                out.append(Record(rip, node[ri], self._times.get(rip.ids, self._times.get(ids))))
            return
        assert isinstance(node, dict)
        if level == Level.INSTANCE:
            readable = self.definitions.get(ids[0]).readable_ids
            times = self._times
            for rid in sorted(node):
                if rid not in readable:
                    continue
                slot, rp = node[rid], Path.derived((*ids, rid), prefix)
                if isinstance(slot, dict):
                    self._collect(rp, slot, out)
                else:  # a single-instance resource, the most common: no call for it
                    out.append(Record(rp, slot, times.get(rp.ids) if times else None))
            return
        for i in sorted(node):
            self._collect(Path.derived((*ids, i), prefix), node[i], out)

    def _walk_paths(self, path: Path, node: object, out: list[Path]) -> None:
        if path.level >= Level.RESOURCE:
            out.append(path)
            if isinstance(node, dict) and path.level == Level.RESOURCE:
                out.extend(path.child(ri) for ri in sorted(node))
            return
        assert isinstance(node, dict)
        if path.level is Level.INSTANCE:
            executables = {rid for (oid, rid) in self._executors if oid == path.ids[0]}
            for rid in sorted(node.keys() | executables):
                self._walk_paths(path.child(rid), node.get(rid), out)
            return
        for i in sorted(node):
            self._walk_paths(path.child(i), node[i], out)
