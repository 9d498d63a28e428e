"""bridgectl's text: the tables and lines each verb's result is shown as (without --json).

Pure functions of the daemon's JSON answers; the verb table (bridged/verbs.py) names which one
shows which verb's result. Standard library only, as bridgectl.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any


def table(rows: Sequence[Sequence[Any]], header: Sequence[str], out: IO[str]) -> None:
    """Columns padded to their widest cell; None shows as ``-``."""
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    for row in [list(header), *cells]:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def progress_bar(elapsed: float, total: float, heard: int, width: int = 30) -> str:
    """``scanning [#####.....]  5/10 s, 3 heard``."""
    done = 0 if total <= 0 else min(int(width * elapsed / total), width)
    bar = "#" * done + "." * (width - done)
    return f"scanning [{bar}] {elapsed:.0f}/{total:.0f} s, {heard} heard"


def value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def show_status(status: Mapping[str, Any], out: IO[str]) -> None:
    out.write(f"endpoint   {status['endpoint']} (exposure {status['exposure']})\n")
    out.write(f"summary    {status.get('summary', '')}\n")
    out.write(f"uptime     {status['uptime']:.0f} s, LwM2M client {status['lwm2m']}\n")
    for s in status["servers"]:
        detail = f" ({s['detail']})" if s.get("detail") else ""
        out.write(f"server {s['short_server_id']:<3} {s['uri']}  {s['state']}{detail}\n")
        delivery = s.get("delivery")
        if delivery:
            error = f", last error: {delivery['last_error']}" if delivery["last_error"] else ""
            out.write(
                f"  delivery {delivery['backlog']} waiting, {delivery['delivered']} delivered "
                f"in {delivery['sends']} sends, {delivery['skipped']} skipped{error}\n"
            )
    endpoints = status.get("endpoints")
    if endpoints is not None:
        states = ", ".join(f"{n} {state}" for state, n in endpoints["states"].items())
        out.write(f"endpoints  {endpoints['nodes']} node endpoints: {states or 'none'}\n")
    nodes = status["nodes"]
    unavailable = f", {nodes['unavailable']} UNAVAILABLE" if nodes.get("unavailable") else ""
    out.write(
        f"nodes      {nodes['paired']} paired, {nodes['reachable']} reachable, "
        f"{nodes['heard']} heard{unavailable}\n"
    )
    for fault in status.get("faults", ()):
        out.write(f"FAULT      {fault['source']}: {fault['why']} (error code {fault['code']})\n")
    readings = status["readings"]
    out.write(
        f"readings   {readings['stored']} stored, {readings['dropped']} dropped, "
        f"{readings['unpaired']} from unpaired nodes ignored\n"
    )
    if readings.get("unclean_stops"):
        out.write(
            f"  {readings['unclean_stops']} unclean stops (kill -9, crash): each may have lost "
            "what was still on its way from the radio to the gateway\n"
        )
    if readings.get("problem"):
        out.write(
            f"  STORING FAILS: {readings['problem']}; {readings['unstored']} readings held "
            "in memory until it works again\n"
        )
    commands = status.get("commands")
    if commands is not None:
        out.write(f"commands   {commands['pending']} pending (bridgectl commands)\n")
    for name, state in sorted(status["transports"].items()):
        out.write(f"transport  {name}: {state}\n")
    if status.get("permit_join"):
        out.write(f"permit-join open for {status['permit_join']:.0f} s\n")


def problem_text(node: Mapping[str, Any]) -> str | None:
    """Why a node's data is refused (``bind key does not decrypt this node's adverts``) with
    its decrypt-failure count, or None when nothing is wrong."""
    failures = node.get("decrypt_failures") or 0
    problem = node.get("problem")
    if problem is None:
        return None
    return f"{problem} ({failures} decrypt failure{'' if failures == 1 else 's'})"


def show_nodes(nodes: Iterable[Mapping[str, Any]], out: IO[str]) -> None:
    nodes = list(nodes)
    table(
        [
            (
                n["id"],
                n["name"],
                n["profile"] or None,
                "yes" if n["reachable"] else "no",
                n["rssi"],
                n["battery"],
                age_text(n["age"]),
            )
            for n in nodes
        ],
        ("NODE", "NAME", "PROFILE", "REACHABLE", "RSSI", "BATTERY", "LAST SEEN"),
        out,
    )
    for n in nodes:
        problem = problem_text(n)
        if problem is not None:
            out.write(f"{n['id']}: {problem}\n")


def show_node(node: Mapping[str, Any], out: IO[str]) -> None:
    for key in ("id", "name", "transport", "profile", "sleepy", "reachable", "rssi", "battery"):
        value = node[key]
        out.write(f"{key:<10} {'unknown' if value is None else value_text(value)}\n")
    out.write(f"{'last seen':<10} {age_text(node['age'])}\n")
    out.write(f"{'keys':<10} {', '.join(node['secrets']) or '-'}\n")
    if node.get("decrypt_failures") or node.get("problem"):
        out.write(f"{'decrypt failures':<10} {node.get('decrypt_failures') or 0}\n")
        out.write(f"{'problem':<10} {node.get('problem') or '-'}\n")
    firmware = node.get("firmware")
    if firmware:
        out.write(f"{'firmware':<10} {firmware_text(firmware)}\n")
    table(
        [(v["path"], v["upstream"], value_text(v["value"])) for v in node["values"]],
        ("NODE PATH", "UPSTREAM", "VALUE"),
        out,
    )


def show_records(records: Iterable[Mapping[str, Any]], out: IO[str]) -> None:
    for r in records:
        out.write(f"{r['path']} = {value_text(r['value'])}\n")


def show_heard(nodes: Iterable[Mapping[str, Any]], out: IO[str]) -> None:
    table(
        [
            (
                n["id"],
                n["name"],
                n["rssi"],
                n["profile"],
                "yes" if n["paired"] else "no",
                n.get("values") or None,
            )
            for n in nodes
        ],
        ("NODE", "NAME", "RSSI", "PROFILE", "PAIRED", "VALUES"),
        out,
    )


def firmware_text(firmware: Mapping[str, Any]) -> str:
    """A node's firmware update: ``updating, 12000/40000 bytes (30%)``, or how it ended:
    ``idle, result 1 success, 2.1.0+7``."""
    words = [firmware["state"]]
    if firmware.get("sent") is not None and firmware.get("total"):
        words.append(f"{firmware['sent']}/{firmware['total']} bytes ({firmware['percent']}%)")
    else:
        words.append(f"result {firmware['result']} {firmware.get('outcome', '')}".rstrip())
    if firmware.get("version"):
        words.append(str(firmware["version"]))
    return ", ".join(words)


def in_text(seconds: float) -> str:
    """A time to come, ``in 23h``; ``due`` once it has passed."""
    if seconds <= 0:
        return "due"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"in {seconds / size:.0f}{unit}"
    return f"in {seconds:.0f}s"


def command_value(command: Mapping[str, Any]) -> str | None:
    """What a command sets or passes: a write's value (``path=value`` for each record when it
    writes several), an execute's arguments."""
    if command["kind"] == "execute":
        return command["arguments"] or None
    if command["kind"] == "firmware":
        return firmware_text(command["firmware"])
    records = command["records"]
    if len(records) == 1 and records[0]["path"] == command["path"]:
        return value_text(records[0]["value"])
    return ", ".join(f"{r['path']}={value_text(r['value'])}" for r in records) or None


COMMAND_COLUMNS = ("ID", "NODE", "PATH", "KIND", "VALUE")


def command_cells(command: Mapping[str, Any]) -> tuple[Any, ...]:
    """The cells every command table starts with: which command, for which node and path,
    setting or passing what."""
    c = command
    return (c["id"], c["node"], c["path"], c["kind"], command_value(c))


def show_commands(
    commands: Iterable[Mapping[str, Any]], out: IO[str], now: float | None = None
) -> None:
    """The desired-state queue: what waits for which node, since when and until when."""
    now = time.time() if now is None else now
    table(
        [
            (
                *command_cells(c),
                age_text(max(now - c["submitted"], 0.0)),
                None if c["expires"] is None else in_text(c["expires"] - now),
            )
            for c in commands
        ],
        (*COMMAND_COLUMNS, "SUBMITTED", "EXPIRES"),
        out,
    )


def show_history(
    commands: Iterable[Mapping[str, Any]], out: IO[str], now: float | None = None
) -> None:
    """The commands that ended: how (applied, failed, expired, superseded), when and why."""
    now = time.time() if now is None else now
    table(
        [
            (
                *command_cells(c),
                c["status"],
                None if c["finished"] is None else age_text(max(now - c["finished"], 0.0)),
                c["detail"] or None,
            )
            for c in commands
        ],
        (*COMMAND_COLUMNS, "STATUS", "ENDED", "DETAIL"),
        out,
    )


def heard_line(node: Mapping[str, Any], new: bool) -> str:
    """One live line of a scan: ``+ ble:A4:C1:38:0A:0B:0C  kitchen  -61 dBm  bthome  21.4 °C``
    (``+`` a node heard for the first time, ``~`` new values of one already listed)."""
    rssi = "-" if node.get("rssi") is None else f"{node['rssi']} dBm"
    paired = "  (paired)" if node.get("paired") else ""
    fields = (node["id"], node.get("name") or "-", rssi, node.get("profile") or "-")
    values = node.get("values") or ""
    return f"{'+' if new else '~'} {'  '.join(fields)}  {values}".rstrip() + paired


def show_observations(servers: Iterable[Mapping[str, Any]], out: IO[str]) -> None:
    for s in servers:
        out.write(f"server {s['short_server_id']} {s['server']}: {len(s['observations'])}\n")
        for paths in s["observations"]:
            out.write(f"  {' '.join(paths)}\n")


TIME_KEYS = frozenset({"time", "submitted", "expires", "finished", "last_seen", "paired_at"})
"""The event data that are times (seconds since the epoch): shown as local ISO times."""


def iso_time(seconds: float) -> str:
    """``2026-12-06T23:21:05+01:00``: local time, to the second, with its offset."""
    return datetime.datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def field_text(key: str, value: Any) -> str:
    """One event field as ``key=value``: times in local ISO form, records as ``path=value``
    pairs, text with spaces quoted, anything else nested as compact JSON."""
    if key in TIME_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{key}={iso_time(value)}"
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, dict) and "path" in v and "value" in v for v in value)
    ):
        return f"{key}=" + ",".join(f"{v['path']}={value_text(v['value'])}" for v in value)
    if isinstance(value, (dict, list)):
        return f"{key}={json.dumps(value, separators=(',', ':'), ensure_ascii=False)}"
    text = value_text(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        text = json.dumps(text, ensure_ascii=False)
    return f"{key}={text}"


def event_text(message: Mapping[str, Any]) -> str:
    """An event as one line: ``2026-12-06T23:21:05+01:00 node.paired id=sim:0002 name=shed``
    (fields without a value left out)."""
    when = message.get("time")
    fields = [
        field_text(k, v) for k, v in message.get("data", {}).items() if v is not None and v != ""
    ]
    head = [iso_time(when)] if isinstance(when, (int, float)) else []
    return " ".join([*head, str(message.get("event")), *fields])
