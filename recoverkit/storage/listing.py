"""Reading checkpoint folders back into :class:`Checkpoint` tuples.

Published checkpoint folders never change, so the parsed meta of each folder
is cached and reused while its meta file keeps the same inode, modification
time and size. Folders without a file manifest have their parameter files
found by scanning, so for them the folder's own inode and modification time
count too.
Every call still scans the folder and checks those values, so a checkpoint
added, removed or rewritten by another process shows up at the next call.

A folder with many checkpoints also gets a listing cache file,
``.recoverkit-listing.json``, holding the same parsed values. A new process
reads it instead of parsing every meta file again, and checks each entry
against the file system in the same way, so a stale or foreign cache file
only costs the parsing it would have saved.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import os
import pathlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from recoverkit.storage.layout import (
    METAFNAME,
    PARAMFILE_EXT,
    Checkpoint,
    is_checkpoint_dirname,
)
from recoverkit.storage.meta import MANIFEST_KEY, UNIXTIME_KEY, parse_meta

__all__ = ["LISTING_CACHE_FILENAME", "CheckpointLister", "read_checkpoint", "split_manifest"]

logger = logging.getLogger(__name__)

LISTING_CACHE_FILENAME = ".recoverkit-listing.json"
_LISTING_CACHE_FORMAT = 1
# The cache file is written when one call parsed at least this many meta
# files, because for fewer files parsing them again costs little.
_MIN_PARSED_FOR_CACHE_FILE = 200

_Signature = tuple[int, ...]


def split_manifest(raw_meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Separate the file manifest recoverkit writes from the user's meta values."""
    meta = dict(raw_meta)
    manifest = meta.pop(MANIFEST_KEY, None)
    if manifest is not None and not isinstance(manifest, dict):
        manifest = {}
    return meta, manifest


def read_checkpoint(path: pathlib.Path) -> tuple[Checkpoint, dict[str, Any] | None] | None:
    """Read one checkpoint folder; return it with its manifest, or None.

    None means the folder is not a checkpoint: the meta file is missing,
    unreadable or has no numeric ``unixtime``, or a folder not written by
    recoverkit has no parameter file.
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
        logger.warning("Ignoring checkpoint %s: %s: %s", path, meta_path, error)
        return None
    meta, manifest = split_manifest(raw_meta)
    unixtime = meta.get(UNIXTIME_KEY)
    if isinstance(unixtime, bool) or not isinstance(unixtime, (int, float)):
        # Recency ranks every checkpoint by this value, so one folder without
        # it would break finding and recovering all the others.
        logger.warning(
            "Ignoring checkpoint %s: %s has no numeric %r value (found %r)",
            path,
            meta_path,
            UNIXTIME_KEY,
            unixtime,
        )
        return None
    if manifest is not None:
        paramfiles = _manifest_paramfiles(path, manifest)
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
    """Lists the checkpoints of one folder, reusing what it parsed before.

    One lister may be used from several threads.
    """

    def __init__(self, checkpoints_dir: pathlib.Path) -> None:
        self.checkpoints_dir = checkpoints_dir
        self._cache: dict[str, tuple[_Signature, Any]] = {}
        self._raw_metas: dict[str, tuple[_Signature, dict[str, Any] | None]] = {}
        self._guard = threading.Lock()
        self._cache_file_read = False

    def list(self) -> list[tuple[Checkpoint, dict[str, Any] | None]]:
        """Return every checkpoint with its manifest, in folder-name order."""
        with self._guard, _collection_paused():
            return self._list()

    def _list(self) -> list[tuple[Checkpoint, dict[str, Any] | None]]:
        try:
            entries = sorted(
                (entry for entry in os.scandir(self.checkpoints_dir) if is_checkpoint_dirname(entry.name)),
                key=_entry_name,
            )
        except FileNotFoundError:
            self._cache.clear()
            self._raw_metas.clear()
            return []
        if not self._cache_file_read:
            self._cache_file_read = True
            self._raw_metas = _read_cache_file(self.checkpoints_dir / LISTING_CACHE_FILENAME)
        found = []
        fresh: dict[str, tuple[_Signature, Any]] = {}
        parsed = 0
        for entry in entries:
            cached = self._cache.get(entry.name)
            legacy = cached is not None and (cached[1] is None or cached[1][1] is None)
            signature = _signature(entry, legacy)
            if signature is None:
                continue
            if cached is not None and cached[0] == signature:
                result = cached[1]
            else:
                result, signature, was_parsed = self._read(entry, signature)
                parsed += was_parsed
                if signature is None:
                    continue
            fresh[entry.name] = (signature, result)
            if result is not None:
                found.append(result)
        self._cache = fresh
        if parsed >= _MIN_PARSED_FOR_CACHE_FILE:
            _write_cache_file(self.checkpoints_dir / LISTING_CACHE_FILENAME, fresh)
        return found

    def _read(
        self, entry: os.DirEntry, signature: _Signature
    ) -> tuple[Any, _Signature | None, bool]:
        """Read one folder, from the cache file if it matches; return its result, signature and whether it was parsed."""
        path = pathlib.Path(entry.path)
        stored = self._raw_metas.pop(entry.name, None)
        if stored is not None:
            stored_signature, raw_meta = stored
            if raw_meta is not None and stored_signature == signature:
                result = _from_raw_meta(path, raw_meta)
                if result is not None and result[1] is not None:
                    return result, signature, False
        result = read_checkpoint(path)
        if result is None or result[1] is None:
            # Without a manifest the folder's contents decide the parameter
            # files, so a folder that gains them later is read again.
            signature = _signature(entry, legacy=True)
        return result, signature, True


@contextlib.contextmanager
def _collection_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a listing builds its objects.

    Listing 10,000 checkpoints creates several dicts per checkpoint, which
    triggers many collection passes over a heap that contains no cycles from
    this work; pausing halves the time of a first listing.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _entry_name(entry: os.DirEntry) -> str:
    return entry.name


def _signature(entry: os.DirEntry, legacy: bool) -> _Signature | None:
    """Return the stat values that change whenever the folder's listing could change."""
    try:
        if not entry.is_dir():
            return None
        meta_stat = os.stat(os.path.join(entry.path, METAFNAME))
        if not legacy:
            return (meta_stat.st_ino, meta_stat.st_mtime_ns, meta_stat.st_size)
        dir_stat = entry.stat()
    except OSError:
        return None
    return (
        meta_stat.st_ino,
        meta_stat.st_mtime_ns,
        meta_stat.st_size,
        dir_stat.st_ino,
        dir_stat.st_mtime_ns,
    )


