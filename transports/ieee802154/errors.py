"""The decode errors of the radio layers below UDP.

One root, :class:`RadioDecodeError`, so the transport can drop any bad frame with one ``except``
and still count it by layer: a frame that fails its FCS is a radio problem, a frame whose IPHC
names an unknown context is a configuration problem, and the logs should say which.
"""

from __future__ import annotations


class RadioDecodeError(ValueError):
    """Bytes from the air that the gateway cannot decode."""


class MacDecodeError(RadioDecodeError):
    """A malformed or unsupported IEEE 802.15.4 MAC frame (bad FCS, reserved fields, truncation)."""


class LinkSecurityError(MacDecodeError):
    """A frame refused by link-layer security (IEEE 802.15.4 frame security, AES-CCM*).

    The subclasses are the causes the transport counts per node: a frame it cannot open, a
    plaintext frame from a node that must secure its frames, a MIC that does not verify, a
    replayed frame counter.
    """


class SecuredFrameError(LinkSecurityError):
    """A secured frame the gateway cannot open: it holds no key for the frame's source, or the
    frame uses what is not supported (2003 security, a level without encryption and MIC, a key
    identifier other than the configured one, frame counter suppression, IEs). Its payload is
    ciphertext, so it is refused rather than decoded into garbage."""


class UnsecuredFrameError(LinkSecurityError):
    """A plaintext frame from a source that holds a key (a node paired with a link key, or any
    node of a PAN with a network key): anyone can send it with that address, so it is refused."""


class AuthenticationError(LinkSecurityError):
    """The MIC of a secured frame does not verify: the frame was sent with another key, or its
    bytes were changed on the way."""


class ReplayError(LinkSecurityError):
    """A secured frame whose frame counter is not above the last one accepted from its source:
    a recorded frame sent again."""


class LowpanDecodeError(RadioDecodeError):
    """A malformed or unsupported 6LoWPAN payload (dispatch, IPHC, NHC, IPv6 or UDP)."""


class FragmentDecodeError(LowpanDecodeError):
    """A malformed RFC 4944 fragment header."""
