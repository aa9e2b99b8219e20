"""In-process runs of the HyperPyYAML sine recipe: exact resume after SIGTERM, sweeps, bad recipes."""

from __future__ import annotations

import os
import pathlib
import signal

import pytest
import torch

from runner_helpers import REPO_ROOT, comparable, final_parameters
from recoverkit.errors import RecipeError, TrainingInterruptedError
from recoverkit.runner import Trainer, load_recipe, run_output_dir, run_recipe, run_sweep

SINE_RECIPE = REPO_ROOT / "recipes" / "sine_forecast" / "train.yaml"
SMALL_SINE = (
    "epochs=2",
    "data.train.num_sequences=192",
    "data.valid.num_sequences=64",
    "data.test.num_sequences=64",
    "data.batch_size=32",
    "checkpointer.schedule.every_n_steps=4",
)


def test_sine_recipe_sigterm_resume_exact(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = run_recipe(SINE_RECIPE, SMALL_SINE, tmp_path / "plain")

    original_step = Trainer._train_step

    def step_then_sigterm(self: Trainer, batch: object) -> tuple[float, int]:
        result = original_step(self, batch)
        if self.loop_state.step == 8:  # epoch 2, batch 2 of 6
            os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(Trainer, "_train_step", step_then_sigterm)
    with pytest.raises(TrainingInterruptedError) as stopped:
        run_recipe(SINE_RECIPE, SMALL_SINE, tmp_path / "stopped")
    monkeypatch.setattr(Trainer, "_train_step", original_step)
    resumed = run_recipe(SINE_RECIPE, SMALL_SINE, tmp_path / "stopped")

    assert stopped.value.signal_number == signal.SIGTERM
    assert comparable(resumed) == comparable(plain)
    expected = final_parameters(run_output_dir(tmp_path / "plain", SINE_RECIPE, SMALL_SINE))
    actual = final_parameters(run_output_dir(tmp_path / "stopped", SINE_RECIPE, SMALL_SINE))
    for name, tensor in expected.items():
        assert torch.equal(tensor, actual[name]), name


def test_sine_results_file_and_rerun(tmp_path: pathlib.Path) -> None:
    results = run_recipe(SINE_RECIPE, SMALL_SINE, tmp_path)
    rerun = run_recipe(SINE_RECIPE, SMALL_SINE, tmp_path)

    assert results["epochs"] == 2
    assert results["steps"] == 12
    assert set(results["final"]) == {"valid_loss", "valid_mae", "test_loss", "test_mae"}
    assert set(results["averaged"]) == {"valid_loss", "valid_mae", "test_loss", "test_mae"}
    assert len(results["averaged_checkpoints"]) == 2
    assert results["monitor"] == "valid_mae"
    assert [entry["epoch"] for entry in results["history"]] == [1, 2]
    assert results["checkpoint"].startswith("CKPT+")
    assert rerun["skipped"] is True
    assert comparable(rerun) == comparable(results)


def test_hyperpyyaml_sweep_table(tmp_path: pathlib.Path) -> None:
    rows = run_sweep(SINE_RECIPE, [*SMALL_SINE[1:], "epochs=1", "model.hidden=4,8"], tmp_path)

    assert [row["overrides"].split()[-1] for row in rows] == ["model.hidden=4", "model.hidden=8"]
    assert [row["status"] for row in rows] == ["finished", "finished"]
    assert len({row["output_dir"] for row in rows}) == 2
    assert all(row["best"] > 0 for row in rows)


def test_recipe_without_model_is_rejected(tmp_path: pathlib.Path) -> None:
    recipe = tmp_path / "broken" / "train.yaml"
    recipe.parent.mkdir()
    recipe.write_text(
        "output_dir: !PLACEHOLDER\n"
        "epochs: 1\n"
        "checkpointer:\n"
        "    checkpoints_dir: !ref <output_dir>/checkpoints\n"
        "    recoverables:\n"
        "        rng: rng\n",
        encoding="utf-8",
    )

    with pytest.raises(RecipeError, match="has no 'model' key"):
        run_recipe(recipe, (), tmp_path / "outputs")


def test_hyperpyyaml_initial_weights_follow_seed(tmp_path: pathlib.Path) -> None:
    def initial_weights(seed: int, folder: str) -> list[torch.Tensor]:
        recipe = load_recipe(SINE_RECIPE, [*SMALL_SINE, f"seed={seed}"], tmp_path / folder)
        return [parameter.detach().clone() for parameter in recipe.task.model.parameters()]

    first, again, other = initial_weights(5, "a"), initial_weights(5, "b"), initial_weights(6, "c")

    assert all(torch.equal(x, y) for x, y in zip(first, again))
    assert not all(torch.equal(x, y) for x, y in zip(first, other))
