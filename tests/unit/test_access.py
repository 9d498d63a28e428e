"""Access Control (/2) for several servers: the rules, the bits, and DeviceManagement under them.

Two servers share one tree: Short Server ID 1 and 2. Named after the OMA LwM2M 1.1
interoperability tests where one applies.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from aiocoap.numbers.codes import Code
from hypothesis import given
from hypothesis import strategies as st

from bridged.engine.access import (
    ALL_RIGHTS,
    CREATOR_RIGHTS,
    AccessControl,
    AclEntry,
    AclTable,
    Grant,
    Operation,
    Right,
    granted,
)
from bridged.engine.dm import DeviceManagement, Request
from bridged.objects.builtin import builtin_definitions
from bridged.objects.errors import Unauthorized
from bridged.objects.formats import ContentFormat, codec_for, composite_codec_for
from bridged.objects.paths import Level, Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record

TLV = ContentFormat.TLV
TEXT = ContentFormat.TEXT
SENML_JSON = ContentFormat.SENML_JSON
LINK = ContentFormat.LINK_FORMAT
R, W, E, D, C = Right.READ, Right.WRITE, Right.EXECUTE, Right.DELETE, Right.CREATE

# -- the rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ssid", "acl", "owner", "rights"),
    [
        (2, {2: R | W}, 1, R | W),  # the server's own entry
        (2, {2: 0}, 2, Right(0)),  # its own entry wins, even over ownership
        (2, {2: E, 0: R | W | E | D | C}, 1, E),  # ... and over the default entry
        (2, {0: R}, 1, R),  # no entry of its own: the default
        (1, {0: R}, 1, R),  # the default applies to the owner too, when it has no entry
        (1, {}, 1, ALL_RIGHTS),  # owner without entries: full access
        (1, {3: R}, 1, ALL_RIGHTS),  # another server's entry is not the default
        (2, {}, 1, Right(0)),  # neither entry nor owner: nothing
        (2, {1: R | W | E | D}, 1, Right(0)),
        (2, {}, 65535, Right(0)),  # bootstrap-owned: no server is the owner
        (2, {2: 0b111111}, None, ALL_RIGHTS),  # reserved bits are ignored
    ],
)
def test_rights_come_from_own_entry_then_default_then_ownership(
    ssid: int, acl: dict[int, int], owner: int | None, rights: Right
) -> None:
    assert granted(ssid, acl, owner) == rights


OPERATION_BITS = [
    (Operation.READ, R),
    (Operation.OBSERVE, R),
    (Operation.WRITE_ATTRIBUTES, R),
    (Operation.WRITE, W),
    (Operation.EXECUTE, E),
    (Operation.DELETE, D),
]


@pytest.mark.parametrize(("operation", "bit"), OPERATION_BITS)
def test_each_instance_operation_needs_exactly_its_bit(operation: Operation, bit: Right) -> None:
    for mask in range(32):
        table = AclTable([AclEntry(0, 3303, 0, {2: mask}, owner=1)])
        assert table.allows(2, operation, 3303, 0) is bool(mask & bit), (operation, mask)


def test_create_is_the_objects_right_held_by_instance_65535() -> None:
    for mask in range(32):
        table = AclTable([AclEntry(0, 3303, 65535, {2: mask}, owner=65535)])
        assert table.allows(2, Operation.CREATE, 3303, None) is bool(mask & C)
    on_instance = AclTable([AclEntry(0, 3303, 0, {2: int(ALL_RIGHTS)}, owner=2)])
    assert not on_instance.allows(2, Operation.CREATE, 3303, None), "an instance's C is moot"


@pytest.mark.parametrize("oid", [0, 21, 23])
def test_bootstrap_only_objects_are_refused_whatever_an_acl_says(oid: int) -> None:
    table = AclTable([AclEntry(0, oid, 0, {1: int(ALL_RIGHTS)}, owner=1)])
    assert not any(table.allows(1, op, oid, 0) for op in Operation)


def test_discover_is_not_governed_by_the_acl() -> None:
    """Object 2 version 1.1 lists Read, Observe and Write-Attributes under the R bit; 1.0 also
    listed Discover. No bit governs it now, so it is allowed even without any /2 instance."""
    assert AclTable([]).allows(2, Operation.DISCOVER, 3303, 0)


def test_an_instance_without_access_control_instance_is_refused() -> None:
    table = AclTable([AclEntry(0, 3303, 0, {0: int(ALL_RIGHTS)})])
    for operation, _ in OPERATION_BITS:
        assert not table.allows(1, operation, 3303, 1)
    assert not table.allows(1, Operation.CREATE, 3303, None)


@pytest.mark.parametrize(
    ("ssid", "operation", "allowed"),
    [
        (1, Operation.READ, True),
        (2, Operation.READ, True),  # any server reads /2
        (2, Operation.OBSERVE, True),
        (2, Operation.WRITE_ATTRIBUTES, True),
        (2, Operation.DISCOVER, True),
        (1, Operation.WRITE, True),  # only the owner manages it
        (2, Operation.WRITE, False),
        (2, Operation.EXECUTE, False),
        (1, Operation.DELETE, False),  # the client, not a server, creates and deletes them
        (1, Operation.CREATE, False),
    ],
)
def test_access_control_instances_belong_to_their_owner(
    ssid: int, operation: Operation, allowed: bool
) -> None:
    table = AclTable([AclEntry(4, 3303, 0, {2: int(ALL_RIGHTS)}, owner=1)])
    assert table.allows(ssid, operation, 2, 4) is allowed


def test_a_bootstrap_owned_access_control_instance_is_written_by_no_server() -> None:
    table = AclTable([AclEntry(0, 3, 0, {1: int(ALL_RIGHTS)}, owner=65535)])
    assert not any(table.allows(s, Operation.WRITE, 2, 0) for s in (1, 2, 65534))


def test_two_instances_for_one_target_the_lowest_wins() -> None:
    table = AclTable([AclEntry(3, 3303, 0, {1: int(R)}), AclEntry(5, 3303, 0, {1: 0})])
    assert table.entry(3303, 0) == AclEntry(3, 3303, 0, {1: int(R)})


masks = st.integers(min_value=0, max_value=31)
server_ids = st.integers(min_value=1, max_value=65534)


@given(
    ssid=server_ids,
    mask=masks,
    default=st.none() | masks,
    owner=st.none() | st.integers(min_value=0, max_value=65535),
    operation=st.sampled_from([op for op, _ in OPERATION_BITS]),
)
def test_own_entry_alone_decides(
    ssid: int, mask: int, default: int | None, owner: int | None, operation: Operation
) -> None:
    acl = {ssid: mask} if default is None else {0: default, ssid: mask}
    table = AclTable([AclEntry(0, 3303, 7, acl, owner)])
    bit = dict(OPERATION_BITS)[operation]
    assert table.allows(ssid, operation, 3303, 7) is bool(mask & bit)


# -- DeviceManagement with two servers on one tree --------------------------------------------


def make_tree() -> ObjectTree:
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(1, 0, [(0, 1), (1, 300), (6, False), (7, "U")])
    tree.create_instance(1, 1, [(0, 2), (1, 300), (6, False), (7, "U")])
    tree.create_instance(3, 0, [(0, "ACME"), (16, "U")])
    tree.create_instance(3303, 0, [(5700, 21.5), (5750, "kitchen")])
    tree.create_instance(3303, 1, [(5700, 19.0), (5750, "cellar")])
    tree.on_execute(3, 4, lambda path, args: None)
    tree.on_execute(3303, 5605, lambda path, args: None)
    return tree


CREATE_5 = [Record(Path.parse("/3201/5/5550"), True), Record(Path.parse("/3201/5/5750"), "attic")]
"""A Create of /3201/5 with its mandatory Digital Output State."""


@pytest.fixture
def access() -> Iterator[AccessControl]:
    """Server 1 manages the device; server 2 reads it. /3303/0 is readable by everyone (default
    entry), /3303/1 belongs to server 2 alone; only server 1 creates temperature sensors."""
    ac = AccessControl(make_tree())
    ac.grant(1, 0, owner=1, acl={})
    ac.grant(1, 1, owner=2, acl={})
    ac.grant(3, 0, owner=1, acl={1: int(R | W | E), 2: int(R)})
    ac.grant(3303, 0, owner=1, acl={1: int(R | W | E | D), 0: int(R)})
    ac.grant(3303, 1, owner=2, acl={})
    ac.grant(3303, 65535, owner=65535, acl={1: int(C)})
    yield ac
    ac.close()


@pytest.fixture
def one(access: AccessControl) -> DeviceManagement:
    return DeviceManagement(access.tree, server_id=1, access=access)


@pytest.fixture
def two(access: AccessControl) -> DeviceManagement:
    return DeviceManagement(access.tree, server_id=2, access=access)


def code(
    dm: DeviceManagement,
    method: int,
    path: str,
    *,
    payload: bytes = b"",
    content_format: int | None = None,
    query: Sequence[str] = (),
) -> int:
    segments = Path.parse(path).segments()
    return dm.handle(Request(method, segments, query, payload, content_format)).code


def test_LightweightM2M_1_1_int_224_read_resource_needs_the_read_bit(
    one: DeviceManagement, two: DeviceManagement
) -> None:
    """LightweightM2M-1.1-int-224 (Read on Resource), under two servers' ACLs."""
    assert code(one, Code.GET, "/3/0/0") == Code.CONTENT
    assert code(two, Code.GET, "/3/0/0") == Code.CONTENT
    assert code(one, Code.GET, "/3303/1/5700") == Code.UNAUTHORIZED
    assert code(two, Code.GET, "/3303/1/5700") == Code.CONTENT, "owner without entries"
    assert code(two, Code.GET, "/3303/0/5700") == Code.CONTENT, "default entry"


