"""Verification state of checkpoints for ``ls`` and ``inspect``."""

from __future__ import annotations

import dataclasses

import click

from recoverkit.storage.integrity import verify_checkpoint_dir
from recoverkit.storage.layout import Checkpoint

__all__ = ["VERIFY_MODES", "VERIFY_OPTION", "Verification", "verify"]

VERIFY_MODES = ("full", "sizes", "none")

# The --verify option of the commands that show a verification state.
VERIFY_OPTION = click.option(
    "--verify",
    "verify_mode",
    type=click.Choice(VERIFY_MODES),
    default="full",
    show_default=True,
    help="Check files against the manifest in CKPT.yaml: 'full' compares sizes and "
    "checksums (reads every byte), 'sizes' compares sizes only (one stat per file), "
    "'none' skips the check.",
)


@dataclasses.dataclass(frozen=True)
class Verification:
    """The outcome of checking a checkpoint's files against its manifest.

    ``state`` is ``ok`` (sizes and checksums match), ``sizes ok`` (only sizes
    were compared), ``failed``, ``unverified`` (not checked) or
    ``no manifest`` (SpeechBrain and other writers store none, so nothing
    can be checked).
    """

    state: str
    problems: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        """True when a file differs from the manifest."""
        return self.state == "failed"


def verify(checkpoint: Checkpoint, mode: str = "full") -> Verification:
    """Check the files of ``checkpoint`` against the manifest in its meta file.

    ``mode`` is one of :data:`VERIFY_MODES`.
    """
    if mode == "none":
        return Verification("unverified")
    result = verify_checkpoint_dir(checkpoint.path, checksums=mode == "full")
    if not result.ok:
        return Verification("failed", tuple(str(problem) for problem in result.problems))
    if not result.has_manifest:
        return Verification("no manifest")
    return Verification("ok" if mode == "full" else "sizes ok")
