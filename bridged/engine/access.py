"""Access Control (/2): which LwM2M server may do what on which object instance.

With one server configured, that server has full access and /2 is not consulted. With several,
every Device Management operation is checked against the /2 instance that points at its target
(/2/x/0 Object ID, /2/x/1 Object Instance ID), and a refusal is 4.01 Unauthorized.

The rules (LwM2M 1.1 Core, Access Control; object 2 version 1.1):

* The ACL (/2/x/2) is keyed by Short Server ID. A server's rights are its own entry; without
  one, the default entry (ID 0); without that either, full rights if it is the instance's
  Access Control Owner (/2/x/3); otherwise none. Owner 65535 means the instance is managed by
  the bootstrap server only, so no server is its owner.
* Bits: 1 Read (Read, Observe, Write-Attributes), 2 Write, 4 Execute, 8 Delete, 16 Create.
  Object 2 version 1.1 dropped Discover from the Read bit (1.0 had it): Discover reveals
  structure and attributes, never values, and no ACL bit governs it.
* Create is a right on an object, held by the /2 instance whose Object Instance ID is 65535.
* An object instance without a /2 instance is refused to every server: nothing grants access.
  A target that does not exist is not refused here, so the operation answers 4.04 as usual.
* /2 instances themselves carry no ACL: every server may read them, only their owner may
  write them, and servers never create or delete them: the client does, as below.
* Access Control does not apply to an end device's objects (a path with an end-device prefix,
  ``/dev0/5/0``, in the gateway mode): every server has full rights on them (LwM2M Gateway TS
  1.1, GW-09). /2 names instances of the gateway's own tree, so its entries say nothing about
  a device's /5/0, which is not the gateway's /5/0.

The client keeps /2 in step with the tree: when server S creates an instance, a /2 instance is
created for it with owner S and the ACL entry S: Read|Write|Execute|Delete (Create means
nothing on an instance); when an instance is deleted by anyone, its /2 instances go. Instances
the gateway creates itself (its /3, a node's sensors) are no server's doing; with a ``local``
``Grant`` they get a /2 instance saying what the configuration grants, otherwise none (and so
no server may touch them, as the rule above says).

``AclTable`` holds the /2 instances and makes the decisions, with no tree in sight;
``AccessControl`` keeps one in step with a tree, answers path-level questions for
``DeviceManagement`` and does the maintenance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, IntFlag

from bridged.objects.errors import Unauthorized
from bridged.objects.ids import BOOTSTRAP_ONLY, SSID_RANGE, Acl
from bridged.objects.paths import Level, Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record

log = logging.getLogger(__name__)

DEFAULT_SERVER = 0
"""The ACL entry that applies to a server without an entry of its own."""


class Right(IntFlag):
    """The ACL bits."""

    READ = 1
    WRITE = 2
    EXECUTE = 4
    DELETE = 8
    CREATE = 16


ALL_RIGHTS = Right.READ | Right.WRITE | Right.EXECUTE | Right.DELETE | Right.CREATE
CREATOR_RIGHTS = Right.READ | Right.WRITE | Right.EXECUTE | Right.DELETE
"""What the server that created an instance is granted on it."""


class Operation(Enum):
    """The Device Management operations a server request maps to."""

    READ = "Read"
    OBSERVE = "Observe"
    DISCOVER = "Discover"
    WRITE_ATTRIBUTES = "Write-Attributes"
    WRITE = "Write"
    EXECUTE = "Execute"
    CREATE = "Create"
    DELETE = "Delete"


REQUIRED: Mapping[Operation, Right | None] = {
    Operation.READ: Right.READ,
    Operation.OBSERVE: Right.READ,
    Operation.WRITE_ATTRIBUTES: Right.READ,
    Operation.DISCOVER: None,
    Operation.WRITE: Right.WRITE,
    Operation.EXECUTE: Right.EXECUTE,
    Operation.DELETE: Right.DELETE,
    Operation.CREATE: Right.CREATE,
}
"""The right each operation needs; None: no ACL bit governs it."""

_READ_ONLY = frozenset(op for op, right in REQUIRED.items() if right in (None, Right.READ))


def check_server_id(ssid: int) -> int:
    """A Short Server ID is 1..65534 (0 names the default ACL entry, 65535 the bootstrap);
    ValueError otherwise. The one check of the range (``ids.SSID_RANGE``)."""
    if type(ssid) is not int or ssid not in SSID_RANGE:
        raise ValueError(
            f"short server ID {ssid!r} is outside {SSID_RANGE.start}..{SSID_RANGE.stop - 1}"
        )
    return ssid


def granted(ssid: int, acl: Mapping[int, int], owner: int | None) -> Right:
    """The rights server ``ssid`` holds under one /2 instance's ACL and owner."""
    if ssid in acl:
        return Right(acl[ssid] & ALL_RIGHTS)
    if DEFAULT_SERVER in acl:
        return Right(acl[DEFAULT_SERVER] & ALL_RIGHTS)
    if owner == ssid:
        return ALL_RIGHTS
    return Right(0)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a /2 instance says: its owner and its ACL (Short Server ID, 0 for the default
    entry, to ``Right`` bits)."""

    owner: int
    acl: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AclEntry:
    """One /2 instance: ``iid`` is its own ID; it governs /``object_id``/``instance_id``."""

    iid: int
    object_id: int
    instance_id: int
    acl: Mapping[int, int] = field(default_factory=dict)
    owner: int | None = None

    def rights(self, ssid: int) -> Right:
        return granted(ssid, self.acl, self.owner)


class AclTable:
    """The /2 instances, indexed by their target, and the decisions they imply.

    ``put`` and ``remove`` keep it in step with /2 one instance at a time, so that a gateway
    with thousands of instances does not re-read /2 on every change.
    """

    __slots__ = ("_by_iid", "_by_target")

    def __init__(self, entries: Iterable[AclEntry] = ()) -> None:
        self._by_iid: dict[int, AclEntry] = {}
        self._by_target: dict[tuple[int, int], set[int]] = {}
        for e in entries:
            self.put(e)

    def put(self, entry: AclEntry) -> None:
        """Add a /2 instance, or replace the one with its ID."""
        self.remove(entry.iid)
        self._by_iid[entry.iid] = entry
        self._by_target.setdefault((entry.object_id, entry.instance_id), set()).add(entry.iid)

    def remove(self, iid: int) -> None:
        """Forget /2 instance ``iid`` (no-op if unknown)."""
        old = self._by_iid.pop(iid, None)
        if old is not None:
            key = (old.object_id, old.instance_id)
            self._by_target[key].discard(iid)
            if not self._by_target[key]:
                del self._by_target[key]

    def entries(self) -> list[AclEntry]:
        """Every /2 instance, in ID order."""
        return [self._by_iid[i] for i in sorted(self._by_iid)]

    def governing(self, object_id: int, instance_id: int) -> list[AclEntry]:
        """Every /2 instance that names /object_id/instance_id, in ID order."""
        iids = self._by_target.get((object_id, instance_id), ())
        return [self._by_iid[i] for i in sorted(iids)]

    def entry(self, object_id: int, instance_id: int) -> AclEntry | None:
        """The /2 instance governing /object_id/instance_id (65535: the object's Create).

        Two for one target is a misconfiguration; the lowest ID wins, so the answer does not
        depend on the order they were written in.
        """
        iids = self._by_target.get((object_id, instance_id))
        return self._by_iid[min(iids)] if iids else None

    def allows(
        self, ssid: int, operation: Operation, object_id: int, instance_id: int | None
    ) -> bool:
        """True if server ``ssid`` may perform ``operation`` on the object instance
        /object_id/instance_id; for Create, ``instance_id`` is ignored (the right is the
        object's)."""
        if object_id in BOOTSTRAP_ONLY:
            return False
        if object_id == Acl.OBJECT:
            return self._allows_on_access_control(ssid, operation, instance_id)
        required = REQUIRED[operation]
        if required is None:
            return True
        target = Acl.OBJECT_LEVEL if operation is Operation.CREATE else instance_id
        if target is None:
            return False
        entry = self.entry(object_id, target)
        return entry is not None and required in entry.rights(ssid)

    def _allows_on_access_control(
        self, ssid: int, operation: Operation, instance_id: int | None
    ) -> bool:
        if operation in _READ_ONLY:
            return True
        if operation in (Operation.CREATE, Operation.DELETE) or instance_id is None:
            return False
        entry = self._by_iid.get(instance_id)
        return entry is not None and entry.owner == ssid


class AccessControl:
    """Access Control over one tree, shared by the ``DeviceManagement`` of every server.

    It follows /2 in the tree (each changed /2 instance is read again) and deletes the /2
    instances of instances that go, whoever deletes them. With ``local``, every instance the
    gateway creates itself gets a /2 instance saying ``local``, those already in the tree
    included. ``close`` stops following the tree.
    """

    def __init__(self, tree: ObjectTree, *, local: Grant | None = None) -> None:
        tree.definitions.get(Acl.OBJECT)  # its instances are created here: it must be defined
        self.tree = tree
        self.local = local
        self._table = AclTable(self._read_entries())
        self._unsubscribe: Callable[[], None] | None = tree.subscribe(
            self._on_change, (Acl.OBJECT,)
        )  # its structure, and the values of /2 (``_on_change``)
        if local is not None:
            for instance in list(tree.instances()):
                self._cover(instance)

    def close(self) -> None:
        """Stop following the tree's changes."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # -- decisions ---------------------------------------------------------------------------

    @property
    def table(self) -> AclTable:
        """/2 as it is now."""
        return self._table

    def allows(self, ssid: int, operation: Operation, path: Path) -> bool:
        """True unless the ACL refuses ``operation`` by server ``ssid`` on ``path``.

        Below Create, only instance-level paths (and what is under them) are checked: an
        object-level Read is filtered instance by instance (``readable_records``), other
        object-level operations are not LwM2M operations and the tree refuses them. A target
        instance that does not exist is left to the operation, which answers 4.04.
        """
        if path.level is Level.ROOT or not self.governs(path):
            return True
        if operation is Operation.CREATE:
            return self.table.allows(ssid, operation, path.ids[0], None)
        if path.level is Level.OBJECT or not self.tree.has(path.truncate(Level.INSTANCE)):
            return True
        return self.table.allows(ssid, operation, path.ids[0], path.ids[1])

    def governs(self, path: Path) -> bool:
        """Whether /2 decides who may do what on ``path``: a path of the gateway's own tree,
        not an end device's (module docstring)."""
        return path.prefix == self.tree.prefix

    def check(self, ssid: int, operation: Operation, path: Path) -> None:
        """Raise Unauthorized (4.01) if the ACL refuses ``operation`` on ``path``."""
        if not self.allows(ssid, operation, path):
            raise Unauthorized(f"server {ssid} has no {operation.value} right on {path}")

    def readable_records(self, ssid: int, records: Sequence[Record]) -> list[Record]:
        """The records of instances server ``ssid`` may read: a Read on an object (or the
        root, in Read-Composite) returns only those."""
        table = self.table
        verdicts: dict[tuple[int, int], bool] = {}
        out: list[Record] = []
        for r in records:
            if not self.governs(r.path):
                out.append(r)
                continue
            key = (r.path.ids[0], r.path.ids[1])
            if key not in verdicts:
                verdicts[key] = table.allows(ssid, Operation.READ, *key)
            if verdicts[key]:
                out.append(r)
        return out

    # -- maintenance -------------------------------------------------------------------------

    def created(self, ssid: int, instance: Path) -> Path:
        """Record that server ``ssid`` created ``instance``: a /2 instance owned by it.

        Returns the /2 instance's path. Called by ``DeviceManagement`` after a Create.
        """
        return self.grant(
            instance.ids[0], instance.ids[1], owner=ssid, acl={ssid: int(CREATOR_RIGHTS)}
        )

    def grant(
        self, object_id: int, instance_id: int, *, owner: int, acl: Mapping[int, int]
    ) -> Path:
        """Make the /2 instance governing /object_id/instance_id say ``owner`` and ``acl``
        (``instance_id`` 65535: the object's Create right), replacing any there was.

        This is how the client provisions /2 when several servers are configured (factory
        bootstrap); ``acl`` maps Short Server IDs (0: default) to ``Right`` bits, ``owner``
        65535 leaves the instance to the bootstrap server.
        """
        if object_id == Acl.OBJECT:
            raise ValueError("/2 instances have no /2 instance of their own")
        self._drop(self._table.governing(object_id, instance_id))
        return self.tree.create_instance(
            Acl.OBJECT,
            None,
            [
                (Acl.OBJECT_ID, object_id),
                (Acl.INSTANCE_ID, instance_id),
                (Acl.ACL, {int(s): int(bits) for s, bits in acl.items()}),
                (Acl.OWNER, owner),
            ],
        )

    def _on_change(self, path: Path) -> None:
        oid = path.object_id
        if oid == Acl.OBJECT:
            self._reread(path)
        elif oid is None or path.level > Level.INSTANCE:
            return
        elif self.tree.has(path):
            if path.level is Level.INSTANCE:
                self._cover(path)
        else:
            if path.level is Level.OBJECT:
                # The object went with all its instances; its Create right stays, since a
                # server may create it again.
                self._drop(
                    e
                    for e in self._table.entries()
                    if e.object_id == oid and e.instance_id != Acl.OBJECT_LEVEL
                )
            else:
                self._drop(self._table.governing(oid, path.ids[1]))

    def _reread(self, path: Path) -> None:
        """Bring the table in step with a change under /2."""
        if path.level is Level.OBJECT:
            self._table = AclTable(self._read_entries())
            return
        iid = path.ids[1]
        entry = self._read_entry(iid) if self.tree.has(path.truncate(Level.INSTANCE)) else None
        if entry is None:
            self._table.remove(iid)
        else:
            self._table.put(entry)

    def _cover(self, instance: Path) -> None:
        """Give an instance without a /2 instance the ``local`` one. A server's Create replaces
        it right after (``created``)."""
        oid, iid = instance.ids[0], instance.ids[1]
        if (
            self.local is None
            or oid in BOOTSTRAP_ONLY
            or oid == Acl.OBJECT
            or self.table.entry(oid, iid) is not None
        ):
            return
        self.grant(oid, iid, owner=self.local.owner, acl=self.local.acl)

    def _drop(self, entries: Iterable[AclEntry]) -> None:
        """Delete these /2 instances."""
        for e in list(entries):
            self.tree.delete_instance(Acl.OBJECT, e.iid)

    def _read_entries(self) -> list[AclEntry]:
        """The well-formed /2 instances in the tree."""
        base = Path((Acl.OBJECT,), self.tree.prefix)
        if not self.tree.has(base):
            return []
        found = (self._read_entry(iid) for iid in self.tree.instance_ids(Acl.OBJECT))
        return [e for e in found if e is not None]

    def _read_entry(self, iid: int) -> AclEntry | None:
        """/2 instance ``iid`` as the table holds it; None when it names no target instance,
        since then it grants nothing."""
        values: dict[int, object] = {}
        acl: dict[int, int] = {}
        for r in self.tree.read(Path((Acl.OBJECT, iid), self.tree.prefix)):
            if r.path.level is Level.RESOURCE_INSTANCE and r.path.ids[2] == Acl.ACL:
                if isinstance(r.value, int):
                    acl[r.path.ids[3]] = r.value
            else:
                values[r.path.ids[2]] = r.value
        oid, target, owner = (
            values.get(Acl.OBJECT_ID),
            values.get(Acl.INSTANCE_ID),
            values.get(Acl.OWNER),
        )
        if not isinstance(oid, int) or not isinstance(target, int):
            log.warning("/2/%d names no target instance; it grants nothing", iid)
            return None
        return AclEntry(iid, oid, target, acl, owner if isinstance(owner, int) else None)
