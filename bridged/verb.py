"""What a bridgectl verb is: one declaration that both ends of the control socket are driven by.

A ``Verb`` names its control-socket method, its params, its help, the access it needs (a verb
that ``changes`` the gateway is refused on the monitor socket), whether it streams, what the
daemon logs of it (``audit``), the gateway call it makes, and how bridgectl shows its result
(``show``) or runs it (``run``, for a verb that streams). The table of them is
bridged/verbs.py; bridged/control.py serves it and bridged/cli.py builds its parser, its help
and its output from it (and bridged/clidoc.py the completions and manual pages from that).

Each ``Param`` has a ``Kind``: how bridgectl takes it on its command line (``argparse``,
``to_wire``) and how the daemon reads it from a request (``read``, through the control
socket's typed ``Reader``). Both ends' knowledge of a param type is in its kind, so a new verb
is its declaration and nothing else, unless it needs a type no verb had before.

Standard library only: bridgectl imports this. The daemon's types (paths, node ids, keys) are
the ``Reader``'s to make; the gateway call runs in the daemon only.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import IO, TYPE_CHECKING, Any, Protocol

from .protocol import EXIT_USAGE, Client, Failed

if TYPE_CHECKING:
    from .app import Gateway

REQUIRED: Any = ...
"""The default of a param a request must give."""


class BadParams(ValueError):
    """A request the verb cannot take; the message says why (INVALID_PARAMS, exit 2)."""


class Reader(Protocol):
    """A request's params as the daemon reads them (``bridged.control.Params``): each getter
    raises INVALID_PARAMS naming the param."""

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = None) -> Any: ...
    def path(self, name: str = "path", default: str | None = None) -> Any: ...
    def paths(self, name: str) -> list[Any]: ...
    def node(self, name: str = "node") -> Any: ...
    def number(self, name: str, default: float, low: float, high: float) -> float: ...
    def server(self, name: str = "server") -> int | None: ...
    def key(self, name: str) -> Any: ...
    def keys(self, name: str) -> dict[str, Any]: ...
    def data(self, name: str) -> bytes: ...
    def bad(self, name: str, why: str) -> Exception: ...


class Session(Protocol):
    """The connection a verb is served on, for the verbs that stream on it."""

    async def scan(self, seconds: float, transport: str | None) -> list[dict[str, Any]]: ...
    async def subscribe(self, kinds: list[str] | None) -> dict[str, Any]: ...
    async def unsubscribe(self) -> dict[str, Any]: ...
    def on_close(self, undo: Callable[[], None]) -> None:
        """Have ``undo()`` run when the connection ends (what it left unfinished)."""


Args = SimpleNamespace
"""A request's params as the gateway call gets them, each read by its kind."""
Call = Callable[["Gateway", Args, Session], "Awaitable[Any] | Any"]
Show = Callable[[Any, IO[str]], object]
Run = Callable[[argparse.Namespace, Client, IO[str], IO[str], dict[str, Any]], "int | None"]
"""bridgectl's own way to run a verb: its exit status, or None for the ordinary call."""


# -- the kinds of params ---------------------------------------------------------------------


class Kind:
    """Text: given as is on the command line, a string in a request."""

    def argparse(self, param: Param) -> dict[str, Any]:
        """What ``add_argument`` needs besides the name, help, metavar and default."""
        return {}

    def to_wire(self, value: Any) -> Any:
        """bridgectl: the parsed argument as the request carries it; Failed (exit 2) for a
        value the daemon would refuse anyway."""
        return value

    def read(self, p: Reader, param: Param) -> Any:
        """The daemon: the request's param, typed, for the gateway call."""
        return p.get(param.name, str, param.default)


class Node(Kind):
    """A node id, ``transport:address``, in any spelling its transport takes."""

    def read(self, p: Reader, param: Param) -> Any:
        if param.default is not REQUIRED and p.get(param.name, str) is None:
            return None
        return p.node(param.name)


class PathKind(Kind):
    """A LwM2M path (``/3303/0/5700``, ``/dev0/3303``)."""

    def read(self, p: Reader, param: Param) -> Any:
        return p.path(param.name, None if param.default is REQUIRED else param.default)


