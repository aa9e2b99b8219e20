"""Tools that work on state dicts: key remapping, keymaps and averaging."""

from recoverkit.state_dict.average import average_checkpoints, average_state_dicts
from recoverkit.state_dict.keymap import (
    BUILTIN_KEYMAPS,
    Keymap,
    KeymapReport,
    keymap_load_hook,
    load_state_dict_with_keymap,
    resolve_keymap,
)
from recoverkit.state_dict.remap import (
    DEFAULT_KEY_MAPPING,
    hook_on_loading_state_dict_checkpoint,
    map_old_state_dict_weights,
)

__all__ = [
    "BUILTIN_KEYMAPS",
    "DEFAULT_KEY_MAPPING",
    "Keymap",
    "KeymapReport",
    "average_checkpoints",
    "average_state_dicts",
    "hook_on_loading_state_dict_checkpoint",
    "keymap_load_hook",
    "load_state_dict_with_keymap",
    "map_old_state_dict_weights",
    "resolve_keymap",
]
