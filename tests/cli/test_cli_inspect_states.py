"""``recoverkit inspect`` on a broken checkpoint: the table shows every file with its own state."""

from __future__ import annotations

import json


def _flip_byte(path, offset_from_end=30):
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


def _row_cells(output: str, recoverable: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith(f"{recoverable} "))
    return line.split()


def test_inspect_table_states(run, checkpoints_dir, truncate_file):
    folder = checkpoints_dir / "CKPT+epoch-4"
    _flip_byte(folder / "model.ckpt")
    truncate_file(folder / "optimizer.ckpt")
    result = run("inspect", folder)
    assert result.exit_code == 1
    assert _row_cells(result.stdout, "epochs")[4:] == ["ok", "text:", "'4'"]
    assert _row_cells(result.stdout, "model")[4:6] == ["checksum", "mismatch"]
    assert _row_cells(result.stdout, "optimizer")[4] == "truncated"
    assert "verified    broken" in result.stdout


def test_inspect_json_file_states(run, checkpoints_dir):
    folder = checkpoints_dir / "CKPT+epoch-4"
    _flip_byte(folder / "model.ckpt")
    (folder / "epochs.ckpt").unlink()
    result = run("inspect", folder, "--json")
    states = {item["name"]: item["verification"] for item in json.loads(result.stdout)["recoverables"]}
    assert states == {"epochs": "missing", "model": "checksum mismatch", "optimizer": "ok"}
    assert result.exit_code == 1


def test_inspect_sizes_mode_file_states(run, checkpoints_dir):
    folder = checkpoints_dir / "CKPT+epoch-4"
    (folder / "epochs.ckpt").write_bytes(b"")
    result = run("inspect", folder, "--verify", "sizes", "--json")
    states = {item["name"]: item["verification"] for item in json.loads(result.stdout)["recoverables"]}
    assert states == {"epochs": "zero-length", "model": "sizes ok", "optimizer": "sizes ok"}


def test_inspect_one_recoverable_state(run, checkpoints_dir):
    folder = checkpoints_dir / "CKPT+epoch-4"
    _flip_byte(folder / "model.ckpt")
    result = run("inspect", folder, "optimizer")
    assert "optimizer (optimizer.ckpt, " in result.stdout
    assert "verified: ok)" in result.stdout
    assert "param_groups.0.lr" in result.stdout


def test_inspect_unexpected_load_error(run, checkpoints_dir, monkeypatch):
    # torch's unpickler raises errors such as KeyError or struct.error on some altered bytes.
    def fail_on_model(path, *args, **kwargs):
        if path.name == "model.ckpt":
            raise KeyError(0)
        return original(path, *args, **kwargs)

    import recoverkit.cli._contents as contents

    original = contents.load_weights_only
    monkeypatch.setattr(contents, "load_weights_only", fail_on_model)
    result = run("inspect", checkpoints_dir / "CKPT+epoch-4")
    assert result.exit_code == 1
    assert _row_cells(result.stdout, "model")[4:7] == ["ok", "cannot", "load:"]
    assert _row_cells(result.stdout, "optimizer")[4] == "ok"
