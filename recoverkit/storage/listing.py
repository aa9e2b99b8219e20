"""Reading checkpoint folders back into :class:`Checkpoint` tuples.

Published checkpoint folders never change, so the parsed meta of each folder
is cached and reused while the folder and its meta file keep the same inode,
modification time and size. Every call still scans the folder, so a
checkpoint added or removed by another process shows up at the next call.
"""

from __future__ import annotations

import logging
import os
import pathlib
from typing import Any

from recoverkit.storage.layout import (
    METAFNAME,
    PARAMFILE_EXT,
    Checkpoint,
    is_checkpoint_dirname,
)
from recoverkit.storage.meta import MANIFEST_KEY, parse_meta

__all__ = ["CheckpointLister", "read_checkpoint", "split_manifest"]

logger = logging.getLogger(__name__)

_Signature = tuple[int, int, int, int, int]


def split_manifest(raw_meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Separate the file manifest recoverkit writes from the user's meta values."""
    meta = dict(raw_meta)
    manifest = meta.pop(MANIFEST_KEY, None)
    if manifest is not None and not isinstance(manifest, dict):
        manifest = {}
    return meta, manifest


def read_checkpoint(path: pathlib.Path) -> tuple[Checkpoint, dict[str, Any] | None] | None:
    """Read one checkpoint folder; return it with its manifest, or None.

    None means the folder is not a checkpoint: the meta file is missing or
    unreadable, or a folder not written by recoverkit has no parameter file.
    """
    meta_path = path / METAFNAME
    try:
        text = meta_path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as error:
        logger.warning("Ignoring %s: cannot read its meta file (%s)", path, error)
        return None
    try:
        raw_meta = parse_meta(text)
    except ValueError as error:
        logger.warning("Ignoring %s: %s", path, error)
        return None
    meta, manifest = split_manifest(raw_meta)
    if manifest is not None:
        names = manifest.get("recoverables") or []
        paramfiles = {
            name: path / f"{name}{PARAMFILE_EXT}" for name in names if isinstance(name, str)
        }
    else:
        paramfiles = _scan_paramfiles(path)
        if not paramfiles:
            logger.debug("Ignoring %s: meta file without parameter files", path)
            return None
    return Checkpoint(path, meta, paramfiles), manifest


def _recoverable_name(filename: str) -> str:
    return filename[: -len(PARAMFILE_EXT)]


def _scan_paramfiles(path: pathlib.Path) -> dict[str, pathlib.Path]:
    paramfiles = {}
    for entry in os.scandir(path):
        if entry.name.endswith(PARAMFILE_EXT) and entry.is_file():
            paramfiles[_recoverable_name(entry.name)] = path / entry.name
    return dict(sorted(paramfiles.items()))


class CheckpointLister:
    """Lists the checkpoints of one folder, reusing what it parsed before."""

    def __init__(self, checkpoints_dir: pathlib.Path) -> None:
        self.checkpoints_dir = checkpoints_dir
        self._cache: dict[str, tuple[_Signature, Any]] = {}

    def list(self) -> list[tuple[Checkpoint, dict[str, Any] | None]]:
        """Return every checkpoint with its manifest, in folder-name order."""
        try:
            entries = sorted(os.scandir(self.checkpoints_dir), key=lambda e: e.name)
        except FileNotFoundError:
            self._cache.clear()
            return []
        found = []
        seen = set()
        for entry in entries:
            if not is_checkpoint_dirname(entry.name):
                continue
            signature = self._signature(entry)
            if signature is None:
                continue
            seen.add(entry.name)
            cached = self._cache.get(entry.name)
            if cached is not None and cached[0] == signature:
                result = cached[1]
            else:
                result = read_checkpoint(pathlib.Path(entry.path))
                self._cache[entry.name] = (signature, result)
            if result is not None:
                found.append(result)
        for name in set(self._cache) - seen:
            del self._cache[name]
        return found

    @staticmethod
    def _signature(entry: os.DirEntry) -> _Signature | None:
        try:
            if not entry.is_dir():
                return None
            dir_stat = entry.stat()
            meta_stat = os.stat(os.path.join(entry.path, METAFNAME))
        except OSError:
            return None
        return (
            dir_stat.st_ino,
            dir_stat.st_mtime_ns,
            meta_stat.st_ino,
            meta_stat.st_mtime_ns,
            meta_stat.st_size,
        )