def test_LightweightM2M_1_1_int_222_read_on_object_returns_only_readable_instances(
    one: DeviceManagement, two: DeviceManagement
) -> None:
    """LightweightM2M-1.1-int-222 (Read on Object): each server sees its readable instances."""
    for dm, visible in ((one, {0}), (two, {0, 1})):
        reply = dm.handle(Request(Code.GET, ["3303"], accept=SENML_JSON))
        assert reply.code == Code.CONTENT
        records = codec_for(SENML_JSON).decode(reply.payload, Path((3303,)), dm.tree.definitions)
        assert {r.path.ids[1] for r in records} == visible


def test_write_needs_the_write_bit(one: DeviceManagement, two: DeviceManagement) -> None:
    def put(dm: DeviceManagement, path: str) -> int:
        return code(dm, Code.PUT, path, payload=b"hall", content_format=TEXT)

    assert put(two, "/3/0/14") == Code.UNAUTHORIZED
    assert put(two, "/3303/0/5750") == Code.UNAUTHORIZED
    assert one.tree.get(Path.parse("/3303/0/5750")) == "kitchen", "nothing was written"
    assert put(one, "/3303/0/5750") == Code.CHANGED
    partial = codec_for(TLV).encode(
        [Record(Path.parse("/3303/1/5750"), "attic")], Path.parse("/3303/1"), one.tree.definitions
    )
    assert code(one, Code.POST, "/3303/1", payload=partial, content_format=TLV) == (
        Code.UNAUTHORIZED
    )
    assert code(two, Code.POST, "/3303/1", payload=partial, content_format=TLV) == Code.CHANGED


