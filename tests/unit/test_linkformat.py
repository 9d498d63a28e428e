"""CoRE Link Format: RFC 6690 parsing and formatting, Register payloads, Discover, attributes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.objects.builtin import builtin_definitions
from bridged.objects.errors import BadRequest, DecodeError, LwM2MError
from bridged.objects.linkformat import (
    ATTRIBUTE_NAMES,
    Attributes,
    Link,
    discover_links,
    format_attributes,
    format_links,
    object_links,
    parse_attributes,
    parse_links,
    registration_links,
)
from bridged.objects.paths import Path

# -- RFC 6690 ---------------------------------------------------------------------------------

# RFC 6690 §5, the /.well-known/core example (its line breaks are for display only).
RFC6690_EXAMPLE = (
    '</sensors>;ct=40;title="Sensor Index",'
    '</sensors/temp>;rt="temperature-c";if="sensor",'
    '</sensors/light>;rt="light-lux";if="sensor",'
    '<http://www.example.com/sensors/t123>;anchor="/sensors/temp";rel="describedby",'
    '</t>;anchor="/sensors/temp";rel="alternate"'
)


def test_rfc6690_example() -> None:
    links = parse_links(RFC6690_EXAMPLE)
    assert links == [
        Link("/sensors", (("ct", "40"), ("title", "Sensor Index"))),
        Link("/sensors/temp", (("rt", "temperature-c"), ("if", "sensor"))),
        Link("/sensors/light", (("rt", "light-lux"), ("if", "sensor"))),
        Link(
            "http://www.example.com/sensors/t123",
            (("anchor", "/sensors/temp"), ("rel", "describedby")),
        ),
        Link("/t", (("anchor", "/sensors/temp"), ("rel", "alternate"))),
    ]
    assert format_links(links) == RFC6690_EXAMPLE


def test_rfc6690_simple_example() -> None:
    # RFC 6690 §5: GET /.well-known/core answered with two sensor links.
    text = '</sensors/temp>;if="sensor",</sensors/light>;if="sensor"'
    assert parse_links(text) == [
        Link("/sensors/temp", (("if", "sensor"),)),
        Link("/sensors/light", (("if", "sensor"),)),
    ]
    assert format_links(parse_links(text)) == text


# Leshan, leshan-lwm2m-core/src/test/java/org/eclipse/leshan/core/link/DefaultLinkParserTest.java
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '</>;rt="oma.lwm2m";ct=100;qs="quoted_string";us=unquoted_string,'
            "</1/101>,</1/102>,</2/0>,</2/1>;empty",
            [
                Link(
                    "/",
                    (
                        ("rt", "oma.lwm2m"),
                        ("ct", "100"),
                        ("qs", "quoted_string"),
                        ("us", "unquoted_string"),
                    ),
                ),
                Link("/1/101"),
                Link("/1/102"),
                Link("/2/0"),
                Link("/2/1", (("empty", None),)),
            ],
        ),
        ("</uri>", [Link("/uri")]),
        ("</uri//>", [Link("/uri//")]),
        ("</%20>", [Link("/%20")]),
        ("</-._~a-zA-Z0-9:@!$&'()*+,;=>", [Link("/-._~a-zA-Z0-9:@!$&'()*+,;=")]),
        (
            "</foo>;param=<,</bar>;param2=>",
            [Link("/foo", (("param", "<"),)), Link("/bar", (("param2", ">"),))],
        ),
        ("</foo>;param=/", [Link("/foo", (("param", "/"),))]),
        ('</foo>;param=",",</bar>', [Link("/foo", (("param", ","),)), Link("/bar")]),
        ('</foo>;param=";",</bar>', [Link("/foo", (("param", ";"),)), Link("/bar")]),
        ('</foo>;param=" \\" \\" ",</bar>', [Link("/foo", (("param", ' " " '),)), Link("/bar")]),
        ('</foo>;param="="', [Link("/foo", (("param", "="),))]),
        (
            "</foo>;param=!#$%&'()*+-.:<=>?@[]^_`{|}~a1z9",
            [Link("/foo", (("param", "!#$%&'()*+-.:<=>?@[]^_`{|}~a1z9"),))],
        ),
        (
            '</foo>;param=!#$%&\'()*+-.:<=>?@[]^_`{|}~a1z9;param2="foo";param3,</bar>',
            [
                Link(
                    "/foo",
                    (
                        ("param", "!#$%&'()*+-.:<=>?@[]^_`{|}~a1z9"),
                        ("param2", "foo"),
                        ("param3", None),
                    ),
                ),
                Link("/bar"),
            ],
        ),
        ('</1>;ver="2.2"', [Link("/1", (("ver", "2.2"),))]),
        ("</1>;ver=2.2", [Link("/1", (("ver", "2.2"),))]),
        ("", []),
    ],
)
def test_leshan_parser_vectors(text: str, expected: list[Link]) -> None:
    assert parse_links(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "junk",
        "</a",
        "/a>",
        "</a>,",
        ",</a>",
        "</a>,,</b>",
        "</a> ,</b>",  # the grammar has no whitespace
        "</a>;",
        "</a>;=1",
        "</a>;p=",
        '</a>;p="unterminated',
        '</a>;p="x"y',
        "</a>;p=a b",
        "</a>x",
        "</a b>",
        '</a">',
        "<</a>>",
        "</a>;p=\\",
        "</a>;p*=1",
    ],
)
def test_malformed_links(text: str) -> None:
    with pytest.raises(DecodeError) as exc:
        parse_links(text)
    assert exc.value.code_text == "4.00"


def test_quoting() -> None:
    links = [
        Link("/a", (("ct", "110 112"), ("t", ""), ("q", 'say "hi" \\'), ("v", "1.1"), ("Q", None)))
    ]
    text = '</a>;ct="110 112";t="";q="say \\"hi\\" \\\\";v=1.1;Q'
    assert format_links(links) == text
    assert format_links(links, quoted=frozenset({"v"})) == text.replace("v=1.1", 'v="1.1"')
    assert parse_links(text) == links


def test_link_checks_its_parts() -> None:
    with pytest.raises(ValueError):
        Link("/a b")
    with pytest.raises(ValueError):
        Link("/a", (("bad name", None),))


uri_text = st.text(st.sampled_from("abz09-._~:/?#[]@!$&'()*+,;=%"), max_size=12)
names = st.text(st.sampled_from("abzAZ09!#$&+-.^_`|~"), min_size=1, max_size=6)
values = st.one_of(st.none(), st.text(st.characters(exclude_categories=["Cs"]), max_size=12))
links = st.builds(Link, uri_text, st.lists(st.tuples(names, values), max_size=4).map(tuple))


@given(st.lists(links, max_size=5), st.frozensets(names))
def test_links_roundtrip(link_list: list[Link], quoted: frozenset[str]) -> None:
    assert parse_links(format_links(link_list, quoted=quoted)) == link_list


@given(st.text(st.sampled_from('<>/,;="\\ a1') | st.characters(), max_size=40))
def test_arbitrary_text_raises_only_decode_error(text: str) -> None:
    try:
        parsed = parse_links(text)
    except DecodeError:
        return
    assert parse_links(format_links(parsed)) == parsed


# -- Register and Update ----------------------------------------------------------------------

REG = builtin_definitions()


def test_registration_payload() -> None:
    objects = [
        (REG.get(0), [0, 1]),  # Security: never listed
        (REG.get(1), [0]),
        (REG.get(3), [0]),
        (REG.get(4), []),
        (REG.get(25), [1, 0]),
        ((21, "2.0"), [0]),  # OSCORE: never listed
        ((23, "1.0"), [0]),  # never listed since 1.2.1
        ((3303, "1.0"), [1, 0]),
    ]
    assert [REG.get(i).version for i in (1, 3, 4, 25)] == ["1.1", "1.1", "1.1", "2.0"]
    assert registration_links(objects) == (
        '</>;rt="oma.lwm2m";ct="112 110 60",</1>;ver=1.1,</1/0>,</3>;ver=1.1,</3/0>,'
        "</4>;ver=1.1,"
        "</25>;ver=2.0,</25/0>,</25/1>,</3303/0>,</3303/1>"
    )


def test_registration_as_lwm2m_1_0_quotes_ver() -> None:
    # Anjay writes ver="1.1" when it registers as 1.0 and ver=1.1 from 1.1 on (anjay_corelnk.c).
    objects = [((1, "1.1"), [0]), ((3, "1.0"), [0])]
    assert registration_links(objects, version="1.0", content_formats=(110, 112)) == (
        '</>;rt="oma.lwm2m";ct="110 112",</1>;ver="1.1",</1/0>,</3/0>'
    )
    assert registration_links(objects, content_formats=(110,)) == (
        '</>;rt="oma.lwm2m";ct=110,</1>;ver=1.1,</1/0>,</3/0>'
    )
    assert registration_links(objects, content_formats=()) == (
        '</>;rt="oma.lwm2m",</1>;ver=1.1,</1/0>,</3/0>'
    )


def test_registration_as_lwm2m_1_0_announces_what_a_1_0_server_knows() -> None:
    # Server 1.1 and Device 1.1 need LwM2M 1.1: a 1.0 server knows them as 1.0 (no ver); an
    # IPSO object at 1.1 works with LwM2M 1.0 and keeps its ver; 1.0 has no SenML CBOR.
    objects = [(REG.get(1), [0]), (REG.get(3), [0]), (REG.get(3303), [0])]
    assert registration_links(objects, version="1.0") == (
        '</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>,</3303>;ver="1.1",</3303/0>'
    )


def test_alternate_path() -> None:
    # Core 1.0 §5.2.1 example shape: </lwm2m>;rt="oma.lwm2m",</lwm2m/1/101>,...
    assert registration_links(
        [((1, "1.0"), [101, 102]), ((2, "1.0"), [0])], alternate_path="/lwm2m"
    ) == ('</lwm2m>;rt="oma.lwm2m";ct="112 110 60",</lwm2m/1/101>,</lwm2m/1/102>,</lwm2m/2/0>')
    for bad in ("lwm2m", "/3", "/a/12", "/a b"):
        with pytest.raises(ValueError):
            registration_links([], alternate_path=bad)


@pytest.mark.parametrize(
    ("objects", "expected"),
    [
        # Anjay Lite tests/anj/io/register_payload.c (objects_with_instances, big_numbers,
        # instances_with_version), read for the strings only.
        (
            [
                ((1, "1.0"), [0, 1]),
                ((2, "1.2"), [0]),
                ((3, "1.0"), [0, 1, 2, 3]),
                ((4, "1.0"), []),
                ((5, "2.3"), []),
            ],
            "</1/0>,</1/1>,</2>;ver=1.2,</2/0>,</3/0>,</3/1>,</3/2>,</3/3>,</4>,</5>;ver=2.3",
        ),
        (
            [
                ((1, "1.0"), [0, 1]),
                ((22, "1.2"), [0]),
                ((333, "1.0"), [0, 1, 2, 3333]),
                ((4444, "1.0"), []),
                ((55555, "2.3"), []),
            ],
            "</1/0>,</1/1>,</22>;ver=1.2,</22/0>,</333/0>,</333/1>,</333/2>,</333/3333>,"
            "</4444>,</55555>;ver=2.3",
        ),
        (
            [((1, "1.0"), []), ((3, "1.0"), [3]), ((4, "1.1"), []), ((5, "1.0"), [0])],
            "</1>,</3/3>,</4>;ver=1.1,</5/0>",
        ),
        # Anjay's gateway test, lwm2m_gateway.py: an end device's object list in /25/x/3.
        (
            [((19, "1.0"), [0]), ((3303, "1.1"), []), ((3347, "1.0"), [0])],
            "</19/0>,</3303>;ver=1.1,</3347/0>",
        ),
        (
            [((19, "1.0"), [0]), ((3303, "1.1"), [0]), ((3347, "1.0"), [0])],
            "</19/0>,</3303>;ver=1.1,</3303/0>,</3347/0>",
        ),
    ],
)
def test_object_links_vectors(
    objects: list[tuple[tuple[int, str], list[int]]], expected: str
) -> None:
    assert format_links(object_links(objects)) == expected


def test_object_links_sort_objects_and_each_ones_instances_given_in_any_order() -> None:
    """Each object's instances are sorted in its turn (issue 17: not every object's at once),
    from any iterable, an empty one giving the object's own link."""
    objects = [((3303, "1.0"), iter([7, 2])), ((3300, "1.0"), iter(())), ((19, "1.0"), {5, 1})]
    expected = "</19/1>,</19/5>,</3300>,</3303/2>,</3303/7>"
    assert format_links(object_links(objects)) == expected


