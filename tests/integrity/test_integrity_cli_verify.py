"""``recoverkit verify DIR``: exit status and report per checkpoint folder."""

from __future__ import annotations

import json

import torch
from click.testing import CliRunner

from recoverkit import Checkpointer
from recoverkit.cli.main import cli


def run_verify(*arguments: str):
    return CliRunner().invoke(cli, ["verify", *arguments])


def save_two(checkpoints_dir):
    checkpointer = Checkpointer(checkpoints_dir, {"model": torch.nn.Linear(3, 3)})
    return [checkpointer.save_checkpoint(meta={"step": step}) for step in (1, 2)]


def test_valid_folder_exits_zero(tmp_path):
    save_two(tmp_path)

    result = run_verify(str(tmp_path))

    assert result.exit_code == 0, result.output
    assert result.output.count("OK ") == 2
    assert "2 valid, 0 broken" in result.output


def test_broken_checkpoint_exits_one(tmp_path):
    first, second = save_two(tmp_path)
    path = second.paramfiles["model"]
    path.write_bytes(path.read_bytes()[:10])

    result = run_verify(str(tmp_path))

    assert result.exit_code == 1
    assert f"BROKEN  {second.path.name}" in result.output
    assert "model.ckpt: expected" in result.output
    assert "(truncated)" in result.output
    assert f"OK      {first.path.name}" in result.output


def test_garbage_meta_exits_one(tmp_path):
    _first, second = save_two(tmp_path)
    (second.path / "CKPT.yaml").write_bytes(b"\xff\xfe not yaml")

    result = run_verify(str(tmp_path))

    assert result.exit_code == 1
    assert "CKPT.yaml" in result.output


def test_sizes_only_misses_bitflip(tmp_path):
    _first, second = save_two(tmp_path)
    path = second.paramfiles["model"]
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    path.write_bytes(bytes(data))

    assert run_verify(str(tmp_path), "--sizes-only").exit_code == 0
    assert run_verify(str(tmp_path)).exit_code == 1


def test_foreign_folders_skipped(tmp_path):
    save_two(tmp_path)
    (tmp_path / "CKPT+backup~").mkdir()
    (tmp_path / "CKPT+backup~" / "model.ckpt").write_bytes(b"copy")
    (tmp_path / "CKPT+speechbrain").mkdir()
    (tmp_path / "CKPT+speechbrain" / "CKPT.yaml").write_text("unixtime: 1.0\nend-of-epoch: true\n")
    torch.save({}, tmp_path / "CKPT+speechbrain" / "model.ckpt")

    result = run_verify(str(tmp_path), "--json")

    assert result.exit_code == 0, result.output
    states = {entry["name"]: entry["state"] for entry in json.loads(result.output)}
    assert states["CKPT+backup~"] == "not a checkpoint"
    assert states["CKPT+speechbrain"] == "unverified (no manifest)"
    assert sorted(states.values()).count("ok") == 2


def test_missing_folder_is_usage_error(tmp_path):
    assert run_verify(str(tmp_path / "absent")).exit_code == 2
