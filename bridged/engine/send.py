"""The LwM2M Send operation (``POST /dp``, LwM2M 1.1): the decisions and the payload, no I/O.

Send is how the gateway delivers readings the server did not ask for just now, above all the
buffered time series of a node that was out of reach: one SenML CBOR pack whose records each
carry a path, a value and the time it was measured, so a series of one resource is several
records with the same name and different times. The pack is compact (``send_payload``): its
records share base names and base times, standard RFC 8428 any server resolves, so that a
batch of many nodes' readings takes a sixth fewer bytes (and Block1 messages) than full names
and absolute times, a series of one resource measured by a node's clock 60 % fewer.

Three things keep a Send from going out, and each is refused here before anything is sent, with
an error that says why: the client is not registered with that server; the server registered it
as LwM2M 1.0, which has no Send (the caller falls back to notifications); the server's /1/x/23
Mute Send is true. The server's answer then decides the outcome: 2.04 Changed delivered it, 4.04
means the server no longer knows the client (it must Register again), anything else, or no
answer, is reported, and the caller keeps the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import accumulate

from aiocoap.numbers.codes import Code

from bridged.objects.definitions import Definitions, ResourceDef
from bridged.objects.errors import BadRequest, LwM2MError, NotFound, coap_code
from bridged.objects.formats.senml import path_names
from bridged.objects.formats.senml_cbor import CODEC as SENML_CBOR
from bridged.objects.formats.senml_cbor import CompactEncoder
from bridged.objects.ids import BOOTSTRAP_ONLY, Server
from bridged.objects.paths import Level, Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record, check_value

from .block1 import LARGEST, block_size

SEND_PATH = "dp"
"""Send goes to ``dp`` below the Server URI's path, as Register goes to ``rd``."""


BLOCK: int = block_size(LARGEST)
"""The Block1 block a Send's body goes in: 1,024 bytes, the largest over UDP (a body of up to
one block goes as a single message, ``block1``). Whole blocks of it are whole blocks of any
smaller size a server asks for (a 2.31 with a smaller SZX, RFC 7959 §2.3)."""


def whole_blocks(size: int) -> int:
    """How much of a ``size``-byte Send body to send now: all but its last, part-empty Block1
    block when that block would carry less than a quarter of the body, else all of it.

    A batch cut there takes one message fewer, every one full, and what it leaves goes first
    in the next Send. A larger remainder goes along: what a Send leaves waits for the next
    one (at a steady rate, a linger more) and is read, checked and encoded again for it, to
    save one message's headers and acknowledgement, some 80 bytes of the 1,500 a Send of 50
    readings takes (cutting every Send to whole blocks at 100 readings a second: a quarter
    fewer messages, no fewer instructions; docs/benchmarks.md, "Bytes and messages per
    Send")."""
    rest = size % BLOCK
    return size - rest if size > BLOCK and rest < size // 4 else size


class SendRefused(LwM2MError):
    """Send cannot go to this server now; nothing was sent and the caller keeps the data."""


class SendNotRegistered(SendRefused):
    """The client is not registered with the server (yet, or any more): 5.03, try later."""

    code = coap_code(5, 3)


class SendUnsupported(SendRefused):
    """The server registered the client as LwM2M 1.0, which has no Send: use notifications."""

    code = coap_code(4, 5)


class SendMuted(SendRefused):
    """The server muted Send (/1/x/23 Mute Send is true)."""

    code = coap_code(4, 5)


class SendStatus(Enum):
    """What became of a Send that went out."""

    DELIVERED = "delivered"  # 2.04 Changed
    REGISTER_AGAIN = "register-again"  # 4.04: the server lost the registration
    REJECTED = "rejected"  # any other code
    NO_ANSWER = "no-answer"  # timeout or network error


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """The outcome of one Send to ``server``; ``detail`` is the code and diagnostic or the
    error, for the daemon's status and logs."""

    status: SendStatus
    server: str
    records: int
    detail: str = ""

    @property
    def delivered(self) -> bool:
        return self.status is SendStatus.DELIVERED


