"""Choosing checkpoints: which one to recover and which ones to keep."""

from recoverkit.retention.selection import (
    ckpt_recency,
    rank_checkpoints,
    select_checkpoints_to_keep,
)

__all__ = ["ckpt_recency", "rank_checkpoints", "select_checkpoints_to_keep"]
