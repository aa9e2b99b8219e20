"""Tests of ``recoverkit average`` through the click entry point."""

from __future__ import annotations

import json

import torch


def test_average_last_two(run, checkpoints_dir, tmp_path):
    out = tmp_path / "avg.ckpt"
    result = run("average", checkpoints_dir, "--last", "2", "--recoverable", "model", "--out", out)
    assert result.exit_code == 0, result.output
    averaged = torch.load(out, weights_only=True)
    # The fixture fills the weights of epoch e with e: the last two are 6 and 5.
    assert torch.equal(averaged["weight"], torch.full((2, 4), 5.5))
    assert torch.equal(averaged["bias"], torch.full((2,), -5.5))
    assert "Averaged 'model' over 2 checkpoints" in result.stdout


def test_average_best_by_min_key(run, checkpoints_dir, tmp_path):
    out = tmp_path / "best.ckpt"
    result = run(
        "average", checkpoints_dir, "--best", "3", "--min-key", "valid_loss", "--recoverable", "model", "--out", out, "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # Lowest valid_loss: epoch 4 (0.2), then 5 and 3 (0.3 each).
    assert [path.rsplit("/", 1)[-1] for path in summary["checkpoints"]] == ["CKPT+epoch-4", "CKPT+epoch-5", "CKPT+epoch-3"]
    assert torch.equal(torch.load(out, weights_only=True)["weight"], torch.full((2, 4), 4.0))


def test_average_best_by_max_key(run, checkpoints_dir, tmp_path):
    out = tmp_path / "best.ckpt"
    result = run("average", checkpoints_dir, "--best", "2", "--max-key", "accuracy", "--recoverable", "model", "--out", out)
    assert result.exit_code == 0
    assert torch.equal(torch.load(out, weights_only=True)["weight"], torch.full((2, 4), 5.5))


def test_average_fewer_than_requested_warns(run, checkpoints_dir, tmp_path):
    result = run("average", checkpoints_dir, "--last", "10", "--recoverable", "model", "--out", tmp_path / "a.ckpt")
    assert result.exit_code == 0
    assert "only 6 checkpoints match, fewer than the 10 requested" in result.stderr


def test_average_optimizer_is_rejected(run, checkpoints_dir, tmp_path):
    out = tmp_path / "opt.ckpt"
    result = run("average", checkpoints_dir, "--last", "2", "--recoverable", "optimizer", "--out", out)
    assert result.exit_code == 1
    assert "does not contain a state dict of tensors" in result.stderr
    assert not out.exists()


def test_average_selection_options_are_checked(run, checkpoints_dir, tmp_path):
    out = tmp_path / "a.ckpt"
    cases = [
        (["--recoverable", "model"], "Pass exactly one of --last K and --best K"),
        (["--last", "2", "--best", "2", "--recoverable", "model"], "Pass exactly one of --last K and --best K"),
        (["--best", "2", "--recoverable", "model"], "--best needs exactly one of --min-key"),
        (["--last", "2", "--min-key", "valid_loss", "--recoverable", "model"], "go with --best, not with --last"),
        (["--last", "2", "--recoverable", "decoder"], "No checkpoint in"),
    ]
    for arguments, message in cases:
        result = run("average", checkpoints_dir, *arguments, "--out", out)
        assert result.exit_code == 2, arguments
        assert message in result.stderr, arguments


def test_average_keeps_existing_output(run, checkpoints_dir, tmp_path):
    out = tmp_path / "a.ckpt"
    out.write_text("precious")
    result = run("average", checkpoints_dir, "--last", "2", "--recoverable", "model", "--out", out)
    assert result.exit_code == 2
    assert "pass --force to replace it" in result.stderr
    assert out.read_text() == "precious"
    forced = run("average", checkpoints_dir, "--last", "2", "--recoverable", "model", "--out", out, "--force")
    assert forced.exit_code == 0


def test_average_missing_folder_exits_2(run, tmp_path):
    result = run("average", tmp_path / "nope", "--last", "2", "--recoverable", "model", "--out", tmp_path / "a.ckpt")
    assert result.exit_code == 2


def test_average_empty_folder_exits_1(run, empty_dir, tmp_path):
    result = run("average", empty_dir, "--last", "2", "--recoverable", "model", "--out", tmp_path / "a.ckpt")
    assert result.exit_code == 1
    assert "Nothing to average" in result.stderr


def test_average_truncated_file_exits_1(run, checkpoints_dir, tmp_path, truncate_file):
    truncate_file(checkpoints_dir / "CKPT+epoch-6" / "model.ckpt")
    out = tmp_path / "a.ckpt"
    result = run("average", checkpoints_dir, "--last", "2", "--recoverable", "model", "--out", out)
    assert result.exit_code == 1
    assert "Not averaging: 1 selected checkpoints are broken (CKPT+epoch-6: model.ckpt" in result.stderr
    assert not out.exists()


def test_average_truncated_speechbrain_file_exits_1(run, speechbrain_dir, tmp_path, truncate_file):
    truncate_file(speechbrain_dir / "CKPT+sb" / "model.ckpt")
    result = run("average", speechbrain_dir, "--last", "1", "--recoverable", "model", "--out", tmp_path / "a.ckpt")
    assert result.exit_code == 1
    assert "Cannot load" in result.stderr
    assert "model.ckpt" in result.stderr
