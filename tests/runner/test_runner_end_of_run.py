"""In-process digits runs: retention counts, averaging with broken checkpoints, bad monitor keys."""

from __future__ import annotations

import pathlib

import pytest

from runner_helpers import DIGITS_RECIPE, read_results
from recoverkit.runner import run_output_dir, run_recipe

# Fast settings: 3 short epochs, no intra-epoch saves.
FAST_DIGITS = ("epochs=3", "data.batch_size=128", "schedule.every_n_minutes=null", "schedule.every_n_steps=null")


def checkpoint_names(run_dir: pathlib.Path) -> list[str]:
    return sorted(path.name for path in (run_dir / "checkpoints").glob("CKPT+*"))


def test_retention_latest_keeps_one(tmp_path: pathlib.Path) -> None:
    overrides = (*FAST_DIGITS, "retention=latest", "retention.num_to_keep=1")
    results = run_recipe(DIGITS_RECIPE, overrides, tmp_path)

    names = checkpoint_names(pathlib.Path(results["output_dir"]))
    assert names == [results["checkpoint"]]


def test_retention_keeps_recent_count(tmp_path: pathlib.Path) -> None:
    overrides = (*FAST_DIGITS, "retention=latest", "retention.num_to_keep=2", "average.count=2")
    results = run_recipe(DIGITS_RECIPE, overrides, tmp_path)

    names = checkpoint_names(pathlib.Path(results["output_dir"]))
    assert len(names) == 2
    assert results["checkpoint"] in names
