"""An 802.15.4 node as the gateway sees it on the air: a constrained LwM2M client over CoAP.

Real nodes run Contiki-NG, RIOT or Zephyr; the emulated one is built from this project's own
LwM2M engine pieces (object tree, device management, observations, registrar), so it registers,
answers reads, writes and executes, notifies and sends the way a compliant client does, over
whatever datagram link it is given: a direct in-process link (``DirectLink``) in the node-server
tests, or the air of the RCP emulator (``RadioAir``: real 802.15.4 frames through 6LoWPAN) in
the transport tests.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
from collections.abc import Callable
from typing import Any, cast

import aiocoap
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption
from aiocoap.pipe import Pipe

from bridged.engine.coap import append_message_interface
from bridged.engine.dm import DeviceManagement, DeviceManagementResource
from bridged.engine.observe import Observations
from bridged.engine.registration import (
    Registrar,
    RegistrationEvent,
    RegistrationParams,
    RetryPolicy,
    ServerTarget,
)
from bridged.objects.builtin import builtin_definitions
from bridged.objects.errors import MethodNotAllowed
from bridged.objects.formats import ContentFormat, codec_for
from bridged.objects.linkformat import registration_links
from bridged.objects.paths import ROOT, Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.transports.firmware import MCUBOOT_HEADER, MCUBOOT_MAGIC
from bridged.transports.ieee802154.coap_link import (
    LowpanAddress,
    LowpanMessageInterface,
    SendDatagram,
    create_link_context,
)
from bridged.transports.ieee802154.errors import RadioDecodeError
from bridged.transports.ieee802154.link import LowpanLink
from bridged.transports.ieee802154.link_security import (
    FrameCounter,
    LinkSecurity,
    SecuritySettings,
)
from bridged.transports.ieee802154.lowpan import UdpDatagram, link_local, mac_from_address
from bridged.transports.ieee802154.mac import parse_frame

from .mcuboot import verified, version_of

TEMPERATURE = Path((3303, 0, 5700))
SWITCH = Path((3311, 0, 5850))
FIRMWARE_VERSION = Path((3, 0, 3))
FIRST_VERSION = "1.0.0+0"
PACKAGE, PACKAGE_URI, STATE, RESULT = (Path((5, 0, rid)) for rid in (0, 1, 3, 5))
IDLE, DOWNLOADING, DOWNLOADED, UPDATING = 0, 1, 2, 3
SUCCESS, CONNECTION_LOST, INTEGRITY_FAILURE, UNSUPPORTED_PACKAGE, INVALID_URI = 1, 4, 5, 6, 7


class EmulatedNode:
    """One node: a temperature (/3303/0), a switch (/3311/0/5850, writable), /3 Device, and
    /5 Firmware Update as a node running MCUboot has it: it takes a package pushed to /5/0/0
    (Block1) or pulls the one at the coap:// URI written to /5/0/1 (Block2, through its own
    CoAP context: over the air), refuses one that is no MCUboot image (Update Result 6, as a
    node judges its own package type), and on Execute /5/0/2 checks it as MCUboot does (the
    trailer's SHA-256: Update Result 5 if it does not match), "reboots" into it (/3/0/3 its
    version) and registers again. ``firmware_delivery`` is its /5/0/9 (0 pull, 1 push, 2 both).
    With ``rollback`` MCUboot reverts the new image (one that never confirmed itself) and
    boots the old one: the node said Success before it rebooted, and registers again running
    what it ran, its /3/0/3 unchanged.
    """

    def __init__(
        self,
        eui64: bytes,
        name: str,
        *,
        sleepy: bool = False,
        lifetime: int = 300,
        version: str = "1.1",
        retry: RetryPolicy | None = None,
        short: bytes | None = None,
        port: int = 5683,
        server_port: int = 5683,
        firmware_delivery: int = 2,
        rollback: bool = False,
        block_size_exp: int | None = None,
    ) -> None:
        self.eui64 = eui64
        self.short = short
        #: The MAC address it sends from: its EUI-64, or its 16-bit short address if it has one.
        self.mac = short or eui64
        #: Its own UDP port, and the port of the LwM2M server URI it was given.
        self.port, self.server_port = port, server_port
        self.name = name
        self.ip = link_local(self.mac)
        self.sleepy = sleepy
        self.rollback = rollback
        self.lifetime = lifetime
        self.version = version
        self.retry = retry or RetryPolicy(
            count=50, timer=0.2, sequence_delay=1.0, sequence_count=100
        )
        #: Every registration event, in order (a refused Register is a REGISTRATION_FAILURE).
        self.events: list[RegistrationEvent] = []
        self.tree = ObjectTree(builtin_definitions())
        self.tree.create_instance(
            3, 0, [(0, "Emulated"), (1, "node"), (16, "UQ" if sleepy else "U")]
        )
        self.tree.create_instance(3303, 0, [(5700, 21.0), (5701, "Cel")])
        self.tree.create_instance(3311, 0, [(5850, False)])
        self.tree.set(FIRMWARE_VERSION, FIRST_VERSION)
        self.tree.create_instance(
            5, 0, [(1, ""), (3, IDLE), (5, 0), (8, {0: 0}), (9, firmware_delivery)]
        )
        self.tree.subscribe(self._firmware_written)
        self.tree.on_execute(5, 2, self._firmware_update)
        #: The package it downloaded, and the image it runs once updated.
        self.package = b""
        self.firmware = b""
        #: Every /5/0/3 State it went through, in order.
        self.firmware_states: list[int] = [IDLE]
        self._fetch: asyncio.Task[None] | None = None
        self.dm = DeviceManagement(self.tree)
        self.observations = Observations(self.dm)
        #: With ``block_size_exp``, the largest payload it sends is one block (``SmallBlocks``);
        #: ``between_blocks`` is called soon after each first block it sends.
        self.block_size_exp = block_size_exp
        self.between_blocks: Callable[[], None] | None = None
        #: The block of each GET it answered there (0 for a GET that named none), in order.
        self.blocks_asked: list[int] = []
        self.context: aiocoap.Context | None = None
        self.interface: LowpanMessageInterface | None = None
        self.registrar: Registrar | None = None
        self._task: asyncio.Task[None] | None = None
        self.registered = asyncio.Event()
        #: Every notification the node sent, in order.
        self.notifications: list[aiocoap.Message] = []

    async def start(self, send: SendDatagram, gateway_ip: bytes) -> None:
        def sending(remote: LowpanAddress, data: bytes) -> None:
            message = aiocoap.Message.decode(data)
            if message.code.is_successful() and message.opt.observe is not None:
                self.notifications.append(message)
            send(remote, data)

        site = (
            DeviceManagementResource(self.dm, self.observations)
            if self.block_size_exp is None
            else SmallBlocks(self, self.block_size_exp)
        )
        self.context, self.interface = await create_link_context(
            site,
            sending,
            self.ip,
            self.port,
            append_message_interface,
        )
        host = LowpanAddress(self.interface, gateway_ip, self.server_port).hostinfo
        target = ServerTarget(
            uri=f"coap://{host}",
            version=self.version,
            request_timeout=5.0,
            retry=self.retry,
        )

        def on_event(event: RegistrationEvent) -> None:
            self.events.append(event)
            if self.registrar is not None and self.registrar.registered:
                self.registered.set()

        self.registrar = Registrar(self.context, target, self, on_event, endpoint=self.name)
        self._task = asyncio.create_task(self.registrar.run())

    def params(self) -> RegistrationParams:
        """What its registration carries now (the registrar's ``Registrant``)."""
        links = registration_links(list(self.tree.objects()), version=self.version)
        return RegistrationParams(self.lifetime, "U", self.sleepy, links)

    def answered(self) -> None:
        pass

    def received(self, ip: bytes, port: int, payload: bytes) -> None:
        if self.interface is not None:
            self.interface.received(ip, port, payload)

    async def send(self, records: list[Record]) -> aiocoap.Message:
        """LwM2M Send of ``records`` to the gateway (``POST /dp``, SenML CBOR). A 4.04 says
        the gateway does not know the node: it registers again, as a LwM2M client does."""
        assert self.registrar is not None
        payload = codec_for(ContentFormat.SENML_CBOR).encode(records, ROOT, self.tree.definitions)
        message = aiocoap.Message(
            code=Code.POST,
            uri=self.registrar.uri("dp"),
            payload=payload,
            content_format=ContentFormat.SENML_CBOR,
        )
        response = await self.registrar.exchange(message)
        if response.code == Code.NOT_FOUND:
            self.registrar.register_again()
        return response

    async def measure(self, value: float, at: float) -> aiocoap.Message:
        """The sensor measures ``value`` at ``at``, as a node that reports by Send does: the
        value changes in its tree (its observers are notified) and it Sends it with its time."""
        self.tree.set(TEMPERATURE, value)
        return await self.send([Record(TEMPERATURE, value, at)])

    async def update(self) -> None:
        """Talk to the gateway now (a sleepy node waking up)."""
        assert self.registrar is not None
        self.registrar.trigger_update()

    # -- /5 Firmware Update -----------------------------------------------------------------

    def _firmware_state(self, state: int, result: int | None = None) -> None:
        if result is not None:
            self.tree.set(RESULT, result)
        self.tree.set(STATE, state)
        self.firmware_states.append(state)

    def _firmware_written(self, path: Path) -> None:
        """A server wrote /5/0/0 or /5/0/1 (the node sets neither itself)."""
        if path == PACKAGE:
            value = self.tree.get(PACKAGE)
            assert isinstance(value, bytes)
            if value in (b"", b"\0"):
                self._firmware_state(IDLE, 0)
                return
            self._firmware_state(DOWNLOADING, 0)
            self._downloaded(value)
        elif path == PACKAGE_URI:
            uri = self.tree.get(PACKAGE_URI)
            assert isinstance(uri, str)
            if self._fetch is not None:
                self._fetch.cancel()
            if not uri:
                self._firmware_state(IDLE, 0)
                return
            self._firmware_state(DOWNLOADING, 0)
            self._fetch = asyncio.get_running_loop().create_task(self._pull(uri))

    async def _pull(self, uri: str) -> None:
        """GET ``uri`` from the node's own context: aiocoap asks block after block (Block2)."""
        assert self.context is not None
        try:
            response = await self.context.request(aiocoap.Message(code=Code.GET, uri=uri)).response
        except Exception:
            self._firmware_state(IDLE, CONNECTION_LOST)
            return
        if not response.code.is_successful():
            self._firmware_state(IDLE, INVALID_URI)
            return
        self._downloaded(response.payload)

    def _downloaded(self, package: bytes) -> None:
        """Keep ``package`` if it is an MCUboot image (Downloaded), else Idle with 6."""
        if MCUBOOT_HEADER.unpack_from(package.ljust(MCUBOOT_HEADER.size))[0] != MCUBOOT_MAGIC:
            self._firmware_state(IDLE, UNSUPPORTED_PACKAGE)
            return
        self.package = package
        self._firmware_state(DOWNLOADED)

    def _firmware_update(self, path: Path, arguments: str) -> None:
        if self.tree.get(STATE) != DOWNLOADED:
            raise MethodNotAllowed("Update needs a downloaded package")
        self._firmware_state(UPDATING, 0)
        asyncio.get_running_loop().call_soon(self._reboot)

    def _reboot(self) -> None:
        """MCUboot checks the new image and boots it (or keeps the old one), then the node
        registers again with what it runs."""
        if not verified(self.package):
            self._firmware_state(IDLE, INTEGRITY_FAILURE)
            return
        if not self.rollback:
            self.firmware = self.package
            self.tree.set(FIRMWARE_VERSION, version_of(self.firmware))
        self._firmware_state(IDLE, SUCCESS)
        if self.registrar is not None:
            self.registrar.register_again()

    async def stop(self, *, deregister: bool = True) -> None:
        """De-register (unless told not to) and close; a second call does nothing."""
        if self.context is None:
            return
        if self.registrar is not None and deregister:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.registrar.deregister(), 5)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._fetch is not None:
            self._fetch.cancel()
        await self.observations.close()
        context, self.context = self.context, None
        await context.shutdown()


