"""The run command: exit codes and messages on a second Ctrl-C, where logs go, what the default verbosity shows."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from runner_helpers import DIGITS_RECIPE, PROCESS_TIMEOUT, read_results, run_to_end
from recoverkit import Checkpointer
from recoverkit.cli.main import cli
from recoverkit.runner import Trainer, run_output_dir, run_recipe

FAST = ("epochs=2", "data.batch_size=128", "schedule.every_n_minutes=null", "schedule.every_n_steps=null")


def test_second_sigint_during_save_exits_130(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original_step = Trainer._train_step
    original_save = Checkpointer.save_checkpoint

    def step_then_sigint(self: Trainer, batch: object) -> tuple[float, int]:
        result = original_step(self, batch)
        if self.loop_state.step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return result

    def sigint_then_save(self: Checkpointer, *args: object, **kwargs: object) -> object:
        os.kill(os.getpid(), signal.SIGINT)
        return original_save(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_step", step_then_sigint)
    monkeypatch.setattr(Checkpointer, "save_checkpoint", sigint_then_save)
    result = CliRunner().invoke(cli, ["run", str(DIGITS_RECIPE), *FAST, "-o", str(tmp_path)])

    assert result.exit_code == 130, result.output
    assert "Stopped on a second SIGINT at epoch 1, step 4" in result.output
    assert "the checkpoint being saved was not completed" in result.output
    assert "Aborted!" not in result.output
    checkpoints_dir = run_output_dir(tmp_path, DIGITS_RECIPE, FAST) / "checkpoints"
    assert Checkpointer(checkpoints_dir).list_checkpoints() == []


def test_resume_line_at_default_verbosity(tmp_path: pathlib.Path) -> None:
    argv = [sys.executable, "-m", "recoverkit", "run", str(DIGITS_RECIPE), *FAST, "-o", str(tmp_path)]
    first_code, first_output = run_to_end(argv, tmp_path)
    run_dir = run_output_dir(tmp_path, DIGITS_RECIPE, FAST)
    finished = read_results(run_dir)
    (run_dir / "results.json").unlink()

    code, output = run_to_end(argv, tmp_path)

    assert first_code == 0, first_output
    assert code == 0, output
    assert f"INFO recoverkit.runner.engine: Resuming from checkpoint {finished['checkpoint']}" in output


def test_sweep_logs_go_to_stderr(tmp_path: pathlib.Path) -> None:
    argv = [
        sys.executable, "-m", "recoverkit", "run", str(DIGITS_RECIPE), "-m",
        "epochs=1", "data.batch_size=256", "seed=1,2", "-o", str(tmp_path),
    ]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=PROCESS_TIMEOUT)

    assert done.returncode == 0, done.stderr
    assert "Sweep results" in done.stdout
    assert "recoverkit.runner" not in done.stdout
    assert "Epoch 1/1" not in done.stdout
    assert "Epoch 1/1" in done.stderr


def test_verbose_shows_intra_epoch_deletions(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    overrides = ("epochs=1", "data.batch_size=128", "schedule.every_n_minutes=null", "schedule.every_n_steps=2")

    with caplog.at_level("INFO", logger="recoverkit"):
        run_recipe(DIGITS_RECIPE, overrides, tmp_path)

    deletions = [record for record in caplog.records if record.getMessage().startswith("Deleted checkpoint")]
    assert len(deletions) >= 3
