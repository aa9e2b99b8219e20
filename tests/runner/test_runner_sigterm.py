"""SIGTERM in the middle of an epoch: the run saves, exits non-zero, and the rerun resumes there."""

from __future__ import annotations

import pathlib

from runner_helpers import DIGITS_RECIPE, SIGTERM, SMALL_DIGITS, Interruptible, read_results, run_command, run_to_end
from recoverkit import Checkpointer
from recoverkit.runner import is_end_of_epoch, run_output_dir


def test_sigterm_mid_epoch_saves_and_resumes(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "outputs"
    run_dir = run_output_dir(root, DIGITS_RECIPE, SMALL_DIGITS)

    attempt = Interruptible(run_command(DIGITS_RECIPE, SMALL_DIGITS, root), tmp_path)
    fired = attempt.watch(lambda line: line is not None and "Epoch 2 batch 3/" in line)
    assert fired, attempt.output
    attempt.send(SIGTERM)
    code = attempt.finish()

    assert code == 128 + SIGTERM, attempt.output
    assert "Stopped on SIGTERM" in attempt.output
    assert not (run_dir / "results.json").exists()
    checkpoints = Checkpointer(run_dir / "checkpoints").list_checkpoints()
    intra_epoch = [ckpt for ckpt in checkpoints if not is_end_of_epoch(ckpt)]
    assert len(intra_epoch) == 1, checkpoints
    saved = intra_epoch[0]
    assert saved.meta["epoch"] == 2
    assert saved.meta["batch"] >= 3

    code, output = run_to_end(run_command(DIGITS_RECIPE, SMALL_DIGITS, root), tmp_path)

    assert code == 0, output
    expected_line = (
        f"Resuming from checkpoint {saved.path.name} (epoch 2, step {saved.meta['step']}, "
        f"batch {saved.meta['batch']} of epoch 2)"
    )
    assert expected_line in output
    assert read_results(run_dir)["epochs"] == 3
