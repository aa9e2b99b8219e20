"""Declaring checkpointing in YAML: Hydra/OmegaConf and HyperPyYAML configs to a ready Checkpointer.

:func:`load_checkpointer` reads a config file (or a DictConfig or dict),
validates its ``checkpointer:`` section against the structured schema in
:mod:`recoverkit.config.schema`, builds the objects it refers to and
returns a :class:`LoadedCheckpointer`. Every unusable value raises
:class:`~recoverkit.errors.ConfigError` naming the file and key path.
"""

from recoverkit.config.hydra_frontend import compose_config
from recoverkit.config.loader import LoadedCheckpointer, apply_transfers, load_checkpointer
from recoverkit.config.objects import parameters_of
from recoverkit.config.schedule import SaveSchedule
from recoverkit.config.schema import (
    CheckpointerConfig,
    RecoverableConfig,
    RetentionConfig,
    ScheduleConfig,
    TransferConfig,
)
from recoverkit.config.transfer import TransferSpec
from recoverkit.errors import ConfigError
from recoverkit.retention.policies import RetentionPolicy, register_importance_key

__all__ = [
    "CheckpointerConfig",
    "ConfigError",
    "LoadedCheckpointer",
    "RecoverableConfig",
    "RetentionConfig",
    "RetentionPolicy",
    "SaveSchedule",
    "ScheduleConfig",
    "TransferConfig",
    "TransferSpec",
    "apply_transfers",
    "compose_config",
    "load_checkpointer",
    "parameters_of",
    "register_importance_key",
]
