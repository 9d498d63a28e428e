"""Driving ``Delivery`` through bursts of stored readings, for its property tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from bridged.delivery import Delivery, DeliveryConfig, consumer_name
from bridged.objects.formats.senml_cbor import CODEC as SENML_CBOR
from bridged.objects.paths import ROOT
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.store.readings import ReadingStore, Row


def sent_records(payload: bytes, count: int, tree: ObjectTree) -> list[Record]:
    """What a server reads in a Send's ``payload`` of ``count`` records (the SenML CBOR
    decoder's records, each resolved from the pack's base names and times), as a stand-in
    session takes it from ``Delivery``: the records it must carry, at the session's paths."""
    records = SENML_CBOR.decode(payload, ROOT, tree.definitions)
    assert len(records) == count
    return records


def quick_config(**bounds: Any) -> DeliveryConfig:
    """No linger, and retries (capped) and polls in milliseconds: a property test runs many
    examples, some with 30 % of Sends failing."""
    return DeliveryConfig(linger=0, retry=0.001, max_retry=0.004, poll=0.001, **bounds)


def feed(
    delivery: Delivery,
    store: ReadingStore,
    sizes: Sequence[int],
    burst: Callable[[int], list[Row]],
) -> list[Row]:
    """Run ``delivery`` while a ``burst(size)`` of readings is stored for each of ``sizes``,
    until server 1's cursor has passed them all; returns them in store order."""
    stored: list[Row] = []

    async def run() -> None:
        await delivery.start()
        for size in sizes:
            readings = burst(size)
            store.append(readings)
            stored.extend(readings)
            delivery.notify()
            await asyncio.sleep(0)
        async with asyncio.timeout(30):
            while store.pending(consumer_name(1)):
                await asyncio.sleep(0.001)
        await delivery.stop()

    asyncio.run(run())
    return stored
