"""Load hooks that pass a checkpoint file through a keymap before loading it."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Callable

import torch

from recoverkit.errors import KeymapError
from recoverkit.state_dict.keymap.core import Keymap, resolve_keymap
from recoverkit.state_dict.keymap.report import KeymapReport

__all__ = ["keymap_load_hook", "load_state_dict_with_keymap"]

logger = logging.getLogger(__name__)


def load_state_dict_with_keymap(
    obj: Any,
    state_dict: Mapping[str, Any],
    keymap: Any = None,
    strict: bool = True,
    origin: str = "",
) -> KeymapReport:
    """Map ``state_dict`` onto ``obj`` with a keymap and load it.

    The keymap runs as a dry run against ``obj.state_dict()`` first, so a
    collision, a shape mismatch or (if ``strict``) an unused or missing key
    raises before ``obj`` changes.

    Parameters
    ----------
    obj : object with ``state_dict()`` and ``load_state_dict()``
        What to load into, usually a ``torch.nn.Module``.
    state_dict : mapping
        The state dict to map and load.
    keymap : Keymap, str, mapping or list, optional
        Anything :func:`resolve_keymap` accepts. None maps nothing but still
        checks the state dict against ``obj``.
    strict : bool
        Whether unused source keys and missing target keys are errors, or
        only warnings.
    origin : str
        Where the state dict comes from, for messages.

    Returns
    -------
    KeymapReport
        The dry-run report.

    Raises
    ------
    KeymapError
        If the state dict does not fit ``obj`` after mapping.
    """
    resolved = Keymap(name="identity") if keymap is None else resolve_keymap(keymap)
    if not (callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))):
        raise KeymapError(
            f"Cannot load a state dict through keymap {resolved.name!r} into "
            f"{type(obj).__name__}: it has no state_dict() and load_state_dict() methods."
        )
    mapped, report = resolved.apply(state_dict, target=obj, strict=strict, origin=origin)
    if isinstance(obj, torch.nn.Module):
        obj.load_state_dict(mapped, strict=strict)
    else:
        obj.load_state_dict(mapped)
    return report


def keymap_load_hook(keymap: Any, strict: bool = True) -> Callable[..., None]:
    """Make a load hook that maps each checkpoint file through ``keymap``.

    Pass the result as ``custom_load_hook`` to
    :meth:`Checkpointer.add_recoverable` (or in ``custom_load_hooks``), or
    call it as a transfer hook: it accepts ``(obj, path, end_of_epoch)`` and
    ``(obj, path)``. The file is read with
    :func:`torch_patched_state_dict_load`, so the project-wide rules of
    :func:`hook_on_loading_state_dict_checkpoint` apply before the keymap.

    Parameters
    ----------
    keymap : Keymap, str, mapping or list
        Anything :func:`resolve_keymap` accepts. It is resolved now, so an
        invalid keymap fails here rather than at the first load.
    strict : bool
        Whether unused and missing keys are errors (True) or warnings.

    Returns
    -------
    callable
        The load hook.

    Example
    -------
    >>> model = torch.nn.Linear(2, 2)
    >>> tempdir = getfixture('tmpdir')
    >>> torch.save({"module." + k: v for k, v in model.state_dict().items()}, tempdir / "ddp.ckpt")
    >>> hook = keymap_load_hook("ddp")
    >>> hook(model, tempdir / "ddp.ckpt", False)
    """
    resolved = resolve_keymap(keymap)

    def load_with_keymap(obj: Any, path: str | os.PathLike, end_of_epoch: bool = False) -> None:
        from recoverkit.hooks.torch_hooks import torch_patched_state_dict_load

        del end_of_epoch  # The state dict is complete either way.
        state_dict = torch_patched_state_dict_load(path, "cpu")
        load_state_dict_with_keymap(obj, state_dict, resolved, strict=strict, origin=str(path))

    load_with_keymap.keymap = resolved  # type: ignore[attr-defined]
    load_with_keymap.strict = strict  # type: ignore[attr-defined]
    return load_with_keymap