class SmallBlocks(DeviceManagementResource):
    """The site of a node whose CoAP stack sends no payload longer than one block of
    ``2 ** (size_exp + 4)`` bytes, as a constrained node on 6LoWPAN does. A longer response or
    notification goes as its first block (Block2, RFC 7959 §3.4 for a notification) with the
    ETag of its representation; a GET for a later block is answered from the node's state at
    that moment, since such a node keeps no copy of what it sent: the ETag is what tells the
    client that the representation changed between two blocks (RFC 7959 §2.4)."""

    def __init__(self, node: EmulatedNode, size_exp: int) -> None:
        super().__init__(node.dm, node.observations)
        self.node = node
        self.size_exp = size_exp

    def answer_now(self, request: aiocoap.Message) -> None:
        """Every request goes through ``render_to_pipe``, where the blocks are cut."""
        return None

    async def render_to_pipe(self, pipe: Pipe) -> None:
        request = pipe.request
        block2 = request.opt.block2
        if request.code == Code.GET and request.opt.observe is None:
            self.node.blocks_asked.append(0 if block2 is None else block2.block_number)
        if request.code == Code.GET and block2 is not None and request.opt.observe is None:
            current = await self.render(request)
            pipe.add_response(
                self._block(current, block2.block_number, min(block2.size_exponent, self.size_exp)),
                is_last=True,
            )
            return
        await super().render_to_pipe(cast(Pipe, _FirstBlocks(pipe, self)))

    def first_block(self, response: aiocoap.Message) -> aiocoap.Message:
        """``response`` as this node sends it unasked for a block: whole, or its first block."""
        if len(response.payload) <= 1 << (self.size_exp + 4):
            return response
        block = self._block(response, 0, self.size_exp)
        if self.node.between_blocks is not None:
            asyncio.get_running_loop().call_soon(self.node.between_blocks)
        return block

    @staticmethod
    def _block(response: aiocoap.Message, number: int, size_exp: int) -> aiocoap.Message:
        if not response.code.is_successful():
            return response
        size = 1 << (size_exp + 4)
        start = number * size
        if start >= max(len(response.payload), 1):
            return aiocoap.Message(code=Code.BAD_OPTION, payload=b"no such block")
        return response.copy(
            payload=response.payload[start : start + size],
            block2=BlockOption.BlockwiseTuple(
                number, start + size < len(response.payload), size_exp
            ),
            etag=hashlib.sha256(response.payload).digest()[:8],
        )


