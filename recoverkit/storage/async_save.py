"""Saving checkpoints in a background thread while training goes on.

An asynchronous save has two parts. In the caller's thread, every recoverable
saved by the default ``torch_save`` hook is snapshotted: its state dict is
deep-copied (``copy.deepcopy``, which keeps tensors that share storage
sharing it), so training may change the tensors as soon as the call returns.
Recoverables with other save hooks (custom hooks, ``@mark_as_saver``
methods, RNG state) cannot be copied in general, so their hooks run in the
caller's thread as in a synchronous save. They are usually small, and their
files are flushed to disk in the background before publishing. The copies of
one save are kept and the next save copies into them, which is faster than
allocating new memory but keeps one copy of the state in memory between
saves. In the
background thread, the snapshots are written with the same ``torch_save``
hook, the manifest and meta file are written, and the folder is published
exactly as a synchronous save would, so the files are identical.

One worker thread runs the jobs in order, and a new save first waits for the
one in flight. An error in the background is logged when it happens and
raised again by the next call that waits. Jobs queued after a failed one
(such as deleting old checkpoints) are skipped. At interpreter exit Python
waits for the queued jobs to finish (``concurrent.futures`` joins its
workers before the interpreter shuts down). A process killed by a signal or
``os._exit`` leaves only a hidden temporary folder, which the next save
removes.
"""

from __future__ import annotations

import collections
import concurrent.futures
import copy
import logging
import pathlib
import shutil
import threading
from collections.abc import Callable, Mapping
from typing import Any

import torch

from recoverkit.hooks.torch_hooks import torch_save
from recoverkit.storage.layout import PARAMFILE_EXT, Checkpoint
from recoverkit.storage.integrity import check_weights_only_loadable
from recoverkit.storage.torch_io import deferred_fsync

__all__ = ["BackgroundSaver", "SnapshotBuffers", "snapshot_state"]

logger = logging.getLogger(__name__)

Hook = Callable[..., Any]


def snapshot_state(state: Any, buffers: SnapshotBuffers | None = None) -> Any:
    """Return a deep copy of a state dict that later changes to the original cannot reach.

    Tensors are copied on their own device. Tensors that share storage in
    ``state`` share one copied storage, so ``torch.save`` writes the copy
    exactly as it would write the original. With ``buffers``, tensors are
    copied into buffers of an earlier snapshot where one of the same shape,
    dtype and device is free, which spares allocating new memory.
    """
    memo: dict[int, Any] = {}
    if buffers is not None:
        memo = buffers.copy_into_free(state)
    return copy.deepcopy(state, memo)


def _walk_tensors(state: Any) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, Mapping):
        return [tensor for value in state.values() for tensor in _walk_tensors(value)]
    if isinstance(state, (list, tuple)):
        return [tensor for value in state for tensor in _walk_tensors(value)]
    return []


def _buffer_key(tensor: torch.Tensor) -> tuple[Any, ...] | None:
    """Return the key under which ``tensor`` can be a copy buffer, or None if it cannot.

    Only plain contiguous tensors that span their whole storage qualify, so
    a copy into a buffer gives the same ``torch.save`` bytes as a deep copy.
    """
    if type(tensor) is not torch.Tensor or tensor.requires_grad or not tensor.is_contiguous():
        return None
    if tensor.storage_offset() != 0:
        return None
    if tensor.untyped_storage().nbytes() != tensor.numel() * tensor.element_size():
        return None
    return (tuple(tensor.shape), tensor.dtype, tensor.device)


class SnapshotBuffers:
    """Tensors of the previous snapshot, kept to copy the next snapshot into.

    Copying into memory that is already mapped is faster than allocating
    new tensors, at the cost of keeping one copy of the state between saves.
    """

    def __init__(self) -> None:
        self._free: dict[tuple[Any, ...], list[torch.Tensor]] = collections.defaultdict(list)
        self._guard = threading.Lock()

    def copy_into_free(self, state: Any) -> dict[int, Any]:
        """Copy tensors of ``state`` into free buffers; return a ``copy.deepcopy`` memo of them."""
        tensors = _walk_tensors(state)
        storage_users = collections.Counter(tensor.untyped_storage().data_ptr() for tensor in tensors)
        memo: dict[int, Any] = {}
        with self._guard:
            for tensor in tensors:
                key = _buffer_key(tensor)
                if key is None or id(tensor) in memo or not self._free.get(key):
                    continue
                if storage_users[tensor.untyped_storage().data_ptr()] != 1:
                    continue  # shared storage must stay shared: deepcopy handles it
                buffer = self._free[key].pop()
                buffer.copy_(tensor)
                memo[id(tensor)] = buffer
        return memo

    def discard_free(self) -> None:
        """Drop the buffers no snapshot took, because the state changed shape."""
        with self._guard:
            self._free.clear()

    def release(self, snapshot: Any) -> None:
        """Keep the tensors of a snapshot that was written, for the next snapshot."""
        with self._guard:
            for tensor in _walk_tensors(snapshot):
                key = _buffer_key(tensor)
                if key is not None:
                    self._free[key].append(tensor)


