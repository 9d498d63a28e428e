"""The three exposure modes against Eclipse Leshan 2.0.0-M4, with the real daemon and the
simulated transport's nodes: what Leshan sees of the nodes, and a value a node measured going
up (Read, Observe, Send) and a Write from Leshan going down to the node.

* instances: the node's objects are instances of the gateway's; Leshan reads, observes and
  receives by Send the node's temperature, and its Write of the node's switch reaches the node:
  the node's own next reports (Sent to Leshan) carry the new state.
* endpoints: every node is a LwM2M client of its own (``<gateway>:<node id>``) with its /3;
  Leshan lists it, reads its /3/0 (17 Device Type is the node's name), reads, observes and
  writes its resources, takes its Sends, and sees it de-register when it is unpaired.
* gateway: Leshan 2.0.0-M4 implements LwM2M 1.1 and not the LwM2M Gateway (/25, prefixed
  paths): it reads /25 (with the object definition the driver gives it) and learns the end
  devices there (but not 3 IoT Device Objects: M4 decodes no Corelnk value), and cannot address
  ``/dev0/...``: its API refuses such a path.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from integration.test_daemon import Daemon

from peers.leshan import Event, EventStream, Leshan, LeshanFailed, leshan_events
from peers.leshan_gateway import link_urls, registered_daemon
from peers.lwm2m_server import SenMLRecord, decode_senml_cbor

pytest_plugins = ["peers.fixtures"]

NODE = "sim:0001"
OTHER = "sim:0002"
SWITCH = "/3311/0/5850"
TEMPERATURE = "/3303/0/5700"


events = leshan_events()


def is_send(data: dict[str, Any]) -> bool:
    return bool(data["incoming"]) and data["code"] == "POST" and '"dp"' in data["options"]


def sent_records(send: Event) -> tuple[SenMLRecord, ...]:
    """The SenML CBOR records of a Send, names and times resolved from its base fields."""
    payload = str(send.data["payload"])
    assert payload.startswith("Hex:"), payload
    return decode_senml_cbor(bytes.fromhex(payload[4:]))


async def sent(coap: EventStream, path: str, *, value: Any = None, after: float = 0.0) -> float:
    """Wait for a Send carrying ``path`` (with ``value``, measured after ``after``) that Leshan
    answers 2.04; the value it carried."""
    while True:
        send = await coap.next("COAPLOG", match=is_send)
        found = [
            r
            for r in sent_records(send)
            if r.name == path and (value is None or r.value == value) and (r.time or 0) >= after
        ]
        if found:
            break
    answer = await coap.next(
        "COAPLOG", match=lambda d: not d["incoming"] and d["mId"] == send.data["mId"]
    )
    assert answer.data["code"] == "2.04", answer.data
    return found[-1].value


async def read_observe_send_write(
    leshan: Leshan, events: EventStream, daemon: Daemon, ep: str, temperature: str, switch: str
) -> None:
    """A node's temperature read (TLV), observed (a notification), sent (a Send Leshan takes);
    Leshan's Write of the node's switch reaches the node: reading it asks the node, and the
    node's own later reports, sent up, carry the new state."""
    value = (await leshan.read(ep, temperature, "TLV")).value
    assert isinstance(value, float) and 17.9 <= value <= 24.1
    assert (await leshan.write_attributes(ep, temperature, pmin=0, pmax=1)).code == "2.04"
    assert (await leshan.observe(ep, temperature, "TLV")).code == "2.05"
    note = await events.next("NOTIFICATION", endpoint=ep, match=lambda d: d["res"] == temperature)
    assert isinstance(note.data["val"]["value"], float)
    async with leshan.trace(ep) as coap:
        assert isinstance(await sent(coap, temperature), float)
        written_at = time.time()
        assert (await leshan.write_value(ep, switch, True, "TLV")).code == "2.04"
        assert (await leshan.read(ep, switch, "TLV")).value is True
        await sent(coap, switch, value=True, after=written_at)
    await leshan.cancel_observe(ep, temperature)


