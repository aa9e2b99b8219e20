"""An advisory lock that keeps two runs from writing into one checkpoints folder.

The lock is the file ``.recoverkit.lock`` in the checkpoints folder, held with
``flock``. The kernel releases it when the process dies, even by SIGKILL, so a
crashed run never blocks the next one. Within one process the lock is shared
by every Checkpointer that points at the folder, so a script may build a
second Checkpointer to recover what the first one saved.
"""

from __future__ import annotations

import logging
import os
import pathlib
import socket
import sys
import threading

from recoverkit.errors import CheckpointLockedError

__all__ = ["LOCK_FILENAME", "acquire_dir_lock", "release_dir_lock"]

logger = logging.getLogger(__name__)

LOCK_FILENAME = ".recoverkit.lock"

_held_locks: dict[str, int] = {}
_table_guard = threading.Lock()

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


def acquire_dir_lock(checkpoints_dir: pathlib.Path) -> None:
    """Take the folder's lock for this process, or raise CheckpointLockedError.

    Calling it again for a folder this process has already locked does nothing.
    On platforms without ``flock`` no lock is taken.
    """
    key = os.path.realpath(checkpoints_dir)
    with _table_guard:
        if key in _held_locks or fcntl is None:
            return
        lock_path = pathlib.Path(key) / LOCK_FILENAME
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise CheckpointLockedError(
                f"Checkpoints folder {checkpoints_dir} is in use by another "
                f"process ({holder}). Two runs writing into one folder would "
                "delete or overwrite each other's checkpoints. Give this run "
                "its own checkpoints_dir, or stop the other process first."
            ) from None
        _write_holder(fd)
        _held_locks[key] = fd
        logger.debug("Locked checkpoints folder %s", key)


def release_dir_lock(checkpoints_dir: pathlib.Path) -> None:
    """Release this process's lock on the folder, if it holds one."""
    key = os.path.realpath(checkpoints_dir)
    with _table_guard:
        fd = _held_locks.pop(key, None)
        if fd is not None:
            os.close(fd)


def _write_holder(fd: int) -> None:
    argv = " ".join(sys.argv)[:200]
    text = f"pid {os.getpid()} on host {socket.gethostname()}: {argv}\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8", "replace"), 0)


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 1024, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "unknown process"
