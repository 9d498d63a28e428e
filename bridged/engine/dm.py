"""Device management and service enablement: a server's requests applied to the tree.

``DeviceManagement.handle`` maps one CoAP request (method, path, query, payload, formats) to a
tree operation and returns a ``Reply``. It knows nothing of sockets, so every rule here (which
method is which operation, content negotiation, the code of every failure) is tested without a
network; ``DeviceManagementResource`` is the thin aiocoap adapter around it.

Operations, as LwM2M 1.1 maps them onto CoAP:

======================  =========================================================
GET, Accept 40          Discover
GET                     Read
PUT with payload        Write (replace)
PUT without payload     Write-Attributes (the query carries them)
POST /o                 Create
POST /o/i               Write (partial update)
POST /o/i/r             Execute (text/plain arguments)
DELETE /o/i             Delete
FETCH                   Read-Composite (payload: the paths)
iPATCH                  Write-Composite
======================  =========================================================

With an ``AccessControl`` (several servers configured), every operation is first checked
against /2 for the server whose requests this instance handles, and a Read of an object returns
only the instances that server may read.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code

from bridged.objects.errors import (
    BadRequest,
    LwM2MError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    RequestEntityTooLarge,
    Unauthorized,
    UnsupportedContentFormat,
)
from bridged.objects.formats import (
    Codec,
    ContentFormat,
    acceptable_for,
    codec_for,
    composite_codec_for,
)
from bridged.objects.ids import BOOTSTRAP_ONLY, LwM2MGateway
from bridged.objects.linkformat import (
    Attributes,
    announced_version,
    discover_links,
    parse_attributes,
)
from bridged.objects.paths import ROOT, Level, Path
from bridged.objects.tree import Listener, ObjectTree
from bridged.objects.values import Record
from bridged.transports.nodes import NodeId

from .access import AccessControl, Operation, check_server_id
from .attributes import AttributeMap
from .blockwise import Block1Assembler
from .nodes import NodeBackend, node_owned
from .notification import effective_attributes

if TYPE_CHECKING:
    from aiocoap.pipe import Pipe

    from .observe import Observations

log = logging.getLogger(__name__)

T = TypeVar("T")

NUMERIC_ONLY = frozenset({"gt", "lt", "st"})

MAX_PAYLOAD = 64 * 1024
"""The largest request body served (4.13 above it, at the first Block1 block past it: see
``bridged.engine.blockwise``). A server's writes to a gateway (values, composite writes of many
nodes) stay far below this, so a larger body is a mistake or an attack."""

NUMERIC_TYPES = frozenset({"Integer", "Unsigned Integer", "Float"})
"""Resource types that gt, lt and st apply to."""

_EXECUTE_ARGS = re.compile(r"[0-9](?:='[!#-&(-\[\]-~]*')?(?:,[0-9](?:='[!#-&(-\[\]-~]*')?)*")
"""LwM2M Execute arguments: ``arg *("," arg)``, ``arg = DIGIT ["=" "'" *CHAR "'"]`` where CHAR
excludes ``"``, ``'`` and ``\\``."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What goes back to the server: a CoAP code, payload and its format, and for a Create the
    new instance's location."""

    code: int
    payload: bytes = b""
    content_format: int | None = None
    location: tuple[str, ...] = ()


@dataclass(slots=True)
class Request:
    """What a server asks, as device management and the Bootstrap interface take it: the
    method, the URI path's segments and queries, the payload with its Content-Format, and the
    Accept option (``of``: an aiocoap request's). Not frozen: a frozen dataclass sets each
    field through ``object.__setattr__`` by name, and one is built for every request."""

    method: int
    segments: Sequence[str]
    query: Sequence[str] = ()
    payload: bytes = b""
    content_format: int | None = None
    accept: int | None = None

    @classmethod
    def of(cls, message: aiocoap.Message) -> Request:
        opt = message.opt
        content_format, accept = opt.content_format, opt.accept
        return cls(
            int(message.code),
            tuple(opt.uri_path),
            tuple(opt.uri_query),
            bytes(message.payload),
            None if content_format is None else int(content_format),
            None if accept is None else int(accept),
        )


def error_reply(error: LwM2MError) -> Reply:
    """The reply to a request that failed with ``error``: its code, its message as diagnostic."""
    return Reply(error.code, str(error).encode()[:512])


def _refused(request: Request, error: LwM2MError) -> Reply:
    """The reply to ``request``, which failed with ``error``, logged with its path."""
    where = "/".join(request.segments)
    log.info(
        "request %s %s: %s %s", request.method, where, error.code_text, error, extra={"PATH": where}
    )
    return error_reply(error)