# -- Discover ---------------------------------------------------------------------------------

DEVICE_PATHS = [
    Path.parse(p)
    for p in (
        "/3/0",
        "/3/0/1",
        "/3/0/2",
        "/3/0/3",
        "/3/0/4",
        "/3/0/6",
        "/3/0/6/0",
        "/3/0/6/3",
        "/3/0/7",
        "/3/0/7/0",
        "/3/0/7/1",
        "/3/0/8",
        "/3/0/8/1",
        "/3/0/8/2",
        "/3/0/11",
        "/3/0/16",
    )
]
DEVICE_DIMS = {Path.parse(p): 2 for p in ("/3/0/6", "/3/0/7", "/3/0/8")}


# The Discover examples of the LwM2M Core specification (§5.4.1 in 1.1, with the depth query of
# 1.2), with the payloads as Anjay Lite's tests/anj/io/discover_payload.c spells them.
def test_discover_object() -> None:
    attrs = {
        Path.parse("/3"): Attributes(pmin=10),
        Path.parse("/3/0"): Attributes(pmax=60),
        Path.parse("/3/0/7"): Attributes(gt=50.0, lt=42.2),
    }
    text = discover_links(Path.parse("/3"), DEVICE_PATHS, dims=DEVICE_DIMS, attributes=attrs)
    assert text == (
        "</3>;pmin=10,</3/0>;pmax=60,</3/0/1>,</3/0/2>,</3/0/3>,</3/0/4>,</3/0/6>;dim=2,"
        "</3/0/7>;dim=2;gt=50;lt=42.2,</3/0/8>;dim=2,</3/0/11>,</3/0/16>"
    )


