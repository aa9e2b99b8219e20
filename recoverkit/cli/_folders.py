"""Reading checkpoints folders for the subcommands.

Listing goes through :meth:`Checkpointer.list_checkpoints`, so the command
line shows exactly the checkpoints that training scripts would see. Folders
named like checkpoints that listing skips are returned with the reason, and
marked broken when their meta file exists but cannot be read.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import click

from recoverkit.checkpointer import Checkpointer
from recoverkit.cli._output import CheckFailed, usage_error
from recoverkit.storage.layout import METAFNAME, PARAMFILE_EXT, Checkpoint, is_checkpoint_dirname
from recoverkit.storage.listing import read_checkpoint
from recoverkit.storage.meta import END_OF_EPOCH_KEY, UNIXTIME_KEY, parse_meta

__all__ = [
    "EXISTING_DIR",
    "SkippedFolder",
    "folder_size",
    "list_checkpoints",
    "list_skipped",
    "load_checkpoint_folder",
    "user_meta",
]

# The type of every DIR argument: a missing folder is a usage error (exit 2).
EXISTING_DIR = click.Path(exists=True, file_okay=False, dir_okay=True, path_type=pathlib.Path)


@dataclasses.dataclass(frozen=True)
class SkippedFolder:
    """A folder named like a checkpoint that listing skips, and why.

    ``broken`` is True when the folder has a meta file that cannot be read
    or parsed, and False for folders that are not checkpoints at all (no
    meta file, or a meta file without a manifest and parameter files).
    """

    path: pathlib.Path
    reason: str
    broken: bool


def list_checkpoints(checkpoints_dir: pathlib.Path) -> list[Checkpoint]:
    """Return the checkpoints of an existing folder, newest first."""
    checkpoints = Checkpointer(checkpoints_dir).list_checkpoints()
    return sorted(checkpoints, key=_unixtime_or_zero, reverse=True)


def list_skipped(checkpoints_dir: pathlib.Path, listed: list[Checkpoint]) -> list[SkippedFolder]:
    """Return the ``CKPT+*`` folders that are not in ``listed``, by name, with the reason."""
    listed_paths = {checkpoint.path.resolve() for checkpoint in listed}
    skipped = []
    for entry in sorted(os.scandir(checkpoints_dir), key=lambda e: e.name):
        if not is_checkpoint_dirname(entry.name) or not entry.is_dir():
            continue
        path = pathlib.Path(entry.path)
        if path.resolve() in listed_paths:
            continue
        reason, broken = _skip_reason(path)
        skipped.append(SkippedFolder(path, reason, broken))
    return skipped


def load_checkpoint_folder(path: pathlib.Path) -> tuple[Checkpoint, dict[str, Any] | None]:
    """Read one checkpoint folder and its manifest (None for SpeechBrain-written folders).

    Raises
    ------
    click.UsageError
        If ``path`` is a folder of checkpoints rather than one checkpoint.
    CheckFailed
        If ``path`` looks like a checkpoint but cannot be read.
    """
    result = read_checkpoint(path)
    if result is not None:
        return result
    if not (path / METAFNAME).exists() and any(
        is_checkpoint_dirname(child.name) for child in path.iterdir() if child.is_dir()
    ):
        usage_error(
            f"{path} is a folder of checkpoints, not a checkpoint. Pass one of its "
            f"CKPT+* folders (list them with: recoverkit ls {path})."
        )
    reason, _broken = _skip_reason(path)
    raise CheckFailed(f"Cannot read checkpoint {path}: {reason}.")


def user_meta(checkpoint: Checkpoint) -> dict[str, Any]:
    """Return the meta values the training script stored, without the ones recoverkit adds."""
    return {
        key: value
        for key, value in checkpoint.meta.items()
        if key not in (UNIXTIME_KEY, END_OF_EPOCH_KEY)
    }


def folder_size(path: pathlib.Path) -> int:
    """Return the total size in bytes of the files under ``path``."""
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for filename in filenames:
            try:
                total += os.stat(os.path.join(dirpath, filename)).st_size
            except OSError:
                continue
    return total


def _unixtime_or_zero(checkpoint: Checkpoint) -> float:
    value = checkpoint.meta.get(UNIXTIME_KEY, 0.0)
    return float(value) if isinstance(value, (int, float)) else 0.0


def _skip_reason(path: pathlib.Path) -> tuple[str, bool]:
    """Return why listing skips ``path``, and whether that makes the folder broken."""
    meta_path = path / METAFNAME
    if not meta_path.is_file():
        return f"the meta file {METAFNAME} is missing", False
    try:
        parse_meta(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        return f"the meta file {METAFNAME} cannot be read ({error})", True
    except ValueError as error:
        return f"the meta file {METAFNAME} is invalid ({error})", True
    if not any(child.name.endswith(PARAMFILE_EXT) for child in path.iterdir()):
        return f"a {METAFNAME} meta file but no {PARAMFILE_EXT} parameter files", False
    return "listing skips it for an unknown reason", True