def _from_raw_meta(path: pathlib.Path, raw_meta: dict[str, Any]) -> tuple[Checkpoint, dict[str, Any] | None] | None:
    meta, manifest = split_manifest(raw_meta)
    if manifest is None:
        return None
    return Checkpoint(path, meta, _manifest_paramfiles(path, manifest)), manifest


def _manifest_paramfiles(path: pathlib.Path, manifest: dict[str, Any]) -> dict[str, pathlib.Path]:
    names = manifest.get("recoverables") or []
    return {name: path / f"{name}{PARAMFILE_EXT}" for name in names if isinstance(name, str)}


def _read_cache_file(cache_path: pathlib.Path) -> dict[str, tuple[_Signature, dict[str, Any] | None]]:
    try:
        loaded = json.loads(cache_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        logger.debug("Ignoring listing cache %s: %s", cache_path, error)
        return {}
    if not isinstance(loaded, dict) or loaded.get("format") != _LISTING_CACHE_FORMAT:
        return {}
    entries = loaded.get("entries")
    if not isinstance(entries, dict):
        return {}
    raw_metas = {}
    for name, item in entries.items():
        if isinstance(item, list) and len(item) == 2 and isinstance(item[0], list) and isinstance(item[1], dict):
            raw_metas[name] = (tuple(item[0]), item[1])
    return raw_metas


def _write_cache_file(cache_path: pathlib.Path, results: dict[str, tuple[_Signature, Any]]) -> None:
    entries = {}
    for name, (signature, result) in results.items():
        if result is None or result[1] is None:
            continue
        checkpoint, manifest = result
        raw_meta = {**checkpoint.meta, MANIFEST_KEY: manifest}
        if _survives_json(raw_meta):
            entries[name] = [list(signature), raw_meta]
    text = json.dumps({"format": _LISTING_CACHE_FORMAT, "entries": entries}, separators=(",", ":"))
    partial = cache_path.with_name(f"{cache_path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, cache_path)
    except OSError as error:
        # A read-only folder is listed without the cache file.
        logger.debug("Cannot write listing cache %s: %s", cache_path, error)
        partial.unlink(missing_ok=True)


def _survives_json(value: Any) -> bool:
    """Return True if JSON gives back ``value`` with the same types and values."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_survives_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _survives_json(item) for key, item in value.items())
    return False
