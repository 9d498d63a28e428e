"""A Send's compact SenML CBOR pack, read back by a decoder written here from RFC 8428 alone.

The pack shares base names and base times (``bn``, ``bt``) between records, which any RFC 8428
reader resolves (§4.5: name = bn + n, time = bt + t, both inherited until changed). OMA LwM2M
1.1 Core §7.4.4 (SenML JSON) and §7.4.5 (SenML CBOR), §7.4.6 and §7.4.7 in 1.2, take SenML's
fields as they are, base fields included, and name each record's resource by the resolved name;
so a server reads this pack as it reads one with full names and absolute times. The decoder
below is plain cbor2 plus that resolution, not the project's codec, so that a mistake shared by
the encoder and the project's decoder does not hide.
"""

from __future__ import annotations

from decimal import Decimal
from unittest import mock

import cbor2
from hypothesis import given
from hypothesis import strategies as st

from bridged.engine.send import SendPack, send_payload
from bridged.objects.formats import ContentFormat, codec_for, senml_cbor
from bridged.objects.formats.senml import path_names
from bridged.objects.formats.senml_cbor import CompactEncoder
from bridged.objects.paths import ROOT, Path
from bridged.objects.values import ObjLnk, Record
from strategies import composite_reads, values_of

BN, BT, N, T = -2, -3, 0, 6
VALUE_LABELS = (2, 3, 4, 8, "vlo")  # v, vs, vb, vd (RFC 8428 §6) and LwM2M's object link

Resolved = tuple[str, object, float | None]


def resolve(payload: bytes) -> list[Resolved]:
    """RFC 8428 §4.5.3 resolution of a SenML CBOR pack: (name, value, time) per record."""
    bn, bt = "", None
    out: list[Resolved] = []
    for item in cbor2.loads(payload):
        bn = item.get(BN, bn)
        bt = item.get(BT, bt)
        t = item.get(T)
        time = (
            None if bt is None and t is None else (bt if t is None else t if bt is None else bt + t)
        )
        (label,) = [k for k in VALUE_LABELS if k in item]
        out.append((bn + item.get(N, ""), item[label], time))
    return out


def decimal_times(payload: bytes) -> list[Decimal | None]:
    """Each record's time as a reader that adds the numbers' shortest decimal forms resolves
    it (Leshan: its timestamps are BigDecimal sums, refused when finer than nanoseconds)."""
    bt: Decimal | None = None
    out: list[Decimal | None] = []
    for item in cbor2.loads(payload):
        if BT in item:
            bt = Decimal(repr(item[BT]))
        t = Decimal(repr(item[T])) if T in item else None
        out.append(bt if t is None else t if bt is None else bt + t)
    return out


def expected(records: list[Record]) -> list[Resolved]:
    """What the resolved records must be: the path, the value as SenML carries it, the time."""

    def wire(value: object) -> object:
        return str(value) if isinstance(value, ObjLnk) else value

    return [(str(r.path), wire(r.value), r.time) for r in records]


def same(got: list[Resolved], want: list[Resolved]) -> bool:
    """Equal, with equal types (an int time or value must not come back a float)."""
    return got == want and all(
        type(g) is type(w) or (g is None and w is None)
        for gr, wr in zip(got, want, strict=True)
        for g, w in zip(gr, wr, strict=True)
    )


NOW = 1_765_100_000.0


@st.composite
def batches(draw: st.DrawFn) -> tuple[object, list[Record]]:
    """A batch as delivery builds one: records of several objects, instances and prefixes,
    some paths many times over (a series), in any order, with times that are close together
    (a batch of live readings), far apart, integral, arbitrary, or partly missing."""
    read = draw(composite_reads(with_prefix=True))
    picks = draw(st.lists(st.sampled_from(read.records), min_size=1, max_size=40))
    definitions = read.definitions
    records = []
    for rec in picks:
        rdef = definitions.resource(rec.path.ids[0], rec.path.ids[2])
        records.append(Record(rec.path, draw(values_of(rdef.type))))
    kind = draw(st.sampled_from(["live", "integral", "any", "some missing", "none"]))
    times: list[float | None]
    if kind == "live":
        offsets = st.floats(min_value=0, max_value=10, allow_nan=False)
        times = [NOW + draw(offsets) * 1.000001 for _ in records]
    elif kind == "integral":
        times = [draw(st.integers(0, 2**40)) for _ in records]  # type: ignore[misc]
    elif kind == "any":
        any_time = st.one_of(
            st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**53), 2**53)
        )
        times = [draw(any_time) for _ in records]
    elif kind == "some missing":
        times = [draw(st.one_of(st.none(), st.floats(1e9, 2e9))) for _ in records]
    else:
        times = [None] * len(records)
    return definitions, [Record(r.path, r.value, t) for r, t in zip(records, times, strict=True)]


