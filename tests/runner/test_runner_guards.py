"""Checks that catch silent breaks: forced save on SIGTERM, progress choice, digits accuracy, folder names."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import sys

import pytest

from runner_helpers import DIGITS_RECIPE
from recoverkit import Checkpointer
from recoverkit.errors import TrainingInterruptedError
from recoverkit.runner import Trainer, load_recipe, run_dirname, run_output_dir, run_recipe
from recoverkit.runner.progress import LogProgress, RichProgress

NO_SCHEDULED_SAVES = ("epochs=2", "data.batch_size=128", "schedule.every_n_steps=null", "schedule.every_n_minutes=null")


def test_sigterm_forces_unscheduled_save(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original_step = Trainer._train_step

    def step_then_sigterm(self: Trainer, batch: object) -> tuple[float, int]:
        result = original_step(self, batch)
        if self.loop_state.step == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(Trainer, "_train_step", step_then_sigterm)
    with pytest.raises(TrainingInterruptedError) as stopped:
        run_recipe(DIGITS_RECIPE, NO_SCHEDULED_SAVES, tmp_path)

    match = re.search(r"Stopped on SIGTERM at epoch (\d+), step (\d+)", str(stopped.value))
    assert match is not None, str(stopped.value)
    run_dir = run_output_dir(tmp_path, DIGITS_RECIPE, NO_SCHEDULED_SAVES)
    checkpoints = Checkpointer(run_dir / "checkpoints").list_checkpoints()
    assert len(checkpoints) == 1
    assert checkpoints[0].meta["step"] == int(match.group(2))
    assert checkpoints[0].meta["epoch"] == int(match.group(1))


@pytest.mark.parametrize(("is_terminal", "expected"), [(True, RichProgress), (False, LogProgress)])
def test_progress_follows_stderr_terminal(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, is_terminal: bool, expected: type
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: is_terminal)
    recipe = load_recipe(DIGITS_RECIPE, NO_SCHEDULED_SAVES, tmp_path / "run")

    trainer = Trainer(recipe.task, recipe.checkpointer, recipe.schedule)

    assert type(trainer.progress) is expected


def test_digits_default_run_accuracy(tmp_path: pathlib.Path) -> None:
    results = run_recipe(DIGITS_RECIPE, (), tmp_path)

    assert results["final"]["test_accuracy"] >= 0.95
    assert results["epochs"] == 15
    # The recipe's retention keeps the 3 newest and the 3 best by valid_loss.
    by_loss = sorted(results["history"], key=lambda entry: entry["valid_loss"])
    expected_epochs = {13, 14, 15} | {entry["epoch"] for entry in by_loss[:3]}
    checkpoints = Checkpointer(pathlib.Path(results["output_dir"]) / "checkpoints").list_checkpoints()
    assert sorted(ckpt.meta["epoch"] for ckpt in checkpoints) == sorted(expected_epochs)


def test_run_dirname_keeps_every_override() -> None:
    assert run_dirname(["seed=2", "lr=0.1"]) != run_dirname(["lr=0.1"])
    assert run_dirname(["seed=2", "lr=0.1"]) != run_dirname(["seed=2"])
