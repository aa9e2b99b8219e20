"""In-process digits runs: retention counts, averaging with broken checkpoints, bad monitor keys."""

from __future__ import annotations

import pathlib

import pytest

from runner_helpers import DIGITS_RECIPE, read_results
from recoverkit.errors import RecipeError
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


def test_averaging_skips_broken_checkpoint(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    overrides = (*FAST_DIGITS, "average.count=2", "average.select=last")
    first = run_recipe(DIGITS_RECIPE, overrides, tmp_path)
    run_dir = pathlib.Path(first["output_dir"])
    newest, broken = first["averaged_checkpoints"][-1], first["averaged_checkpoints"][0]
    model_file = run_dir / "checkpoints" / broken / "model.ckpt"
    model_file.write_bytes(model_file.read_bytes()[:100])
    (run_dir / "results.json").unlink()

    with caplog.at_level("WARNING", logger="recoverkit.runner"):
        rerun = run_recipe(DIGITS_RECIPE, overrides, tmp_path)

    assert broken not in rerun["averaged_checkpoints"]
    assert newest in rerun["averaged_checkpoints"]
    assert len(rerun["averaged_checkpoints"]) == 2
    assert read_results(run_dir)["averaged_checkpoints"] == rerun["averaged_checkpoints"]
    assert f"Leaving broken checkpoint {broken} out of the average" in caplog.text


def test_averaging_skipped_when_all_broken(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recoverkit.runner import results as results_module

    original = results_module._valid_checkpoints

    def truncate_then_verify(checkpoints: list) -> list:
        for checkpoint in checkpoints:
            path = checkpoint.path / "model.ckpt"
            path.write_bytes(path.read_bytes()[:100])
        return original(checkpoints)

    monkeypatch.setattr(results_module, "_valid_checkpoints", truncate_then_verify)
    with caplog.at_level("WARNING", logger="recoverkit.runner"):
        results = run_recipe(DIGITS_RECIPE, (*FAST_DIGITS, "average.count=2"), tmp_path)

    assert results["averaged"] is None
    assert results["averaged_checkpoints"] == []
    assert (pathlib.Path(results["output_dir"]) / "results.json").is_file()
    assert "Not averaging: no valid end-of-epoch checkpoint" in caplog.text


def test_unknown_monitor_rejected_before_training(tmp_path: pathlib.Path) -> None:
    overrides = (*FAST_DIGITS, "trainer.monitor=valid_acc", "average.select=best")

    with pytest.raises(RecipeError) as rejected:
        run_recipe(DIGITS_RECIPE, overrides, tmp_path)

    message = str(rejected.value)
    assert str(DIGITS_RECIPE) in message
    assert "trainer.monitor is 'valid_acc'" in message
    assert "train_loss, valid_loss, valid_accuracy" in message
    assert not (run_output_dir(tmp_path, DIGITS_RECIPE, overrides) / "checkpoints").exists()


def test_best_average_by_accuracy(tmp_path: pathlib.Path) -> None:
    overrides = (*FAST_DIGITS, "trainer.monitor=valid_accuracy", "trainer.monitor_mode=max", "average.select=best")
    results = run_recipe(DIGITS_RECIPE, overrides, tmp_path)

    assert results["monitor"] == "valid_accuracy"
    assert len(results["averaged_checkpoints"]) == 3
