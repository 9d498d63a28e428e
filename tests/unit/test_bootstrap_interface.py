"""The Bootstrap interface without a network: every operation, every error path, and the
consistency check behind Bootstrap-Finish.

Named after the OMA LwM2M 1.1 bootstrap interoperability tests where one applies.
"""

from __future__ import annotations

import json

import pytest
from aiocoap.numbers.codes import Code
from hypothesis import given
from hypothesis import strategies as st

from bridged.engine.bootstrap import (
    BootstrapInterface,
    bootstrap_account,
    check_consistency,
    server_accounts,
)
from bridged.engine.bootstrap_listener import provisioned_of, staged_copy
from bridged.engine.dm import Reply, Request
from bridged.engine.site import ClientSite
from bridged.objects.builtin import builtin_definitions
from bridged.objects.formats import ContentFormat, codec_for
from bridged.objects.ids import SecurityMode
from bridged.objects.linkformat import parse_links
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from peers.pki import Pki

SENML_JSON = ContentFormat.SENML_JSON
TLV = ContentFormat.TLV
TEXT = ContentFormat.TEXT
LINK = ContentFormat.LINK_FORMAT
BS_URI = "coap://bs.example:5683"


def make_tree() -> ObjectTree:
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(0, 0, [(0, BS_URI), (1, True), (2, SecurityMode.NOSEC)])
    tree.create_instance(3, 0, [(0, "ACME"), (16, "U")])
    tree.create_instance(3303, 0, [(5700, 21.5)])
    return tree


@pytest.fixture
def bs() -> BootstrapInterface:
    return BootstrapInterface(make_tree(), supported_modes=(SecurityMode.NOSEC, SecurityMode.PSK))


def senml(base: str, **values: object) -> bytes:
    """A SenML JSON payload; keys are ``r<id>`` with the SenML value key picked by type."""
    records: list[dict[str, object]] = []
    for i, (name, value) in enumerate(values.items()):
        record: dict[str, object] = {"n": name.removeprefix("r")}
        if i == 0:
            record["bn"] = base
        key = {bool: "vb", str: "vs", bytes: "vd"}.get(type(value), "v")
        record[key] = "" if isinstance(value, bytes) else value
        records.append(record)
    return json.dumps(records).encode()


def put(bs: BootstrapInterface, path: str, payload: bytes, cf: int | None = SENML_JSON) -> Reply:
    return bs.handle(
        Request(Code.PUT, Path.parse(path).segments(), payload=payload, content_format=cf)
    )


def account(bs: BootstrapInterface, ssid: int = 7, uri: str = "coap://lwm2m.example") -> None:
    """Provision one complete NoSec LwM2M Server account as /0/1 and /1/1."""
    reply = put(bs, "/0/1", senml("/0/1/", r0=uri, r1=False, r2=SecurityMode.NOSEC, r10=ssid))
    assert reply.code == Code.CHANGED, reply
    reply = put(bs, "/1/1", senml("/1/1/", r0=ssid, r1=300, r6=False, r7="U"))
    assert reply.code == Code.CHANGED, reply


def finish(bs: BootstrapInterface) -> Reply:
    return bs.handle(Request(Code.POST, ["bs"]))


# -- Bootstrap-Write --------------------------------------------------------------------------


def test_write_creates_the_instance_with_bootstrap_only_resources(bs: BootstrapInterface) -> None:
    account(bs)
    tree = bs.tree
    assert tree.get(Path.parse("/0/1/0")) == "coap://lwm2m.example"
    assert tree.get(Path.parse("/0/1/10")) == 7
    assert tree.get(Path.parse("/1/1/0")) == 7, "a read-only resource is written"


def test_write_to_an_existing_instance_keeps_what_the_payload_does_not_name(
    bs: BootstrapInterface,
) -> None:
    account(bs)
    assert put(bs, "/1/1", senml("/1/1/", r1=60)).code == Code.CHANGED
    assert bs.tree.get(Path.parse("/1/1/1")) == 60
    assert bs.tree.get(Path.parse("/1/1/7")) == "U"


