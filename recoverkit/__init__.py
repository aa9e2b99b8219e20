"""recoverkit: save and recover the full state of PyTorch experiments.

The public API follows SpeechBrain's ``speechbrain.utils.checkpoints`` name for
name; the same names are importable from :mod:`recoverkit.checkpoints`.
"""

from recoverkit.checkpointer import Checkpointer
from recoverkit.errors import (
    CheckpointExistsError,
    CheckpointLockedError,
    CorruptCheckpointError,
    InvalidCheckpointNameError,
    InvalidMetaError,
    MissingHookError,
    MissingRecoverableError,
    RecoverkitError,
    UnsafeCheckpointFileError,
)
from recoverkit.hooks import (
    DEFAULT_LOAD_HOOKS,
    DEFAULT_SAVE_HOOKS,
    DEFAULT_TRANSFER_HOOKS,
    get_default_hook,
    mark_as_loader,
    mark_as_saver,
    mark_as_transfer,
    register_checkpoint_hooks,
    torch_parameter_transfer,
    torch_patched_state_dict_load,
    torch_recovery,
    torch_save,
)
from recoverkit.recoverables import EpochCounter, RNGState
from recoverkit.retention import ckpt_recency
from recoverkit.state_dict import (
    average_checkpoints,
    average_state_dicts,
    hook_on_loading_state_dict_checkpoint,
    map_old_state_dict_weights,
)
from recoverkit.storage import Checkpoint

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_LOAD_HOOKS",
    "DEFAULT_SAVE_HOOKS",
    "DEFAULT_TRANSFER_HOOKS",
    "Checkpoint",
    "CheckpointExistsError",
    "CheckpointLockedError",
    "CorruptCheckpointError",
    "Checkpointer",
    "EpochCounter",
    "InvalidCheckpointNameError",
    "InvalidMetaError",
    "MissingHookError",
    "MissingRecoverableError",
    "RNGState",
    "RecoverkitError",
    "UnsafeCheckpointFileError",
    "average_checkpoints",
    "average_state_dicts",
    "ckpt_recency",
    "get_default_hook",
    "hook_on_loading_state_dict_checkpoint",
    "map_old_state_dict_weights",
    "mark_as_loader",
    "mark_as_saver",
    "mark_as_transfer",
    "register_checkpoint_hooks",
    "torch_parameter_transfer",
    "torch_patched_state_dict_load",
    "torch_recovery",
    "torch_save",
]
