"""Device management: each CoAP request maps to the right operation and the right code.

Named after the OMA LwM2M 1.1 interoperability tests where one applies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import cbor2
import pytest
from aiocoap.numbers.codes import Code

from bridged.engine.dm import (
    DeviceManagement,
    Request,
    parse_execute_arguments,
)
from bridged.objects.builtin import builtin_definitions
from bridged.objects.errors import BadRequest
from bridged.objects.formats import ContentFormat, codec_for
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record

TLV = ContentFormat.TLV
TEXT = ContentFormat.TEXT
LINK = ContentFormat.LINK_FORMAT
CBOR = ContentFormat.CBOR
T = TypeVar("T")


@pytest.fixture
def dm() -> DeviceManagement:
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(0, 0, [(0, "coap://127.0.0.1"), (1, False), (2, 3)])
    tree.create_instance(1, 0, [(0, 1), (1, 300), (6, False), (7, "U")])
    tree.create_instance(3, 0, [(0, "ACME"), (1, "GW-1"), (11, {0: 0}), (16, "U")])
    tree.create_instance(3303, 0, [(5700, 21.5), (5750, "kitchen")])
    tree.on_execute(3, 4, lambda path, args: None)
    return DeviceManagement(tree)


def get(dm: DeviceManagement, path: str, accept: int | None = None) -> tuple[int, bytes]:
    r = dm.handle(Request(Code.GET, Path.parse(path).segments(), accept=accept))
    return r.code, r.payload


def test_LightweightM2M_1_1_int_201_read_plain_text(dm: DeviceManagement) -> None:
    reply = dm.handle(Request(Code.GET, ["3", "0", "0"]))
    assert (reply.code, reply.payload, reply.content_format) == (Code.CONTENT, b"ACME", TEXT)


def test_LightweightM2M_1_1_int_203_read_tlv_and_decode_back(dm: DeviceManagement) -> None:
    reply = dm.handle(Request(Code.GET, ["3", "0"], accept=TLV))
    assert reply.code == Code.CONTENT and reply.content_format == TLV
    records = codec_for(TLV).decode(reply.payload, Path.parse("/3/0"), dm.tree.definitions)
    assert Record(Path.parse("/3/0/1"), "GW-1") in records


def test_LightweightM2M_1_1_int_221_security_object_is_hidden(dm: DeviceManagement) -> None:
    for method in (Code.GET, Code.PUT, Code.DELETE):
        assert dm.handle(Request(method, ["0", "0"])).code == Code.UNAUTHORIZED


@pytest.mark.parametrize(
    ("path", "accept", "code"),
    [
        ("/3/0/9", None, Code.NOT_FOUND),  # defined, not present
        ("/9999/0", None, Code.NOT_FOUND),
        ("/3/0/4", None, Code.METHOD_NOT_ALLOWED),  # execute-only
        ("/3/0", TEXT, Code.NOT_ACCEPTABLE),  # text carries one value
        ("/3/0/0", 9999, Code.NOT_ACCEPTABLE),
        ("/3/0/0", ContentFormat.OPAQUE, Code.NOT_ACCEPTABLE),
    ],
)
def test_read_errors(dm: DeviceManagement, path: str, accept: int | None, code: int) -> None:
    assert get(dm, path, accept)[0] == code


def test_bad_paths_are_400(dm: DeviceManagement) -> None:
    assert dm.handle(Request(Code.GET, ["3", "x"])).code == Code.BAD_REQUEST
    assert dm.handle(Request(Code.GET, ["3", "65535"])).code == Code.BAD_REQUEST


def test_LightweightM2M_1_1_int_227_write_replace_on_resource(dm: DeviceManagement) -> None:
    r = dm.handle(Request(Code.PUT, ["3303", "0", "5750"], payload=b"hall", content_format=TEXT))
    assert r.code == Code.CHANGED
    assert dm.tree.get(Path.parse("/3303/0/5750")) == "hall"


def test_LightweightM2M_1_1_int_211_212_plain_cbor_carries_one_resource(
    dm: DeviceManagement,
) -> None:
    """Plain CBOR (60) reads and writes a single resource; at an instance it is 4.06 (read)
    and 4.15 (write), for another format can carry those; bad CBOR is 4.00."""
    read = dm.handle(Request(Code.GET, ["3303", "0", "5700"], accept=CBOR))
    assert (read.code, read.content_format) == (Code.CONTENT, CBOR)
    assert cbor2.loads(read.payload) == 21.5
    write = dm.handle(
        Request(Code.PUT, ["3303", "0", "5750"], payload=b"\x64hall", content_format=CBOR)
    )
    assert write.code == Code.CHANGED
    assert dm.tree.get(Path.parse("/3303/0/5750")) == "hall"
    assert get(dm, "/3303/0", CBOR)[0] == Code.NOT_ACCEPTABLE
    whole = dm.handle(Request(Code.PUT, ["3303", "0"], payload=b"\x64hall", content_format=CBOR))
    assert whole.code == Code.UNSUPPORTED_CONTENT_FORMAT
    for bad in (b"\x64hal", b"\x7f\x64hall\xff", b"\x01"):  # truncated, indefinite, an int
        r = dm.handle(Request(Code.PUT, ["3303", "0", "5750"], payload=bad, content_format=CBOR))
        assert r.code == Code.BAD_REQUEST, bad
    assert dm.tree.get(Path.parse("/3303/0/5750")) == "hall"


def test_LightweightM2M_1_1_int_256_write_failures(dm: DeviceManagement) -> None:
    read_only = dm.handle(
        Request(Code.PUT, ["3303", "0", "5700"], payload=b"1", content_format=TEXT)
    )
    assert read_only.code == Code.METHOD_NOT_ALLOWED
    bad_value = dm.handle(Request(Code.PUT, ["1", "0", "1"], payload=b"abc", content_format=TEXT))
    assert bad_value.code == Code.BAD_REQUEST
    no_format = dm.handle(Request(Code.PUT, ["1", "0", "1"], payload=b"60"))
    assert no_format.code == Code.UNSUPPORTED_CONTENT_FORMAT
    unknown = dm.handle(Request(Code.PUT, ["1", "0", "1"], payload=b"60", content_format=4242))
    assert unknown.code == Code.UNSUPPORTED_CONTENT_FORMAT


def test_LightweightM2M_1_1_int_226_partial_update_on_instance(dm: DeviceManagement) -> None:
    payload = codec_for(TLV).encode(
        [Record(Path.parse("/1/0/1"), 120)], Path.parse("/1/0"), dm.tree.definitions
    )
    r = dm.handle(Request(Code.POST, ["1", "0"], payload=payload, content_format=TLV))
    assert r.code == Code.CHANGED
    assert dm.tree.get(Path.parse("/1/0/1")) == 120
    assert dm.tree.get(Path.parse("/1/0/7")) == "U", "partial update keeps the rest"


def test_LightweightM2M_1_1_int_241_execute(dm: DeviceManagement) -> None:
    calls: list[str] = []
    dm.tree.on_execute(3, 4, lambda path, args: calls.append(args))
    assert dm.handle(Request(Code.POST, ["3", "0", "4"])).code == Code.CHANGED
    ok = dm.handle(Request(Code.POST, ["3", "0", "4"], payload=b"0='now',1", content_format=TEXT))
    assert ok.code == Code.CHANGED
    assert calls == ["", "0='now',1"]
    bad = dm.handle(Request(Code.POST, ["3", "0", "4"], payload=b"0=now", content_format=TEXT))
    assert bad.code == Code.BAD_REQUEST
    assert dm.handle(Request(Code.POST, ["3", "0", "0"])).code == Code.METHOD_NOT_ALLOWED


def test_create_with_and_without_instance_id_then_delete(dm: DeviceManagement) -> None:
    tlv = codec_for(TLV)
    with_id = tlv.encode(
        [Record(Path.parse("/3201/5/5550"), True)], Path.parse("/3201"), dm.tree.definitions
    )
    r = dm.handle(Request(Code.POST, ["3201"], payload=with_id, content_format=TLV))
    assert (r.code, r.location) == (Code.CREATED, ("3201", "5"))
    bare = tlv.encode(
        [Record(Path.parse("/3201/0/5550"), False), Record(Path.parse("/3201/0/5750"), "cellar")],
        Path.parse("/3201/0"),
        dm.tree.definitions,
    )
    r = dm.handle(Request(Code.POST, ["3201"], payload=bare, content_format=TLV))
    assert (r.code, r.location) == (Code.CREATED, ("3201", "0")), "the client picks the ID"
    assert dm.tree.get(Path.parse("/3201/0/5750")) == "cellar"
    assert dm.handle(Request(Code.DELETE, ["3201", "5"])).code == Code.DELETED
    assert dm.handle(Request(Code.DELETE, ["3201", "5"])).code == Code.NOT_FOUND
    assert dm.handle(Request(Code.DELETE, ["3", "0"])).code == Code.METHOD_NOT_ALLOWED


def test_a_create_without_a_mandatory_resource_is_400(dm: DeviceManagement) -> None:
    """LwM2M Create: "Mandatory Resources are not specified" is 4.00; a temperature instance
    without its (read-only) Sensor Value would never get one."""
    named = codec_for(TLV).encode(
        [Record(Path.parse("/3303/5/5750"), "attic")], Path.parse("/3303"), dm.tree.definitions
    )
    r = dm.handle(Request(Code.POST, ["3303"], payload=named, content_format=TLV))
    assert r.code == Code.BAD_REQUEST and b"5700 (Sensor Value)" in r.payload
    assert not dm.tree.has(Path.parse("/3303/5"))


def test_LightweightM2M_1_1_int_260_discover(dm: DeviceManagement) -> None:
    code, payload = get(dm, "/3/0", LINK)
    assert code == Code.CONTENT
    links = payload.decode()
    assert "</3/0/4>" in links and "</3/0/11>;dim=1" in links
    code, payload = get(dm, "/3303", LINK)
    assert payload.decode().startswith("</3303>;ver=1.1,</3303/0>")


def test_LightweightM2M_1_1_int_261_write_attributes_then_discover(dm: DeviceManagement) -> None:
    r = dm.handle(Request(Code.PUT, ["3303", "0", "5700"], query=["pmin=10", "gt=25.5"]))
    assert r.code == Code.CHANGED
    assert ";pmin=10" in get(dm, "/3303/0/5700", LINK)[1].decode()
    not_numeric = dm.handle(Request(Code.PUT, ["3303", "0", "5750"], query=["gt=1"]))
    assert not_numeric.code == Code.BAD_REQUEST
    unknown = dm.handle(Request(Code.PUT, ["3303", "0", "5700"], query=["foo=1"]))
    assert unknown.code == Code.BAD_REQUEST
    absent = dm.handle(Request(Code.PUT, ["3303", "7"], query=["pmin=1"]))
    assert absent.code == Code.NOT_FOUND


def observed_instances(dm: DeviceManagement) -> None:
    """Temperatures /3303/1 to /3303/399, each with a pmin its server wrote: what many nodes
    give a gateway, for the tests that an operation's work is what its path holds."""
    for i in range(1, 400):
        dm.tree.create_instance(3303, i, [(5700, float(i))])
        dm.handle(Request(Code.PUT, ["3303", str(i), "5700"], query=["pmin=1"]))