def test_discover_object_depth_1() -> None:
    paths = [Path.parse(p) for p in ("/1/0", "/1/0/1", "/1/4", "/1/4/1")]
    attrs = {Path.parse("/1/4"): Attributes(pmax=300)}
    assert discover_links(Path.parse("/1"), paths, attributes=attrs, depth=1) == (
        "</1>,</1/0>,</1/4>;pmax=300"
    )


def test_discover_instance() -> None:
    attrs = {
        Path.parse("/3/0"): Attributes(pmin=10, pmax=60),
        Path.parse("/3/0/7"): Attributes(gt=50.0, lt=42.2),
        Path.parse("/3/0/7/1"): Attributes(lt=45.0),
    }
    base = Path.parse("/3/0")
    assert discover_links(base, DEVICE_PATHS, dims=DEVICE_DIMS, attributes=attrs, depth=3) == (
        "</3/0>;pmin=10;pmax=60,</3/0/1>,</3/0/2>,</3/0/3>,</3/0/4>,</3/0/6>;dim=2,</3/0/6/0>,"
        "</3/0/6/3>,</3/0/7>;dim=2;gt=50;lt=42.2,</3/0/7/0>,</3/0/7/1>;lt=45,"
        "</3/0/8>;dim=2,</3/0/8/1>,</3/0/8/2>,</3/0/11>,</3/0/16>"
    )
    assert discover_links(base, DEVICE_PATHS, attributes=attrs, depth=0) == (
        "</3/0>;pmin=10;pmax=60"
    )
    # 1.1's default: the instance and its resources, without resource instances.
    assert discover_links(base, DEVICE_PATHS, dims=DEVICE_DIMS) == (
        "</3/0>,</3/0/1>,</3/0/2>,</3/0/3>,</3/0/4>,</3/0/6>;dim=2,</3/0/7>;dim=2,"
        "</3/0/8>;dim=2,</3/0/11>,</3/0/16>"
    )