def test_LightweightM2M_1_1_int_241_execute_needs_the_execute_bit(
    one: DeviceManagement, two: DeviceManagement
) -> None:
    """LightweightM2M-1.1-int-241 (Executable Resource: Rebooting the device), by two servers."""
    assert code(two, Code.POST, "/3/0/4") == Code.UNAUTHORIZED
    assert code(one, Code.POST, "/3/0/4") == Code.CHANGED


def test_write_attributes_needs_the_read_bit(one: DeviceManagement, two: DeviceManagement) -> None:
    assert code(one, Code.PUT, "/3303/1/5700", query=["pmin=5"]) == Code.UNAUTHORIZED
    assert code(two, Code.PUT, "/3303/1/5700", query=["pmin=5"]) == Code.CHANGED
    assert code(one, Code.PUT, "/3303", query=["pmin=5"]) == Code.CHANGED, "object level"


def test_LightweightM2M_1_1_int_260_discover_is_allowed_without_read(
    one: DeviceManagement,
) -> None:
    """LightweightM2M-1.1-int-260 (Discover): not governed by /2 1.1, so it shows /3303/1 too."""
    reply = one.handle(Request(Code.GET, ["3303"], accept=LINK))
    assert reply.code == Code.CONTENT and "</3303/1>" in reply.payload.decode()


