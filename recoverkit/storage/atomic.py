"""Durable, atomic file-system operations.

A checkpoint is written into a hidden temporary folder, every file and the
folder are flushed to disk, and one ``rename`` publishes it. Deletion runs the
other way: one ``rename`` hides the folder, then its files are removed. A
process killed at any instant therefore leaves either the old state or the
new one, and the leftovers are hidden folders that listing never shows.
"""

from __future__ import annotations

import errno
import logging
import os
import pathlib
import shutil

from recoverkit.errors import CheckpointExistsError
from recoverkit.storage.layout import TMP_PREFIX, TRASH_PREFIX, trash_dirname

__all__ = [
    "fsync_dir",
    "fsync_file",
    "publish_dir",
    "remove_dir_out_of_sight",
    "remove_stale_dirs",
    "write_file_durably",
]

logger = logging.getLogger(__name__)


def fsync_file(path: os.PathLike | str) -> None:
    """Flush the data of the file at ``path`` to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: os.PathLike | str) -> None:
    """Flush the entries of a folder (new names, renames) to stable storage."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as error:
        # Windows cannot open folders; its renames are flushed with the file.
        logger.debug("Cannot open folder %s to flush it: %s", path, error)
        return
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def write_file_durably(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` to a new file at ``path`` and flush it to disk."""
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def publish_dir(tmp_dir: pathlib.Path, final_dir: pathlib.Path) -> None:
    """Rename a fully written folder to its final name in one atomic step.

    Raises
    ------
    CheckpointExistsError
        If ``final_dir`` already exists. Nothing is replaced in that case.
    """
    fsync_dir(tmp_dir)
    if final_dir.exists():
        raise CheckpointExistsError(
            f"Cannot publish checkpoint {final_dir}: a checkpoint with that name "
            "already exists. Choose another name, or delete the old checkpoint "
            "first (delete_checkpoints with a ckpt_predicate selecting it)."
        )
    try:
        os.rename(tmp_dir, final_dir)
    except OSError as error:
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise CheckpointExistsError(
                f"Cannot publish checkpoint {final_dir}: another process created "
                "a checkpoint with that name at the same time. Choose another name."
            ) from error
        raise
    fsync_dir(final_dir.parent)


def remove_dir_out_of_sight(path: pathlib.Path) -> None:
    """Hide a folder with one rename, flush that, then delete its files."""
    hidden = path.parent / trash_dirname(path.name)
    os.rename(path, hidden)
    fsync_dir(path.parent)
    shutil.rmtree(hidden, ignore_errors=True)


def remove_stale_dirs(
    checkpoints_dir: pathlib.Path, keep: frozenset[str] = frozenset()
) -> list[str]:
    """Delete hidden temporary and trash folders left behind by killed processes.

    Only call this while holding the folder's lock, because the temporary
    folder of a save in progress in another process looks the same. Folders
    named in ``keep`` are left alone. Returns the names removed.
    """
    removed = []
    try:
        entries = list(os.scandir(checkpoints_dir))
    except FileNotFoundError:
        return removed
    for entry in entries:
        name = entry.name
        if name in keep or not name.startswith((TMP_PREFIX, TRASH_PREFIX)):
            continue
        if not entry.is_dir(follow_symlinks=False):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(name)
        logger.info("Removed leftover folder %s of an interrupted save or delete", name)
    return removed
