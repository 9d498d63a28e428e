"""Files of the state directory: writing a small private file so that a crash leaves the old
content or the new, whole; and the lock that keeps a second daemon out of the directory."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

LOCK_FILE = "bridged.lock"


class DirectoryLocked(Exception):
    """Another process holds the state directory's lock; the message names the directory."""


def lock_directory(directory: Path) -> int:
    """Take the state directory's lock (``flock`` on ``bridged.lock`` in it) and return the
    file descriptor that holds it; closing it (or the process ending, even by kill -9) lets
    go. Two daemons sharing one database and one secrets file would each believe its own
    view, so the second is refused. Raises DirectoryLocked, or OSError when the lock file
    cannot be opened."""
    path = directory / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        by = f" (pid {holder})" if holder.isdigit() else ""
        raise DirectoryLocked(f"{directory} is in use by another bridged{by}") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def write_private_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, mode 0600 from the first byte.

    Temp file in the same directory, fsync, rename over the old file, fsync of the directory:
    the rename is atomic, and the two fsyncs make the new content and the new name durable.
    Raises OSError.
    """
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
