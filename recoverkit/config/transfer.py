"""The ``transfer`` section: parameters loaded from another run or a weights file before training."""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recoverkit.config.keymaps import resolve_config_keymap
from recoverkit.config.origin import SECTION, ConfigOrigin
from recoverkit.config.schema import CheckpointerConfig
from recoverkit.hooks.registry import call_load_hook

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
        :data:`WEIGHTS_SUFFIXES`, which can fill one recoverable only.
    recoverables : tuple of str
        Names of recoverables of the Checkpointer. From a checkpoint, each
        one reads its own file.
    keymap : Keymap, optional
        Applied to each state dict before it is loaded. The recoverables'
        own ``keymaps`` entries do not apply to transfers.
    strict : bool
        If True, source keys the recoverable lacks and keys it has that the
        source lacks are errors; if False they are logged as warnings.
    key_path : str
        Where the transfer is declared, for messages.
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
        If a source does not exist or has an unknown suffix, a weights file
        is to fill several recoverables, a recoverable name is not
        registered, or a keymap is invalid.
    """
    names = set(config.recoverables)
    specs = []
    for index, entry in enumerate(config.transfer):
        key_path = f"{SECTION}.transfer.{index}"
        source = _resolve_source(entry.source, f"{key_path}.source", origin)
        _check_recoverables(entry.recoverables, names, source, f"{key_path}.recoverables", origin)
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


def _check_recoverables(
    listed: list[str], names: set[str], source: pathlib.Path, key_path: str, origin: ConfigOrigin
) -> None:
    accepted = "names of recoverables under checkpointer.recoverables."
    if not listed:
        raise origin.error(key_path, "the list is empty.", accepted)
    for position, name in enumerate(listed):
        if name not in names:
            raise origin.error(f"{key_path}.{position}", f"{name!r} is not a recoverable of this checkpointer.",
                               f"one of {sorted(names)}.")
    if source.is_file() and len(listed) > 1:
        raise origin.error(
            key_path,
            f"the source {source.name} is a single weights file, but {len(listed)} recoverables are listed.",
            "one recoverable per weights file; use one transfer entry per file.",
        )


def apply_transfer(
    spec: TransferSpec, checkpointer: Checkpointer, load_hooks: Mapping[str, Callable[..., Any]] | None = None
) -> None:
    """Load the parameters of ``spec.source`` into its recoverables.

    The hook is chosen as :func:`recoverkit.state_dict.transfer.transfer`
    does (a transfer hook before a load hook), except that ``load_hooks``
    (the ``load_hook`` entries a config declares, by recoverable name) come
    first.

    Raises
    ------
    FileNotFoundError
        If the source contains no checkpoint.
    MissingRecoverableError
        If the checkpoint has no file for one of the recoverables.
    KeymapError
        If the parameters do not fit a recoverable (with ``strict``, also
        when keys are unused or missing).
    """
    from recoverkit.state_dict.transfer import transfer

    load_hooks = load_hooks or {}
    custom_hooks = {name: _as_transfer_hook(load_hooks[name]) for name in spec.recoverables if name in load_hooks}
    keymaps = {name: spec.keymap for name in spec.recoverables} if spec.keymap is not None else None
    transfer(
        checkpointer.recoverables,
        spec.source,
        names=list(spec.recoverables),
        keymaps=keymaps,
        strict=spec.strict,
        custom_hooks=custom_hooks,
    )
    logger.info("Transferred %s from %s (%s)", ", ".join(spec.recoverables), spec.source, spec.key_path)


def _as_transfer_hook(load_hook: Callable[..., Any]) -> Callable[[Any, Any], Any]:
    def transfer_with_load_hook(obj: Any, path: Any) -> Any:
        return call_load_hook(load_hook, obj, path, False)

    return transfer_with_load_hook
