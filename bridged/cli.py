"""``bridgectl``: pair and inspect nodes, and drive the LwM2M client, through the daemon's
control socket (see bridged/control.py for the protocol).

Its commands are the verbs of bridged/verbs.py: the parser, each command's help, the request it
sends and how its result is shown are all built from that table here, so a verb declared there
is a command with no edit of this file.

It imports nothing heavy (no aiocoap, no bleak, no serial, not the engine): the standard library
and the table (and, for ``pair``, the installed transports' pairing declarations), so
``bridgectl --help`` and every command start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import IO, Any

from . import __version__, verbs
from .protocol import (
    DEFAULT_SOCKET,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_USAGE,
    Client,
    Failed,
)
from .verb import REQUIRED, Param, Verb

EPILOG = f"""\
exit status:
  {EXIT_OK}  done
  {EXIT_FAILED}  the operation failed (the daemon said why)
  {EXIT_USAGE}  bad argument
  {EXIT_NOT_RUNNING}  the daemon is not running (no socket, or nothing listening on it)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); scan prints what it heard until then

The socket is --socket, else $BRIDGED_SOCKET, else {DEFAULT_SOCKET}.
Examples:
  bridgectl status
  bridgectl scan --seconds 30
  bridgectl pair ble A4:C1:38:00:11:22 --name kitchen --bindkey 231d39c1d7cc1ab1aee224cd096db932
  bridgectl pair 802154 00:12:4b:00:01:02:03:04
  bridgectl read /3303/0/5700
  bridgectl --json nodes
"""


def _common_options(parser: argparse.ArgumentParser, after_command: bool = False) -> None:
    """--socket, --json and --timeout, taken before the command and after it. After it their
    default is SUPPRESS, so that one given before the command is not reset by it."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if after_command else value

    parser.add_argument(
        "--socket", default=default(None), help=f"the control socket (default: {DEFAULT_SOCKET})"
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="machine-readable output"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=default(30.0),
        help="seconds to wait for an answer (30)",
    )


def _add_param(parser: argparse.ArgumentParser, param: Param) -> None:
    """``param`` as its kind takes it on the command line: an argument (optional when it has
    a default) or an option."""
    kwargs: dict[str, Any] = {"help": param.help or None, **param.kind.argparse(param)}
    if param.metavar is not None:
        kwargs["metavar"] = param.metavar
    if param.positional:
        if param.default is not REQUIRED:
            kwargs.setdefault("nargs", "?")
            kwargs["default"] = param.default
        parser.add_argument(param.name, **kwargs)
        return
    if kwargs.get("action") == "append":
        kwargs["default"] = []
    elif param.default is not REQUIRED:
        kwargs["default"] = param.default
    parser.add_argument(param.option or f"--{param.name}", dest=param.name, **kwargs)


def _add_verb(
    parser: argparse.ArgumentParser, verb: Verb, variants: list[tuple[str, Verb]]
) -> None:
    """The verb's params, and a flag for each variant (``commands --history``) with the
    variant's params the verb does not have."""
    parser.set_defaults(verb=verb)
    names = set()
    for param in verb.all_params():
        if param.cli:
            _add_param(parser, param)
            names.add(param.name)
    for flag, variant in variants:
        parser.add_argument(flag, action="store_true", help=variant.help)
        for param in variant.all_params():
            if param.cli and param.name not in names:
                _add_param(parser, param)
                names.add(param.name)


def commands() -> dict[str, dict[str, tuple[Verb, list[tuple[str, Verb]]]]]:
    """The table as bridgectl's commands: by command, by action ("" for a command without
    actions), the verb and its variants (``--history``)."""
    found: dict[str, dict[str, tuple[Verb, list[tuple[str, Verb]]]]] = {}
    variants: list[tuple[tuple[str, ...], str, Verb]] = []
    for verb in verbs.VERBS:
        words = verb.words
        if not words:
            continue
        if words[-1].startswith("--"):
            variants.append((words[:-1], words[-1], verb))
            continue
        command, action = words[0], " ".join(words[1:])
        found.setdefault(command, {})[action] = (verb, [])
    for words, flag, verb in variants:
        command, action = words[0], " ".join(words[1:])
        found[command][action][1].append((flag, verb))
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridgectl",
        description="Pair and inspect the nodes of a running bridged, and drive its LwM2M client.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bridgectl {__version__}")
    _common_options(parser)
    after = argparse.ArgumentParser(add_help=False)
    _common_options(after, after_command=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, actions in commands().items():
        if "" in actions:
            verb, variants = actions[""]
            child = sub.add_parser(command, help=verb.help, description=verb.help, parents=[after])
            _add_verb(child, verb, variants)
            continue
        help = verbs.GROUPS[command]
        group = sub.add_parser(command, help=help, description=help, parents=[after])
        inner = group.add_subparsers(dest=f"{command}_command", required=True, metavar="ACTION")
        for action, (verb, variants) in actions.items():
            child = inner.add_parser(action, help=verb.help, description=verb.help, parents=[after])
            _add_verb(child, verb, variants)
    return parser


def chosen(args: argparse.Namespace) -> Verb:
    """The verb the arguments name: the command's, or the variant its flag chose."""
    verb: Verb = args.verb
    for flag, variant in commands()[verb.words[0]][" ".join(verb.words[1:])][1]:
        if getattr(args, flag.removeprefix("--").replace("-", "_")):
            return variant
    return verb


def run(args: argparse.Namespace, client: Client, out: IO[str], err: IO[str]) -> int:
    """Run the parsed command over ``client``, writing to ``out`` (data) and ``err``: its
    verb's own way (a streaming verb's ``run``), or its request and its result, as JSON with
    --json (or when the verb has no text form), else in the verb's text form."""
    verb = chosen(args)
    request = verb.to_request(args)
    if verb.run is not None:
        code = verb.run(args, client, out, err, request)
        if code is not None:
            return code
    result = client.call(verb.method, request)
    if args.json or verb.show is None:
        out.write(json.dumps(result, indent=2) + "\n")
    else:
        verb.show(result, out)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = args.socket or os.environ.get("BRIDGED_SOCKET") or DEFAULT_SOCKET
    try:
        client = Client(path, args.timeout)
        try:
            return run(args, client, sys.stdout, sys.stderr)
        finally:
            client.close()
    except Failed as e:
        print(f"bridgectl: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``bridgectl events | head``): it had what it wanted. Point
        # stdout at /dev/null so that the interpreter's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
