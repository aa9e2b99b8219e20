"""``recoverkit verify``: check every checkpoint of a folder against its manifest."""

from __future__ import annotations

import pathlib

import click

from recoverkit.cli._folders import EXISTING_DIR
from recoverkit.cli._output import CheckFailed, print_json
from recoverkit.cli._verify import (
    NO_MANIFEST,
    NOT_A_CHECKPOINT,
    OK,
    SIZES_OK,
    FolderVerification,
    count_states,
    verify_checkpoints_dir,
)
from recoverkit.storage.layout import METAFNAME

__all__ = ["verify"]


@click.command(
    "verify",
    epilog=f"""\b
Examples:
  recoverkit verify results/checkpoints
  recoverkit verify results/checkpoints --verify sizes
  recoverkit verify results/checkpoints --json

\b
Folders named CKPT+* without a {METAFNAME} meta file, or with a meta file
but neither a manifest nor .ckpt files, are reported as 'not a checkpoint'
and skipped, as listing skips them. Checkpoints written by SpeechBrain have
no manifest, so they are reported as 'unverified (no manifest)' and are not
broken. 'recoverkit ls DIR' uses the same rules and counts.

\b
Exit codes:
  0  no checkpoint is broken
  1  a checkpoint is broken: a file is missing, has another size or
     checksum than recorded, or the meta file is unreadable
  2  usage error, or DIR does not exist
""",
)
@click.argument("checkpoints_dir", metavar="DIR", type=EXISTING_DIR)
@click.option(
    "--verify",
    "verify_mode",
    type=click.Choice(("full", "sizes")),
    default="full",
    show_default=True,
    help="'full' compares sizes and checksums (reads every byte), 'sizes' compares "
    "sizes only (one stat per file).",
)
# Kept for scripts written before --verify sizes, which ls and inspect use too.
@click.option("--sizes-only", is_flag=True, hidden=True, help="Same as --verify sizes.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per checkpoint folder.")
def verify(checkpoints_dir: pathlib.Path, verify_mode: str, sizes_only: bool, as_json: bool) -> None:
    """Check every checkpoint in DIR against the sizes and checksums in its meta file."""
    if sizes_only:
        verify_mode = "sizes"
    results = verify_checkpoints_dir(checkpoints_dir, verify_mode)
    results.sort(key=lambda result: result.name)
    broken = [result for result in results if result.verification.failed]

    if as_json:
        print_json([_as_json(result) for result in results])
    else:
        _print_results(checkpoints_dir, results, verify_mode)
    if broken:
        checkpoints = [result for result in results if result.verification.state != NOT_A_CHECKPOINT]
        raise CheckFailed(
            f"{len(broken)} of {len(checkpoints)} checkpoints in {checkpoints_dir} are broken. "
            "Recovery skips them; move them elsewhere once you have inspected them."
        )


def _as_json(result: FolderVerification) -> dict[str, object]:
    return {"name": result.name, "state": result.verification.state, "problems": list(result.verification.problems)}


def _print_results(checkpoints_dir: pathlib.Path, results: list[FolderVerification], verify_mode: str) -> None:
    if not results:
        click.echo(f"No checkpoint folders in {checkpoints_dir}.")
        return
    width = max(len(result.verification.state) for result in results)
    for result in results:
        click.echo(f"{result.verification.state.upper():<{width}}  {result.name}")
        for problem in result.verification.problems:
            click.echo(f"{'':<{width}}    {problem}")
    checked = "sizes" if verify_mode == "sizes" else "sizes and checksums"
    valid = sum(result.verification.state in (OK, SIZES_OK, NO_MANIFEST) for result in results)
    broken = sum(result.verification.failed for result in results)
    click.echo(f"{valid} valid, {broken} broken ({checked} checked): {count_states(results)}.")
