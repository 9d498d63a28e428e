"""What an 802.15.4 node takes when it is paired (see ``transports/pairing.py``): its link key,
``--key link=HEX`` (AES-128, the key its frames are secured with: see ``security.py``).
bridgectl reads this module to offer and check the key, so it imports nothing but the
contract."""

from __future__ import annotations

from bridged.transports.pairing import Pairing, PairingKey

KEY_SIZE = 16
"""An IEEE 802.15.4 key is an AES-128 key (CCM*): the one statement of its length, for the
link keys of nodes, the network key of the configuration and the frame codec."""

LINK_KEY = PairingKey(
    "link",
    KEY_SIZE,
    f"its IEEE 802.15.4 link key ({2 * KEY_SIZE} hex digits); paired by its EUI-64",
    label="a link key",
)
"""A node's link key among its secrets (``--key link=...``)."""

PAIRING = Pairing(keys=(LINK_KEY,))
