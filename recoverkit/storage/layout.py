"""Folder layout of a checkpoint, identical to SpeechBrain's.

A checkpoint is a folder ``CKPT+<name>`` inside the checkpoints folder. It
contains the meta file ``CKPT.yaml`` and one ``<recoverable>.ckpt`` file per
recoverable. Folders being written or deleted carry a leading dot, so neither
recoverkit nor SpeechBrain ever lists them.
"""

from __future__ import annotations

import logging
import os
import pathlib
import time
import uuid
from typing import Any, NamedTuple

from recoverkit.errors import InvalidCheckpointNameError

__all__ = [
    "CKPT_PREFIX",
    "METAFNAME",
    "PARAMFILE_EXT",
    "TMP_PREFIX",
    "TRASH_PREFIX",
    "Checkpoint",
    "checkpoint_dirname",
    "default_checkpoint_name",
    "is_checkpoint_dirname",
    "temporary_dirname",
    "trash_dirname",
    "validate_checkpoint_name",
]

logger = logging.getLogger(__name__)

CKPT_PREFIX = "CKPT"
METAFNAME = f"{CKPT_PREFIX}.yaml"
PARAMFILE_EXT = ".ckpt"
TMP_PREFIX = ".tmp+"
TRASH_PREFIX = ".trash+"


class Checkpoint(NamedTuple):
    """A saved checkpoint: its folder, its meta values and its parameter files.

    ``meta`` is the dict of values stored in the meta file (``unixtime``,
    ``end-of-epoch`` and whatever the caller passed). ``paramfiles`` maps
    each recoverable name to the path of its file.
    """

    path: pathlib.Path
    meta: dict[str, Any]
    paramfiles: dict[str, pathlib.Path]


def validate_checkpoint_name(name: str) -> str:
    """Return ``name`` if it is usable as a custom checkpoint name, else raise."""
    if not isinstance(name, str):
        raise InvalidCheckpointNameError(
            f"Checkpoint name must be a string, got {type(name).__name__} {name!r}."
        )
    problem = None
    if not name.strip():
        problem = "it is empty"
    elif "/" in name or "\\" in name or (os.altsep and os.altsep in name):
        problem = "it contains a path separator"
    elif ".." in name:
        problem = "it contains '..'"
    elif name.startswith("."):
        problem = "it starts with '.', which marks hidden folders"
    elif "\0" in name:
        problem = "it contains a NUL character"
    if problem is not None:
        raise InvalidCheckpointNameError(
            f"Invalid checkpoint name {name!r}: {problem}. "
            "Use a plain folder name such as 'epoch-3' or 'best'."
        )
    return name


def checkpoint_dirname(name: str) -> str:
    """Return the folder name of the checkpoint called ``name``."""
    return f"{CKPT_PREFIX}+{name}"


def default_checkpoint_name(unixtime: float) -> str:
    """Return a unique name made of the local time and a random suffix."""
    stamp = time.strftime("%Y-%m-%d+%H-%M-%S", time.localtime(unixtime))
    return f"{stamp}+{uuid.uuid4().hex[:8]}"


def is_checkpoint_dirname(dirname: str) -> bool:
    """Return True if ``dirname`` has the form of a published checkpoint folder."""
    return dirname.startswith(f"{CKPT_PREFIX}+")


def temporary_dirname(final_dirname: str) -> str:
    """Return the hidden name under which a checkpoint folder is written."""
    return f"{TMP_PREFIX}{final_dirname}+{os.getpid()}+{uuid.uuid4().hex[:8]}"


def trash_dirname(dirname: str) -> str:
    """Return the hidden name a checkpoint folder gets while it is deleted."""
    return f"{TRASH_PREFIX}{dirname}+{uuid.uuid4().hex[:8]}"