def test_write_at_object_level_creates_several_instances(bs: BootstrapInterface) -> None:
    payload = json.dumps(
        [
            {"bn": "/1/", "n": "4/0", "v": 4},
            {"n": "4/1", "v": 60},
            {"n": "5/0", "v": 5},
            {"n": "5/1", "v": 90},
        ]
    ).encode()
    assert put(bs, "/1", payload).code == Code.CHANGED
    assert bs.tree.instance_ids(1) == [4, 5]


def test_write_at_resource_level_in_tlv_and_text(bs: BootstrapInterface) -> None:
    tlv = codec_for(TLV).encode(
        [Record(Path.parse("/1/2/1"), 120)], Path.parse("/1/2/1"), bs.tree.definitions
    )
    assert put(bs, "/1/2/1", tlv, TLV).code == Code.CHANGED, "creates /1/2"
    assert put(bs, "/0/0/0", b"coap://other.example", TEXT).code == Code.CHANGED
    assert bootstrap_account(bs.tree) is not None
    assert bootstrap_account(bs.tree).uri == "coap://other.example"  # type: ignore[union-attr]


def test_write_multi_instance_resource(bs: BootstrapInterface) -> None:
    payload = json.dumps([{"bn": "/0/0/16/", "n": "0", "v": 49320}]).encode()
    assert put(bs, "/0/0/16", payload).code == Code.CHANGED
    assert bs.tree.get(Path.parse("/0/0/16")) == {0: 49320}


@pytest.mark.parametrize(
    ("path", "payload", "cf", "code"),
    [
        ("/0/1", b"[{", SENML_JSON, Code.BAD_REQUEST),
        ("/0/1", senml("/0/1/", r0="x"), None, Code.UNSUPPORTED_CONTENT_FORMAT),
        ("/0/1", senml("/0/1/", r0="x"), 9999, Code.UNSUPPORTED_CONTENT_FORMAT),
        ("/", senml("/0/1/", r0="x"), SENML_JSON, Code.BAD_REQUEST),
        ("/0/1/0/1", b"x", TEXT, Code.BAD_REQUEST),
        ("/0/1", senml("/0/1/", r99=1), SENML_JSON, Code.BAD_REQUEST),
        ("/0/1", senml("/0/1/", r2="three"), SENML_JSON, Code.BAD_REQUEST),
        ("/0/1", senml("/0/2/", r2=3), SENML_JSON, Code.BAD_REQUEST),
        ("/32000/0", senml("/32000/0/", r0=1), SENML_JSON, Code.BAD_REQUEST),
        ("/1/1/8", b"", TEXT, Code.BAD_REQUEST),
        ("/3/1", senml("/3/1/", r0="x"), SENML_JSON, Code.BAD_REQUEST),
        ("/dev0/3/0", senml("/dev0/3/0/", r0="x"), SENML_JSON, Code.METHOD_NOT_ALLOWED),
    ],
    ids=[
        "garbled",
        "no-format",
        "unknown-format",
        "root",
        "resource-instance-of-single",
        "unknown-resource",
        "wrong-type",
        "outside-target",
        "unknown-object",
        "executable",
        "second-device-instance",
        "end-device",
    ],
)
def test_write_errors(
    bs: BootstrapInterface, path: str, payload: bytes, cf: int | None, code: Code
) -> None:
    before = sorted(bs.tree.instances())
    reply = put(bs, path, payload, cf)
    assert reply.code == code, reply
    assert reply.payload, "a diagnostic says why"
    assert sorted(bs.tree.instances()) == before, "a refused write changes nothing"


def test_a_refused_write_leaves_every_instance_alone(bs: BootstrapInterface) -> None:
    payload = json.dumps(
        [{"bn": "/1/", "n": "4/1", "v": 60}, {"n": "5/1", "vs": "not a number"}]
    ).encode()
    assert put(bs, "/1", payload).code == Code.BAD_REQUEST
    assert not bs.tree.has(Path.parse("/1/4"))


# -- Bootstrap-Read ---------------------------------------------------------------------------


