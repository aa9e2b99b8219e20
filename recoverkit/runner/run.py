"""Running one recipe: pick its output folder, build it, train, test and write results."""

from __future__ import annotations

import logging
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import torch

from recoverkit.runner.distributed import init_distributed
from recoverkit.runner.engine import Trainer, retention_keeping_newest
from recoverkit.runner.output import run_output_dir
from recoverkit.runner.progress import LogProgress
from recoverkit.runner.recipe import Recipe, load_recipe
from recoverkit.runner.results import RESULTS_FILENAME, finish_run, read_results

__all__ = ["run_loaded_recipe", "run_recipe"]

logger = logging.getLogger(__name__)


def run_recipe(
    recipe_path: str | pathlib.Path,
    overrides: Sequence[str] = (),
    output_root: str | pathlib.Path = "outputs",
    progress: LogProgress | None = None,
) -> dict[str, Any]:
    """Train a recipe in its own output folder, resuming from its checkpoints, and return its results.

    The folder is ``<output_root>/<recipe name>/<overrides>``, so the same
    command always finds its own checkpoints. A run whose ``results.json``
    exists is finished: it is not trained again, and its stored results are
    returned with ``"skipped": True``.

    Parameters
    ----------
    recipe_path : str or pathlib.Path
        A Hydra or HyperPyYAML recipe file.
    overrides : sequence of str
        ``key=value`` overrides, as on the command line.
    output_root : str or pathlib.Path
        The folder that contains the output folders of every recipe.
    progress : LogProgress, optional
        Progress reporter; a bar on a terminal, log lines otherwise.

    Returns
    -------
    dict
        The content of ``results.json``.

    Raises
    ------
    TrainingInterruptedError
        If a watched signal stopped the run; it saved a checkpoint first.
    """
    output_dir = run_output_dir(output_root, recipe_path, overrides)
    finished = skip_if_finished(output_dir)
    if finished is not None:
        return finished
    started = time.monotonic()
    recipe = load_recipe(recipe_path, overrides, output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    return run_loaded_recipe(recipe, started, progress)


def skip_if_finished(output_dir: pathlib.Path) -> dict[str, Any] | None:
    """Return the stored results of a finished run (marked ``skipped``), or None."""
    finished = read_results(output_dir)
    if finished is None:
        return None
    logger.warning(
        "Run in %s already finished (its %s exists): skipping it. Delete that file to evaluate it again.",
        output_dir,
        RESULTS_FILENAME,
    )
    return {**finished, "skipped": True}


def run_loaded_recipe(recipe: Recipe, started: float, progress: LogProgress | None = None) -> dict[str, Any]:
    """Train, test and write ``results.json`` for a recipe that :func:`load_recipe` built.

    Under ``torchrun`` every rank calls it: the ranks join one process group
    and train the model with DDP, and rank 0 writes the files.
    """
    init_distributed()
    # Bit-identical resumes need deterministic kernels; ops without a
    # deterministic kernel only warn, because on CPU nearly all have one.
    torch.use_deterministic_algorithms(True, warn_only=True)
    retention = retention_keeping_newest(recipe.retention) if recipe.retention is not None else None
    trainer = Trainer(recipe.task, recipe.checkpointer, recipe.schedule, retention=retention, progress=progress)
    if recipe.transfers and not recipe.checkpointer.list_checkpoints():
        _apply_transfers(recipe)
    trainer.fit()
    extra = {
        "recipe": str(recipe.path),
        "overrides": list(recipe.overrides),
        "output_dir": str(recipe.output_dir),
    }
    return finish_run(trainer, recipe.output_dir, started, extra)


def _apply_transfers(recipe: Recipe) -> None:
    from recoverkit.config.transfer import apply_transfer

    for spec in recipe.transfers:
        logger.info("Loading parameters before training: %s", spec)
        apply_transfer(spec, recipe.checkpointer, recipe.load_hooks)
