"""The gateway's things as JSON, as ``bridgectl`` shows them: resource values, paired nodes,
commands of the desired-state queue, nodes heard on the air. One place, so that the control
socket's answers and its event stream spell a node or a value the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from bridged.delivery import Delivery
from bridged.engine.bootstrap_client import BootstrapEvent
from bridged.engine.client import LwM2MClient, ServerConfig
from bridged.engine.registration import RegistrationEvent
from bridged.health import NodeHealth
from bridged.objects.ids import FirmwareUpdate
from bridged.objects.paths import Path
from bridged.objects.values import ObjLnk, Record, Value, to_text
from bridged.registry import LiveNode
from bridged.store.commands import Command, CommandKind
from bridged.transports.base import Heard
from bridged.transports.firmware import State, outcome
from bridged.transports.nodes import NodeId

from .summary import records_text


def json_value(value: Value) -> Any:
    """A resource value as JSON: numbers, strings and booleans as they are, Opaque in base64
    and Objlnk as ``oid:iid`` (their text/plain forms)."""
    if isinstance(value, (bytes, ObjLnk)):
        return to_text(value)
    return value


def json_record(record: Record) -> dict[str, Any]:
    out: dict[str, Any] = {"path": str(record.path), "value": json_value(record.value)}
    if record.time is not None:
        out["time"] = record.time
    return out


def node_json(node: LiveNode, now: float, health: NodeHealth | None = None) -> dict[str, Any]:
    """A paired node as ``bridgectl nodes`` shows it, with its ``health`` when known. Until
    its transport says anything of it (after a restart), its link, battery, refused frames
    and when it was last heard are what its health kept from before (bridged/health.py)."""
    state = node.state
    known = state if state is not None else health
    last_seen = node.last_seen
    if last_seen is None and health is not None:
        last_seen = health.last_heard
    out = {
        "id": str(node.id),
        "name": node.paired.name,
        "transport": node.id.transport,
        "profile": node.paired.profile,
        "sleepy": node.paired.sleepy or bool(state and state.sleepy),
        "reachable": bool(state and state.reachable),
        "last_seen": last_seen,
        "age": None if last_seen is None else max(now - last_seen, 0.0),
        "rssi": known.rssi if known else None,
        "lqi": known.lqi if known else None,
        "battery": known.battery if known else None,
        "objects": {str(oid): iids for oid, iids in sorted(node.objects.items())},
        # The health's count has those refused before a restart (the transport's, from its start).
        "decrypt_failures": (health or known).decrypt_failures if known else 0,
        "problem": known.problem if known else None,
    }
    if health is not None:
        out["health"] = health.json()
    return out


def node_detail_json(
    node: LiveNode,
    now: float,
    health: NodeHealth | None,
    *,
    secrets: Iterable[str],
    upstream: Callable[[NodeId, Path], Path | None],
    firmware: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """One paired node as ``bridgectl node`` shows it: what ``node_json`` says, when it was
    paired, the names of its ``secrets`` (never the keys), each value with its ``upstream``
    path (None: not shown upstream), and its firmware update's status."""
    out = node_json(node, now, health)
    out["paired_at"] = node.paired.paired_at
    out["secrets"] = sorted(secrets)
    values = sorted(node.values.items(), key=lambda kv: kv[0].sort_key())
    out["values"] = [
        {**json_record(record), "upstream": (up := upstream(node.id, path)) and str(up)}
        for path, record in values
    ]
    out["firmware"] = firmware
    return out


def command_json(command: Command) -> dict[str, Any]:
    """A command of the desired-state queue as ``bridgectl commands`` shows it; an ended
    firmware update with how the node's /5 ended (``firmware``: its result, package and
    version, from the command's records)."""
    out = {
        "id": command.id,
        "node": str(command.node),
        "path": str(command.path),
        "kind": command.kind.value,
        "status": command.status.value,
        "records": [json_record(r) for r in command.records],
        "arguments": command.arguments,
        "replace": command.replace,
        "submitted": command.created,
        "expires": command.expires,
        "finished": command.finished,
        "detail": command.detail,
    }
    if command.kind is CommandKind.FIRMWARE:
        values = {r.path.ids[2]: r.value for r in command.records if len(r.path.ids) == 3}
        result = values.get(FirmwareUpdate.UPDATE_RESULT)
        out["firmware"] = {
            "state": State.IDLE.name.lower(),
            "result": result,
            "outcome": outcome(result) if isinstance(result, int) else "unknown",
            "package": values.get(FirmwareUpdate.PKG_NAME, ""),
            "version": values.get(FirmwareUpdate.PKG_VERSION, ""),
        }
    return out


