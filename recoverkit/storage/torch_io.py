"""Writing and reading tensor files with ``torch.save`` and weights-only ``torch.load``.

Saving is tuned for checkpoints that must reach the disk before they are
published. :func:`save_torch_file` writes through its own unbuffered file
handle and computes the XXH3-64 checksum of the bytes while writing them, so
the file manifest needs no second read. It skips the CRC32 that
``torch.save`` computes for every zip record, because the manifest's checksum
covers the whole file, and it flushes the file to disk. Plain
``torch.load(weights_only=True)`` reads the result. Generic zip tools such as
Python's ``zipfile`` report its zero CRC32 fields as errors.

Loading can map tensors from disk (``torch.load(mmap=True)``) instead of
reading them. :func:`loading_options` turns that on for every load in a
``with`` block, which is how :class:`~recoverkit.Checkpointer` passes its
``mmap`` argument down to the load hooks.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import pickle
import threading
from collections.abc import Iterator
from typing import Any

import torch
import xxhash

from recoverkit.errors import CheckpointFormatError, UnsafeCheckpointFileError
from recoverkit.storage.manifest import remember_checksum

__all__ = [
    "deferred_fsync",
    "load_module_state_dict",
    "load_weights_only",
    "loading_options",
    "mapped_reading",
    "mmap_loading_enabled",
    "save_torch_file",
]

logger = logging.getLogger(__name__)

# Writes smaller than this are gathered in memory, so the many small zip
# headers cost one system call per buffer instead of one each.
_SMALL_WRITE_BYTES = 64 * 1024
_GATHER_BYTES = 1024 * 1024

_crc32_guard = threading.Lock()
_mmap_loading: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "recoverkit_mmap_loading", default=False
)
_mapped_reading: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "recoverkit_mapped_reading", default=False
)
_fsync_deferred: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "recoverkit_fsync_deferred", default=False
)


class _HashingWriter:
    """A write-only file object that hashes what it writes to an unbuffered file."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._digest = xxhash.xxh3_64()
        self._pending = bytearray()
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        length = view.nbytes
        self._digest.update(view)
        self.size += length
        if length < _SMALL_WRITE_BYTES:
            self._pending += view
            if len(self._pending) >= _GATHER_BYTES:
                self.flush()
        else:
            self.flush()
            self._write_all(view)
        return length

    def flush(self) -> None:
        if self._pending:
            self._write_all(memoryview(self._pending))
            self._pending = bytearray()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def _write_all(self, view: memoryview) -> None:
        # An unbuffered write may be partial (Linux writes at most about 2 GiB
        # per call), so write until every byte is out.
        while view.nbytes:
            written = self._handle.write(view)
            view = view[written:]


@contextlib.contextmanager
def _crc32_disabled() -> Iterator[None]:
    # The switch is global in torch, so it is restored right after the write.
    # NOTE: a torch.save that another thread runs during this write also
    # skips CRC32; such files still load, but `unzip -t` reports bad CRCs.
    with _crc32_guard:
        previous = torch.serialization.get_crc32_options()
        torch.serialization.set_crc32_options(False)
        try:
            yield
        finally:
            torch.serialization.set_crc32_options(previous)


def save_torch_file(obj: Any, path: str | os.PathLike, durable: bool = True) -> None:
    """Write ``obj`` with ``torch.save`` in the format plain ``torch.load`` reads.

    The zip records carry no CRC32, because the checkpoint's file manifest
    contains an XXH3-64 checksum of the whole file instead. That checksum is
    computed here while the bytes are written and handed to
    :func:`~recoverkit.storage.manifest.build_manifest`.

    Parameters
    ----------
    obj : object
        What to save, usually a state dict.
    path : str or os.PathLike
        The file to write. An existing file is replaced.
    durable : bool, optional
        If True (the default) the file is flushed to stable storage with
        ``fsync`` before the function returns, unless the call runs inside
        :func:`deferred_fsync`.
    """
    durable = durable and not _fsync_deferred.get()
    with open(path, "wb", buffering=0) as handle:
        writer = _HashingWriter(handle)
        with _crc32_disabled():
            torch.save(obj, writer)
        writer.flush()
        if durable:
            os.fsync(handle.fileno())
        file_stat = os.fstat(handle.fileno())
    if file_stat.st_size == writer.size:
        remember_checksum(path, file_stat, writer.hexdigest(), durable=durable)


@contextlib.contextmanager
def deferred_fsync() -> Iterator[None]:
    """Leave flushing to disk to the manifest inside the ``with`` block.

    :func:`save_torch_file` then returns without ``fsync``, and
    :func:`~recoverkit.storage.manifest.build_manifest` flushes the file
    before the checkpoint is published, so the checkpoint stays durable.
    Asynchronous saves use it for hooks that run in the caller's thread.
    """
    token = _fsync_deferred.set(True)
    try:
        yield
    finally:
        _fsync_deferred.reset(token)


@contextlib.contextmanager
def loading_options(mmap: bool) -> Iterator[None]:
    """Set how :func:`load_weights_only` loads inside the ``with`` block.

    Parameters
    ----------
    mmap : bool
        If True, tensors are mapped from disk with ``torch.load(mmap=True)``
        and pages are read when first touched. Calls that pass ``mmap``
        themselves are not affected.

    NOTE: on Windows a mapped file cannot be deleted, so retention fails to delete a checkpoint whose tensors a module still maps. This path is tested on Linux only.
    """
    token = _mmap_loading.set(bool(mmap))
    try:
        yield
    finally:
        _mmap_loading.reset(token)


