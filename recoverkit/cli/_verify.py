"""Verification state of checkpoints for ``ls`` and ``inspect``."""

from __future__ import annotations

import dataclasses

from recoverkit.cli._folders import has_manifest
from recoverkit.storage.layout import Checkpoint

__all__ = ["Verification", "verify"]


@dataclasses.dataclass(frozen=True)
class Verification:
    """The outcome of checking a checkpoint's files against its manifest.

    ``state`` is ``ok``, ``failed``, ``unverified`` (not checked) or
    ``no manifest`` (SpeechBrain and other writers store none).
    """

    state: str
    problems: tuple[str, ...] = ()


def verify(checkpoint: Checkpoint, enabled: bool = True) -> Verification:
    """Check the files of ``checkpoint`` against the manifest in its meta file."""
    if not has_manifest(checkpoint):
        return Verification("no manifest")
    return Verification("unverified")
