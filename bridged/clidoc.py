"""bridgectl's shell completion (bash, zsh) and manual pages, generated from its parser.

``build_parser`` in bridged/cli.py builds bridgectl's parser from the verb table
(bridged/verbs.py) and the installed transports' pairing options; what a shell completes and
what ``man bridgectl-pair`` says are read from that parser here, so that a verb added to the
table is completed and documented without another list to keep.

``python -m bridged.clidoc DIR [--version V]`` writes::

    DIR/bash-completion/bridgectl     (to /usr/share/bash-completion/completions/)
    DIR/zsh/_bridgectl                (to /usr/share/zsh/vendor-completions/)
    DIR/man/bridgectl.1               the overview: options, commands, exit status
    DIR/man/bridgectl-COMMAND.1       a page per command

It imports only the standard library and bridged/cli.py, as bridgectl itself does.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .cli import build_parser

PROG = "bridgectl"


@dataclass(frozen=True, slots=True)
class Option:
    """An option: its spellings, whether it takes a value (and its name), its help."""

    flags: tuple[str, ...]
    value: str | None
    help: str


@dataclass(frozen=True, slots=True)
class Positional:
    name: str
    optional: bool
    repeated: bool
    help: str


@dataclass(frozen=True, slots=True)
class Command:
    """A command (or a nested action, such as ``node show``) as the parser declares it."""

    name: str
    help: str
    usage: str
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...]
    actions: tuple[Command, ...]


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if text is argparse.SUPPRESS:
        return ""
    return text.replace("%(default)s", str(action.default))


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def describe(parser: argparse.ArgumentParser, name: str = PROG, help: str = "") -> Command:
    """What ``parser`` declares: its options, its positionals, its commands (recursively)."""
    options, positionals = [], []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        if action.option_strings:
            value = None if action.nargs == 0 else str(action.metavar or action.dest.upper())
            options.append(Option(tuple(action.option_strings), value, _help(action)))
        else:
            positionals.append(
                Positional(
                    str(action.metavar or action.dest),
                    action.nargs in ("?", "*"),
                    action.nargs in ("*", "+"),
                    _help(action),
                )
            )
    actions: list[Command] = []
    sub = _subparsers(parser)
    if sub is not None:
        helps = {a.dest: a.help or "" for a in sub._choices_actions}
        for child_name, child in sub.choices.items():
            actions.append(describe(child, child_name, helps.get(child_name, "")))
    usage = " ".join(parser.format_usage().removeprefix("usage: ").split())
    return Command(
        name,
        help or parser.description or "",
        usage,
        tuple(options),
        tuple(positionals),
        tuple(actions),
    )


def value_options(command: Command) -> Iterator[Option]:
    """Every option that takes a value, anywhere in the command tree."""
    yield from (o for o in command.options if o.value is not None)
    for action in command.actions:
        yield from value_options(action)


def _words(command: Command) -> list[str]:
    """What may follow a command: its actions, or its options."""
    if command.actions:
        return [a.name for a in command.actions]
    return [flag for o in command.options for flag in o.flags]


# -- bash ------------------------------------------------------------------------------------


def bash_completion(top: Command) -> str:
    """A bash completion function: commands, nested actions, each one's options, files for
    --socket."""
    takes_value = sorted({flag for o in value_options(top) for flag in o.flags})
    cases = []
    for command in top.actions:
        if command.actions:
            inner = [
                f"                {a.name}) words={_quote(' '.join(_words(a)))} ;;"
                for a in command.actions
            ]
            cases.append(
                f"        {command.name})\n"
                f"            case $sub in\n"
                f"                '') words={_quote(' '.join(_words(command)))} ;;\n"
                + "\n".join(inner)
                + "\n            esac ;;"
            )
        else:
            cases.append(f"        {command.name}) words={_quote(' '.join(_words(command)))} ;;")
    top_words = " ".join([*(f for o in top.options for f in o.flags), *_words(top)])
    return f"""# bash completion for {PROG}: generated from its parser (bridged/clidoc.py)
