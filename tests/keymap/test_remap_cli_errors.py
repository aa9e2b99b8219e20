"""``recoverkit remap`` on files that are not readable weights files: one error line, exit code 1."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from recoverkit.cli.main import cli


def run_remap(*args):
    return CliRunner().invoke(cli, ["remap", *map(str, args)])


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.fixture
def weights_file(tmp_path):
    path = tmp_path / "model.ckpt"
    torch.save({"module.weight": torch.ones(4, 3)}, path)
    return path


def test_truncated_torch_file(tmp_path, weights_file):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(weights_file.read_bytes()[:100])
    result = run_remap(truncated, "--keymap", "ddp", "--dry-run")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert error_lines(result) == [
        f"Error: Cannot read {truncated} as a weights file: PytorchStreamReader failed reading "
        "zip archive: failed finding central directory. It may be truncated or corrupted: copy it "
        "again from its source. Pass a .safetensors file, or a torch.save file that contains a state dict."
    ]


def test_text_file(tmp_path):
    counter = tmp_path / "counter.ckpt"
    counter.write_text("4")
    result = run_remap(counter, "--keymap", "ddp", "--dry-run")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert error_lines(result) == [
        f"Error: Cannot read {counter}: it is a text file ('4'), not a weights file. "
        "Pass a .safetensors file, or a torch.save file that contains a state dict."
    ]
    assert "add_safe_globals" not in result.output


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    result = run_remap(empty, "--keymap", "ddp", "--dry-run")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert error_lines(result)[0].startswith(f"Error: Cannot read {empty}: the file is empty.")


def test_file_without_state_dict(tmp_path):
    path = tmp_path / "tensor.ckpt"
    torch.save(torch.ones(2), path)
    result = run_remap(path, "--keymap", "ddp", "--dry-run")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert error_lines(result) == [
        f"Error: Cannot read {path} as a state dict: it contains a Tensor, not a dict of names to "
        "tensors. Pass a file written by torch.save(module.state_dict())."
    ]


def test_corrupt_safetensors(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\xff" * 64)
    result = run_remap(path, "--keymap", "ddp", "--dry-run")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert len(error_lines(result)) == 1
    assert error_lines(result)[0].startswith(f"Error: Cannot read {path} as a weights file: ")


def test_truncated_target(tmp_path, weights_file):
    target = tmp_path / "target.ckpt"
    target.write_bytes(weights_file.read_bytes()[:100])
    result = run_remap(weights_file, "--keymap", "ddp", "--target", target, "--dry-run")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert error_lines(result)[0].startswith(f"Error: Cannot read {target} as a weights file: ")


def test_unreadable_source_without_dry_run(tmp_path):
    counter = tmp_path / "counter.ckpt"
    counter.write_text("4")
    out = tmp_path / "out.ckpt"
    result = run_remap(counter, "--keymap", "ddp", "--out", out)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert not out.exists()
