"""Retention plans for ``prune`` and ``plot``: which checkpoints stay, and why.

The plan applies the same rules as :meth:`Checkpointer.delete_checkpoints`:
broken checkpoints are left on disk and take no place among the kept ones,
folders without a manifest (SpeechBrain's) are never deleted, checkpoints
that the ``keep_every_n_epochs`` rule protects are never candidates, and
:func:`select_checkpoints_to_keep` chooses among the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import click

from recoverkit.cli._output import usage_error
from recoverkit.cli._verify import NO_MANIFEST, verify
from recoverkit.errors import InvalidRetentionPolicyError
from recoverkit.retention.policies import KeepEveryNEpochs, RetentionPolicy
from recoverkit.retention.selection import select_checkpoints_to_keep
from recoverkit.storage.layout import Checkpoint

__all__ = ["KEEP", "DELETE", "LEAVE", "Decision", "build_policy", "plan_retention", "retention_options"]

KEEP = "keep"
DELETE = "delete"
LEAVE = "leave"


@dataclasses.dataclass(frozen=True)
class Decision:
    """The action retention takes on one checkpoint (keep, delete or leave), with its reasons."""

    checkpoint: Checkpoint
    action: str
    reasons: tuple[str, ...]


def retention_options(keep_default: int | None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the retention options shared by ``prune`` and ``plot`` to a command.

    ``keep_default`` None makes ``--keep`` required.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        # Passing default=None would count as a value and turn off required.
        keep_default_arguments = {"required": True} if keep_default is None else {"default": keep_default, "show_default": True}
        options = [
            click.option(
                "--keep",
                "num_to_keep",
                type=click.IntRange(min=0),
                metavar="N",
                help="How many checkpoints each rule keeps: the N newest, and the N best "
                "for each --min-key and --max-key.",
                **keep_default_arguments,
            ),
            click.option(
                "--min-key",
                "min_keys",
                multiple=True,
                metavar="KEY",
                help="Also keep the N checkpoints with the lowest meta value KEY, such as "
                "valid_loss. Repeat for several keys.",
            ),
            click.option(
                "--max-key",
                "max_keys",
                multiple=True,
                metavar="KEY",
                help="Also keep the N checkpoints with the highest meta value KEY, such as "
                "accuracy. Repeat for several keys.",
            ),
            click.option(
                "--keep-recent/--no-keep-recent",
                default=True,
                show_default=True,
                help="Whether the N newest checkpoints are kept (as save_and_keep_only's keep_recent).",
            ),
            click.option(
                "--keep-every-n-epochs",
                type=click.IntRange(min=1),
                default=None,
                metavar="N",
                help="Never delete end-of-epoch checkpoints whose meta 'epoch' is a multiple of N.",
            ),
        ]
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def build_policy(
    num_to_keep: int,
    min_keys: Sequence[str],
    max_keys: Sequence[str],
    keep_recent: bool,
    keep_every_n_epochs: int | None,
) -> RetentionPolicy:
    """Return the retention policy of the command-line options, or raise a usage error."""
    try:
        return RetentionPolicy(
            num_to_keep=num_to_keep,
            keep_recent=keep_recent,
            max_keys=tuple(max_keys),
            min_keys=tuple(min_keys),
            keep_every_n_epochs=keep_every_n_epochs,
        )
    except InvalidRetentionPolicyError as error:
        usage_error(f"Invalid retention options: {error}")


def plan_retention(checkpoints: Sequence[Checkpoint], policy: RetentionPolicy) -> list[Decision]:
    """Decide for each checkpoint whether retention keeps, deletes or leaves it.

    Returns one decision per checkpoint, in the order of ``checkpoints``.
    """
    verifications = {checkpoint.path: verify(checkpoint, "full") for checkpoint in checkpoints}
    valid = [checkpoint for checkpoint in checkpoints if not verifications[checkpoint.path].failed]
    arguments = policy.delete_kwargs()
    deletable, reasons_by_path = select_checkpoints_to_keep(valid, **arguments)
    deletable_paths = {checkpoint.path for checkpoint in deletable}
    protector = arguments["ckpt_predicate"]

    decisions = []
    for checkpoint in checkpoints:
        verification = verifications[checkpoint.path]
        if verification.failed:
            reason = "broken, left on disk: " + "; ".join(verification.problems)
            decisions.append(Decision(checkpoint, LEAVE, (reason,)))
        elif checkpoint.path in reasons_by_path:
            decisions.append(Decision(checkpoint, KEEP, tuple(reasons_by_path[checkpoint.path])))
        elif checkpoint.path not in deletable_paths:
            decisions.append(Decision(checkpoint, KEEP, (_protection_reason(checkpoint, protector),)))
        elif verification.state == NO_MANIFEST:
            reason = "not written by recoverkit (no manifest), never deleted"
            decisions.append(Decision(checkpoint, LEAVE, (reason,)))
        else:
            decisions.append(Decision(checkpoint, DELETE, ()))
    return decisions


def _protection_reason(checkpoint: Checkpoint, protector: Any) -> str:
    if isinstance(protector, KeepEveryNEpochs) and protector.is_protected(checkpoint):
        epoch = checkpoint.meta.get(protector.epoch_key)
        return f"every {protector.n} epochs (epoch {epoch})"
    return "protected by the checkpoint predicate"
