"""Nothing the store has acknowledged is lost when the process is killed (kill -9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path as FsPath

from bridged.store.database import connect
from bridged.store.readings import ReadingStore

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


def test_acknowledged_readings_survive_kill_9(tmp_path: FsPath) -> None:
    db = tmp_path / "state.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acknowledged = 0
    try:
        for _ in range(40):
            line = proc.stdout.readline()
            assert line, "the writer stopped early"
            acknowledged = int(line.split()[1])
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    store = ReadingStore(connect(db))
    values = [r.value for _, r in store.pending("server", limit=10**6).rows]
    assert len(values) >= acknowledged
    assert values == [float(i) for i in range(len(values))]  # in order, none missing
