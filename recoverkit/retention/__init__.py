"""Choosing checkpoints: which one to recover and which ones to keep."""

from recoverkit.retention.policies import KeepEveryNEpochs, RetentionPolicy, register_importance_key
from recoverkit.retention.selection import (
    ckpt_recency,
    rank_checkpoints,
    select_checkpoints_to_keep,
)

__all__ = [
    "KeepEveryNEpochs",
    "RetentionPolicy",
    "ckpt_recency",
    "rank_checkpoints",
    "register_importance_key",
    "select_checkpoints_to_keep",
]
