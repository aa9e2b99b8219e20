"""The end of a run: test the final model, average checkpoints, write ``results.json``."""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import time
from typing import Any

from recoverkit import distributed
from recoverkit.runner.engine import Trainer, is_end_of_epoch, resume_order
from recoverkit.storage.integrity import verify_checkpoint_dir
from recoverkit.storage.layout import Checkpoint

__all__ = ["RESULTS_FILENAME", "finish_run", "read_results", "write_json_atomically"]

logger = logging.getLogger(__name__)

RESULTS_FILENAME = "results.json"


def finish_run(trainer: Trainer, output_dir: pathlib.Path, started: float, extra: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the final (and optionally averaged) model and write ``results.json``.

    Parameters
    ----------
    trainer : Trainer
        A trainer whose :meth:`Trainer.fit` has returned.
    output_dir : pathlib.Path
        The run's folder; ``results.json`` goes there.
    started : float
        ``time.monotonic()`` at the start of this invocation.
    extra : dict
        Values stored as they are, such as the recipe path and overrides.

    Returns
    -------
    dict
        The content of ``results.json``.
    """
    task = trainer.task
    checkpoints = sorted(
        (ckpt for ckpt in trainer.checkpointer.list_checkpoints() if is_end_of_epoch(ckpt)),
        key=resume_order,
    )
    final = _evaluate_all(trainer, None)
    logger.info("Final model: %s", _format_metrics(final))

    averaged: dict[str, Any] | None = None
    averaged_names: list[str] = []
    if task.average is not None:
        chosen = _select_for_averaging(trainer, _valid_checkpoints(checkpoints))
        if chosen:
            averaged_names = [ckpt.path.name for ckpt in chosen]
            averaged = _evaluate_all(trainer, trainer.averaged_model(chosen))
            logger.info("Model averaged over %d checkpoints: %s", len(chosen), _format_metrics(averaged))
        else:
            logger.warning(
                "Not averaging: no valid end-of-epoch checkpoint to average in %s; results.json has no "
                "averaged model.",
                trainer.checkpointer.checkpoints_dir,
            )

    results = {
        **extra,
        "final": final,
        "averaged": averaged,
        "averaged_checkpoints": averaged_names,
        "checkpoint": checkpoints[-1].path.name if checkpoints else None,
        "monitor": task.monitor,
        "best_epoch": best_epoch(trainer),
        "epochs": trainer.loop_state.epoch,
        "steps": trainer.loop_state.step,
        "history": trainer.loop_state.history,
        "train_seconds": round(trainer.loop_state.train_seconds, 3),
        "wall_time_seconds": round(time.monotonic() - started, 3),
    }
    if distributed.is_main_process():
        write_json_atomically(output_dir / RESULTS_FILENAME, results)
        logger.info("Wrote %s", output_dir / RESULTS_FILENAME)
    return results


def best_epoch(trainer: Trainer) -> dict[str, Any] | None:
    """Return the history entry with the best monitored metric, or None if no epoch has it."""
    task = trainer.task
    best: dict[str, Any] | None = None
    for entry in trainer.loop_state.history:
        value = entry.get(task.monitor)
        if value is None or math.isnan(value):
            continue
        if best is None or task.is_better(value, best[task.monitor]):
            best = entry
    return best


def _valid_checkpoints(checkpoints: list[Checkpoint]) -> list[Checkpoint]:
    """Return the checkpoints whose files match their manifest, warning about each broken one."""
    valid = []
    for checkpoint in checkpoints:
        verification = verify_checkpoint_dir(checkpoint.path, checksums=True)
        if verification.ok:
            valid.append(checkpoint)
        else:
            logger.warning(
                "Leaving broken checkpoint %s out of the average: %s",
                checkpoint.path.name,
                verification.describe(),
            )
    return valid


def _select_for_averaging(trainer: Trainer, checkpoints: list[Checkpoint]) -> list[Checkpoint]:
    spec = trainer.task.average
    assert spec is not None
    if spec.select == "last":
        chosen = checkpoints[-spec.count :]
    else:
        monitor = trainer.task.monitor
        scored = [ckpt for ckpt in checkpoints if _is_number(ckpt.meta.get(monitor))]
        reverse = trainer.task.monitor_mode == "max"
        scored.sort(key=lambda ckpt: (ckpt.meta[monitor], -resume_order(ckpt)[0]), reverse=reverse)
        chosen = scored[: spec.count]
    if 0 < len(chosen) < spec.count:
        logger.warning(
            "Averaging %d checkpoints instead of %d: only %d valid end-of-epoch checkpoints have "
            "the needed meta. Train at least %d epochs and let the retention policy keep %d checkpoints.",
            len(chosen),
            spec.count,
            len(chosen),
            spec.count,
            spec.count,
        )
    return chosen


def _evaluate_all(trainer: Trainer, model: Any) -> dict[str, float]:
    task = trainer.task
    metrics: dict[str, float] = {}
    if task.valid_data is not None:
        metrics.update(trainer.evaluate(task.valid_data, "valid", model))
    if task.test_data is not None:
        metrics.update(trainer.evaluate(task.test_data, "test", model))
    return metrics


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value))


def _format_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{key} {value:.4f}" for key, value in metrics.items())


def write_json_atomically(path: pathlib.Path, content: Any) -> None:
    """Write ``content`` as JSON to ``path`` through a temporary file and one rename.

    A reader never sees a half-written file, which matters because an
    existing ``results.json`` marks a run as finished.
    """
    tmp_path = path.with_name(f".{path.name}.tmp")
    with open(tmp_path, "w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=2, sort_keys=False, allow_nan=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp_path, path)


def read_results(output_dir: pathlib.Path) -> dict[str, Any] | None:
    """Return the content of the run's ``results.json``, or None if the run has not finished."""
    path = output_dir / RESULTS_FILENAME
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
