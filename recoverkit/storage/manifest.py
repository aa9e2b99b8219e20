"""The file manifest: size and checksum of every file of a checkpoint.

The manifest is stored in the meta file under ``recoverkit-files``. It lists
the recoverables the checkpoint contains and, for each file (files inside a
recoverable's folder included), its size in bytes and its XXH3-64 checksum.

Files written by :func:`~recoverkit.storage.torch_io.save_torch_file` were
hashed and flushed while they were written. Their checksums are remembered
here with the file's inode, size and modification time, and
:func:`build_manifest` reuses them instead of reading the file again. A file
changed in any of those since it was written is read and hashed as usual.
"""

from __future__ import annotations

import collections
import os
import pathlib
import threading
from collections.abc import Iterable
from typing import Any, NamedTuple

import xxhash

from recoverkit.storage.atomic import fsync_dir, fsync_file
from recoverkit.storage.layout import METAFNAME, PARAMFILE_EXT

__all__ = ["MANIFEST_FORMAT", "build_manifest", "file_checksum", "remember_checksum"]

MANIFEST_FORMAT = 1
_CHUNK_BYTES = 8 * 1024 * 1024
# Enough for every file of several checkpoints in flight; older entries are
# dropped first and only cost a second read of their file.
_MAX_REMEMBERED = 4096


class _WrittenFile(NamedTuple):
    signature: tuple[int, int, int, int]
    checksum: str
    durable: bool


_remembered: collections.OrderedDict[str, _WrittenFile] = collections.OrderedDict()
_remembered_guard = threading.Lock()


def _file_signature(file_stat: os.stat_result) -> tuple[int, int, int, int]:
    return (file_stat.st_dev, file_stat.st_ino, file_stat.st_size, file_stat.st_mtime_ns)


def remember_checksum(
    path: str | os.PathLike, file_stat: os.stat_result, checksum: str, durable: bool
) -> None:
    """Record the checksum of a file this process has just written.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    file_stat : os.stat_result
        Its status right after the last write.
    checksum : str
        Its XXH3-64 checksum as 16 hex digits.
    durable : bool
        Whether the file was already flushed to disk with ``fsync``.
    """
    key = os.path.abspath(path)
    entry = _WrittenFile(_file_signature(file_stat), checksum, durable)
    with _remembered_guard:
        _remembered[key] = entry
        _remembered.move_to_end(key)
        while len(_remembered) > _MAX_REMEMBERED:
            _remembered.popitem(last=False)


def _take_remembered(path: pathlib.Path, file_stat: os.stat_result) -> _WrittenFile | None:
    with _remembered_guard:
        entry = _remembered.pop(os.path.abspath(path), None)
    if entry is None or entry.signature != _file_signature(file_stat):
        return None
    return entry


def file_checksum(path: str | os.PathLike) -> str:
    """Return the XXH3-64 checksum of a file as 16 hex digits."""
    digest = xxhash.xxh3_64()
    with open(path, "rb", buffering=0) as handle:
        buffer = bytearray(_CHUNK_BYTES)
        view = memoryview(buffer)
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
    return digest.hexdigest()


def build_manifest(ckpt_dir: pathlib.Path, recoverable_names: Iterable[str], durable: bool = True) -> dict[str, Any]:
    """Flush every file under ``ckpt_dir`` to disk and describe it.

    Only recoverables whose file or folder exists are listed, so a hook that
    wrote nothing leaves its recoverable out. Files whose checksum was
    remembered while they were written are neither read nor flushed again.
    """
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(_walk_files(ckpt_dir)):
        relative = path.relative_to(ckpt_dir).as_posix()
        if relative == METAFNAME:
            continue
        files[relative] = _describe_file(path, durable)
    if durable:
        _flush_subfolders(ckpt_dir)
    present = [
        name for name in recoverable_names if (ckpt_dir / f"{name}{PARAMFILE_EXT}").exists()
    ]
    return {"format": MANIFEST_FORMAT, "recoverables": present, "files": files}


def _describe_file(path: pathlib.Path, durable: bool) -> dict[str, Any]:
    file_stat = path.stat()
    written = _take_remembered(path, file_stat)
    if written is not None:
        if durable and not written.durable:
            fsync_file(path)
        return {"size": file_stat.st_size, "xxh3_64": written.checksum}
    if durable:
        fsync_file(path)
    checksum = file_checksum(path)
    return {"size": path.stat().st_size, "xxh3_64": checksum}


def _flush_subfolders(root: pathlib.Path) -> None:
    """Flush the entries of folders that hooks created, such as sharded saves."""
    for dirpath, dirnames, _filenames in os.walk(root):
        for dirname in dirnames:
            fsync_dir(pathlib.Path(dirpath) / dirname)


def _walk_files(root: pathlib.Path) -> Iterable[pathlib.Path]:
    for dirpath, _dirnames, filenames in os.walk(root):
        for filename in filenames:
            yield pathlib.Path(dirpath) / filename