async def test_instances_mode_a_node_value_up_and_a_write_down(
    tmp_path: Path, leshan: Leshan, events: EventStream
) -> None:
    """instances: the node's readings at its gateway instances, both ways (see the module)."""
    ep = "gw-leshan-instances"
    async with registered_daemon(tmp_path, leshan, events, ep) as (daemon, _):
        await daemon.call("pair", node=NODE, name="porch")
        update = await events.next("UPDATED", endpoint=ep)
        temperature = await daemon.upstream(NODE, TEMPERATURE)
        switch = await daemon.upstream(NODE, SWITCH)
        assert {temperature.rsplit("/", 1)[0], switch.rsplit("/", 1)[0]} <= link_urls(update)
        await read_observe_send_write(leshan, events, daemon, ep, temperature, switch)


async def test_endpoints_mode_every_node_is_a_client(
    tmp_path: Path, leshan: Leshan, events: EventStream
) -> None:
    """endpoints: each paired node registers as ``<gateway>:<node>`` with its /3; Leshan reads
    its Device object, and the node's values go both ways through its own registration."""
    ep = "gw-leshan-endpoints"
    async with registered_daemon(tmp_path, leshan, events, ep, exposure="endpoints") as (
        daemon,
        registration,
    ):
        assert "/3/0" in link_urls(registration)
        await daemon.call("pair", node=NODE, name="porch")
        await daemon.call("pair", node=OTHER, name="cellar")
        nodes = {f"{ep}:{NODE}": "porch", f"{ep}:{OTHER}": "cellar"}
        for _ in nodes:
            node_registration = await events.next(
                "REGISTRATION", match=lambda d: d["endpoint"] in nodes
            )
            assert {"/3/0", "/3303/0", "/3311/0"} <= link_urls(node_registration)
        listed = {c["endpoint"] for c in await leshan.clients()}
        assert {ep, *nodes} <= listed
        for node_ep, name in nodes.items():
            device = await leshan.read(node_ep, "/3/0", "TLV")
            assert device.code == "2.05", device.raw
            assert device.resources()[17] == name
        node_ep = f"{ep}:{NODE}"
        await read_observe_send_write(leshan, events, daemon, node_ep, TEMPERATURE, SWITCH)
        await daemon.call("unpair", node=OTHER)
        gone = await events.next("DEREGISTRATION", endpoint=f"{ep}:{OTHER}")
        assert gone.data["endpoint"] == f"{ep}:{OTHER}"


async def test_gateway_mode_leshan_reads_25_and_cannot_address_end_devices(
    tmp_path: Path, leshan: Leshan, events: EventStream
) -> None:
    """gateway: the Register carries /25 and the gateway's objects, no node objects; Leshan
    reads the node's /25 instance (0 Device ID, 1 Prefix, 3 its objects); a prefixed path is
    refused by Leshan M4 itself (it has no LwM2M Gateway support), so nothing reaches the
    gateway."""
    ep = "gw-leshan-gatewaymode"
    async with registered_daemon(tmp_path, leshan, events, ep, exposure="gateway") as (
        daemon,
        registration,
    ):
        await daemon.call("pair", node=NODE, name="porch")
        update = await events.next("UPDATED", endpoint=ep)
        urls = link_urls(update)
        assert "/25/0" in urls and not any(url.startswith("/3303") for url in urls)
        # Leshan M4 decodes no Corelnk value (3 IoT Device Objects) in any format ("Unsupported
        # type CORELINK"), so the instance is read resource by resource.
        assert (await leshan.read(ep, "/25/0/0", "TLV")).value == NODE
        assert (await leshan.read(ep, "/25/0/1", "TLV")).value == "dev0"
        for fmt in ("TLV", "TEXT", "SENML_CBOR"):
            with pytest.raises(LeshanFailed, match="HTTP 500"):
                await leshan.read(ep, "/25/0/3", fmt)
        with pytest.raises(LeshanFailed, match="Invalid elements in path"):
            await leshan.read(ep, f"/dev0{TEMPERATURE}", "TLV")
        assert registration.data["lwM2mVersion"] == "1.1"