def check_records(records: Sequence[Record], tree: ObjectTree) -> None:
    """Refuse (BadRequest, NotFound) what no Send may carry, before anything goes out.

    Records name resources or resource instances of defined, readable resources, never of the
    bootstrap-only objects (the Security object holds keys), with values of their types.
    """
    if not records:
        raise BadRequest("a Send carries at least one record")
    for rec in records:
        check_value(check_path(rec.path, tree.definitions), rec.value)


def check_path(path: Path, definitions: Definitions) -> ResourceDef:
    """The definition of the resource a Send record at ``path`` carries, once the path is one
    a Send may name (``check_records``); what is left to check is each value against it, so
    a batch with many values of one path checks the path once."""
    if path.level < Level.RESOURCE:
        raise BadRequest(f"Send records name resources, not {path}")
    if path.ids[0] in BOOTSTRAP_ONLY:
        raise BadRequest(f"{path} is bootstrap-only and is never sent")
    rdef = definitions.resource(path.ids[0], path.ids[2])
    if not rdef.operations.readable:
        raise BadRequest(f"{path} ({rdef.name}) is not a readable resource")
    if rdef.multiple != (path.level is Level.RESOURCE_INSTANCE):
        kind = "resource instances" if rdef.multiple else "a single value"
        raise BadRequest(f"{path} ({rdef.name}) takes {kind}")
    return rdef


def encode_send(records: Sequence[Record], tree: ObjectTree) -> bytes:
    """The SenML CBOR payload of a Send of ``records``, once ``check_records`` passed."""
    check_records(records, tree)
    return send_payload(records)


def send_payload(records: Sequence[Record]) -> bytes:
    """The SenML CBOR payload of a Send of ``records`` checked already (``check_records``):
    every record named by ``bn`` + ``n`` with its time, if any, as ``bt`` + ``t`` (a compact
    pack, ``senml``'s module docstring)."""
    return SendPack(path_names(records), records).payload(len(records))


class SendPack:
    """The Send payloads of the leading runs of ``records`` (checked already) named ``names``
    (a compact pack: a record's value and time at the path its name says), from one encoding
    of each record by ``encoder`` (a new one if None; Delivery keeps one, and with it each
    name's encoding, from one batch to the next): delivery measures a batch at a length or
    two before it settles on one, and a length's size is a sum, its payload a join (a leading
    run of the records is a pack of its own, see ``senml_cbor.CompactEncoder``)."""

    def __init__(
        self,
        names: Sequence[str],
        records: Sequence[Record],
        encoder: CompactEncoder | None = None,
    ) -> None:
        self._records = (encoder or CompactEncoder()).records(names, records)
        self._ends = list(accumulate(map(len, self._records)))

    def size(self, count: int) -> int:
        """The size of the payload of a Send of the first ``count`` records."""
        return SENML_CBOR.pack_size(count, self._ends[count - 1])

    def payload(self, count: int) -> bytes:
        """The payload of a Send of the first ``count`` records."""
        return SENML_CBOR.pack(self._records[:count])


def muted(tree: ObjectTree, server_instance: int) -> bool:
    """/1/x/23 Mute Send of the server's /1 instance; absent means not muted (its default)."""
    try:
        return tree.get(Path((Server.OBJECT, server_instance, Server.MUTE_SEND))) is True
    except NotFound:
        return False


def check_allowed(*, registered: bool, version: str, muted: bool, server: str) -> None:
    """Raise the SendRefused that applies, if any (see the module docstring)."""
    if not registered:
        raise SendNotRegistered(f"not registered with {server}: Send must wait")
    if version == "1.0":
        raise SendUnsupported(
            f"{server} registered this client as LwM2M 1.0, which has no Send: notify instead"
        )
    if muted:
        raise SendMuted(f"{server} muted Send (/1/x/23 Mute Send is true)")


def outcome_of(code: int, diagnostic: bytes, server: str, records: int) -> SendOutcome:
    """The outcome of the server's answer ``code`` to a Send of ``records`` records."""
    text = str(Code(code))
    if diagnostic:
        text += ": " + diagnostic[:120].decode(errors="replace")
    if code == Code.CHANGED:
        return SendOutcome(SendStatus.DELIVERED, server, records)
    if code == Code.NOT_FOUND:
        return SendOutcome(SendStatus.REGISTER_AGAIN, server, records, text)
    return SendOutcome(SendStatus.REJECTED, server, records, text)