def test_LightweightM2M_1_1_int_8_read_server_object(bs: BootstrapInterface) -> None:
    """LightweightM2M-1.1-int-8: Bootstrap-Read of /1, in the announced format by default."""
    account(bs)
    put(bs, "/1/1", senml("/1/1/", r17=3))  # a bootstrap-only resource reads too
    reply = bs.handle(Request(Code.GET, ["1"]))
    assert (reply.code, reply.content_format) == (Code.CONTENT, ContentFormat.SENML_CBOR)
    records = codec_for(ContentFormat.SENML_CBOR).decode(
        reply.payload, Path.parse("/1"), bs.tree.definitions
    )
    assert Record(Path.parse("/1/1/17"), 3) in records
    reply = bs.handle(Request(Code.GET, ["1", "1", "1"], accept=TEXT))
    assert (reply.code, reply.payload) == (Code.CONTENT, b"300")


@pytest.mark.parametrize(
    ("path", "accept", "code"),
    [
        ("/0", None, Code.UNAUTHORIZED),
        ("/0/0/0", None, Code.UNAUTHORIZED),
        ("/3/0", None, Code.UNAUTHORIZED),
        ("/", None, Code.UNAUTHORIZED),
        ("/1/9", None, Code.NOT_FOUND),
        ("/1/1/99", None, Code.NOT_FOUND),
        ("/1/1", TEXT, Code.NOT_ACCEPTABLE),
        ("/1/1", 9999, Code.NOT_ACCEPTABLE),
    ],
)
def test_read_errors(bs: BootstrapInterface, path: str, accept: int | None, code: Code) -> None:
    account(bs)
    assert bs.handle(Request(Code.GET, Path.parse(path).segments(), accept=accept)).code == code


def test_read_of_an_empty_object_is_empty(bs: BootstrapInterface) -> None:
    reply = bs.handle(Request(Code.GET, ["2"], accept=SENML_JSON))
    assert (reply.code, reply.payload) == (Code.CONTENT, b"[]")


# -- Bootstrap-Discover -----------------------------------------------------------------------


def test_discover_root_lists_accounts_with_ssid_and_uri(bs: BootstrapInterface) -> None:
    account(bs)
    reply = bs.handle(Request(Code.GET, [], accept=LINK))
    assert reply.code == Code.CONTENT and reply.content_format == LINK
    text = reply.payload.decode()
    assert text.startswith("</>;lwm2m=1.1,</0>;ver=1.1,")
    assert f'</0/0>;uri="{BS_URI}",' in text, "no ssid on the Bootstrap-Server account"
    assert '</0/1>;ssid=7;uri="coap://lwm2m.example"' in text
    assert "</1/1>;ssid=7" in text and "</3/0>," in text and text.endswith("</3303/0>")
    parse_links(text)


def test_discover_object(bs: BootstrapInterface) -> None:
    links = parse_links(bs.handle(Request(Code.GET, ["3"], accept=LINK)).payload.decode())
    assert [link.target for link in links] == ["/", "/3", "/3/0"]
    empty = bs.handle(Request(Code.GET, ["2"], accept=LINK)).payload.decode()
    assert empty == "</>;lwm2m=1.1", "a defined object without instances lists nothing"


@pytest.mark.parametrize(("path", "code"), [("/3/0", Code.BAD_REQUEST), ("/32000", Code.NOT_FOUND)])
def test_discover_errors(bs: BootstrapInterface, path: str, code: Code) -> None:
    assert bs.handle(Request(Code.GET, Path.parse(path).segments(), accept=LINK)).code == code


# -- Bootstrap-Delete -------------------------------------------------------------------------


def test_LightweightM2M_1_1_int_4_delete_all_keeps_the_bootstrap_account_and_device(
    bs: BootstrapInterface,
) -> None:
    """LightweightM2M-1.1-int-4: Delete / clears the configuration objects."""
    account(bs)
    bs.tree.create_instance(2, 0, [(0, 1), (1, 0), (3, 7)])
    assert bs.handle(Request(Code.DELETE, [])).code == Code.DELETED
    assert [str(p) for p in bs.tree.instances()] == ["/0/0", "/3/0", "/3303/0"]


