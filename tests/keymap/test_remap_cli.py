"""``recoverkit remap``: dry-run reports and converted weights files."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file
from torch import nn

from recoverkit.cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, ["remap", *map(str, args)])


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(3, 4)
        self.head = nn.Linear(4, 2)


@pytest.fixture
def ddp_file(tmp_path):
    path = tmp_path / "ddp.ckpt"
    torch.save({f"module.{key}": value for key, value in Net().state_dict().items()}, path)
    return path


def test_dry_run_on_minilm_prints_report(minilm_weights, minilm_keymap_path, tmp_path):
    result = run(minilm_weights, "--keymap", minilm_keymap_path, "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Keymap 'minilm': 104 source keys -> 77 keys"
    assert lines[1] == "  renamed or transformed: 77, unchanged: 0, dropped: 3"
    assert (
        "  encoder.layer.0.attention.self.query.weight + encoder.layer.0.attention.self.key.weight"
        " + encoder.layer.0.attention.self.value.weight -> layers.0.self_attn.in_proj_weight"
        "  (1152, 384) float32  [fused-qkv]"
    ) in lines
    assert "  embeddings.word_embeddings.weight -> embeddings.word.weight  (30522, 384) float32  [embedding-tables]" in lines
    assert "  pooler.dense.weight  [drop-pooler]" in lines
    assert list(tmp_path.iterdir()) == []


def test_dry_run_json(minilm_weights, minilm_keymap_path):
    result = run(minilm_weights, "--keymap", minilm_keymap_path, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["keymap"] == "minilm"
    assert len(data["mapped"]) == 77


def test_writes_safetensors_that_load_into_recipe(minilm_weights, minilm_keymap_path, minilm_recipe, tmp_path):
    out = tmp_path / "encoder.safetensors"
    result = run(minilm_weights, "--keymap", minilm_keymap_path, "--out", out, "--max-keys", 0)
    assert result.exit_code == 0, result.output
    assert f"Wrote {out} (77 keys)" in result.output
    encoder = minilm_recipe.SentenceEncoder()
    encoder.load_state_dict(load_file(str(out)), strict=True)


def test_writes_torch_file_with_builtin_keymap(ddp_file, tmp_path):
    out = tmp_path / "plain.ckpt"
    result = run(ddp_file, "--keymap", "ddp", "--out", out)
    assert result.exit_code == 0, result.output
    Net().load_state_dict(torch.load(out, weights_only=True), strict=True)


def test_target_mismatch_fails_unless_non_strict(ddp_file, tmp_path):
    target = tmp_path / "target.safetensors"
    state = Net().state_dict()
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(target))
    strict = run(ddp_file, "--keymap", "ddp", "--target", target, "--dry-run")
    assert strict.exit_code == 1
    assert "1 target key(s) missing, no source key maps to them: extra.weight" in strict.output
    lenient = run(ddp_file, "--keymap", "ddp", "--target", target, "--dry-run", "--non-strict")
    assert lenient.exit_code == 0, lenient.output
    assert "warning: 1 target key(s) missing" in lenient.output


def test_shape_mismatch_with_target_fails(ddp_file, tmp_path):
    target = tmp_path / "target.ckpt"
    state = Net().state_dict()
    state["head.weight"] = torch.zeros(5, 4)
    torch.save(state, target)
    result = run(ddp_file, "--keymap", "ddp", "--target", target, "--out", tmp_path / "out.ckpt", "--non-strict")
    assert result.exit_code == 1
    assert "'head.weight' from module.head.weight: shape (2, 4), target expects (5, 4)" in result.output
    assert not (tmp_path / "out.ckpt").exists()


def test_collision_fails_with_keys(ddp_file, tmp_path):
    keymap = tmp_path / "clash.yaml"
    keymap.write_text("rules:\n  - regex: {pattern: '^module\\.(encoder|head)\\.weight$', to: 'w'}\n", encoding="utf-8")
    result = run(ddp_file, "--keymap", keymap, "--dry-run")
    assert result.exit_code == 1
    assert "onto target key 'w'" in result.output


def test_invalid_keymap_file_fails(ddp_file, tmp_path):
    keymap = tmp_path / "bad.yaml"
    keymap.write_text("rules:\n  - rename: {from: a}\n", encoding="utf-8")
    result = run(ddp_file, "--keymap", keymap, "--dry-run")
    assert result.exit_code == 1
    assert "missing field(s) ['to']" in result.output


def test_out_is_required_without_dry_run(ddp_file):
    result = run(ddp_file, "--keymap", "ddp")
    assert result.exit_code == 2
    assert "--out DST" in result.output


def test_existing_out_needs_force(ddp_file, tmp_path):
    out = tmp_path / "exists.ckpt"
    out.write_bytes(b"keep")
    result = run(ddp_file, "--keymap", "ddp", "--out", out)
    assert result.exit_code == 2
    assert out.read_bytes() == b"keep"
    assert run(ddp_file, "--keymap", "ddp", "--out", out, "--force").exit_code == 0


def test_remap_is_listed_in_help():
    result = CliRunner().invoke(cli, ["remap", "--help"])
    assert result.exit_code == 0
    assert "--dry-run" in result.output
