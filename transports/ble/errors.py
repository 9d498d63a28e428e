"""The errors of BLE advertisement decoding: one base, ``AdvertDecodeError``, and its kinds.

Every decoder in this package raises only these on bad bytes, so the transport handles one
exception type per advert and can still tell a wrong bind key (count it, tell the user) from a
replay (someone is re-sending old frames) or a plain duplicate (the node repeats itself).
"""

from __future__ import annotations


class AdvertDecodeError(ValueError):
    """An advert of a recognised format that could not be turned into measurements."""

    profile: str | None = None
    """The format that recognised the advert (``AdvertFormat.name``), set by ``AdvertDecoder``:
    a refused advert is still heard as what it is."""


class MalformedAdvert(AdvertDecodeError):
    """The bytes do not follow the format: too short, a wrong version, a bad value."""


class UnknownObjectId(MalformedAdvert):
    """A BTHome object ID this decoder does not know. Its length is unknown too, so nothing
    after it can be decoded; ``object_id`` names it."""

    def __init__(self, object_id: int) -> None:
        super().__init__(f"unknown BTHome object ID 0x{object_id:02X}: its length is unknown")
        self.object_id = object_id


class BindKeyRequired(AdvertDecodeError):
    """An encrypted advert and no bind key to decrypt it with."""


class DecryptionFailed(AdvertDecodeError):
    """The bind key does not verify the frame's MIC: a wrong key or a corrupted frame."""


class UnencryptedAdvert(AdvertDecodeError):
    """A plaintext advert from a node whose bind key is known: refused, because accepting it
    would let anyone on the air downgrade an encrypted node to forged plaintext."""


class ReplayedAdvert(AdvertDecodeError):
    """An encrypted frame whose counter is not above the last one accepted from that node."""


class DuplicateAdvert(AdvertDecodeError):
    """A repetition of the last advert (same packet ID or frame counter): nothing new."""
