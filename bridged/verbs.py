"""bridgectl's verbs: each declared once, here. The control socket serves exactly these
(bridged/control.py) and bridgectl offers exactly these (bridged/cli.py), with the params, help,
access and output declared here; see bridged/verb.py for what a declaration says.

Adding a verb is one ``Verb`` below and the gateway call it makes (a method of the Gateway or
of one of its parts); its manual page and shell completion follow (bridged/clidoc.py).

``pair`` also takes what the installed transports declare for their nodes
(transports/pairing.py): bridgectl reads their declarations, as the daemon does, rather than
asking the daemon, so that ``bridgectl pair --help``, the manual pages built with the package
and the check of a key's length work with no daemon running; both ends of one installation
read the same declarations, and the daemon checks every pairing against them again.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from .live import events, node_update, permit_join, scan
from .output import (
    show_commands,
    show_history,
    show_node,
    show_nodes,
    show_observations,
    show_records,
    show_status,
    table,
)
from .protocol import EXIT_USAGE, HISTORY_LIMIT, UPLOAD_CHUNK, Failed, OperationFailed
from .service import status_line
from .verb import (
    ASSIGNMENTS,
    DATA,
    FILE,
    FLAG,
    KEYS,
    MAPPING,
    NODE,
    PATH,
    PATHS,
    REQUIRED,
    SERVER,
    SWITCH,
    TEXT,
    VALUE,
    WORDS,
    Args,
    BadParams,
    Call,
    Choice,
    Hex,
    Number,
    Param,
    Session,
    Verb,
)

if TYPE_CHECKING:
    from bridged.transports.pairing import Pairing, PairingFlag, PairingKey

    from .app import Gateway

MAX_SECONDS = 3600.0
"""The longest scan or permit-join window."""

GROUPS = {"node": "one paired node", "observe": "the servers' observations"}
"""The help of bridgectl's commands whose verbs are its actions (``node show``)."""


# -- pairing: the options the installed transports declare -----------------------------------


def installed_pairings() -> Mapping[str, Pairing]:
    """The installed transports' pairing declarations. bridgectl may run from a source tree
    without the transports' packages (with the system Python, say): then there are none."""
    try:
        from bridged.transports.pairing import installed
    except ImportError:
        return {}
    return installed()


@cache
def pairing_options() -> dict[str, tuple[PairingKey | PairingFlag, tuple[str, ...]]]:
    """Each option a transport declares (``bindkey``, ``bond``), by name, with the transports
    that take it; the first declaration of a name stands for all."""
    found: dict[str, tuple[PairingKey | PairingFlag, tuple[str, ...]]] = {}
    for transport, pairing in sorted(installed_pairings().items()):
        options: list[PairingKey | PairingFlag] = [k for k in pairing.keys if k.option]
        options += pairing.flags
        for option in options:
            first, transports = found.get(option.name, (option, ()))
            found[option.name] = (first, (*transports, transport))
    return found


def pairing_params() -> tuple[Param, ...]:
    """``pair``'s params from the declarations: a key with its own option is sent as the
    param of its name (``bindkey``), a flag is bridgectl's and goes into ``options``."""
    params = []
    for name, (option, transports) in pairing_options().items():
        help = f"{', '.join(transports)}: {option.help}"
        if option.takes_hex:
            check = _checked(cast("PairingKey", option).check_hex, name)
            params.append(Param(name, Hex(check), help, metavar="HEX"))
        else:
            flag = cast("PairingFlag", option)
            kind = Choice(flag.choices) if flag.choices else FLAG
            params.append(Param(name, kind, help, wire=False))
    return tuple(params)


def _checked(check: Callable[[str], str], name: str) -> Callable[[str], str]:
    """``check`` with its message naming the option ``--name``; a value it refuses is
    Failed (exit 2)."""

    def checked(text: str) -> str:
        try:
            return check(text)
        except ValueError as e:
            raise Failed(EXIT_USAGE, f"--{name}: {e}") from None

    return checked


def node_argument(node: str, address: str | None) -> str:
    """``pair TRANSPORT ADDRESS`` or ``pair transport:address``, as the daemon's node id text;
    the daemon normalises the address for its transport."""
    if address is not None:
        if not node or ":" in node:
            raise Failed(EXIT_USAGE, f"{node!r} is not a transport name (ble, 802154, ...)")
        return f"{node}:{address}"
    if ":" not in node:
        raise Failed(EXIT_USAGE, f"give TRANSPORT ADDRESS or transport:address, not {node!r}")
    return node


