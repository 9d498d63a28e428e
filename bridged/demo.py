"""``make demo``: the gateway's data model at work, on the machine it runs on.

It builds the gateway's object tree the way the daemon does (built-in definitions, /3 Device
and /4 Connectivity Monitoring read from this machine, a few temperature instances), then
shows what a LwM2M server would receive: the registration payload and reads of /3/0 and
/3303 in each content format, with the temperatures changing every second. Ctrl-C stops it.
"""

from __future__ import annotations

import math
import sys
import time

from bridged.engine.device import install_device_objects, read_machine_facts
from bridged.objects.builtin import builtin_registry
from bridged.objects.formats import ContentFormat, codec_for
from bridged.objects.linkformat import registration_links
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree

ROOMS = ("kitchen", "attic", "cellar")


def build_tree() -> ObjectTree:
    tree = ObjectTree(builtin_registry())
    install_device_objects(tree, read_machine_facts(), on_reboot=lambda: None)
    for iid, room in enumerate(ROOMS):
        tree.create_instance(3303, iid, [(5700, 20.0), (5701, "Cel"), (5750, room)])
    return tree


def show(tree: ObjectTree, path: str, cf: ContentFormat) -> None:
    base = Path.parse(path)
    payload = codec_for(cf).encode(tree.read(base), base, tree.registry)
    text = payload.decode() if cf in (ContentFormat.SENML_JSON,) else payload.hex(" ")
    print(f"  GET {path}  Accept: {int(cf)} ({cf.name}), {len(payload)} bytes\n    {text}")


def main() -> int:
    tree = build_tree()
    print("Registration payload (POST /rd):")
    print("  " + registration_links(list(tree.objects()), version="1.1"))
    show(tree, "/3/0", ContentFormat.SENML_JSON)
    show(tree, "/3/0", ContentFormat.TLV)
    print("Live values (Ctrl-C to stop):")
    try:
        for tick in range(sys.maxsize):
            for iid in range(len(ROOMS)):
                value = round(20 + 3 * math.sin(tick / 5 + iid), 2)
                tree.set(Path((3303, iid, 5700)), value)
            show(tree, "/3303", ContentFormat.SENML_JSON)
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
