"""Exceptions raised by recoverkit.

Every exception derives from :class:`RecoverkitError`, and also from the
built-in exception that SpeechBrain's checkpointer raises in the same
situation, so ``except RuntimeError`` in existing training scripts keeps
working.
"""

from __future__ import annotations

import pickle

__all__ = [
    "RecoverkitError",
    "RecipeError",
    "TrainingInterruptedError",
    "CheckpointExistsError",
    "CheckpointFormatError",
    "ShardedCheckpointError",
    "CheckpointLockedError",
    "ConfigError",
    "CorruptCheckpointError",
    "InvalidCheckpointNameError",
    "InvalidMetaError",
    "KeymapError",
    "InvalidRetentionPolicyError",
    "MissingHookError",
    "MissingRecoverableError",
    "UnsafeCheckpointFileError",
]


class RecoverkitError(Exception):
    """Base class of every error raised by recoverkit."""


class InvalidCheckpointNameError(RecoverkitError, ValueError):
    """A custom checkpoint name that cannot be used as a folder name."""


class ConfigError(RecoverkitError, ValueError):
    """A checkpointing config that cannot be used: unknown key, wrong type or bad value.

    The message names the config file, the key path, the problem and what
    is accepted. ``source`` and ``key_path`` hold the first two.
    """

    def __init__(self, message: str, source: str = "", key_path: str = "") -> None:
        super().__init__(message)
        self.source = source
        self.key_path = key_path


class InvalidMetaError(RecoverkitError, ValueError):
    """A meta value that cannot be stored safely in the YAML meta file."""


class InvalidRetentionPolicyError(RecoverkitError, ValueError):
    """A retention policy with an invalid field, or one that would delete every checkpoint.

    ``field`` names the offending field of the policy.
    """

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class CheckpointExistsError(RecoverkitError, FileExistsError):
    """A checkpoint with the requested name already exists."""


class CheckpointFormatError(RecoverkitError, ValueError):
    """A recoverable's file or folder was written in a format its load hook cannot read."""


class ShardedCheckpointError(RecoverkitError, RuntimeError):
    """``torch.distributed.checkpoint`` failed to save or load sharded state on some rank.

    ``failed_ranks`` lists the ranks that reported the failure.
    """

    def __init__(self, message: str, failed_ranks: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.failed_ranks = failed_ranks


class CheckpointLockedError(RecoverkitError, RuntimeError):
    """Another live process writes checkpoints into the same folder."""


class CorruptCheckpointError(RecoverkitError, RuntimeError):
    """A checkpoint whose files are missing, truncated or altered, or fail to load."""


class KeymapError(RecoverkitError, ValueError):
    """A keymap that is invalid, or that cannot map a state dict onto its target."""


class MissingHookError(RecoverkitError, TypeError):
    """A recoverable has neither a default hook nor a custom hook."""


class MissingRecoverableError(RecoverkitError, RuntimeError):
    """A checkpoint has no file for a recoverable that must be loaded."""


class UnsafeCheckpointFileError(RecoverkitError, pickle.UnpicklingError):
    """A checkpoint file needs globals that weights-only loading does not allow."""


class RecipeError(RecoverkitError, ValueError):
    """A training recipe that lacks a required key or declares an unusable value."""


class TrainingInterruptedError(RecoverkitError, RuntimeError):
    """A run stopped on a signal after saving a checkpoint; rerun the command to resume.

    ``signal_number`` is the signal that stopped it.
    """

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.signal_number = signal_number

    def __reduce__(self) -> tuple:
        # Sweep jobs in other processes (Submitit) send their errors back pickled.
        return (type(self), (str(self), self.signal_number))