END_DEVICES_READ_ONLY = "the end devices change by pairing and unpairing nodes, not here"


def changes_end_devices(method: int, payload: bytes, content_format: int | None) -> bool:
    """Whether a request to /25 would change it: a Create, Write or Delete (Write-Attributes,
    a PUT without payload, only sets how it is observed)."""
    if method == Code.PUT:
        return bool(payload) or content_format is not None
    return method in (Code.POST, Code.DELETE)


def parse_execute_arguments(text: str) -> dict[int, str | None]:
    """Parse ``1='v1',2='v2',3``; BadRequest on anything else or a repeated digit."""
    if not text:
        return {}
    if not _EXECUTE_ARGS.fullmatch(text):
        raise BadRequest(f"execute arguments {text[:60]!r} do not follow the LwM2M syntax")
    args: dict[int, str | None] = {}
    for part in re.finditer(r"([0-9])(?:='([^']*)')?", text):
        digit = int(part.group(1))
        if digit in args:
            raise BadRequest(f"execute argument {digit} is given twice")
        args[digit] = part.group(2)
    return args


class EndDevices(Protocol):
    """The end devices of a LwM2M Gateway (the ``gateway`` exposure mode): each has a tree
    whose prefix is the end device's, served at prefixed paths (``/dev3/3303/0/5700``)."""

    def end_device_tree(self, prefix: str) -> ObjectTree | None:
        """The tree of the end device with ``prefix``; None if there is none."""
        ...

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Report every change in an end device's tree, and ``Path((), prefix)`` when the end
        device goes away; returns the function that unsubscribes."""
        ...


class DeviceManagement:
    """Serves one tree to a server. ``version`` is the LwM2M version the server registered
    with, which picks the default format when a request has no Accept.

    ``server_id`` is the Short Server ID of that server (None when unknown), since several
    servers share one tree; ``access`` enforces /2 for it (None: no enforcement, the
    single-server case where the server has full access). A request body larger than
    ``max_payload`` is refused with 4.13.

    With ``nodes``, requests go through ``handle_async``: Read, Write and Execute of a path a
    node backs (see ``bridged.engine.nodes``) are awaited from the node; everything else, and
    every request without ``nodes``, is the synchronous ``handle``.

    With ``end_devices`` (a LwM2M Gateway), a request to a prefixed path is served from that end
    device's tree, composite requests may mix the gateway's paths and end devices' ones, and an
    unknown prefix is 4.04. Access Control does not apply to end devices (Gateway TS: servers
    have full rights on them); their Write-Attributes are kept with the gateway's.
    """

    def __init__(
        self,
        tree: ObjectTree,
        version: Callable[[], str] = lambda: "1.1",
        *,
        server_id: int | None = None,
        access: AccessControl | None = None,
        max_payload: int = MAX_PAYLOAD,
        nodes: NodeBackend | None = None,
        end_devices: EndDevices | None = None,
    ) -> None:
        self.tree = tree
        self.nodes = nodes
        self.end_devices = end_devices
        self._end_device_dms: dict[str, DeviceManagement] = {}
        self.version = version
        self.max_payload = max_payload
        self.attributes = AttributeMap()
        self.server_id = None if server_id is None else check_server_id(server_id)
        if access is not None and self.server_id is None:
            raise ValueError("access control needs the Short Server ID of the server")
        self.access = access

    # -- entry point -------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        """Apply one request; every failure becomes the reply with its CoAP code."""
        try:
            return self._handle(request)
        except LwM2MError as e:
            return _refused(request, e)

    def _handle(self, request: Request, path: Path | None = None) -> Reply:
        """``handle`` that raises; ``path``: the request's, when the caller parsed it."""
        payload = request.payload
        if len(payload) > self.max_payload:
            raise RequestEntityTooLarge(
                f"a {len(payload)}-byte payload exceeds the {self.max_payload} bytes served"
            )
        if path is None:
            path = Path.from_segments(request.segments)
        if path.prefix != self.tree.prefix:
            # A non-numeric first segment names an end device; one not served here is 4.04.
            return self._end_device(path)._dispatch(request, path)
        return self._dispatch(request, path)

    def _dispatch(self, request: Request, path: Path) -> Reply:
        method, payload, content_format = request.method, request.payload, request.content_format
        accept = request.accept
        if method in (Code.FETCH, Code.iPATCH):
            if path != ROOT:
                raise BadRequest("composite operations address the root path")
            if method == Code.FETCH:
                return self.read_composite(payload, content_format, accept)
            return self.write_composite(payload, content_format)
        if path.level is Level.ROOT:
            raise MethodNotAllowed("this operation needs an object path")
        if path.object_id in BOOTSTRAP_ONLY:
            raise Unauthorized(f"{path} is only for the bootstrap server")
        if path.object_id == LwM2MGateway.OBJECT and changes_end_devices(
            method, payload, content_format
        ):
            raise MethodNotAllowed(f"{path}: {END_DEVICES_READ_ONLY}")
        if method == Code.GET:
            if accept == ContentFormat.LINK_FORMAT:
                return self.discover(path)
            return self.read(path, accept)
        if method == Code.PUT:
            if not payload and content_format is None:
                return self.write_attributes(path, request.query)
            return self.write(path, payload, content_format, replace=True)
        if method == Code.POST:
            if path.level is Level.OBJECT:
                return self.create(path, payload, content_format)
            if path.level is Level.INSTANCE:
                return self.write(path, payload, content_format, replace=False)
            if path.level is Level.RESOURCE:
                return self.execute(path, payload, content_format)
            raise MethodNotAllowed(f"POST on {path}")
        if method == Code.DELETE:
            self._check(Operation.DELETE, path)
            self.tree.delete(path)
            self.attributes.forget(path)
            return Reply(Code.DELETED)
        raise MethodNotAllowed(f"method {method} is not a LwM2M operation")

    # -- operations --------------------------------------------------------------------------

    def read(self, path: Path, accept: int | None) -> Reply:
        self._check(Operation.READ, path)
        if len(path.ids) == 2:
            return self._read_instance(path, accept)
        records = self._readable(self.tree.read(path))
        codec = self._output_codec(accept, path, records)
        return self._content(codec, records, path)

    def _read_instance(self, path: Path, accept: int | None) -> Reply:
        """``read`` of an instance: the tree keeps what a server reads over and over, with
        its encoding in each format asked for (``InstanceRead``), so an unchanged instance is
        encoded once, whichever server reads it."""
        kept = self.tree.instance_read(path)
        records = kept.records
        readable = self._readable(records)
        if len(readable) != len(records):  # not so with /2 as it is (``AccessControl.allows``)
            return self._content(self._output_codec(accept, path, readable), readable, path)
        codec = self._output_codec(accept, path, records)
        content_format = int(codec.content_format)
        payload = kept.encoded.get(content_format)
        if payload is None:
            payload = kept.encoded[content_format] = codec.encode(
                records, path, self.tree.definitions
            )
        return Reply(Code.CONTENT, payload, content_format)

    def write(
        self, path: Path, payload: bytes, content_format: int | None, *, replace: bool
    ) -> Reply:
        self._check(Operation.WRITE, path)
        records = self._input_codec(content_format).decode(payload, path, self.tree.definitions)
        self.tree.write(path, records, replace=replace)
        return Reply(Code.CHANGED)

    def create(self, path: Path, payload: bytes, content_format: int | None) -> Reply:
        self._check(Operation.CREATE, path)
        codec = self._input_codec(content_format)
        try:
            records = codec.decode(payload, path, self.tree.definitions)
        except BadRequest:
            if codec.content_format is not ContentFormat.TLV:
                raise
            # A TLV Create without an Object Instance wrapper leaves the ID to the client: read
            # the resources as those of the instance it is about to get.
            new = self.tree.free_instance_id(path.ids[0])
            records = codec.decode(payload, path.child(new), self.tree.definitions)
        created = self.tree.create(path, records)
        if self.access is not None and self.server_id is not None:
            self.access.created(self.server_id, created)
        return Reply(Code.CREATED, location=tuple(created.segments()))

    def execute(self, path: Path, payload: bytes, content_format: int | None) -> Reply:
        self._check(Operation.EXECUTE, path)
        if content_format not in (None, ContentFormat.TEXT):
            raise UnsupportedContentFormat("execute arguments are text/plain")
        try:
            text = payload.decode("ascii")
        except UnicodeDecodeError:
            raise BadRequest("execute arguments must be ASCII") from None
        parse_execute_arguments(text)
        self.tree.execute(path, text)
        return Reply(Code.CHANGED)

    def discover(self, path: Path) -> Reply:
        if path.level > Level.RESOURCE:
            raise MethodNotAllowed("Discover addresses an object, an instance or a resource")
        paths = [*self.tree.instances(path), *self.tree.resource_paths(path)]
        dims: dict[Path, int] = {}
        for p in paths:
            if p.level is Level.RESOURCE and self.tree.has(p):
                value = self.tree.get(p)
                if isinstance(value, dict):
                    dims[p] = len(value)
        odef = self.tree.definitions.get(path.ids[0])
        text = discover_links(
            path,
            paths,
            dims=dims,
            attributes=self._discovered_attributes(path),
            object_version=announced_version(odef, self.version()),
        )
        return Reply(Code.CONTENT, text.encode(), ContentFormat.LINK_FORMAT)

    def _discovered_attributes(self, target: Path) -> dict[Path, Attributes]:
        """The attributes a Discover of ``target`` reports (LwM2M Core §5.4.1): the target's
        own, inherited from its object and instance when it is a resource, and the own
        attributes of the paths one level below it (an instance's resources, a resource's
        instances); deeper paths show none."""
        found = self.attributes.children(target)
        own = (
            effective_attributes(self.attributes, target)
            if target.level is Level.RESOURCE
            else self.attributes.get(target)
        )
        if own is not None and own.pairs():
            found[target] = own
        return found

    def write_attributes(self, path: Path, query: Sequence[str]) -> Reply:
        self._check(Operation.WRITE_ATTRIBUTES, path)
        change = parse_attributes(query)
        if not self.tree.has(path) and path.level is not Level.OBJECT:
            raise NotFound(f"{path} does not exist")
        if path.level is Level.OBJECT:
            self.tree.definitions.get(path.ids[0])
        named = {name for name, _ in change.pairs()} | change.unset
        if named & NUMERIC_ONLY:
            if path.level < Level.RESOURCE:
                raise BadRequest("gt, lt and st apply to a numeric resource")
            rdef = self.tree.definitions.resource(path.ids[0], path.ids[2])
            if rdef.type.value not in NUMERIC_TYPES:
                raise BadRequest(f"gt, lt and st apply to numbers; {rdef.name} is not one")
        merged = self.attributes.get(path, Attributes()).updated(change)
        # LwM2M 1.1 Core 5.1.2: lt + 2 * st < gt, so the band between them holds two steps.
        lt, gt = merged.lt, merged.gt
        if lt is not None and gt is not None and lt + 2 * (merged.st or 0.0) >= gt:
            raise BadRequest(f"lt ({lt:g}) plus twice st must stay below gt ({gt:g})")
        self.attributes[path] = merged
        return Reply(Code.CHANGED)

    def read_composite(
        self, payload: bytes, content_format: int | None, accept: int | None
    ) -> Reply:
        if content_format is None:
            raise UnsupportedContentFormat("Read-Composite needs the paths' content format")
        paths = composite_codec_for(content_format).decode_paths(payload)
        records: list[Record] = []
        for p in paths:
            if p.object_id in BOOTSTRAP_ONLY:
                raise Unauthorized(f"{p} is only for the bootstrap server")
            self._check(Operation.READ, p)
            if p == ROOT:
                records.extend(
                    self._readable(
                        [r for r in self.tree.read(p) if r.path.ids[0] not in BOOTSTRAP_ONLY]
                    )
                )
                continue
            try:
                tree = self.tree_for(p)
                found = tree.read(p)
            except NotFound:
                continue  # partial presence: what exists is returned
            records.extend(self._readable(found))
        records.sort(key=lambda r: r.path.sort_key())
        if accept is None:
            out = composite_codec_for(content_format)
        else:
            try:
                out = composite_codec_for(accept)
            except UnsupportedContentFormat as e:
                raise NotAcceptable(str(e)) from None  # the answer's format: 4.06, not 4.15
        return self._content(out, records, ROOT)

    def write_composite(self, payload: bytes, content_format: int | None) -> Reply:
        if content_format is None:
            raise UnsupportedContentFormat("Write-Composite needs a content format")
        for target, recs in self._composite_targets(payload, content_format).items():
            self.tree_for(target).write(target, recs, replace=True)
        return Reply(Code.CHANGED)

    def _composite_targets(self, payload: bytes, content_format: int) -> dict[Path, list[Record]]:
        """A Write-Composite's records by the resource they write, every target checked."""
        records = composite_codec_for(content_format).decode(payload, ROOT, self.tree.definitions)
        by_resource: dict[Path, list[Record]] = {}
        for r in records:
            if r.path.ids[0] in BOOTSTRAP_ONLY:
                raise Unauthorized(f"{r.path} is only for the bootstrap server")
            by_resource.setdefault(r.path.truncate(Level.RESOURCE), []).append(r)
        for target in by_resource:
            rdef = self.tree.definitions.resource(target.ids[0], target.ids[2])
            if not self.tree_for(target).has(target.parent):
                raise NotFound(f"{target.parent} does not exist")
            if not rdef.operations.writable:
                raise MethodNotAllowed(f"{target} ({rdef.name}) is not writable")
            self._check(Operation.WRITE, target)
        return by_resource

    # -- node-backed paths --------------------------------------------------------------------

    async def handle_async(self, request: Request) -> Reply:
        """``handle``, except that Read, Write and Execute of a node-backed path, and a
        Write-Composite, are awaited from ``nodes``, whatever the path's prefix (the gateway
        mode's end devices are nodes too); and a node's instance is not deleted here.

        A Read of a node's path answers what the backend returns (the node's answer, or its
        last reported values with their times when it sleeps), with the resources the gateway
        holds in the node's instance (its name in 5750) from the tree. A Write or Execute
        answers 2.04 once the backend has applied it, or kept it as desired state for a sleepy
        node; the node's error otherwise. A Delete of a node's instance, and a Create in an
        object that holds nodes' instances, are 4.05 (``node_owned``): the instance stands for
        the node, which only pairing and unpairing change (a 2.02 would leave the node's
        readings flowing upstream).

        A Read of an object that holds nodes' instances answers every instance it has, as the
        LwM2M Core says: the gateway's own from the tree, each node's as a Read of that
        instance would (``_read_object``). A node that cannot answer now (out of reach, too
        slow, asleep) is there with its last reported values, each with the time it was
        measured (SenML and JSON carry it, so a server sees how old it is), never left out:
        one mute node must not make the object unreadable for the others, and the Read of its
        own instance or resource says why (5.03, 5.04). Other object-level requests,
        Discover, Write-Attributes and Read-Composite are served from the tree, whose node
        values are the last ones reported.
        """
        try:
            return await self.operate(request)
        except LwM2MError as e:
            return _refused(request, e)

    def body_limit(self, method: int, segments: Sequence[str]) -> int:
        """The largest request body taken for ``method`` on ``segments``: ``max_payload``, or
        what the node backend takes in a Write of that node path (``NodeBackend.max_body``:
        a firmware package)."""
        nodes = self.nodes
        if nodes is None or method not in (Code.PUT, Code.POST):
            return self.max_payload
        try:
            path = Path.from_segments(segments)
        except LwM2MError:
            return self.max_payload
        return max(self.max_payload, nodes.max_body(path) or 0)

    async def operate(self, request: Request) -> Reply:
        """``handle_async`` that raises the LwM2MError instead of answering it: bridgectl's
        write and exec go through here, so the operator gets what a server would, the code
        and its reason (the operator has a server's full rights: no access control)."""
        nodes = self.nodes
        tree_only, path = self._route(request)
        if nodes is None or tree_only or path is None:
            return self._handle(request, path)
        method, payload, content_format = request.method, request.payload, request.content_format
        accept = request.accept
        if method == Code.iPATCH and path == ROOT and content_format is not None:
            return await self._write_composite_nodes(nodes, payload, content_format)
        if method == Code.POST and path.level is Level.OBJECT and nodes.holds_nodes(path):
            self.tree_for(path)  # an end device that is not there is 4.04
            raise node_owned(path)
        reads = method == Code.GET and accept != ContentFormat.LINK_FORMAT
        if reads and path.level is Level.OBJECT:
            return await self._read_object(nodes, path, accept) or self._handle(request, path)
        found = nodes.locate(path)
        if found is None:
            return self._handle(request, path)
        node, local = found
        if reads:
            return await self._read_node(nodes, path, node, local, accept)
        if method == Code.PUT and (payload or content_format is not None):
            return await self._write_node(
                nodes, path, node, local, payload, content_format, replace=True
            )
        if method == Code.POST and path.level is Level.INSTANCE:
            return await self._write_node(
                nodes, path, node, local, payload, content_format, replace=False
            )
        if method == Code.POST and path.level is Level.RESOURCE:
            return await self._execute_node(nodes, path, node, local, payload, content_format)
        if method == Code.DELETE:
            raise node_owned(path, node)
        return self._handle(request, path)

    def _route(self, request: Request) -> tuple[bool, Path | None]:
        """Whether ``operate`` answers ``request`` from the tree alone, as ``handle`` does (the
        node backend has no part in it), and its path once parsed (raises what
        ``Path.from_segments`` raises)."""
        nodes = self.nodes
        method = request.method
        if nodes is None or len(request.payload) > self.body_limit(method, request.segments):
            return True, None
        path = Path.from_segments(request.segments)
        if method == Code.iPATCH and path == ROOT and request.content_format is not None:
            return False, path
        reads = method == Code.GET and request.accept != ContentFormat.LINK_FORMAT
        if path.level is Level.OBJECT and (reads or method == Code.POST):
            return False, path  # the nodes' instances of the object: read, or refused a Create
        return nodes.locate(path) is None, path

    def handle_now(self, request: Request) -> Reply | None:
        """``handle_async``'s reply when it can be given without awaiting anything (the
        request is answered from the tree: ``_route``), None otherwise. The server's plain
        Reads of the gateway's own objects are answered here, inline, by the context's fast
        path (``bridged.engine.serving``)."""
        try:
            tree_only, path = self._route(request)
            return self._handle(request, path) if tree_only else None
        except LwM2MError as e:
            return _refused(request, e)

    async def _read_object(
        self, nodes: NodeBackend, path: Path, accept: int | None
    ) -> Reply | None:
        """The Read of object ``path`` (see ``handle_async``): the nodes' instances read at
        once, each bounded by the backend's timeout; None when no node has an instance in it
        (the plain ``read`` answers)."""
        tree = self.tree_for(path)
        if not tree.has(path):
            return None
        instances = [path.child(iid) for iid in tree.instance_ids(path.ids[0])]
        located = {instance: nodes.locate(instance) for instance in instances}
        if not any(located.values()):
            return None
        self._check(Operation.READ, path)

        async def read(instance: Path) -> list[Record]:
            found = located[instance]
            if found is None:
                return tree.read(instance)
            try:
                return await read_node(nodes, self.tree_for(instance), instance, *found)
            except LwM2MError as e:
                log.info(
                    "read %s: node %s cannot answer (%s %s): its last reported values",
                    path,
                    found[0],
                    e.code_text,
                    e,
                )
                return tree.read(instance)

        parts = await asyncio.gather(*(read(instance) for instance in instances))
        records = self._readable([r for part in parts for r in part])
        codec = self._output_codec(accept, path, records)
        return self._content(codec, records, path)

    async def _read_node(
        self, nodes: NodeBackend, path: Path, node: Any, local: Path, accept: int | None
    ) -> Reply:
        self._check(Operation.READ, path)
        records = self._readable(await read_node(nodes, self.tree_for(path), path, node, local))
        codec = self._output_codec(accept, path, records)
        return self._content(codec, records, path)

    async def _write_node(
        self,
        nodes: NodeBackend,
        path: Path,
        node: Any,
        local: Path,
        payload: bytes,
        content_format: int | None,
        *,
        replace: bool,
    ) -> Reply:
        self._check(Operation.WRITE, path)
        tree = self.tree_for(path)
        records = self._input_codec(content_format).decode(payload, path, tree.definitions)
        self._check_node_write(tree, path, records)
        theirs, held = self._node_records(nodes, records)
        if theirs or not held:
            await nodes.write(node, local, theirs, replace=replace)
        for r in held:
            tree.set(r.path, r.value)
        return Reply(Code.CHANGED)

    @staticmethod
    def _node_records(
        nodes: NodeBackend, records: Sequence[Record]
    ) -> tuple[list[Record], list[Record]]:
        """``records`` split into the node's (moved to node-local paths) and those of
        resources the gateway holds in the node's instances (left as they are)."""
        theirs, held = [], []
        for r in records:
            found = nodes.locate(r.path)
            if found is None:
                held.append(r)
            else:
                theirs.append(Record(found[1], r.value, r.time))
        return theirs, held

    async def _execute_node(
        self,
        nodes: NodeBackend,
        path: Path,
        node: Any,
        local: Path,
        payload: bytes,
        content_format: int | None,
    ) -> Reply:
        self._check(Operation.EXECUTE, path)
        if content_format not in (None, ContentFormat.TEXT):
            raise UnsupportedContentFormat("execute arguments are text/plain")
        try:
            text = payload.decode("ascii")
        except UnicodeDecodeError:
            raise BadRequest("execute arguments must be ASCII") from None
        parse_execute_arguments(text)
        tree = self.tree_for(path)
        rdef = tree.definitions.resource(path.ids[0], path.ids[2])
        if not tree.has(path.parent):
            raise NotFound(f"{path.parent} does not exist")
        if not rdef.operations.executable:
            raise MethodNotAllowed(f"{path} ({rdef.name}) is not executable")
        await nodes.execute(node, local, text)
        return Reply(Code.CHANGED)

    async def _write_composite_nodes(
        self, nodes: NodeBackend, payload: bytes, content_format: int
    ) -> Reply:
        """Write-Composite over the gateway and any number of nodes: everything is checked
        first; then each node's part goes to its node (or its desired state), in request
        order, and the gateway's own part is written last, only when every node took its part.
        A node that fails stops the request with its error; the nodes before it keep what they
        applied (a radio write cannot be rolled back)."""
        own: dict[Path, list[Record]] = {}
        for target, recs in self._composite_targets(payload, content_format).items():
            found = nodes.locate(target)
            if found is None:
                own[target] = recs
                continue
            node, local = found
            theirs, _ = self._node_records(nodes, recs)
            await nodes.write(node, local, theirs, replace=True)
        for target, recs in own.items():
            self.tree_for(target).write(target, recs, replace=True)
        return Reply(Code.CHANGED)

    @staticmethod
    def _check_node_write(tree: ObjectTree, path: Path, records: Sequence[Record]) -> None:
        """What the tree would refuse of a write, checked without writing it (the tree
        changes only once the node has applied the write)."""
        if not tree.has(path.truncate(Level.INSTANCE)):
            raise NotFound(f"{path.truncate(Level.INSTANCE)} does not exist")
        for r in records:
            if not path.contains(r.path):
                raise BadRequest(f"{r.path} is outside the target {path}")
            rdef = tree.definitions.resource(r.path.ids[0], r.path.ids[2])
            if not rdef.operations.writable:
                raise MethodNotAllowed(f"{r.path} ({rdef.name}) is not writable")

    # -- helpers -----------------------------------------------------------------------------

    def tree_for(self, path: Path) -> ObjectTree:
        """The tree that holds ``path``: this one, or the end device's its prefix names
        (NotFound for a prefix no end device has)."""
        if path.prefix == self.tree.prefix:
            return self.tree
        return self._end_device(path).tree

    def _end_device(self, path: Path) -> DeviceManagement:
        """Device management of the end device ``path``'s prefix names; NotFound if none."""
        prefix = path.prefix
        end_devices = self.end_devices
        tree = (
            None if end_devices is None or prefix is None else end_devices.end_device_tree(prefix)
        )
        if tree is None or prefix is None:
            if prefix is not None and self._end_device_dms.pop(prefix, None) is not None:
                self.attributes.forget(Path((), prefix))
            raise NotFound(f"{path} is not served by this client")
        dm = self._end_device_dms.get(prefix)
        if dm is None or dm.tree is not tree:
            dm = DeviceManagement(tree, self.version, max_payload=self.max_payload)
            dm.attributes = self.attributes
            self._end_device_dms[prefix] = dm
        return dm

    def _check(self, operation: Operation, path: Path) -> None:
        """4.01 when access control refuses ``operation`` on ``path`` to this server (end
        devices' paths are not subject to it: ``AccessControl.governs``)."""
        if self.access is not None and self.server_id is not None:
            self.access.check(self.server_id, operation, path)

    def _readable(self, records: Sequence[Record]) -> Sequence[Record]:
        """The records of the instances this server may read (all without access control)."""
        if self.access is None or self.server_id is None:
            return records
        return self.access.readable_records(self.server_id, records)

    def numeric(self, path: Path) -> bool:
        """Whether ``path`` holds one number (a single-instance numeric resource, or an instance
        of a numeric one): what gt, lt and st can watch."""
        if path.level < Level.RESOURCE or path.object_id in BOOTSTRAP_ONLY:
            return False
        rdef = self.tree.definitions.resource(path.ids[0], path.ids[2])
        single = path.level is Level.RESOURCE_INSTANCE or not rdef.multiple
        return single and rdef.type.value in NUMERIC_TYPES

    def _content(self, codec: Codec, records: Sequence[Record], base: Path) -> Reply:
        payload = codec.encode(records, base, self.tree.definitions)
        return Reply(Code.CONTENT, payload, int(codec.content_format))

    def _output_codec(self, accept: int | None, path: Path, records: Sequence[Record]) -> Codec:
        if accept is not None:
            return acceptable_for(accept)
        if len(records) == 1 and records[0].path == path:
            single = ContentFormat.OPAQUE if isinstance(records[0].value, bytes) else 0
            return codec_for(single)
        return codec_for(ContentFormat.TLV if self.version() == "1.0" else ContentFormat.SENML_CBOR)

    def _input_codec(self, content_format: int | None) -> Codec:
        if content_format is None:
            raise UnsupportedContentFormat("a payload needs a Content-Format")
        return codec_for(content_format)


