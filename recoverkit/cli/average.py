"""``recoverkit average``: average one recoverable's parameters over several checkpoints."""

from __future__ import annotations

import logging
import pathlib
from typing import Any

import click
import torch

from recoverkit.checkpointer import Checkpointer
from recoverkit.cli._contents import is_flat_state_dict
from recoverkit.cli._folders import EXISTING_DIR, list_checkpoints
from recoverkit.cli._output import CheckFailed, check_output_path, make_console, print_json, usage_error, write_output_file
from recoverkit.cli._verify import verify
from recoverkit.hooks.torch_hooks import torch_patched_state_dict_load
from recoverkit.state_dict.average import average_checkpoints
from recoverkit.storage.layout import Checkpoint

__all__ = ["average"]

logger = logging.getLogger(__name__)


class _NotAStateDict(Exception):
    """A parameter file that contains something other than a flat state dict of tensors."""


@click.command(
    "average",
    epilog="""\b
Examples:
  recoverkit average results/checkpoints --last 5 --recoverable model --out model-avg.ckpt
  recoverkit average results/checkpoints --best 3 --min-key valid_loss --recoverable model --out best3.ckpt

\b
The result is a state dict written with torch.save; load it with
model.load_state_dict(torch.load("best3.ckpt", weights_only=True)).
Floating-point tensors are averaged, integer tensors (such as batch-norm
counters) come from the first checkpoint of the selection: the newest
with --last, the best with --best.

\b
Exit codes:
  0  the average was written
  1  no checkpoint matches, or a parameter file cannot be loaded or averaged
  2  usage error, DIR does not exist, or no checkpoint has RECOVERABLE
""",
)
@click.argument("checkpoints_dir", metavar="DIR", type=EXISTING_DIR)
@click.option("--last", "last", type=click.IntRange(min=1), metavar="K", help="Average the K newest checkpoints.")
@click.option(
    "--best",
    "best",
    type=click.IntRange(min=1),
    metavar="K",
    help="Average the K best checkpoints by --min-key or --max-key.",
)
@click.option("--min-key", metavar="KEY", help="With --best: the lowest meta values of KEY are best.")
@click.option("--max-key", metavar="KEY", help="With --best: the highest meta values of KEY are best.")
@click.option("--recoverable", "recoverable", required=True, metavar="NAME", help="The recoverable to average, such as model.")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    help="The file to write the averaged state dict to.",
)
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary for scripts.")
def average(
    checkpoints_dir: pathlib.Path,
    last: int | None,
    best: int | None,
    min_key: str | None,
    max_key: str | None,
    recoverable: str,
    out_path: pathlib.Path,
    force: bool,
    as_json: bool,
) -> None:
    """Average the parameters of RECOVERABLE over the last or best checkpoints in DIR."""
    count = _check_selection(last, best, min_key, max_key)
    check_output_path(out_path, overwrite=force)
    _check_recoverable_exists(checkpoints_dir, recoverable)
    selected = Checkpointer(checkpoints_dir).find_checkpoints(
        min_key=min_key, max_key=max_key, max_num_checkpoints=count
    )
    if not selected:
        rule = f"a meta value for {min_key or max_key!r}" if best is not None else "a checkpoint"
        raise CheckFailed(f"Nothing to average: no checkpoint in {checkpoints_dir} has {rule}.")
    if len(selected) < count:
        make_console(stderr=True).print(
            f"Warning: only {len(selected)} checkpoints match, fewer than the {count} requested; "
            "averaging those."
        )

    _check_not_broken(selected)
    averaged = _average(selected, recoverable)
    write_output_file(out_path, lambda path: torch.save(averaged, path), overwrite=force)
    summary = {
        "out": str(out_path),
        "recoverable": recoverable,
        "checkpoints": [str(checkpoint.path) for checkpoint in selected],
        "num_tensors": sum(isinstance(value, torch.Tensor) for value in averaged.values()),
    }
    if as_json:
        print_json(summary)
        return
    console = make_console()
    console.print(f"Averaged {recoverable!r} over {len(selected)} checkpoints:")
    for checkpoint in selected:
        console.print(f"  {checkpoint.path.name}")
    console.print(f"Wrote {summary['num_tensors']} tensors to {out_path}")


def _check_selection(last: int | None, best: int | None, min_key: str | None, max_key: str | None) -> int:
    """Return the number of checkpoints to average, or raise a usage error."""
    if (last is None) == (best is None):
        usage_error("Pass exactly one of --last K and --best K.")
    if last is not None:
        if min_key is not None or max_key is not None:
            usage_error("--min-key and --max-key go with --best, not with --last.")
        return last
    if (min_key is None) == (max_key is None):
        usage_error("--best needs exactly one of --min-key KEY and --max-key KEY to rank checkpoints.")
    assert best is not None
    return best


def _check_recoverable_exists(checkpoints_dir: pathlib.Path, recoverable: str) -> None:
    names = sorted({name for checkpoint in list_checkpoints(checkpoints_dir) for name in checkpoint.paramfiles})
    if names and recoverable not in names:
        usage_error(f"No checkpoint in {checkpoints_dir} has recoverable {recoverable!r}. They have: {', '.join(names)}.")


def _check_not_broken(selected: list[Checkpoint]) -> None:
    """Raise CheckFailed if a selected checkpoint differs from its manifest.

    Altered bytes can still load as tensors, so only verification keeps them
    out of the average.
    """
    broken = [(checkpoint, verify(checkpoint, "full")) for checkpoint in selected]
    broken = [(checkpoint, verification) for checkpoint, verification in broken if verification.failed]
    if broken:
        details = "; ".join(f"{checkpoint.path.name}: {', '.join(verification.problems)}" for checkpoint, verification in broken)
        raise CheckFailed(
            f"Not averaging: {len(broken)} selected checkpoints are broken ({details}). "
            "Move them out of the folder, or select others."
        )


def _average(selected: list[Checkpoint], recoverable: str) -> dict[str, Any]:
    try:
        return average_checkpoints(selected, recoverable, parameter_loader=_load_state_dict)
    except KeyError as error:
        raise CheckFailed(str(error.args[0]) if error.args else str(error)) from error
    except _NotAStateDict as error:
        raise CheckFailed(str(error)) from error
    except ValueError as error:
        raise CheckFailed(f"Cannot average {recoverable!r}: {error}") from error


def _load_state_dict(path: pathlib.Path) -> dict[str, Any]:
    try:
        loaded = torch_patched_state_dict_load(path, "cpu")
    except Exception as error:  # a broken file of any kind ends the command with its name
        raise CheckFailed(f"Cannot load {path}: {type(error).__name__}: {error}") from error
    if not is_flat_state_dict(loaded):
        raise _NotAStateDict(
            f"{path} does not contain a state dict of tensors (it contains a {type(loaded).__name__} "
            "with nested or non-tensor values), so it cannot be averaged. Average a model's "
            "recoverable; optimizer and counter states have no meaningful average."
        )
    return loaded