def test_discover_resource() -> None:
    attrs = {
        Path.parse("/3/0/7"): Attributes(pmin=10, pmax=60, gt=50.0, lt=4.2e21),
        Path.parse("/3/0/7/1"): Attributes(lt=45.0),
    }
    text = discover_links(Path.parse("/3/0/7"), DEVICE_PATHS, dims=DEVICE_DIMS, attributes=attrs)
    assert text == "</3/0/7>;dim=2;pmin=10;pmax=60;gt=50;lt=4.2e+21,</3/0/7/0>,</3/0/7/1>;lt=45"


def test_discover_object_version() -> None:
    paths = [Path.parse("/1/0"), Path.parse("/1/0/1")]
    assert discover_links(Path.parse("/1"), paths, object_version="1.1") == (
        "</1>;ver=1.1,</1/0>,</1/0/1>"
    )


def test_discover_through_a_prefix_shows_none() -> None:
    # Gateway rule ([CL] GW-06); Anjay's gateway test answers </19/0>,</19/0/0>;dim=2 for a
    # Discover of /dev0/19/0.
    paths = [Path.parse(p) for p in ("/dev0/19/0", "/dev0/19/0/0", "/dev0/19/0/0/0", "/19/0/1")]
    dims = {Path.parse("/dev0/19/0/0"): 2}
    assert discover_links(Path.parse("/dev0/19/0"), paths, dims=dims) == "</19/0>,</19/0/0>;dim=2"


