"""Loading parameter files and describing what they contain."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterator
from typing import Any

import torch

from recoverkit.errors import UnsafeCheckpointFileError
from recoverkit.storage.torch_io import load_weights_only

__all__ = ["Entry", "LoadFailed", "describe", "flatten", "load_parameter_file", "read_short_text"]

# Files this small that fail to load as torch files are shown as text, because
# some recoverables (EpochCounter) write plain text.
_MAX_TEXT_BYTES = 4096
_MAX_VALUE_CHARS = 60


class LoadFailed(Exception):
    """A parameter file that neither weights-only torch.load nor a text read accepts."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One leaf of a loaded file: a tensor, or another value."""

    key: str
    type: str
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    num_bytes: int | None = None
    value: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Return the entry as a JSON-ready dict."""
        data = dataclasses.asdict(self)
        data["shape"] = list(self.shape) if self.shape is not None else None
        return data


def load_parameter_file(path: pathlib.Path) -> Any:
    """Load a parameter file with weights-only ``torch.load``, or as text.

    Raises
    ------
    LoadFailed
        If the file is neither a loadable torch file nor short UTF-8 text.
    """
    try:
        return load_weights_only(path, "cpu", mmap=True)
    except UnsafeCheckpointFileError as error:
        raise LoadFailed(str(error)) from error
    except Exception as error:  # noqa: BLE001
        # torch's unpickler raises almost any type on altered bytes (KeyError,
        # IndexError, TypeError, struct.error, ...), and one altered file must
        # not hide the others of the checkpoint.
        torch_error = error
    text = read_short_text(path)
    if text is None:
        raise LoadFailed(f"torch.load failed: {_first_line(torch_error)}")
    return text


def flatten(obj: Any, prefix: str = "") -> Iterator[Entry]:
    """Yield the leaves of nested dicts, lists and tuples with dotted keys."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from flatten(value, f"{prefix}{key}.")
    elif isinstance(obj, (list, tuple)) and any(isinstance(item, (dict, list, tuple, torch.Tensor)) for item in obj):
        for index, value in enumerate(obj):
            yield from flatten(value, f"{prefix}{index}.")
    else:
        yield _leaf(prefix.rstrip(".") or "(root)", obj)


def describe(obj: Any) -> str:
    """Return a one-line summary of a loaded file, such as ``state dict: 2 tensors``."""
    if isinstance(obj, str):
        return f"text: {_short_repr(obj.strip())}"
    if isinstance(obj, torch.Tensor):
        return f"tensor {_shape_text(tuple(obj.shape))} {_dtype_text(obj.dtype)}"
    entries = list(flatten(obj))
    tensors = [entry for entry in entries if entry.shape is not None]
    others = len(entries) - len(tensors)
    kind = "state dict" if is_flat_state_dict(obj) else type(obj).__name__
    parts = [f"{len(tensors)} tensors"]
    if tensors:
        elements = sum(_numel(entry.shape) for entry in tensors)
        dtypes = sorted({entry.dtype for entry in tensors if entry.dtype})
        parts.append(f"{elements:,} elements ({', '.join(dtypes)})")
    if others:
        parts.append(f"{others} other values")
    return f"{kind}: {', '.join(parts)}"


def is_flat_state_dict(obj: Any) -> bool:
    """Return True for a dict of string keys to tensors, the form of ``Module.state_dict()``."""
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in obj.items())
    )


def _leaf(key: str, value: Any) -> Entry:
    if isinstance(value, torch.Tensor):
        return Entry(
            key=key,
            type="tensor",
            shape=tuple(value.shape),
            dtype=_dtype_text(value.dtype),
            num_bytes=value.numel() * value.element_size(),
        )
    return Entry(key=key, type=type(value).__name__, value=_short_repr(value))


def _numel(shape: tuple[int, ...] | None) -> int:
    count = 1
    for size in shape or ():
        count *= size
    return count


def _shape_text(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


def _dtype_text(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _short_repr(value: Any) -> str:
    text = repr(value)
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return text


def read_short_text(path: pathlib.Path) -> str | None:
    """Return the contents of a small, printable UTF-8 file, or None for any other file."""
    try:
        if path.stat().st_size > _MAX_TEXT_BYTES:
            return None
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    # An empty file, or the start of a zip file cut short, is not text.
    if not text.strip() or not all(char.isprintable() or char in "\n\r\t" for char in text):
        return None
    return text


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
