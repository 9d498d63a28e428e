"""What the LwM2M server sees, as text: the demo's screen, without I/O.

`ServerView` is fed what the server receives (registrations and their object lists,
notifications decoded to SenML records, and the demo's own lines: commands it runs and what
they answered) and keeps it. It renders two ways:

* ``render()``: the whole screen (the endpoint, its objects and instances, a table of the
  node-backed values with how often each changed, and the latest events), redrawn on a
  terminal;
* the lines ``event``, ``values`` and ``deregistered`` return, printed one after the other
  when stdout is not a terminal (a log, or a test reading the demo's output).
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

UNITS, APPLICATION_TYPE, SENSOR_TYPE = 5701, 5750, 5751
METADATA = frozenset({UNITS, APPLICATION_TYPE, SENSOR_TYPE})
"""Resources shown beside a value rather than as values of their own."""

NODE_OBJECTS = 3200
"""Node-backed objects are IPSO objects (3200 and up); below are the gateway's own."""

EVENT_LINES = 8

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
    return [f"/{oid}/{iid}" for oid, iids in objects.items() if oid >= NODE_OBJECTS for iid in iids]


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
        self.events: deque[str] = deque(maxlen=EVENT_LINES)

    def event(self, text: str) -> str:
        """Note ``text`` among the latest events; returns its line."""
        line = f"{time.strftime('%H:%M:%S', time.localtime(self._clock()))}  {text}"
        self.events.append(line)
        return line

    def registered_as(self, endpoint: str, query: dict[str, str | None], links: str) -> str:
        self.endpoint = endpoint
        self.registered = True
        self.registration = (
            f"lifetime {query.get('lt')} s, LwM2M {query.get('lwm2m') or '1.0'}, "
            f"binding {query.get('b') or 'U'}"
        )
        self.objects = object_list(links)
        return self.event(f"server: {endpoint} registered ({self.registration}): {links}")

    def updated(self, endpoint: str, links: str) -> str:
        if links:
            self.objects = object_list(links)
            gone = [p for p in self.values if not self._listed(p)]
            for path in gone:
                del self.values[path]
            return self.event(f"server: {endpoint} updated its objects: {links}")
        return self.event(f"server: {endpoint} updated its registration")

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
            if rid == APPLICATION_TYPE:
                self.names[instance] = str(value)
            elif rid == UNITS:
                self.units[instance] = str(value)
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
            lines.append(self.event(f"value {path} = {self._shown(path)}"))
        return lines

    def _shown(self, path: str) -> str:
        instance = "/" + "/".join(path.strip("/").split("/")[:2])
        unit = self.units.get(instance, "")
        name = self.names.get(instance)
        text = f"{show(self.values[path].value)} {unit}".rstrip()
        return f"{text}  ({name})" if name else text

    def render(self, title: str) -> str:
        """The whole screen."""
        out = [title, ""]
        if self.endpoint is None:
            out.append("LwM2M server: waiting for the gateway to register")
        else:
            state = "registered" if self.registered else "de-registered"
            out.append(f"LwM2M server sees endpoint {self.endpoint}: {state} ({self.registration})")
            listing = "  ".join(
                f"/{oid}" + (f"[{','.join(map(str, iids))}]" if iids else "")
                for oid, iids in self.objects.items()
            )
            out.append(f"objects: {listing}")
        out.append("")
        out.append(f"{'path':<18} {'node':<22} {'value':>12} {'unit':<6} {'changes':>7}")
        for path in sorted(self.values, key=_path_key):
            value = self.values[path]
            instance = "/" + "/".join(path.strip("/").split("/")[:2])
            out.append(
                f"{path:<18} {self.names.get(instance, ''):<22.22} {show(value.value):>12} "
                f"{self.units.get(instance, ''):<6} {value.changes:>7}"
            )
        if not self.values:
            out.append("(no node-backed values yet)")
        out.append("")
        out.append("latest events:")
        out.extend(f"  {line}" for line in self.events)
        return "\n".join(out)


def _path_key(path: str) -> tuple[int, ...]:
    return tuple(int(s) for s in path.strip("/").split("/"))
