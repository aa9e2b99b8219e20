"""Output folders named from the recipe and its overrides, so a rerun finds its own checkpoints."""

from __future__ import annotations

import hashlib
import pathlib
import re
from collections.abc import Sequence

__all__ = ["is_naming_override", "recipe_name", "run_dirname", "run_output_dir"]

DEFAULT_DIRNAME = "default"
_MAX_DIRNAME_CHARS = 80
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._=,+\-]")
_GENERIC_STEMS = {"train", "config", "hparams", "recipe"}
# Overrides that select where a run writes, not what it computes.
_NON_NAMING_PREFIXES = ("hydra.", "hydra/", "output_dir=", "+output_dir=", "++output_dir=")


def recipe_name(recipe_path: str | pathlib.Path) -> str:
    """Return a readable name for a recipe file.

    ``recipes/digits/train.yaml`` is ``digits``; a file with a less generic
    stem keeps it: ``recipes/digits/small.yaml`` is ``digits-small``.

    Example
    -------
    >>> recipe_name("recipes/digits/train.yaml")
    'digits'
    >>> recipe_name("recipes/digits/small.yaml")
    'digits-small'
    """
    path = pathlib.Path(recipe_path)
    parent = path.resolve().parent.name or "recipe"
    if path.stem in _GENERIC_STEMS:
        return parent
    return f"{parent}-{path.stem}"


def is_naming_override(override: str) -> bool:
    """Return whether ``override`` changes the run's result, and so its folder name."""
    return not override.startswith(_NON_NAMING_PREFIXES)


def run_dirname(overrides: Sequence[str]) -> str:
    """Return the folder name of a run from its command-line overrides.

    The overrides are sorted, so their order on the command line does not
    matter. Characters that are unsafe in a folder name are replaced, and a
    short hash of the exact overrides is appended whenever the readable
    part is shortened or changed, so two different runs never share a folder.

    Example
    -------
    >>> run_dirname(["seed=2", "optimizer.lr=0.1"])
    'optimizer.lr=0.1,seed=2'
    >>> run_dirname([])
    'default'
    >>> run_dirname(["data.path=/tmp/x"]).startswith("data.path=-tmp-x-")
    True
    """
    kept = sorted(override for override in overrides if is_naming_override(override))
    if not kept:
        return DEFAULT_DIRNAME
    exact = ",".join(kept)
    readable = _UNSAFE_CHARS.sub("-", exact)
    if readable == exact and len(readable) <= _MAX_DIRNAME_CHARS and not readable.startswith("."):
        return readable
    digest = hashlib.blake2b(exact.encode("utf-8"), digest_size=4).hexdigest()
    prefix = readable[: _MAX_DIRNAME_CHARS - len(digest) - 1].lstrip(".")
    return f"{prefix}-{digest}"


def run_output_dir(output_root: str | pathlib.Path, recipe_path: str | pathlib.Path, overrides: Sequence[str]) -> pathlib.Path:
    """Return ``<output_root>/<recipe name>/<run dirname>`` for a run."""
    return pathlib.Path(output_root) / recipe_name(recipe_path) / run_dirname(overrides)
