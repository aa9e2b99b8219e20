"""Transfers: parameters loaded from another run's checkpoint or a weights file before training."""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from recoverkit.config.keymaps import load_with_keymap, resolve_config_keymap
from recoverkit.config.origin import SECTION, ConfigOrigin
from recoverkit.config.schema import CheckpointerConfig
from recoverkit.hooks.registry import (
    DEFAULT_LOAD_HOOKS,
    DEFAULT_TRANSFER_HOOKS,
    call_load_hook,
    get_default_hook,
)
from recoverkit.hooks.torch_hooks import torch_parameter_transfer, torch_patched_state_dict_load
from recoverkit.state_dict.remap import hook_on_loading_state_dict_checkpoint
from recoverkit.storage.layout import METAFNAME, PARAMFILE_EXT
from recoverkit.storage.listing import CheckpointLister
from recoverkit.storage.torch_io import load_weights_only

if TYPE_CHECKING:
    from recoverkit.checkpointer import Checkpointer

__all__ = ["WEIGHTS_SUFFIXES", "TransferSpec", "apply_transfer", "plan_transfers"]

logger = logging.getLogger(__name__)

#: Suffixes of the single weights files a transfer can read.
WEIGHTS_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".safetensors")


@dataclass(frozen=True)
class TransferSpec:
    """One transfer: which recoverables receive parameters from which source.

    Parameters
    ----------
    source : pathlib.Path
        A checkpoint folder (with a meta file), a checkpoints folder (its
        newest checkpoint is used), or a weights file with a suffix in
        :data:`WEIGHTS_SUFFIXES`.
    recoverables : tuple of str
        Names of recoverables of the Checkpointer. From a checkpoint, each
        one reads its own file. From a weights file, a single recoverable
        receives the whole state dict; with several, each receives the keys
        that start with ``<name>.``, with that prefix removed.
    keymap : Keymap, optional
        Applied to each state dict before it is loaded.
    strict : bool
        If True, missing and unexpected keys are errors. If False, they are
        logged as warnings, and the classes' transfer hooks are used.
    """

    source: pathlib.Path
    recoverables: tuple[str, ...]
    keymap: Any = None
    strict: bool = True
    key_path: str = field(default="", compare=False)


def plan_transfers(config: CheckpointerConfig, origin: ConfigOrigin) -> list[TransferSpec]:
    """Check the ``transfer`` list and return its specs.

    Raises
    ------
    ConfigError
        If a source does not exist or has an unknown suffix, a recoverable
        name is not registered, or a keymap is invalid.
    """
    names = set(config.recoverables)
    specs = []
    for index, entry in enumerate(config.transfer):
        key_path = f"{SECTION}.transfer.{index}"
        source = _resolve_source(entry.source, f"{key_path}.source", origin)
        if not entry.recoverables:
            raise origin.error(f"{key_path}.recoverables", "the list is empty.",
                               "names of recoverables under checkpointer.recoverables.")
        for position, name in enumerate(entry.recoverables):
            if name not in names:
                raise origin.error(
                    f"{key_path}.recoverables.{position}",
                    f"{name!r} is not a recoverable of this checkpointer.",
                    f"one of {sorted(names)}.",
                )
        keymap = None
        if entry.keymap is not None:
            keymap = resolve_config_keymap(entry.keymap, f"{key_path}.keymap", origin)
        specs.append(TransferSpec(source, tuple(entry.recoverables), keymap, entry.strict, key_path))
    return specs


def _resolve_source(text: str, key_path: str, origin: ConfigOrigin) -> pathlib.Path:
    accepted = (
        "a checkpoint folder, a checkpoints folder, or a weights file ending in "
        f"{', '.join(WEIGHTS_SUFFIXES)}; relative paths are tried from the current "
        "folder, then from the config file's folder."
    )
    path = pathlib.Path(text).expanduser()
    candidates = [path] if path.is_absolute() else [path, origin.base_dir / path]
    found = next((candidate for candidate in candidates if candidate.exists()), None)
    if found is None:
        raise origin.error(key_path, f"{text!r} does not exist.", accepted)
    if found.is_file() and found.suffix not in WEIGHTS_SUFFIXES:
        raise origin.error(key_path, f"{text!r} has an unknown suffix {found.suffix!r}.", accepted)
    return found


def apply_transfer(spec: TransferSpec, checkpointer: Checkpointer) -> None:
    """Load the parameters of ``spec.source`` into its recoverables.

    Raises
    ------
    FileNotFoundError
        If a checkpoints folder holds no checkpoint, or a checkpoint has no
        file for one of the recoverables.
    """
    if spec.source.is_file():
        _transfer_from_weights_file(spec, checkpointer)
        return
    folder = _checkpoint_folder(spec.source)
    for name in spec.recoverables:
        path = folder / f"{name}{PARAMFILE_EXT}"
        if not path.exists():
            raise FileNotFoundError(
                f"Cannot transfer recoverable {name!r} ({spec.key_path}): checkpoint {folder} "
                f"has no file {path.name}. Remove {name!r} from the transfer's recoverables, "
                "or point source at a checkpoint that has it."
            )
        _transfer_file(spec, checkpointer, name, path)
    logger.info("Transferred %s from %s", ", ".join(spec.recoverables), folder)


