"""Tests of ``recoverkit inspect`` through the click entry point."""

from __future__ import annotations

import json


def _line_starting(output: str, prefix: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(prefix))


def test_inspect_lists_recoverables(run, checkpoints_dir):
    result = run("inspect", checkpoints_dir / "CKPT+epoch-4")
    assert result.exit_code == 0, result.output
    assert "state dict: 2 tensors, 10 elements (float32)" in _line_starting(result.stdout, "model ")
    assert "text: '4'" in _line_starting(result.stdout, "epochs ")
    assert "dict: 0 tensors, 10 other values" in _line_starting(result.stdout, "optimizer ")
    assert "epoch=4 valid_loss=0.2 accuracy=0.54" in _line_starting(result.stdout, "meta ")
    assert _line_starting(result.stdout, "verified ").split()[1] == "ok"


def test_inspect_state_dict_tensors(run, checkpoints_dir):
    result = run("inspect", checkpoints_dir / "CKPT+epoch-4", "model")
    assert result.exit_code == 0
    assert _line_starting(result.stdout, "weight ").split() == ["weight", "tensor", "(2,", "4)", "float32", "32", "B"]
    assert _line_starting(result.stdout, "bias ").split() == ["bias", "tensor", "(2,)", "float32", "8", "B"]


def test_inspect_nested_optimizer_keys(run, checkpoints_dir):
    result = run("inspect", checkpoints_dir / "CKPT+epoch-4", "optimizer", "--json")
    assert result.exit_code == 0
    [item] = json.loads(result.stdout)["recoverables"]
    entries = {entry["key"]: entry for entry in item["entries"]}
    assert entries["param_groups.0.lr"]["value"] == "0.1"
    assert entries["param_groups.0.params"]["value"] == "[0, 1]"


def test_inspect_json(run, checkpoints_dir):
    result = run("inspect", checkpoints_dir / "CKPT+epoch-2", "model", "--json")
    data = json.loads(result.stdout)
    assert data["meta"] == {"epoch": 2, "valid_loss": 0.4, "accuracy": 0.52}
    assert data["verification"] == "ok"
    entries = data["recoverables"][0]["entries"]
    assert [(entry["key"], entry["shape"], entry["dtype"], entry["num_bytes"]) for entry in entries] == [
        ("weight", [2, 4], "float32", 32),
        ("bias", [2], "float32", 8),
    ]


def test_inspect_speechbrain_folder(run, speechbrain_dir):
    result = run("inspect", speechbrain_dir / "CKPT+sb", "model")
    assert result.exit_code == 0, result.output
    assert _line_starting(result.stdout, "weight ").split()[:4] == ["weight", "tensor", "(1,", "3)"]
    assert "no manifest" in _line_starting(result.stdout, "verified ")


def test_inspect_unknown_recoverable_exits_2(run, checkpoints_dir):
    result = run("inspect", checkpoints_dir / "CKPT+epoch-2", "scaler")
    assert result.exit_code == 2
    assert "no recoverable 'scaler'" in result.stderr
    assert "epochs, model, optimizer" in result.stderr


def test_inspect_folder_of_checkpoints_exits_2(run, checkpoints_dir):
    result = run("inspect", checkpoints_dir)
    assert result.exit_code == 2
    assert "is a folder of checkpoints, not a checkpoint" in result.stderr


def test_inspect_missing_checkpoint_exits_2(run, checkpoints_dir):
    result = run("inspect", checkpoints_dir / "CKPT+epoch-99")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_inspect_empty_folder_exits_1(run, empty_dir):
    result = run("inspect", empty_dir)
    assert result.exit_code == 1
    assert "meta file CKPT.yaml is missing" in result.stderr


def test_inspect_truncated_file_exits_1(run, checkpoints_dir, truncate_file):
    truncate_file(checkpoints_dir / "CKPT+epoch-2" / "model.ckpt")
    result = run("inspect", checkpoints_dir / "CKPT+epoch-2")
    assert result.exit_code == 1
    assert "cannot load: torch.load failed" in _line_starting(result.stdout, "model ")
    assert "truncated" in result.stderr


def test_inspect_truncated_speechbrain_file_exits_1(run, speechbrain_dir, truncate_file):
    truncate_file(speechbrain_dir / "CKPT+sb" / "model.ckpt", keep_bytes=40)
    result = run("inspect", speechbrain_dir / "CKPT+sb")
    assert result.exit_code == 1
    assert "model: torch.load failed" in result.stderr


def test_inspect_garbage_meta_file_exits_1(run, checkpoints_dir):
    (checkpoints_dir / "CKPT+epoch-2" / "CKPT.yaml").write_text(": : garbage [")
    result = run("inspect", checkpoints_dir / "CKPT+epoch-2")
    assert result.exit_code == 1
    assert "CKPT.yaml is invalid" in result.stderr
