"""``recoverkit convert``: state dicts between torch.save files and safetensors."""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from collections.abc import Sequence
from typing import Any

import click
import torch
from rich.table import Table
from rich.text import Text

from recoverkit.cli._contents import LoadFailed, load_parameter_file
from recoverkit.cli._folders import load_checkpoint_folder
from recoverkit.cli._output import CheckFailed, check_output_path, make_console, print_json, usage_error, write_output_file
from recoverkit.cli._verify import verify
from recoverkit.storage.layout import METAFNAME, PARAMFILE_EXT

__all__ = ["convert"]

logger = logging.getLogger(__name__)

SAFETENSORS_EXT = ".safetensors"
_FORMATS = ("safetensors", "torch")
_TORCH_SUFFIXES = (PARAMFILE_EXT, ".pt", ".pth")


_TORCH_FORMAT_HINT = "safetensors stores only a flat mapping of names to tensors, so keep this file in torch format"


class NotConvertible(Exception):
    """A file whose content safetensors cannot store, such as an optimizer state.

    ``reason`` is short enough for the table of skipped files, ``hint`` tells what to do when the file was requested by name.
    """

    def __init__(self, reason: str, hint: str = _TORCH_FORMAT_HINT) -> None:
        super().__init__(f"{reason}; {hint}")
        self.reason = reason


class SharedTensors(NotConvertible):
    """A state dict with tensors that share memory: converting it needs --clone-shared."""


@dataclasses.dataclass
class _Result:
    source: pathlib.Path
    target: pathlib.Path | None = None
    num_tensors: int = 0
    skipped: str | None = None
    error: str | None = None


