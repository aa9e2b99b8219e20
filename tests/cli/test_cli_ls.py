"""Tests of ``recoverkit ls`` through the click entry point."""

from __future__ import annotations

import io
import json

from recoverkit import Checkpointer
from recoverkit.cli._output import make_console


def _names_in_order(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines() if line.startswith("CKPT+")]


def test_ls_lists_newest_first(run, checkpoints_dir):
    result = run("ls", checkpoints_dir)
    assert result.exit_code == 0, result.output
    assert _names_in_order(result.stdout) == [f"CKPT+epoch-{epoch}" for epoch in range(6, 0, -1)]


def test_ls_row_shows_kind_meta_and_state(run, checkpoints_dir):
    result = run("ls", checkpoints_dir)
    row = next(line for line in result.stdout.splitlines() if line.startswith("CKPT+epoch-4 "))
    assert "end-of-epoch" in row
    assert "epoch=4 valid_loss=0.2 accuracy=0.54" in row
    assert "KiB" in row
    assert row.rstrip().endswith("ok")


def test_ls_json_fields(run, checkpoints_dir):
    result = run("ls", checkpoints_dir, "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert len(rows) == 6
    newest = rows[0]
    assert newest["name"] == "CKPT+epoch-6"
    assert newest["meta"] == {"epoch": 6, "valid_loss": 0.4, "accuracy": 0.56}
    assert newest["end_of_epoch"] is True
    assert newest["recoverables"] == ["epochs", "model", "optimizer"]
    assert newest["verification"] == "ok"
    assert newest["size_bytes"] > 0


def test_ls_marks_intra_epoch_checkpoint(run, tmp_path):
    folder = tmp_path / "intra"
    Checkpointer(folder, {"counter": _Counter()}).save_checkpoint(end_of_epoch=False, name="mid")
    result = run("ls", folder)
    assert result.exit_code == 0
    assert "intra-epoch" in result.stdout


def test_ls_sort_by_meta_key(run, checkpoints_dir):
    result = run("ls", checkpoints_dir, "--sort", "valid_loss")
    assert result.exit_code == 0
    assert _names_in_order(result.stdout)[0] == "CKPT+epoch-4"
    reversed_result = run("ls", checkpoints_dir, "--sort", "valid_loss", "--reverse")
    assert _names_in_order(reversed_result.stdout)[0] == "CKPT+epoch-1"


def test_ls_sort_by_unknown_key_is_usage_error(run, checkpoints_dir):
    result = run("ls", checkpoints_dir, "--sort", "wer")
    assert result.exit_code == 2
    assert "no checkpoint has a meta value for 'wer'" in result.stderr
    assert "valid_loss" in result.stderr


def test_ls_missing_folder_exits_2(run, tmp_path):
    result = run("ls", tmp_path / "nope")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_ls_does_not_create_missing_folder(run, tmp_path):
    run("ls", tmp_path / "nope")
    assert not (tmp_path / "nope").exists()


def test_ls_empty_folder(run, empty_dir):
    result = run("ls", empty_dir)
    assert result.exit_code == 0
    assert "No checkpoints in" in result.stdout
    assert json.loads(run("ls", empty_dir, "--json").stdout) == []
    assert run("ls", empty_dir, "--sort", "valid_loss").exit_code == 0


def test_ls_truncated_file_fails_verification(run, checkpoints_dir, truncate_file):
    truncate_file(checkpoints_dir / "CKPT+epoch-3" / "model.ckpt")
    result = run("ls", checkpoints_dir)
    assert result.exit_code == 1
    row = next(line for line in result.stdout.splitlines() if line.startswith("CKPT+epoch-3 "))
    assert row.rstrip().endswith("broken")
    assert f"1 of 6 checkpoints in {checkpoints_dir} are broken" in result.stderr
    assert "model.ckpt" in result.stderr
    assert "truncated" in result.stderr


def test_ls_sizes_mode_catches_truncation(run, checkpoints_dir, truncate_file):
    truncate_file(checkpoints_dir / "CKPT+epoch-3" / "model.ckpt")
    result = run("ls", checkpoints_dir, "--verify", "sizes", "--json")
    assert result.exit_code == 1
    states = {row["name"]: row["verification"] for row in json.loads(result.stdout)}
    assert states["CKPT+epoch-3"] == "broken"
    assert states["CKPT+epoch-2"] == "sizes ok"


def test_ls_checksum_catches_altered_bytes(run, checkpoints_dir):
    path = checkpoints_dir / "CKPT+epoch-2" / "model.ckpt"
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF
    path.write_bytes(bytes(data))
    result = run("ls", checkpoints_dir, "--json")
    assert result.exit_code == 1
    row = next(row for row in json.loads(result.stdout) if row["name"] == "CKPT+epoch-2")
    assert row["verification"] == "broken"
    assert "contents altered" in row["problems"][0]


def test_ls_no_verify_leaves_unverified(run, checkpoints_dir, truncate_file):
    truncate_file(checkpoints_dir / "CKPT+epoch-3" / "model.ckpt")
    result = run("ls", checkpoints_dir, "--verify", "none", "--json")
    assert result.exit_code == 0
    assert {row["verification"] for row in json.loads(result.stdout)} == {"unverified"}


def test_ls_garbage_meta_file_is_broken(run, checkpoints_dir):
    (checkpoints_dir / "CKPT+epoch-5" / "CKPT.yaml").write_text("{{{ not: yaml: [")
    result = run("ls", checkpoints_dir, "--json")
    assert result.exit_code == 1
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["CKPT+epoch-5"]["verification"] == "broken"
    assert "CKPT.yaml is invalid" in rows["CKPT+epoch-5"]["problems"][0]
    row = next(line for line in run("ls", checkpoints_dir).stdout.splitlines() if line.startswith("CKPT+epoch-5 "))
    assert row.rstrip().endswith("broken")


def test_ls_speechbrain_folder_has_no_manifest(run, speechbrain_dir):
    result = run("ls", speechbrain_dir, "--json")
    assert result.exit_code == 0
    [row] = json.loads(result.stdout)
    assert row["name"] == "CKPT+sb"
    assert row["verification"] == "unverified (no manifest)"
    assert row["meta"] == {"valid_loss": 0.05}


def test_ls_output_has_no_colour_in_pipe(run, checkpoints_dir):
    result = run("ls", checkpoints_dir)
    assert "\x1b[" not in result.stdout


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_colours_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    terminal = _Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    make_console().print("ok", style="green")
    assert "\x1b[" in terminal.getvalue()


def test_console_respects_no_color(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    terminal = _Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    make_console().print("ok", style="green")
    assert "\x1b[" not in terminal.getvalue()


class _Counter:
    def __init__(self) -> None:
        self.value = 0

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]


def test_group_help_lists_commands(run):
    result = run("--help")
    assert result.exit_code == 0
    for command in ("average", "convert", "inspect", "ls", "plot", "prune"):
        assert f"  {command} " in result.stdout
