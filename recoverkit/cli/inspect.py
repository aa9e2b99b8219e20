"""``recoverkit inspect``: the recoverables of one checkpoint and their tensors."""

from __future__ import annotations

import logging
import pathlib
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from recoverkit.cli._contents import LoadFailed, describe, flatten, load_parameter_file
from recoverkit.cli._folders import folder_size, load_checkpoint_folder, user_meta
from recoverkit.cli._output import CheckFailed, format_size, format_time, format_value, make_console, print_json, usage_error
from recoverkit.cli._verify import NO_MANIFEST, OK, SIZES_OK, UNVERIFIED, VERIFY_OPTION, verify
from recoverkit.storage.layout import Checkpoint
from recoverkit.storage.meta import END_OF_EPOCH_KEY, UNIXTIME_KEY

__all__ = ["inspect"]

logger = logging.getLogger(__name__)


@click.command(
    "inspect",
    epilog="""\b
Examples:
  recoverkit inspect results/checkpoints/CKPT+2024-05-01+12-00-00+00
  recoverkit inspect results/checkpoints/CKPT+2024-05-01+12-00-00+00 model
  recoverkit inspect CKPT_FOLDER optimizer --json

\b
Exit codes:
  0  every file of the checkpoint loads and verification did not fail
  1  a file cannot be loaded, or the checkpoint failed verification
  2  usage error: CKPT does not exist, is not a checkpoint, or has no RECOVERABLE
""",
)
@click.argument(
    "checkpoint_dir",
    metavar="CKPT",
    type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path),
)
@click.argument("recoverable", required=False)
@VERIFY_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables.")
def inspect(checkpoint_dir: pathlib.Path, recoverable: str | None, verify_mode: str, as_json: bool) -> None:
    """Show the recoverables of checkpoint CKPT, or the tensors of one RECOVERABLE.

    CKPT is a checkpoint folder (CKPT+...), written by recoverkit or by
    SpeechBrain. For a state dict, each tensor is listed with its shape,
    dtype and size; nested state dicts such as an optimizer's get dotted keys.
    """
    checkpoint, _manifest = load_checkpoint_folder(checkpoint_dir)
    verification = verify(checkpoint, verify_mode)
    if recoverable is None:
        names = sorted(checkpoint.paramfiles)
    elif recoverable in checkpoint.paramfiles:
        names = [recoverable]
    else:
        usage_error(
            f"Checkpoint {checkpoint.path} has no recoverable {recoverable!r}. "
            f"It has: {', '.join(sorted(checkpoint.paramfiles))}."
        )

    files = []
    for name in names:
        path = checkpoint.paramfiles[name]
        item = _inspect_file(name, path, with_entries=recoverable is not None)
        item["verification"] = verification.file_state(path.name)
        files.append(item)
    summary = _summary(checkpoint, verification.state, list(verification.problems))
    if as_json:
        print_json({**summary, "recoverables": files})
    else:
        console = make_console()
        console.print(_summary_table(summary))
        console.print()
        if recoverable is None:
            console.print(_recoverables_table(files))
        else:
            _print_entries(console, files[0])

    problems = list(verification.problems) + [f"{item['name']}: {item['error']}" for item in files if item["error"]]
    if problems:
        raise CheckFailed(f"Checkpoint {checkpoint.path} is broken: {'; '.join(problems)}")


def _inspect_file(name: str, path: pathlib.Path, with_entries: bool) -> dict[str, Any]:
    result: dict[str, Any] = {
        "name": name,
        "file": path.name,
        "size_bytes": path.stat().st_size if path.exists() else None,
        "content": None,
        "error": None,
    }
    if not path.exists():
        result["error"] = f"the file {path.name} is missing"
        return result
    try:
        loaded = load_parameter_file(path)
    except LoadFailed as error:
        result["error"] = str(error)
        return result
    result["content"] = describe(loaded)
    if with_entries:
        result["entries"] = [entry.as_json() for entry in flatten(loaded)] if not isinstance(loaded, str) else []
    return result


def _summary(checkpoint: Checkpoint, state: str, problems: list[str]) -> dict[str, Any]:
    return {
        "path": str(checkpoint.path),
        "unixtime": checkpoint.meta.get(UNIXTIME_KEY),
        "time": format_time(checkpoint.meta.get(UNIXTIME_KEY)),
        "end_of_epoch": bool(checkpoint.meta.get(END_OF_EPOCH_KEY, True)),
        "meta": user_meta(checkpoint),
        "size_bytes": folder_size(checkpoint.path),
        "verification": state,
        "problems": problems,
    }


def _summary_table(summary: dict[str, Any]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    meta = " ".join(f"{key}={format_value(value)}" for key, value in summary["meta"].items())
    rows = [
        ("checkpoint", summary["path"]),
        ("time", summary["time"]),
        ("kind", "end-of-epoch" if summary["end_of_epoch"] else "intra-epoch"),
        ("meta", meta or "-"),
        ("size", format_size(summary["size_bytes"])),
        ("verified", summary["verification"]),
    ]
    for label, value in rows:
        table.add_row(label, Text(value))
    return table


def _recoverables_table(files: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("recoverable", no_wrap=True)
    table.add_column("file", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("verified", no_wrap=True)
    table.add_column("content")
    for item in files:
        content = Text(item["content"]) if item["error"] is None else Text(f"cannot load: {item['error']}", style="bold red")
        state = Text(item["verification"], style=_file_state_style(item["verification"]))
        table.add_row(Text(item["name"]), Text(item["file"]), format_size(item["size_bytes"]), state, content)
    return table


def _file_state_style(state: str) -> str:
    if state in (OK, SIZES_OK):
        return "green"
    if state in (UNVERIFIED, NO_MANIFEST):
        return "yellow"
    return "bold red"


def _print_entries(console: Console, item: dict[str, Any]) -> None:
    heading = f"{item['name']} ({item['file']}, {format_size(item['size_bytes'])}, verified: {item['verification']})"
    console.print(Text(heading, style="bold"))
    if item["error"] is not None:
        console.print(Text(f"cannot load: {item['error']}", style="bold red"))
        return
    console.print(Text(item["content"]))
    entries = item.get("entries") or []
    if not entries:
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("key")
    table.add_column("type", no_wrap=True)
    table.add_column("shape", no_wrap=True)
    table.add_column("dtype", no_wrap=True)
    table.add_column("size or value", justify="right", no_wrap=True)
    for entry in entries:
        table.add_row(*(Text(cell) for cell in _entry_cells(entry)))
    console.print()
    console.print(table)


def _entry_cells(entry: dict[str, Any]) -> list[str]:
    if entry["type"] == "tensor":
        shape = str(tuple(entry["shape"]))
        return [entry["key"], "tensor", shape, entry["dtype"], format_size(entry["num_bytes"])]
    return [entry["key"], entry["type"], "-", "-", entry["value"]]

