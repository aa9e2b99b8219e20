"""Tools that work on state dicts: key remapping and averaging."""

from recoverkit.state_dict.average import average_checkpoints, average_state_dicts
from recoverkit.state_dict.remap import (
    DEFAULT_KEY_MAPPING,
    hook_on_loading_state_dict_checkpoint,
    map_old_state_dict_weights,
)

__all__ = [
    "DEFAULT_KEY_MAPPING",
    "average_checkpoints",
    "average_state_dicts",
    "hook_on_loading_state_dict_checkpoint",
    "map_old_state_dict_weights",
]