class Paths(Kind):
    """One or more LwM2M paths."""

    def argparse(self, param: Param) -> dict[str, Any]:
        return {"nargs": "+"}

    def read(self, p: Reader, param: Param) -> Any:
        return p.paths(param.name)


@dataclass(frozen=True, slots=True)
class Number(Kind):
    """A number from ``low`` to ``high`` (an integer with ``integer``)."""

    low: float
    high: float
    integer: bool = False

    def argparse(self, param: Param) -> dict[str, Any]:
        return {"type": int if self.integer else float}

    def read(self, p: Reader, param: Param) -> Any:
        value = p.number(param.name, param.default, self.low, self.high)
        return int(value) if self.integer else value


class Server(Kind):
    """A Short Server ID."""

    def argparse(self, param: Param) -> dict[str, Any]:
        return {"type": int}

    def read(self, p: Reader, param: Param) -> Any:
        return p.server(param.name)


class Flag(Kind):
    """Yes or no: ``--name`` on the command line."""

    def argparse(self, param: Param) -> dict[str, Any]:
        return {"action": "store_true"}

    def read(self, p: Reader, param: Param) -> Any:
        return p.get(param.name, bool, param.default)


@dataclass(frozen=True, slots=True)
class Choice(Kind):
    """One of ``choices``: ``--name CHOICE`` on the command line."""

    choices: tuple[str, ...]

    def argparse(self, param: Param) -> dict[str, Any]:
        return {"choices": self.choices}


class Switch(Kind):
    """Yes, no or unsaid (``--name``/``--no-name``): bridgectl's own, never sent."""

    def argparse(self, param: Param) -> dict[str, Any]:
        return {"action": argparse.BooleanOptionalAction}


class ValueText(Kind):
    """A resource value: text, a number or a boolean, which the daemon takes in text form
    (true is ``1``)."""

    def read(self, p: Reader, param: Param) -> Any:
        value = p.get(param.name, (str, int, float, bool), param.default)
        return ("1" if value else "0") if isinstance(value, bool) else str(value)


class Words(Kind):
    """Any number of words (event kinds)."""

    def argparse(self, param: Param) -> dict[str, Any]:
        return {"nargs": "*"}

    def read(self, p: Reader, param: Param) -> Any:
        words = p.get(param.name, list)
        if words is not None and not all(isinstance(w, str) for w in words):
            raise p.bad(param.name, f"must be a list of {param.metavar or 'words'}")
        return words


class Assignments(Kind):
    """Resource values, ``RID=VALUE`` on the command line, {resource ID: text} in a request."""

    def argparse(self, param: Param) -> dict[str, Any]:
        return {"nargs": "*"}

    def to_wire(self, value: Any) -> Any:
        return _assignments(
            value, str.isdigit, lambda rid, pair: f"{pair!r}: give RID=VALUE, e.g. 5550=1"
        )

    def read(self, p: Reader, param: Param) -> Any:
        values: dict[int, str] = {}
        for rid, text in p.get(param.name, dict, {}).items():
            if not (isinstance(rid, str) and rid.isdigit() and isinstance(text, str)):
                raise p.bad(f"{param.name}.{rid}", "give resource ID: text value")
            values[int(rid)] = text
        return values


def _assignments(
    pairs: list[str], good: Callable[[str], bool], usage: Callable[[str, str], str]
) -> dict[str, str]:
    """``NAME=VALUE`` arguments as {name: value}; Failed (exit 2) with ``usage(name, pair)``
    for one without ``=`` or with a name that is not ``good``."""
    found = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not good(name):
            raise Failed(EXIT_USAGE, usage(name, pair))
        found[name] = text
    return found


class Keys(Kind):
    """Keys by name, ``--key NAME=HEX`` (repeated) on the command line, {name: hex} in a
    request; the daemon holds them as secrets."""

    def argparse(self, param: Param) -> dict[str, Any]:
        return {"action": "append"}

    def to_wire(self, value: Any) -> Any:
        return _assignments(
            value, bool, lambda name, pair: f"--key {name or pair!r}: give NAME=HEX"
        )

    def read(self, p: Reader, param: Param) -> Any:
        return p.keys(param.name)


