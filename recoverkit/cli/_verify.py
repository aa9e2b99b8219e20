"""Verification state of checkpoint folders, shared by ``ls``, ``verify``, ``inspect`` and ``prune``.

One rule decides the state of every ``CKPT+*`` folder, so that all commands
report and count the same folders the same way:

- ``not a checkpoint``: no meta file, or a meta file without a manifest and
  without parameter files (a foreign folder that listing ignores). Never
  counted as broken.
- ``broken``: the meta file cannot be read or parsed, or a file differs from
  the manifest (missing, other size or checksum).
- ``unverified (no manifest)``: a readable checkpoint whose writer stores no
  manifest (SpeechBrain), so nothing can be checked. Not broken.
- ``ok`` or ``sizes ok``: every file matches the manifest (sizes and
  checksums, or sizes only).
- ``unverified``: the check was turned off with ``--verify none``.
"""

from __future__ import annotations

import dataclasses
import pathlib

import click

from recoverkit.cli._folders import SkippedFolder, list_checkpoints, list_skipped
from recoverkit.storage.integrity import FileProblem, verify_checkpoint_dir
from recoverkit.storage.layout import Checkpoint

__all__ = [
    "BROKEN",
    "NOT_A_CHECKPOINT",
    "NO_MANIFEST",
    "OK",
    "SIZES_OK",
    "UNVERIFIED",
    "VERIFY_MODES",
    "VERIFY_OPTION",
    "FolderVerification",
    "Verification",
    "count_states",
    "verify",
    "verify_checkpoints_dir",
]

OK = "ok"
SIZES_OK = "sizes ok"
BROKEN = "broken"
NO_MANIFEST = "unverified (no manifest)"
UNVERIFIED = "unverified"
NOT_A_CHECKPOINT = "not a checkpoint"

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

    ``state`` is one of the states in this module's docstring, and
    ``problems`` lists what differs, one text per file, when it is ``broken``.
    ``file_problems`` contains the same problems as the integrity check returns
    them, and ``mode`` is the verification mode that was used.
    """

    state: str
    problems: tuple[str, ...] = ()
    file_problems: tuple[FileProblem, ...] = ()
    mode: str = "full"

    @property
    def failed(self) -> bool:
        """True when the checkpoint is broken."""
        return self.state == BROKEN

    def file_state(self, filename: str) -> str:
        """Return the state of one file of the checkpoint, such as ``ok`` or ``checksum mismatch``.

        ``filename`` is relative to the checkpoint folder, as in the manifest.
        """
        for problem in self.file_problems:
            if problem.file == filename:
                return _problem_kind(problem)
        if self.state == BROKEN:
            # Another file is broken, and this one matched the manifest.
            return SIZES_OK if self.mode == "sizes" else OK
        return self.state


@dataclasses.dataclass(frozen=True)
class FolderVerification:
    """The state of one ``CKPT+*`` folder; ``checkpoint`` is None for folders that listing skips."""

    path: pathlib.Path
    verification: Verification
    checkpoint: Checkpoint | None = None

    @property
    def name(self) -> str:
        """The folder name, such as ``CKPT+epoch-3``."""
        return self.path.name


def verify(checkpoint: Checkpoint, mode: str = "full") -> Verification:
    """Check the files of ``checkpoint`` against the manifest in its meta file.

    ``mode`` is one of :data:`VERIFY_MODES`.
    """
    if mode == "none":
        return Verification(UNVERIFIED)
    result = verify_checkpoint_dir(checkpoint.path, checksums=mode == "full")
    if not result.ok:
        problems = tuple(str(problem) for problem in result.problems)
        return Verification(BROKEN, problems, result.problems, mode)
    if not result.has_manifest:
        return Verification(NO_MANIFEST, mode=mode)
    return Verification(OK if mode == "full" else SIZES_OK, mode=mode)


def verify_checkpoints_dir(checkpoints_dir: pathlib.Path, mode: str = "full") -> list[FolderVerification]:
    """Return the state of every ``CKPT+*`` folder in ``checkpoints_dir``.

    Checkpoints come first, newest first, then the folders that listing
    skips, by name.
    """
    checkpoints = list_checkpoints(checkpoints_dir)
    results = [FolderVerification(checkpoint.path, verify(checkpoint, mode), checkpoint) for checkpoint in checkpoints]
    results += [_skipped_state(folder) for folder in list_skipped(checkpoints_dir, checkpoints)]
    return results


def count_states(results: list[FolderVerification]) -> str:
    """Return the tally of states as text, such as ``4 ok, 2 broken, 1 not a checkpoint``."""
    counts: dict[str, int] = {}
    for result in results:
        counts[result.verification.state] = counts.get(result.verification.state, 0) + 1
    order = (OK, SIZES_OK, BROKEN, NO_MANIFEST, UNVERIFIED, NOT_A_CHECKPOINT)
    return ", ".join(f"{counts[state]} {state}" for state in order if state in counts)


def _problem_kind(problem: FileProblem) -> str:
    """Return a short name for what is wrong with a file, from the ``found`` text of the integrity check."""
    found = problem.found
    if found == "no file (missing)":
        return "missing"
    for marker, kind in (("(zero-length)", "zero-length"), ("(truncated)", "truncated"), ("(contents altered)", "checksum mismatch")):
        if found.endswith(marker):
            return kind
    if problem.expected.endswith(" bytes"):
        return "size mismatch"
    return "unreadable"


def _skipped_state(folder: SkippedFolder) -> FolderVerification:
    state = BROKEN if folder.broken else NOT_A_CHECKPOINT
    return FolderVerification(folder.path, Verification(state, (folder.reason,)))