@pytest.mark.parametrize("base", ["/", "/3/0/7/1", "/dev0"])
def test_discover_needs_an_object_instance_or_resource(base: str) -> None:
    with pytest.raises(BadRequest):
        discover_links(Path.parse(base), [])


# -- attributes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (["pmin=10"], Attributes(pmin=10)),
        (["pmin=10", "pmax=60", "gt=20.5", "lt=-3", "st=0.5"], Attributes(10, 60, 20.5, -3.0, 0.5)),
        (["epmin=1", "epmax=0"], Attributes(epmin=1, epmax=0)),
        (["gt=1e3", "lt=.5", "st=+2."], Attributes(gt=1000.0, lt=0.5, st=2.0)),
        (["pmin", "gt"], Attributes(unset=frozenset({"pmin", "gt"}))),
        ([], Attributes()),
    ],
)
def test_parse_attributes(query: list[str], expected: Attributes) -> None:
    assert parse_attributes(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        ["dim=2"],  # read-only
        ["ver=1.1"],
        ["foo=1"],
        ["pmin=-1"],
        ["pmin=1.5"],
        ["pmin="],
        ["pmin=abc"],
        ["pmin=99999999999999999999"],
        ["pmin=\u0661"],  # a non-ASCII digit
        ["gt=abc"],
        ["gt=nan"],
        ["gt=inf"],
        ["gt=1e999"],
        ["gt=1_000"],
        ["gt= 1"],
        ["st=-1"],
        ["pmin=1", "pmin=2"],
        ["pmin=1", "pmin"],
        ["Pmin=1"],
    ],
)
def test_bad_attributes(query: list[str]) -> None:
    with pytest.raises(LwM2MError) as exc:
        parse_attributes(query)
    assert isinstance(exc.value, BadRequest)
    assert exc.value.code_text == "4.00"


def test_attributes_update() -> None:
    stored = Attributes(pmin=10, pmax=60, gt=5.0)
    change = parse_attributes(["pmax=120", "gt", "st=1"])
    assert stored.updated(change) == Attributes(pmin=10, pmax=120, st=1.0)
    assert format_attributes(change) == ["pmax=120", "gt", "st=1"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pmin": -1},
        {"pmax": True},
        {"gt": 1},
        {"st": -0.5},
        {"unset": frozenset({"dim"})},
        {"pmin": 1, "unset": frozenset({"pmin"})},
    ],
)
def test_attributes_check_themselves(kwargs: dict[str, object]) -> None:
    with pytest.raises(BadRequest):
        Attributes(**kwargs)  # type: ignore[arg-type]


integers = st.integers(0, 2**63 - 1)
finite = st.floats(allow_nan=False, allow_infinity=False)
attributes = st.builds(
    Attributes,
    pmin=st.none() | integers,
    pmax=st.none() | integers,
    gt=st.none() | finite,
    lt=st.none() | finite,
    st=st.none() | finite.map(abs),
    epmin=st.none() | integers,
    epmax=st.none() | integers,
)


@given(attributes, st.sets(st.sampled_from(ATTRIBUTE_NAMES)))
def test_attributes_roundtrip(attrs: Attributes, unset: set[str]) -> None:
    values = {n: getattr(attrs, n) for n in ATTRIBUTE_NAMES if n not in unset}
    attrs = Attributes(**values, unset=frozenset(unset))
    assert parse_attributes(format_attributes(attrs)) == attrs


@given(st.lists(st.text(max_size=12), max_size=4))
def test_arbitrary_queries_raise_only_bad_request(query: list[str]) -> None:
    try:
        parse_attributes(query)
    except BadRequest as e:
        assert e.code_text == "4.00"