def firmware_command_json(
    node: NodeId, since: float, status: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A node's firmware update under way, as ``bridgectl commands`` lists it beside the
    queue's commands: it too waits for a sleepy node's wake windows (its progress in
    ``firmware``; it ends with the update, its deadline the transport's)."""
    return {
        "id": None,
        "node": str(node),
        "path": f"/{FirmwareUpdate.OBJECT}/0/{FirmwareUpdate.UPDATE}",
        "kind": "firmware",
        "status": "pending",
        "records": [],
        "arguments": "",
        "replace": False,
        "submitted": since,
        "expires": None,
        "finished": None,
        "detail": "",
        "firmware": status,
    }


def heard_json(heard: Heard) -> dict[str, Any]:
    """A node heard on the air, as ``bridgectl scan`` shows it: ``values`` is its decoded
    values as one line (``21.4 °C 48.5 %``), or ``encrypted`` when it sent nothing but
    encrypted data the gateway has no key for."""
    values = records_text(heard.records)
    return {
        "id": str(heard.node),
        "name": heard.name,
        "rssi": heard.rssi,
        "profile": heard.profile,
        "time": heard.time,
        "encrypted": heard.encrypted,
        "values": values or ("encrypted" if heard.encrypted else ""),
        "records": [json_record(r) for r in heard.records],
    }


def bootstrap_json(event: BootstrapEvent | None) -> dict[str, Any] | None:
    """The bootstrap's last event as ``bridgectl status`` shows it (None: none yet)."""
    if event is None:
        return None
    return {"server": event.server, "state": event.state.value, "detail": event.detail}


def servers_json(
    client: LwM2MClient,
    configured: Sequence[ServerConfig],
    registrations: Mapping[str, RegistrationEvent],
    delivery: Delivery,
    *,
    running: bool,
) -> list[dict[str, Any]]:
    """Each server's registration, live from the ``client``'s session, else (no session yet,
    or the client stopped) each ``configured`` server from its last event."""
    out = [
        server_json(
            session.uri,
            session.short_server_id,
            session.registrar.version,
            session.registrar.state.value,
            registered=session.registered,
            observations=len(session.observations),
            last=registrations.get(session.name),
            delivery=delivery,
        )
        for session in client.sessions
    ]
    return out or [
        server_json(
            server.uri,
            server.short_server_id,
            server.version,
            "starting" if running else "stopped",
            registered=False,
            observations=0,
            last=registrations.get(server.uri),
            delivery=delivery,
        )
        for server in configured
    ]


def server_json(
    uri: str,
    short_server_id: int,
    version: str,
    state: str,
    *,
    registered: bool,
    observations: int,
    last: RegistrationEvent | None,
    delivery: Delivery,
) -> dict[str, Any]:
    """A server's registration as ``bridgectl status`` shows it: its ``state``, the last
    registration event ``last``, and what ``delivery`` holds and did for it."""
    return {
        "uri": uri,
        "short_server_id": short_server_id,
        "state": state,
        "registered": registered,
        "version": version,
        "observations": observations,
        "last_event": last.kind.value if last else None,
        "detail": last.detail if last else "",
        "delivery": delivery_json(delivery, short_server_id),
    }


def delivery_json(delivery: Delivery, short_server_id: int) -> dict[str, Any] | None:
    """The readings waiting for a server, and what delivery did for it since start; None
    for a server delivery does not serve."""
    if short_server_id not in delivery.servers:
        return None
    stats = delivery.stats(short_server_id)
    return {
        "backlog": delivery.backlog(short_server_id),
        "delivered": stats.delivered,
        "sends": stats.sends,
        "failed_sends": stats.failed_sends,
        "skipped": stats.skipped,
        "last_error": stats.last_error,
    }