_{PROG}() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
    local i cmd='' sub='' words=''
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${{COMP_WORDS[i]}} in
            {"|".join(takes_value)}) ((i++)) ;;
            -*) ;;
            *) if [[ -z $cmd ]]; then cmd=${{COMP_WORDS[i]}}
               elif [[ -z $sub ]]; then sub=${{COMP_WORDS[i]}}; fi ;;
        esac
    done
    case $prev in
        --socket) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        {"|".join(f for f in takes_value if f != "--socket")}) COMPREPLY=(); return ;;
    esac
    case $cmd in
        '') words={_quote(top_words)} ;;
{chr(10).join(cases)}
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -F _{PROG} {PROG}
"""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# -- zsh -------------------------------------------------------------------------------------


def _zsh_text(text: str) -> str:
    """Help text inside a single-quoted _arguments spec or _describe item."""
    return _quote(text)[1:-1].replace("[", "\\[").replace("]", "\\]").replace(":", "\\:")


def _zsh_specs(command: Command) -> list[str]:
    specs = []
    for o in command.options:
        flags = o.flags if len(o.flags) == 1 else ("{" + ",".join(o.flags) + "}",)
        excl = "" if len(o.flags) == 1 else f"({' '.join(o.flags)})"
        value = ""
        if o.value is not None:
            value = (
                ":" + _zsh_text(o.value.lower()) + (":_files" if "socket" in o.flags[0] else ":")
            )
        spec = f"{excl}{flags[0]}[{_zsh_text(o.help)}]{value}"
        specs.append(spec if flags[0].startswith("{") else f"'{spec}'")
    for p in command.positionals:
        mark = "*" if p.repeated else ""
        opt = ":" if p.optional else ""
        specs.append(f"'{mark}:{opt}{_zsh_text(p.name.lower())}:'")
    return specs


def _zsh_function(command: Command, name: str) -> list[str]:
    """The zsh function completing ``command`` (and, below it, one per nested command)."""
    lines = [f"{name}() {{"]
    if not command.actions:
        lines.append("  _arguments -s \\")
        lines += [f"    {s} \\" for s in _zsh_specs(command)]
        lines[-1] = lines[-1].removesuffix(" \\")
        lines.append("}")
        return lines
    items = " ".join(f"'{a.name}:{_zsh_text(a.help)}'" for a in command.actions)
    lines += [
        "  local curcontext=$curcontext state line",
        f"  local -a commands=({items})",
        "  _arguments -C \\",
        *[f"    {s} \\" for s in _zsh_specs(command)],
        "    '1:command:->command' \\",
        "    '*::argument:->argument'",
        "  case $state in",
        "    command) _describe -t commands command commands ;;",
        "    argument)",
        "      case $words[1] in",
        *[f"        {a.name}) {name}_{_ident(a.name)} ;;" for a in command.actions],
        "      esac ;;",
        "  esac",
        "}",
    ]
    for a in command.actions:
        lines += _zsh_function(a, f"{name}_{_ident(a.name)}")
    return lines


def _ident(name: str) -> str:
    return re.sub(r"\W", "_", name)


def zsh_completion(top: Command) -> str:
    body = "\n".join(_zsh_function(top, f"_{PROG}"))
    head = f"#compdef {PROG}\n# zsh completion for {PROG}: generated from its parser (clidoc.py)"
    return f'{head}\n\n{body}\n\n_{PROG} "$@"\n'


# -- manual pages ----------------------------------------------------------------------------


def roff(text: str) -> str:
    """Text as roff: backslashes and hyphens escaped, no line taken for a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line[:1] in (".", "'") else line for line in text.split("\n"))


def _page_head(name: str, help: str, version: str) -> list[str]:
    return [
        f'.TH {name.upper()} 1 "" "{PROG} {version}" "User Commands"',
        ".SH NAME",
        f"{roff(name)} \\- {roff(help)}",
    ]


