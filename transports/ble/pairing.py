"""What a BLE node takes when it is paired (see ``transports/pairing.py``): its BTHome bind key
and, for a GATT node that needs it, bonding through BlueZ. bridgectl reads this module to
offer ``--bindkey`` and ``--bond``, so it imports nothing but the contract."""

from __future__ import annotations

from bridged.transports.pairing import Pairing, PairingFlag, PairingKey

GATT_PROFILE = "gatt"

BINDKEY = PairingKey(
    "bindkey", 16, "its BTHome bind key (32 hex digits)", label="a bind key", option=True
)
"""A BTHome bind key is an AES-128 key."""
BOND = PairingFlag("bond", "bond through BlueZ (a GATT node that needs it)", profile=GATT_PROFILE)

PAIRING = Pairing(keys=(BINDKEY,), flags=(BOND,))