def test_delete_needs_the_delete_bit_and_takes_the_access_control_instance_along(
    one: DeviceManagement, two: DeviceManagement, access: AccessControl
) -> None:
    assert code(two, Code.DELETE, "/3303/0") == Code.UNAUTHORIZED
    assert code(one, Code.DELETE, "/3303/1") == Code.UNAUTHORIZED
    assert access.table.entry(3303, 0) is not None
    assert code(one, Code.DELETE, "/3303/0") == Code.DELETED
    assert access.table.entry(3303, 0) is None, "its /2 instance went with it"
    assert code(one, Code.DELETE, "/3303/0") == Code.NOT_FOUND, "absent: 4.04, not 4.01"


def test_create_needs_the_objects_create_bit_and_makes_the_creator_owner(
    one: DeviceManagement, two: DeviceManagement, access: AccessControl
) -> None:
    access.grant(3201, 65535, owner=65535, acl={1: int(C)})
    payload = codec_for(TLV).encode(CREATE_5, Path((3201,)), one.tree.definitions)
    assert code(two, Code.POST, "/3201", payload=payload, content_format=TLV) == (Code.UNAUTHORIZED)
    assert not one.tree.has(Path.parse("/3201/5"))
    reply = one.handle(Request(Code.POST, ["3201"], payload=payload, content_format=TLV))
    assert (reply.code, reply.location) == (Code.CREATED, ("3201", "5"))
    entry = access.table.entry(3201, 5)
    assert entry is not None
    assert (entry.owner, dict(entry.acl)) == (1, {1: int(CREATOR_RIGHTS)})
    assert code(one, Code.GET, "/3201/5/5750") == Code.CONTENT
    assert code(two, Code.GET, "/3201/5/5750") == Code.UNAUTHORIZED, "no default entry"
    assert code(one, Code.DELETE, "/3201/5") == Code.DELETED


def test_creating_an_object_without_create_rights_anywhere_is_refused(
    one: DeviceManagement,
) -> None:
    payload = codec_for(TLV).encode(
        [Record(Path.parse("/3304/0/5700"), 40.0)], Path((3304,)), one.tree.definitions
    )
    assert code(one, Code.POST, "/3304", payload=payload, content_format=TLV) == (Code.UNAUTHORIZED)


def test_access_control_instances_are_read_by_all_and_written_by_their_owner(
    one: DeviceManagement, two: DeviceManagement, access: AccessControl
) -> None:
    entry = access.table.entry(3, 0)
    assert entry is not None
    acl = f"/2/{entry.iid}/2/2"
    assert code(two, Code.GET, f"/2/{entry.iid}") == Code.CONTENT
    assert code(two, Code.PUT, acl, payload=b"3", content_format=TEXT) == Code.UNAUTHORIZED
    assert code(one, Code.PUT, acl, payload=b"3", content_format=TEXT) == Code.CHANGED
    assert code(two, Code.PUT, "/3/0/14", payload=b"+01", content_format=TEXT) == Code.CHANGED
    bootstrap_owned = access.table.entry(3303, 65535)
    assert bootstrap_owned is not None
    path = f"/2/{bootstrap_owned.iid}/2/2"
    assert code(one, Code.PUT, path, payload=b"16", content_format=TEXT) == Code.UNAUTHORIZED
    assert code(one, Code.DELETE, f"/2/{entry.iid}") == Code.UNAUTHORIZED
    assert code(one, Code.POST, "/2", payload=b"", content_format=TLV) == Code.UNAUTHORIZED


def test_owner_can_hand_ownership_over(
    one: DeviceManagement, two: DeviceManagement, access: AccessControl
) -> None:
    entry = access.table.entry(3303, 0)
    assert entry is not None
    owner = f"/2/{entry.iid}/3"
    assert code(one, Code.PUT, owner, payload=b"2", content_format=TEXT) == Code.CHANGED
    assert code(one, Code.PUT, owner, payload=b"1", content_format=TEXT) == Code.UNAUTHORIZED
    assert code(two, Code.PUT, owner, payload=b"1", content_format=TEXT) == Code.CHANGED


