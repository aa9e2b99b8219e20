"""``recoverkit verify``: check every checkpoint of a folder against its manifest."""

from __future__ import annotations

import dataclasses
import os
import pathlib

import click

from recoverkit.cli._folders import EXISTING_DIR
from recoverkit.cli._output import CheckFailed, print_json
from recoverkit.storage.integrity import VerificationResult, verify_checkpoint_dir
from recoverkit.storage.layout import METAFNAME, is_checkpoint_dirname

__all__ = ["verify"]


@dataclasses.dataclass(frozen=True)
class _FolderReport:
    name: str
    state: str  # "ok", "no manifest", "broken" or "not a checkpoint"
    problems: tuple[str, ...] = ()


@click.command(
    "verify",
    epilog=f"""\b
Examples:
  recoverkit verify results/checkpoints
  recoverkit verify results/checkpoints --sizes-only
  recoverkit verify results/checkpoints --json

\b
Folders named CKPT+* without a {METAFNAME} meta file are not checkpoints
and are reported as skipped. Checkpoints written by SpeechBrain have no
manifest, so they are reported as such and count as valid.

\b
Exit codes:
  0  every checkpoint is valid
  1  a checkpoint is broken: a file is missing, has another size or
     checksum than recorded, or the meta file is unreadable
  2  usage error, or DIR does not exist
""",
)
@click.argument("checkpoints_dir", metavar="DIR", type=EXISTING_DIR)
@click.option(
    "--sizes-only",
    is_flag=True,
    help="Compare file sizes only (one stat per file) instead of reading every byte for checksums.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per checkpoint folder.")
def verify(checkpoints_dir: pathlib.Path, sizes_only: bool, as_json: bool) -> None:
    """Check every checkpoint in DIR against the sizes and checksums in its meta file."""
    reports = [_verify_folder(path, checksums=not sizes_only) for path in _checkpoint_folders(checkpoints_dir)]
    broken = [report for report in reports if report.state == "broken"]

    if as_json:
        print_json([dataclasses.asdict(report) for report in reports])
    else:
        _print_reports(checkpoints_dir, reports, sizes_only)
    if broken:
        raise CheckFailed(
            f"{len(broken)} of {len(reports)} checkpoint folders in {checkpoints_dir} are broken. "
            "Recovery skips them; move them elsewhere once you have inspected them."
        )


def _checkpoint_folders(checkpoints_dir: pathlib.Path) -> list[pathlib.Path]:
    entries = sorted(os.scandir(checkpoints_dir), key=lambda entry: entry.name)
    return [pathlib.Path(entry.path) for entry in entries if is_checkpoint_dirname(entry.name) and entry.is_dir()]


def _verify_folder(path: pathlib.Path, checksums: bool) -> _FolderReport:
    if not (path / METAFNAME).exists():
        return _FolderReport(path.name, "not a checkpoint", (f"no {METAFNAME} meta file",))
    result: VerificationResult = verify_checkpoint_dir(path, checksums=checksums)
    if not result.ok:
        return _FolderReport(path.name, "broken", tuple(str(problem) for problem in result.problems))
    if not result.has_manifest:
        return _FolderReport(path.name, "no manifest")
    return _FolderReport(path.name, "ok")


def _print_reports(checkpoints_dir: pathlib.Path, reports: list[_FolderReport], sizes_only: bool) -> None:
    if not reports:
        click.echo(f"No checkpoint folders in {checkpoints_dir}.")
        return
    width = max(len(report.state) for report in reports)
    for report in reports:
        click.echo(f"{report.state.upper():<{width}}  {report.name}")
        for problem in report.problems:
            click.echo(f"{'':<{width}}    {problem}")
    checked = "sizes" if sizes_only else "sizes and checksums"
    valid = sum(report.state in ("ok", "no manifest") for report in reports)
    click.echo(f"{valid} valid, {sum(r.state == 'broken' for r in reports)} broken ({checked} checked).")
