"""``recoverkit ls``: a table of the checkpoints in a folder."""

from __future__ import annotations

import logging
import math
import pathlib
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from recoverkit.cli._folders import EXISTING_DIR, folder_size, user_meta
from recoverkit.cli._output import CheckFailed, format_size, format_time, format_value, make_console, print_json
from recoverkit.cli._verify import (
    BROKEN,
    NO_MANIFEST,
    NOT_A_CHECKPOINT,
    OK,
    SIZES_OK,
    UNVERIFIED,
    VERIFY_OPTION,
    FolderVerification,
    verify_checkpoints_dir,
)
from recoverkit.storage.layout import Checkpoint
from recoverkit.storage.meta import END_OF_EPOCH_KEY, UNIXTIME_KEY

__all__ = ["ls"]

logger = logging.getLogger(__name__)

_BUILTIN_SORT_KEYS = ("time", "name", "size")
_STATE_STYLES = {
    OK: "green",
    SIZES_OK: "green",
    BROKEN: "bold red",
    UNVERIFIED: "yellow",
    NO_MANIFEST: "yellow",
    NOT_A_CHECKPOINT: "dim",
}


@click.command(
    "ls",
    epilog="""\b
Examples:
  recoverkit ls results/checkpoints
  recoverkit ls results/checkpoints --sort valid_loss
  recoverkit ls results/checkpoints --sort accuracy --reverse
  recoverkit ls results/checkpoints --json | jq '.[0].name'

\b
Folders named CKPT+* without a CKPT.yaml meta file, or with a meta file but
neither a manifest nor .ckpt files, are shown as 'not a checkpoint'.
SpeechBrain checkpoints have no manifest and are shown as 'unverified (no
manifest)'. Neither counts as broken. 'recoverkit verify DIR' uses the same
rules and counts.

\b
Exit codes:
  0  no checkpoint is broken
  1  a checkpoint is broken: its meta file is unreadable, or a file differs
     from its manifest
  2  usage error, or DIR does not exist
""",
)
@click.argument("checkpoints_dir", metavar="DIR", type=EXISTING_DIR)
@click.option(
    "--sort",
    "sort_key",
    default="time",
    show_default=True,
    metavar="KEY",
    help="Order by 'time' (newest first), 'name', 'size' (largest first) or a meta key "
    "(smallest first; checkpoints without the key go last).",
)
@click.option("--reverse", is_flag=True, help="Reverse the order.")
@VERIFY_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
def ls(checkpoints_dir: pathlib.Path, sort_key: str, reverse: bool, verify_mode: str, as_json: bool) -> None:
    """List the checkpoints in DIR: time, kind, meta values, size and verification state."""
    results = verify_checkpoints_dir(checkpoints_dir, verify_mode)
    listed = {result.path: result for result in results if result.checkpoint is not None}
    ordered = _sort([result.checkpoint for result in listed.values()], sort_key, reverse)
    rows = [_row(listed[checkpoint.path]) for checkpoint in ordered]
    rows += [_row(result) for result in results if result.checkpoint is None]

    if as_json:
        print_json(rows)
    elif not rows:
        make_console().print(f"No checkpoints in {checkpoints_dir}.")
    else:
        make_console().print(_table(rows))

    broken = [result for result in results if result.verification.failed]
    if broken:
        checkpoints = [result for result in results if result.verification.state != NOT_A_CHECKPOINT]
        details = "; ".join(f"{result.name}: {', '.join(result.verification.problems)}" for result in broken)
        raise CheckFailed(f"{len(broken)} of {len(checkpoints)} checkpoints in {checkpoints_dir} are broken. {details}")


def _sort(checkpoints: list[Checkpoint], sort_key: str, reverse: bool) -> list[Checkpoint]:
    """Order checkpoints; ``checkpoints`` arrives newest first."""
    if sort_key == "time":
        ordered = list(checkpoints)
    elif sort_key == "name":
        ordered = sorted(checkpoints, key=lambda checkpoint: checkpoint.path.name)
    elif sort_key == "size":
        ordered = sorted(checkpoints, key=lambda checkpoint: folder_size(checkpoint.path), reverse=True)
    else:
        ordered = _sort_by_meta(checkpoints, sort_key)
    return list(reversed(ordered)) if reverse else ordered


def _sort_by_meta(checkpoints: list[Checkpoint], key: str) -> list[Checkpoint]:
    def has_value(checkpoint: Checkpoint) -> bool:
        value = checkpoint.meta.get(key)
        return _is_number(value) or isinstance(value, str)

    with_value = [checkpoint for checkpoint in checkpoints if has_value(checkpoint)]
    without_value = [checkpoint for checkpoint in checkpoints if not has_value(checkpoint)]
    if checkpoints and not with_value:
        known = sorted({name for checkpoint in checkpoints for name in user_meta(checkpoint)})
        raise click.BadParameter(
            f"no checkpoint has a meta value for {key!r}. Sort by one of "
            f"{', '.join(_BUILTIN_SORT_KEYS + tuple(known))}.",
            param_hint="--sort",
        )
    # Numbers before strings, so a folder with mixed values still sorts.
    with_value.sort(key=lambda checkpoint: _sortable(checkpoint.meta[key]))
    return with_value + without_value


def _sortable(value: Any) -> tuple[int, Any]:
    if _is_number(value):
        return (0, value)
    return (1, str(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not (
        isinstance(value, float) and math.isnan(value)
    )


def _row(result: FolderVerification) -> dict[str, Any]:
    checkpoint = result.checkpoint
    meta = checkpoint.meta if checkpoint is not None else {}
    return {
        "name": result.name,
        "path": str(result.path),
        "unixtime": meta.get(UNIXTIME_KEY),
        "time": format_time(meta.get(UNIXTIME_KEY)),
        "end_of_epoch": bool(meta.get(END_OF_EPOCH_KEY, True)) if checkpoint is not None else None,
        "meta": user_meta(checkpoint) if checkpoint is not None else {},
        "recoverables": sorted(checkpoint.paramfiles) if checkpoint is not None else [],
        "size_bytes": folder_size(result.path),
        "verification": result.verification.state,
        "problems": list(result.verification.problems),
    }


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("name", no_wrap=True)
    table.add_column("time", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("meta")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("verified", no_wrap=True)
    for row in rows:
        kind = "-" if row["end_of_epoch"] is None else ("end-of-epoch" if row["end_of_epoch"] else "intra-epoch")
        meta = " ".join(f"{key}={format_value(value)}" for key, value in row["meta"].items())
        state = row["verification"]
        style = _STATE_STYLES.get(state, "")
        cells = [row["name"], row["time"], kind, meta or "-", format_size(row["size_bytes"])]
        # Text cells, because meta values such as lists contain brackets that rich reads as markup.
        table.add_row(*(Text(cell) for cell in cells), Text(state, style=style))
    return table