@given(batch=batches(), data=st.data())
def test_a_leading_run_is_a_pack_of_its_own(
    batch: tuple[object, list[Record]], data: st.DataObject
) -> None:
    """Delivery measures a batch at several lengths from one encoding (``SendPack``): each
    leading run's payload holds exactly its records."""
    _, records = batch
    count = data.draw(st.integers(1, len(records)))
    pack = SendPack(path_names(records), records)
    assert same(resolve(pack.payload(count)), expected(records[:count]))


@given(batch=batches(), data=st.data())
def test_a_pack_is_the_bytes_cbor2_writes_for_it(
    batch: tuple[object, list[Record]], data: st.DataObject
) -> None:
    """The pack is built record by record with no cbor2 call per record (``CompactEncoder``):
    its bytes are exactly cbor2's for the same maps, and a leading run's size is measured
    without building it."""
    _, records = batch
    pack = SendPack(path_names(records), records)
    count = data.draw(st.integers(1, len(records)))
    payload = pack.payload(count)
    assert cbor2.dumps(cbor2.loads(payload)) == payload
    assert pack.size(count) == len(payload)


@given(batch=batches())
def test_every_record_comes_back_exactly(batch: tuple[object, list[Record]]) -> None:
    definitions, records = batch
    payload = send_payload(records)
    assert same(resolve(payload), expected(records))
    want = [None if r.time is None else Decimal(repr(r.time)) for r in records]
    assert decimal_times(payload) == want
    # The project's own decoder (the in-repo server's and the gateway's) agrees.
    decoded = codec_for(ContentFormat.SENML_CBOR).decode(payload, ROOT, definitions)  # type: ignore[arg-type]
    assert [(r.path, r.value) for r in decoded] == [(r.path, r.value) for r in records]
    assert [d.time for d in decoded] == [r.time for r in records]


@given(runs=st.lists(batches(), min_size=2, max_size=6), limit=st.integers(1, 40))
def test_an_encoder_kept_across_packs_writes_what_a_new_one_writes(
    runs: list[tuple[object, list[Record]]], limit: int
) -> None:
    """Delivery keeps one ``CompactEncoder`` (and each name's encoding under each base name)
    from one batch to the next: a pack's bytes are the same as from an encoder that never saw
    another pack, also where the encoder let go of what it kept (``NAMES_LIMIT``, made small
    here) in the middle of a pack, and with the same name strings batch after batch."""
    kept = CompactEncoder()
    texts: dict[Path, str] = {}
    with mock.patch.object(senml_cbor, "NAMES_LIMIT", limit):
        for _, records in runs:
            names = [texts.setdefault(r.path, str(r.path)) for r in records]
            again = kept.records(names, records)
            assert again == CompactEncoder().records(path_names(records), records)
            assert SendPack(names, records, kept).payload(len(records)) == send_payload(records)


def test_a_reading_with_a_clock_time_is_its_name_its_time_and_its_value() -> None:
    """The common record, written from its name's kept encoding and one write of two floats
    (``CompactEncoder``), byte by byte: a map of 3, ``n`` "7/5700", ``bt`` and ``v`` as
    9-byte floats; the first record also sets ``bn``."""
    records = [
        Record(Path((3303, 6, 5700)), 20.5, NOW),
        Record(Path((3303, 7, 5700)), -1.25, NOW + 0.25),
    ]
    first, second = CompactEncoder().records([str(r.path) for r in records], records)
    assert second == bytes.fromhex(
        "a3 00 66 372f35373030 22 fb 41da4d5278100000 02 fb bff4000000000000"
    )
    assert first == cbor2.dumps({BN: "/3303/", N: "6/5700", BT: NOW, 2: 20.5})