def test_LightweightM2M_1_1_int_229_read_composite_under_access_control(
    one: DeviceManagement,
) -> None:
    """LightweightM2M-1.1-int-229 (Read-Composite): a named instance the server may not read
    fails the request (4.01); an object or the root returns only what it may read."""
    composite = composite_codec_for(SENML_JSON)

    def fetch(*paths: str) -> tuple[int, set[Path]]:
        body = composite.encode_paths([Path.parse(p) for p in paths])
        r = one.handle(Request(Code.FETCH, [], payload=body, content_format=SENML_JSON))
        if r.code != Code.CONTENT:
            return r.code, set()
        records = composite.decode(r.payload, Path(), one.tree.definitions)
        return r.code, {rec.path.truncate(Level.INSTANCE) for rec in records}

    assert fetch("/3/0/0", "/3303/1/5700")[0] == Code.UNAUTHORIZED
    status, instances = fetch("/3303")
    assert status == Code.CONTENT and instances == {Path((3303, 0))}
    status, instances = fetch("/")
    assert Path((3303, 1)) not in instances and Path((3303, 0)) in instances
    assert not any(p.ids[0] == 0 for p in instances)


def test_LightweightM2M_1_1_int_230_write_composite_checks_every_target_first(
    one: DeviceManagement,
) -> None:
    """LightweightM2M-1.1-int-230 (Write-Composite): one refused target and nothing is
    written."""
    body = codec_for(SENML_JSON).encode(
        [
            Record(Path.parse("/3303/0/5750"), "hall"),
            Record(Path.parse("/3303/1/5750"), "loft"),
        ],
        Path(),
        one.tree.definitions,
    )
    r = one.handle(Request(Code.iPATCH, [], payload=body, content_format=SENML_JSON))
    assert r.code == Code.UNAUTHORIZED
    assert one.tree.get(Path.parse("/3303/0/5750")) == "kitchen"


def test_without_access_control_the_server_has_full_access(access: AccessControl) -> None:
    dm = DeviceManagement(access.tree)
    assert code(dm, Code.GET, "/3303/1/5700") == Code.CONTENT
    assert code(dm, Code.POST, "/3/0/4") == Code.CHANGED


def test_access_control_needs_a_valid_server_id(access: AccessControl) -> None:
    with pytest.raises(ValueError, match="Short Server ID"):
        DeviceManagement(access.tree, access=access)
    for bad in (0, 65535, -1):
        with pytest.raises(ValueError, match=r"1\.\.65534"):
            DeviceManagement(access.tree, server_id=bad, access=access)


def test_device_side_deletion_removes_the_access_control_instance(
    access: AccessControl,
) -> None:
    entry = access.table.entry(3303, 1)
    assert entry is not None
    access.tree.delete_instance(3303, 1)
    assert access.table.entry(3303, 1) is None
    assert not access.tree.has(Path((2, entry.iid)))
    access.tree.remove_object(3303)
    assert access.table.entry(3303, 0) is None
    assert access.table.entry(3303, 65535) is not None, "the object's Create right stays"


def test_the_table_follows_every_change_to_access_control_instances(
    access: AccessControl,
) -> None:
    entry = access.table.entry(3, 0)
    assert entry is not None and R in entry.rights(2)
    access.tree.set(Path((2, entry.iid, 2, 2)), 0)  # the device side, or a bootstrap write
    assert access.table.entry(3, 0) == AclEntry(entry.iid, 3, 0, {1: int(R | W | E), 2: 0}, 1)
    duplicate = access.tree.create_instance(2, 40, [(0, 3), (1, 0), (2, {2: int(R)}), (3, 1)])
    assert access.table.entry(3, 0) == AclEntry(entry.iid, 3, 0, {1: int(R | W | E), 2: 0}, 1)
    access.tree.delete_instance(2, entry.iid)
    assert access.table.entry(3, 0) == AclEntry(40, 3, 0, {2: int(R)}, 1), "the other one"
    access.tree.delete_instance(2, duplicate.ids[1])
    assert access.table.entry(3, 0) is None
    access.tree.remove_object(2)
    assert access.table.entries() == []


def test_grant_replaces_and_check_raises_unauthorized(access: AccessControl) -> None:
    access.grant(3303, 1, owner=2, acl={1: int(R)})
    assert len(access.tree.instance_ids(2)) == 6, "replaced, not added"
    access.check(1, Operation.READ, Path.parse("/3303/1/5700"))
    with pytest.raises(Unauthorized):
        access.check(1, Operation.WRITE, Path.parse("/3303/1/5700"))
    with pytest.raises(ValueError):
        access.grant(2, 0, owner=1, acl={})