class _FrozenState:
    """Stands in for a recoverable in the background, holding its copied state dict."""

    def __init__(self, state: Any, source_type: type) -> None:
        self._state = state
        self.source_type = source_type

    def state_dict(self) -> Any:
        return self._state

    def __repr__(self) -> str:
        return f"snapshot of {self.source_type.__name__}"


class BackgroundSaver:
    """Runs the disk part of checkpoint saves, one at a time, in a background thread."""

    def __init__(self) -> None:
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: list[concurrent.futures.Future[None]] = []
        self._guard = threading.Lock()
        self._error: BaseException | None = None
        self._worker_ident: int | None = None
        self._buffers = SnapshotBuffers()

    def start_save(
        self,
        recoverables: Mapping[str, Any],
        save_hook_for: Callable[[str, Any], Hook],
        tmp_dir: pathlib.Path,
        final_dir: pathlib.Path,
        meta: dict[str, Any],
        finish_save: Callable[[pathlib.Path, pathlib.Path, dict[str, Any]], None],
        verbosity: int,
    ) -> Checkpoint:
        """Snapshot the recoverables into ``tmp_dir`` and queue the rest of the save.

        Parameters
        ----------
        recoverables : mapping
            Name to object, as registered with the Checkpointer.
        save_hook_for : callable
            Called as ``save_hook_for(name, obj)``; returns the save hook.
        tmp_dir : pathlib.Path
            The hidden folder the save writes into. It is removed if the save
            fails.
        final_dir : pathlib.Path
            The folder name under which the checkpoint is published.
        meta : dict
            The meta values, without the file manifest.
        finish_save : callable
            Called as ``finish_save(tmp_dir, final_dir, meta)`` in the
            background once every file is written; writes the manifest and
            the meta file and publishes the folder.
        verbosity : int
            The logging level of the message logged when the save is published.

        Returns
        -------
        Checkpoint
            The checkpoint as it will be listed once published.
        """
        self.wait()
        try:
            deferred = self._snapshot_or_save_now(recoverables, save_hook_for, tmp_dir, self._buffers)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise

        def write_and_publish() -> None:
            try:
                for path, hook, frozen in deferred:
                    hook(frozen, path)
                    check_weights_only_loadable(path, path.name[: -len(PARAMFILE_EXT)])
                finish_save(tmp_dir, final_dir, meta)
            except BaseException:
                shutil.rmtree(tmp_dir, ignore_errors=True)
                raise
            finally:
                for _path, _hook, frozen in deferred:
                    self._buffers.release(frozen.state_dict())
            logger.log(verbosity, "Saved a checkpoint in %s (in the background)", final_dir)

        paramfiles = {
            name: final_dir / f"{name}{PARAMFILE_EXT}"
            for name in recoverables
            if (tmp_dir / f"{name}{PARAMFILE_EXT}").exists()
            or any(path.name == f"{name}{PARAMFILE_EXT}" for path, _hook, _frozen in deferred)
        }
        self.submit(write_and_publish, f"save of {final_dir}")
        return Checkpoint(final_dir, dict(meta), paramfiles)

    def submit(self, job: Callable[[], None], description: str) -> None:
        """Queue ``job`` after the jobs already queued.

        If an earlier job failed and its error has not been raised yet, the
        job is skipped.
        """
        with self._guard:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="recoverkit-save"
                )
            future = self._executor.submit(self._run, job, description)
            self._pending.append(future)

    def wait(self) -> None:
        """Wait for every queued job; raise the first background error, if any.

        Called from the worker thread itself (by a queued job), it returns at
        once, because waiting there would wait forever.
        """
        if threading.get_ident() == self._worker_ident:
            return
        with self._guard:
            pending, self._pending = self._pending, []
        concurrent.futures.wait(pending)
        with self._guard:
            error, self._error = self._error, None
        if error is not None:
            raise error

    @property
    def busy(self) -> bool:
        """True while a queued job has not finished."""
        with self._guard:
            return any(not future.done() for future in self._pending)

    def _run(self, job: Callable[[], None], description: str) -> None:
        self._worker_ident = threading.get_ident()
        if self._error is not None:
            logger.warning("Skipping the %s because an earlier background save failed", description)
            return
        try:
            job()
        except BaseException as error:  # kept and raised at the next wait()
            logger.error("Background %s failed: %s", description, error, exc_info=error)
            self._error = error

    @staticmethod
    def _snapshot_or_save_now(
        recoverables: Mapping[str, Any],
        save_hook_for: Callable[[str, Any], Hook],
        tmp_dir: pathlib.Path,
        buffers: SnapshotBuffers,
    ) -> list[tuple[pathlib.Path, Hook, _FrozenState]]:
        deferred = []
        for name, obj in recoverables.items():
            hook = save_hook_for(name, obj)
            path = tmp_dir / f"{name}{PARAMFILE_EXT}"
            if hook is torch_save:
                frozen = _FrozenState(snapshot_state(obj.state_dict(), buffers), type(obj))
                deferred.append((path, hook, frozen))
            else:
                with deferred_fsync():
                    hook(obj, path)
                check_weights_only_loadable(path, name)
        buffers.discard_free()
        return deferred
