"""The advert formats the BLE transport knows: the one list (``FORMATS``) ``AdvertDecoder`` asks.

A new format is a module with an ``AdvertFormat`` (advert_data.py) and one line here. Order
matters where an advert can carry several formats: the first that decodes it wins, and a
format that declines its bytes (``decode`` returns None) hands them to the next.
"""

from __future__ import annotations

from . import atc, bthome, ruuvi
from .advert_data import AdvertFormat

FORMATS: tuple[AdvertFormat, ...] = (
    bthome.BTHOME,
    ruuvi.RAWV2,
    atc.ATC1441,
    atc.PVVX,
)
