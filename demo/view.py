"""What the LwM2M server sees, as text: the demo's screen, without I/O.

`ServerView` is fed what the server receives (registrations and their object lists,
notifications decoded to SenML records, and the demo's own lines: commands it runs and what
they answered) and keeps it. It renders two ways:

* ``render()``: the whole screen, redrawn on a terminal: the endpoint and its objects, the
  story so far (what the demo did and what the server saw, the pairing included: never pushed
  out by values), and a table of the node-backed values, each with its node, what it is
  (the object's name, a Generic Sensor's type, the resource's name unless it is the Sensor
  Value) and how often it changed; rows that do not fit the terminal are counted, not shown;
* the lines ``event``, ``notified``, ``updated`` and ``deregistered`` return, printed one after
  the other when stdout is not a terminal (a log, or a test reading the demo's output).
"""

from __future__ import annotations

import re
import textwrap
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bridged.objects.builtin import builtin_definitions
from bridged.objects.errors import NotFound
from bridged.objects.ids import Ipso, IpsoResource

METADATA = frozenset(
    {IpsoResource.SENSOR_UNITS, IpsoResource.APPLICATION_TYPE, IpsoResource.SENSOR_TYPE}
)
"""Resources shown beside a value rather than as values of their own."""

STORY_LINES = 24
"""The demo's whole story fits (about 16 lines); a longer run keeps the latest."""

UNIT_SIGNS = {"Cel": "°C"}
"""UCUM codes (5701 Sensor Units) a reader knows better by their sign."""

DEFINITIONS = builtin_definitions()

_LINK = re.compile(r"<(/[0-9/]*)>")


def object_list(links: str) -> dict[int, list[int]]:
    """The objects and instances of a Register or Update payload (CoRE link format)."""
    objects: dict[int, list[int]] = {}
    for target in _LINK.findall(links):
        ids = [int(s) for s in target.strip("/").split("/") if s]
        if not ids:
            continue
        instances = objects.setdefault(ids[0], [])
        if len(ids) > 1 and ids[1] not in instances:
            instances.append(ids[1])
    return {oid: sorted(iids) for oid, iids in sorted(objects.items())}


def node_instances(objects: dict[int, list[int]]) -> list[str]:
    """The node-backed instances (``/3303/0``) among ``objects``: what the demo observes."""
    return [f"/{oid}/{iid}" for oid, iids in objects.items() if oid >= Ipso.FIRST for iid in iids]


def objects_text(objects: dict[int, list[int]]) -> str:
    """``/1[0] /3303[0,1]``: objects with their instances."""
    return " ".join(
        f"/{oid}" + (f"[{','.join(map(str, iids))}]" if iids else "")
        for oid, iids in objects.items()
    )


