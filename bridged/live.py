"""How bridgectl runs the verbs that stream: scan's live window, the event stream, and
permit-join's countdown. Each is the ``run`` of its verb in the table (bridged/verbs.py): it
sends the verb's request itself, shows what streams while it waits, and returns the exit
status.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from collections.abc import Mapping
from typing import IO, Any

from .output import event_text, heard_line, progress_bar, show_heard
from .protocol import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Client,
    Failed,
    Stream,
    failure,
)


def scan(
    args: argparse.Namespace, client: Client, out: IO[str], err: IO[str], request: dict[str, Any]
) -> int:
    """The scan window: on a terminal, a line per node heard (and per change of its values)
    above the progress bar; with --json, each of those as a JSON line on stdout as it comes;
    then the final table (or JSON array)."""
    live = err.isatty() and not args.json
    shown: set[str] = set()
    heard: dict[str, Mapping[str, Any]] = {}
    bar = ""

    def on_event(message: Mapping[str, Any]) -> None:
        nonlocal bar
        data = message["data"]
        if message["event"] == "node.heard":
            heard[data["id"]] = data
        if args.json:
            if message["event"] == "node.heard":
                out.write(json.dumps(data) + "\n")
                out.flush()
            return
        if not live:
            return
        if message["event"] == "progress":
            bar = progress_bar(data["elapsed"], data["seconds"], data["heard"])
        elif message["event"] == "node.heard":
            line = heard_line(data, data["id"] not in shown)
            shown.add(data["id"])
            err.write("\r\033[K" + line + "\n")
        err.write("\r" + bar)
        err.flush()

    client.sock.settimeout(args.timeout + args.seconds)
    code = EXIT_OK
    try:
        result = client.call("scan", request, on_event)
    except KeyboardInterrupt:
        # Ctrl-C ends the window early: what was heard so far is still the answer.
        result, code = list(heard.values()), EXIT_INTERRUPTED
    finally:
        if live:
            err.write("\n")
    if args.json:
        out.write(json.dumps(result) + "\n")
    else:
        show_heard(result, out)
    return code


def events(
    args: argparse.Namespace, client: Client, out: IO[str], err: IO[str], request: dict[str, Any]
) -> int:
    """Stream events until Ctrl-C (the usual end: exit 0) or the daemon ends them."""
    client.call("subscribe", request)
    client.sock.settimeout(None)
    try:
        while True:
            message = client.receive()
            if "error" in message:
                raise failure(message["error"])
            out.write((json.dumps(message) if args.json else event_text(message)) + "\n")
            out.flush()
    except KeyboardInterrupt:
        return EXIT_OK


def permit_join(
    args: argparse.Namespace, client: Client, out: IO[str], err: IO[str], request: dict[str, Any]
) -> int | None:
    """With --wait (the default on a terminal), open the window, then count down and show
    each node that joins until it closes (here, or by anyone else's ``permit-join``); Ctrl-C
    closes it (exit 130). On a terminal the countdown is redrawn on stderr; each join is a line
    on stdout (a JSON line with --json), and so is the end. Without, or to close the window
    (0 s), None: the request is sent and answered as any other."""
    wait = out.isatty() if args.wait is None else args.wait
    if not wait or args.seconds <= 0:
        return None
    live = err.isatty() and not args.json
    client.call("subscribe", {"events": ["node.paired", "permit_join"]})  # before: miss none
    stream = Stream(client)
    joined: list[dict[str, Any]] = []

    def say(line: str) -> None:
        if live:
            err.write("\r\033[K")
            err.flush()
        out.write(line + "\n")
        out.flush()

    try:
        # Inside: a Ctrl-C as the window opens, before its answer is here, closes it too.
        seconds = stream.call("permit_join", request, args.timeout)["seconds"]
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if live:
                err.write(
                    f"\rpermit-join open: {math.ceil(left)} s left, {len(joined)} joined\033[K"
                )
                err.flush()
            message = stream.get(min(left, 1.0))
            if message is None:
                continue
            if message is stream.END:
                raise Failed(EXIT_FAILED, "bridged closed the connection")
            data = message.get("data", {})
            if message.get("event") == "node.paired":
                joined.append(dict(data))
                say(json.dumps(data) if args.json else f"joined {data['id']} ({data['name']})")
            elif message.get("event") == "permit_join":
                # Someone opened it again for longer, or closed it.
                deadline = time.monotonic() + max(float(data["seconds"]), 0.0)
    except KeyboardInterrupt:
        with contextlib.suppress(Failed):
            stream.call("permit_join", {"seconds": 0}, args.timeout)
        end = {"closed": "interrupted", "joined": [n["id"] for n in joined]}
        say(json.dumps(end) if args.json else f"permit-join closed: {len(joined)} joined")
        return EXIT_INTERRUPTED
    end = {"closed": "window over", "joined": [n["id"] for n in joined]}
    say(json.dumps(end) if args.json else f"permit-join closed: {len(joined)} joined")
    return EXIT_OK