async def read_node(
    nodes: NodeBackend, tree: ObjectTree, path: Path, node: NodeId, local: Path
) -> list[Record]:
    """What a Read of ``path`` answers, a path of ``tree`` that ``nodes`` locates at
    ``node``'s ``local``, for a server and bridgectl alike: what the node answers (its last
    report, with its times, when it sleeps) at upstream paths, and at instance level the
    resources the gateway holds in the instance (the node's name in 5750) from ``tree``.

    What the node has beyond its object's definition (a resource the DDF lacks) is not shown.
    NotFound for an instance not shown, or a resource the node has no value of; MethodNotAllowed
    for a resource that is not readable."""
    # The node may have a value the tree has not seen yet: the instance must be exposed
    # and the resource readable, its value need not be there.
    if not tree.has(path.truncate(Level.INSTANCE)):
        raise NotFound(f"{path.truncate(Level.INSTANCE)} does not exist")
    if path.level >= Level.RESOURCE:
        rdef = tree.definitions.resource(path.ids[0], path.ids[2])
        if not rdef.operations.readable:
            raise MethodNotAllowed(f"{path} ({rdef.name}) is not readable")
    objects = tree.definitions.objects
    records = []
    for r in await nodes.read(node, local):
        target = nodes.upstream(node, r.path)
        if target is None or not path.contains(target):
            continue
        known = objects[target.ids[0]].resources.get(target.ids[2])
        if known is not None and known.operations.readable:
            records.append(Record(target, r.value, r.time))
    if path.level is Level.INSTANCE:
        answered = {r.path for r in records}
        records += [
            r for r in tree.read(path) if r.path not in answered and nodes.locate(r.path) is None
        ]
        records.sort(key=lambda r: r.path.sort_key())
    if not records and path.level >= Level.RESOURCE:
        raise NotFound(f"node {node} has no value at {local}")
    return records


