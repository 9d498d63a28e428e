"""Test vectors that several content formats' tests share.

The Device object instance /3/0 of the OMA LwM2M Core specification's examples (Read /3/0),
which the TLV, SenML and LwM2M JSON examples all encode. The TLV examples of Leshan and Wakaama
end in /3/0/15 instead of /3/0/16, hence the base list.
"""

from __future__ import annotations

from bridged.objects.paths import Path
from bridged.objects.values import Record

OMA_DEVICE_BASE = [
    Record(Path.parse(path), value)
    for path, value in [
        ("/3/0/0", "Open Mobile Alliance"),
        ("/3/0/1", "Lightweight M2M Client"),
        ("/3/0/2", "345000123"),
        ("/3/0/3", "1.0"),
        ("/3/0/6/0", 1),
        ("/3/0/6/1", 5),
        ("/3/0/7/0", 3800),
        ("/3/0/7/1", 5000),
        ("/3/0/8/0", 125),
        ("/3/0/8/1", 900),
        ("/3/0/9", 100),
        ("/3/0/10", 15),
        ("/3/0/11/0", 0),
        ("/3/0/13", 1367491215),
        ("/3/0/14", "+02:00"),
    ]
]
"""/3/0 without its last resource."""

OMA_DEVICE = [*OMA_DEVICE_BASE, Record(Path.parse("/3/0/16"), "U")]
"""/3/0 as the specification's examples read it, ending in Supported Binding "U"."""