def test_delete_object_and_instance(bs: BootstrapInterface) -> None:
    account(bs)
    assert bs.handle(Request(Code.DELETE, ["1", "1"])).code == Code.DELETED
    assert not bs.tree.has(Path.parse("/1/1"))
    assert bs.handle(Request(Code.DELETE, ["0"])).code == Code.DELETED
    assert bs.tree.instance_ids(0) == [0]
    assert bs.handle(Request(Code.DELETE, ["3303"])).code == Code.DELETED, "named explicitly"
    assert bs.tree.instance_ids(3303) == []
    assert bs.handle(Request(Code.DELETE, ["2"])).code == Code.DELETED, "absent: nothing to do"


@pytest.mark.parametrize("path", ["/0/0", "/3/0", "/3", "/1/1/0", "/1/9", "/32000"])
def test_delete_errors(bs: BootstrapInterface, path: str) -> None:
    account(bs)
    before = sorted(bs.tree.instances())
    assert bs.handle(Request(Code.DELETE, Path.parse(path).segments())).code == Code.BAD_REQUEST
    assert sorted(bs.tree.instances()) == before


# -- Bootstrap-Finish and the consistency check -----------------------------------------------


def test_LightweightM2M_1_1_int_9_finish_needs_a_server_account(bs: BootstrapInterface) -> None:
    """LightweightM2M-1.1-int-9: 4.06 with a diagnostic, then 2.04 once consistent."""
    reply = finish(bs)
    assert reply.code == Code.NOT_ACCEPTABLE and not bs.finished
    assert b"no LwM2M Server account" in reply.payload
    account(bs)
    assert finish(bs).code == Code.CHANGED and bs.finished


def test_finish_only_by_post(bs: BootstrapInterface) -> None:
    assert bs.handle(Request(Code.GET, ["bs"])).code == Code.METHOD_NOT_ALLOWED


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"/0/1": dict(r2=SecurityMode.PSK, r0="coaps://lwm2m.example")}, "PSK identity"),
        ({"/0/1": dict(r2=1)}, "security mode RPK is not supported"),
        ({"/0/1": dict(r0="http://lwm2m.example")}, "not a coap:// URI"),
        ({"/0/1": dict(r0="coaps://lwm2m.example")}, "not a coap:// URI"),
        ({"/0/1": dict(r10=8)}, "no Server instance has Short Server ID 8"),
        ({"/1/1": dict(r7="X")}, "binding 'X'"),
        (
            {"/0/2": dict(r0="coap://b.example", r1=True, r2=SecurityMode.NOSEC)},
            "more than one Bootstrap",
        ),
        (
            {"/0/3": dict(r0="coap://c.example", r1=False, r2=SecurityMode.NOSEC, r10=7)},
            "also that of /0/1",
        ),
        ({"/1/3": dict(r0=7, r1=60, r6=False, r7="U")}, "also that of /1/1"),
        ({"/1/4": dict(r0=9, r1=60)}, "mandatory resources 6, 7 are missing"),
        ({"/2/0": dict(r0=1)}, "/2/0: mandatory resources 1, 3 are missing"),
        (
            {"/0/5": dict(r0="coap://d.example", r2=SecurityMode.NOSEC)},
            "/0/5: Bootstrap-Server (resource 1)",
        ),
    ],
)
def test_consistency_problems(bs: BootstrapInterface, change: dict, problem: str) -> None:
    account(bs)
    for path, values in change.items():
        base = path + "/"
        assert put(bs, path, senml(base, **values)).code == Code.CHANGED
    reply = finish(bs)
    assert reply.code == Code.NOT_ACCEPTABLE
    assert problem in reply.payload.decode()


@pytest.mark.parametrize("lifetime", [0, -101, 2**31])
def test_a_lifetime_out_of_range_is_refused_at_the_write(
    bs: BootstrapInterface, lifetime: int
) -> None:
    account(bs)
    assert put(bs, "/1/1", senml("/1/1/", r1=lifetime)).code == Code.BAD_REQUEST


def test_psk_account_with_keys_is_consistent() -> None:
    tree = make_tree()
    tree.create_instance(
        0,
        1,
        [
            (0, "coaps://s.example"),
            (1, False),
            (2, SecurityMode.PSK),
            (3, b"id"),
            (5, b"key"),
            (10, 3),
        ],
    )
    tree.create_instance(1, 1, [(0, 3), (1, 60), (6, False), (7, "U")])
    assert check_consistency(tree, (SecurityMode.NOSEC, SecurityMode.PSK)) == []
    assert "not supported" in check_consistency(tree, (SecurityMode.NOSEC,))[0]