def handle_request(handle: Callable[[Request], Reply], request: aiocoap.Message) -> Reply:
    """Feed an aiocoap request to a sans-I/O ``handle`` (device management's or the Bootstrap
    interface's)."""
    return handle(Request.of(request))


async def handle_request_async(
    handle: Callable[[Request], Awaitable[Reply]], request: aiocoap.Message
) -> Reply:
    """``handle_request`` for an awaitable ``handle`` (``DeviceManagement.handle_async``)."""
    return await handle(Request.of(request))


def run_now(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that completes without suspending (RuntimeError if it
    suspends: it was not one)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise RuntimeError(f"{coroutine!r} suspended")


def reply_message(reply: Reply) -> aiocoap.Message:
    """The CoAP response carrying ``reply``."""
    msg = aiocoap.Message(code=Code(reply.code), payload=reply.payload)
    if reply.content_format is not None:
        msg.opt.content_format = reply.content_format
    if reply.location:
        msg.opt.location_path = reply.location
    return msg


class DeviceManagementResource(resource.Resource):
    """The aiocoap side: every request to the client's site goes through ``handle``.

    With ``observations``, every request goes through it first (``Observations.render_to_pipe``:
    Observe and its cancellation); without, Observe is ignored and such requests are plain
    reads. ``served`` is called once each request is answered (an observation: once it ended).
    """

    def __init__(
        self,
        dm: DeviceManagement,
        observations: Observations | None = None,
        served: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__()
        self.served = served
        # In place of aiocoap's unbounded spool:
        self._block1 = Block1Assembler(
            dm.max_payload, limit=lambda r: dm.body_limit(r.code, r.opt.uri_path)
        )
        self.dm = dm
        self.observations = observations

    async def render_to_pipe(self, pipe: Pipe) -> None:
        try:
            if self.observations is None:
                await super().render_to_pipe(pipe)
            else:
                await self.observations.render_to_pipe(pipe, super().render_to_pipe)
        finally:
            self.served()

    def answer_now(self, request: aiocoap.Message) -> aiocoap.Message | Reply | None:
        """The response to ``request`` at once (a Reply when it fits one message) if it is a
        plain Read (GET without Observe or
        Block1, not a later Block2 block) that ``DeviceManagement.handle_now`` answers from
        the tree: the response ``render_to_pipe`` would give, without aiocoap's token layer and
        task (``bridged.engine.serving``). None: not answered, nothing done."""
        block2 = request.opt.block2
        if (
            request.code != Code.GET
            or request.opt.observe is not None
            or request.opt.block1 is not None
            or (block2 is not None and block2.block_number != 0)
        ):
            return None
        reply = self.dm.handle_now(Request.of(request))
        if reply is None:
            return None
        self.served()
        if self.observations is not None:
            self.observations.heard()
        if block2 is None and len(reply.payload) <= request.remote.maximum_payload_size:
            return reply
        response = reply_message(reply)

        async def built() -> aiocoap.Message:
            return response

        # aiocoap's own Block2 handling (the first block of a large response, the rest kept
        # for the later requests), which awaits nothing here but ``built``:
        return run_now(self._block2.extract_or_insert(request, built))

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        if self.dm.nodes is not None:
            return reply_message(await handle_request_async(self.dm.handle_async, request))
        return reply_message(handle_request(self.dm.handle, request))
