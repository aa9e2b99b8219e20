"""``recoverkit remap``: rename and transform the keys of a weights file with keymaps."""

from __future__ import annotations

import logging
import pathlib
import pickle
from collections.abc import Callable, Sequence
from typing import Any

import click
import torch
from safetensors import SafetensorError

from recoverkit.cli._contents import read_short_text
from recoverkit.cli._output import CheckFailed, check_output_path, print_json, usage_error, write_output_file
from recoverkit.errors import KeymapError, RecoverkitError
from recoverkit.state_dict.keymap import BUILTIN_KEYMAPS, Keymap, KeymapReport, resolve_keymap
from recoverkit.state_dict.transfer import (
    SAFETENSORS_SUFFIXES,
    load_state_dict_file,
    read_state_dict_shapes,
)

__all__ = ["remap"]

logger = logging.getLogger(__name__)


@click.command(
    "remap",
    epilog=f"""\b
Examples:
  recoverkit remap model.safetensors --keymap recipes/minilm_keymap/keymap.yaml --dry-run
  recoverkit remap old.ckpt --keymap ddp --keymap renames.yaml --out new.ckpt
  recoverkit remap old.ckpt --keymap renames.yaml --target CKPT+best/model.ckpt --out new.ckpt

\b
SRC is a .safetensors file or a torch.save file (.ckpt, .pt, .pth, .bin). A
--keymap is a keymap YAML file or a built-in name ({", ".join(BUILTIN_KEYMAPS)}).
--dry-run reads only shapes (the header of a .safetensors file, a memory map
of a torch file) and prints where every key goes. With --target, keys that
the target lacks and target keys left without a value are errors unless you
pass --non-strict.

\b
Exit codes:
  0  the keymap applies cleanly (and, without --dry-run, DST was written)
  1  the keymap is invalid or does not fit: collisions, shape mismatches,
     or, with --target, unused or missing keys; or SRC or --target is not
     a readable weights file (truncated, text, not a state dict)
  2  usage error: SRC does not exist, --out missing or exists without --force
""",
)
@click.argument("source", metavar="SRC", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.option(
    "--keymap",
    "keymaps",
    multiple=True,
    required=True,
    metavar="FILE_OR_NAME",
    help="A keymap YAML file or a built-in keymap name. Repeat to apply several in order.",
)
@click.option(
    "--out",
    "out_path",
    metavar="DST",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    help="The converted weights file to write: safetensors if it ends in .safetensors, "
    "torch.save format otherwise.",
)
@click.option("--dry-run", is_flag=True, help="Print the report and write nothing.")
@click.option(
    "--target",
    "target_path",
    type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
    help="A weights file with the keys and shapes the result must have.",
)
@click.option("--non-strict", is_flag=True, help="With --target: warn about unused and missing keys instead of failing.")
@click.option("--max-keys", type=click.IntRange(min=0), default=None, help="List at most this many keys per report section.")
@click.option("--force", is_flag=True, help="Replace DST if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON for scripts.")
def remap(
    source: pathlib.Path,
    keymaps: Sequence[str],
    out_path: pathlib.Path | None,
    dry_run: bool,
    target_path: pathlib.Path | None,
    non_strict: bool,
    max_keys: int | None,
    force: bool,
    as_json: bool,
) -> None:
    """Map the keys of the weights file SRC through keymaps and write DST, or print the report with --dry-run."""
    if out_path is None and not dry_run:
        usage_error("Give --out DST for the converted file, or --dry-run to only print the report.")
    if out_path is not None and not dry_run:
        check_output_path(out_path, overwrite=force)
    keymap = _resolve(keymaps)
    strict = not non_strict
    target = _read_weights(read_state_dict_shapes, target_path) if target_path is not None else None
    source_shapes = _read_weights(read_state_dict_shapes, source)

    try:
        report = keymap.plan(source_shapes, target)
    except KeymapError as error:
        raise CheckFailed(str(error)) from error
    _print_report(report, as_json, max_keys)
    problems = report.errors(strict)
    for note in report.warnings(strict):
        click.echo(f"warning: {note}", err=True)
    if problems:
        raise CheckFailed("; ".join(problems))
    if dry_run:
        return

    assert out_path is not None
    mapped, _report = keymap.apply(_read_weights(load_state_dict_file, source), target, strict=strict, origin=str(source))
    write_output_file(out_path, lambda path: _save(mapped, path, out_path), overwrite=force)
    if not as_json:
        click.echo(f"Wrote {out_path} ({len(mapped)} keys)")


def _resolve(keymaps: Sequence[str]) -> Keymap:
    try:
        return resolve_keymap(list(keymaps))
    except KeymapError as error:
        raise CheckFailed(str(error)) from error


# What torch.load and safetensors raise for files that are cut short or not
# weights files at all, besides recoverkit's own errors.
_READ_ERRORS = (RecoverkitError, OSError, RuntimeError, EOFError, pickle.UnpicklingError, SafetensorError)


def _read_weights(read: Callable[[pathlib.Path], dict[str, Any]], path: pathlib.Path) -> dict[str, Any]:
    """Call ``read(path)``, turning a failure into one line that names the file and the fix."""
    try:
        return read(path)
    except _READ_ERRORS as error:
        raise CheckFailed(_read_failure_message(path, error)) from error


def _read_failure_message(path: pathlib.Path, error: BaseException) -> str:
    advice = "Pass a .safetensors file, or a torch.save file that contains a state dict."
    if path.stat().st_size == 0:
        return f"Cannot read {path}: the file is empty. {advice}"
    text = read_short_text(path)
    if text is not None:
        return f"Cannot read {path}: it is a text file ({_shorten(text)}), not a weights file. {advice}"
    if isinstance(error, RecoverkitError):
        # recoverkit's messages already name the file and what to do.
        return " ".join(str(error).split())
    return (
        f"Cannot read {path} as a weights file: {_first_sentence(error)}. It may be truncated "
        f"or corrupted: copy it again from its source. {advice}"
    )


def _first_sentence(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else type(error).__name__
    return first.split(". ")[0].rstrip(".")


def _shorten(text: str, max_chars: int = 40) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= max_chars else flat[: max_chars - 3] + "...")


def _print_report(report: KeymapReport, as_json: bool, max_keys: int | None) -> None:
    if as_json:
        print_json(report.as_dict())
    else:
        click.echo(report.format(max_keys=max_keys))


def _save(mapped: dict[str, Any], path: pathlib.Path, out_path: pathlib.Path) -> None:
    if out_path.suffix not in SAFETENSORS_SUFFIXES:
        torch.save(mapped, path)
        return
    from safetensors.torch import save_file

    others = [key for key, value in mapped.items() if not isinstance(value, torch.Tensor)]
    if others:
        raise CheckFailed(
            f"Cannot write {out_path} as safetensors: {others[:5]} are not tensors. "
            "Drop them with a drop rule, or write a .ckpt file instead."
        )
    # Copies, so that tensors which share memory (tied weights) can be stored.
    tensors = {key: value.detach().contiguous().clone() for key, value in mapped.items()}
    save_file(tensors, str(path), metadata={"format": "pt"})
