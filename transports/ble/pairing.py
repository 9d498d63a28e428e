"""What a BLE node takes when it is paired (see ``transports/pairing.py``): its BTHome bind key
and, for a GATT node, bonding through BlueZ and how its firmware is updated (MCUmgr SMP).
bridgectl reads this module to offer ``--bindkey``, ``--bond`` and ``--firmware``, so it
imports nothing but the contract."""

from __future__ import annotations

from bridged.transports.pairing import Pairing, PairingFlag, PairingKey

GATT_PROFILE = "gatt"

BINDKEY_LENGTH = 16
"""A BTHome bind key is an AES-128 key: 16 bytes (32 hex digits). The one statement of it: the
BTHome cipher (``bthome.cipher``), the gateway's pairing check and bridgectl use this."""

BINDKEY = PairingKey(
    "bindkey",
    BINDKEY_LENGTH,
    f"its BTHome bind key ({2 * BINDKEY_LENGTH} hex digits)",
    label="a bind key",
    option=True,
)
BOND = PairingFlag("bond", "bond through BlueZ (a GATT node that needs it)", profile=GATT_PROFILE)
FIRMWARE = PairingFlag(
    "firmware",
    "how its firmware is updated: smp (a GATT node running MCUboot with MCUmgr SMP)",
    profile=GATT_PROFILE,
    choices=("smp",),
)

PAIRING = Pairing(keys=(BINDKEY,), flags=(BOND, FIRMWARE))
