"""IEEE 802.15.4 frame security (2006/2015), sans-I/O: AES-CCM* over one MAC frame.

A secured frame carries the auxiliary security header (parsed and built by :mod:`.mac`:
security level, key identifier mode, frame counter, key identifier) after the addressing
fields. This module protects and opens the payload of such a frame with a 16-byte key:

* **The nonce** is the 13 bytes of IEEE 802.15.4-2006 §7.6.3.2: the originator's extended
  address (8 bytes, most significant first: the EUI-64 as written, not in the little-endian
  order it travels in), the frame counter (4 bytes, big-endian) and the security level (1 byte).
  With a 13-byte nonce CCM's length field is 2 bytes, and CCM* with a MIC is plain CCM, so
  ``cryptography``'s AESCCM does the arithmetic (tags of 4, 8 and 16 bytes).
* **What is authenticated** is the MAC header as sent, auxiliary security header included
  (the *a data*), with the open payload; **what is encrypted** is the private payload. For a
  data frame the whole MAC payload is private; for a command frame the command identifier
  stays open (authenticated, in the clear) and the rest is private. Levels 1-3 (MIC only)
  authenticate header and payload and encrypt nothing.
* **Not supported**, refused with :class:`SecuredFrameError`: level 4 (encryption without a
  MIC: nothing is authenticated), encrypted beacons, frame counter suppression (2015: the
  nonce then takes TSCH's absolute slot number, which this gateway does not keep), and
  secured frames that carry Information Elements.

The published vectors of IEEE 802.15.4-2006 Annex C (C.2.1, a beacon at MIC-64, and C.2.3, a
command frame at ENC-MIC-64) are in ``tests/unit/test_154_security.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from .errors import AuthenticationError, SecuredFrameError
from .mac import MAX_PSDU, FrameType, MacFrame, SecurityHeader, build_frame
from .pairing import KEY_SIZE

ENC_MIC_LEVELS = (5, 6, 7)
"""The levels that both encrypt and authenticate (ENC-MIC-32, -64, -128): what the gateway
accepts from its nodes."""

_SUPPORTED_LEVELS = frozenset({1, 2, 3, *ENC_MIC_LEVELS})
_KEY_SOURCE_SIZES = (0, 0, 4, 8)
"""The key source of each key identifier mode (0: implicit key, 1: index only)."""
_FCS = 2


@dataclass(frozen=True)
class KeyIdentifier:
    """The key identifier of the auxiliary security header: mode 0 (the key is implicit, from
    the addresses), 1 (a key index), 2 (a 4-byte key source and an index), 3 (an 8-byte key
    source and an index). ValueError for a combination that cannot be on the air."""

    mode: int = 1
    source: bytes = b""
    index: int | None = 1

    def __post_init__(self) -> None:
        if self.mode not in (0, 1, 2, 3):
            raise ValueError(f"key identifier mode {self.mode} is not 0-3")
        if len(self.source) != _KEY_SOURCE_SIZES[self.mode]:
            raise ValueError(
                f"key identifier mode {self.mode} has a key source of "
                f"{_KEY_SOURCE_SIZES[self.mode]} bytes, not {len(self.source)}"
            )
        if (self.index is None) != (self.mode == 0) or not 0 <= (self.index or 0) <= 255:
            raise ValueError(f"key identifier mode {self.mode} with key index {self.index}")

    @classmethod
    def of(cls, header: SecurityHeader) -> KeyIdentifier:
        return cls(header.key_id_mode, header.key_source, header.key_index)

    def header(self, level: int, counter: int) -> SecurityHeader:
        """The auxiliary security header of a frame sent with this key at ``level``."""
        return SecurityHeader(level, self.mode, counter, self.source, self.index)


def nonce(source: bytes, counter: int, level: int) -> bytes:
    """The CCM* nonce of a frame from ``source`` (its EUI-64, as written) with ``counter``."""
    if len(source) != 8:
        raise ValueError(f"the nonce needs the 8-byte extended source address, not {source!r}")
    return source + counter.to_bytes(4, "big") + bytes((level,))


def _check(frame: MacFrame) -> tuple[SecurityHeader, int]:
    """The frame's security header and counter, and how much of its payload stays open;
    SecuredFrameError for what this module does not support (module docstring)."""
    security = frame.security
    if security is None:
        raise SecuredFrameError("the frame is not secured")
    if security.level not in _SUPPORTED_LEVELS:
        raise SecuredFrameError(
            f"security level {security.level} is not supported (1-3: MIC only, 5-7: ENC-MIC)"
        )
    if security.frame_counter is None:
        raise SecuredFrameError("frame counter suppression (TSCH) is not supported")
    if frame.header_ies or frame.payload_ies:
        raise SecuredFrameError("secured frames with Information Elements are not supported")
    encrypted = security.level > 4
    if encrypted and frame.frame_type is FrameType.BEACON:
        raise SecuredFrameError("encrypted beacons are not supported")
    return security, int(encrypted and frame.frame_type is FrameType.COMMAND)


def _ccm(key: bytes, security: SecurityHeader) -> AESCCM:
    if len(key) != KEY_SIZE:
        raise ValueError(f"an 802.15.4 key is {KEY_SIZE} bytes, not {len(key)}")
    return AESCCM(key, tag_length=security.mic_length)


def seal(frame: MacFrame, key: bytes, *, source: bytes | None = None) -> bytes:
    """The PSDU (FCS included) of ``frame`` with its payload protected under ``key``.

    ``frame.security`` says how (level, key identifier, frame counter); ``frame.payload`` is the
    plaintext. ``source`` is the sender's EUI-64, by default the frame's own (extended) source.
    ValueError for a frame that cannot be sent so (also an unsupported one, or too long).
    """
    try:
        security, open_length = _check(frame)
    except SecuredFrameError as e:
        raise ValueError(str(e)) from None
    assert security.frame_counter is not None  # _check refuses suppression
    origin = source if source is not None else frame.src
    if origin is None or len(origin) != 8:
        raise ValueError("a secured frame needs the sender's EUI-64 for its nonce")
    header = build_frame(replace(frame, payload=b""))[:-_FCS]
    opened, private = frame.payload[:open_length], frame.payload[open_length:]
    ccm = _ccm(key, security)
    number = nonce(origin, security.frame_counter, security.level)
    if security.level > 4:
        protected = opened + ccm.encrypt(number, private, header + opened)
    else:
        protected = frame.payload + ccm.encrypt(number, b"", header + frame.payload)
    body = header + protected
    if len(body) + _FCS > MAX_PSDU:
        raise ValueError(f"frame of {len(body) + _FCS} bytes exceeds the {MAX_PSDU}-byte PSDU")
    return build_frame(replace(frame, payload=protected))


def unseal(frame: MacFrame, psdu: bytes, key: bytes, *, source: bytes | None = None) -> MacFrame:
    """``frame`` (parsed from ``psdu``, FCS included) with its payload opened under ``key``:
    the plaintext, without the MIC. ``source`` is the sender's EUI-64, by default the frame's
    own (extended) source address.

    SecuredFrameError for what is not supported or a sender whose EUI-64 is unknown;
    AuthenticationError when the MIC does not verify (another key, or changed bytes).
    """
    security, open_length = _check(frame)
    assert security.frame_counter is not None
    origin = source if source is not None else frame.src
    if origin is None or len(origin) != 8:
        raise SecuredFrameError("a secured frame from a short address: its EUI-64 is not known")
    body = bytes(psdu[:-_FCS])
    payload = frame.payload
    if not body.endswith(payload) or len(payload) < security.mic_length + open_length:
        raise SecuredFrameError("the frame's payload is shorter than its MIC")
    header = body[: len(body) - len(payload)]
    ccm = _ccm(key, security)
    number = nonce(origin, security.frame_counter, security.level)
    try:
        if security.level > 4:
            opened = payload[:open_length]
            plaintext = opened + ccm.decrypt(number, payload[open_length:], header + opened)
        else:
            plaintext = payload[: -security.mic_length]
            ccm.decrypt(number, payload[-security.mic_length :], header + plaintext)
    except InvalidTag:
        raise AuthenticationError(
            f"the MIC of frame counter {security.frame_counter} does not verify"
        ) from None
    return replace(frame, payload=plaintext)
