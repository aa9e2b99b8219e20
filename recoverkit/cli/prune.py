"""``recoverkit prune``: delete the checkpoints that retention rules do not keep."""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from recoverkit.checkpointer import Checkpointer
from recoverkit.cli._folders import EXISTING_DIR, folder_size, list_checkpoints, user_meta
from recoverkit.cli._output import CheckFailed, format_size, format_value, make_console, print_json
from recoverkit.cli._retention import DELETE, KEEP, Decision, build_policy, plan_retention, retention_options
from recoverkit.errors import CheckpointLockedError

__all__ = ["prune"]

logger = logging.getLogger(__name__)

_ACTION_STYLES = {KEEP: "green", DELETE: "red", "leave": "yellow"}


@click.command(
    "prune",
    epilog="""\b
Examples:
  recoverkit prune results/checkpoints --keep 2
  recoverkit prune results/checkpoints --keep 1 --min-key valid_loss --keep-every-n-epochs 5
  recoverkit prune results/checkpoints --keep 1 --min-key valid_loss --yes

\b
Without --yes nothing is deleted: the command prints what it would keep
(and which rule keeps it) and what it would delete. With --yes it deletes
through Checkpointer.delete_checkpoints, which takes the folder's lock, so
it fails instead of racing a training run that writes into DIR. Broken
checkpoints and folders that recoverkit did not write are never deleted.

\b
Exit codes:
  0  the plan was printed, or the checkpoints were deleted
  1  deleting failed, for example because a running job holds the folder's lock
  2  usage error, or DIR does not exist
""",
)
@click.argument("checkpoints_dir", metavar="DIR", type=EXISTING_DIR)
@retention_options(keep_default=None)
@click.option("--yes", "confirmed", is_flag=True, help="Delete for real instead of a dry run.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
def prune(
    checkpoints_dir: pathlib.Path,
    num_to_keep: int,
    min_keys: Sequence[str],
    max_keys: Sequence[str],
    keep_recent: bool,
    keep_every_n_epochs: int | None,
    confirmed: bool,
    as_json: bool,
) -> None:
    """Delete the checkpoints in DIR that the retention rules do not keep (dry run by default)."""
    policy = build_policy(num_to_keep, min_keys, max_keys, keep_recent, keep_every_n_epochs)
    decisions = plan_retention(list_checkpoints(checkpoints_dir), policy)
    to_delete = [decision for decision in decisions if decision.action == DELETE]

    deleted: list[str] = []
    if confirmed and to_delete:
        try:
            policy.apply(Checkpointer(checkpoints_dir))
        except CheckpointLockedError as error:
            raise CheckFailed(f"Nothing was deleted. {error}") from error
        remaining = {checkpoint.path for checkpoint in list_checkpoints(checkpoints_dir)}
        deleted = [str(decision.checkpoint.path) for decision in decisions if decision.checkpoint.path not in remaining]

    if as_json:
        print_json(_json_report(decisions, confirmed, deleted))
    else:
        _print_report(checkpoints_dir, decisions, confirmed, deleted)

    planned = {str(decision.checkpoint.path) for decision in to_delete}
    if confirmed and set(deleted) != planned:
        raise CheckFailed(
            f"Deleted {len(deleted)} checkpoints but planned {len(planned)}: the folder changed "
            f"while pruning. Run 'recoverkit ls {checkpoints_dir}' to see what is left."
        )


def _json_report(decisions: list[Decision], confirmed: bool, deleted: list[str]) -> dict[str, Any]:
    return {
        "dry_run": not confirmed,
        "checkpoints": [
            {
                "name": decision.checkpoint.path.name,
                "path": str(decision.checkpoint.path),
                "action": decision.action,
                "reasons": list(decision.reasons),
                "meta": user_meta(decision.checkpoint),
            }
            for decision in decisions
        ],
        "deleted": deleted,
    }


def _print_report(checkpoints_dir: pathlib.Path, decisions: list[Decision], confirmed: bool, deleted: list[str]) -> None:
    console = make_console()
    if not decisions:
        console.print(f"No checkpoints in {checkpoints_dir}: nothing to prune.")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("action", no_wrap=True)
    table.add_column("name", no_wrap=True)
    table.add_column("meta")
    table.add_column("reason")
    for decision in decisions:
        meta = " ".join(f"{key}={format_value(value)}" for key, value in user_meta(decision.checkpoint).items())
        action = decision.action
        if action == DELETE and confirmed:
            action = "deleted" if str(decision.checkpoint.path) in deleted else DELETE
        table.add_row(
            Text(action, style=_ACTION_STYLES.get(decision.action, "")),
            Text(decision.checkpoint.path.name),
            Text(meta or "-"),
            Text(", ".join(decision.reasons)),
        )
    console.print(table)

    to_delete = [decision for decision in decisions if decision.action == DELETE]
    freed = sum(folder_size(decision.checkpoint.path) for decision in to_delete) if not confirmed else None
    console.print()
    if not to_delete:
        console.print(f"Nothing to delete: the rules keep all {len(decisions)} checkpoints.")
    elif confirmed:
        console.print(f"Deleted {len(deleted)} of {len(decisions)} checkpoints.")
    else:
        console.print(
            f"Dry run: would delete {len(to_delete)} of {len(decisions)} checkpoints "
            f"({format_size(freed)}). Pass --yes to delete them."
        )
