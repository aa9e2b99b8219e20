"""Tests of ``recoverkit convert`` through the click entry point."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file, save_file


def test_convert_checkpoint_folder_to_safetensors(run, checkpoints_dir, tmp_path):
    out = tmp_path / "exported"
    result = run("convert", checkpoints_dir / "CKPT+epoch-3", "--to", "safetensors", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    outcomes = {item["source"].rsplit("/", 1)[-1]: item for item in json.loads(result.stdout)}
    assert outcomes["model.ckpt"]["num_tensors"] == 2
    assert outcomes["optimizer.ckpt"]["skipped"] == "entries 'state' (dict), 'param_groups' (list) are not tensors with string names"
    assert outcomes["epochs.ckpt"]["skipped"] == "a text file, not a state dict"
    assert sorted(path.name for path in out.iterdir()) == ["model.safetensors"]
    tensors = load_file(out / "model.safetensors")
    assert torch.equal(tensors["weight"], torch.full((2, 4), 3.0))


def test_convert_round_trip_to_torch(run, checkpoints_dir, tmp_path):
    exported = tmp_path / "exported"
    run("convert", checkpoints_dir / "CKPT+epoch-3", "--to", "safetensors", "--out", exported)
    back = tmp_path / "back"
    result = run("convert", exported, "--to", "torch", "--out", back)
    assert result.exit_code == 0, result.output
    original = torch.load(checkpoints_dir / "CKPT+epoch-3" / "model.ckpt", weights_only=True)
    restored = torch.load(back / "model.ckpt", weights_only=True)
    assert restored.keys() == original.keys()
    assert all(torch.equal(restored[key], original[key]) for key in original)


def test_convert_single_file(run, checkpoints_dir, tmp_path):
    out = tmp_path / "model.safetensors"
    result = run("convert", checkpoints_dir / "CKPT+epoch-2" / "model.ckpt", "--to", "safetensors", "--out", out)
    assert result.exit_code == 0
    assert "wrote" in result.stdout
    assert torch.equal(load_file(out)["bias"], torch.full((2,), -2.0))


def test_convert_requested_optimizer_fails(run, checkpoints_dir, tmp_path):
    result = run(
        "convert", checkpoints_dir / "CKPT+epoch-2", "--to", "safetensors", "--out", tmp_path / "x", "--recoverable", "optimizer"
    )
    assert result.exit_code == 1
    assert "keep this file in torch format" in result.stderr


def test_convert_shared_tensors(run, tmp_path):
    linear = torch.nn.Linear(3, 3)
    source = tmp_path / "tied.pt"
    torch.save({"encoder.weight": linear.weight, "decoder.weight": linear.weight, "bias": linear.bias}, source)
    out = tmp_path / "tied.safetensors"
    result = run("convert", source, "--to", "safetensors", "--out", out)
    assert result.exit_code == 1
    assert "tensors share memory ('encoder.weight' = 'decoder.weight')" in result.stderr
    assert "--clone-shared" in result.stderr
    assert not out.exists()
    cloned = run("convert", source, "--to", "safetensors", "--out", out, "--clone-shared")
    assert cloned.exit_code == 0
    tensors = load_file(out)
    assert torch.equal(tensors["encoder.weight"], tensors["decoder.weight"])


def test_convert_non_tensor_entries(run, tmp_path):
    source = tmp_path / "mixed.pt"
    torch.save({"weight": torch.ones(2), "step": 10}, source)
    result = run("convert", source, "--to", "safetensors", "--out", tmp_path / "mixed.safetensors")
    assert result.exit_code == 1
    assert "entries 'step' (int) are not tensors" in result.stderr


def test_convert_truncated_file_exits_1(run, checkpoints_dir, tmp_path, truncate_file):
    truncate_file(checkpoints_dir / "CKPT+epoch-2" / "model.ckpt")
    result = run("convert", checkpoints_dir / "CKPT+epoch-2", "--to", "safetensors", "--out", tmp_path / "x")
    assert result.exit_code == 1
    assert "Not converting: checkpoint" in result.stderr
    assert "model.ckpt: expected" in result.stderr


def test_convert_truncated_speechbrain_file_exits_1(run, speechbrain_dir, tmp_path, truncate_file):
    truncate_file(speechbrain_dir / "CKPT+sb" / "model.ckpt")
    result = run("convert", speechbrain_dir / "CKPT+sb", "--to", "safetensors", "--out", tmp_path / "x")
    assert result.exit_code == 1
    assert "cannot load: torch.load failed" in result.stderr


def test_convert_garbage_safetensors_exits_1(run, tmp_path):
    source = tmp_path / "bad.safetensors"
    source.write_bytes(b"\x00" * 64)
    result = run("convert", source, "--to", "torch", "--out", tmp_path / "bad.ckpt")
    assert result.exit_code == 1
    assert "not a valid safetensors file" in result.stderr


def test_convert_keeps_existing_output(run, tmp_path):
    source = tmp_path / "a.safetensors"
    save_file({"x": torch.zeros(1)}, source)
    out = tmp_path / "a.ckpt"
    out.write_text("precious")
    result = run("convert", source, "--to", "torch", "--out", out)
    assert result.exit_code == 2
    assert out.read_text() == "precious"


def test_convert_missing_source_exits_2(run, tmp_path):
    result = run("convert", tmp_path / "nope", "--to", "torch", "--out", tmp_path / "x")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_convert_empty_folder_exits_2(run, empty_dir, tmp_path):
    result = run("convert", empty_dir, "--to", "safetensors", "--out", tmp_path / "x")
    assert result.exit_code == 2
    assert "is not a checkpoint folder" in result.stderr


def test_convert_speechbrain_folder(run, speechbrain_dir, tmp_path):
    out = tmp_path / "x"
    result = run("convert", speechbrain_dir / "CKPT+sb", "--to", "safetensors", "--out", out)
    assert result.exit_code == 0
    assert load_file(out / "model.safetensors")["weight"].shape == (1, 3)


def test_convert_folder_with_tied_weights_fails(run, tmp_path):
    folder = tmp_path / "CKPT+tied"
    folder.mkdir()
    (folder / "CKPT.yaml").write_text("unixtime: 1.0\nend-of-epoch: true\n")
    linear = torch.nn.Linear(2, 2)
    torch.save({"a": linear.weight, "b": linear.weight}, folder / "model.ckpt")
    result = run("convert", folder, "--to", "safetensors", "--out", tmp_path / "x")
    assert result.exit_code == 1
    assert "tensors share memory ('a' = 'b')" in result.stderr


def test_convert_file_already_in_target_format(run, checkpoints_dir, tmp_path):
    model_file = checkpoints_dir / "CKPT+epoch-2" / "model.ckpt"
    result = run("convert", model_file, "--to", "torch", "--out", tmp_path / "x.ckpt")
    assert result.exit_code == 2
    assert "is a torch.save file already" in result.stderr
    exported = tmp_path / "m.safetensors"
    run("convert", model_file, "--to", "safetensors", "--out", exported)
    again = run("convert", exported, "--to", "safetensors", "--out", tmp_path / "y.safetensors")
    assert again.exit_code == 2
    assert "is a safetensors file already" in again.stderr
