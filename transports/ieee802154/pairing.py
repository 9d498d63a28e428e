"""What an 802.15.4 node takes when it is paired (see ``transports/pairing.py``): nothing yet.
A key the transport uses (a link key) is declared here, and ``bridgectl pair 802154`` offers
it and checks its length with no other edit."""

from __future__ import annotations

from bridged.transports.pairing import Pairing

PAIRING = Pairing()