class _FirstBlocks:
    """A pipe that hands on each response as ``SmallBlocks`` sends it unasked for a block."""

    def __init__(self, pipe: Pipe, site: SmallBlocks) -> None:
        self._pipe = pipe
        self._site = site
        self.request = pipe.request

    def add_response(self, response: aiocoap.Message, is_last: bool) -> None:
        self._pipe.add_response(self._site.first_block(response), is_last=is_last)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)


class DirectLink:
    """The air between the gateway and emulated nodes, without a radio: datagrams are handed
    over on the next loop iteration; ``drop`` decides which are lost."""

    def __init__(self, gateway_ip: bytes) -> None:
        self.gateway_ip = gateway_ip
        self.gateway: LowpanMessageInterface | None = None
        self.nodes: dict[bytes, EmulatedNode] = {}
        self.drop: Callable[[bytes, bytes], bool] = lambda src, data: False

    def to_node(self, remote: LowpanAddress, data: bytes) -> None:
        node = self.nodes.get(remote.ip)
        if node is not None and not self.drop(self.gateway_ip, data):
            asyncio.get_running_loop().call_soon(node.received, self.gateway_ip, 5683, data)

    def from_node(self, node: EmulatedNode) -> SendDatagram:
        def send(remote: LowpanAddress, data: bytes) -> None:
            if self.gateway is not None and not self.drop(node.ip, data):
                asyncio.get_running_loop().call_soon(
                    self.gateway.received, node.ip, 5683, data, None if node.short else node.eui64
                )

        return send


