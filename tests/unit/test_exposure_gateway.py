"""The gateway mode's end devices tell every party of a change in their trees (the
observations of /devN paths, the engine's view of end devices), and one party's failure is
not the others' loss."""

from __future__ import annotations

import logging
from pathlib import Path as FsPath

import pytest

from bridged.exposure.gateway import GatewayExposure
from bridged.objects.builtin import builtin_definitions
from bridged.objects.paths import Path
from bridged.objects.tree import ObjectTree
from bridged.objects.values import Record
from bridged.registry import NodeRegistry
from bridged.store.database import connect
from bridged.store.nodes import NodeId, NodeStore, PairedNode
from bridged.store.readings import ReadingStore
from bridged.store.secrets import SecretStore

NODE = NodeId("sim", "0001")


def test_an_end_device_listener_that_raises_does_not_stop_the_others(
    tmp_path: FsPath, caplog: pytest.LogCaptureFixture
) -> None:
    conn = connect(tmp_path / "state.db")
    reg = NodeRegistry(NodeStore(conn), SecretStore(tmp_path / "secrets.json"), ReadingStore(conn))
    exposure = GatewayExposure(ObjectTree(builtin_definitions()), reg.store)
    reg.listen(exposure)

    def broken(path: Path) -> None:
        raise RuntimeError("a listener's own defect")

    seen: list[str] = []
    exposure.subscribe(broken)
    exposure.subscribe(lambda path: seen.append(str(path)))
    reg.pair(PairedNode(NODE, "n", "sim"))
    prefix = exposure.prefix(NODE)
    with caplog.at_level(logging.ERROR, logger="bridged.objects.listeners"):
        reg.readings(NODE, [Record(Path.parse("/3303/0/5700"), 21.5)])
        reg.unpair(NODE)
    assert f"/{prefix}/3303/0/5700" in seen
    assert seen[-1] == f"/{prefix}"  # the end device went away
    failures = [r for r in caplog.records if "end device tree changes" in r.getMessage()]
    assert failures and all(r.exc_info for r in failures)