@click.command(
    "convert",
    epilog="""\b
Examples:
  recoverkit convert CKPT_FOLDER --to safetensors --out exported/
  recoverkit convert CKPT_FOLDER/model.ckpt --to safetensors --out model.safetensors
  recoverkit convert model.safetensors --to torch --out model.ckpt

\b
SRC is a file or a folder. From a checkpoint folder, --to safetensors writes
<recoverable>.safetensors into the folder --out for every recoverable that is
a flat state dict of tensors (a model's) and lists the others as skipped;
name recoverables with --recoverable to require them. From a folder of
.safetensors files, --to torch writes <name>.ckpt files.

\b
safetensors stores a flat mapping of names to tensors only, so entries that
are not tensors (an optimizer's param_groups, a counter) cannot be converted,
and tensors that share memory (tied weights) are rejected unless you pass
--clone-shared, which stores a separate copy of each.

\b
Exit codes:
  0  every requested file was converted
  1  a file cannot be loaded or converted, or nothing was convertible
  2  usage error: SRC does not exist, --out exists without --force, unknown --recoverable
""",
)
@click.argument("source", metavar="SRC", type=click.Path(exists=True, path_type=pathlib.Path))
@click.option("--to", "target_format", type=click.Choice(_FORMATS), required=True, help="The format to write.")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(path_type=pathlib.Path),
    help="The file to write, or the folder when SRC is a folder (created if missing).",
)
@click.option(
    "--recoverable",
    "recoverables",
    multiple=True,
    metavar="NAME",
    help="With a checkpoint folder: convert only this recoverable, and fail if it cannot be "
    "converted. Repeat for several.",
)
@click.option("--clone-shared", is_flag=True, help="Store a copy of each tensor that shares memory with another.")
@click.option("--force", is_flag=True, help="Replace output files that exist.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary for scripts.")
def convert(
    source: pathlib.Path,
    target_format: str,
    out_path: pathlib.Path,
    recoverables: Sequence[str],
    clone_shared: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Convert the state dicts in SRC to safetensors or to torch.save files."""
    if source.is_dir():
        results = _convert_folder(source, target_format, out_path, recoverables, clone_shared, force)
    else:
        if recoverables:
            usage_error("--recoverable applies to checkpoint folders; SRC is a file.")
        _check_not_in_target_format(source, target_format)
        check_output_path(out_path, overwrite=force)
        results = [_convert_file(source, target_format, out_path, clone_shared, force, required=True)]

    if as_json:
        print_json([_result_json(result) for result in results])
    else:
        _print_results(results)

    failed = [result for result in results if result.error is not None]
    if failed:
        raise CheckFailed("; ".join(f"{result.source}: {result.error}" for result in failed))
    if not any(result.target is not None for result in results):
        raise CheckFailed(f"Nothing in {source} could be converted to {target_format}.")


def _check_not_in_target_format(source: pathlib.Path, target_format: str) -> None:
    suffix = source.suffix.lower()
    if target_format == "safetensors" and suffix == SAFETENSORS_EXT:
        usage_error(f"{source} is a safetensors file already. Pass --to torch to convert it to a torch.save file.")
    if target_format == "torch" and suffix in _TORCH_SUFFIXES:
        usage_error(f"{source} is a torch.save file already. Pass --to safetensors to convert it.")


def _convert_folder(
    source: pathlib.Path,
    target_format: str,
    out_dir: pathlib.Path,
    recoverables: Sequence[str],
    clone_shared: bool,
    force: bool,
) -> list[_Result]:
    sources = _folder_sources(source, target_format, recoverables)
    if out_dir.exists() and not out_dir.is_dir():
        usage_error(f"--out {out_dir} is a file; SRC is a folder, so --out must be a folder.")
    out_dir.mkdir(parents=True, exist_ok=True)
    extension = SAFETENSORS_EXT if target_format == "safetensors" else PARAMFILE_EXT
    targets = {path: out_dir / f"{path.stem}{extension}" for path in sources}
    for target in targets.values():
        check_output_path(target, overwrite=force)
    return [
        _convert_file(path, target_format, targets[path], clone_shared, force, required=bool(recoverables))
        for path in sources
    ]


def _folder_sources(source: pathlib.Path, target_format: str, recoverables: Sequence[str]) -> list[pathlib.Path]:
    if target_format == "torch":
        if recoverables:
            usage_error("--recoverable applies to checkpoint folders converted --to safetensors.")
        files = sorted(source.glob(f"*{SAFETENSORS_EXT}"))
        if not files:
            usage_error(f"{source} has no {SAFETENSORS_EXT} files to convert --to torch.")
        return files
    if not (source / METAFNAME).exists():
        usage_error(f"{source} is not a checkpoint folder (no {METAFNAME}); pass a CKPT+* folder or a file.")
    checkpoint, _manifest = load_checkpoint_folder(source)
    verification = verify(checkpoint, "full")
    if verification.failed:
        raise CheckFailed(
            f"Not converting: checkpoint {source} is broken ({'; '.join(verification.problems)})."
        )
    unknown = [name for name in recoverables if name not in checkpoint.paramfiles]
    if unknown:
        usage_error(
            f"Checkpoint {source} has no recoverable {', '.join(repr(name) for name in unknown)}. "
            f"It has: {', '.join(sorted(checkpoint.paramfiles))}."
        )
    names = list(recoverables) if recoverables else sorted(checkpoint.paramfiles)
    return [checkpoint.paramfiles[name] for name in names]


def _convert_file(
    source: pathlib.Path,
    target_format: str,
    target: pathlib.Path,
    clone_shared: bool,
    force: bool,
    required: bool,
) -> _Result:
    """Convert one file; a file that is not convertible fails only if ``required``."""
    result = _Result(source)
    try:
        if target_format == "safetensors":
            tensors = _tensors_for_safetensors(source, clone_shared)
            write_output_file(target, lambda path: _save_safetensors(tensors, path), overwrite=force)
        else:
            tensors = _load_safetensors(source)
            write_output_file(target, lambda path: torch.save(tensors, path), overwrite=force)
    except LoadFailed as error:
        result.error = f"cannot load: {error}"
        return result
    except NotConvertible as error:
        # A model with tied weights is what the user wants converted, so it fails even unrequested.
        if required or isinstance(error, SharedTensors):
            result.error = str(error)
        else:
            result.skipped = error.reason
        return result
    result.target = target
    result.num_tensors = len(tensors)
    return result


def _tensors_for_safetensors(source: pathlib.Path, clone_shared: bool) -> dict[str, torch.Tensor]:
    loaded = load_parameter_file(source)
    if isinstance(loaded, str):
        raise NotConvertible("a text file, not a state dict")
    if not isinstance(loaded, dict):
        raise NotConvertible(f"a {type(loaded).__name__}, not a state dict")
    others = [
        f"{key!r} ({type(value).__name__})"
        for key, value in loaded.items()
        if not isinstance(key, str) or not isinstance(value, torch.Tensor)
    ]
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise NotConvertible(f"entries {shown} are not tensors with string names")
    shared = _shared_groups(loaded)
    if shared and not clone_shared:
        groups = "; ".join(" = ".join(repr(key) for key in group) for group in shared)
        raise SharedTensors(
            f"tensors share memory ({groups}), which safetensors cannot store",
            "pass --clone-shared to store a separate copy of each",
        )
    # Copies, so that no output tensor keeps a memory map of the source open.
    return {key: value.detach().contiguous().clone() for key, value in loaded.items()}


def _shared_groups(tensors: dict[str, torch.Tensor]) -> list[list[str]]:
    by_storage: dict[tuple[str, int], list[str]] = {}
    for key, tensor in tensors.items():
        if tensor.numel() == 0:
            continue
        storage = tensor.untyped_storage()
        by_storage.setdefault((str(tensor.device), storage.data_ptr()), []).append(key)
    return [keys for keys in by_storage.values() if len(keys) > 1]


def _save_safetensors(tensors: dict[str, torch.Tensor], path: pathlib.Path) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={"format": "pt"})


def _load_safetensors(source: pathlib.Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(source), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise LoadFailed(f"not a valid safetensors file ({error})") from error


def _result_json(result: _Result) -> dict[str, Any]:
    return {
        "source": str(result.source),
        "target": str(result.target) if result.target is not None else None,
        "num_tensors": result.num_tensors,
        "skipped": result.skipped,
        "error": result.error,
    }


def _print_results(results: list[_Result]) -> None:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("source", no_wrap=True)
    table.add_column("result")
    for result in results:
        if result.error is not None:
            outcome = Text(f"failed: {result.error}", style="bold red")
        elif result.skipped is not None:
            outcome = Text(f"skipped: {result.skipped}", style="yellow")
        else:
            outcome = Text(f"wrote {result.target} ({result.num_tensors} tensors)", style="green")
        table.add_row(Text(result.source.name), outcome)
    make_console().print(table)