def show(value: object) -> str:
    """A value as the table shows it: floats to two decimals at most."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{round(value, 2):g}"
    return str(value)


@dataclass
class Value:
    """One node-backed resource as the server last heard it."""

    path: str
    value: object
    changes: int = 0


class ServerView:
    """The server's picture of the gateway (module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.endpoint: str | None = None
        self.registered = False
        self.registration = ""
        self.objects: dict[int, list[int]] = {}
        self.values: dict[str, Value] = {}
        self.names: dict[str, str] = {}  # instance path -> 5750
        self.units: dict[str, str] = {}  # instance path -> 5701
        self.kinds: dict[str, str] = {}  # instance path -> 5751
        self.story: deque[str] = deque(maxlen=STORY_LINES)

    def _line(self, text: str) -> str:
        return f"{time.strftime('%H:%M:%S', time.localtime(self._clock()))}  {text}"

    def event(self, text: str) -> str:
        """Note ``text`` in the story; returns its line."""
        line = self._line(text)
        self.story.append(line)
        return line

    def registered_as(self, endpoint: str, query: dict[str, str | None], links: str) -> str:
        self.endpoint = endpoint
        self.registered = True
        self.registration = (
            f"lifetime {query.get('lt')} s, LwM2M {query.get('lwm2m') or '1.0'}, "
            f"binding {query.get('b') or 'U'}"
        )
        self.objects = object_list(links)
        return self.event(f"server: {endpoint} registered: {objects_text(self.objects)}")

    def updated(self, endpoint: str, links: str) -> str:
        """An Update: with an object list, what it added and removed."""
        if not links:
            return self.event(f"server: {endpoint} updated its registration")
        before, self.objects = self.objects, object_list(links)
        for path in [p for p in self.values if not self._listed(p)]:
            del self.values[path]
        changes = [
            f"{word} {objects_text(diff)}"
            for word, diff in (
                ("new", _minus(self.objects, before)),
                ("gone", _minus(before, self.objects)),
            )
            if diff
        ]
        return self.event(
            f"server: {endpoint} updated its objects: {'; '.join(changes) or 'no change'}"
        )

    def deregistered(self, endpoint: str) -> str:
        self.registered = False
        return self.event(f"server: {endpoint} de-registered")

    def _listed(self, path: str) -> bool:
        ids = [int(s) for s in path.strip("/").split("/")]
        return ids[1] in self.objects.get(ids[0], [])

    def notified(self, records: Iterable[tuple[str, object]]) -> list[str]:
        """A notification's (name, value) records; returns a line per value that changed."""
        records = list(records)
        lines = []
        for path, value in records:
            ids = path.strip("/").split("/")
            if len(ids) < 3:
                continue
            instance, rid = "/" + "/".join(ids[:2]), int(ids[2])
            if rid == IpsoResource.APPLICATION_TYPE:
                self.names[instance] = str(value)
            elif rid == IpsoResource.SENSOR_UNITS:
                self.units[instance] = UNIT_SIGNS.get(str(value), str(value))
            elif rid == IpsoResource.SENSOR_TYPE:
                self.kinds[instance] = str(value).replace("_", " ")
        for path, value in records:
            ids = path.strip("/").split("/")
            if len(ids) < 3 or int(ids[2]) in METADATA:
                continue
            known = self.values.get(path)
            if known is None:
                self.values[path] = known = Value(path, value)
            elif known.value == value:
                continue
            else:
                known.value = value
                known.changes += 1
            lines.append(
                self._line(
                    f"{self.node(path) or '?'}  {self.what(path)} = {self.shown(path)}  ({path})"
                )
            )
        return lines

    def node(self, path: str) -> str:
        """Whose value it is: its instance's 5750 Application Type, the node's name."""
        return self.names.get(_instance(path), "")

    def what(self, path: str) -> str:
        """What the value is: a Generic Sensor's type (5751), else the object's name, with the
        resource's name unless it is the Sensor Value (``Accelerometer X Value``)."""
        oid, rid = (int(s) for s in path.strip("/").split("/")[::2])
        kind = self.kinds.get(_instance(path)) if oid == Ipso.GENERIC_SENSOR else None
        try:
            odef = DEFINITIONS.get(oid)
        except NotFound:
            return f"object {oid} resource {rid}"
        name = kind or odef.name
        if rid == IpsoResource.SENSOR_VALUE or rid not in odef.resources:
            return name
        return f"{name} {odef.resources[rid].name}"

    def shown(self, path: str) -> str:
        """The value with its unit."""
        return f"{show(self.values[path].value)} {self.units.get(_instance(path), '')}".rstrip()

    def render(self, title: str, height: int | None = None, width: int | None = None) -> str:
        """The whole screen; in ``height`` lines of ``width`` columns when given: the story's
        latest lines and the value rows that fit, each part at least half the room it needs."""
        head = [title]
        if self.endpoint is None:
            head.append("LwM2M server: waiting for the gateway to register")
        else:
            state = "registered" if self.registered else "de-registered"
            head.append(f"server sees {self.endpoint}: {state} ({self.registration})")
            head.append(f"objects: {objects_text(self.objects)}")
        head = [part for line in head for part in _wrapped(line, width, "  ")]
        entries = [_wrapped(f"  {line}", width, " " * 12) for line in self.story]
        rows = [
            f"{self.node(path):<16.16} {self.what(path):<24.24} "
            f"{show(self.values[path].value):>9} {self.units.get(_instance(path), ''):<4} "
            f"{self.values[path].changes:>7}  {path}"
            for path in sorted(self.values, key=lambda p: (self.node(p), _path_key(p)))
        ] or ["(no node-backed values yet)"]
        header = f"{'node':<16} {'what':<24} {'value':>9} {'unit':<4} {'changes':>7}  path"
        needed = sum(map(len, entries))
        room = needed + len(rows) if height is None else height - len(head) - 4
        story = _latest(entries, max(min(needed, room - len(rows)), min(needed, room // 2), 1))
        more = "... {} more (a taller terminal shows them)"
        rows = _fitted(rows, max(room - len(story), 1), more)
        out = [*head, "", "what happened:", *story, "", header[:width], *rows]
        return "\n".join(line[:width] for line in out)


def _wrapped(line: str, width: int | None, indent: str) -> list[str]:
    if width is None or len(line) <= width:
        return [line]
    return textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False)


def _fitted(lines: list[str], room: int, more: str) -> list[str]:
    """``lines`` in ``room`` lines: the first that fit and a line that counts the others."""
    if len(lines) <= room:
        return lines
    kept = max(room - 1, 0)
    return [*lines[:kept], more.format(len(lines) - kept)]


def _latest(entries: list[list[str]], room: int) -> list[str]:
    """The latest whole entries (lines, each wrapped) that fit in ``room`` lines, after a line
    that counts the others."""
    kept: list[str] = []
    for count, entry in enumerate(reversed(entries)):
        if len(kept) + len(entry) > room - (count < len(entries) - 1):
            return [f"  ({len(entries) - count} earlier)", *kept]
        kept = entry + kept
    return kept


def _instance(path: str) -> str:
    return "/" + "/".join(path.strip("/").split("/")[:2])


def _minus(objects: dict[int, list[int]], other: dict[int, list[int]]) -> dict[int, list[int]]:
    """The instances of ``objects`` that ``other`` does not list."""
    diff = {oid: [i for i in iids if i not in other.get(oid, [])] for oid, iids in objects.items()}
    return {oid: iids for oid, iids in diff.items() if iids or oid not in other}


def _path_key(path: str) -> tuple[int, ...]:
    return tuple(int(s) for s in path.strip("/").split("/"))