def pair_request(args: argparse.Namespace, request: dict[str, Any]) -> dict[str, Any]:
    """bridgectl's ``pair`` request: the node in one word, and each declared option given
    checked against the node's transport; a flag (``--bond``) goes into ``options`` and
    brings its profile (``gatt``) unless ``--profile`` names one; a ``--key`` the transport
    declares is checked as its own option would be."""
    request["node"] = node_argument(args.node, args.address)
    transport = request["node"].partition(":")[0]
    pairing = installed_pairings().get(transport)
    for key in pairing.keys if pairing is not None else ():
        if key.name in request.get("keys", {}):
            check = _checked(key.check_hex, f"key {key.name}")
            request["keys"][key.name] = check(request["keys"][key.name])
    options = {}
    for name, (option, transports) in pairing_options().items():
        if getattr(args, name) in (None, False):
            continue
        if transport not in transports:
            raise Failed(
                EXIT_USAGE, f"--{name} is for {', '.join(transports)} nodes, not {transport}"
            )
        if not option.takes_hex:
            flag = cast("PairingFlag", option)
            options[name] = getattr(args, name) if flag.choices else True
            request["profile"] = request.get("profile") or flag.profile
    if options:
        request["options"] = options
    return request


async def _pair(gw: Gateway, a: Args, s: Session) -> Any:
    """Pair ``node`` with its ``keys`` ({name: hex}) and the keys its transport takes as params
    of their own (``bindkey``), and transport ``options`` (``{"bond": true}``). A malformed
    address, key or option is INVALID_PARAMS; a radio failure (bonding) is FAILED with its
    reason."""
    secrets = dict(a.keys)
    for param in pairing_params():
        if param.wire and getattr(a, param.name) is not None:
            secrets[param.name] = getattr(a, param.name)
    try:
        return await gw.pair(
            a.node,
            name=a.name,
            profile=a.profile,
            sleepy=a.sleepy,
            secrets=secrets,
            options=a.options,
        )
    except ValueError as e:
        raise BadParams(f"cannot pair {a.node}: {e}") from None


# -- the gateway calls that are more than a call ---------------------------------------------


def _status(gw: Gateway, a: Args, s: Session) -> Any:
    status = gw.status()
    status["summary"] = status_line(status)
    return status


async def _send(gw: Gateway, a: Args, s: Session) -> Any:
    outcome = await gw.server_verbs.send(a.paths, a.server)
    result = {
        "server": outcome.server,
        "status": outcome.status.value,
        "records": outcome.records,
        "detail": outcome.detail,
    }
    gw.events.publish("send", **result)
    if not outcome.delivered:
        raise OperationFailed(f"send to {outcome.server}: {outcome.status.value} {outcome.detail}")
    return result


def _answer(call: Call, **answer: str) -> Call:
    """``call``, answered with ``answer``, each value formatted with the request's params
    (``written="{path}"``): the gateway calls that change something return nothing to show,
    and bridgectl's answer says what was done, to what."""

    async def answered(gw: Gateway, a: Args, s: Session) -> Any:
        result = call(gw, a, s)
        if inspect.isawaitable(result):
            await result
        return {key: value.format_map(vars(a)) for key, value in answer.items()}

    return answered


PATH_ARG = Param("path", PATH, default=REQUIRED, positional=True)
NODE_ARG = Param("node", NODE, "transport:address", REQUIRED, positional=True)


def _tree_change(method: str, help: str, call: Call, done: str, *more: Param) -> Verb:
    """A verb that changes the gateway's tree at ``path`` (and ``more`` params): logged as
    ``METHOD {path}``, answered with ``{done: path}``, nothing shown."""
    return Verb(
        method,
        help,
        _answer(call, **{done: "{path}"}),
        params=(PATH_ARG, *more),
        changes=True,
        audit=f"{method} {{path}}",
        show=_quiet,
    )


def _client_switch(method: str, help: str, call: Call, state: str, what: str) -> Verb:
    """``start`` or ``stop``: the LwM2M client's registrations with every server (``what``
    it does to them, for the log)."""
    return Verb(
        method,
        help,
        _answer(call, lwm2m=state),
        changes=True,
        audit=f"{method} ({what})",
        show=_lwm2m,
    )


def _update_begin(gw: Gateway, a: Args, s: Session) -> Any:
    """Begin a local firmware update (``bridged/firmware.py``): the upload is the
    connection's, undone (Idle, Connection lost) if it ends before the finish."""
    if len(a.sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in a.sha256):
        raise BadParams("params.sha256: give the package's SHA-256 as 64 hex digits")
    token = gw.firmware.begin_upload(a.node, a.size, a.sha256)
    s.on_close(lambda: gw.firmware.abandon_upload(a.node, token))
    return {"node": str(a.node), "upload": token, "chunk": UPLOAD_CHUNK}


async def _update_chunk(gw: Gateway, a: Args, s: Session) -> Any:
    return {"received": await gw.firmware.upload_chunk(a.node, a.upload, a.offset, a.data)}


