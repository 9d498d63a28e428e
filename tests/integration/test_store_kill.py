"""Nothing the store has acknowledged is lost when the process is killed (kill -9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path as FsPath

from bridged.objects.paths import Path
from bridged.store.database import connect
from bridged.store.readings import ReadingStore
from bridged.transports.nodes import NodeId

WRITER = textwrap.dedent(
    """
    import sys
    import time
    from bridged.objects.paths import Path
    from bridged.store.database import connect
    from bridged.store.nodes import NodeId
    from bridged.objects.values import Record
    from bridged.store.readings import ReadingStore

    store = ReadingStore(connect(sys.argv[1]))
    store.add_consumer("server")
    start = time.time()
    node, path, n = NodeId("ble", "A4:C1:38:00:11:22"), Path.parse("/3303/0/5700"), 0
    while True:
        batch = [(node, Record(path, float(n + i), start + n + i)) for i in range(50)]
        seq = store.append(batch)
        n += 50
        print(seq, n, flush=True)
    """
)


def killed_after(writer: str, db: FsPath, lines: int) -> str:
    """Run ``writer`` (a script) on the database ``db``, kill -9 it once it printed ``lines``
    lines (each after a store call returned) and return the last of them."""
    proc = subprocess.Popen(
        [sys.executable, "-c", writer, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = ""
    try:
        for _ in range(lines):
            line = proc.stdout.readline()
            assert line, "the writer stopped early"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return line


def test_acknowledged_readings_survive_kill_9(tmp_path: FsPath) -> None:
    db = tmp_path / "state.db"
    acknowledged = int(killed_after(WRITER, db, 40).split()[1])
    store = ReadingStore(connect(db))
    values = [r.value for _, r in store.pending("server", limit=10**6).rows]
    assert len(values) >= acknowledged
    assert values == [float(i) for i in range(len(values))]  # in order, none missing


LAST_VALUES_WRITER = textwrap.dedent(
    """
    import sys
    import time
    from bridged.objects.paths import Path
    from bridged.objects.values import Record
    from bridged.store.database import connect
    from bridged.store.nodes import NodeId, NodeStore, PairedNode
    from bridged.store.readings import ReadingStore

    conn = connect(sys.argv[1])
    nodes = [NodeId("ble", f"A4:C1:38:00:11:{i:02X}") for i in range(3)]
    for node in nodes:
        NodeStore(conn).pair(PairedNode(node, str(node), "bthome"))
    store = ReadingStore(conn)
    store.add_consumer("server")
    temp, humidity = Path.parse("/3303/0/5700"), Path.parse("/3304/0/5700")
    batch, start = 0, time.time()
    while True:
        batch += 1
        rows = [(node, Record(temp, float(batch), start + batch)) for node in nodes]
        if batch % 5 == 0:
            rows.append((nodes[0], Record(humidity, float(batch), start + batch)))
        store.append(rows)
        waiting = store.pending("server", limit=10**6)
        if len(waiting) > len(rows):  # every batch delivered (and deleted) but the newest
            store.ack("server", waiting.seqs[-len(rows) - 1])
        print(batch, flush=True)
    """
)


def test_every_nodes_last_values_as_committed_survive_kill_9(tmp_path: FsPath) -> None:
    """The last values are written when readings are deleted (delivered), not in every group
    commit: killed at any point, a restarted store still gives each node resource the value
    of its newest reading committed, whether it waits (the temperatures of the newest batch)
    or was delivered and deleted (the humidity, reported every fifth batch)."""
    db = tmp_path / "state.db"
    acknowledged = int(killed_after(LAST_VALUES_WRITER, db, 200))

    store = ReadingStore(connect(db))
    committed = int(max(float(r.value) for _, r in store.pending("server", limit=10**6).rows))
    assert committed >= acknowledged
    last = store.last_values()
    temp, humidity = Path.parse("/3303/0/5700"), Path.parse("/3304/0/5700")
    assert {node: {r.path: r.value for r in records} for node, records in last.items()} == {
        NodeId("ble", f"A4:C1:38:00:11:{i:02X}"): {
            temp: float(committed),
            **({humidity: float(committed // 5 * 5)} if i == 0 else {}),
        }
        for i in range(3)
    }
