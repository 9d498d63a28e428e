"""The Bootstrap interface (LwM2M 1.1 Core §5.2): a Bootstrap-Server's requests applied to the
tree, and the consistency check that decides whether Bootstrap-Finish is accepted.

``BootstrapInterface.handle`` maps one CoAP request from the Bootstrap-Server to an operation and
returns a ``Reply``, with no network involved, so every rule below is tested without sockets;
the session that sends the Bootstrap-Request and routes the server's requests here lives in
``bootstrap_client``.

======================  ==================================================================
PUT /o, /o/i, /o/i/r    Bootstrap-Write: creates missing instances, may write read-only and
                        bootstrap-only resources; resources not in the payload stay as they are
GET, Accept 40          Bootstrap-Discover on / or /o
GET                     Bootstrap-Read, only of /1 Server and /2 Access Control (1.1)
DELETE /, /o, /o/i      Bootstrap-Delete; never the Bootstrap-Server's own /0 instance nor /3
POST /bs                Bootstrap-Finish: 2.04 when the configuration is consistent, else 4.06
======================  ==================================================================

The codes are those the 1.1 Core lists per operation: a Bootstrap-Write fails with 4.00 or 4.15
only, a Bootstrap-Delete with 4.00, a Bootstrap-Read with 4.00, 4.01, 4.04 or 4.06, a Finish with
4.00 or 4.06. Anything that is not a Bootstrap operation is 4.05; so is a Bootstrap-Write or
Delete of /25, the gateway's view of its end devices, or of an end device's prefixed path:
a Bootstrap-Server configures the gateway, never its nodes (pairing does), so a Bootstrap-Write
or Delete of a node's instance, or a Bootstrap-Write that would create an instance in an object
that holds nodes' instances, is 4.05 too (``nodes.node_owned``), and a Bootstrap-Delete of an
object keeps the nodes' instances in it.

Bootstrap-Delete of ``/`` removes the servers' configuration (the objects in ``provisioned``:
Security except the Bootstrap-Server account, Server, Access Control, OSCORE, and /23), not the
gateway's device-side objects: /3, /4 and the instances that stand for sensor nodes belong to
the machine and the nodes, which would put them back at once. A Bootstrap-Server that means to
remove one of those names it explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import urlsplit

from aiocoap.numbers.codes import Code

from bridged.objects.errors import (
    BadRequest,
    LwM2MError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    Unauthorized,
    UnsupportedContentFormat,
)
from bridged.objects.formats import ContentFormat, acceptable_for, codec_for
from bridged.objects.ids import (
    HOUSEKEEPING,
    Acl,
    Device,
    LwM2MGateway,
    Security,
    SecurityMode,
    Server,
)
from bridged.objects.linkformat import QUOTED_ATTRIBUTES, Link, format_links
from bridged.objects.paths import Level, Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record, Value, check_value

from .credentials import RpkCredentials
from .dm import END_DEVICES_READ_ONLY, Reply, Request, changes_end_devices
from .nodes import NodeBackend, node_owned

log = logging.getLogger(__name__)

SECURITY_MODE_NAMES = MappingProxyType(
    {
        SecurityMode.PSK: "PSK",
        SecurityMode.RPK: "RPK",
        SecurityMode.CERTIFICATE: "Certificate",
        SecurityMode.NOSEC: "NoSec",
        SecurityMode.EST: "EST",
    }
)


FINISH_PATH = ("bs",)
_BINDING_LETTERS = frozenset("UTSN")


def check_binding(binding: object) -> None:
    """BadRequest unless ``binding`` is a /1/x/7 Binding: U, T, S and N (Core 1.1), each once.

    The OMA registry leaves the values to the Core specification, so the tree cannot check them
    from the definition; the client makes the tree check this (``ObjectTree.constrain``), as a
    Binding it cannot take would go out in every Update, and every Update would be refused.
    """
    if not isinstance(binding, str):
        return
    if not binding or not set(binding) <= _BINDING_LETTERS or len(set(binding)) != len(binding):
        raise BadRequest(f"binding {binding!r} is not made of U, T, S and N, each once")


_ACO_MANDATORY = (Acl.OBJECT_ID, Acl.INSTANCE_ID, Acl.OWNER)
_SERVER_MANDATORY = (Server.SSID, Server.LIFETIME, Server.NOTIFICATION_STORING, Server.BINDING)


@dataclass(frozen=True, slots=True)
class ServerAccount:
    """A LwM2M Server account: a /0 instance that is not the Bootstrap-Server's and the /1
    instance with the same Short Server ID."""

    ssid: int
    uri: str
    security_mode: int
    security_iid: int
    server_iid: int


@dataclass(frozen=True, slots=True)
class BootstrapAccount:
    """The Bootstrap-Server account: the /0 instance with Bootstrap-Server = true."""

    iid: int
    uri: str
    security_mode: int
    hold_off: int


def _value(tree: ObjectTree, path: Path) -> Value | dict[int, Value] | None:
    return tree.get(path) if tree.has(path) else None


def _instances(tree: ObjectTree, oid: int) -> list[int]:
    return tree.instance_ids(oid) if tree.has(Path((oid,))) else []


def bootstrap_account(tree: ObjectTree) -> BootstrapAccount | None:
    """The Bootstrap-Server account in the tree, if there is one (the first, if several)."""
    for iid in _instances(tree, Security.OBJECT):
        inst = Path((Security.OBJECT, iid))
        if _value(tree, inst.child(Security.IS_BOOTSTRAP)) is True:
            uri, mode = (
                _value(tree, inst.child(Security.URI)),
                _value(tree, inst.child(Security.MODE)),
            )
            hold_off = _value(tree, inst.child(Security.HOLD_OFF))
            return BootstrapAccount(
                iid,
                uri if isinstance(uri, str) else "",
                mode if isinstance(mode, int) else SecurityMode.NOSEC,
                hold_off if isinstance(hold_off, int) and hold_off > 0 else 0,
            )
    return None


def server_accounts(tree: ObjectTree) -> list[ServerAccount]:
    """The complete LwM2M Server accounts, in registration order: /1/x/13 Registration
    Priority Order first (lowest first, absent last), then Short Server ID."""
    security: dict[int, tuple[int, str, int]] = {}
    for iid in _instances(tree, Security.OBJECT):
        inst = Path((Security.OBJECT, iid))
        ssid, uri = _value(tree, inst.child(Security.SSID)), _value(tree, inst.child(Security.URI))
        mode = _value(tree, inst.child(Security.MODE))
        if _value(tree, inst.child(Security.IS_BOOTSTRAP)) is True or not isinstance(ssid, int):
            continue
        if isinstance(uri, str) and isinstance(mode, int):
            security.setdefault(ssid, (iid, uri, mode))
    ranked: list[tuple[tuple[int, int], ServerAccount]] = []
    for iid in _instances(tree, Server.OBJECT):
        ssid = _value(tree, Path((Server.OBJECT, iid, Server.SSID)))
        if not isinstance(ssid, int) or ssid not in security:
            continue
        sec_iid, uri, mode = security[ssid]
        priority = _value(tree, Path((Server.OBJECT, iid, Server.PRIORITY)))
        rank = priority if isinstance(priority, int) else 2**32
        ranked.append(((rank, ssid), ServerAccount(ssid, uri, mode, sec_iid, iid)))
    return [account for _, account in sorted(ranked, key=lambda r: r[0])]


Staged = dict[tuple[int, int], dict[int, Value | dict[int, Value]]]
"""Instances and their resource values, by (object ID, instance ID)."""


def instance_values(tree: ObjectTree, oid: int, iid: int) -> dict[int, Value | dict[int, Value]]:
    """The resource values of instance /``oid``/``iid``, bootstrap-only ones too."""
    inst = Path((oid, iid))
    return {
        p.ids[2]: tree.get(p)
        for p in tree.resource_paths(inst)
        if p.level is Level.RESOURCE and tree.has(p)
    }


def replace_objects(tree: ObjectTree, objects: Iterable[int], staged: Staged) -> None:
    """Make ``objects`` of ``tree`` hold exactly the ``staged`` instances: a provisioned
    configuration taken as a whole (loaded from disk, or a Bootstrap-Server's finished)."""
    for oid in objects:
        for iid in _instances(tree, oid):
            tree.delete_instance(oid, iid)
    for (oid, iid), resources in staged.items():
        tree.create_instance(oid, iid, resources.items())


def stamp_last_bootstrapped(tree: ObjectTree, when: int) -> None:
    """Record the time of a bootstrap in every /1/x/12 Last Bootstrapped."""
    for iid in _instances(tree, Server.OBJECT):
        tree.set(Path((Server.OBJECT, iid, Server.LAST_BOOTSTRAPPED)), when)


def all_records(tree: ObjectTree, path: Path) -> list[Record]:
    """Every value at or under ``path``, whatever the resources' operations allow a LwM2M
    Server: the Bootstrap-Server and the state file see bootstrap-only resources too."""
    records: list[Record] = []
    for p in tree.resource_paths(path):
        if p.level is not Level.RESOURCE or not tree.has(p):
            continue
        value = tree.get(p)
        if isinstance(value, dict):
            records.extend(Record(p.child(ri), v) for ri, v in sorted(value.items()))
        else:
            records.append(Record(p, value))
    return records


# -- consistency ------------------------------------------------------------------------------


def check_consistency(
    tree: ObjectTree, supported_modes: Iterable[int] = (SecurityMode.NOSEC,)
) -> list[str]:
    """What is wrong with the configuration in the tree; an empty list means consistent.

    Consistent means: at most one Bootstrap-Server account; every Security instance complete
    for its security mode, in a mode this client supports and with a URI scheme that matches
    it; Short Server IDs unique; every Server instance complete and paired with a Security
    instance, and every LwM2M Server Security instance paired with a Server instance; every
    Access Control instance complete; and at least one LwM2M Server account.
    """
    supported = frozenset(supported_modes)
    problems: list[str] = []
    bootstrap_iids: list[int] = []
    security_ssids: dict[int, int] = {}
    for iid in _instances(tree, Security.OBJECT):
        inst = Path((Security.OBJECT, iid))
        is_bs = _value(tree, inst.child(Security.IS_BOOTSTRAP))
        if not isinstance(is_bs, bool):
            problems.append(f"{inst}: Bootstrap-Server (resource 1) is missing")
            continue
        if is_bs:
            bootstrap_iids.append(iid)
        else:
            ssid = _value(tree, inst.child(Security.SSID))
            if not isinstance(ssid, int):
                problems.append(f"{inst}: Short Server ID (resource 10) is missing")
            elif ssid in security_ssids:
                problems.append(
                    f"{inst}: Short Server ID {ssid} is also that of "
                    f"{Path((Security.OBJECT, security_ssids[ssid]))}"
                )
            else:
                security_ssids[ssid] = iid
        problems.extend(_security_problems(tree, inst, supported))
    if len(bootstrap_iids) > 1:
        listed = ", ".join(str(Path((Security.OBJECT, i))) for i in bootstrap_iids)
        problems.append(f"more than one Bootstrap-Server account: {listed}")

    server_ssids: dict[int, int] = {}
    for iid in _instances(tree, Server.OBJECT):
        inst = Path((Server.OBJECT, iid))
        missing = [str(r) for r in _SERVER_MANDATORY if not tree.has(inst.child(r))]
        if missing:
            problems.append(f"{inst}: mandatory resources {', '.join(missing)} are missing")
        ssid = _value(tree, inst.child(Server.SSID))
        if not isinstance(ssid, int):
            continue
        if ssid in server_ssids:
            problems.append(
                f"{inst}: Short Server ID {ssid} is also that of "
                f"{Path((Server.OBJECT, server_ssids[ssid]))}"
            )
        server_ssids[ssid] = iid
        if ssid not in security_ssids:
            problems.append(f"{inst}: no Security instance has Short Server ID {ssid}")
        binding = _value(tree, inst.child(Server.BINDING))
        try:
            check_binding(binding)
        except BadRequest as e:
            problems.append(f"{inst}: {e}")
    for ssid, sec_iid in sorted(security_ssids.items()):
        if ssid not in server_ssids:
            problems.append(
                f"{Path((Security.OBJECT, sec_iid))}: no Server instance has Short Server ID {ssid}"
            )

    for iid in _instances(tree, Acl.OBJECT):
        inst = Path((Acl.OBJECT, iid))
        missing = [str(r) for r in _ACO_MANDATORY if not tree.has(inst.child(r))]
        if missing:
            problems.append(f"{inst}: mandatory resources {', '.join(missing)} are missing")

    if not security_ssids.keys() & server_ssids.keys():
        problems.append("no LwM2M Server account (a /0 and a /1 instance with one Short Server ID)")
    return problems


def _security_problems(tree: ObjectTree, inst: Path, supported: frozenset[int]) -> list[str]:
    """What is wrong with one Security instance's URI, mode and keys."""
    problems: list[str] = []
    uri, mode = _value(tree, inst.child(Security.URI)), _value(tree, inst.child(Security.MODE))
    if not isinstance(mode, int):
        return [f"{inst}: Security Mode (resource 2) is missing"]
    name = SECURITY_MODE_NAMES.get(mode, str(mode))
    if mode not in supported:
        names = ", ".join(SECURITY_MODE_NAMES.get(m, str(m)) for m in sorted(supported))
        problems.append(f"{inst}: security mode {name} is not supported here (only {names})")
    if not isinstance(uri, str) or not uri:
        problems.append(f"{inst}: LwM2M Server URI (resource 0) is missing")
    else:
        split = urlsplit(uri)
        wanted = "coap" if mode == SecurityMode.NOSEC else "coaps"
        if split.scheme != wanted or not split.hostname:
            problems.append(f"{inst}: URI {uri!r} is not a {wanted}:// URI, as {name} needs")
    keys = {rid: _value(tree, inst.child(rid)) for rid, _ in _KEYS.get(mode, ())}
    for rid, what in _KEYS.get(mode, ()):
        if not isinstance(keys[rid], bytes) or not keys[rid]:
            problems.append(f"{inst}: the {what} (resource {rid}) is missing")
    if mode == SecurityMode.RPK and not problems:
        try:  # keys the handshake could not use are refused now, not at the first Register
            RpkCredentials(*(keys[rid] for rid, _ in _KEYS[mode]))  # type: ignore[arg-type]
        except ValueError as e:
            problems.append(f"{inst}: {e}")
    return problems


_KEYS = MappingProxyType(
    {
        SecurityMode.PSK: ((Security.IDENTITY, "PSK identity"), (Security.SECRET_KEY, "PSK key")),
        SecurityMode.RPK: (  # in RpkCredentials' order
            (Security.IDENTITY, "client public key"),
            (Security.SECRET_KEY, "client private key"),
            (Security.SERVER_PUBLIC_KEY, "server public key"),
        ),
        SecurityMode.CERTIFICATE: (
            (Security.IDENTITY, "client certificate"),
            (Security.SERVER_PUBLIC_KEY, "server certificate"),
            (Security.SECRET_KEY, "client private key"),
        ),
    }
)
"""The /0 resources each security mode needs, for the Bootstrap-Finish consistency check."""


# -- the interface ----------------------------------------------------------------------------


class BootstrapInterface:
    """Serves one Bootstrap-Server's requests on ``tree``.

    ``supported_modes`` are the security modes this client can use, which the consistency
    check enforces; ``preferred_format`` answers a Bootstrap-Read that has no Accept (the
    ``pct`` the Bootstrap-Request announced). ``finished`` turns true when a Bootstrap-Finish
    has been accepted. ``confined``: Bootstrap-Write and Delete reach only the ``provisioned``
    objects (a Bootstrap-Server-initiated session, whose tree is a staged copy of those alone:
    ``bootstrap_listener``).
    """

    def __init__(
        self,
        tree: ObjectTree,
        *,
        supported_modes: Iterable[int] = (SecurityMode.NOSEC,),
        preferred_format: int = ContentFormat.SENML_CBOR,
        provisioned: frozenset[int] = HOUSEKEEPING,
        version: str = "1.1",
        nodes: NodeBackend | None = None,
        confined: bool = False,
    ) -> None:
        self.tree = tree
        self.nodes = nodes
        self.confined = confined
        self.supported_modes = frozenset(supported_modes)
        self.preferred_format = preferred_format
        self.provisioned = provisioned
        self.version = version
        self.finished = False

    def handle(self, request: Request) -> Reply:
        """Apply one request; every failure becomes the reply with its CoAP code."""
        method, segments = request.method, request.segments
        payload, content_format = request.payload, request.content_format
        try:
            if tuple(segments) == FINISH_PATH:
                if method != Code.POST:
                    raise MethodNotAllowed("/bs takes only POST (Bootstrap-Finish)")
                return self.finish()
            path = Path.from_segments(segments)
            if path.prefix is not None:
                raise MethodNotAllowed("bootstrap information never holds an end device's objects")
            if path.object_id == LwM2MGateway.OBJECT and changes_end_devices(
                method, payload, content_format
            ):
                raise MethodNotAllowed(f"{path}: {END_DEVICES_READ_ONLY}")
            return self._dispatch(method, path, payload, content_format, request.accept)
        except LwM2MError as e:
            log.info("bootstrap %s %s: %s %s", method, "/".join(segments), e.code_text, e)
            return Reply(e.code, str(e).encode()[:512])

    def _dispatch(
        self,
        method: int,
        path: Path,
        payload: bytes,
        content_format: int | None,
        accept: int | None,
    ) -> Reply:
        if method in (Code.PUT, Code.DELETE) and self._nodes(path):
            raise node_owned(path)
        if (
            self.confined
            and method in (Code.PUT, Code.DELETE)
            and path.level is not Level.ROOT
            and path.ids[0] not in self.provisioned
        ):
            raise BadRequest(
                f"{path}: a Bootstrap-Server-initiated bootstrap provisions only the objects "
                + ", ".join(f"/{o}" for o in sorted(self.provisioned))
            )
        if method == Code.GET:
            if accept == ContentFormat.LINK_FORMAT:
                return self.discover(path)
            return self.read(path, accept)
        if method == Code.PUT:
            return self.write(path, payload, content_format)
        if method == Code.DELETE:
            return self.delete(path)
        raise MethodNotAllowed(f"method {method} on {path} is not a Bootstrap operation")

    # -- operations --------------------------------------------------------------------------

    def write(self, path: Path, payload: bytes, content_format: int | None) -> Reply:
        """Bootstrap-Write: all of it or nothing. Instances that do not exist are created."""
        if path.level not in (Level.OBJECT, Level.INSTANCE, Level.RESOURCE):
            raise BadRequest(f"Bootstrap-Write targets an object, instance or resource, not {path}")
        if content_format is None:
            raise UnsupportedContentFormat("a Bootstrap-Write needs a Content-Format")
        codec = codec_for(content_format)
        try:
            records = codec.decode(payload, path, self.tree.definitions)
            staged = self._stage(path, records)
        except UnsupportedContentFormat:
            raise
        except LwM2MError as e:
            # The Bootstrap-Write codes are 2.04, 4.00 and 4.15: an unknown object or a
            # resource that takes no value is a bad request here.
            raise BadRequest(str(e)) from None
        for oid, iid in staged:
            instance = Path((oid, iid))
            if self._nodes(instance) or (
                # A new instance where nodes' instances are would stand for no node.
                self.nodes is not None
                and not self.tree.has(instance)
                and self.nodes.holds_nodes(instance)
            ):
                raise node_owned(instance)
        for (oid, iid), resources in staged.items():
            if not self.tree.has(Path((oid, iid))):
                self.tree.create_instance(oid, iid, resources.items())
                continue
            for rid, value in resources.items():
                self.tree.set(Path((oid, iid, rid)), value)
        return Reply(Code.CHANGED)

    def _stage(
        self, target: Path, records: Sequence[Record]
    ) -> dict[tuple[int, int], dict[int, Value | dict[int, Value]]]:
        """Check every record against the definitions and group them by instance."""
        definitions = self.tree.definitions
        staged: dict[tuple[int, int], dict[int, Value | dict[int, Value]]] = {}
        for rec in records:
            p = rec.path
            if not target.contains(p) or p.level < Level.RESOURCE:
                raise BadRequest(f"{p} is not a resource under {target}")
            rdef = definitions.resource(p.ids[0], p.ids[2])
            if rdef.type.value == "none":
                raise BadRequest(f"{p} ({rdef.name}) takes no value")
            value = check_value(rdef, rec.value)
            resources = staged.setdefault((p.ids[0], p.ids[1]), {})
            if rdef.multiple != (p.level is Level.RESOURCE_INSTANCE):
                raise BadRequest(f"{p} ({rdef.name}) does not match the resource's instances")
            if p.level is Level.RESOURCE_INSTANCE:
                slot = resources.setdefault(rdef.id, {})
                assert isinstance(slot, dict)
                slot[p.ids[3]] = value
            else:
                resources[rdef.id] = value
        for oid, iid in staged:
            odef = definitions.get(oid)
            others = [i for i in _instances(self.tree, oid) if i != iid]
            others += [i for o, i in staged if o == oid and i != iid]
            if not odef.multiple and others:
                raise BadRequest(f"object {oid} ({odef.name}) is single-instance")
        return staged

    def read(self, path: Path, accept: int | None) -> Reply:
        """Bootstrap-Read, of /1 Server and /2 Access Control only (LwM2M 1.1)."""
        if path.level is Level.ROOT or path.ids[0] not in (Server.OBJECT, Acl.OBJECT):
            raise Unauthorized(f"Bootstrap-Read reads /1 and /2 only, not {path}")
        if path.level > Level.RESOURCE:
            raise BadRequest("Bootstrap-Read targets an object, instance or resource")
        codec = acceptable_for(accept if accept is not None else self.preferred_format)
        records: list[Record] = []
        if self.tree.has(path):
            records = all_records(self.tree, path)
        elif path.level is Level.OBJECT:
            self.tree.definitions.get(path.ids[0])  # an object with no instances reads as empty
        else:
            raise NotFound(f"{path} does not exist")
        payload = codec.encode(records, path, self.tree.definitions)
        return Reply(Code.CONTENT, payload, int(codec.content_format))

    def discover(self, path: Path) -> Reply:
        """Bootstrap-Discover of / or one object: instances with ``ssid`` and ``uri``."""
        if path.level > Level.OBJECT:
            raise BadRequest(f"Bootstrap-Discover targets / or an object, not {path}")
        if path.level is Level.OBJECT:
            self.tree.definitions.get(path.ids[0])
            oids = [path.ids[0]] if self.tree.has(path) else []
        else:
            oids = self.tree.object_ids()
        bs = bootstrap_account(self.tree)
        links = [Link("/", (("lwm2m", self.version),))]
        for oid in oids:
            odef = self.tree.definitions.get(oid)
            iids = self.tree.instance_ids(oid)
            if odef.version != "1.0" or not iids:
                ver = (("ver", odef.version),) if odef.version != "1.0" else ()
                links.append(Link(f"/{oid}", ver))
            for iid in iids:
                links.append(Link(f"/{oid}/{iid}", self._account_attributes(oid, iid, bs)))
        # ``lwm2m`` is a token, as in the Core 1.1 examples (``</>;lwm2m=1.1``): servers that
        # read it as one skip their Bootstrap-Read when it comes quoted.
        quoted = QUOTED_ATTRIBUTES | {"uri"}
        return Reply(Code.CONTENT, format_links(links, quoted=quoted).encode(), 40)

    def _account_attributes(
        self, oid: int, iid: int, bs: BootstrapAccount | None
    ) -> tuple[tuple[str, str | None], ...]:
        """``ssid`` on Security (but the Bootstrap-Server's) and Server instances, ``uri`` on
        Security instances."""
        if oid not in (Security.OBJECT, Server.OBJECT):
            return ()
        inst = Path((oid, iid))
        pairs: list[tuple[str, str | None]] = []
        ssid = _value(
            self.tree, inst.child(Security.SSID if oid == Security.OBJECT else Server.SSID)
        )
        if isinstance(ssid, int) and not (
            oid == Security.OBJECT and bs is not None and bs.iid == iid
        ):
            pairs.append(("ssid", str(ssid)))
        uri = _value(self.tree, inst.child(Security.URI)) if oid == Security.OBJECT else None
        if isinstance(uri, str):
            pairs.append(("uri", uri))
        return tuple(pairs)

    def delete(self, path: Path) -> Reply:
        """Bootstrap-Delete; the Bootstrap-Server account and /3/0 are kept."""
        if path.level > Level.INSTANCE:
            raise BadRequest(f"Bootstrap-Delete targets /, an object or an instance, not {path}")
        bs = bootstrap_account(self.tree)
        keep = {(Security.OBJECT, bs.iid)} if bs is not None else set()
        if path.level is Level.INSTANCE:
            oid, iid = path.ids
            if oid == Device.OBJECT:
                raise BadRequest("the Device object instance is never deleted")
            if (oid, iid) in keep:
                raise BadRequest(f"{path} is the Bootstrap-Server account")
            if not self.tree.has(path):
                raise BadRequest(f"{path} does not exist")
            self.tree.delete_instance(oid, iid)
            return Reply(Code.DELETED)
        if path.level is Level.OBJECT:
            if path.ids[0] == Device.OBJECT:
                raise BadRequest("the Device object instance is never deleted")
            try:
                self.tree.definitions.get(path.ids[0])
            except LwM2MError:
                raise BadRequest(f"object {path.ids[0]} is not defined") from None
            oids = [path.ids[0]]
        else:
            oids = [o for o in self.tree.object_ids() if o in self.provisioned]
        for oid in oids:
            for iid in _instances(self.tree, oid):
                if (oid, iid) not in keep and not self._nodes(Path((oid, iid))):
                    self.tree.delete_instance(oid, iid)
        return Reply(Code.DELETED)

    def _nodes(self, path: Path) -> bool:
        """Whether ``path`` is a node's (an instance standing for a node, or deeper)."""
        return self.nodes is not None and self.nodes.locate(path) is not None

    def finish(self) -> Reply:
        """Bootstrap-Finish: accepted only when the configuration is consistent."""
        problems = check_consistency(self.tree, self.supported_modes)
        if problems:
            raise NotAcceptable("inconsistent configuration: " + "; ".join(problems))
        self.finished = True
        return Reply(Code.CHANGED)
