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


class SecuredFrameError(MacDecodeError):
    """A frame with link-layer security (AES-CCM*): its payload is ciphertext, not 6LoWPAN.

    Keys live on the nodes' side of the network; until the gateway holds them such frames are
    refused rather than decoded into garbage.
    """


class LowpanDecodeError(RadioDecodeError):
    """A malformed or unsupported 6LoWPAN payload (dispatch, IPHC, NHC, IPv6 or UDP)."""


class FragmentDecodeError(LowpanDecodeError):
    """A malformed RFC 4944 fragment header."""
