"""Substring key remapping, with the semantics of SpeechBrain's checkpointer."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_KEY_MAPPING",
    "hook_on_loading_state_dict_checkpoint",
    "map_old_state_dict_weights",
]

logger = logging.getLogger(__name__)

#: Project-wide substring renames applied to every state dict that recoverkit
#: loads (old substring -> new substring). Empty by default; add entries to
#: rename old module names in every load without touching each call.
DEFAULT_KEY_MAPPING: dict[str, str] = {}


def map_old_state_dict_weights(
    state_dict: Mapping[str, Any], mapping: Mapping[str, str]
) -> dict[str, Any]:
    """Rename the keys of ``state_dict`` by substring replacement.

    Every key that contains an old substring has each occurrence replaced by
    the new one, in the order of ``mapping``. A renamed key moves to the end
    of the dict and replaces any key that already had the new name, as in
    SpeechBrain. Because this is plain substring
    replacement, a match in the middle of a module name is renamed too, so
    choose substrings that cannot match by accident.

    Parameters
    ----------
    state_dict : dict
        The state dict whose keys to rename. It is not modified.
    mapping : dict
        Old substring to new substring.

    Returns
    -------
    dict
        A new state dict with the renamed keys and the same values.

    Example
    -------
    >>> sd = {"model.encoder.layer.0.atn.self.query.weight": 1, "head.bias": 2}
    >>> map_old_state_dict_weights(sd, {".atn": ".attn"})
    {'head.bias': 2, 'model.encoder.layer.0.attn.self.query.weight': 1}
    """
    renamed = dict(state_dict)
    for old, new in mapping.items():
        for key in list(renamed):
            if old in key:
                new_key = key.replace(old, new)
                logger.info("Renaming parameter %s to %s when loading", key, new_key)
                renamed[new_key] = renamed.pop(key)
    return renamed


def hook_on_loading_state_dict_checkpoint(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the project-wide key renames of :data:`DEFAULT_KEY_MAPPING`.

    Every recoverkit loader of state dicts calls this before the state dict
    reaches the object: :func:`torch_recovery`,
    :func:`torch_parameter_transfer` and the keymap load hooks through
    :func:`torch_patched_state_dict_load`, and the transfer functions
    through :func:`load_state_dict_file`. So one entry in
    :data:`DEFAULT_KEY_MAPPING` fixes a renamed module in all loads.
    Anything but a mapping with string keys (a list, an optimizer's nested
    state) is returned unchanged.
    """
    if not DEFAULT_KEY_MAPPING or not _has_string_keys(state_dict):
        return state_dict  # type: ignore[return-value]
    return map_old_state_dict_weights(state_dict, DEFAULT_KEY_MAPPING)


def _has_string_keys(state_dict: Mapping[str, Any]) -> bool:
    return isinstance(state_dict, Mapping) and all(isinstance(k, str) for k in state_dict)
