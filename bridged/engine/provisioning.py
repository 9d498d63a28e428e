"""The provisioned server configuration (/0 Security, /1 Server, /2 Access Control) on disk.

What a Bootstrap-Server wrote is saved in the state directory after Bootstrap-Finish, so a
restart registers with the provisioned servers without bootstrapping again. The file holds
PSKs and private keys, so it is mode 0600 and replaced atomically (``write_private_file``):
after a crash at any point the file is either the old configuration or the new one, never a
mix.

The file is CBOR: ``{"format": 1, "instances": [[oid, iid], ...], "values": <SenML CBOR>}``.
The values reuse the SenML CBOR codec, which types them by the object definitions on the way
back; the instance list keeps instances that have no values. A file that cannot be read is
moved aside (``provisioning.cbor.bad-<time>``), never deleted, and the client bootstraps
instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import time
from collections.abc import Iterable
from typing import Any

import cbor2

from bridged.objects.errors import LwM2MError
from bridged.objects.formats import ContentFormat, codec_for
from bridged.objects.ids import Acl, Security, Server
from bridged.objects.paths import ROOT, Path
from bridged.objects.tree import ObjectTree
from bridged.store.files import write_private_file

from .bootstrap import Staged, all_records, instance_values, replace_objects

log = logging.getLogger(__name__)

FILE_NAME = "provisioning.cbor"
FORMAT = 1
STORED_OBJECTS = (Security.OBJECT, Server.OBJECT, Acl.OBJECT)


class CorruptStateError(Exception):
    """The state file exists but does not hold a configuration this version can load."""


class ProvisioningStore:
    """The provisioned /0, /1 and /2 of one client in ``state_dir``."""

    def __init__(self, state_dir: pathlib.Path, objects: Iterable[int] = STORED_OBJECTS) -> None:
        self.state_dir = state_dir
        self.objects = tuple(objects)

    @property
    def path(self) -> pathlib.Path:
        return self.state_dir / FILE_NAME

    def save(self, tree: ObjectTree) -> None:
        """Write the tree's configuration objects atomically, readable by the owner only."""
        instances = [
            [oid, iid]
            for oid in self.objects
            if tree.has(Path((oid,)))
            for iid in tree.instance_ids(oid)
        ]
        records = [
            r
            for oid in self.objects
            if tree.has(Path((oid,)))
            for r in all_records(tree, Path((oid,)))
        ]
        values = codec_for(ContentFormat.SENML_CBOR).encode(records, ROOT, tree.definitions)
        data = cbor2.dumps({"format": FORMAT, "instances": instances, "values": values})
        write_private_file(self.path, data)

    def load(self, tree: ObjectTree) -> bool:
        """Replace the tree's configuration objects with the saved ones.

        False when there is no file, or when it cannot be used: then the problem is logged with
        the file's name, the file is moved aside and the tree is left as it was.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as e:
            log.error("cannot read the provisioned configuration %s: %s", self.path, e)
            return False
        try:
            staged = self._decode(data, tree)
        except CorruptStateError as e:
            aside = self.path.with_name(f"{FILE_NAME}.bad-{time.strftime('%Y%m%dT%H%M%S')}")
            log.error(
                "the provisioned configuration %s is unusable (%s); kept as %s, bootstrapping",
                self.path,
                e,
                aside,
            )
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            return False
        replace_objects(tree, self.objects, staged)
        log.info("loaded the provisioned configuration from %s", self.path)
        return True

    def _decode(self, data: bytes, tree: ObjectTree) -> Staged:
        """The saved instances and their values, checked by loading them into a scratch tree."""
        try:
            doc: Any = cbor2.loads(data)
        except Exception as e:  # cbor2 raises several types for truncated or garbled input
            raise CorruptStateError(f"not CBOR: {e}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise CorruptStateError("not a format-1 provisioning file")
        instances, values = doc.get("instances"), doc.get("values")
        if not isinstance(instances, list) or not isinstance(values, bytes):
            raise CorruptStateError("instances or values are missing")
        scratch = ObjectTree(tree.definitions)
        staged: Staged = {}
        try:
            for pair in instances:
                if (
                    not isinstance(pair, list)
                    or len(pair) != 2
                    or pair[0] not in self.objects
                    or not isinstance(pair[1], int)
                ):
                    raise CorruptStateError(f"bad instance entry {pair!r}")
                scratch.create_instance(pair[0], pair[1])
                staged[(pair[0], pair[1])] = {}
            records = codec_for(ContentFormat.SENML_CBOR).decode(values, ROOT, tree.definitions)
            for rec in records:
                p = rec.path
                if (p.ids[0], p.ids[1]) not in staged:
                    raise CorruptStateError(f"{p} belongs to no saved instance")
                scratch.set(p, rec.value)
        except LwM2MError as e:
            raise CorruptStateError(str(e)) from None
        for oid, iid in staged:
            staged[(oid, iid)] = instance_values(scratch, oid, iid)
        return staged
