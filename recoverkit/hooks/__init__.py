"""Save, load and transfer hooks: the default tables and how to add your own."""

from recoverkit.hooks.decorators import (
    mark_as_loader,
    mark_as_saver,
    mark_as_transfer,
    register_checkpoint_hooks,
)
from recoverkit.hooks.registry import (
    DEFAULT_LOAD_HOOKS,
    DEFAULT_SAVE_HOOKS,
    DEFAULT_TRANSFER_HOOKS,
    call_load_hook,
    get_default_hook,
    has_state_dict_protocol,
)
from recoverkit.hooks.torch_hooks import (
    torch_parameter_transfer,
    torch_patched_state_dict_load,
    torch_recovery,
    torch_save,
)

__all__ = [
    "DEFAULT_LOAD_HOOKS",
    "DEFAULT_SAVE_HOOKS",
    "DEFAULT_TRANSFER_HOOKS",
    "call_load_hook",
    "get_default_hook",
    "has_state_dict_protocol",
    "mark_as_loader",
    "mark_as_saver",
    "mark_as_transfer",
    "register_checkpoint_hooks",
    "torch_parameter_transfer",
    "torch_patched_state_dict_load",
    "torch_recovery",
    "torch_save",
]
