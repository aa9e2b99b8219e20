"""Writing and reading tensor files with ``torch.save`` and weights-only ``torch.load``."""

from __future__ import annotations

import logging
import os
import pickle
from typing import Any

import torch

from recoverkit.errors import UnsafeCheckpointFileError

__all__ = ["load_weights_only", "save_torch_file"]

logger = logging.getLogger(__name__)


def save_torch_file(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` with ``torch.save`` in the format plain ``torch.load`` reads."""
    torch.save(obj, path)


def load_weights_only(path: str | os.PathLike, device: str | torch.device = "cpu", mmap: bool = False) -> Any:
    """Load a file with ``torch.load(weights_only=True)`` onto ``device``.

    Weights-only loading never runs code from the file. A file that needs
    other globals raises :class:`UnsafeCheckpointFileError`, which says how
    to allow them. With ``mmap`` the tensors of a zip-format file are mapped
    from disk instead of read into memory, which suits looking at large
    files; ``torch.load`` raises RuntimeError for older formats then.
    """
    try:
        return torch.load(path, map_location=device, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointFileError(
            f"Cannot load {path} with weights-only loading, which recoverkit "
            f"always uses: {_first_line(error)}. If you trust this file and the "
            "types it names, allow them before loading with "
            "torch.serialization.add_safe_globals([YourType, ...]) or the "
            "torch.serialization.safe_globals context manager. To avoid the "
            "problem, save only tensors, numbers, strings, lists, tuples and dicts."
        ) from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