@contextlib.contextmanager
def mapped_reading() -> Iterator[None]:
    """Read files through ``mmap`` inside the ``with`` block, for tensors copied at once.

    Copying from the mapped file into existing tensors copies each byte once,
    where reading copies it into new memory first. Files in the old
    (non-zip) format, which cannot be mapped, are read as usual. Unlike
    ``loading_options(mmap=True)``, modules still copy the tensors.
    """
    token = _mapped_reading.set(True)
    try:
        yield
    finally:
        _mapped_reading.reset(token)


def mmap_loading_enabled() -> bool:
    """Return True inside ``loading_options(mmap=True)``."""
    return _mmap_loading.get()


def load_weights_only(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    mmap: bool | None = None,
) -> Any:
    """Load a file with ``torch.load(weights_only=True)`` onto ``device``.

    Weights-only loading never runs code from the file. A file that needs
    other globals raises :class:`UnsafeCheckpointFileError`, whose message explains how to allow them. With ``mmap`` the tensors of a zip-format file are mapped
    from disk instead of read into memory, which suits large files;
    ``torch.load`` raises RuntimeError for older formats then. With ``mmap``
    None (the default) the setting of :func:`loading_options` applies, which
    is off unless a caller turned it on.
    """
    if mmap is None:
        mmap = mmap_loading_enabled()
        if not mmap and _mapped_reading.get():
            return _load_mapped_if_possible(path, device)
    try:
        return torch.load(path, map_location=device, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        if not _names_a_global(error):
            raise CheckpointFormatError(
                f"Cannot load {path}: it is not a valid torch.save file "
                f"({_last_detail(error)}). It may be truncated or "
                "corrupted: check its folder with 'recoverkit verify', or recover "
                "from another checkpoint."
            ) from error
        raise UnsafeCheckpointFileError(
            f"Cannot load {path} with weights-only loading, which recoverkit "
            f"always uses: {_rejection_reason(error)}. If you trust this file and the "
            "types it names, allow them before loading with "
            "torch.serialization.add_safe_globals([YourType, ...]) or the "
            "torch.serialization.safe_globals context manager. To avoid the "
            "problem, save only tensors, numbers, strings, lists, tuples and dicts."
        ) from error


def _load_mapped_if_possible(path: str | os.PathLike, device: str | torch.device) -> Any:
    try:
        return load_weights_only(path, device, mmap=True)
    except RuntimeError as error:
        if "mmap" not in str(error):
            raise
        logger.debug("Reading %s without mmap: %s", path, error)
        return load_weights_only(path, device, mmap=False)


def load_module_state_dict(module: torch.nn.Module, state_dict: Any) -> None:
    """Load ``state_dict`` into ``module`` strictly.

    Inside ``loading_options(mmap=True)`` the module's parameters and buffers
    take over the mapped tensors instead of copying them, so loading costs
    the same for any model size and pages are read when training first
    touches them. The parameter objects stay the same, so an optimizer built
    before loading still updates them. The mapping is private: writes go to
    memory, never to the checkpoint file, and the first write to each page
    costs a page fault. Some modules are loaded with ``load_state_dict``,
    which copies and raises its usual errors: modules with their own loading
    logic (load-state-dict hooks, or an overridden ``_load_from_state_dict``),
    and state dicts that differ from the module in keys, shapes or dtypes.
    """
    if mmap_loading_enabled() and _can_take_over(module, state_dict):
        with torch.no_grad():
            targets = module.state_dict(keep_vars=True)
            for key, value in state_dict.items():
                targets[key].data = value
        return
    module.load_state_dict(state_dict, strict=True)


def _can_take_over(module: torch.nn.Module, state_dict: Any) -> bool:
    if not isinstance(state_dict, dict):
        return False
    for submodule in module.modules():
        if submodule._load_state_dict_pre_hooks or submodule._load_state_dict_post_hooks:
            return False
        if type(submodule)._load_from_state_dict not in _PLAIN_LOADERS:
            return False
    targets = module.state_dict(keep_vars=True)
    if targets.keys() != state_dict.keys():
        return False
    for key, target in targets.items():
        value = state_dict[key]
        if not isinstance(target, torch.Tensor) or not isinstance(value, torch.Tensor):
            return False
        if target.shape != value.shape or target.dtype != value.dtype:
            return False
        if target.device != value.device:
            return False
    return True


def _plain_loaders() -> frozenset[Any]:
    # Batch norm overrides _load_from_state_dict only to fill in a counter
    # missing from files of old torch versions; a full state dict needs nothing.
    from torch.nn.modules.batchnorm import _NormBase

    return frozenset({torch.nn.Module._load_from_state_dict, _NormBase._load_from_state_dict})


_PLAIN_LOADERS = _plain_loaders()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _names_a_global(error: BaseException) -> bool:
    """Return True if torch rejected the file for a global it does not allow."""
    return "GLOBAL" in str(error) or "Unsupported global" in str(error)


def _last_detail(error: BaseException) -> str:
    """Return the specific line of torch's message, such as 'Unsupported operand 103'."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    details = [line for line in lines if not line.startswith(("Weights only", "Please file", "Check the documentation"))]
    return details[-1] if details else "no detail"


def _rejection_reason(error: BaseException) -> str:
    """Return the line of torch's message that names the rejected global.

    Torch's first line is the same general notice for every file, so it
    would hide which global the file needs.
    """
    for line in str(error).splitlines():
        if "GLOBAL" in line:
            return line.strip().rstrip(".")
    return _first_line(error)