def test_server_accounts_follow_the_priority_order() -> None:
    tree = make_tree()
    for iid, ssid, priority in ((1, 10, 2), (2, 20, 1), (3, 30, None)):
        tree.create_instance(
            0, iid, [(0, f"coap://s{ssid}"), (1, False), (2, SecurityMode.NOSEC), (10, ssid)]
        )
        values: list[tuple[int, object]] = [(0, ssid), (1, 60), (6, False), (7, "U")]
        if priority is not None:
            values.append((13, priority))
        tree.create_instance(1, iid, values)  # type: ignore[arg-type]
    assert [a.ssid for a in server_accounts(tree)] == [20, 10, 30]
    assert [a.server_iid for a in server_accounts(tree)] == [2, 1, 3]


# -- anything else ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [(Code.POST, "/1"), (Code.POST, "/1/1/8"), (Code.FETCH, "/"), (Code.iPATCH, "/")],
)
def test_other_methods_are_not_bootstrap_operations(
    bs: BootstrapInterface, method: Code, path: str
) -> None:
    assert bs.handle(Request(method, Path.parse(path).segments())).code == Code.METHOD_NOT_ALLOWED


def test_bad_path_is_bad_request(bs: BootstrapInterface) -> None:
    assert bs.handle(Request(Code.GET, ["1", "x"])).code == Code.BAD_REQUEST
    assert bs.handle(Request(Code.PUT, ["65536"])).code == Code.BAD_REQUEST


@given(
    ssid=st.integers(min_value=1, max_value=65534),
    lifetime=st.integers(min_value=1, max_value=2**31 - 1),
    binding=st.sampled_from(["U", "T", "UT", "N", "UN"]),
    host=st.from_regex(r"[a-z][a-z0-9]{0,20}", fullmatch=True),
    iid=st.integers(min_value=1, max_value=65534),
)
def test_any_complete_account_finishes_and_reads_back(
    ssid: int, lifetime: int, binding: str, host: str, iid: int
) -> None:
    bs = BootstrapInterface(make_tree())
    uri = f"coap://{host}:5683"
    assert put(
        bs, f"/0/{iid}", senml(f"/0/{iid}/", r0=uri, r1=False, r2=SecurityMode.NOSEC, r10=ssid)
    ).code == (Code.CHANGED)
    values = senml(f"/1/{iid}/", r0=ssid, r1=lifetime, r6=False, r7=binding)
    assert put(bs, f"/1/{iid}", values).code == Code.CHANGED
    assert finish(bs).code == Code.CHANGED
    [found] = server_accounts(bs.tree)
    assert (found.ssid, found.uri, found.server_iid) == (ssid, uri, iid)
    reply = bs.handle(Request(Code.GET, ["1", str(iid)], accept=SENML_JSON))
    assert {"n": "1", "v": lifetime} in json.loads(reply.payload)
    assert bs.handle(Request(Code.DELETE, [])).code == Code.DELETED
    assert server_accounts(bs.tree) == [] and bootstrap_account(bs.tree) is not None


@given(st.binary(max_size=64), st.sampled_from([SENML_JSON, TLV, 112, 11544, TEXT, 42]))
def test_no_payload_crashes_a_write(payload: bytes, cf: int) -> None:
    bs = BootstrapInterface(make_tree())
    for path in ("/0", "/0/1", "/1/1/1"):
        code = put(bs, path, payload, cf).code
        assert code in (Code.CHANGED, Code.BAD_REQUEST, Code.UNSUPPORTED_CONTENT_FORMAT)


# -- the site ---------------------------------------------------------------------------------


class _Pipe:
    def __init__(self, source: str) -> None:
        self.request = type("Request", (), {"remote": source})()


class _Resource:
    def __init__(self) -> None:
        self.rendered: list[str] = []

    async def render_to_pipe(self, pipe: _Pipe) -> None:
        self.rendered.append(pipe.request.remote)  # type: ignore[attr-defined]


