"""The file manifest: size and checksum of every file of a checkpoint.

The manifest is stored in the meta file under ``recoverkit-files``. It lists
the recoverables the checkpoint holds and, for each file (files inside a
recoverable's folder included), its size in bytes and its XXH3-64 checksum.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable
from typing import Any

import xxhash

from recoverkit.storage.atomic import fsync_file
from recoverkit.storage.layout import METAFNAME, PARAMFILE_EXT

__all__ = ["MANIFEST_FORMAT", "build_manifest", "file_checksum"]

MANIFEST_FORMAT = 1
_CHUNK_BYTES = 8 * 1024 * 1024


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
    wrote nothing leaves its recoverable out.
    """
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(_walk_files(ckpt_dir)):
        relative = path.relative_to(ckpt_dir).as_posix()
        if relative == METAFNAME:
            continue
        if durable:
            fsync_file(path)
        files[relative] = {"size": path.stat().st_size, "xxh3_64": file_checksum(path)}
    present = [
        name for name in recoverable_names if (ckpt_dir / f"{name}{PARAMFILE_EXT}").exists()
    ]
    return {"format": MANIFEST_FORMAT, "recoverables": present, "files": files}


def _walk_files(root: pathlib.Path) -> Iterable[pathlib.Path]:
    for dirpath, _dirnames, filenames in os.walk(root):
        for filename in filenames:
            yield pathlib.Path(dirpath) / filename
