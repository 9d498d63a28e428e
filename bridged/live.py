"""How bridgectl runs the verbs that stream: scan's live window, the event stream,
permit-join's countdown, and a node's firmware update from a file (its upload, then its
progress). Each is the ``run`` of its verb in the table (bridged/verbs.py): it sends the verb's
request itself, shows what streams while it waits, and returns the exit status.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import math
import os
import time
from collections.abc import Mapping
from typing import IO, Any

from .output import event_text, firmware_text, heard_line, progress_bar, show_heard
from .protocol import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UPLOAD_CHUNK,
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


def node_update(
    args: argparse.Namespace, client: Client, out: IO[str], err: IO[str], request: dict[str, Any]
) -> int:
    """Update a node's firmware from FILE: the daemon never opens a path it is given (it runs
    as another user), so the file is read here and sent in chunks, its size first (refused
    over ``[nodes] firmware_max_size`` before any is sent) and its SHA-256 (the daemon checks
    what it took against it). Then, unless --no-wait, show the progress (a line per state on
    stdout, the bytes redrawn on a terminal's stderr) until the update ends: exit 0 applied,
    1 failed with its Update Result. Ctrl-C stops watching, not the update."""
    try:
        with open(args.file, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise Failed(EXIT_USAGE, f"{args.file}: {e.strerror}") from None
    if not size:
        raise Failed(EXIT_USAGE, f"{args.file} is empty")
    node = request["node"]
    live = err.isatty() and not args.json
    wait = args.wait is not False
    state: dict[str, Any] = {"updating": False, "end": None}

    def on_event(message: Mapping[str, Any]) -> None:
        data = message.get("data", {})
        if message.get("event") != "firmware" or data.get("node") != request["node"]:
            return
        if args.json:
            out.write(json.dumps(data) + "\n")
            out.flush()
        elif live:
            err.write(f"\r\033[K{node}: {firmware_text(data)}")
            err.flush()
        if data["state"] == "updating":
            state["updating"] = True
        elif data["state"] == "idle" and state["updating"]:
            state["end"] = data

    begun = client.call("node.update", {**request, "size": size, "sha256": sha256})
    node = begun["node"]
    if wait:
        client.call("subscribe", {"events": ["firmware"]})
    with open(args.file, "rb") as f:
        offset = 0
        while chunk := f.read(UPLOAD_CHUNK):
            params = {"node": node, "upload": begun["upload"], "offset": offset}
            params["data"] = base64.b64encode(chunk).decode()
            offset = client.call("node.update_chunk", params, on_event)["received"]
    status = client.call("node.update_finish", {"node": node, "upload": begun["upload"]}, on_event)
    if not wait:
        if not args.json:
            out.write(f"{node}: {size} bytes taken, {firmware_text(status)}\n")
        return EXIT_OK
    client.sock.settimeout(None)
    try:
        while state["end"] is None:
            message = client.receive()
            if "error" in message:
                raise failure(message["error"])
            on_event(message)
    except KeyboardInterrupt:
        if live:
            err.write("\n")
        out.write(f"{node}: the update goes on; see bridgectl node show {node}\n")
        return EXIT_INTERRUPTED
    end: Mapping[str, Any] = state["end"]
    if live:
        err.write("\n")
    if not args.json:
        out.write(f"{node}: {firmware_text(end)}\n")
    if end["result"] != 1:
        why = f"Update Result {end['result']} ({end['outcome']})"
        raise Failed(EXIT_FAILED, f"{node}: update failed, {why}")
    return EXIT_OK