def path_work(monkeypatch: pytest.MonkeyPatch, operation: Callable[[], T]) -> tuple[T, int]:
    """``operation``'s result and the Path comparisons and hashes it made: any pass over
    paths pays them per path, so a count that grows with the tree's size is such a pass."""
    work = 0
    contains, hash_ = Path.contains, Path.__hash__

    def counting_contains(self: Path, other: Path) -> bool:
        nonlocal work
        work += 1
        return contains(self, other)

    def counting_hash(self: Path) -> int:
        nonlocal work
        work += 1
        return hash_(self)

    with monkeypatch.context() as counting:
        counting.setattr(Path, "contains", counting_contains)
        counting.setattr(Path, "__hash__", counting_hash)
        result = operation()
    return result, work


def test_a_delete_drops_the_attributes_it_holds_touching_only_those(
    dm: DeviceManagement, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DELETE drops the Write-Attributes of its path and below, and its work is what the
    path holds: not a pass over every attribute the server wrote (deleting n nodes' instances
    was O(n^2)). Counted as Path comparisons and hashes, which any scan pays per entry."""
    observed_instances(dm)
    dm.handle(Request(Code.PUT, ["3303", "7"], query=["pmax=60"]))
    dm.handle(Request(Code.PUT, ["3303"], query=["pmax=90"]))
    reply, work = path_work(monkeypatch, lambda: dm.handle(Request(Code.DELETE, ["3303", "7"])))
    assert reply.code == Code.DELETED
    assert work < 40, f"{work} Path operations for a delete of 2 attributes among 401"
    assert ";pmin=1" in get(dm, "/3303/8", LINK)[1].decode()
    assert Path.parse("/3303/7") not in dm.attributes
    assert Path.parse("/3303/7/5700") not in dm.attributes
    assert len(dm.attributes) == 399 and dm.attributes[Path.parse("/3303")].pmax == 90
    dm.tree.create_instance(3303, 7, [(5700, 7.0)])
    assert "pm" not in get(dm, "/3303/7", LINK)[1].decode(), "a new instance 7 starts bare"


def test_a_discover_costs_what_its_target_holds(
    dm: DeviceManagement, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Discover of one instance visits that instance, not every instance of the tree (with
    10,000 nodes' 30,000 instances, each Discover of one walked them all). Counted as Path
    comparisons and hashes, which any pass over the instances pays per instance."""
    observed_instances(dm)
    dm.tree.create_instance(3303, 400)
    reply, work = path_work(monkeypatch, lambda: get(dm, "/3303/5", LINK))
    assert reply == (Code.CONTENT, b"</3303/5>,</3303/5/5700>;pmin=1")
    assert work < 40, f"{work} Path operations for a Discover of 1 instance among 401"
    listed = get(dm, "/3303", LINK)[1].decode().split(",")
    assert len(listed) == 1 + 401 + 2 + 399, "the object, its instances and their resources"
    assert "</3303/400>" in listed, "an instance with no resources is listed too"


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("", {}),
        ("1", {1: None}),
        ("1='v1',2='v2',3", {1: "v1", 2: "v2", 3: None}),
        ("0=''", {0: ""}),
    ],
)
def test_execute_argument_syntax(text: str, args: dict[int, str | None]) -> None:
    assert parse_execute_arguments(text) == args


@pytest.mark.parametrize("text", ["1,1", "12", "1='a'b'", '1="x"', "a", "1,", "1='\\'"])
def test_bad_execute_arguments(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_execute_arguments(text)
