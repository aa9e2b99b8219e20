"""Averaging the parameters of several checkpoints."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from recoverkit.storage.layout import Checkpoint

__all__ = ["average_checkpoints", "average_state_dicts"]

logger = logging.getLogger(__name__)


def average_state_dicts(state_dicts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Average state dicts taken one at a time from an iterable.

    At most two state dicts are in memory at once: the running sum and the
    one being added. Floating-point tensors are summed in float32 or wider
    (so half-precision tensors do not lose precision) and cast back to their
    own dtype at the end. Integer and boolean tensors, such as batch-norm
    counters, are copied from the first state dict instead of averaged:
    with :meth:`Checkpointer.find_checkpoints` order, that is the newest.

    Parameters
    ----------
    state_dicts : iterable of dict
        The state dicts to average, all with the same keys.

    Returns
    -------
    dict
        The averaged state dict.

    Raises
    ------
    ValueError
        If the iterable is empty or the state dicts have different keys.
    """
    running: dict[str, Any] | None = None
    dtypes: dict[str, torch.dtype] = {}
    count = 0
    for state_dict in state_dicts:
        count += 1
        if running is None:
            running, dtypes = _start_sum(state_dict)
        else:
            _add_to_sum(running, state_dict, count)
        del state_dict
    if running is None:
        raise ValueError("Cannot average an empty sequence of state dicts.")
    for key, value in running.items():
        if key in dtypes:
            running[key] = value.div_(count).to(dtypes[key])
    return running


def _is_averaged(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex())


def _start_sum(state_dict: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.dtype]]:
    running: dict[str, Any] = {}
    dtypes: dict[str, torch.dtype] = {}
    for key, value in state_dict.items():
        if _is_averaged(value):
            dtypes[key] = value.dtype
            wide = torch.promote_types(value.dtype, torch.float32)
            running[key] = value.detach().to(dtype=wide, copy=True)
        elif isinstance(value, torch.Tensor):
            running[key] = value.detach().clone()
        else:
            running[key] = value
    return running, dtypes


def _add_to_sum(running: dict[str, Any], state_dict: dict[str, Any], position: int) -> None:
    if running.keys() != state_dict.keys():
        missing = sorted(set(running) - set(state_dict))
        extra = sorted(set(state_dict) - set(running))
        raise ValueError(
            f"State dict number {position} has different keys from the first: "
            f"missing {missing[:5]}, extra {extra[:5]}. Average checkpoints of "
            "the same model only."
        )
    for key, value in state_dict.items():
        if _is_averaged(running[key]):
            running[key].add_(value.to(running[key].dtype))


def _default_parameter_loader(path: Any) -> dict[str, Any]:
    from recoverkit.hooks.torch_hooks import torch_patched_state_dict_load

    return torch_patched_state_dict_load(path, "cpu")


def average_checkpoints(
    checkpoint_list: Sequence[Checkpoint],
    recoverable_name: str,
    parameter_loader: Callable[[Any], Any] = _default_parameter_loader,
    averager: Callable[[Iterable[Any]], Any] = average_state_dicts,
) -> Any:
    """Average the parameters of one recoverable over several checkpoints.

    Get the list with :meth:`Checkpointer.find_checkpoints`. Averaging the
    last few checkpoints of a training run often gives a better model than
    the last one alone.

    Parameters
    ----------
    checkpoint_list : list of Checkpoint
        The checkpoints to average.
    recoverable_name : str
        The recoverable whose parameters to average.
    parameter_loader : callable
        Called with the path of one parameter file; returns its parameters.
        The default loads a state dict with weights-only ``torch.load``.
    averager : callable
        Called with an iterator over the loaded parameters; returns their
        average. It must count the items itself because an iterator has no
        length. The default is :func:`average_state_dicts`.

    Returns
    -------
    Any
        What ``averager`` returns.

    Example
    -------
    >>> class Recoverable(torch.nn.Module):
    ...     def __init__(self, param):
    ...         super().__init__()
    ...         self.param = torch.nn.Parameter(torch.tensor([param]))
    ...     def forward(self, x):
    ...         return x * self.param
    >>> model = Recoverable(1.)
    >>> tempdir = getfixture('tmpdir')
    >>> checkpointer = Checkpointer(tempdir, {"model": model})
    >>> for new_param in range(10):
    ...     model.param.data = torch.tensor([float(new_param)])
    ...     _ = checkpointer.save_checkpoint()
    >>> # Average the 3 latest checkpoints (values 7, 8, 9 -> 8):
    >>> ckpt_list = checkpointer.find_checkpoints(max_num_checkpoints = 3)
    >>> averaged_state = average_checkpoints(ckpt_list, "model")
    >>> _ = model.load_state_dict(averaged_state)
    >>> model.param.data
    tensor([8.])
    """
    missing = [str(ckpt.path) for ckpt in checkpoint_list if recoverable_name not in ckpt.paramfiles]
    if missing:
        raise KeyError(
            f"Cannot average recoverable {recoverable_name!r}: checkpoints "
            f"{missing} have no file for it."
        )
    logger.info(
        "Averaging %r over %d checkpoints", recoverable_name, len(checkpoint_list)
    )
    loaded = (parameter_loader(ckpt.paramfiles[recoverable_name]) for ckpt in checkpoint_list)
    return averager(loaded)