def test_local_grant_covers_the_gateways_own_instances_and_yields_to_a_creator() -> None:
    tree = make_tree()
    tree.create_instance(0, 0, [(0, "coap://127.0.0.1"), (1, False), (2, 3)])
    access = AccessControl(tree, local=Grant(owner=1, acl={0: int(R)}))
    try:
        targets = {(e.object_id, e.instance_id) for e in access.table.entries()}
        assert targets == {(1, 0), (1, 1), (3, 0), (3303, 0), (3303, 1)}, "never /0 nor /2"
        tree.create_instance(3303, 2, [(5700, 5.0)])  # a node appears: the device side
        assert access.table.entry(3303, 2) == AclEntry(5, 3303, 2, {0: int(R)}, owner=1)
        access.grant(3201, 65535, owner=65535, acl={2: int(C)})
        two = DeviceManagement(tree, server_id=2, access=access)
        payload = codec_for(TLV).encode(
            [Record(Path.parse("/3201/7/5550"), True)], Path((3201,)), tree.definitions
        )
        assert code(two, Code.POST, "/3201", payload=payload, content_format=TLV) == (Code.CREATED)
        entry = access.table.entry(3201, 7)
        assert entry is not None and (entry.owner, dict(entry.acl)) == (2, {2: 15})
        governing = [e for e in access.table.entries() if (e.object_id, e.instance_id) == (3201, 7)]
        assert len(governing) == 1, "the creator's /2 instance replaced the local one"
        assert code(two, Code.GET, "/3303/0/5700") == Code.CONTENT, "local default: read"
        assert code(two, Code.POST, "/3303/0/5605") == Code.UNAUTHORIZED
    finally:
        access.close()


# -- the property, end to end ------------------------------------------------------------------


def request_needing(right: Right, dm: DeviceManagement) -> int:
    """Send server 2's request that needs exactly ``right`` on /3303/0 (Create: on /3201, an
    object whose mandatory resource a server can give)."""
    if right is R:
        return code(dm, Code.GET, "/3303/0/5700")
    if right is W:
        return code(dm, Code.PUT, "/3303/0/5750", payload=b"x", content_format=TEXT)
    if right is E:
        return code(dm, Code.POST, "/3303/0/5605")
    if right is D:
        return code(dm, Code.DELETE, "/3303/0")
    create = codec_for(TLV).encode(
        [Record(Path.parse("/3201/9/5550"), True)], Path((3201,)), dm.tree.definitions
    )
    return code(dm, Code.POST, "/3201", payload=create, content_format=TLV)


@given(
    mask=masks,
    create=masks,
    default=st.none() | masks,
    owner=st.sampled_from([1, 2, 65535]),
    right=st.sampled_from([R, W, E, D, C]),
)
def test_a_server_without_the_bit_never_succeeds_and_with_it_is_never_refused(
    mask: int, create: int, default: int | None, owner: int, right: Right
) -> None:
    """Server 2's own entry decides, whatever the default entry and the owner say."""
    access = AccessControl(make_tree())
    try:
        acl = {2: mask} if default is None else {0: default, 2: mask}
        access.grant(3303, 0, owner=owner, acl=acl)
        access.grant(3201, 65535, owner=owner, acl={**acl, 2: create})
        dm = DeviceManagement(access.tree, server_id=2, access=access)
        reply = request_needing(right, dm)
        bits = create if right is C else mask
        if bits & right:
            assert reply in (Code.CONTENT, Code.CHANGED, Code.DELETED, Code.CREATED)
        else:
            assert reply == Code.UNAUTHORIZED
    finally:
        access.close()


def test_an_end_devices_objects_are_not_governed_whatever_2_names(access: AccessControl) -> None:
    """LwM2M Gateway TS 1.1 GW-09: /2 names the gateway's own instances; a device's /3303/1
    (at its prefix) is not the gateway's /3303/1, which server 1 may not touch."""
    device = [Record(Path.parse("/dev0/3303/1/5700"), 20.0), Record(Path.parse("/dev0/5/0/3"), 0)]
    own = [Record(Path.parse("/3303/1/5700"), 19.0)]
    assert access.readable_records(1, [*device, *own]) == device
    for operation, _ in OPERATION_BITS:
        assert access.allows(1, operation, Path.parse("/dev0/3303/1"))
        assert not access.allows(1, operation, Path.parse("/3303/1"))