@given(
    base=st.one_of(
        st.integers(-(2**62), 2**62),
        st.integers(2**53 - 2**32, 2**53 + 2**32),
        st.integers(-(2**53) - 2**32, -(2**53) + 2**32),
    ),
    steps=st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=8),
)
def test_a_float_clock_whole_seconds_apart_is_relative_in_decimal_too(
    base: int, steps: list[int]
) -> None:
    """A node's clock in whole seconds, as floats: ``relative`` skips the decimal check for
    them (``senml._whole``), so each time a reader gets back by adding the numbers' shortest
    decimal forms is checked here, about 2**53 too, as a Leshan server adds them."""
    times = [float(base + s) for s in [0, *steps]]
    records = [Record(Path((3303, 0, 5700)), 21.5, t) for t in times]
    payload = send_payload(records)
    assert decimal_times(payload) == [Decimal(repr(t)) for t in times]
    assert same(resolve(payload), expected(records))


def temperatures(nodes: int, per_node: int) -> list[Record]:
    """A typical batch: ``nodes`` nodes' temperatures in the instances mode, round robin, each
    value with two decimals and its own time, a few milliseconds apart."""
    return [
        Record(
            Path((3303, k % nodes, 5700)),
            round(15 + (k * 7.31) % 15, 2),
            NOW + 0.123457 + k * 0.00731,
        )
        for k in range(nodes * per_node)
    ]


def full_names_and_times(records: list[Record]) -> bytes:
    """The same records with full names and absolute times: the pack a Send carried before."""
    return cbor2.dumps([{N: str(r.path), 2: r.value, T: r.time} for r in records])


def test_typical_batch_shares_names_and_times() -> None:
    records = temperatures(100, 1)
    payload = send_payload(records)
    items = cbor2.loads(payload)
    assert items[0] == {BN: "/3303/", BT: records[0].time, N: "0/5700", 2: records[0].value}
    # time.time() floats are not whole seconds apart: each sets its own bt
    assert items[1].keys() == {N, 2, BT} and items[1][N] == "1/5700"
    assert len(payload) < 0.85 * len(full_names_and_times(records))  # 30 bytes a record, not 36
    assert same(resolve(payload), expected(records))


def test_times_whole_seconds_apart_are_relative() -> None:
    """Times a whole number of seconds apart (a node's clock) travel as small integers after
    one base time; the decimal and the binary sums both give each time back."""
    records = [Record(Path((3303, k % 3, 5700)), 21.5, NOW + 0.5 + 3 * k) for k in range(6)]
    items = cbor2.loads(send_payload(records))
    assert [i.get(T) for i in items] == [None, 3, 6, 9, 12, 15]
    assert [BT in i for i in items] == [True] + [False] * 5
    assert same(resolve(send_payload(records)), expected(records))


def test_series_of_one_resource_names_it_once() -> None:
    records = [Record(Path((3303, 0, 5700)), 20 + k / 4, NOW + k) for k in range(256)]
    payload = send_payload(records)
    items = cbor2.loads(payload)
    assert items[0] == {BN: "/3303/0/5700", BT: NOW, 2: 20.0}
    assert all(BN not in i and N not in i for i in items[1:])
    assert len(payload) < 0.45 * len(full_names_and_times(records))  # 14 bytes a record, not 35
    assert same(resolve(payload), expected(records))


def test_base_name_moves_to_a_longer_prefix_a_run_shares() -> None:
    """Interleaved nodes share "/3303/"; a run of one node's readings then takes its full path."""
    a, b, c = (Path((3303, i, 5700)) for i in range(3))
    records = [Record(p, 1.5, NOW) for p in (a, b, c, c, c, c, a)]
    items = cbor2.loads(send_payload(records))
    assert [(i.get(BN), i.get(N)) for i in items] == [
        ("/3303/", "0/5700"),
        (None, "1/5700"),
        ("/3303/2/5700", None),
        (None, None),
        (None, None),
        (None, None),
        ("/3303/0/5700", None),
    ]


def test_a_record_without_time_keeps_times_absolute() -> None:
    """An inherited ``bt`` would give a record without time one: such a pack has no ``bt``."""
    records = [
        Record(Path((3303, 0, 5700)), 21.5, NOW),
        Record(Path((3, 0, 0)), "ACME"),
        Record(Path((3303, 0, 5700)), 21.75, NOW + 60),
    ]
    items = cbor2.loads(send_payload(records))
    assert all(BT not in i for i in items)
    assert same(resolve(send_payload(records)), expected(records))