async def _update_finish(gw: Gateway, a: Args, s: Session) -> Any:
    await gw.firmware.finish_upload(a.node, a.upload)
    return gw.firmware.status(a.node)


UPLOAD = Param("upload", TEXT, "the token node.update gave", REQUIRED, cli=False)


def _quiet(result: Any, out: Any) -> None:
    """Nothing to say: the exit status says it was done."""


def _lwm2m(result: Any, out: Any) -> None:
    out.write(f"LwM2M client {result['lwm2m']}\n")


COMMANDS_NODE = Param("node", NODE, "only this node's (transport:address)", positional=True)

VERBS: tuple[Verb, ...] = (
    Verb(
        "status",
        "the gateway: registration, nodes, readings, transports",
        _status,
        show=show_status,
    ),
    Verb("nodes", "the paired nodes", lambda gw, a, s: gw.node_list(), show=show_nodes),
    Verb(
        "node.show",
        "a node in detail: state, keys, values",
        lambda gw, a, s: gw.node(a.node),
        params=(NODE_ARG,),
        show=show_node,
    ),
    Verb(
        "node.update",
        "update a node's firmware from a file (/5, as a server's push and Execute would): "
        "bridgectl sends the file, then shows the progress until it is applied or failed",
        _update_begin,
        params=(
            NODE_ARG,
            Param("file", FILE, "the firmware image", REQUIRED, positional=True, wire=False),
            Param(
                "wait",
                SWITCH,
                "show the progress until the update ends (the default); --no-wait returns "
                "once the file is taken",
                wire=False,
            ),
            Param("size", Number(1, 2**31, integer=True), default=REQUIRED, cli=False),
            Param("sha256", TEXT, default=REQUIRED, cli=False),
        ),
        changes=True,
        audit="node update {node} ({size} bytes, SHA-256 {sha256})",
        run=node_update,
    ),
    Verb(
        "node.update_chunk",
        "the next chunk of a node update's file",
        _update_chunk,
        params=(
            Param("node", NODE, default=REQUIRED),
            UPLOAD,
            Param("offset", Number(0, 2**31, integer=True), default=REQUIRED),
            Param("data", DATA, "at most UPLOAD_CHUNK bytes, base64", REQUIRED),
        ),
        changes=True,
        cli=None,
    ),
    Verb(
        "node.update_finish",
        "the file is sent: check it and update the node",
        _update_finish,
        params=(Param("node", NODE, default=REQUIRED), UPLOAD),
        changes=True,
        cli=None,
    ),
    Verb(
        "scan",
        "list the nodes heard during a window, live, with their decoded values "
        "(with --json: a JSON line per node heard or changed, then the list as a JSON array)",
        lambda gw, a, s: s.scan(a.seconds, a.transport),
        params=(
            Param("seconds", Number(0.1, MAX_SECONDS), "window (%(default)s s)", 10.0),
            Param("transport", TEXT, "only nodes of this transport"),
        ),
        streams=True,
        run=scan,
    ),
    Verb(
        "pair",
        "pair a node: it is exposed upstream from now on",
        _pair,
        params=(
            Param(
                "node",
                NODE,
                "the transport (ble, 802154, ...), or transport:address in one word",
                REQUIRED,
                positional=True,
            ),
            Param(
                "address",
                TEXT,
                "its address: a MAC (A4:C1:38:00:11:22) or an EUI-64 (00:12:4b:00:01:02:03:04)",
                positional=True,
                wire=False,
            ),
            Param("name", TEXT, "its name (shown upstream in 5750 Application Type)"),
            Param("profile", TEXT, "how its data is read (bthome, ...)", "", send_empty=True),
            Param("sleepy", FLAG, "a battery node that sleeps", False),
            Param(
                "keys",
                KEYS,
                "a key its transport takes, by name (repeatable)",
                metavar="NAME=HEX",
                option="--key",
            ),
            Param("options", MAPPING, cli=False),
        ),
        changes=True,
        audit="pair {node}",
        show=lambda n, o: o.write(f"paired {n['id']}\n"),
        more=pairing_params,
        request=pair_request,
    ),
    Verb(
        "unpair",
        "unpair a node: it disappears upstream",
        _answer(lambda gw, a, s: gw.unpair(a.node), unpaired="{node}"),
        params=(Param("node", NODE, default=REQUIRED, positional=True),),
        changes=True,
        audit="unpair {node}",
        show=lambda r, o: o.write(f"unpaired {r['unpaired']}\n"),
    ),
    Verb(
        "permit_join",
        "let nodes that ask join for a while (0 closes); with --wait (the default on a "
        "terminal) count down and show each node that joins until the window closes, and "
        "Ctrl-C closes it",
        lambda gw, a, s: {"seconds": gw.permit_join(a.seconds)},
        params=(
            Param("seconds", Number(0.0, MAX_SECONDS), default=60.0, positional=True),
            Param(
                "wait",
                SWITCH,
                "count down and show the nodes that join (default: when stdout is a terminal)",
                wire=False,
            ),
        ),
        changes=True,
        streams=True,
        audit="permit-join {seconds:g} s",
        run=permit_join,
        show=lambda r, o: o.write(
            f"permit-join open for {r['seconds']:g} s\n" if r["seconds"] else "permit-join closed\n"
        ),
    ),
    Verb(
        "ls",
        "objects, instances or resources of the gateway's tree",
        lambda gw, a, s: gw.shell.ls(a.path),
        params=(Param("path", PATH, default="/", positional=True, send_empty=True),),
        show=lambda rows, o: table(
            [(r["path"], r["name"], r.get("operations")) for r in rows],
            ("PATH", "NAME", "OPERATIONS"),
            o,
        ),
    ),
    Verb(
        "read",
        "read values of the gateway's tree",
        lambda gw, a, s: gw.shell.read(a.path),
        params=(PATH_ARG,),
        show=show_records,
    ),
    _tree_change(
        "write",
        "set a resource (text form: 0/1, numbers, base64, oid:iid)",
        lambda gw, a, s: gw.shell.write(a.path, a.value),
        "written",
        Param("value", VALUE, default=REQUIRED, positional=True),
    ),
    _tree_change(
        "exec",
        "execute a resource",
        lambda gw, a, s: gw.shell.execute(a.path, a.args),
        "executed",
        Param("args", TEXT, "LwM2M arguments, e.g. 0='x'", "", positional=True, send_empty=True),
    ),
    Verb(
        "create",
        "create an object instance, with its mandatory resources",
        lambda gw, a, s: {"created": gw.shell.create(a.path, a.values)},
        params=(
            Param(
                "path", PATH, "/oid (lowest free instance) or /oid/iid", REQUIRED, positional=True
            ),
            Param(
                "values",
                ASSIGNMENTS,
                "a resource's value (text form), e.g. 5550=1",
                positional=True,
                metavar="RID=VALUE",
                send_empty=True,
            ),
        ),
        changes=True,
        audit="create {path}",
        show=lambda r, o: o.write(f"created {r['created']}\n"),
    ),
    _tree_change(
        "delete", "delete an object instance", lambda gw, a, s: gw.shell.delete(a.path), "deleted"
    ),
    Verb(
        "observe.list",
        "list them per server",
        lambda gw, a, s: gw.server_verbs.observations(a.server),
        params=(Param("server", SERVER, "short server ID"),),
        show=show_observations,
    ),
    Verb(
        "send",
        "LwM2M Send of the current values of paths",
        _send,
        params=(
            Param("paths", PATHS, default=REQUIRED, positional=True),
            Param("server", SERVER, "short server ID (default: the first)"),
        ),
        changes=True,
        show=lambda r, o: o.write(f"{r['records']} record(s) {r['status']} ({r['server']})\n"),
    ),
    Verb(
        "update",
        "send a registration Update now",
        lambda gw, a, s: {"updating": gw.server_verbs.update(a.server)},
        params=(Param("server", SERVER, "short server ID (default: all)"),),
        changes=True,
        show=lambda r, o: o.write(f"update sent to {', '.join(r['updating'])}\n"),
    ),
    _client_switch(
        "start",
        "register with the servers again (after stop)",
        lambda gw, a, s: gw.start_client(),
        "started",
        "register",
    ),
    _client_switch(
        "stop",
        "de-register from every server and stay off until start",
        lambda gw, a, s: gw.stop_client(),
        "stopped",
        "de-register",
    ),
    Verb(
        "subscribe",
        "stream what happens (registrations, nodes, readings...)",
        lambda gw, a, s: s.subscribe(a.events),
        params=(
            Param(
                "events",
                WORDS,
                "only these kinds (registration, node, ...)",
                positional=True,
                metavar="kinds",
            ),
        ),
        streams=True,
        cli="events",
        run=events,
    ),
    Verb("unsubscribe", "stop the event stream", lambda gw, a, s: s.unsubscribe(), cli=None),
    Verb(
        "commands.pending",
        "the desired-state queue: writes and executes waiting for a sleepy node",
        lambda gw, a, s: gw.commands_pending(a.node),
        params=(COMMANDS_NODE,),
        cli="commands",
        show=show_commands,
    ),
    Verb(
        "commands.history",
        "the commands that ended instead, newest first: applied, failed, expired or "
        "superseded, and why",
        lambda gw, a, s: gw.commands_history(a.node, a.limit),
        params=(
            COMMANDS_NODE,
            Param(
                "limit",
                Number(1, HISTORY_LIMIT, integer=True),
                "with --history, at most this many (%(default)s)",
                100,
            ),
        ),
        cli="commands --history",
        show=show_history,
    ),
)