class LocalFile(Kind):
    """A file bridgectl reads itself and sends (``node update``): the daemon never opens a
    path a client names, since it runs as another user."""


class Data(Kind):
    """Bytes, base64 in a request (a chunk of a file): the control socket's only, bridgectl
    reads the file itself."""

    def read(self, p: Reader, param: Param) -> Any:
        return p.data(param.name)


class JsonObject(Kind):
    """A JSON object the daemon hands on as is (a transport's pairing options): the control
    socket's only, bridgectl builds it from the options it declares."""

    def read(self, p: Reader, param: Param) -> Any:
        return p.get(param.name, dict, {})


@dataclass(frozen=True, slots=True)
class Hex(Kind):
    """A key in hex given by its own option (``--bindkey HEX``); ``check`` (the declaring
    transport's) refuses a wrong one before it is sent (Failed, exit 2), never repeating
    it."""

    check: Callable[[str], str]

    def to_wire(self, value: Any) -> Any:
        return None if value is None else self.check(value)

    def read(self, p: Reader, param: Param) -> Any:
        return p.key(param.name)


TEXT = Kind()
NODE = Node()
PATH = PathKind()
PATHS = Paths()
SERVER = Server()
FLAG = Flag()
SWITCH = Switch()
VALUE = ValueText()
WORDS = Words()
ASSIGNMENTS = Assignments()
KEYS = Keys()
MAPPING = JsonObject()
DATA = Data()
FILE = LocalFile()


@dataclass(frozen=True, slots=True)
class Param:
    """A param of a verb: ``name`` in a request (and bridgectl's option ``--name``, or its
    argument with ``positional``; ``option`` spells it otherwise), its ``kind``, ``help`` and
    ``default`` (REQUIRED: a request must give it). ``wire``: False for bridgectl's own
    arguments, never sent; ``cli``: False for a param only the socket takes. bridgectl leaves
    out of a request a value that is unset or empty, unless ``send_empty``."""

    name: str
    kind: Kind = TEXT
    help: str = ""
    default: Any = None
    positional: bool = False
    metavar: str | None = None
    option: str | None = None
    """bridgectl's option, when not ``--name`` (``--key`` for ``keys``)."""
    wire: bool = True
    cli: bool = True
    send_empty: bool = False


@dataclass(frozen=True, slots=True)
class Verb:
    """One bridgectl verb (see the module docstring). ``cli`` is its spelling in bridgectl,
    by default the method's (``permit_join`` is ``permit-join``, ``node.show`` is
    ``node show``); ``"commands --history"`` makes it a flag of another verb's command; None
    keeps it to the socket. ``more`` gives params declared elsewhere (``pair``: those of the
    installed transports); ``request`` finishes bridgectl's request from its arguments."""

    method: str
    help: str
    call: Call
    params: tuple[Param, ...] = ()
    changes: bool = False
    streams: bool = False
    audit: str | None = None
    cli: str | None = ""
    show: Show | None = None
    run: Run | None = None
    more: Callable[[], tuple[Param, ...]] | None = None
    request: Callable[[argparse.Namespace, dict[str, Any]], dict[str, Any]] | None = None

    @property
    def words(self) -> tuple[str, ...]:
        """bridgectl's words for it (``("node", "show")``); empty for a socket-only verb."""
        if self.cli is None:
            return ()
        spelling = self.cli or self.method.replace("_", "-").replace(".", " ")
        return tuple(spelling.split())

    def all_params(self) -> tuple[Param, ...]:
        return self.params + (self.more() if self.more is not None else ())

    def wire_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.all_params() if p.wire)

    def read(self, p: Reader) -> Args:
        """The daemon: the request's params, each read by its kind."""
        return Args(**{param.name: param.kind.read(p, param) for param in self.wire_params()})

    def to_request(self, args: argparse.Namespace) -> dict[str, Any]:
        """bridgectl: the request's params from its parsed arguments."""
        request: dict[str, Any] = {}
        for param in self.wire_params():
            if not param.cli:
                continue
            value = param.kind.to_wire(getattr(args, param.name))
            if param.send_empty or not _empty(value):
                request[param.name] = value
        return self.request(args, request) if self.request is not None else request


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and not value)