class RadioAir:
    """Emulated nodes on the air of an RCP emulator (tests/emulators/rcp.py).

    A frame the gateway transmits reaches the node it is addressed to (or every node, for a
    broadcast) through that node's own 6LoWPAN link; what a node sends is compressed, fragmented
    and injected as frames heard by the dongle. ``drop(psdu)`` decides which frames are lost on
    the way, in either direction.

    Link-layer security: a node added with a ``key`` secures its frames with it (the settings of
    ``security``: level 5, key identifier mode 1, index 1, as the gateway's defaults, and the
    network key if they have one) and takes only frames of the gateway secured with it, its
    counters checked as the gateway checks them. What reached each node is kept: ``opened`` counts
    the secured frames it opened, ``plain`` the frames it took in the clear, ``refused`` the
    frames its link refused (with the error); ``injected`` is every PSDU it put on the air.
    """

    def __init__(self, rcp: Any, pan_id: int, *, security: SecuritySettings | None = None) -> None:
        self.rcp = rcp
        self.pan_id = pan_id
        self.security = security or SecuritySettings()
        self.nodes: dict[bytes, tuple[EmulatedNode, LowpanLink]] = {}
        self.drop: Callable[[bytes], bool] = lambda psdu: False
        self.opened: collections.Counter[bytes] = collections.Counter()
        self.plain: collections.Counter[bytes] = collections.Counter()
        self.refused: dict[bytes, list[RadioDecodeError]] = collections.defaultdict(list)
        self.injected: dict[bytes, list[bytes]] = collections.defaultdict(list)
        self.quality: dict[bytes, tuple[int, int]] = {}
        """The RSSI (dBm) and LQI the dongle hears each node at, by its MAC (the emulator's
        defaults otherwise): a link that degrades."""
        rcp.on_transmit = self._on_air

    async def add(self, node: EmulatedNode, *, key: bytes | None = None) -> None:
        security = LinkSecurity(self.security, FrameCounter())
        if key is not None:
            security.pair(self.rcp.eui64, key)
        link = LowpanLink(security=security)
        self.nodes[node.mac] = (node, link)
        await node.start(self._sender(node, link), link_local(self.rcp.eui64))

    def _sender(self, node: EmulatedNode, link: LowpanLink) -> SendDatagram:
        def send(remote: LowpanAddress, data: bytes) -> None:
            dst = mac_from_address(remote.ip)
            datagram = UdpDatagram(node.ip, node.port, remote.ip, remote.port, data)
            for psdu in link.send(datagram, src_mac=node.mac, dst_mac=dst, pan_id=self.pan_id):
                self.injected[node.mac].append(psdu)
                if self.drop(psdu):
                    continue
                quality = self.quality.get(node.mac)
                self.rcp.inject(psdu) if quality is None else self.rcp.inject(psdu, *quality)

        return send

    def _on_air(self, psdu: bytes) -> None:
        if self.drop(psdu):
            return
        frame = parse_frame(psdu)
        for mac, (node, link) in self.nodes.items():
            if frame.dst in (mac, b"\xff\xff"):
                try:
                    datagram = link.receive(psdu)
                except RadioDecodeError as e:
                    self.refused[mac].append(e)
                    continue
                (self.opened if frame.security is not None else self.plain)[mac] += 1
                if datagram is not None:
                    node.received(datagram.src, datagram.src_port, datagram.payload)
