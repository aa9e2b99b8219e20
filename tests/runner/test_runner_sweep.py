"""A Hydra multirun sweep, killed in its second job and rerun, equals an uninterrupted sweep."""

from __future__ import annotations

import csv
import pathlib

import torch

from runner_helpers import (
    DIGITS_RECIPE,
    SIGKILL,
    SMALL_DIGITS,
    Interruptible,
    comparable,
    final_parameters,
    read_results,
    run_command,
    run_to_end,
)
from recoverkit.runner import run_dirname, run_output_dir

SWEEP_BASE = tuple(override for override in SMALL_DIGITS if not override.startswith("epochs=")) + ("epochs=2",)
SWEEP = (*SWEEP_BASE, "seed=1,2")
JOBS = [(*SWEEP_BASE, "seed=1"), (*SWEEP_BASE, "seed=2")]


def _second_job_mid_epoch():
    seen = {"count": 0}

    def cue(line: str | None) -> bool:
        if line is not None and "Epoch 2 batch 3/" in line:
            seen["count"] += 1
        return seen["count"] >= 2

    return cue


def test_sweep_resumes_after_kill(tmp_path: pathlib.Path) -> None:
    plain_root = tmp_path / "plain"
    killed_root = tmp_path / "killed"

    code, output = run_to_end(run_command(DIGITS_RECIPE, SWEEP, plain_root, multirun=True), tmp_path)
    assert code == 0, output

    attempt = Interruptible(run_command(DIGITS_RECIPE, SWEEP, killed_root, multirun=True), tmp_path)
    assert attempt.watch(_second_job_mid_epoch()), attempt.output
    attempt.send(SIGKILL)
    assert attempt.finish() == -SIGKILL
    first_dir, second_dir = (run_output_dir(killed_root, DIGITS_RECIPE, job) for job in JOBS)
    assert (first_dir / "results.json").exists()
    assert not (second_dir / "results.json").exists()

    code, output = run_to_end(run_command(DIGITS_RECIPE, SWEEP, killed_root, multirun=True), tmp_path)

    assert code == 0, output
    assert f"Run in {first_dir} already finished" in output
    assert output.count("Resuming from checkpoint") == 1
    for job in JOBS:
        plain_dir = run_output_dir(plain_root, DIGITS_RECIPE, job)
        killed_dir = run_output_dir(killed_root, DIGITS_RECIPE, job)
        assert comparable(read_results(killed_dir)) == comparable(read_results(plain_dir)), job
        expected, actual = final_parameters(plain_dir), final_parameters(killed_dir)
        for name, tensor in expected.items():
            assert torch.equal(tensor, actual[name]), (job, name)

    table = killed_root / "digits" / "sweeps" / f"{run_dirname(SWEEP)}.csv"
    with open(table, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["status"] for row in rows] == ["skipped", "finished"]
    assert [row["monitor"] for row in rows] == ["valid_loss", "valid_loss"]
    assert all(float(row["best"]) > 0 for row in rows)
