"""Default hooks for PyTorch objects.

Modules, optimizers, every LR scheduler (``ReduceLROnPlateau`` included) and
``torch.amp.GradScaler`` are saved with ``torch.save`` of their state dict
and loaded with weights-only ``torch.load``. Any other object that has both
``state_dict`` and ``load_state_dict`` gets the same hooks from the
Checkpointer, without being registered here.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from recoverkit.distributed import main_process_only
from recoverkit.hooks.registry import (
    DEFAULT_LOAD_HOOKS,
    DEFAULT_SAVE_HOOKS,
    DEFAULT_TRANSFER_HOOKS,
)
from recoverkit.state_dict.remap import hook_on_loading_state_dict_checkpoint
from recoverkit.storage.torch_io import (
    load_module_state_dict,
    load_weights_only,
    mapped_reading,
    save_torch_file,
)

__all__ = [
    "torch_parameter_transfer",
    "torch_patched_state_dict_load",
    "torch_recovery",
    "torch_save",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike


@main_process_only
def torch_save(obj: Any, path: PathLike) -> None:
    """Save the state dict of ``obj`` to ``path`` with ``torch.save``.

    The default save hook for modules, optimizers, schedulers and scalers.
    It runs on the main process only.

    Parameters
    ----------
    obj : object with ``state_dict()``
        The instance to save.
    path : str or pathlib.Path
        The file to write.
    """
    state_dict = obj.state_dict()
    if not state_dict:
        logger.warning(
            "Saving an empty state_dict for %s in %s: nothing of it will be restored.",
            type(obj).__name__,
            path,
        )
    save_torch_file(state_dict, path)


def torch_patched_state_dict_load(path: PathLike, device: str | torch.device = "cpu") -> Any:
    """Load a state dict with weights-only ``torch.load`` and apply the key-mapping rules.

    The state dict is not applied to any object; see :func:`torch_recovery`
    and :func:`torch_parameter_transfer` for that.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to load.
    device : str
        Where the loaded tensors are placed, passed to ``torch.load`` as
        ``map_location``.

    Returns
    -------
    dict
        The loaded state dict.
    """
    state_dict = load_weights_only(path, device)
    return hook_on_loading_state_dict_checkpoint(state_dict)


def torch_recovery(obj: Any, path: PathLike, end_of_epoch: bool) -> None:
    """Load a state dict from ``path`` into ``obj`` at once.

    Modules load strictly: a missing or unexpected key is an error. Inside
    ``loading_options(mmap=True)`` a module takes over the tensors mapped
    from the file instead of copying them.

    Parameters
    ----------
    obj : object with ``load_state_dict()``
        The instance to load into.
    path : str or pathlib.Path
        The file to load.
    end_of_epoch : bool
        Whether the checkpoint was saved at the end of an epoch (unused here).
    """
    del end_of_epoch  # The state dict is complete either way.
    if isinstance(obj, torch.nn.Module):
        # The module copies every tensor, so the file is mapped, not read.
        with mapped_reading():
            state_dict = torch_patched_state_dict_load(path, "cpu")
        load_module_state_dict(obj, state_dict)
    else:
        obj.load_state_dict(torch_patched_state_dict_load(path, "cpu"))


def torch_parameter_transfer(obj: torch.nn.Module, path: PathLike) -> None:
    """Load the parameters in ``path`` into ``obj``, tolerating missing and extra keys.

    Keys of ``obj`` that the file lacks, and keys of the file that ``obj``
    lacks, are logged as warnings instead of raising.

    Parameters
    ----------
    obj : torch.nn.Module
        The module to load into.
    path : str or pathlib.Path
        The file to load.
    """
    state_dict = torch_patched_state_dict_load(path, "cpu")
    incompatible = obj.load_state_dict(state_dict, strict=False)
    for key in incompatible.missing_keys:
        logger.warning("Transfer from %s: %s has no value for %s", path, type(obj).__name__, key)
    for key in incompatible.unexpected_keys:
        logger.warning("Transfer from %s: %s has no parameter named %s", path, type(obj).__name__, key)


def _register_torch_defaults() -> None:
    from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

    stateful_classes: list[type] = [
        torch.nn.Module,
        torch.optim.Optimizer,
        LRScheduler,
        ReduceLROnPlateau,
        torch.amp.GradScaler,
    ]
    for cls in stateful_classes:
        DEFAULT_SAVE_HOOKS[cls] = torch_save
        DEFAULT_LOAD_HOOKS[cls] = torch_recovery
    DEFAULT_TRANSFER_HOOKS[torch.nn.Module] = torch_parameter_transfer


_register_torch_defaults()