def _option_items(options: Sequence[Option]) -> list[str]:
    lines = []
    for o in options:
        flags = ", ".join(f"\\fB{roff(f)}\\fR" for f in o.flags)
        value = f" \\fI{roff(o.value)}\\fR" if o.value else ""
        lines += [".TP", flags + value, roff(o.help)]
    return lines


def _argument_items(command: Command) -> list[str]:
    lines = []
    for p in command.positionals:
        lines += [".TP", f"\\fI{roff(p.name)}\\fR", roff(p.help or "(see the synopsis)")]
    return lines


def command_page(command: Command, version: str) -> str:
    """``bridgectl-COMMAND(1)``: synopsis, arguments, options, nested actions."""
    lines = _page_head(f"{PROG}-{command.name}", command.help, version)
    lines += [".SH SYNOPSIS", roff(command.usage), ".SH DESCRIPTION", roff(command.help)]
    if command.positionals:
        lines += [".SH ARGUMENTS", *_argument_items(command)]
    if command.actions:
        lines.append(".SH ACTIONS")
        for a in command.actions:
            lines += [
                ".TP",
                f"\\fB{roff(a.name)}\\fR",
                roff(a.help),
                ".RS",
                ".PP",
                roff(a.usage),
            ]
            lines += _argument_items(a) + _option_items(a.options) + [".RE"]
    lines += [".SH OPTIONS", *_option_items(command.options)]
    lines += [".SH SEE ALSO", f"\\fB{PROG}\\fR(1), \\fBbridged\\fR(8)", ""]
    return "\n".join(lines)


def overview_page(top: Command, epilog: str, version: str) -> str:
    """``bridgectl(1)``: the options, every command with its page, exit status, examples."""
    lines = _page_head(PROG, top.help, version)
    lines += [
        ".SH SYNOPSIS",
        f"\\fB{PROG}\\fR [\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGUMENTS\\fR]",
        ".SH DESCRIPTION",
        roff(top.help),
        "Each command also takes \\fB\\-\\-json\\fR, \\fB\\-\\-socket\\fR and"
        " \\fB\\-\\-timeout\\fR after its name.",
        ".SH OPTIONS",
        *_option_items(top.options),
        ".SH COMMANDS",
    ]
    for c in top.actions:
        lines += [
            ".TP",
            f"\\fB{roff(c.name)}\\fR",
            f"{roff(c.help)}; see \\fB{PROG}\\-{roff(c.name)}\\fR(1).",
        ]
    lines += [".SH EXIT STATUS AND EXAMPLES", ".nf", roff(epilog.strip()), ".fi"]
    see = ", ".join(f"\\fB{PROG}\\-{roff(c.name)}\\fR(1)" for c in top.actions)
    lines += [".SH SEE ALSO", f"\\fBbridged\\fR(8), {see}", ""]
    return "\n".join(lines)


def man_pages(parser: argparse.ArgumentParser, version: str) -> dict[str, str]:
    """Every page by its file name."""
    top = describe(parser)
    pages = {f"{PROG}.1": overview_page(top, parser.epilog or "", version)}
    for c in top.actions:
        pages[f"{PROG}-{c.name}.1"] = command_page(c, version)
    return pages


def write(out: Path, version: str = __version__) -> list[Path]:
    """Write the completions and pages under ``out``; returns the files written."""
    parser = build_parser()
    top = describe(parser)
    files = {
        Path("bash-completion") / PROG: bash_completion(top),
        Path("zsh") / f"_{PROG}": zsh_completion(top),
        **{Path("man") / name: text for name, text in man_pages(parser, version).items()},
    }
    written = []
    for relative, text in files.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bridged.clidoc",
        description="write bridgectl's shell completions and manual pages",
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--version", default=__version__, help="the version the pages name")
    args = parser.parse_args(argv)
    for path in write(args.directory, args.version):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
