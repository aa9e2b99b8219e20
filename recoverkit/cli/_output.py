"""Output shared by the subcommands: consoles, JSON, errors, sizes and times.

Colour goes to terminals only. rich turns it off when the output is a pipe or
a file, and when the ``NO_COLOR`` environment variable is set.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import pathlib
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from rich.console import Console

__all__ = [
    "EXIT_BROKEN",
    "EXIT_OK",
    "EXIT_USAGE",
    "CheckFailed",
    "check_output_path",
    "format_size",
    "format_time",
    "format_value",
    "make_console",
    "print_json",
    "usage_error",
    "write_output_file",
]

EXIT_OK = 0
EXIT_BROKEN = 1
EXIT_USAGE = 2

# rich fits tables into 80 columns when it cannot ask a terminal; piped output
# and captured README examples read better with wider rows.
_PIPE_WIDTH = 240


class CheckFailed(click.ClickException):
    """A broken checkpoint or a failed check: exit code 1 with a message on stderr."""

    exit_code = EXIT_BROKEN


def usage_error(message: str) -> NoReturn:
    """Raise the error for a wrong argument or option (exit code 2)."""
    raise click.UsageError(message)


def make_console(stderr: bool = False) -> Console:
    """Return a rich Console for stdout (or stderr) that colours terminals only."""
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not stream.isatty() and "COLUMNS" not in os.environ:
        width = _PIPE_WIDTH
    return Console(file=stream, width=width, soft_wrap=False, highlight=False, markup=False)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout, without colour."""
    click.echo(json.dumps(data, indent=2, default=str, allow_nan=True))


def format_size(num_bytes: int | None) -> str:
    """Return a byte count as text with a binary unit, such as ``1.5 MiB``."""
    if num_bytes is None:
        return "-"
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_time(unixtime: Any) -> str:
    """Return a ``unixtime`` meta value as local ISO time to the second."""
    if not isinstance(unixtime, (int, float)) or isinstance(unixtime, bool):
        return "-"
    moment = datetime.datetime.fromtimestamp(unixtime)
    return moment.isoformat(sep=" ", timespec="seconds")


def format_value(value: Any) -> str:
    """Return a meta value as short text: floats with 4 significant digits."""
    if isinstance(value, float) and not math.isnan(value) and not math.isinf(value):
        return f"{value:.4g}"
    return str(value)


def check_output_path(path: pathlib.Path, overwrite: bool) -> None:
    """Raise a usage error if ``path`` exists (without ``overwrite``) or its folder is missing."""
    if path.exists() and not overwrite:
        usage_error(f"{path} already exists. Choose another --out path, or pass --force to replace it.")
    if not path.parent.is_dir():
        usage_error(f"The folder of --out {path} does not exist. Create it first.")


def write_output_file(path: pathlib.Path, write: Callable[[pathlib.Path], None], overwrite: bool) -> None:
    """Write a result file with ``write(temporary_path)``, then rename it to ``path``.

    The rename is atomic, so ``path`` never contains a half-written file, even
    when the command is interrupted.

    Raises
    ------
    click.UsageError
        If ``path`` exists and ``overwrite`` is False, or its folder is missing.
    """
    check_output_path(path, overwrite)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
