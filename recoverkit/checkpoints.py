"""Drop-in module for code written against ``speechbrain.utils.checkpoints``.

Replace ``from speechbrain.utils.checkpoints import ...`` with
``from recoverkit.checkpoints import ...``: every public name is here, and the
hook tables are the same objects as in :mod:`recoverkit`.

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
>>> # 1. Say where checkpoints go and what they contain:
>>> checkpointer = Checkpointer(tempdir, {"network": model})
>>> # 2. Recover from the newest checkpoint, if there is one:
>>> checkpointer.recover_if_possible()
>>> # Run the experiment:
>>> data = [(0.1, 0.9), (0.3, 0.8)]
>>> for example, target in data:
...     loss = (model(example) - target)**2
...     # 3. Save, keeping only the newest checkpoint (the default):
...     ckpt = checkpointer.save_and_keep_only()
"""

from recoverkit import (
    DEFAULT_LOAD_HOOKS,
    DEFAULT_SAVE_HOOKS,
    DEFAULT_TRANSFER_HOOKS,
    Checkpoint,
    Checkpointer,
    average_checkpoints,
    average_state_dicts,
    ckpt_recency,
    get_default_hook,
    hook_on_loading_state_dict_checkpoint,
    map_old_state_dict_weights,
    mark_as_loader,
    mark_as_saver,
    mark_as_transfer,
    register_checkpoint_hooks,
    torch_parameter_transfer,
    torch_patched_state_dict_load,
    torch_recovery,
    torch_save,
)
from recoverkit.storage.layout import CKPT_PREFIX, METAFNAME, PARAMFILE_EXT
from recoverkit.storage.meta import END_OF_EPOCH_KEY

__all__ = [
    "CKPT_PREFIX",
    "DEFAULT_LOAD_HOOKS",
    "DEFAULT_SAVE_HOOKS",
    "DEFAULT_TRANSFER_HOOKS",
    "END_OF_EPOCH_KEY",
    "METAFNAME",
    "PARAMFILE_EXT",
    "Checkpoint",
    "Checkpointer",
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
