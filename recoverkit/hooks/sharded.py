"""Sharded recoverables: every process saves its own shards with ``torch.distributed.checkpoint``.

A model split across processes with FSDP2 (``fully_shard``) or built from
DTensor parameters holds only a shard of each tensor on each process. Saving it
with the default hooks would write rank 0's shards only. The hooks here call
``torch.distributed.checkpoint`` (DCP) on every process instead: the
recoverable's place in the checkpoint, ``<name>.ckpt``, becomes a folder in
which each rank writes its own shard file and rank 0 writes DCP's ``.metadata``.
No process gathers the full model, and DCP reshards on load, so a checkpoint
written by N processes loads with M processes, or in one process without a
process group.

The Checkpointer treats the folder like any other recoverable file: the
manifest checksums every shard file, and the folder is published with the rest
of the checkpoint in one rename.

Example
-------
>>> import torch
>>> from recoverkit import Checkpointer
>>> model = torch.nn.Linear(2, 1)
>>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
>>> checkpointer = Checkpointer(
...     getfixture('tmpdir'), {'trainer': ShardedState(model, optimizer)}
... )
>>> checkpoint = checkpointer.save_checkpoint()
>>> checkpoint.paramfiles['trainer'].is_dir()
True
>>> with torch.no_grad():
...     _ = model.weight.fill_(0.0)
>>> checkpointer.load_checkpoint(checkpoint)
>>> bool(model.weight.abs().sum() > 0)
True
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from recoverkit import distributed
from recoverkit.errors import CheckpointFormatError, ShardedCheckpointError
from recoverkit.hooks.decorators import mark_as_loader, mark_as_saver, register_checkpoint_hooks
from recoverkit.storage.atomic import fsync_dir

__all__ = ["ShardedState", "load_sharded", "save_sharded"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

# DCP's own index of a checkpoint folder, written last by the coordinator rank.
_DCP_METADATA_FILENAME = ".metadata"


@register_checkpoint_hooks(save_on_main_only=False)
class ShardedState:
    """A model and its optimizers, saved and loaded shard by shard on every process.

    Register it as one recoverable in place of the model and the optimizers.
    The state dicts come from ``torch.distributed.checkpoint.state_dict``, so
    optimizer state is keyed by parameter name rather than by position, and
    sharded tensors stay sharded. Plain, unsharded modules work too: DCP
    writes each replicated tensor once, and a sharded model can load it.

    Parameters
    ----------
    model : torch.nn.Module
        The model, already wrapped with ``fully_shard`` or holding DTensor
        parameters when it is sharded. Wrap it before creating the optimizer,
        because sharding replaces the parameters.
    optimizers : torch.optim.Optimizer or list of them, optional
        Optimizers over ``model``'s parameters.
    strict : bool, optional
        If True (the default), loading raises when the checkpoint lacks a
        value the model or an optimizer needs. If False, such values keep
        their current state.

    Raises
    ------
    TypeError
        If ``model`` is not a module or an optimizer is not an optimizer.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizers: torch.optim.Optimizer | Iterable[torch.optim.Optimizer] | None = None,
        strict: bool = True,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(
                f"ShardedState needs a torch.nn.Module as model, got {type(model).__name__}. "
                "Pass the model object, not its state dict."
            )
        self.model = model
        self.optimizers = _as_optimizer_list(optimizers)
        self.strict = bool(strict)

    def __repr__(self) -> str:
        optimizer_names = [type(optimizer).__name__ for optimizer in self.optimizers]
        return f"ShardedState(model={type(self.model).__name__}, optimizers={optimizer_names})"

    def state_dict(self) -> dict[str, Any]:
        """Return the model and optimizer state, with sharded tensors left sharded.

        Returns
        -------
        dict
            ``{"model": ..., "optimizer": ...}``, where the optimizer entry
            contains the state of every optimizer, keyed by parameter name. It is
            an empty dict without optimizers.
        """
        options = StateDictOptions(strict=self.strict)
        if not self.optimizers:
            return {"model": get_model_state_dict(self.model, options=options), "optimizer": {}}
        model_state, optimizer_state = get_state_dict(self.model, self.optimizers, options=options)
        return {"model": model_state, "optimizer": optimizer_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load the output of :meth:`state_dict` into the model and the optimizers.

        Raises
        ------
        KeyError
            If ``state`` has no ``"model"`` entry, or no ``"optimizer"`` entry
            while this object has optimizers.
        """
        options = StateDictOptions(strict=self.strict)
        if not self.optimizers:
            set_model_state_dict(self.model, state["model"], options=options)
            return
        set_state_dict(
            self.model,
            self.optimizers,
            model_state_dict=state["model"],
            optim_state_dict=state["optimizer"],
            options=options,
        )

    @mark_as_saver
    def _save(self, path: pathlib.Path) -> None:
        save_sharded(self, path)

    @mark_as_loader
    def _recover(self, path: pathlib.Path, end_of_epoch: bool) -> None:
        load_sharded(self, path, end_of_epoch)


def save_sharded(obj: Any, path: PathLike) -> None:
    """Save ``obj`` with ``torch.distributed.checkpoint`` into the folder ``path``.

    Every process of the process group must call it at the same point,
    because DCP coordinates the processes. The Checkpointer does this for
    :class:`ShardedState`; pass this function as ``custom_save_hook`` to use
    it for another object.

    Parameters
    ----------
    obj : ShardedState, torch.nn.Module or object with ``state_dict()``
        What to save. A module is saved as ``ShardedState(obj)``. An
        optimizer is rejected: wrap it with its model in ShardedState.
    path : str or pathlib.Path
        The folder to create, normally ``<checkpoint>/<name>.ckpt``.

    Raises
    ------
    ShardedCheckpointError
        If DCP fails on any rank. Every rank raises it.
    TypeError
        If ``obj`` is an optimizer, or has no ``state_dict()``.
    """
    path = pathlib.Path(path)
    state = _as_stateful(obj).state_dict()
    writer = dcp.FileSystemWriter(path, sync_files=True)
    try:
        with _single_process_warning_silenced():
            dcp.save(state, storage_writer=writer)
    except CheckpointException as error:
        raise _sharded_error("save", obj, path, error) from error
    if distributed.is_main_process():
        # DCP flushes its files, but not the folder entries that name them.
        fsync_dir(path)
    logger.debug(
        "Rank %d saved its shards of %s in %s", distributed.get_rank(), type(obj).__name__, path
    )


def load_sharded(obj: Any, path: PathLike, end_of_epoch: bool = True) -> None:
    """Load a folder written by :func:`save_sharded` into ``obj``, resharding as needed.

    Call it on every process of the process group, or in a single process
    without one. The number of processes may differ from the save.

    Parameters
    ----------
    obj : ShardedState, torch.nn.Module or object with ``load_state_dict()``
        What to load into.
    path : str or pathlib.Path
        The folder of the recoverable inside a checkpoint.
    end_of_epoch : bool, optional
        Unused: sharded state is complete at any point of an epoch.

    Raises
    ------
    CheckpointFormatError
        If ``path`` is not a folder written by ``torch.distributed.checkpoint``.
    ShardedCheckpointError
        If DCP fails on any rank, for example because the checkpoint lacks a
        value that ``obj`` needs. Every rank raises it.
    """
    del end_of_epoch
    path = pathlib.Path(path)
    _check_is_dcp_folder(path)
    target = _as_stateful(obj)
    # DCP fills the tensors of this state dict in place, reading only the
    # slices this process holds.
    state = target.state_dict()
    planner = dcp.DefaultLoadPlanner(allow_partial_load=not getattr(target, "strict", True))
    try:
        with _single_process_warning_silenced():
            dcp.load(state, storage_reader=dcp.FileSystemReader(path), planner=planner)
    except CheckpointException as error:
        raise _sharded_error("load", obj, path, error) from error
    target.load_state_dict(state)
    logger.debug("Rank %d loaded %s from %s", distributed.get_rank(), type(obj).__name__, path)


@contextlib.contextmanager
def _single_process_warning_silenced() -> Iterator[None]:
    # Without a process group DCP warns on every call that it assumes a single
    # process. That is the intended use here, so the warning is noise.
    with warnings.catch_warnings():
        if not distributed.is_distributed():
            warnings.filterwarnings(
                "ignore", message="torch.distributed is disabled", category=UserWarning
            )
        yield


def _sharded_error(action: str, obj: Any, path: pathlib.Path, error: CheckpointException) -> ShardedCheckpointError:
    # CheckpointException derives from BaseException, which `except Exception`
    # in training scripts would not catch, so it is turned into a RuntimeError.
    failures = error.failures
    ranks = tuple(sorted(failures))
    first = failures[ranks[0]] if ranks else error
    hint = (
        "Check that the model and optimizers have the same parameters as when the "
        "checkpoint was saved; ShardedState(..., strict=False) loads what matches."
        if action == "load"
        else "Check that every rank can write to the checkpoints folder."
    )
    return ShardedCheckpointError(
        f"Cannot {action} the sharded state of {type(obj).__name__} at {path}: "
        f"torch.distributed.checkpoint failed on rank(s) {list(ranks)} with "
        f"{type(first).__name__}: {first}. {hint}",
        failed_ranks=ranks,
    )


class _PlainStateful:
    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.obj.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.obj.load_state_dict(state["state"])


def _as_stateful(obj: Any) -> Any:
    if isinstance(obj, ShardedState):
        return obj
    if isinstance(obj, torch.nn.Module):
        return ShardedState(obj)
    if isinstance(obj, torch.optim.Optimizer):
        # Its state is keyed by parameter position and is empty until the
        # first step, so DCP would find nothing to load into.
        raise TypeError(
            f"Cannot save or load {type(obj).__name__} on its own with "
            "torch.distributed.checkpoint. Register ShardedState(model, optimizer) "
            "as one recoverable instead."
        )
    if callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None)):
        return _PlainStateful(obj)
    raise TypeError(
        f"Cannot save or load {type(obj).__name__} with torch.distributed.checkpoint: it has "
        "no state_dict() and load_state_dict() methods. Wrap a model and its optimizers "
        "in ShardedState(model, optimizers)."
    )


def _as_optimizer_list(
    optimizers: torch.optim.Optimizer | Iterable[torch.optim.Optimizer] | None,
) -> list[torch.optim.Optimizer]:
    if optimizers is None:
        return []
    if isinstance(optimizers, torch.optim.Optimizer):
        return [optimizers]
    result = list(optimizers)
    for optimizer in result:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                "ShardedState optimizers must be torch.optim.Optimizer objects, got "
                f"{type(optimizer).__name__}."
            )
    return result


def _check_is_dcp_folder(path: pathlib.Path) -> None:
    if path.is_file():
        raise CheckpointFormatError(
            f"Cannot load {path} as sharded state: it is a single file, written by a "
            "save hook that runs on rank 0 only (such as torch_save). Load it with the "
            "hook that wrote it, or save the recoverable again as ShardedState."
        )
    if not (path / _DCP_METADATA_FILENAME).is_file():
        raise CheckpointFormatError(
            f"Cannot load {path} as sharded state: the folder has no "
            f"{_DCP_METADATA_FILENAME} file, so torch.distributed.checkpoint did not "
            "finish writing it. Load another checkpoint."
        )