def _checkpoint_folder(source: pathlib.Path) -> pathlib.Path:
    if (source / METAFNAME).exists():
        return source
    listed = CheckpointLister(source).list()
    if not listed:
        raise FileNotFoundError(
            f"Cannot transfer from {source}: it is neither a checkpoint folder (no {METAFNAME}) "
            "nor a checkpoints folder with a checkpoint in it."
        )
    newest = max((checkpoint for checkpoint, _manifest in listed), key=lambda ckpt: ckpt.meta.get("unixtime", 0.0))
    return newest.path


def _transfer_file(spec: TransferSpec, checkpointer: Checkpointer, name: str, path: pathlib.Path) -> None:
    obj = checkpointer.recoverables[name]
    if spec.keymap is not None:
        _load_state_dict(obj, torch_patched_state_dict_load(path, "cpu"), spec, name, str(path))
        return
    hook = _transfer_hook(obj, name, checkpointer, spec.strict)
    if hook is not None:
        logger.debug("Transferring %s from %s with %s", name, path, getattr(hook, "__name__", hook))
        if _is_transfer_hook(obj, hook):
            hook(obj, path)
        else:
            call_load_hook(hook, obj, path, True)
        return
    _load_state_dict(obj, torch_patched_state_dict_load(path, "cpu"), spec, name, str(path))


def _transfer_hook(obj: Any, name: str, checkpointer: Checkpointer, strict: bool) -> Callable[..., Any] | None:
    """Pick a transfer hook first, then a load hook, as SpeechBrain's Pretrainer does.

    The generic module transfer hook tolerates missing keys, so a strict
    transfer of a module loads its state dict itself instead.
    """
    transfer_hook = get_default_hook(obj, DEFAULT_TRANSFER_HOOKS)
    if transfer_hook is not None and not (strict and transfer_hook is torch_parameter_transfer):
        return transfer_hook
    if name in checkpointer.custom_load_hooks:
        return checkpointer.custom_load_hooks[name]
    return get_default_hook(obj, DEFAULT_LOAD_HOOKS)


def _is_transfer_hook(obj: Any, hook: Callable[..., Any]) -> bool:
    return hook is get_default_hook(obj, DEFAULT_TRANSFER_HOOKS)


def _transfer_from_weights_file(spec: TransferSpec, checkpointer: Checkpointer) -> None:
    state_dict = _read_weights_file(spec.source)
    if len(spec.recoverables) == 1:
        name = spec.recoverables[0]
        _load_state_dict(checkpointer.recoverables[name], state_dict, spec, name, str(spec.source))
    else:
        for name in spec.recoverables:
            prefix = f"{name}."
            part = {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}
            if not part:
                raise KeyError(
                    f"Cannot transfer recoverable {name!r} ({spec.key_path}): no key of "
                    f"{spec.source} starts with {prefix!r}. With several recoverables, each "
                    "takes the keys under its own name; list one recoverable to load the whole file."
                )
            _load_state_dict(checkpointer.recoverables[name], part, spec, name, str(spec.source))
    logger.info("Transferred %s from %s", ", ".join(spec.recoverables), spec.source)


def _read_weights_file(path: pathlib.Path) -> dict[str, Any]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return hook_on_loading_state_dict_checkpoint(load_file(str(path), device="cpu"))
    loaded = load_weights_only(path)
    if isinstance(loaded, Mapping) and "state_dict" in loaded and isinstance(loaded["state_dict"], Mapping):
        # Lightning and several trainers nest the weights under "state_dict".
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise TypeError(f"Cannot transfer from {path}: it holds a {type(loaded).__name__}, not a state dict.")
    return hook_on_loading_state_dict_checkpoint(dict(loaded))


def _load_state_dict(obj: Any, state_dict: Mapping[str, Any], spec: TransferSpec, name: str, where: str) -> None:
    if spec.keymap is not None:
        load_with_keymap(obj, state_dict, spec.keymap, spec.strict, f"{where} (transfer into {name!r})")
        return
    if isinstance(obj, torch.nn.Module):
        incompatible = obj.load_state_dict(dict(state_dict), strict=spec.strict)
        for key in incompatible.missing_keys:
            logger.warning("Transfer from %s: %s has no value for %s", where, name, key)
        for key in incompatible.unexpected_keys:
            logger.warning("Transfer from %s: %s has no parameter named %s", where, name, key)
    else:
        obj.load_state_dict(dict(state_dict))