async def test_site_diverts_claimed_requests_until_undone() -> None:
    dm, bootstrap = _Resource(), _Resource()
    site = ClientSite(dm)
    undo = site.divert(lambda request: request.remote == "bs", bootstrap)
    with pytest.raises(RuntimeError):
        site.divert(lambda request: True, _Resource())
    for source in ("bs", "dm"):
        await site.render_to_pipe(_Pipe(source))
    undo()
    await site.render_to_pipe(_Pipe("bs"))
    assert (bootstrap.rendered, dm.rendered) == (["bs"], ["dm", "bs"])
    undo()  # twice is harmless


def test_certificate_account_needs_its_certificates_and_key() -> None:
    """Security mode 2: Bootstrap-Finish wants the client's certificate (3), the server's (4)
    and the client's key (5); with all three it is accepted."""
    bs = BootstrapInterface(
        make_tree(), supported_modes=(SecurityMode.NOSEC, SecurityMode.CERTIFICATE)
    )
    account(bs)
    change = dict(r0="coaps://lwm2m.example", r2=SecurityMode.CERTIFICATE)
    assert put(bs, "/0/1", senml("/0/1/", **change)).code == Code.CHANGED
    reply = finish(bs)
    assert reply.code == Code.NOT_ACCEPTABLE
    for problem in ("client certificate (resource 3)", "server certificate (resource 4)"):
        assert problem in reply.payload.decode()
    for rid, value in ((3, b"cert"), (4, b"server"), (5, b"key")):
        bs.tree.set(Path((0, 1, rid)), value)
    assert finish(bs).code == Code.CHANGED


def test_raw_public_key_account_needs_its_keys() -> None:
    """Security mode 1: Bootstrap-Finish wants the client's public key (3), the server's (4)
    and the client's private key (5), each a P-256 key and 3 the public half of 5; with all
    three it is accepted."""
    bs = BootstrapInterface(make_tree(), supported_modes=(SecurityMode.NOSEC, SecurityMode.RPK))
    account(bs)
    change = dict(r0="coaps://lwm2m.example", r2=SecurityMode.RPK)
    assert put(bs, "/0/1", senml("/0/1/", **change)).code == Code.CHANGED
    reply = finish(bs)
    assert reply.code == Code.NOT_ACCEPTABLE
    for problem in (
        "client public key (resource 3)",
        "server public key (resource 4)",
        "client private key (resource 5)",
    ):
        assert problem in reply.payload.decode()
    for rid, value in ((3, b"public"), (4, b"server"), (5, b"key")):
        bs.tree.set(Path((0, 1, rid)), value)
    reply = finish(bs)
    assert reply.code == Code.NOT_ACCEPTABLE
    assert "/0/1: the client's private key (/0/x/5)" in reply.payload.decode()
    own, server = Pki().issue("client"), Pki().issue("server")
    for rid, value in ((3, own.public_der), (4, server.public_der), (5, own.key_der())):
        bs.tree.set(Path((0, 1, rid)), value)
    assert finish(bs).code == Code.CHANGED


def test_a_server_initiated_session_works_on_a_staged_copy_of_the_provisioned_objects() -> None:
    """A Bootstrap-Server-initiated session (``bootstrap_listener``) changes only its staged
    copy: the live tree is as it was until Finish, a Discover still lists every object, and
    Write or Delete outside the provisioned objects is 4.00 (a Bootstrap-Write's codes)."""
    live = make_tree()
    staged = staged_copy(live)
    bs = BootstrapInterface(staged, confined=True)
    discovered = bs.handle(Request(Code.GET, [], accept=LINK)).payload.decode()
    links = {link.target for link in parse_links(discovered)}
    assert {"/0/0", "/3/0", "/3303/0"} <= links
    assert put(bs, "/3/0", senml("/3/0/", r0="Other")).code == Code.BAD_REQUEST
    delete = bs.handle(Request(Code.DELETE, Path.parse("/3303/0").segments()))
    assert delete.code == Code.BAD_REQUEST
    account(bs)
    assert finish(bs).code == Code.CHANGED
    assert not live.has(Path.parse("/1/1")) and live.get(Path.parse("/3/0/0")) == "ACME"
    provisioned = provisioned_of(staged)
    assert set(provisioned) == {(0, 0), (0, 1), (1, 1)}
    assert provisioned[(1, 1)][0] == 7
