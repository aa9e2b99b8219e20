"""Transfer: load weights from files and checkpoint folders into objects before training.

Weights may come from a ``.ckpt``, ``.pt``, ``.pth`` or ``.bin`` file
(read with weights-only ``torch.load``), a ``.safetensors`` file, one
checkpoint folder (``CKPT+...``) or a checkpoints folder, whose newest
checkpoint is used. A transfer hook of the object's class is preferred to
its load hook, as in SpeechBrain's ``Pretrainer``.
"""

from __future__ import annotations

import logging
import os
import pathlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from recoverkit.errors import CheckpointFormatError, KeymapError, MissingHookError, MissingRecoverableError
from recoverkit.hooks.registry import (
    DEFAULT_LOAD_HOOKS,
    DEFAULT_TRANSFER_HOOKS,
    call_load_hook,
    get_default_hook,
    has_state_dict_protocol,
)
from recoverkit.state_dict.keymap import Keymap, KeymapReport, load_state_dict_with_keymap, resolve_keymap
from recoverkit.state_dict.remap import hook_on_loading_state_dict_checkpoint
from recoverkit.storage.layout import METAFNAME
from recoverkit.storage.torch_io import load_weights_only, save_torch_file

__all__ = [
    "SAFETENSORS_SUFFIXES",
    "TORCH_SUFFIXES",
    "find_transfer_files",
    "load_state_dict_file",
    "read_state_dict_shapes",
    "transfer",
    "transfer_parameters",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

#: File suffixes read with weights-only ``torch.load``.
TORCH_SUFFIXES: tuple[str, ...] = (".ckpt", ".pt", ".pth", ".bin")
#: File suffixes read with ``safetensors``.
SAFETENSORS_SUFFIXES: tuple[str, ...] = (".safetensors",)


# Reading weight files


def load_state_dict_file(path: PathLike, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a weights file into a state dict and apply the project-wide key renames.

    A file whose top level contains a ``state_dict`` entry next to other
    values, as PyTorch Lightning checkpoints do, yields that entry.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.safetensors`` file, or a file in ``torch.save`` format (any
        other suffix).
    device : str or torch.device
        Where the tensors are placed.

    Returns
    -------
    dict
        The state dict, after :func:`hook_on_loading_state_dict_checkpoint`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    UnsafeCheckpointFileError
        If a ``torch.save`` file needs globals that weights-only loading rejects.
    CheckpointFormatError
        If a ``torch.save`` file is not valid, or contains something other than a dict.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Weights file {path} not found.")
    if path.suffix in SAFETENSORS_SUFFIXES:
        from safetensors.torch import load_file

        state_dict: Any = load_file(str(path), device=str(device))
    else:
        state_dict = _unwrap_state_dict(load_weights_only(path, device), path)
    return hook_on_loading_state_dict_checkpoint(state_dict)


def read_state_dict_shapes(path: PathLike) -> dict[str, Any]:
    """Read the keys of a weights file with meta tensors of the right shape and dtype.

    A ``.safetensors`` file is read from its header only. A ``torch.save``
    file is memory-mapped, so its tensors are not read into memory. The
    project-wide key renames apply, as in :func:`load_state_dict_file`.
    Meant for dry runs such as ``recoverkit remap --dry-run``.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Weights file {path} not found.")
    if path.suffix in SAFETENSORS_SUFFIXES:
        from safetensors import safe_open

        shapes: dict[str, Any] = {}
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                tensor_slice = handle.get_slice(key)
                dtype = _SAFETENSORS_DTYPES.get(tensor_slice.get_dtype())
                if dtype is None:
                    return {key: _as_meta(value) for key, value in load_state_dict_file(path).items()}
                shapes[key] = torch.empty(tensor_slice.get_shape(), dtype=dtype, device="meta")
        return hook_on_loading_state_dict_checkpoint(shapes)
    loaded = _load_mmap(path)
    state_dict = hook_on_loading_state_dict_checkpoint(_unwrap_state_dict(loaded, path))
    return {key: _as_meta(value) for key, value in state_dict.items()}


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _load_mmap(path: pathlib.Path) -> Any:
    try:
        return load_weights_only(path, "cpu", mmap=True)
    except RuntimeError:
        # Files in the legacy (non-zip) torch.save format cannot be memory-mapped.
        return load_weights_only(path, "cpu", mmap=False)


def _as_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    return value


def _unwrap_state_dict(loaded: Any, path: pathlib.Path) -> Any:
    if not isinstance(loaded, Mapping):
        raise CheckpointFormatError(
            f"Cannot read {path} as a state dict: it contains a {type(loaded).__name__}, "
            "not a dict of names to tensors. Pass a file written by torch.save(module.state_dict())."
        )
    if all(isinstance(v, torch.Tensor) for v in loaded.values()):
        return loaded
    inner = loaded.get("state_dict")
    if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
        logger.info("Using the 'state_dict' entry of %s as its weights", path)
        return dict(inner)
    return loaded


# Transferring into objects


def transfer_parameters(
    obj: Any,
    path: PathLike,
    keymap: Any = None,
    strict: bool = False,
    custom_hook: Callable[..., Any] | None = None,
) -> KeymapReport | None:
    """Load the weights in one file into ``obj``.

    The hook is chosen in this order: ``custom_hook``, then the transfer
    hook of the object's class (``DEFAULT_TRANSFER_HOOKS``), then its load
    hook (``DEFAULT_LOAD_HOOKS``, called with ``end_of_epoch=False``). When that
    is one of recoverkit's own PyTorch hooks, or the object only has
    ``state_dict``/``load_state_dict``, recoverkit reads the file itself,
    maps it through ``keymap`` and loads it with a dry-run report. A hook of
    your own gets the file's path, or, when a keymap or a ``.safetensors``
    file is involved, the path of a temporary ``torch.save`` file with the
    mapped state dict.

    Parameters
    ----------
    obj : object
        What to load into.
    path : str or pathlib.Path
        The weights file.
    keymap : Keymap, str, mapping or list, optional
        Anything :func:`resolve_keymap` accepts.
    strict : bool
        Whether unused and missing keys are errors. The default False logs
        them as warnings, as SpeechBrain's ``torch_parameter_transfer`` does.
    custom_hook : callable, optional
        Called as ``hook(obj, path)`` instead of any default hook.

    Returns
    -------
    KeymapReport or None
        The dry-run report, or None when a hook of your own loaded the
        original file without a keymap.

    Raises
    ------
    KeymapError
        If the mapped weights do not fit ``obj``.
    MissingHookError
        If ``obj`` has no hook and no ``state_dict``/``load_state_dict``.
    """
    from recoverkit.hooks.torch_hooks import torch_parameter_transfer, torch_recovery

    path = pathlib.Path(path)
    hook, is_load_hook = _transfer_hook(obj, custom_hook)
    resolved = None if keymap is None else resolve_keymap(keymap)
    if hook is None or hook in (torch_parameter_transfer, torch_recovery):
        if not has_state_dict_protocol(obj):
            raise MissingHookError(
                f"Cannot transfer weights from {path} into {type(obj).__name__}: it has no "
                "transfer or load hook and no state_dict()/load_state_dict(). Register a "
                "transfer hook with @mark_as_transfer, or pass custom_hook."
            )
        state_dict = load_state_dict_file(path)
        report = load_state_dict_with_keymap(obj, state_dict, resolved, strict=strict, origin=str(path))
        logger.info("Transferred %d tensors from %s into %s", len(report.mapped), path, type(obj).__name__)
        return report

    if resolved is None and path.suffix not in SAFETENSORS_SUFFIXES:
        _call_hook(hook, is_load_hook, obj, path)
        return None
    state_dict = load_state_dict_file(path)
    target = obj if has_state_dict_protocol(obj) else None
    mapped, report = (resolved or Keymap(name="identity")).apply(
        state_dict, target=target, strict=strict, origin=str(path)
    )
    with tempfile.TemporaryDirectory(prefix="recoverkit-transfer-") as folder:
        mapped_path = pathlib.Path(folder) / f"{path.stem}.ckpt"
        save_torch_file(mapped, mapped_path)
        _call_hook(hook, is_load_hook, obj, mapped_path)
    return report


def _transfer_hook(obj: Any, custom_hook: Callable[..., Any] | None) -> tuple[Callable[..., Any] | None, bool]:
    if custom_hook is not None:
        return custom_hook, False
    hook = get_default_hook(obj, DEFAULT_TRANSFER_HOOKS)
    if hook is not None:
        return hook, False
    return get_default_hook(obj, DEFAULT_LOAD_HOOKS), True


def _call_hook(hook: Callable[..., Any], is_load_hook: bool, obj: Any, path: pathlib.Path) -> None:
    if is_load_hook:
        call_load_hook(hook, obj, path, False)
    else:
        hook(obj, path)


def find_transfer_files(source: PathLike, names: Mapping[str, str]) -> dict[str, pathlib.Path]:
    """Find the file to transfer into each recoverable.

    Parameters
    ----------
    source : str or pathlib.Path
        A weights file (then ``names`` must have exactly one entry), a
        checkpoint folder (one that contains ``CKPT.yaml``), or a checkpoints
        folder, whose newest checkpoint is used.
    names : mapping
        Recoverable name -> name of its file in the checkpoint, without the
        ``.ckpt`` suffix.

    Returns
    -------
    dict
        Recoverable name -> file path.

    Raises
    ------
    FileNotFoundError
        If ``source`` does not exist or contains no checkpoint.
    MissingRecoverableError
        If the checkpoint has no file for one of the names.
    """
    from recoverkit.retention.selection import rank_checkpoints
    from recoverkit.storage.listing import CheckpointLister, read_checkpoint

    source = pathlib.Path(source)
    if source.is_file():
        if len(names) != 1:
            raise KeymapError(
                f"Transfer source {source} is a single file, but {len(names)} recoverables "
                f"{sorted(names)} were named. Transfer one recoverable per file, or point "
                "the source at a checkpoint folder."
            )
        return {name: source for name in names}
    if not source.is_dir():
        raise FileNotFoundError(f"Transfer source {source} not found.")
    if (source / METAFNAME).is_file():
        found = read_checkpoint(source)
        if found is None:
            raise FileNotFoundError(f"Transfer source {source} has a meta file but no readable checkpoint.")
        checkpoint = found[0]
    else:
        ranked = rank_checkpoints(checkpoint for checkpoint, _manifest in CheckpointLister(source).list())
        if not ranked:
            raise FileNotFoundError(
                f"Transfer source {source} is neither a weights file, nor a checkpoint folder "
                f"(no {METAFNAME}), nor a folder of checkpoints."
            )
        checkpoint = ranked[0]
        logger.info("Transferring from the newest checkpoint in %s: %s", source, checkpoint.path)
    files = {}
    for name, file_name in names.items():
        if file_name not in checkpoint.paramfiles:
            raise MissingRecoverableError(
                f"Checkpoint {checkpoint.path} has no file for {file_name!r}, which recoverable "
                f"{name!r} should be transferred from. It has: {sorted(checkpoint.paramfiles)}."
            )
        files[name] = checkpoint.paramfiles[file_name]
    return files


def transfer(
    recoverables: Mapping[str, Any],
    source: PathLike,
    names: Sequence[str] | Mapping[str, str] | None = None,
    keymaps: Mapping[str, Any] | None = None,
    strict: bool = False,
    custom_hooks: Mapping[str, Callable[..., Any]] | None = None,
) -> dict[str, KeymapReport | None]:
    """Load weights from ``source`` into named recoverables, for example before training.

    Parameters
    ----------
    recoverables : mapping
        Name -> object, such as a Checkpointer's ``recoverables``.
    source : str or pathlib.Path
        A weights file, a checkpoint folder or a checkpoints folder, as in
        :func:`find_transfer_files`.
    names : list or mapping, optional
        The recoverables to load (default: all). A mapping gives, for each
        recoverable, the name of the file in the source checkpoint to load
        it from, such as ``{"encoder": "model"}``.
    keymaps : mapping, optional
        Recoverable name -> keymap (anything :func:`resolve_keymap` accepts).
    strict : bool
        Whether unused and missing keys are errors rather than warnings.
    custom_hooks : mapping, optional
        Recoverable name -> transfer hook, called as ``hook(obj, path)``.

    Returns
    -------
    dict
        Recoverable name -> dry-run report (None where a hook of your own
        loaded the file unmapped).

    Raises
    ------
    KeyError
        If a name is not in ``recoverables``.
    """
    if names is None:
        names = list(recoverables)
    pairs = dict(names) if isinstance(names, Mapping) else {name: name for name in names}
    unknown = sorted(set(pairs) - set(recoverables))
    unknown += sorted(set(keymaps or {}) - set(recoverables))
    if unknown:
        raise KeyError(
            f"Cannot transfer into {unknown}: no such recoverable. Recoverables: {sorted(recoverables)}."
        )
    files = find_transfer_files(source, pairs)
    reports = {}
    for name, path in files.items():
        logger.info("Transferring %s into recoverable %r", path, name)
        reports[name] = transfer_parameters(
            recoverables[name],
            path,
            keymap=(keymaps or {}).get(name),
            strict=strict,
            custom_hook=(custom_hooks or {}).get(name),
        )
    return reports
