"""The Send operation's payload and decisions, without a network."""

from __future__ import annotations

import cbor2
import pytest
from aiocoap.numbers.codes import Code

from bridged.engine.send import (
    SendMuted,
    SendNotRegistered,
    SendRefused,
    SendStatus,
    SendUnsupported,
    check_allowed,
    encode_send,
    muted,
    outcome_of,
    whole_blocks,
)
from bridged.objects.builtin import builtin_definitions
from bridged.objects.errors import BadRequest, NotFound
from bridged.objects.formats import ContentFormat, codec_for
from bridged.objects.paths import ROOT, Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record

TEMPERATURE = Path.parse("/3303/0/5700")


@pytest.fixture
def tree() -> ObjectTree:
    tree = ObjectTree(builtin_definitions())
    tree.create_instance(1, 0, [(0, 1), (1, 300), (6, False), (7, "U")])
    tree.create_instance(3, 0, [(0, "ACME")])
    tree.create_instance(3303, 0, [(5700, 21.5)])
    return tree


def test_time_series_is_one_record_per_reading_with_its_time(tree: ObjectTree) -> None:
    records = [
        Record(TEMPERATURE, 21.5, 1_700_000_000.0),
        Record(TEMPERATURE, 21.75, 1_700_000_060.0),
        Record(Path.parse("/3/0/0"), "ACME"),
    ]
    pack = cbor2.loads(encode_send(records, tree))
    # A record without time: absolute times, no base time (see test_send_pack.py).
    assert pack == [
        {-2: "/3303/0/5700", 2: 21.5, 6: 1_700_000_000.0},
        {2: 21.75, 6: 1_700_000_060.0},
        {-2: "/3/0/0", 3: "ACME"},
    ]
    decoded = codec_for(ContentFormat.SENML_CBOR).decode(
        encode_send(records, tree), ROOT, tree.definitions
    )
    assert decoded == records


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "at least one record"),
        ([Record(Path.parse("/3303/0"), 1.0)], "name resources"),
        ([Record(Path.parse("/0/0/0"), "coap://x")], "bootstrap-only"),
        ([Record(Path.parse("/3/0/4"), "")], "not a readable resource"),
        ([Record(Path.parse("/3/0/11"), 0)], "takes resource instances"),
        ([Record(Path.parse("/3/0/0/1"), "x")], "takes a single value"),
        ([Record(TEMPERATURE, "warm")], "takes Float"),
    ],
)
def test_records_no_send_may_carry_are_refused(
    tree: ObjectTree, records: list[Record], message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        encode_send(records, tree)


def test_unknown_object_is_not_found(tree: ObjectTree) -> None:
    with pytest.raises(NotFound):
        encode_send([Record(Path.parse("/4242/0/1"), 1)], tree)


def test_mute_send_is_read_from_the_servers_instance(tree: ObjectTree) -> None:
    assert muted(tree, 0) is False, "absent /1/0/23 means not muted"
    tree.set(Path.parse("/1/0/23"), True)
    assert muted(tree, 0) is True
    assert muted(tree, 7) is False


@pytest.mark.parametrize(
    ("registered", "version", "is_muted", "error", "code"),
    [
        (False, "1.1", False, SendNotRegistered, "5.03"),
        (True, "1.0", False, SendUnsupported, "4.05"),
        (True, "1.1", True, SendMuted, "4.05"),
    ],
)
def test_refusals_say_why(
    registered: bool, version: str, is_muted: bool, error: type[SendRefused], code: str
) -> None:
    with pytest.raises(error) as caught:
        check_allowed(registered=registered, version=version, muted=is_muted, server="coap://s")
    assert caught.value.code_text == code
    assert "coap://s" in str(caught.value)


def test_registered_1_1_and_not_muted_may_send() -> None:
    check_allowed(registered=True, version="1.1", muted=False, server="coap://s")


def test_outcome_of_the_servers_answer() -> None:
    assert outcome_of(Code.CHANGED, b"", "s", 3).delivered
    again = outcome_of(Code.NOT_FOUND, b"", "s", 3)
    assert again.status is SendStatus.REGISTER_AGAIN and not again.delivered
    rejected = outcome_of(Code.INTERNAL_SERVER_ERROR, b"disk full", "s", 3)
    assert rejected.status is SendStatus.REJECTED
    assert rejected.detail == "5.00 Internal Server Error: disk full"


@pytest.mark.parametrize(
    ("size", "now"),
    [
        (900, 900),  # one message: all of it
        (2048, 2048),  # full blocks: all of it
        (1100, 1024),  # a last block of 76 bytes: left for the next Send
        (7700, 7168),  # a last block a fifteenth of the body: left out
        (1500, 1500),  # a last block a third of the body: it goes
    ],
)
def test_a_send_fills_its_block1_blocks_when_that_leaves_out_little(size: int, now: int) -> None:
    assert whole_blocks(size) == now
